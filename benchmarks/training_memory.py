"""Training memory: resident memory over the steps of a real `spacy train` run against a
hand-written PyTorch loop doing the same work (issue 28).

    python benchmarks/training_memory.py --corpus /tmp/mem/corpus --steps 300
    python benchmarks/training_memory.py --corpus /tmp/mem/corpus --steps 30 --sides spacy \
        --variants glibc,trim          # the allocator variants side by side, one at a time

--corpus holds train/ and dev/ folders of .spacy files (`spacy-mtl convert`, then
scripts/sample_corpus.py: the demo's corpus with a smaller dev set). The spaCy side runs
`spacy train configs/cpu.cfg` in a subprocess with this file as `--code`: a
`[training.before_update]` callback records, every --every updates, VmRSS, the peak VmRSS
since the last record (a sampler thread reads /proc/self/status twice a second, so the
evaluations show) and glibc's own account (`mallinfo2`: bytes in use vs. bytes the heap
holds free), and at a few steps a census of live torch tensors and numpy arrays. The torch
side is a plain loop in its own subprocess: same corpus, same batches (the mixed batcher,
32 docs, length-bucketed), MiniLM + one linear head per group, masked BCE / CE, AdamW, clip
1.0, and an eval pass over the same dev docs (batches of 64) at the same steps.

Variants (of the allocator, on either side): `glibc` (nothing set), `trim` (spaCy side:
the config's `spacy-mtl.release_memory.v1` callback; torch side: the same malloc_trim call
in the loop), `notrim` (spaCy side with the callback removed from the config), `arena2`
(MALLOC_ARENA_MAX=2), `mmap` (MALLOC_MMAP_THRESHOLD_=131072, which turns off glibc's
sliding threshold), `jemalloc` (LD_PRELOAD libjemalloc.so.2).
"""

import argparse
import atexit
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from spacy.util import registry

ROOT = Path(__file__).resolve().parent.parent
# This checkout's spacy_mtl (run as a script, the folder of this file comes first); the
# import registers spacy-mtl.release_memory.v1 when this file is `spacy train --code`.
sys.path.insert(0, str(ROOT))
import spacy_mtl.training.memory  # noqa: E402,F401

JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
ENV_VARIANTS: Dict[str, Dict[str, str]] = {
    "glibc": {},
    "trim": {},
    "notrim": {},
    "arena2": {"MALLOC_ARENA_MAX": "2"},
    "mmap": {"MALLOC_MMAP_THRESHOLD_": "131072"},
    "jemalloc": {"LD_PRELOAD": JEMALLOC},
    "mmap4m": {"MALLOC_MMAP_THRESHOLD_": str(4 * 2**20)},
    # The mapped blocks in transparent huge pages (glibc >= 2.35, THP "madvise" or "always").
    "mmap-thp": {"MALLOC_MMAP_THRESHOLD_": "131072", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"},
    "mmap-torch-thp": {"MALLOC_MMAP_THRESHOLD_": "131072", "THP_MEM_ALLOC_ENABLE": "1"},
}


# -- the probe (imported by `spacy train --code`) ------------------------------------------


def rss_mb() -> float:
    """Resident memory of this process now, MB (VmRSS)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def malloc_account() -> Dict[str, float]:
    """glibc's mallinfo2: MB the heaps hold, MB in use, MB free inside them (empty under
    jemalloc or where glibc has no mallinfo2)."""
    import ctypes

    if "jemalloc" in os.environ.get("LD_PRELOAD", ""):
        return {}
    fields = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks")
    fields += ("uordblks", "fordblks", "keepcost")

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in fields]

    libc = ctypes.CDLL("libc.so.6")
    if not hasattr(libc, "mallinfo2"):
        return {}
    libc.mallinfo2.restype = MallInfo2
    info = libc.mallinfo2()
    mb = 1024 * 1024
    return {
        "heap_mb": round(info.arena / mb, 1),
        "mmapped_mb": round(info.hblkhd / mb, 1),
        "in_use_mb": round((info.uordblks + info.hblkhd) / mb, 1),
        "free_in_heap_mb": round(info.fordblks / mb, 1),
    }


def census() -> Dict[str, Any]:
    """Live torch tensors and numpy arrays (count, MB of distinct storage) and gc objects."""
    import gc
    import warnings

    import numpy
    import torch

    gc.collect()
    n_tensors = n_arrays = 0
    tensor_bytes = array_bytes = 0
    storages = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        objects = gc.get_objects()
        for obj in objects:
            if isinstance(obj, torch.Tensor):
                n_tensors += 1
                try:
                    storage = obj.untyped_storage()
                except (NotImplementedError, RuntimeError):
                    # oneDNN's packed weights (OpaqueTensorImpl) expose no storage.
                    continue
                if storage.data_ptr() not in storages:
                    storages.add(storage.data_ptr())
                    tensor_bytes += storage.nbytes()
            elif isinstance(obj, numpy.ndarray):
                n_arrays += 1
                if obj.base is None:
                    array_bytes += obj.nbytes
    mb = 1024 * 1024
    return {
        "tensors": n_tensors,
        "tensor_mb": round(tensor_bytes / mb, 1),
        "arrays": n_arrays,
        "array_mb": round(array_bytes / mb, 1),
        "objects": len(objects),
    }


class Probe:
    """Step records to a JSON-lines file; a thread keeps the peak RSS between records."""

    def __init__(self, path: Path, every: int, census_steps: List[int]) -> None:
        # Open for the life of the process (a training run): records are flushed one by one.
        self.out = open(path, "w", encoding="utf8")  # noqa: SIM115
        self.every = every
        self.census_steps = set(census_steps)
        self.peak = 0.0
        self.peak_in_use = 0.0
        self.started = time.time()
        self.lock = threading.Lock()
        threading.Thread(target=self._sample, daemon=True).start()
        self.calls = 0
        # The last evaluation runs after the last update: record its peak at exit (step -1),
        # from the probe that training called (spaCy may build the callback more than once).
        atexit.register(lambda: self.calls and self(-1))

    def _sample(self) -> None:
        while True:
            value = rss_mb()
            in_use = malloc_account().get("in_use_mb", 0.0)
            with self.lock:
                self.peak = max(self.peak, value)
                self.peak_in_use = max(self.peak_in_use, in_use)
            time.sleep(0.5)

    def __call__(self, step: int, **extra: Any) -> None:
        self.calls += step >= 0
        if step >= 0 and step % self.every and step not in self.census_steps:
            return
        now = rss_mb()
        account = malloc_account()
        with self.lock:
            peak, self.peak = max(self.peak, now), now
            in_use = account.get("in_use_mb", 0.0)
            peak_in_use, self.peak_in_use = max(self.peak_in_use, in_use), in_use
        record = {
            "step": step,
            "last_batch": dict(BATCH),
            "seconds": round(time.time() - self.started, 1),
            "rss_mb": round(now, 1),
            "peak_since_last_mb": round(peak, 1),
            **account,
            "peak_in_use_since_last_mb": round(peak_in_use, 1),
            **extra,
        }
        if step in self.census_steps:
            record.update(census())
        self.out.write(json.dumps(record) + "\n")
        self.out.flush()


# The batch of the update under way (docs, characters, the longest doc's characters): the
# probe records it with each step, to tell which batches the memory follows.
BATCH: Dict[str, int] = {}


def watch_batches() -> None:
    """Wrap `Language.update` so that each record names the batch of its step."""
    from spacy.language import Language

    update = Language.update

    def watched(self: Any, examples: Any, *args: Any, **kwargs: Any) -> Any:
        examples = list(examples)
        lengths = [len(eg.reference.text) for eg in examples]
        BATCH.update(docs=len(lengths), chars=sum(lengths), longest=max(lengths, default=0))
        return update(self, examples, *args, **kwargs)

    Language.update = watched  # type: ignore[method-assign]


def probe_from_env() -> Probe:
    steps = [int(s) for s in os.environ.get("MEM_PROBE_CENSUS", "").split(",") if s]
    return Probe(Path(os.environ["MEM_PROBE_OUT"]), int(os.environ["MEM_PROBE_EVERY"]), steps)


@registry.callbacks("spacy-mtl-bench.memory_probe.v1")
def make_memory_probe(
    inner: Optional[Callable[[Any, Dict[str, Any]], None]] = None,
) -> Callable[[Any, Dict[str, Any]], None]:
    """`[training.before_update]` callback: the probe, then the config's own callback."""
    probe = probe_from_env()
    watch_batches()

    def before_update(nlp: Any, info: Dict[str, Any]) -> None:
        if inner is not None:
            inner(nlp, info)
        probe(info["step"])

    return before_update


