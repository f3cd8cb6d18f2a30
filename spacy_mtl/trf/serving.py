"""How `mtl_transformer` runs its torch model at inference: the shim's `predict` replaced.

thinc's `PyTorchShim.predict` walks every submodule to `eval()` and back to `train()` on
each call and runs under `no_grad`. `serve_in_eval_mode` gives the shim a `predict` that
leaves the model in eval mode, runs under `torch.inference_mode` on CPU and, with
`onednn`, there through a copy of the model whose linear layers run in oneDNN with packed
weights (spacy_mtl/trf/onednn.py), dropped after each optimizer step.

The shim's `finish_update` is replaced too (`finish_update_in_place`): thinc's rebinds every
parameter to a new tensor made from the optimizer's numpy view of the old one, so each
update adds a link per parameter to a chain of tensor and array objects that keep each
other alive (issue 28; docs/performance.md, "Training memory").

DOCS: docs/performance.md ("Fast by default").
"""

from types import MethodType
from typing import Any, Tuple
from weakref import WeakKeyDictionary

import torch
from thinc.api import Model, torch2xp, xp2torch

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
        shims[0].finish_update = MethodType(finish_update_in_place, shims[0])


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


def finish_update_in_place(shim: Any, optimizer: Any) -> None:
    """thinc's `PyTorchShim.finish_update`, without rebinding the parameters, then the
    oneDNN copy dropped.

    thinc's optimizers update the array they are given in place, and that array is a view
    of the parameter's tensor (`torch2xp`), so the tensor already holds the new weights.
    thinc then sets `param.data = xp2torch(view)`: a new tensor whose storage holds the
    view, whose base is the old tensor, whose storage holds the view of the step before...
    two objects per parameter per update that live as long as the model. Here a parameter
    is rebound only when an optimizer returns other memory. The oneDNN copy is dropped because no
    tensor version shows an update made through numpy.
    """
    for name, param in shim._model.named_parameters():
        if param.grad is None:
            continue
        # Skip the weight update when a gradient overflowed (mixed precision), as thinc.
        if not shim._grad_scaler.found_inf:
            data = param.data
            new, _ = optimizer((shim.id, name), torch2xp(data), torch2xp(param.grad))
            if _data_ptr(new) != data.data_ptr():
                param.data = xp2torch(new, requires_grad=True, device=param.device)
        param.grad.zero_()
    shim._grad_scaler.update()
    _PACKED.pop(shim, None)


def _data_ptr(array: Any) -> int:
    """Address of the first element of a numpy or cupy array."""
    if hasattr(array, "__array_interface__"):
        return int(array.__array_interface__["data"][0])
    return int(array.data.ptr)


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
