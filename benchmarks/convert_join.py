"""`spacy-mtl convert` with a label file joined by key, against the same rows with the
label in the input file: rows/s and peak memory, side by side.

    python benchmarks/convert_join.py                  # 1,000,000 rows (~5 min on 2 cores)
    python benchmarks/convert_join.py --rows 2000 --out /tmp/cj.json    # smoke

Generated in a temporary folder (`--keep DIR` keeps them there):

* join:  `test.tsv` (id<TAB>text, header) + `test.labels.csv` (`id,label`, header) with a
  label for 9 rows in 10, in another order than the texts (a key join reads the label file
  into an index, then streams the texts);
* plain: `test.tsv` (id<TAB>text<TAB>label): the same rows with the label in the input,
  an empty cell where the label file has no row.

Each conversion runs as its own `python -m spacy_mtl convert` subprocess, started by a
small wrapper process that reports the wrapper's `RUSAGE_CHILDREN` `ru_maxrss`: the peak
resident memory of the convert process alone. Times are wall-clock seconds of the whole
command (Python start, spaCy import and writing the .spacy files included).
"""

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["neg", "neu", "pos"]
WORDS = (
    "the a movie film plot actor great bad boring loved hated scene music story ending "
    "fun slow long short funny sad dark bright old new really quite very not never always"
).split()
# Runs `argv[1:]` and prints its peak RSS (KB on Linux) and exit status as JSON.
WRAPPER = (
    "import json, resource, subprocess, sys\n"
    "rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
    "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(json.dumps({'rc': rc, 'maxrss_kb': usage.ru_maxrss, 'cpu_s': usage.ru_utime + "
    "usage.ru_stime}))\n"
)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shard-size", type=int, default=50_000)
    parser.add_argument("--keep", type=Path, default=None, help="write the files here")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "convert_join.json"
    )
    return parser.parse_args(argv)


def generate(folder: Path, n: int, seed: int) -> Dict[str, int]:
    """Write both layouts, streaming (this process stays small); return label counts."""
    rng = random.Random(seed)
    (folder / "join").mkdir(parents=True, exist_ok=True)
    (folder / "plain").mkdir(parents=True, exist_ok=True)
    labels: List[int] = []  # one byte-sized code per row: -1 = no label
    counts = {label: 0 for label in LABELS}
    with (
        (folder / "join" / "test.tsv").open("w", encoding="utf-8") as texts,
        (folder / "plain" / "test.tsv").open("w", encoding="utf-8") as plain,
    ):
        texts.write("id\ttext\n")
        plain.write("id\ttext\tlabel\n")
        for i in range(n):
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 20)))
            code = rng.randrange(len(LABELS)) if rng.random() < 0.9 else -1
            labels.append(code)
            label = LABELS[code] if code >= 0 else ""
            if label:
                counts[label] += 1
            texts.write(f"r{i}\t{text}\n")
            plain.write(f"r{i}\t{text}\t{label}\n")
    # Another order for the label file: a fixed permutation i -> (a*i + b) mod n.
    step = next(a for a in range(max(2, n // 3 + 1), 10 * n + 3) if _gcd(a, n) == 1)
    with (folder / "join" / "test.labels.csv").open("w", encoding="utf-8") as out:
        out.write("id,label\n")
        for j in range(n):
            i = (step * j + 7) % n
            if labels[i] >= 0:
                out.write(f"r{i},{LABELS[labels[i]]}\n")
    group = {"kind": "multiclass", "column": "label", "labels": LABELS}
    specs = {
        "join": {
            "format": "tsv",
            "join": [{"path": "{stem}.labels.csv", "key": "id"}],
            "groups": {"sentiment": group},
        },
        "plain": {"format": "tsv", "groups": {"sentiment": group}},
    }
    for name, spec in specs.items():
        (folder / f"{name}.json").write_text(json.dumps(spec), encoding="utf-8")
    return counts


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


def convert(folder: Path, name: str, shard_size: int) -> Dict[str, Any]:
    out = folder / f"out-{name}"
    cmd = [
        *(sys.executable, "-m", "spacy_mtl", "convert"),
        *(str(folder / name / "test.tsv"), str(out)),
        *("--spec", str(folder / f"{name}.json"), "--shard-size", str(shard_size)),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, *cmd],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - start
    report = json.loads(done.stdout)
    if report["rc"] != 0:
        raise SystemExit(f"{name}: convert exited with {report['rc']}: {' '.join(cmd)}")
    files = sorted(out.glob("*.spacy"))
    return {
        "seconds": round(wall, 2),
        "cpu_seconds": round(report["cpu_s"], 2),
        "peak_rss_mb": round(report["maxrss_kb"] / 1024, 1),
        "files": len(files),
        "output_mb": round(sum(p.stat().st_size for p in files) / 2**20, 1),
    }


def main(args: argparse.Namespace) -> Dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="convert-join-")) if args.keep is None else args.keep
    try:
        start = time.perf_counter()
        counts = generate(folder, args.rows, args.seed)
        generated = time.perf_counter() - start
        sizes = {
            path.relative_to(folder).as_posix(): round(path.stat().st_size / 2**20, 1)
            for path in sorted(folder.glob("*/test*"))
        }
        load_before = [round(x, 2) for x in os.getloadavg()]
        runs: Dict[str, Dict[str, Any]] = {}
        for name in ("plain", "join"):
            runs[name] = convert(folder, name, args.shard_size)
            runs[name]["rows_per_s"] = round(args.rows / runs[name]["seconds"])
        result = {
            "rows": args.rows,
            "labelled_rows": sum(counts.values()),
            "input_mb": sizes,
            "generate_seconds": round(generated, 1),
            "plain": runs["plain"],
            "join": runs["join"],
            "join_vs_plain": {
                "time": round(runs["join"]["seconds"] / runs["plain"]["seconds"], 2),
                "peak_rss_mb_more": round(
                    runs["join"]["peak_rss_mb"] - runs["plain"]["peak_rss_mb"], 1
                ),
            },
            "environment": {
                "python": platform.python_version(),
                "platform": platform.platform(),
                "cpu_count": os.cpu_count(),
                "load_avg_before": load_before,
                "load_avg_after": [round(x, 2) for x in os.getloadavg()],
            },
        }
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(parse_args())
