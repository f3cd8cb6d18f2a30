"""Training memory (issue 28): no per-update growth of live tensors, and the malloc_trim
training callback."""

import gc
import sys
import warnings
from pathlib import Path
from typing import List

import pytest
import spacy
import torch
from conftest import GROUPS, make_examples, transformer_config
from spacy.util import registry
from thinc.api import Adam

from spacy_mtl.training import memory
from spacy_mtl.training.memory import make_release_memory, release_memory


def live_tensors() -> int:
    gc.collect()
    with warnings.catch_warnings():
        # isinstance on torch's deprecated module attributes warns.
        warnings.simplefilter("ignore")
        return sum(isinstance(obj, torch.Tensor) for obj in gc.get_objects())


def test_updates_keep_no_chain_of_parameter_tensors(tiny_bert: Path) -> None:
    """thinc's finish_update rebinds each parameter to a tensor that keeps the previous one
    alive: live tensors grew by one per parameter per update. They must stay flat, and the
    weights must still change."""
    nlp = spacy.blank("en")
    nlp.add_pipe("mtl_transformer", name="transformer", config=transformer_config(str(tiny_bert)))
    nlp.add_pipe("mtl_textcat", config={"groups": GROUPS})
    examples = make_examples(nlp)
    nlp.initialize(lambda: examples)
    optimizer = Adam(1e-3)
    torch_model = nlp.get_pipe("transformer").model.layers[0].shims[0]._model
    params = dict(torch_model.named_parameters())
    for _ in range(3):
        nlp.update(examples, sgd=optimizer)
    before = {name: p.detach().clone() for name, p in params.items()}
    counts: List[int] = []
    for _ in range(3):
        for _ in range(4):
            nlp.update(examples, sgd=optimizer)
        counts.append(live_tensors())
    assert counts[0] == counts[-1], f"live tensors grew over 8 updates: {counts}"
    # Still the same Parameter objects, updated in place.
    assert dict(torch_model.named_parameters()).keys() == params.keys()
    changed = [n for n, p in torch_model.named_parameters() if not torch.equal(p, before[n])]
    assert len(changed) > len(params) // 2
    assert all(p.requires_grad for p in torch_model.parameters())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_release_memory_trims_every_n_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: List[int] = []
    monkeypatch.setattr(memory, "_trim", lambda pad: calls.append(pad) or 1)
    done = [release_memory(step, every=5) for step in range(12)]
    assert done == [s % 5 == 0 for s in range(12)]
    assert calls == [0, 0, 0]
    assert not release_memory(10, every=0)


def test_release_memory_is_a_no_op_without_malloc_trim(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_trim", None)
    assert not release_memory(0, every=1)


def test_release_memory_callback_from_config(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: List[int] = []
    monkeypatch.setattr(memory, "_trim", lambda pad: calls.append(pad) or 1)
    resolved = registry.resolve({"cb": {"@callbacks": "spacy-mtl.release_memory.v1", "every": 2}})
    for step in range(5):
        resolved["cb"](spacy.blank("en"), {"step": step, "epoch": 0})
    assert len(calls) == 3
    with pytest.raises(ValueError, match="every"):
        make_release_memory(every=-1)


def test_real_malloc_trim_runs() -> None:
    """On glibc the real call is found and runs (a no-op elsewhere)."""
    found = memory._malloc_trim()
    assert release_memory(0, every=1) == (found is not None)


MMAP_PROBE = """
import ctypes, sys
import numpy
from spacy_mtl.training.memory import set_mmap_threshold

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks",
        "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2

def mapped_growth(nbytes):
    before = libc.mallinfo2().hblkhd
    block = numpy.ones(nbytes // 8)
    grown = libc.mallinfo2().hblkhd - before
    del block
    return grown

big = numpy.ones(8 * 2**20 // 8)  # freeing 8 MiB raises glibc's sliding threshold to it
del big
default = mapped_growth(6 * 2**20)  # under the risen threshold: from the heap
assert set_mmap_threshold(131072)
# Larger than the heap's free top (the 6 MiB just freed), so glibc must get new memory:
# now mapped on its own.
fixed = mapped_growth(7 * 2**20)
print(default, fixed)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_fixed_mmap_threshold_maps_tensor_sized_blocks(tmp_path: Path) -> None:
    """The cause of the growth (issue 28): once glibc's sliding threshold has risen, a
    6 MiB tensor comes from (and goes back to) the heap; with the threshold fixed, a block
    the heap cannot serve is mapped on its own (and unmapped when freed). In a subprocess:
    the setting is for the whole process."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", MMAP_PROBE], capture_output=True, text=True, check=True
    )
    default, fixed = map(int, done.stdout.split())
    assert default == 0
    assert fixed >= 7 * 2**20


def test_release_memory_callback_sets_the_threshold_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: List[int] = []
    monkeypatch.setattr(memory, "set_mmap_threshold", lambda n: calls.append(n) or True)
    monkeypatch.setattr(memory, "_trim", lambda pad: 1)
    config = {"@callbacks": "spacy-mtl.release_memory.v1", "every": 0, "mmap_threshold": 4096}
    callback = registry.resolve({"cb": config})["cb"]
    for step in range(3):
        callback(spacy.blank("en"), {"step": step, "epoch": 0})
    assert calls == [4096]
    for bad in (0, -1, 64 * 2**20, True, 1.5):
        with pytest.raises(ValueError, match="mmap_threshold"):
            make_release_memory(mmap_threshold=bad)  # type: ignore[arg-type]