# -- the hand-written loop ---------------------------------------------------------------


def torch_worker(args: argparse.Namespace) -> None:
    """The same work as `spacy train` in plain PyTorch, recorded by the same probe."""
    import random

    import spacy
    import torch
    from spacy.util import load_config
    from transformers import AutoModel, AutoTokenizer

    from spacy_mtl.training.batchers import MixedBatcher, create_dataset_corpus
    from spacy_mtl.training.memory import release_memory
    from spacy_mtl.util import make_minilm_path

    probe = probe_from_env()
    random.seed(0)
    torch.manual_seed(0)
    config = load_config(ROOT / "configs" / "cpu.cfg", interpolate=False)
    groups = {k: dict(v) for k, v in config["components"]["mtl_textcat"]["groups"].items()}
    nlp = spacy.blank("en")
    train = list(create_dataset_corpus(args.corpus / "train")(nlp))
    dev_texts = [eg.reference.text for eg in create_dataset_corpus(args.corpus / "dev")(nlp)]
    random.shuffle(train)
    batches = MixedBatcher(size=32, seed=0, verbose=False)(train)
    model = make_minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(model, use_fast=True)
    encoder = AutoModel.from_pretrained(model)
    width = encoder.config.hidden_size
    heads = torch.nn.ModuleDict(
        {name: torch.nn.Linear(width, len(cfg["labels"])) for name, cfg in groups.items()}
    )
    dropout = torch.nn.Dropout(0.1)
    params = list(encoder.parameters()) + list(heads.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
    interval = max(1, args.steps // args.evals)

    def pooled(texts: List[str]) -> torch.Tensor:
        batch = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
        hidden = encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1)

    def evaluate() -> None:
        encoder.eval()
        order = sorted(dev_texts, key=len)
        with torch.inference_mode():
            for i in range(0, len(order), 64):
                x = pooled(order[i : i + 64])
                for head in heads.values():
                    torch.sigmoid(head(x))
        encoder.train()

    def loss_of(examples: List[Any], x: torch.Tensor) -> torch.Tensor:
        loss = x.new_zeros(())
        for name, cfg in groups.items():
            keys = [f"{name}/{label}" for label in cfg["labels"]]
            cats = [eg.reference.cats for eg in examples]
            logits = heads[name](x)
            if cfg["kind"] == "multiclass":
                gold = [
                    next((j for j, k in enumerate(keys) if c.get(k) == 1.0), -100) for c in cats
                ]
                target = torch.tensor(gold)
                if (target >= 0).any():
                    each = torch.nn.functional.cross_entropy(logits, target, ignore_index=-100)
                    loss = loss + cfg.get("weight", 1.0) * each
            else:
                y = torch.tensor([[c.get(k, 0.0) for k in keys] for c in cats])
                m = torch.tensor([[float(k in c) for k in keys] for c in cats])
                if m.sum() > 0:
                    each = torch.nn.functional.binary_cross_entropy_with_logits(
                        logits, y, reduction="none"
                    )
                    loss = loss + cfg.get("weight", 1.0) * (each * m).sum() / m.sum()
        return loss

    encoder.train()
    for step, examples in enumerate(batches):
        if step > args.steps:
            break
        if args.variant == "trim":
            release_memory(step, every=args.trim_every)
        probe(step)
        x = dropout(pooled([eg.reference.text for eg in examples]))
        loss = loss_of(examples, x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        # spaCy evaluates after update `step` when step % interval == 0 (0 included).
        if step % interval == 0:
            evaluate()


# -- the driver --------------------------------------------------------------------------


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="folder with train/, dev/")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--evals", type=int, default=2, help="as the config's eval_frequency")
    parser.add_argument("--every", type=int, default=10, help="updates between records")
    parser.add_argument("--census", default="", help="steps with a tensor census, e.g. 0,100")
    parser.add_argument("--sides", default="spacy,torch")
    parser.add_argument("--variants", default="glibc", help=f"of {','.join(ENV_VARIANTS)}")
    parser.add_argument("--trim-every", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "cpu.cfg")
    parser.add_argument("--work", type=Path, default=Path("/tmp/training_memory"))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="glibc", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def spacy_config(args: argparse.Namespace, variant: str, path: Path) -> Path:
    """The training config with the probe wrapped around its own before_update callback."""
    from spacy.util import load_config

    config = load_config(args.config, interpolate=False)
    inner = config["training"].get("before_update")
    if variant == "notrim":
        inner = None
    elif variant == "trim":
        inner = {"@callbacks": "spacy-mtl.release_memory.v1", "every": args.trim_every}
    config["training"]["before_update"] = {
        "@callbacks": "spacy-mtl-bench.memory_probe.v1",
        "inner": inner,
    }
    config.to_disk(path)
    return path


def run_side(
    args: argparse.Namespace, side: str, variant: str
) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    work = args.work / f"{side}-{variant}"
    work.mkdir(parents=True, exist_ok=True)
    records = work / "probe.jsonl"
    env = {**os.environ, **ENV_VARIANTS[variant]}
    env.update(MEM_PROBE_OUT=str(records), MEM_PROBE_EVERY=str(args.every))
    env["MEM_PROBE_CENSUS"] = args.census
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
        env[var] = str(args.threads)
    env["PYTHONPATH"] = str(ROOT)
    if side == "spacy":
        cfg = spacy_config(args, variant, work / "config.cfg")
        cmd = [sys.executable, "-m", "spacy", "train", str(cfg), "--code", __file__]
        cmd += ["--output", str(work / "model"), "--paths.train", str(args.corpus / "train")]
        cmd += ["--paths.dev", str(args.corpus / "dev"), "--training.max_steps", str(args.steps)]
        cmd += ["--training.eval_frequency.evals", str(args.evals)]
    else:
        cmd = [sys.executable, __file__, "--worker", "torch", "--variant", variant]
        cmd += ["--corpus", str(args.corpus), "--steps", str(args.steps)]
        cmd += ["--evals", str(args.evals), "--trim-every", str(args.trim_every)]
    started = time.time()
    with open(work / "log.txt", "w", encoding="utf8") as log:
        done = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise RuntimeError(f"{side} {variant} failed; see {work / 'log.txt'}")
    rows = [json.loads(line) for line in records.read_text().splitlines()]
    return {"side": side, "variant": variant, "seconds": round(time.time() - started, 1)}, rows


def summarize(rows: List[Dict[str, Any]], steps: int) -> Dict[str, Any]:
    """Peak RSS overall and over the first 50 updates, and the slope of the RSS between
    evaluations (least squares over records after step 50), extrapolated to 1,200 updates."""
    peak = max(r["peak_since_last_mb"] for r in rows)
    early = max(r["peak_since_last_mb"] for r in rows if 0 <= r["step"] <= 50)
    late = [(r["step"], r["rss_mb"]) for r in rows if r["step"] > 50]
    slope = 0.0
    if len(late) >= 2:
        mean_x = sum(x for x, _ in late) / len(late)
        mean_y = sum(y for _, y in late) / len(late)
        var = sum((x - mean_x) ** 2 for x, _ in late)
        slope = sum((x - mean_x) * (y - mean_y) for x, y in late) / var if var else 0.0
    return {
        "peak_rss_mb": round(peak, 1),
        "peak_rss_first_50_mb": round(early, 1),
        "rss_slope_mb_per_100_updates": round(100 * slope, 1),
        "extrapolated_peak_at_1200_mb": round(peak + max(slope, 0.0) * (1200 - steps), 1),
    }


def main() -> None:
    args = parse_args()
    if args.worker == "torch":
        sys.path.insert(0, str(ROOT))
        torch_worker(args)
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import harness

    started = time.time()
    result: Dict[str, Any] = {
        **harness.result_header("training_memory", args, harness.default_model(), "cpu"),
        "runs": [],
    }
    for variant in args.variants.split(","):
        for side in args.sides.split(","):
            info, rows = run_side(args, side, variant)
            info.update(summarize(rows, args.steps))
            info["records"] = rows
            result["runs"].append(info)
            print(
                f"  {side:>5} {variant:>8}: peak {info['peak_rss_mb']:7.0f} MB "
                f"(first 50 updates {info['peak_rss_first_50_mb']:.0f}), slope "
                f"{info['rss_slope_mb_per_100_updates']:+.0f} MB/100 updates, "
                f"~{info['extrapolated_peak_at_1200_mb']:.0f} MB at 1,200"
            )
    harness.finish(result, started, args.out, "training_memory")


if __name__ == "__main__":
    main()
