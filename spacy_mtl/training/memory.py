"""Giving freed memory back to the system during training (issue 28).

A transformer update on CPU allocates its activations and gradients afresh on every step,
and length-bucketed batches (`spacy-mtl.mixed_batcher.v1`) give each step other shapes.
glibc's malloc serves tensors up to 32 MB from its heaps once its sliding mmap threshold
has risen (after the first large tensor is freed), and it keeps what is freed there for
reuse: the heaps' free space grows with the run while the bytes in use stay flat (glibc's
own `mallinfo2`), and the process's resident memory grows with it. `malloc_trim(0)`
hands the free pages inside the heaps back (`madvise`), which no setting of spaCy, thinc or
torch does.

DOCS: docs/performance.md, "Training memory".
"""

import ctypes
import ctypes.util
import sys
from typing import Any, Callable, Dict, Optional

from spacy.language import Language
from spacy.util import registry

_UNSET = object()
_trim: Any = _UNSET


def _malloc_trim() -> Optional[Callable[[int], int]]:
    """glibc's `malloc_trim`, or None where the C library has none (macOS, Windows, musl)."""
    global _trim
    if _trim is _UNSET:
        _trim = None
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                _trim = getattr(libc, "malloc_trim", None)
            except OSError:
                _trim = None
            if _trim is not None:
                _trim.argtypes = [ctypes.c_size_t]
                _trim.restype = ctypes.c_int
    return _trim


def release_memory(step: int, *, every: int = 10) -> bool:
    """Return the heap's free pages to the system on every `every`-th step.

    step (int): The training step (spaCy's, from 0).
    every (int): Steps between releases; 0 never releases.
    RETURNS (bool): Whether malloc_trim ran (False off glibc, or not this step).
    """
    trim = _malloc_trim()
    if trim is None or every <= 0 or step % every:
        return False
    trim(0)
    return True


@registry.callbacks("spacy-mtl.release_memory.v1")
def make_release_memory(every: int = 10) -> Callable[[Language, Dict[str, Any]], None]:
    """`[training.before_update]` callback: `malloc_trim(0)` every `every` updates, so the
    resident memory of a CPU training run follows the bytes in use (glibc only; a no-op
    elsewhere). It lowers the memory held between updates, not the peak within one.

    every (int): Updates between releases (0: never).
    RETURNS (Callable[[Language, Dict[str, Any]], None]): The callback.

    DOCS: docs/performance.md, "Training memory".
    """
    if isinstance(every, bool) or not isinstance(every, int) or every < 0:
        raise ValueError(
            f"spacy-mtl.release_memory.v1: every must be a whole number >= 0, got {every!r}."
        )

    def before_update(nlp: Language, info: Dict[str, Any]) -> None:
        release_memory(int(info.get("step", 0)), every=every)

    return before_update
