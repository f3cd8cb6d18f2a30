"""spacy_mtl.trf.batching: length-sorted prediction gives the docs back in input order, with
the answers `nlp.pipe` gives."""

from pathlib import Path
from typing import Any, List

import numpy
import pytest
from conftest import GROUPS, TEXTS, make_examples, make_nlp
from spacy.language import Language
from spacy.tokens import Doc

from spacy_mtl.trf.batching import (
    char_lengths,
    iter_by_length,
    pipe_by_length,
    resolve_key,
    wordpiece_lengths,
)


def _cats(docs: List[Doc]) -> numpy.ndarray:
    return numpy.asarray([[doc.cats[k] for k in sorted(doc.cats)] for doc in docs])


@pytest.fixture(scope="module")
def trf_nlp(tiny_bert: Path) -> Language:
    nlp = make_nlp(GROUPS, bert=tiny_bert)
    nlp.initialize(lambda: make_examples(nlp))
    return nlp


@pytest.fixture(scope="module")
def tok2vec_nlp() -> Language:
    nlp = make_nlp(GROUPS)
    nlp.initialize(lambda: make_examples(nlp))
    return nlp


@pytest.mark.parametrize("buffer_size", [None, 1, 3, 100])
@pytest.mark.parametrize("batch_size", [1, 2, 4])
def test_pipe_by_length_restores_order(
    tok2vec_nlp: Language, buffer_size: Any, batch_size: int
) -> None:
    docs = list(pipe_by_length(tok2vec_nlp, TEXTS, batch_size=batch_size, buffer_size=buffer_size))
    assert [doc.text for doc in docs] == TEXTS
    expected = list(tok2vec_nlp.pipe(TEXTS))
    # Tok2Vec scores do not depend on the batch: sorted and unsorted agree exactly.
    assert numpy.array_equal(_cats(docs), _cats(expected))
    for doc in docs:
        assert set(doc._.mtl_scores) == {"sentiment", "emotion"}


def test_pipe_by_length_transformer_matches_pipe(trf_nlp: Language) -> None:
    sorted_docs = list(pipe_by_length(trf_nlp, TEXTS, batch_size=3))
    plain = list(trf_nlp.pipe(TEXTS, batch_size=3))
    assert [doc.text for doc in sorted_docs] == TEXTS
    # Different batches pad differently; attention masks keep the scores (nearly) equal.
    numpy.testing.assert_allclose(_cats(sorted_docs), _cats(plain), atol=1e-4)
    empty = [doc for doc in sorted_docs if not len(doc)]
    assert len(empty) == 2
    assert _cats(empty)[0].tolist() == _cats(empty)[1].tolist()


def test_iter_by_length_sorts_and_yields_every_index(trf_nlp: Language) -> None:
    pairs = list(iter_by_length(trf_nlp, TEXTS, batch_size=2, key="chars"))
    indices = [i for i, _ in pairs]
    assert sorted(indices) == list(range(len(TEXTS)))
    lengths = [len(TEXTS[i]) for i in indices]
    assert lengths == sorted(lengths)
    # Stable: equal lengths keep input order (the two empty texts).
    assert indices[:2] == [1, 7]
    for i, doc in pairs:
        assert doc.text == TEXTS[i]


def test_iter_by_length_buffers_sort_within_each_buffer(tok2vec_nlp: Language) -> None:
    pairs = list(iter_by_length(tok2vec_nlp, TEXTS, buffer_size=4, key="chars"))
    indices = [i for i, _ in pairs]
    for start in range(0, len(TEXTS), 4):
        chunk = indices[start : start + 4]
        assert sorted(chunk) == list(range(start, min(start + 4, len(TEXTS))))
        assert [len(TEXTS[i]) for i in chunk] == sorted(len(TEXTS[i]) for i in chunk)


def test_pipe_by_length_takes_docs(tok2vec_nlp: Language) -> None:
    docs = [tok2vec_nlp.make_doc(text) for text in TEXTS]
    out = list(pipe_by_length(tok2vec_nlp, docs, batch_size=2))
    assert [doc.text for doc in out] == TEXTS
    assert all(a is b for a, b in zip(out, docs))


def test_sort_keys(trf_nlp: Language, tok2vec_nlp: Language) -> None:
    tokenizer = trf_nlp.get_pipe("transformer").model.tokenizer
    expected = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in TEXTS]
    assert list(resolve_key(trf_nlp, "auto")(TEXTS)) == expected
    assert list(wordpiece_lengths(tokenizer)(TEXTS)) == expected
    assert wordpiece_lengths(tokenizer)([]) == []
    assert resolve_key(tok2vec_nlp, "auto") is char_lengths
    assert char_lengths(TEXTS) == [len(t) for t in TEXTS]
    with pytest.raises(ValueError, match="wordpieces"):
        resolve_key(tok2vec_nlp, "wordpieces")
    with pytest.raises(ValueError, match="Unknown sort key"):
        resolve_key(tok2vec_nlp, "tokens")


def test_custom_key_and_bad_arguments(tok2vec_nlp: Language) -> None:
    def reverse(texts: List[str]) -> List[int]:
        return [-len(t) for t in texts]

    pairs = list(iter_by_length(tok2vec_nlp, TEXTS, key=reverse))
    assert len(TEXTS[pairs[0][0]]) == max(len(t) for t in TEXTS)
    with pytest.raises(ValueError, match="batch_size"):
        list(pipe_by_length(tok2vec_nlp, TEXTS, batch_size=0))
    with pytest.raises(ValueError, match="buffer_size"):
        list(pipe_by_length(tok2vec_nlp, TEXTS, buffer_size=0))
    with pytest.raises(ValueError, match="lengths"):
        list(pipe_by_length(tok2vec_nlp, TEXTS, key=lambda texts: [1]))
    assert list(pipe_by_length(tok2vec_nlp, [])) == []
