"""The GPU path: run with `python -m pytest -m gpu` on a machine with CUDA and cupy.

Skipped nowhere by hand: the `gpu` marker keeps it out of the default run (pyproject's
addopts), and `spacy.require_gpu` fails loudly where there is no GPU.
"""

from pathlib import Path

import numpy
import pytest
import spacy
from conftest import GROUPS, make_examples, make_nlp

pytestmark = pytest.mark.gpu


def _scores(nlp, texts):
    return numpy.asarray([list(doc.cats.values()) for doc in nlp.pipe(texts)])


def test_a_cpu_trained_pipeline_scores_the_same_on_gpu(tiny_bert: Path, tmp_path: Path) -> None:
    nlp = make_nlp(GROUPS, bert=tiny_bert)
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(5):
        nlp.update(examples, sgd=optimizer)
    texts = [eg.reference.text for eg in examples]
    expected = _scores(nlp, texts)
    nlp.to_disk(tmp_path / "model")
    spacy.require_gpu(0)
    try:
        on_gpu = spacy.load(tmp_path / "model")
        component = on_gpu.get_pipe("mtl_textcat")
        assert type(component.model.ops).__name__ == "CupyOps"
        numpy.testing.assert_allclose(_scores(on_gpu, texts), expected, atol=1e-4)
    finally:
        spacy.require_cpu()


def test_training_on_gpu_lowers_the_loss(tiny_bert: Path) -> None:
    spacy.require_gpu(0)
    try:
        nlp = make_nlp(GROUPS, bert=tiny_bert)
        examples = make_examples(nlp)
        optimizer = nlp.initialize(lambda: examples)
        losses = []
        for _ in range(30):
            step = nlp.update(examples, sgd=optimizer, losses={})
            losses.append(step["mtl_textcat"])
        assert numpy.isfinite(losses).all()
        assert losses[-1] < 0.5 * losses[0]
        doc = nlp("i love this movie")
        assert set(doc._.mtl_scores) == {"sentiment", "emotion"}
    finally:
        spacy.require_cpu()
