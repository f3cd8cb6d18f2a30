"""Serving throughput and latency: `spacy-mtl serve` under 1, 8 and 32 concurrent clients,
against `nlp.pipe` and one `nlp(text)` call per text in the same process.

    python benchmarks/serve.py                  # MiniLM, ~3 minutes on 2 loaded cores
    python benchmarks/serve.py --model /tmp/tiny_bert --n-texts 32 --clients 1,4 --rounds 1
    python benchmarks/serve.py --render [--check]   # results/serve.json -> README, docs/serve.md

The pipeline is the shipped configs' (mtl_transformer + mtl_textcat over the benchmark's
three groups) with untrained heads, saved to a temp folder. The server runs in its own
process on a free loopback port; each client has its own HTTP connection and
sends one short text per request, as a front end would, and the clients share the texts.
`serve_unbatched` is the same server with batches of one text (what serving with a
`nlp(text)` per request gives under load). Requests/s = docs/s (one text each).
Client and server share the machine's cores, so the figures are noisy on a loaded machine.
The clients are asyncio tasks (httpx.AsyncClient), each with its own connection.
"""

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "serve.json"
# The generated blocks: the README's short table and docs/serve.md's whole one.
BLOCKS = {ROOT / "README.md": False, ROOT / "docs" / "serve.md": True}
START, END = "<!-- serve:start", "<!-- serve:end -->"


# Server variants: the app's batching options and the server process's environment.
# `default` is what `spacy-mtl serve` ships; the others are the candidates it was chosen from.
SERVERS: Dict[str, Tuple[Dict[str, Any], Dict[str, str]]] = {
    "default": ({}, {}),
    "fixed5": ({"wait_ms": 5.0, "gap_ms": None}, {}),
    "gap2": ({"wait_ms": 20.0, "gap_ms": 2.0}, {}),
    "passive": ({"wait_ms": 5.0, "gap_ms": None}, {"OMP_WAIT_POLICY": "PASSIVE"}),
    "gap2-passive": ({"wait_ms": 20.0, "gap_ms": 2.0}, {"OMP_WAIT_POLICY": "PASSIVE"}),
}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="HF model folder (default: MiniLM)")
    parser.add_argument("--n-texts", type=int, default=256, help="short texts per turn")
    parser.add_argument(
        "--n-single",
        type=int,
        default=32,
        help="the first N of them for the contenders that run one text at a time "
        "(nlp(text), the server with 1 client, the unbatched server)",
    )
    parser.add_argument("--clients", default="1,8,32", help="concurrent clients to run")
    parser.add_argument("--batch-size", type=int, default=64, help="nlp.pipe batch; max_batch")
    parser.add_argument(
        "--servers",
        default="default",
        help=f"server variants, each its own process and its own rows: {', '.join(SERVERS)}",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--render",
        action="store_true",
        help="run nothing: write the table of --results into README.md and docs/serve.md",
    )
    parser.add_argument("--check", action="store_true", help="with --render: only check")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--unbatched-clients",
        type=int,
        default=32,
        help="clients for the server with batches of one text (0: skip)",
    )
    parser.add_argument("--rounds", type=int, default=5, help="turns over all contenders")
    parser.add_argument("--out", type=Path, default=None)
    return parser.parse_args(argv)


def texts_for(n: int, seed: int) -> List[str]:
    """Real short texts (GoEmotions + Davidson) where the shared data is, else synthetic."""
    root = harness.data_dir()
    if (root / "goemotions").exists() and (root / "davidson_hate_offensive").exists():
        return harness.short_texts(root, n, seed=seed)
    words = "the movie was really good but the ending felt a bit long and sad".split()
    return [" ".join(words[i % 5 : i % 5 + 6 + i % 7]) for i in range(n)]


def groups_for() -> Dict[str, Dict[str, Any]]:
    root = harness.data_dir()
    if (root / "goemotions").exists():
        return harness.benchmark_groups(root)
    return harness.group_config(3, 35, names=["emotion", "sentiment", "offense"])


def percentiles(seconds: Sequence[float]) -> Dict[str, float]:
    ms = sorted(1000 * s for s in seconds)
    return {
        "p50_ms": round(harness.median(ms), 2),
        "p95_ms": round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 2),
    }


def run_pipe(nlp: Any, texts: Sequence[str], batch_size: int) -> Dict[str, Any]:
    start = time.perf_counter()
    for _ in nlp.pipe(texts, batch_size=batch_size):
        pass
    wall = time.perf_counter() - start
    return {"docs_per_s": round(len(texts) / wall, 1), "wall_s": round(wall, 2)}


def run_calls(nlp: Any, texts: Sequence[str]) -> Dict[str, Any]:
    latencies = []
    start = time.perf_counter()
    for text in texts:
        t0 = time.perf_counter()
        nlp(text)
        latencies.append(time.perf_counter() - t0)
    wall = time.perf_counter() - start
    return {"docs_per_s": round(len(texts) / wall, 1), "wall_s": round(wall, 2)} | percentiles(
        latencies
    )


