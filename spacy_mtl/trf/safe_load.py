"""Loading a pipeline's torch weights without running code that came with them.

spacy-transformers (`HFShim.from_bytes`) and thinc (`PyTorchShim.from_bytes`) read the
weights of a saved pipeline with `torch.load(file, map_location=device)`, leaving
`weights_only` to torch's default. That default is True from torch 2.6 on, but False
before, and `TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1` in the environment turns it back to
False: then `torch.load` unpickles whatever the file holds, and a crafted model folder
runs its own code when a pipeline is loaded (`predict` on a downloaded model, say). An
explicit `weights_only=True` is honoured whatever the environment says (torch reads the
variable only for calls that do not set it), so `weights_only_loads` passes it to every
`torch.load` while a pipeline loads.
"""

import functools
import sys
import threading
from contextlib import contextmanager
from typing import Any, Iterator

# Loads in several threads at once share one patch; the lock makes each wait for the
# one before to put torch.load back.
_PATCH_LOCK = threading.RLock()


@contextmanager
def weights_only_loads() -> Iterator[None]:
    """While the block runs, every `torch.load` in this process loads with
    `weights_only=True`: tensors, containers and plain values only; a file that would run
    code when unpickled raises `pickle.UnpicklingError` instead.

    torch is not imported for it: a pipeline without torch needs none of this, and
    spaCy imports torch (through thinc) when it is installed.
    """
    torch: Any = sys.modules.get("torch")
    if torch is None:
        try:
            import torch
        except ImportError:
            yield
            return
    with _PATCH_LOCK:
        original = torch.load

        @functools.wraps(original)
        def load(*args: Any, **kwargs: Any) -> Any:
            kwargs["weights_only"] = True
            return original(*args, **kwargs)

        torch.load = load
        try:
            yield
        finally:
            torch.load = original
