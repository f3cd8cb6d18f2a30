"""The transformer's linear layers through oneDNN with prepacked weights, for CPU inference.

torch runs `nn.Linear` on CPU through MKL's sgemm, which repacks the weight matrix at every
call. oneDNN (which torch bundles; its compiler uses it for frozen CPU graphs) can take the
weights packed once, in the layout its kernels read, which is faster on the x86 CPUs
measured; each linear layer's output differs from torch's by float rounding (a different
order of additions). docs/performance.md, "Fast by default", has the measurements.

`packed_clone(module)` returns a copy of a torch module in which every `nn.Linear` is a
`PackedLinear`; everything else (embeddings, layer norms, hooks, the config) is shared with
the original, which stays what training updates and serialization saves. A `PackedLinear`
packs its layer's weights on first use and again whenever they change (an optimizer step,
loading weights): it compares the tensors' identity, storage and in-place version counter
at each call. (thinc's optimizers write into torch's weights through numpy, which torch
cannot see: the transformer component drops its copy after each `finish_update`.) Inputs
that are not float32 on CPU, and any call with gradients on, run the original layer.

The two oneDNN operators are private to torch (`torch.ops.mkldnn._reorder_linear_weight`,
`_linear_pointwise`): their signatures may change in any release. `onednn_available` checks
that they exist; a call that raises anyway gives one `MTLWarning` and every `PackedLinear`
of the process then runs its public `nn.Linear` (the same numbers, torch's MKL speed;
spacy_mtl/trf/fallback.py).

DOCS: docs/performance.md ("Fast by default").
"""

import copy
import platform
from typing import Any, Optional, Tuple

import torch

from .fallback import ONEDNN_LINEAR


def onednn_available() -> bool:
    """Whether this torch can run linear layers through oneDNN with packed weights (an x86
    CPU with oneDNN built in, and the packing operators present)."""
    if not ONEDNN_LINEAR.usable:
        return False
    if platform.machine().lower() not in ("x86_64", "amd64"):
        # Measured on x86 only.
        return False
    if not torch.backends.mkldnn.is_available():
        return False
    ops = torch.ops.mkldnn
    return hasattr(ops, "_reorder_linear_weight") and hasattr(ops, "_linear_pointwise")


class PackedLinear(torch.nn.Module):
    """An `nn.Linear` whose float32 CPU inference runs through oneDNN with its weights packed
    once (see the module docstring); the same outputs to float rounding."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.linear = linear
        self.training = False
        self._packed: Optional[torch.Tensor] = None
        # The tensors packed (held, so that a new tensor is never taken for them) and their
        # in-place version counters then.
        self._tensors: Tuple[Any, ...] = ()
        self._versions: Tuple[Any, ...] = ()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.linear.weight
        bias = self.linear.bias
        if (
            x.dtype != torch.float32
            or weight.dtype != torch.float32
            or x.device.type != "cpu"
            or weight.device.type != "cpu"
            or torch.is_grad_enabled()
            or not ONEDNN_LINEAR.usable
        ):
            return self.linear(x)
        try:
            return self._packed_forward(x, weight, bias)
        except Exception as err:  # a private operator: any torch release may change it
            ONEDNN_LINEAR.give_up(err)
            return self.linear(x)

    def _packed_forward(
        self, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]
    ) -> torch.Tensor:
        versions: Tuple[int, ...] = (weight.data_ptr(), weight._version)
        if bias is not None:
            versions += (bias.data_ptr(), bias._version)
        held = self._tensors
        if not held or held[0] is not weight or held[1] is not bias or self._versions != versions:
            self._packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), None)
            self._tensors = (weight, bias)
            self._versions = versions
        b = None if bias is None else bias.detach()
        return torch.ops.mkldnn._linear_pointwise(x, self._packed, b, "none", [], "")


def packed_clone(module: torch.nn.Module) -> torch.nn.Module:
    """A copy of `module` for inference whose `nn.Linear` layers are `PackedLinear`s over the
    originals; submodules without one are the original objects. Its own (copied) modules are
    in eval mode."""
    if type(module) is torch.nn.Linear:
        return PackedLinear(module)
    if not isinstance(module, torch.nn.Module):
        return module
    children = module._modules
    cloned = {
        name: None if child is None else packed_clone(child) for name, child in children.items()
    }
    if all(cloned[name] is child for name, child in children.items()):
        return module
    clone = copy.copy(module)
    # copy.copy shares the dict of submodules: give the copy its own.
    clone.__dict__["_modules"] = cloned
    clone.__dict__["training"] = False
    return clone