def in_thread(run: Callable[..., Dict[str, Any]], *args: Any) -> Dict[str, Any]:
    """`run(*args)` in a fresh thread, as the server runs its pipeline. Measured on 2 loaded
    cores with 2 torch threads: MiniLM's nlp.pipe ran at 10-12 docs/s in the main thread
    and ~200 in a thread (~90 either way with 1 torch thread), so the main thread would
    have been no fair baseline there."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run, *args).result()


def start_server(
    model_dir: Path, args: argparse.Namespace, max_batch: int, variant: str = "default"
) -> Any:
    """The server in a subprocess with `max_batch` and the options and environment of
    `variant` (SERVERS); (process, url) once /health answers."""
    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app_options, env = SERVERS[variant]
    options = {"max_batch": max_batch, "max_texts": 1024, **app_options}
    code = (
        "import sys, json; sys.path.insert(0, sys.argv[1]); import harness;"
        "harness.set_threads(int(sys.argv[2]));"
        "from spacy_mtl.workflows.loading import load_pipeline;"
        "from spacy_mtl.workflows.serve import run_server;"
        "run_server(load_pipeline(sys.argv[3]), model=sys.argv[3], port=int(sys.argv[4]),"
        " app_options=json.loads(sys.argv[5]), log_level='warning')"
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            str(Path(__file__).resolve().parent),
            str(args.threads),
            str(model_dir),
            str(port),
            json.dumps(options),
        ],
        cwd=str(ROOT),
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the server exited before answering /health")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("the server did not answer /health within 180 s")


def run_clients(url: str, texts: Sequence[str], n_clients: int) -> Dict[str, Any]:
    """`n_clients` concurrent clients, each with its own connection, send the texts one per
    request (client c takes texts c, c + n, ...); every response is checked. The clients
    are asyncio tasks in one thread: 32 client threads would spend the cores (and the GIL)
    that the server needs on a small machine."""
    return asyncio.run(_clients(url, texts, n_clients))


async def _clients(url: str, texts: Sequence[str], n_clients: int) -> Dict[str, Any]:
    import httpx

    latencies: List[float] = []
    errors: List[str] = []
    ready = asyncio.Event()

    async def client(c: int, http: Any) -> None:
        await http.get(f"{url}/health")  # connect before the clock starts
        await ready.wait()
        for text in texts[c::n_clients]:
            t0 = time.perf_counter()
            response = await http.post(f"{url}/predict", json={"texts": [text]})
            latencies.append(time.perf_counter() - t0)
            if response.status_code != 200 or len(response.json()["docs"]) != 1:
                errors.append(response.text[:200])

    async with httpx.AsyncClient() as http:
        before = (await http.get(f"{url}/info")).json()["batching"]
    https = [httpx.AsyncClient(timeout=120) for _ in range(n_clients)]
    try:
        tasks = [asyncio.create_task(client(c, http)) for c, http in enumerate(https)]
        await asyncio.sleep(0.5)  # every client connected
        start = time.perf_counter()
        ready.set()
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - start
    finally:
        for http in https:
            await http.aclose()
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, e.g. {errors[0]}")
    async with httpx.AsyncClient() as http:
        after = (await http.get(f"{url}/info")).json()["batching"]
    batches = max(1, after["batches"] - before["batches"])
    return {
        "clients": n_clients,
        "docs_per_s": round(len(texts) / wall, 1),
        "wall_s": round(wall, 2),
        "mean_batch": round((after["texts"] - before["texts"]) / batches, 1),
    } | percentiles(latencies)


def stop(process: Any) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


def render(results: Path, check: bool) -> int:
    """Write (or check) the generated table blocks; RETURNS the exit code."""
    result = json.loads(results.read_text(encoding="utf8"))
    stale = []
    for path, variants in BLOCKS.items():
        text = path.read_text(encoding="utf8")
        start, end = text.find(START), text.find(END)
        if start < 0 or end < start:
            print(f"{path}: no {START} ... {END} block", file=sys.stderr)
            return 1
        head = text.index("\n", start) + 1
        block = f"{measured_on(result)}\n\n{table(result, variants)}\n"
        new = text[:head] + block + text[end:]
        if new != text:
            stale.append(path)
            if not check:
                path.write_text(new, encoding="utf8")
    if check and stale:
        names = ", ".join(str(p.relative_to(ROOT)) for p in stale)
        print(f"{names}: stale; run python benchmarks/serve.py --render", file=sys.stderr)
        return 1
    return 0


def measured_on(result: Dict[str, Any]) -> str:
    """Where and how the figures were measured, from the results file."""
    env = result["environment"]
    load = result.get("load_start", ["?"])[0]
    return (
        f"Measured by `{result['command']}` ({result['started'][:10]}, "
        f"{result['wall_seconds']:.0f} s) on {env['cpu_count']} cores of {env.get('cpu', '?')}, "
        f"{env['torch_threads']} torch threads, load average {load} at the start; "
        f"{result['n_texts']} texts of {result['mean_words']} words on average, medians of "
        f"{result['args']['rounds']} rounds run in turns."
    )


def main() -> None:
    args = parse_args()
    if args.render:
        sys.exit(render(args.results, args.check))
    harness.set_threads(args.threads)
    started = time.time()
    model = args.model or harness.default_model()
    clients = [int(c) for c in args.clients.split(",") if c]
    texts = texts_for(args.n_texts, args.seed)
    single = texts[: args.n_single]
    warmup = texts_for(64, args.seed + 1)
    result = harness.result_header("serve", args, model, "cpu")
    result["n_texts"] = len(texts)
    result["mean_words"] = round(statistics.mean(len(t.split()) for t in texts), 1)

    from wasabi import msg

    nlp = harness.make_ours(model, groups_for(), warmup, seed=args.seed)
    contenders: Dict[str, Callable[[], Dict[str, Any]]] = {
        "pipe": lambda: in_thread(run_pipe, nlp, texts, args.batch_size),
        "calls": lambda: in_thread(run_calls, nlp, single),
    }
    servers = []
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        nlp.to_disk(model_dir)
        try:
            for v, variant in enumerate(args.servers.split(",")):
                process, url = start_server(model_dir, args, args.batch_size, variant)
                servers.append(process)
                prefix = "serve_" if v == 0 else f"serve-{variant}_"
                for n in clients:
                    contenders[f"{prefix}{n}"] = partial(
                        run_clients, url, single if n == 1 else texts, n
                    )
                run_clients(url, warmup, 8)
            if args.unbatched_clients:
                process, plain_url = start_server(model_dir, args, 1)
                servers.append(process)
                contenders["serve_unbatched"] = partial(
                    run_clients, plain_url, single, args.unbatched_clients
                )
                run_clients(plain_url, warmup, 8)
            in_thread(run_pipe, nlp, warmup, args.batch_size)
            # In turns, so that every contender sees the machine's load drift alike.
            rounds: Dict[str, List[Dict[str, Any]]] = {name: [] for name in contenders}
            for r in range(args.rounds):
                for name, run in contenders.items():
                    rounds[name].append(run())
                    msg.text(f"round {r}, {name}: {rounds[name][-1]}")
        finally:
            for process in servers:
                stop(process)
    result["rounds"] = rounds
    result["median"] = {name: summarise(rows) for name, rows in rounds.items()}
    top = f"serve_{max(clients)}"
    # Paired per round: the ratio within a round, where both saw the same load.
    result["serve_vs_pipe"] = round(
        harness.median(
            [a["docs_per_s"] / b["docs_per_s"] for a, b in zip(rounds[top], rounds["pipe"])]
        ),
        2,
    )
    # The same paired ratio for every server variant at the most clients.
    result["variants_vs_pipe"] = {
        name: round(
            harness.median(
                [a["docs_per_s"] / b["docs_per_s"] for a, b in zip(rows, rounds["pipe"])]
            ),
            2,
        )
        for name, rows in rounds.items()
        if name.startswith("serve") and name.endswith(f"_{max(clients)}")
    }
    print(table(result))
    msg.text(f"× nlp.pipe at {max(clients)} clients: {result['variants_vs_pipe']}")
    harness.finish(result, started, args.out, "serve")


def summarise(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Median of each measured figure over the rounds."""
    keys = [k for k in rows[0] if k in ("docs_per_s", "p50_ms", "p95_ms", "clients")]
    return {k: round(harness.median([row[k] for row in rows]), 2) for k in keys}


