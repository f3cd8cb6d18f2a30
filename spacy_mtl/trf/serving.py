"""How `mtl_transformer` runs its torch model at inference: the shim's `predict` replaced.

thinc's `PyTorchShim.predict` walks every submodule to `eval()` and back to `train()` on
each call and runs under `no_grad`. `serve_in_eval_mode` gives the shim a `predict` that
leaves the model in eval mode, runs under `torch.inference_mode` on CPU and, with
`onednn`, there through a copy of the model whose linear layers run in oneDNN with packed
weights (spacy_mtl/trf/onednn.py), dropped after each optimizer step.

DOCS: docs/performance.md ("Fast by default").
"""

from types import MethodType
from typing import Any, Tuple
from weakref import WeakKeyDictionary

import torch
from thinc.api import Model

from .onednn import onednn_available, packed_clone


def serve_in_eval_mode(model: Model, *, onednn: bool = False) -> None:
    """Give the transformer's shim a `predict` that leaves the torch model in eval mode.

    thinc's `PyTorchShim.predict` calls `eval()` before the forward pass and `train()` after
    it: two walks over every submodule (120 for MiniLM) per call, which was most of what
    `nlp(text)` cost beyond a raw Hugging Face forward (docs/performance.md). Training does
    not need the `train()` back: `begin_update` sets it first thing. The forward pass runs under
    `torch.inference_mode` on CPU (no autograd bookkeeping at all); elsewhere under
    `no_grad`, as thinc does (cupy reads the outputs through DLPack).

    onednn (bool): On CPU, run a copy of the torch model whose linear layers go through
        oneDNN with prepacked weights (`spacy_mtl.trf.onednn`), where this torch can.
    """
    layers = getattr(model, "layers", None)
    shims = getattr(layers[0], "shims", None) if layers else None
    if shims and hasattr(shims[0], "_model"):
        shims[0].predict = MethodType(predict_in_eval_mode, shims[0])
        shims[0].mtl_onednn = bool(onednn) and onednn_available()
        if shims[0].mtl_onednn:
            shims[0].finish_update = MethodType(finish_update_and_repack, shims[0])


def predict_in_eval_mode(shim: Any, inputs: Any) -> Any:
    """`PyTorchShim.predict`, minus the `train()` walk after the forward pass (see
    `serve_in_eval_mode`); on CPU, through the shim's oneDNN copy if it has one."""
    module = shim._model
    if module.training:
        module.eval()
    if shim.device.type == "cpu":
        if getattr(shim, "mtl_onednn", False):
            module = _packed_model(shim, module)
        with torch.inference_mode():
            return module(*inputs.args, **inputs.kwargs)
    with torch.no_grad():
        if not shim._mixed_precision:
            return module(*inputs.args, **inputs.kwargs)
        with torch.autocast(device_type="cuda"):
            return module(*inputs.args, **inputs.kwargs)


def finish_update_and_repack(shim: Any, optimizer: Any) -> None:
    """The shim's own `finish_update`, then its oneDNN copy dropped: thinc's optimizers
    update torch's weights in place through numpy, which no tensor version shows."""
    type(shim).finish_update(shim, optimizer)
    _PACKED.pop(shim, None)


def _packed_model(shim: Any, module: Any) -> Any:
    """The shim's model with oneDNN linear layers (`packed_clone`), made again when the
    shim's model is another object (loading, int8 serving). Kept outside the shim, so that
    copying or pickling the model never meets the packed (unpicklable) weights."""
    cached = _PACKED.get(shim)
    if cached is None or cached[0] is not module:
        cached = (module, packed_clone(module))
        _PACKED[shim] = cached
    return cached[1]


# shim -> (its torch model, that model's oneDNN copy)
_PACKED: "WeakKeyDictionary[Any, Tuple[Any, Any]]" = WeakKeyDictionary()
