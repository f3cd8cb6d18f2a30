"""spacy_mtl.trf.align: the vectorized token ↔ wordpiece alignment is spacy-transformers'."""

from pathlib import Path
from typing import Any, List

import numpy
import pytest
import spacy
from spacy_transformers.align import get_alignment_via_offset_mapping

from spacy_mtl.trf.align import align_by_offsets, align_vectorized
from spacy_mtl.trf.span_getters import tokenize_windows

TEXTS = [
    "i love this movie",
    "ok  so   very\n\nbad!!",
    "what a great fun day \u2603\u2603 !! caf\u00e9 na\u00efve",
    "see https://example.com/a-b?c=1 now, (really)",
    "cannot won't don't it's",
    " leading and trailing ",
    "the food was fine but the service was bad and the people were awful " * 4,
    "x",
]


def windows(docs: List[Any], kind: str) -> List[Any]:
    spans: List[Any] = []
    for doc in docs:
        n = len(doc)
        if kind == "whole" or n < 6:
            spans.append(doc[:])
        elif kind == "strided":
            spans.extend(doc[i : min(i + 8, n)] for i in range(0, n, 6))
        else:  # gaps, out of order
            spans.extend([doc[n // 2 + 1 : n - 1], doc[1 : n // 2]])
    return spans


def assert_same(ours: Any, spans: List[Any], offsets: Any) -> None:
    theirs = get_alignment_via_offset_mapping(spans, offsets)
    numpy.testing.assert_array_equal(ours.lengths, theirs.lengths)
    numpy.testing.assert_array_equal(ours.dataXd, theirs.dataXd)


@pytest.mark.parametrize("kind", ["whole", "strided", "odd"])
def test_alignment_equals_spacy_transformers(tiny_bert: Path, kind: str) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert), use_fast=True)
    nlp = spacy.blank("en")
    docs = [nlp.make_doc(t) for t in TEXTS]
    # A doc twice in the batch: its tokens keep the rows of its first appearance.
    spans = windows(docs + docs[1:2], kind)
    offsets = tokenize_windows(tokenizer, [span.text for span in spans])["offset_mapping"]
    ours = align_by_offsets(spans, offsets)
    theirs = get_alignment_via_offset_mapping(spans, offsets)
    assert_same(align_vectorized(spans[:1], offsets[:1]), spans[:1], offsets[:1])
    assert_same(align_vectorized(spans[1:3], offsets[1:3]), spans[1:3], offsets[1:3])
    assert ours.dataXd.dtype == theirs.dataXd.dtype
    assert ours.lengths.dtype == theirs.lengths.dtype
    numpy.testing.assert_array_equal(ours.lengths, theirs.lengths)
    numpy.testing.assert_array_equal(ours.dataXd, theirs.dataXd)
    assert ours.lengths.sum() > 0 and (ours.lengths == 0).any() == (theirs.lengths == 0).any()


def test_alignment_of_nothing_and_of_an_empty_window(tiny_bert: Path) -> None:
    nlp = spacy.blank("en")
    empty = align_by_offsets([], numpy.zeros((0, 0, 2), dtype="int64"))
    assert empty.lengths.shape == (0,) and empty.dataXd.shape == (0,)
    doc = nlp.make_doc("ok then")
    with pytest.raises(IndexError):  # spacy-transformers' own error
        align_by_offsets([doc[1:1]], numpy.zeros((1, 2, 2), dtype="int64"))
    with pytest.raises(ValueError, match="different sizes"):
        align_by_offsets([doc[:]], numpy.zeros((2, 2, 2), dtype="int64"))


@pytest.mark.parametrize("seed", range(5))
def test_alignment_of_any_offsets_equals_spacy_transformers(seed: int) -> None:
    """Offsets a BERT tokenizer never gives (over spaces, past the text, overlapping, (0, 0)
    inside), as byte-level or SentencePiece tokenizers may: the same rule."""
    rng = numpy.random.default_rng(seed)
    nlp = spacy.blank("en")
    docs = [nlp.make_doc(t) for t in TEXTS]
    spans = windows(docs, ["whole", "strided", "odd"][seed % 3])
    length = 12
    offsets = numpy.zeros((len(spans), length, 2), dtype="int64")
    for i, span in enumerate(spans):
        n_chars = len(span.text)
        start = rng.integers(0, n_chars + 3, size=length)
        offsets[i, :, 0] = start
        offsets[i, :, 1] = start + rng.integers(0, 4, size=length)
    assert_same(align_by_offsets(spans, offsets), spans, offsets)
    for k in range(min(4, len(spans))):  # one window at a time
        assert_same(
            align_vectorized(spans[k : k + 1], offsets[k : k + 1]),
            spans[k : k + 1],
            offsets[k : k + 1],
        )
