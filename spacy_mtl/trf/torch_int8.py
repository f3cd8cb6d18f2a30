"""The transformer with torch dynamic int8 linear layers (`quantize = "int8"` of
`mtl_transformer`, `spacy-mtl quantize --method torch`).

torch's dynamic quantization replaces every `nn.Linear` with an int8 one: int8 weights,
activations quantized on the fly per batch. Two settings decide how much quality it costs
(docs/performance.md, "int8 on CPU", has the measurements on the demo model):
- weights per output channel, not per matrix: the feed-forward output layers have a few
  channels with large weights, and one scale per matrix spends the 8 bits on them;
- activations in 8 bits instead of torch's 7 (`reduce_range`): torch keeps a bit free so that
  AVX2's 16-bit accumulation cannot saturate; with AVX512-VNNI (32-bit accumulation) the bit
  is safe to use, so it is used there and only there.

This module imports torch; it is imported only when a pipeline is quantized.

DOCS: docs/performance.md ("int8 on CPU").
"""

import warnings
from typing import Any, Dict, Optional, Sequence

import torch
from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

from .fallback import INT8_FULL_RANGE


class FullRangeLinear(DynamicLinear):
    """torch's dynamic int8 Linear with 8-bit activations (torch's own uses 7 bits)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if INT8_FULL_RANGE.usable:
            try:
                y = torch.ops.quantized.linear_dynamic(
                    x, self._packed_params._packed_params, reduce_range=False
                )
                return y.to(x.dtype)
            except Exception as err:  # private operator and attribute: may change with torch
                INT8_FULL_RANGE.give_up(err)
        return super().forward(x)


def full_range_is_safe() -> bool:
    """Whether this CPU accumulates int8 products in 32 bits (AVX512-VNNI), so that
    activations may use all 8 bits."""
    check = getattr(torch.cpu, "_is_vnni_supported", None)
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:
        return False


def quantize_dynamic_int8(
    module: Any,
    *,
    per_channel: bool = True,
    reduce_range: Optional[bool] = None,
    keep: Sequence[str] = (),
) -> Any:
    """An int8 copy of a torch module: every nn.Linear dynamically quantized (qint8).

    module (torch.nn.Module): The fp32 module (left as it is).
    per_channel (bool): A weight scale per output channel (default) or one per matrix.
    reduce_range (Optional[bool]): 7-bit activations (torch's default); None: 8 bits where
        `full_range_is_safe()`, else 7.
    keep (Sequence[str]): Linear layers whose name ends with one of these stay fp32.
    RETURNS (torch.nn.Module): The quantized copy, in eval mode.
    """
    if reduce_range is None:
        reduce_range = not full_range_is_safe()
    with warnings.catch_warnings():
        # torch marks its eager-mode quantization deprecated (moving to torchao) but still
        # ships it; the warnings would come on every spacy.load.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")
        from torch.ao.quantization import (
            default_dynamic_qconfig,
            per_channel_dynamic_qconfig,
            quantize_dynamic,
        )

        qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
        linear = DynamicLinear if reduce_range else FullRangeLinear
        spec: Dict[Any, Any] = {torch.nn.Linear: qconfig}
        if keep:
            spec = {
                name: qconfig
                for name, layer in module.named_modules()
                if isinstance(layer, torch.nn.Linear) and not name.endswith(tuple(keep))
            }
        quantized = quantize_dynamic(
            module,
            spec,
            dtype=torch.qint8,
            mapping={torch.nn.Linear: linear},
            inplace=False,
        )
    return quantized.eval()
