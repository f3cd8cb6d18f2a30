"""int8 on CPU: docs/s against the fp32 length-sorted loop, and test macro F1, per method.

    python benchmarks/quantize.py                      # the demo model (~40 min on 2 cores)
    python benchmarks/quantize.py --n-texts 64 --rounds 1 --test-limit 40 --no-retune \\
        --pipeline /tmp/model --model /tmp/tiny_bert   # smoke

Variants, all made from one trained fp32 pipeline (`--pipeline`, default
training/model-tuned) by putting an int8 encoder in its transformer, as `spacy-mtl
quantize` does when the result loads:
- fp32: the pipeline as trained (plain `nlp.pipe`, length-sorted by `mtl_transformer`);
- torch-tensor-7bit: torch dynamic int8, one weight scale per matrix, 7-bit activations
  (torch's defaults; `spacy-mtl quantize` before this benchmark);
- torch-channel-7bit: the same with a weight scale per output channel;
- torch: what `--method torch` gives now: per channel, 8-bit activations on AVX512-VNNI;
- torch-keep-ffn-out: `torch` with the feed-forward output layers left in fp32;
- onnx-tensor: ONNX Runtime's dynamic int8, a weight scale per matrix;
- onnx: what `--method onnx` gives (the default): ONNX Runtime, a scale per output channel.
Each is scored on the test corpus (`--test`, default corpus/full/test: every GoEmotions and
Davidson test doc) with the pipeline's tuned thresholds, and again after re-tuning
temperatures and thresholds on `--dev` (corpus/dev, the docs the fp32 pipeline was tuned on)
with the variant itself (`--no-retune` skips this).

Speed: the contenders (the variants above and `limit_sorted`, the hand-written fp32 PyTorch
loop of benchmarks/inference.py over the same architecture, all windows sorted by length)
make `--rounds` whole passes over `--n-texts` short texts each, in a rotating order, so
that other jobs on the machine weigh on all of them alike; per round, the ratio of each
contender's docs/s to the loop's (wall clock and CPU time), and the median over rounds.
"""

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pipeline", type=Path, default=ROOT / "training" / "model-tuned")
    parser.add_argument("--model", default=None, help="HF folder of the loop (default: MiniLM)")
    parser.add_argument("--test", type=Path, default=ROOT / "corpus" / "full" / "test")
    parser.add_argument("--dev", type=Path, default=ROOT / "corpus" / "dev")
    parser.add_argument("--test-limit", type=int, default=0, help="docs per test run (0: all)")
    parser.add_argument("--no-retune", action="store_true")
    parser.add_argument("--no-f1", action="store_true", help="speed only")
    parser.add_argument("--no-speed", action="store_true", help="F1 only")
    parser.add_argument("--variants", default="all", help="comma-separated subset")
    parser.add_argument("--n-texts", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gpu-id", type=int, default=-1, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    return parser.parse_args(argv)


ARGS = parse_args()
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

harness.set_threads(ARGS.threads)

import warnings  # noqa: E402

from wasabi import msg  # noqa: E402

warnings.filterwarnings("ignore", message=".*sequence length is longer.*")


def _torch(per_channel: bool, reduce_range: Optional[bool], keep: Sequence[str] = ()) -> Any:
    def make(fp32: Any) -> Any:
        from spacy_mtl.trf.torch_int8 import quantize_dynamic_int8

        return quantize_dynamic_int8(
            fp32, per_channel=per_channel, reduce_range=reduce_range, keep=keep
        )

    return make


def _onnx(per_channel: bool) -> Any:
    def make(fp32: Any) -> Any:
        from spacy_mtl.trf.onnx_encoder import export_int8, make_encoder

        return make_encoder(export_int8(fp32, per_channel=per_channel), fp32.config)

    return make


# The feed-forward output layers (BERT's `layer.N.output.dense`, not
# `layer.N.attention.output.dense`): the layers int8 hurt most on the demo model (README).
FFN_OUT = tuple(f"layer.{i}.output.dense" for i in range(48))
VARIANTS: Dict[str, Optional[Callable[[Any], Any]]] = {
    "fp32": None,
    "torch-tensor-7bit": _torch(False, True),
    "torch-channel-7bit": _torch(True, True),
    "torch": _torch(True, None),
    "torch-keep-ffn-out": _torch(True, None, FFN_OUT),
    "onnx-tensor": _onnx(False),
    "onnx": _onnx(True),
}


def load_variant(name: str) -> Any:
    """The fp32 pipeline with the variant's encoder in its transformer."""
    import spacy

    from spacy_mtl.trf.transformer import hf_encoder

    nlp = spacy.load(ARGS.pipeline)
    make = VARIANTS[name]
    if make is not None:
        component = nlp.get_pipe("transformer")
        shim = component.model.layers[0].shims[0]
        shim._model = shim._hfmodel.transformer = make(hf_encoder(component))
    return nlp


def macro_f(scores: Dict[str, Any], groups: Sequence[str]) -> Dict[str, Optional[float]]:
    values = {g: scores.get(f"mtl_{g}_macro_f") for g in groups}
    return {g: None if v is None else round(float(v), 4) for g, v in values.items()}


def score(nlp: Any, examples: List[Any], groups: Sequence[str]) -> Dict[str, Any]:
    from spacy_mtl.workflows.report import predict_examples

    start = time.perf_counter()
    _, scores = predict_examples(nlp, examples, batch_size=ARGS.batch_size)
    return {"macro_f": macro_f(scores, groups), "seconds": round(time.perf_counter() - start, 1)}


def run_f1(names: List[str]) -> Dict[str, Any]:
    import spacy

    from spacy_mtl.workflows.loading import find_component
    from spacy_mtl.workflows.report import load_corpus
    from spacy_mtl.workflows.tune import tune_pipeline

    blank = spacy.load(ARGS.pipeline)
    groups = [group.name for group in find_component(blank, "mtl_textcat").schema.groups]
    test = load_corpus(blank, ARGS.test)
    if ARGS.test_limit:
        # Spread over the data sets (the corpus holds one after the other).
        test = test[:: max(1, len(test) // ARGS.test_limit)][: ARGS.test_limit]
    dev = [] if ARGS.no_retune else load_corpus(blank, ARGS.dev)
    for eg in [*test, *dev]:
        # corpus/full also holds groups the demo model does not have (GoEmotions' ekman).
        eg.reference.cats = {
            k: v for k, v in eg.reference.cats.items() if k.split("/")[0] in groups
        }
    out: Dict[str, Any] = {
        "n_test": len(test),
        "n_dev": len(dev),
        "groups": groups,
        "variants": {},
    }
    for name in names:
        nlp = load_variant(name)
        row = {"tuned_thresholds": score(nlp, test, groups)}
        if dev:
            tune_pipeline(nlp, dev, batch_size=ARGS.batch_size)
            row["retuned"] = score(nlp, test, groups)
        out["variants"][name] = row
        f = row["tuned_thresholds"]["macro_f"]
        again = row.get("retuned", {}).get("macro_f")
        msg.text(f"  {name:>20}: {f}" + (f", re-tuned {again}" if again else ""))
    base = out["variants"].get("fp32")
    if base:
        for row in out["variants"].values():
            for key in ("tuned_thresholds", "retuned"):
                if key in row and key in base:
                    row[key]["delta"] = {
                        g: _delta(row[key]["macro_f"][g], base[key]["macro_f"][g]) for g in groups
                    }
    return out


def _delta(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if a is None or b is None else round(a - b, 4)


def run_speed(names: List[str]) -> Dict[str, Any]:
    root = harness.data_dir()
    texts = harness.short_texts(root, ARGS.n_texts, seed=ARGS.seed)
    model = ARGS.model or harness.default_model()
    clf = harness.TorchClassifier(model, harness.benchmark_groups(root), seed=ARGS.seed)
    bs = ARGS.batch_size
    streams: Dict[str, Callable[[Sequence[str]], Iterator[Any]]] = {
        "limit_sorted": lambda t: clf.stream(t, bs, sort=True)
    }
    for name in names:
        nlp = load_variant(name)
        streams[name] = lambda t, nlp=nlp: nlp.pipe(t, batch_size=bs)
    for stream in streams.values():
        for _ in stream(texts[: 2 * bs]):
            pass
    order = list(streams)
    wall: Dict[str, List[float]] = {n: [] for n in order}
    cpu: Dict[str, List[float]] = {n: [] for n in order}
    load_before = harness.load_avg()
    for r in range(ARGS.rounds):
        turn = order[r % len(order) :] + order[: r % len(order)]
        for name in turn if r % 2 == 0 else turn[::-1]:
            start, start_cpu = time.perf_counter(), time.process_time()
            for _ in streams[name](texts):
                pass
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
        msg.text(f"  round {r}: " + ", ".join(f"{n} {wall[n][-1]:.1f}s" for n in order))
    out: Dict[str, Any] = {
        "n_docs": len(texts),
        "rounds": ARGS.rounds,
        "load_before": load_before,
        "load_after": harness.load_avg(),
        "contenders": {},
    }
    loop = "limit_sorted"
    for name in order:
        per_round = [a / b for a, b in zip(wall[loop], wall[name])]
        per_round_cpu = [a / b for a, b in zip(cpu[loop], cpu[name])]
        row: Dict[str, Any] = {
            "docs_per_s": round(len(texts) / harness.median(wall[name]), 1),
            "x_sorted_loop": round(harness.median(per_round), 3),
            "x_sorted_loop_cpu": round(harness.median(per_round_cpu), 3),
            "wall": [round(x, 3) for x in wall[name]],
            "cpu": [round(x, 3) for x in cpu[name]],
        }
        if "fp32" in wall:
            row["x_fp32"] = round(
                harness.median([a / b for a, b in zip(wall["fp32"], wall[name])]), 3
            )
        out["contenders"][name] = row
    return out


def main() -> None:
    names = list(VARIANTS)
    if ARGS.variants != "all":
        wanted = {v.strip() for v in ARGS.variants.split(",")}
        names = [n for n in names if n in wanted]
    model = ARGS.model or harness.default_model()
    started = time.time()
    result: Dict[str, Any] = {
        **harness.result_header("quantize", ARGS, model, "cpu"),
        "pipeline": str(ARGS.pipeline),
    }
    from spacy_mtl.trf.torch_int8 import full_range_is_safe

    result["avx512_vnni"] = full_range_is_safe()
    from importlib.metadata import PackageNotFoundError, version

    for package in ("onnxruntime", "onnx"):
        try:
            result["environment"]["versions"][package] = version(package)
        except PackageNotFoundError:
            result["environment"]["versions"][package] = None
    if not ARGS.no_f1:
        msg.info(f"Test macro F1 ({ARGS.test}), {len(names)} variants")
        result["f1"] = run_f1(names)
    if not ARGS.no_speed:
        msg.info(f"Speed: {ARGS.n_texts} short texts, {ARGS.rounds} rounds")
        result["speed"] = run_speed(names)
        for name, row in result["speed"]["contenders"].items():
            msg.text(
                f"  {name:>20}: {row['docs_per_s']:7.1f} docs/s, {row['x_sorted_loop']}x the "
                f"sorted loop (CPU {row['x_sorted_loop_cpu']}x)"
            )
    harness.finish(result, started, ARGS.out, "quantize")


if __name__ == "__main__":
    main()