def table(result: Dict[str, Any], variants: bool = True) -> str:
    """The Markdown table of docs/serve.md (with the server variants) or of the README
    (without): medians over the rounds."""
    median = result["median"]
    pipe = median["pipe"]["docs_per_s"]
    names = {
        "pipe": f"`nlp.pipe`, batch {result['args']['batch_size']}",
        "calls": "`nlp(text)` per text",
        "serve_unbatched": "serve, batches of 1 text",
    }
    lines = [
        "| contender | clients | docs/s (= requests/s) | × nlp.pipe | p50 ms | p95 ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, row in median.items():
        if name.startswith("serve-") and not variants:
            continue
        label = names.get(name, "`spacy-mtl serve`")
        if name.startswith("serve-"):
            label = f"serve, {name[len('serve-') :].rsplit('_', 1)[0]}"
        clients = int(row["clients"]) if "clients" in row else (1 if name == "calls" else "–")
        p50, p95 = row.get("p50_ms", "–"), row.get("p95_ms", "–")
        lines.append(
            f"| {label} | {clients} | {row['docs_per_s']:.1f} | "
            f"{row['docs_per_s'] / pipe:.2f} | {p50} | {p95} |"
        )
    lines.append(
        f"\n{result['serve_vs_pipe']}× nlp.pipe's docs/s at the most clients (median of the "
        "per-round ratios)."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
