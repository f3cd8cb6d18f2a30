"""Giving freed memory back to the system during training (issue 28).

A transformer update on CPU allocates its activations and gradients afresh on every step,
and length-bucketed batches (`spacy-mtl.mixed_batcher.v1`) give each step other shapes.
glibc's malloc serves tensors up to 32 MB from its heaps once its sliding mmap threshold
has risen (after the first large tensor is freed), and it keeps what is freed there for
reuse: the heaps' free space grows with the run while the bytes in use stay flat (glibc's
own `mallinfo2`), and the process's resident memory grows with it, in steps, whenever a
batch needs a block larger than any free one. Two remedies, both glibc's own:
`mallopt(M_MMAP_THRESHOLD, n)` fixes the threshold, so that every block of `n` bytes or
more is mapped on its own and unmapped when freed (the heaps then hold only small
objects), and `malloc_trim(0)` hands the free pages inside the heaps back (`madvise`).
No setting of spaCy, thinc or torch does either.

DOCS: docs/performance.md, "Training memory".
"""

import ctypes
import ctypes.util
import sys
from typing import Any, Callable, Dict, List, Optional

from spacy.language import Language
from spacy.util import registry

_UNSET = object()
_trim: Any = _UNSET
_mallopt: Any = _UNSET
# From glibc's malloc.h.
M_MMAP_THRESHOLD = -3
# glibc refuses a fixed threshold above HEAP_MAX_SIZE / 2 (32 MiB on 64-bit).
MAX_MMAP_THRESHOLD = 32 * 1024 * 1024


def _libc_function(name: str, argtypes: List[Any]) -> Optional[Callable[..., int]]:
    """A function of glibc, or None where the C library has none (macOS, Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    function = getattr(libc, name, None)
    if function is not None:
        function.argtypes = argtypes
        function.restype = ctypes.c_int
    return function


def _malloc_trim() -> Optional[Callable[[int], int]]:
    """glibc's `malloc_trim`, or None where the C library has none."""
    global _trim
    if _trim is _UNSET:
        _trim = _libc_function("malloc_trim", [ctypes.c_size_t])
    return _trim


def set_mmap_threshold(nbytes: int) -> bool:
    """Have glibc map every block of `nbytes` or more on its own, and unmap it when freed.

    This also turns off glibc's sliding threshold, which otherwise rises to 32 MiB after
    the first large block is freed and then keeps freed tensors in the heaps.

    nbytes (int): The threshold in bytes (glibc's default start is 128 KiB).
    RETURNS (bool): Whether glibc took it (False off glibc).
    """
    global _mallopt
    if _mallopt is _UNSET:
        _mallopt = _libc_function("mallopt", [ctypes.c_int, ctypes.c_int])
    if _mallopt is None:
        return False
    return bool(_mallopt(M_MMAP_THRESHOLD, nbytes))


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
def make_release_memory(
    every: int = 10, mmap_threshold: Optional[int] = None
) -> Callable[[Language, Dict[str, Any]], None]:
    """`[training.before_update]` callback: so that the resident memory of a CPU training
    run follows the bytes in use (glibc only; a no-op elsewhere).

    every (int): Updates between `malloc_trim(0)` calls (0: never). It lowers the memory
        held between updates, not the peak within one.
    mmap_threshold (Optional[int]): Set at the first update: blocks of this many bytes or
        more (tensors) are mapped on their own and given back when freed, so the heaps do
        not grow with the run (None: glibc's sliding threshold). The shipped configs set
        131072 (128 KiB).
    RETURNS (Callable[[Language, Dict[str, Any]], None]): The callback.

    DOCS: docs/performance.md, "Training memory".
    """
    if isinstance(every, bool) or not isinstance(every, int) or every < 0:
        raise ValueError(
            f"spacy-mtl.release_memory.v1: every must be a whole number >= 0, got {every!r}."
        )
    if mmap_threshold is not None and (
        isinstance(mmap_threshold, bool)
        or not isinstance(mmap_threshold, int)
        or not 0 < mmap_threshold <= MAX_MMAP_THRESHOLD
    ):
        raise ValueError(
            "spacy-mtl.release_memory.v1: mmap_threshold must be a number of bytes from 1 to "
            f"{MAX_MMAP_THRESHOLD} (32 MiB, glibc's limit) or null, got {mmap_threshold!r}."
        )
    threshold = mmap_threshold  # set once, at the first update

    def before_update(nlp: Language, info: Dict[str, Any]) -> None:
        nonlocal threshold
        if threshold is not None:
            set_mmap_threshold(threshold)
            threshold = None
        release_memory(int(info.get("step", 0)), every=every)

    return before_update
