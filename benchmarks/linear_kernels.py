"""CPU linear kernels: torch's `nn.Linear` (MKL) against the alternatives `onednn = true` was
chosen from, per layer shape and for whole encoder forward passes.

    python benchmarks/linear_kernels.py                 # MiniLM's shapes (~2 min on 2 cores)
    python benchmarks/linear_kernels.py --model /tmp/tiny_bert --rows 3,30 --calls 5  # smoke

Per linear layer of the encoder's shapes (in → out) and number of rows (wordpieces in a
forward pass): the median time of `--calls` calls of each kernel, the kernels called in
turns so that the machine's load weighs on all alike:
- torch: `torch.nn.functional.linear` (what `nn.Linear` runs; MKL's sgemm on x86);
- onednn_packed: oneDNN with the weights packed once (`torch.ops.mkldnn._linear_pointwise`
  on `_reorder_linear_weight`), what `spacy_mtl.trf.onednn.PackedLinear` runs;
- mkldnn_tensor: `torch.utils.mkldnn`'s way (inputs converted to mkldnn tensors and back);
- mkl_packed: MKL's packed GEMM (`torch.ops.mkl._mkl_linear`).
Then whole forward passes of the encoder (`--model`, default MiniLM) on batches of tweet-
length inputs: the model as loaded against `spacy_mtl.trf.onednn.packed_clone` of it, in turns,
with the largest difference of their last hidden states.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="HF folder (default: MiniLM)")
    parser.add_argument("--rows", default="3,30,480,1920", help="rows per linear call")
    parser.add_argument("--batches", default="1x30,16x30,64x30,16x60", help="docs x wordpieces")
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gpu-id", type=int, default=-1, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None)
    return parser.parse_args(argv)


ARGS = parse_args()

import harness  # noqa: E402

harness.set_threads(ARGS.threads)

import torch  # noqa: E402
from wasabi import msg  # noqa: E402

from spacy_mtl.trf.onednn import onednn_available, packed_clone  # noqa: E402


def in_turns(kernels: Dict[str, Callable[[], Any]], calls: int) -> Dict[str, float]:
    """Median ms per call of each kernel, called in turns (warmed up first)."""
    for call in kernels.values():
        for _ in range(3):
            call()
    times: Dict[str, List[float]] = {name: [] for name in kernels}
    for _ in range(calls):
        for name, call in kernels.items():
            start = time.perf_counter()
            call()
            times[name].append(1000 * (time.perf_counter() - start))
    return {name: round(statistics.median(values), 4) for name, values in times.items()}


def layer_kernels(weight: Any, bias: Any, x: Any, rows: int) -> Dict[str, Callable[[], Any]]:
    packed = torch.ops.mkldnn._reorder_linear_weight(weight, None)
    w_mkldnn, b_mkldnn = weight.to_mkldnn(), bias.to_mkldnn()
    mkl = torch.ops.mkl._mkl_reorder_linear_weight(weight, rows)
    return {
        "torch": lambda: torch.nn.functional.linear(x, weight, bias),
        "onednn_packed": lambda: torch.ops.mkldnn._linear_pointwise(
            x, packed, bias, "none", [], ""
        ),
        "mkldnn_tensor": lambda: torch._C._nn.mkldnn_linear(
            x.to_mkldnn(), w_mkldnn, b_mkldnn
        ).to_dense(),
        "mkl_packed": lambda: torch.ops.mkl._mkl_linear(x, mkl, weight, bias, rows),
    }


def main() -> None:
    if not onednn_available():
        msg.fail("This torch has no oneDNN linear kernels (x86 with oneDNN needed).", exits=1)
    model_name = ARGS.model or harness.default_model()
    started = time.time()
    result: Dict[str, Any] = {
        **harness.result_header("linear_kernels", ARGS, model_name, "cpu"),
        "layers": [],
        "forward": [],
    }
    from transformers import AutoModel

    model = AutoModel.from_pretrained(model_name).eval()
    shapes = sorted(
        {
            (m.in_features, m.out_features)
            for m in model.modules()
            if type(m) is torch.nn.Linear and m.bias is not None
        }
    )
    torch.manual_seed(0)
    msg.info(f"Linear layers {shapes}, rows {ARGS.rows}, {ARGS.calls} calls each")
    with torch.inference_mode():
        for n_in, n_out in shapes:
            layer = torch.nn.Linear(n_in, n_out)
            weight, bias = layer.weight.detach(), layer.bias.detach()
            for rows in (int(r) for r in ARGS.rows.split(",")):
                x = torch.randn(rows, n_in)
                kernels = layer_kernels(weight, bias, x, rows)
                expected = kernels["torch"]()
                ms = in_turns(kernels, ARGS.calls)
                row = {
                    "in": n_in,
                    "out": n_out,
                    "rows": rows,
                    "ms": ms,
                    "speedup": {k: round(ms["torch"] / v, 3) for k, v in ms.items()},
                    "max_abs_diff": {
                        k: float((call() - expected).abs().max()) for k, call in kernels.items()
                    },
                }
                result["layers"].append(row)
                print(f"  {n_in:>5} -> {n_out:<5} rows {rows:>5}: {row['speedup']}")
        clone = packed_clone(model)
        msg.info(f"Whole forward passes: {ARGS.batches}")
        for spec in ARGS.batches.split(","):
            docs, pieces = (int(v) for v in spec.split("x"))
            vocab = model.config.vocab_size
            ids = torch.randint(vocab // 10, vocab, (docs, pieces))
            mask = torch.ones_like(ids)

            def run(encoder: Any, ids: Any = ids, mask: Any = mask) -> Any:
                return encoder(input_ids=ids, attention_mask=mask).last_hidden_state

            diff = float((run(clone) - run(model)).abs().max())
            calls = max(3, ARGS.calls // max(1, docs // 4))
            ms = in_turns({"torch": lambda: run(model), "onednn": lambda: run(clone)}, calls)
            row = {
                "docs": docs,
                "wordpieces": pieces,
                "ms": ms,
                "speedup": round(ms["torch"] / ms["onednn"], 3),
                "max_abs_diff": diff,
            }
            result["forward"].append(row)
            print(f"  {spec}: torch {ms['torch']} ms, oneDNN {ms['onednn']} ms ({row['speedup']}x)")
    harness.finish(result, started, ARGS.out, "linear_kernels")


if __name__ == "__main__":
    main()
