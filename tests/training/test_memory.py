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
