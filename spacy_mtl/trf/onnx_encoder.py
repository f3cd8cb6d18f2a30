"""The transformer as an int8 ONNX Runtime model, behind the torch interface spacy-transformers
calls (`quantize = "onnx-int8"` of `mtl_transformer`, `spacy-mtl quantize --method onnx`).

- `export_int8(hf_model)`: the Hugging Face encoder exported to ONNX (inputs as
  spacy-transformers passes them, output `last_hidden_state` only: the pooler is dropped) and
  quantized by ONNX Runtime's dynamic quantizer: int8 weights per output channel, every
  MatMul with a weight matrix, activations quantized on the fly (8 bits, asymmetric).
- `OnnxEncoder`: a `torch.nn.Module` that runs such a model in an ONNX Runtime session and
  returns a `BaseModelOutput`, so it takes the Hugging Face model's place in the thinc shim and
  the rest of the pipeline (alignment, pooling, the heads) is unchanged.

ONNX Runtime is an optional extra (`pip install 'spacy-mtl[onnx]'`); exporting and quantizing
also need the `onnx` package (in the same extra). Both are imported where they are used; this
module itself is imported only when a pipeline uses ONNX (it imports torch).

DOCS: docs/performance.md ("int8 on CPU").
"""

import contextlib
import inspect
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import numpy
import torch
from transformers.modeling_outputs import BaseModelOutput

ONNX_EXTRA = "pip install 'spacy-mtl[onnx]'"
# The inputs spacy-transformers gives a Hugging Face model (its `_convert_transformer_inputs`).
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OPSET = 17


def require_onnxruntime(purpose: str) -> Any:
    """The `onnxruntime` module, or an ImportError that says how to install it.

    purpose (str): What needs it, for the message ("to load the pipeline ...").
    """
    try:
        import onnxruntime
    except ImportError as err:
        raise ImportError(
            f"ONNX Runtime is needed {purpose} but is not installed: {ONNX_EXTRA}"
        ) from err
    return onnxruntime


def _require_onnx(purpose: str) -> Any:
    try:
        import onnx
    except ImportError as err:
        raise ImportError(f"The onnx package is needed {purpose}: {ONNX_EXTRA}") from err
    return onnx


def export_int8(hf_model: Any, *, per_channel: bool = True) -> bytes:
    """The int8 ONNX model (serialized) of a Hugging Face encoder, for `OnnxEncoder`.

    hf_model (transformers.PreTrainedModel): The fp32 encoder (left as it is).
    per_channel (bool): One weight scale per output channel (default) instead of one per
        matrix. Measured on the demo model: per matrix loses up to .03 macro F1, per channel
        under .01 (docs/performance.md).
    RETURNS (bytes): The quantized ONNX model.
    RAISES ImportError: onnxruntime or onnx is not installed.
    """
    require_onnxruntime("to quantize with --method onnx")
    onnx = _require_onnx("to export the transformer to ONNX")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        _export_fp32(hf_model, fp32)
        with warnings.catch_warnings(), _quiet_root_logger():
            warnings.simplefilter("ignore")
            quantize_dynamic(
                str(fp32),
                str(int8),
                per_channel=per_channel,
                # 8-bit weights: with 7 bits (reduce_range) F1 dropped further
                # (docs/performance.md).
                reduce_range=False,
                weight_type=QuantType.QInt8,
            )
        onnx.checker.check_model(str(int8))
        return int8.read_bytes()


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """ONNX Runtime's quantizer logs advice (run its pre-processing) on the root logger at
    every call; it is not for our users."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _export_fp32(hf_model: Any, path: Path) -> None:
    names = encoder_inputs(hf_model)
    wrapper = LastHiddenState(hf_model, names).eval()
    # Two rows of different lengths (one padded), so no shape is fixed by the trace.
    ids = torch.tensor([[2, 5, 6, 7, 3], [2, 5, 3, 0, 0]], dtype=torch.long)
    ids = ids.clamp(max=hf_model.config.vocab_size - 1)
    example = {
        "input_ids": ids,
        "attention_mask": (ids != 0).long(),
        "token_type_ids": torch.zeros_like(ids),
    }
    axes = {name: {0: "batch", 1: "sequence"} for name in [*names, "last_hidden_state"]}
    options: Dict[str, Any] = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        # The TorchScript exporter: the torch.export one needs onnxscript and gave no
        # different graph for these encoders.
        options["dynamo"] = False
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            tuple(example[name] for name in names),
            str(path),
            input_names=list(names),
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=OPSET,
            **options,
        )


def encoder_inputs(hf_model: Any) -> List[str]:
    """The inputs of INPUTS that the model's forward takes, in INPUTS order."""
    accepted = inspect.signature(hf_model.forward).parameters
    return [name for name in INPUTS if name in accepted]


class LastHiddenState(torch.nn.Module):
    """Export wrapper: the encoder's last hidden state from positional inputs `names`."""

    def __init__(self, hf_model: Any, names: List[str]) -> None:
        super().__init__()
        self.model = hf_model
        self.names = names

    def forward(self, *args: Any) -> Any:
        return self.model(**dict(zip(self.names, args))).last_hidden_state


def make_encoder(
    model_bytes: bytes, config: Any, *, threads: Optional[int] = None
) -> "OnnxEncoder":
    """An `OnnxEncoder` over the serialized int8 model.

    model_bytes (bytes): From `export_int8`.
    config (transformers.PretrainedConfig): The Hugging Face model's config (kept for code
        that reads `.config`).
    threads (Optional[int]): Intra-op threads; None: torch's (`torch.get_num_threads()`), so
        that the thread count users give torch holds for ONNX Runtime too.
    RETURNS (OnnxEncoder): A torch module.
    RAISES ImportError: onnxruntime is not installed.
    """
    ort = require_onnxruntime("to run a pipeline quantized with --method onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    return OnnxEncoder(session, config)


class OnnxEncoder(torch.nn.Module):
    """Runs an ONNX Runtime session where spacy-transformers calls the Hugging Face model:
    same keyword inputs, a `BaseModelOutput` with `last_hidden_state` back.

    It has no parameters: the thinc shim's device is then torch's default (the CPU), and an
    optimizer or `state_dict` finds nothing to train or save.
    """

    def __init__(self, session: Any, config: Any) -> None:
        super().__init__()
        self.session = session
        self.config = config
        self.inputs = {i.name: _numpy_type(i.type) for i in session.get_inputs()}

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def forward(
        self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None, **_: Any
    ) -> BaseModelOutput:
        given = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": torch.zeros_like(input_ids)
            if token_type_ids is None
            else token_type_ids,
        }
        feed = {
            name: given[name].detach().cpu().numpy().astype(dtype, copy=False)
            for name, dtype in self.inputs.items()
        }
        (hidden,) = self.session.run(["last_hidden_state"], feed)
        states: Any = torch.from_numpy(hidden).to(input_ids.device)
        return BaseModelOutput(last_hidden_state=states)


def _numpy_type(onnx_type: str) -> Any:
    return numpy.int32 if onnx_type == "tensor(int32)" else numpy.int64
