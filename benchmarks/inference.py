"""Inference speed and memory: mtl_textcat against what users would otherwise run.

    python benchmarks/inference.py                  # the full run (~10 minutes on 2 cores)
    python benchmarks/inference.py --n-texts 64 --n-long 8 --model /tmp/tiny_bert   # smoke

Contenders, all on the same transformer weights, batch size and thread count, run in turns
(`--step` docs each) so they share the machine's load:
- ours: plain `nlp.pipe` over the shipped configs' pipeline: `mtl_transformer` (sorts each
  buffer by wordpieces, input order kept) with `spacy-mtl.wordpiece_spans.v1` windows, and
  mtl_textcat (3 groups);
- ours, stock: spacy-transformers' `transformer` with strided spans (the default before);
- ours, sorted: `spacy_mtl.trf.batching.pipe_by_length` over the stock pipeline;
- ours, wordpiece windows (long texts): the stock `transformer` with wordpiece windows;
- the limit: a hand-written PyTorch loop (AutoTokenizer + AutoModel, mean pooling, linear,
  softmax / sigmoid), unsorted and sorted by length over the whole input;
- spaCy's built-ins on one shared transformer (textcat + textcat_multilabel, listeners);
- K separate pipelines, each a transformer + one built-in component.
Peak memory is measured per contender in its own subprocess (`--worker`).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="HF model folder (default: MiniLM)")
    parser.add_argument("--n-texts", type=int, default=2000, help="short texts")
    parser.add_argument("--n-long", type=int, default=64, help="long texts (0: skip)")
    parser.add_argument("--long-words", type=int, default=500)
    parser.add_argument(
        "--long-batch-size",
        type=int,
        default=8,
        help="long docs per nlp.pipe batch and per turn (~60 windows, like the loop's 64)",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--step", type=int, default=64, help="docs per turn")
    parser.add_argument("--window", type=int, default=128, help="wordpieces per window")
    parser.add_argument(
        "--rounds",
        type=int,
        default=7,
        help="rounds after the turns: whole passes of ours and the sorted loop, alternated, "
        "each round over a fresh sample of texts",
    )
    parser.add_argument(
        "--scaling",
        default="1x28,3x35,10x100,30x300,3x1000,30x1000",
        help="GROUPSxLABELS grid for the scaling runs ('' to skip)",
    )
    parser.add_argument("--scale-texts", type=int, default=192)
    parser.add_argument(
        "--latency-texts",
        type=int,
        default=1000,
        help="short texts for single-doc latency, nlp(text) vs a raw HF forward (0: skip)",
    )
    parser.add_argument("--rss-texts", type=int, default=192, help="texts per memory run")
    parser.add_argument("--no-rss", action="store_true", help="skip the memory subprocesses")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile ours on short and long texts"
    )
    parser.add_argument(
        "--contenders", default="all", help="comma-separated subset of the contenders"
    )
    parser.add_argument("--gpu-id", type=int, default=-1, help="-1: CPU")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker-groups", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


ARGS = parse_args()
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

harness.set_threads(ARGS.threads)

import warnings  # noqa: E402

from wasabi import msg  # noqa: E402

warnings.filterwarnings("ignore", message=".*sequence length is longer.*")


def scaling_grid(spec: str) -> List[Dict[str, int]]:
    grid = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        groups, labels = part.lower().split("x")
        grid.append({"groups": int(groups), "labels": int(labels)})
    return grid


def build(
    name: str, model: str, init: Sequence[str], device: str, docs_per_batch: int = 0
) -> Dict[str, Any]:
    """Build one contender by name; returns {stream, counters}. spaCy contenders take
    `docs_per_batch` docs per `nlp.pipe` batch (default --batch-size); the loop always runs
    --batch-size windows per forward pass."""
    from spacy_mtl.trf.batching import iter_by_length

    root = harness.data_dir()
    groups = harness.benchmark_groups(root)
    bs = docs_per_batch or ARGS.batch_size
    if name.startswith("limit"):
        clf = harness.TorchClassifier(
            model,
            groups,
            device=device,
            window=ARGS.window,
            seed=ARGS.seed,
            onednn=name.endswith("onednn"),
        )
        counter = harness.PaddingCounter()
        counter.attach(clf.model)
        sort = "sorted" in name
        return {
            "stream": lambda texts: clf.stream(texts, ARGS.batch_size, sort=sort),
            "counters": [counter],
        }
    if name == "separate":
        pipes = harness.make_separate(model, groups, init, seed=ARGS.seed)
        counters = []
        for nlp in pipes:
            for hf in harness.hf_models(nlp):
                counters.append(harness.PaddingCounter())
                counters[-1].attach(hf)

        def separate(texts: Sequence[str]) -> Iterator[Any]:
            return zip(*(nlp.pipe(texts, batch_size=bs) for nlp in pipes))

        return {"stream": separate, "counters": counters}
    if name == "builtins":
        nlp = harness.make_builtins(model, groups, init, seed=ARGS.seed)
    elif name == "ours":
        nlp = harness.make_ours(model, groups, init, window=ARGS.window, seed=ARGS.seed)
    else:
        spans = "wordpiece" if "wordpiece" in name else "strided"
        nlp = harness.make_ours(
            model,
            groups,
            init,
            factory="transformer",
            spans=spans,
            window=ARGS.window,
            seed=ARGS.seed,
        )
    counter = harness.PaddingCounter()
    for hf in harness.hf_models(nlp):
        counter.attach(hf)
    if name.endswith("sorted"):
        return {
            "stream": lambda texts: iter_by_length(nlp, texts, batch_size=bs),
            "counters": [counter],
            "nlp": nlp,
        }
    return {
        "stream": lambda texts: nlp.pipe(texts, batch_size=bs),
        "counters": [counter],
        "nlp": nlp,
    }


def combined_padding(counters: List[Any]) -> Optional[float]:
    padded = sum(c.padded for c in counters)
    real = sum(c.real for c in counters)
    return round(padded / real, 3) if real else None


def run_section(
    names: List[str],
    texts: Sequence[str],
    model: str,
    device: str,
    init: Sequence[str],
    *,
    docs_per_batch: int,
    step: int,
    rounds: Sequence[tuple] = (),
    round_texts: Sequence[Sequence[str]] = (),
) -> Dict[str, Any]:
    """Build the contenders, warm them up, then run them in turns over `texts`, `step`
    docs per turn; then, for each pair in `rounds`, whole passes alternated over the
    samples of `round_texts`, one per round (run_rounds)."""
    built = {name: build(name, model, init, device, docs_per_batch) for name in names}
    warm = list(texts[: 2 * docs_per_batch])
    for parts in built.values():
        for _ in parts["stream"](warm):
            pass
        for counter in parts["counters"]:
            counter.padded = counter.real = counter.calls = 0
    contenders = [harness.Contender(name, built[name]["stream"]) for name in names]
    load_before = harness.load_avg()
    timed = harness.interleave(contenders, texts, step)
    for name in names:
        timed[name]["padding"] = combined_padding(built[name]["counters"])
    load_after = harness.load_avg()
    pairs = [(a, b) for a, b in rounds if a in built and b in built]
    return {
        "n_docs": len(texts),
        "docs_per_batch": docs_per_batch,
        "step": step,
        "wordpieces_per_doc": round(mean_wordpieces(model, texts), 1),
        "load_before": load_before,
        "load_after": load_after,
        "contenders": timed,
        "rounds": run_rounds(built, round_texts, pairs) if pairs and round_texts else {},
    }


def run_rounds(
    built: Dict[str, Dict[str, Any]],
    round_texts: Sequence[Sequence[str]],
    pairs: Sequence[tuple],
) -> Dict[str, Any]:
    """For each pair (a, b): one round per sample of its share of `round_texts` (the first
    len(round_texts) // len(pairs) samples for the first pair, and so on: no pair reruns
    text another has shown a contender), a whole pass of a then b over it, then b then a
    over the next, and so on. Per round, speed of a over b from wall-clock and from CPU
    time.

    Turns of `--step` docs cannot pair a contender that reads a buffer of docs ahead
    (mtl_transformer, pipe_by_length): it does a buffer's work in one turn and none in
    the next, so its turns reading is one block of minutes against the other's spread
    turns. Whole passes side by side pair them, at the cost of coarser pairing. Each
    round's sample is text neither side has seen (`harness.fresh_short_texts`): a spaCy
    pipeline pays for words it meets the first time (new lexemes), as in the turns,
    which a second pass over the same texts would hide."""
    out: Dict[str, Any] = {}
    share = len(round_texts) // max(1, len(pairs))
    for p, (a, b) in enumerate(pairs):
        samples = round_texts[p * share : (p + 1) * share]
        wall: List[float] = []
        cpu: List[float] = []
        for r, texts in enumerate(samples):
            spent = {}
            for name in (a, b) if r % 2 == 0 else (b, a):
                start, start_cpu = time.perf_counter(), time.process_time()
                for _ in built[name]["stream"](texts):
                    pass
                spent[name] = (time.perf_counter() - start, time.process_time() - start_cpu)
            wall.append(round(spent[b][0] / spent[a][0], 4))
            cpu.append(round(spent[b][1] / spent[a][1], 4))
        out[f"{a}/{b}"] = {
            "wall": wall,
            "cpu": cpu,
            "median_wall": round(harness.median(wall), 3),
            "median_cpu": round(harness.median(cpu), 3),
            "mean_sd_wall": harness.mean_sd(wall),
            "docs_per_round": [len(texts) for texts in samples],
            "fresh_texts": True,
            "load_after": harness.load_avg(),
        }
    return out


def mean_wordpieces(model: str, texts: Sequence[str]) -> float:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model, use_fast=True)
    ids = tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
    return sum(len(x) for x in ids) / max(1, len(ids))


def add_ratios(
    section: Dict[str, Any], pairs: Dict[str, List[str]], paired: Sequence[tuple] = ()
) -> None:
    """ratios["a/b"] = docs/s of a over docs/s of b, all measured in this run; the same
    from CPU seconds (process time) in cpu_ratios["a/b"], which other jobs on the machine
    disturb much less; for pairs that did the same docs in each turn, the median of the
    per-turn wall-clock ratios in paired_ratios["a/b"]; and the medians over whole-pass
    rounds (run_rounds) in round_ratios / round_cpu_ratios."""
    contenders = section["contenders"]
    docs_per_s = {name: c["docs_per_s"] for name, c in contenders.items()}
    section["ratios"] = {
        f"{a}/{b}": harness.ratio(docs_per_s.get(a), docs_per_s.get(b))
        for a, bs in pairs.items()
        for b in bs
        if a in docs_per_s and b in docs_per_s
    }
    cpu = {name: c["cpu_seconds"] for name, c in contenders.items()}
    section["cpu_ratios"] = {
        f"{a}/{b}": harness.ratio(cpu.get(b), cpu.get(a))
        for a, bs in pairs.items()
        for b in bs
        if a in cpu and b in cpu
    }
    section["paired_ratios"] = {
        f"{a}/{b}": harness.paired_median(contenders[a]["turns"], contenders[b]["turns"])
        for a, b in paired
        if a in contenders and b in contenders
    }
    rounds = section.get("rounds") or {}
    section["round_ratios"] = {key: row["median_wall"] for key, row in rounds.items()}
    section["round_cpu_ratios"] = {key: row["median_cpu"] for key, row in rounds.items()}


def run_scaling(model: str, device: str, texts: Sequence[str]) -> Dict[str, Any]:
    """Docs/s of transformer + mtl_textcat as groups and labels grow, and the time of the
    mtl_textcat component alone (on docs whose transformer output is already computed)."""
    grid = scaling_grid(ARGS.scaling)
    pipes = {}
    for point in grid:
        key = f"{point['groups']}x{point['labels']}"
        groups = harness.group_config(point["groups"], point["labels"])
        pipes[key] = harness.make_ours(model, groups, texts[:16])
    bs = ARGS.batch_size
    for nlp in pipes.values():
        for _ in nlp.pipe(texts[: 2 * bs], batch_size=bs):
            pass
    contenders = [
        harness.Contender(key, lambda t, nlp=nlp: nlp.pipe(t, batch_size=bs))
        for key, nlp in pipes.items()
    ]
    load_before = harness.load_avg()
    timed = harness.interleave(contenders, texts, ARGS.step)
    # The head alone: run the transformer once, then time mtl_textcat's predict and
    # set_annotations on those docs (the transformer output stays on the docs).
    heads: Dict[str, Dict[str, float]] = {}
    first = next(iter(pipes.values()))
    with first.select_pipes(enable=["transformer"]):
        docs = list(first.pipe(texts, batch_size=bs))
    batches = [docs[i : i + bs] for i in range(0, len(docs), bs)]
    for key, nlp in pipes.items():
        component = nlp.get_pipe("mtl_textcat")
        predict = annotate = 0.0
        for batch in batches:
            start = time.perf_counter()
            scores = component.predict(batch)
            middle = time.perf_counter()
            component.set_annotations(batch, scores)
            annotate += time.perf_counter() - middle
            predict += middle - start
        heads[key] = {
            "predict": round(1000 * predict / len(docs), 4),
            "set_annotations": round(1000 * annotate / len(docs), 4),
        }
    points = []
    for point in grid:
        key = f"{point['groups']}x{point['labels']}"
        points.append(
            {
                **point,
                "docs_per_s": timed[key]["docs_per_s"],
                "seconds": timed[key]["seconds"],
                "head_ms_per_doc": round(sum(heads[key].values()), 4),
                "head_predict_ms_per_doc": heads[key]["predict"],
                "head_set_annotations_ms_per_doc": heads[key]["set_annotations"],
            }
        )
    base = points[0]["docs_per_s"] if points else None
    for point in points:
        point["relative_docs_per_s"] = harness.ratio(point["docs_per_s"], base)
    return {
        "n_docs": len(texts),
        "load_before": load_before,
        "load_after": harness.load_avg(),
        "points": points,
    }


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


def run_latency(model: str, device: str, texts: Sequence[str]) -> Dict[str, Any]:
    """Single-doc latency: `nlp(text)` (the pipeline as shipped) against a raw Hugging Face
    forward of one text (tokenizer + AutoModel under inference_mode, nothing else), text by
    text in turns (which goes first rotates), so both see the same load. A third side, the
    raw forward through oneDNN linear layers as ours runs them on CPU, separates what the
    kernels gain from what the pipeline costs."""
    import torch

    from spacy_mtl.trf.onednn import onednn_available, packed_clone

    root = harness.data_dir()
    groups = harness.benchmark_groups(root)
    nlp = harness.make_ours(model, groups, texts[:16], window=ARGS.window, seed=ARGS.seed)
    clf = harness.TorchClassifier(model, groups, device=device, window=ARGS.window)
    tokenizer, hf = clf.tokenizer, clf.model
    packed = packed_clone(hf) if device == "cpu" and onednn_available() else hf

    def forward(encoder: Any) -> Callable[[str], None]:
        def raw(text: str) -> None:
            with torch.inference_mode():
                inputs = tokenizer(text, return_tensors="pt", truncation=True).to(device)
                encoder(**inputs)

        return raw

    def ours(text: str) -> None:
        nlp(text)

    sides = [("ours", ours), ("raw_hf", forward(hf)), ("raw_hf_onednn", forward(packed))]
    for text in texts[:20]:
        for _, call in sides:
            call(text)
    times: Dict[str, List[float]] = {name: [] for name, _ in sides}
    load_before = harness.load_avg()
    for i, text in enumerate(texts):
        k = i % len(sides)
        for name, call in sides[k:] + sides[:k]:
            start = time.perf_counter()
            call(text)
            times[name].append(1000 * (time.perf_counter() - start))
    out: Dict[str, Any] = {"n_docs": len(texts), "load_before": load_before}
    for name, values in times.items():
        out[name] = {
            "p50_ms": round(percentile(values, 0.5), 3),
            "p95_ms": round(percentile(values, 0.95), 3),
            "mean_ms": round(sum(values) / len(values), 3),
        }
    for suffix, raw_name in (("", "raw_hf"), ("_onednn", "raw_hf_onednn")):
        for q in ("p50", "p95"):
            out[f"ratio_{q}{suffix}"] = harness.ratio(
                out["ours"][f"{q}_ms"], out[raw_name][f"{q}_ms"]
            )
        # Per text, ours over raw: the median is steadier under load than a ratio of medians.
        per_text = [a / b for a, b in zip(times["ours"], times[raw_name]) if b > 0]
        out[f"paired_median_ratio{suffix}"] = (
            round(harness.median(per_text), 3) if per_text else None
        )
    out["load_after"] = harness.load_avg()
    return out


def worker(name: str, model: str, device: str) -> Dict[str, Any]:
    """Child process: build one contender, run it over --rss-texts texts, report memory."""
    root = harness.data_dir()
    texts = harness.short_texts(root, ARGS.rss_texts, seed=ARGS.seed)
    after_import = harness.peak_rss_mb()
    if ARGS.worker_groups:
        point = scaling_grid(ARGS.worker_groups)[0]
        groups = harness.group_config(point["groups"], point["labels"])
        nlp = harness.make_ours(model, groups, texts[:16])

        def stream(t: Sequence[str]) -> Iterator[Any]:
            return nlp.pipe(t, batch_size=ARGS.batch_size)
    else:
        stream = build(name, model, texts[:16], device)["stream"]
    after_build = harness.peak_rss_mb()
    start = time.perf_counter()
    for _ in stream(texts):
        pass
    return {
        "contender": name,
        "grid": ARGS.worker_groups,
        "n_docs": len(texts),
        "seconds": round(time.perf_counter() - start, 3),
        "rss_after_import_mb": round(after_import, 1),
        "rss_after_build_mb": round(after_build, 1),
        "peak_rss_mb": round(harness.peak_rss_mb(), 1),
    }


def spawn_worker(name: str, model: str, groups: Optional[str] = None) -> Dict[str, Any]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        name,
        "--model",
        model,
        "--threads",
        str(ARGS.threads),
        "--batch-size",
        str(ARGS.batch_size),
        "--rss-texts",
        str(ARGS.rss_texts),
        "--gpu-id",
        str(ARGS.gpu_id),
        "--seed",
        str(ARGS.seed),
    ]
    if groups:
        cmd += ["--worker-groups", groups]
    done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if done.returncode != 0:
        raise RuntimeError(f"memory worker {name} {groups or ''} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


SHORT = [
    "ours",
    "ours_stock",
    "ours_sorted",
    "limit",
    "limit_sorted",
    "limit_sorted_onednn",
    "builtins",
    "separate",
]
LONG = ["ours", "ours_stock", "ours_wordpiece", "limit", "limit_sorted", "limit_sorted_onednn"]
# The default path against the sorted loop, in whole passes (see run_rounds); and against
# the sorted loop with the same oneDNN linear layers, which separates what the kernels gain
# from what the pipeline costs.
ROUNDS = [("ours", "limit_sorted"), ("ours", "limit_sorted_onednn")]
MEMORY = ["ours", "builtins", "separate", "limit"]


def chosen(names: List[str]) -> List[str]:
    if ARGS.contenders == "all":
        return names
    wanted = {name.strip() for name in ARGS.contenders.split(",")}
    return [name for name in names if name in wanted]


def main() -> None:
    model = ARGS.model or harness.default_model()
    device = harness.use_device(ARGS.gpu_id)
    if ARGS.worker:
        print(json.dumps(worker(ARGS.worker, model, device)))
        return
    root = harness.data_dir()
    started = time.time()
    result: Dict[str, Any] = {
        **harness.result_header("inference", ARGS, model, device),
        "batch_size": ARGS.batch_size,
        "window": ARGS.window,
        "step": ARGS.step,
        "seed": ARGS.seed,
    }
    texts = harness.short_texts(root, ARGS.n_texts, seed=ARGS.seed)
    init = texts[:16]
    msg.info(f"Short texts: {len(texts)} (GoEmotions test + Davidson), {len(SHORT)} contenders")
    short = run_section(
        chosen(SHORT),
        texts,
        model,
        device,
        init,
        docs_per_batch=ARGS.batch_size,
        step=ARGS.step,
        rounds=ROUNDS,
        round_texts=harness.fresh_short_texts(
            root, len(texts), ARGS.rounds * len(ROUNDS), seed=ARGS.seed
        ),
    )
    add_ratios(
        short,
        {
            "ours": [
                "limit",
                "limit_sorted",
                "limit_sorted_onednn",
                "builtins",
                "separate",
                "ours_stock",
            ],
            "ours_stock": ["limit", "limit_sorted", "builtins", "separate"],
            "ours_sorted": ["limit", "limit_sorted", "builtins", "separate"],
            "builtins": ["limit", "limit_sorted"],
            "separate": ["limit", "limit_sorted"],
        },
        # Only contenders that do each turn's docs in that turn (no read-ahead buffer).
        paired=[
            ("ours_stock", "limit"),
            ("builtins", "limit"),
            ("separate", "limit"),
            ("ours_stock", "separate"),
        ],
    )
    result["short"] = short
    report(short, "short texts")
    if ARGS.n_long > 0:
        long = harness.long_texts(root, ARGS.n_long, ARGS.long_words, seed=ARGS.seed)
        msg.info(f"Long texts: {len(long)} of ~{ARGS.long_words} words, {len(LONG)} contenders")
        section = run_section(
            chosen(LONG),
            long,
            model,
            device,
            init,
            docs_per_batch=ARGS.long_batch_size,
            step=ARGS.long_batch_size,
            rounds=ROUNDS,
            round_texts=[
                harness.long_texts(root, ARGS.n_long, ARGS.long_words, pool=pool)
                for pool in harness.fresh_short_texts(
                    root, 2400, ARGS.rounds * len(ROUNDS), seed=ARGS.seed + 1
                )
            ],
        )
        add_ratios(
            section,
            {
                name: ["limit", "limit_sorted", "limit_sorted_onednn"]
                for name in LONG
                if not name.startswith("limit")
            },
            paired=[("ours_stock", "limit"), ("ours_wordpiece", "limit")],
        )
        result["long"] = section
        result["long"]["words"] = ARGS.long_words
        report(section, "long texts")
    if ARGS.profile:
        msg.info("Profiling ours (cProfile)")
        result["profile"] = {}
        parts = build("ours", model, init, device)
        sample = texts[:512]
        result["profile"]["short"] = harness.profile(lambda: list(parts["stream"](sample)))
        result["profile"]["short"]["n_docs"] = len(sample)
        if ARGS.n_long > 0:
            parts = build("ours", model, init, device, ARGS.long_batch_size)
            sample = harness.long_texts(root, min(ARGS.n_long, 24), ARGS.long_words)
            result["profile"]["long"] = harness.profile(lambda: list(parts["stream"](sample)))
            result["profile"]["long"]["n_docs"] = len(sample)
        for name, prof in result["profile"].items():
            for category, row in prof["by_category"].items():
                print(f"  {name}: {row['share']:7.2%} {category}")
    if ARGS.latency_texts > 0:
        msg.info(f"Single-doc latency: nlp(text) vs a raw HF forward, {ARGS.latency_texts} texts")
        result["latency"] = run_latency(model, device, texts[: ARGS.latency_texts])
        lat = result["latency"]
        print(
            f"  p50 {lat['ours']['p50_ms']} vs {lat['raw_hf']['p50_ms']} ms "
            f"({lat['ratio_p50']}x), p95 {lat['ours']['p95_ms']} vs {lat['raw_hf']['p95_ms']} "
            f"ms ({lat['ratio_p95']}x), paired median {lat['paired_median_ratio']}x; "
            f"vs the raw forward through oneDNN: p50 {lat['ratio_p50_onednn']}x, "
            f"p95 {lat['ratio_p95_onednn']}x"
        )
    if ARGS.scaling:
        msg.info(f"Scaling in groups x labels: {ARGS.scaling}")
        result["scaling"] = run_scaling(model, device, texts[: ARGS.scale_texts])
        for point in result["scaling"]["points"]:
            print(
                f"  {point['groups']:>3} groups {point['labels']:>5} labels: "
                f"{point['docs_per_s']:8.1f} docs/s ({point['relative_docs_per_s']}x), "
                f"head {point['head_ms_per_doc']} ms/doc"
            )
    if not ARGS.no_rss:
        msg.info(f"Peak memory, one subprocess per contender ({ARGS.rss_texts} texts)")
        memory = {name: spawn_worker(name, model) for name in chosen(MEMORY)}
        grid = []
        for point in scaling_grid(ARGS.scaling):
            spec = f"{point['groups']}x{point['labels']}"
            grid.append({**point, **spawn_worker("ours", model, spec)})
        result["memory"] = {"contenders": memory, "scaling": grid}
        for name, row in memory.items():
            print(f"  {name:>10}: peak RSS {row['peak_rss_mb']:.0f} MB")
        for row in grid:
            print(f"  ours {row['groups']}x{row['labels']}: peak RSS {row['peak_rss_mb']:.0f} MB")
    harness.finish(result, started, ARGS.out, "inference")


def report(section: Dict[str, Any], title: str) -> None:
    rows = [
        (name, c["docs_per_s"], c["seconds"], c["padding"])
        for name, c in section["contenders"].items()
    ]
    msg.table(rows, header=("contender", "docs/s", "seconds", "padding"), divider=True)
    for key, value in section["ratios"].items():
        paired = section["paired_ratios"].get(key)
        rounds = section["round_ratios"].get(key)
        extra = f", CPU time {section['cpu_ratios'].get(key)}"
        extra += f", paired median {paired}" if paired is not None else ""
        if rounds is not None:
            extra += f", rounds {rounds} (CPU {section['round_cpu_ratios'][key]})"
        print(f"  {title}: {key} = {value}{extra}")
    print(f"  load: {section['load_before']} -> {section['load_after']}")


if __name__ == "__main__":
    main()
