"""Private torch APIs used for speed, each with a public path to fall back on.

A private operator or attribute (`torch.ops.mkldnn._linear_pointwise`, a quantized layer's
`_packed_params`, ...) may change in any torch release. Each use is behind a capability
check where one exists, and inside a `try` whose `except` calls `PrivateAPI.give_up` and
runs the public path: the same numbers (to float rounding), slower. Giving up is a fact
about the installed torch, not about one model, so it holds for the process: one warning,
and no second attempt in each of the encoder's layers.
"""

import warnings
from typing import Optional

from ..errors import MTLWarning


class PrivateAPI:
    """One private torch API and whether this process has given it up.

    what (str): What the private API does, for the warning.
    instead (str): The public path taken after a failure.
    setting (str): How a user skips the attempt (a config setting).
    """

    def __init__(self, what: str, *, instead: str, setting: str) -> None:
        self.what = what
        self.instead = instead
        self.setting = setting
        self.reason: Optional[str] = None

    @property
    def usable(self) -> bool:
        """False once a call has failed in this process."""
        return self.reason is None

    def give_up(self, err: BaseException) -> None:
        """Use the public path from now on; warn once, naming the cause."""
        if self.reason is not None:
            return
        import torch

        self.reason = f"{type(err).__name__}: {err}"
        warnings.warn(
            f"{self.what} failed with this torch ({torch.__version__}): {self.reason}. "
            f"Falling back to {self.instead}. {self.setting} skips the attempt.",
            MTLWarning,
            stacklevel=3,
        )

    def reset(self) -> None:
        """Try the private API again (tests)."""
        self.reason = None


ONEDNN_LINEAR = PrivateAPI(
    "oneDNN packed linear layers (torch.ops.mkldnn._reorder_linear_weight, _linear_pointwise)",
    instead="torch's own nn.Linear (the same scores, slower on CPU)",
    setting="`onednn = false` on the transformer component",
)
INT8_FULL_RANGE = PrivateAPI(
    "8-bit activations in torch int8 linear layers (torch.ops.quantized.linear_dynamic on "
    "_packed_params)",
    instead="torch's dynamic int8 Linear with 7-bit activations (slightly less accurate)",
    setting="`spacy-mtl quantize --method onnx` (the default)",
)
