"""spacy_mtl.trf.span_getters: windows of at most N wordpieces that never split a word."""

from pathlib import Path
from typing import Any, List

import pytest
import spacy
from conftest import GROUPS, TEXTS, make_examples
from spacy.tokens import Doc
from spacy.util import registry

from spacy_mtl.trf.span_getters import WordpieceSpans, attach_tokenizers, window_cuts


def _check_cover(doc: Doc, spans: List[Any]) -> None:
    covered = [i for span in spans for i in range(span.start, span.end)]
    assert covered == list(range(len(doc))), "every token exactly once, in order"


def _long_text(n: int) -> str:
    words = "the movie was great fun but i hate the awful food , really ! ok".split()
    return " ".join(words[i % len(words)] for i in range(n))


def test_window_cuts_counts_and_clean_cuts() -> None:
    # Three tokens: "ab" (2 pieces: ab, ##c -> a continuation inside one word), ...
    # Tokens start at chars 0, 3, 6, 9; pieces: [0,1) [1,2) word 0; [3,5) word 1;
    # [6,7) [7,8) word 2; [9,10) word 3.
    token_starts = [0, 3, 6, 9]
    offsets = [(0, 1), (1, 2), (3, 5), (6, 7), (7, 8), (9, 10)]
    word_ids = [0, 0, 1, 2, 2, 3]
    assert window_cuts(token_starts, offsets, word_ids, budget=3) == [0, 2, 4]
    assert window_cuts(token_starts, offsets, word_ids, budget=100) == [0, 4]
    # A token longer than the budget gets a window of its own.
    assert window_cuts(token_starts, offsets, word_ids, budget=1) == [0, 1, 2, 3, 4]
    assert window_cuts([], [], [], budget=4) == [0]


def test_window_cuts_never_split_a_word() -> None:
    # spaCy splits "cannot" into "can" + "not"; the tokenizer keeps one word in 2 pieces
    # ("can", "##not"). A cut between them would change the wordpieces.
    token_starts = [0, 3, 7]  # "can" "not" "ok" in "cannot ok"
    offsets = [(0, 3), (3, 6), (7, 9)]
    word_ids = [0, 0, 1]
    cuts = window_cuts(token_starts, offsets, word_ids, budget=2)
    assert 1 not in cuts
    assert cuts == [0, 2, 3]


@pytest.mark.parametrize("window", [8, 16, 40])
def test_wordpiece_spans_cover_each_token_once_within_window(tiny_bert: Path, window: int) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert), use_fast=True)
    nlp = spacy.blank("en")
    texts = [_long_text(n) for n in (0, 1, 5, 30, 77)] + TEXTS
    docs = [nlp.make_doc(t) for t in texts]
    get_spans = WordpieceSpans(str(tiny_bert), window=window)
    all_spans = get_spans(docs)
    assert len(all_spans) == len(docs)
    for doc, spans in zip(docs, all_spans):
        if not len(doc):
            assert spans == []
            continue
        _check_cover(doc, spans)
        for span in spans:
            n = len(tokenizer(span.text)["input_ids"])
            assert n <= window or len(span) == 1, (span.text, n)
        # Together the windows hold exactly the doc's wordpieces (no word was split).
        pieces = sum(len(tokenizer(s.text, add_special_tokens=False)["input_ids"]) for s in spans)
        assert pieces == len(tokenizer(doc.text, add_special_tokens=False)["input_ids"])
    long_doc_spans = all_spans[4]
    assert len(long_doc_spans) > 1


def test_wordpiece_spans_in_a_pipeline(tiny_bert: Path) -> None:
    import spacy_mtl.trf.span_getters  # noqa: F401

    assert registry.span_getters.get("spacy-mtl.wordpiece_spans.v1") is not None
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "transformer",
        config={
            "model": {
                "@architectures": "spacy-transformers.TransformerModel.v3",
                "name": str(tiny_bert),
                "tokenizer_config": {"use_fast": True},
                "get_spans": {
                    "@span_getters": "spacy-mtl.wordpiece_spans.v1",
                    "name": str(tiny_bert),
                    "window": 24,
                },
            }
        },
    )
    nlp.add_pipe("mtl_textcat", config={"groups": GROUPS})
    nlp.initialize(lambda: make_examples(nlp))
    getter = nlp.get_pipe("transformer").model.attrs["get_spans"]
    assert isinstance(getter, WordpieceSpans)
    assert attach_tokenizers(nlp) == {"transformer": True}
    # The getter now counts with the pipeline's own tokenizer object.
    assert getter.tokenizer is nlp.get_pipe("transformer").model.tokenizer
    texts = [_long_text(60), "ok", ""]
    docs = list(nlp.pipe(texts))
    assert [set(doc._.mtl_scores) for doc in docs] == [{"sentiment", "emotion"}] * 3
    spans = docs[0]._.trf_data.wordpieces.input_ids.shape
    assert spans[0] > 1 and spans[1] <= 24


def test_wordpiece_spans_needs_a_tokenizer(tiny_bert: Path) -> None:
    from transformers import BertTokenizer

    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match="no tokenizer"):
        WordpieceSpans("", window=16)([nlp.make_doc("hello")])
    slow = BertTokenizer.from_pretrained(str(tiny_bert))
    with pytest.raises(ValueError, match="fast tokenizer"):
        WordpieceSpans("", window=16).set_tokenizer(slow)
    with pytest.raises(ValueError, match="no room"):
        WordpieceSpans(str(tiny_bert), window=2)([nlp.make_doc("hello")])
    assert WordpieceSpans("", window=16)([nlp.make_doc("")]) == [[]]


def test_spans_come_with_the_encodings_counted_for_them(tiny_bert: Path) -> None:
    """A doc of one window brings its encoding (counted here or given), unless its span's
    text is not the doc's (a trailing space); windows cut from a long doc bring none."""
    nlp = spacy.blank("en")
    getter = WordpieceSpans(str(tiny_bert), window=16)
    docs = [nlp.make_doc(t) for t in ["i love this movie", "ok ", "", _long_text(40), "fun"]]
    spans, encodings = getter.spans_and_encodings(docs)
    assert spans == getter(docs)
    assert [len(e) for e in encodings] == [len(s) for s in spans]
    # With the special tokens: ready for the forward pass.
    assert encodings[0][0].tokens == ["[CLS]", "i", "love", "this", "movie", "[SEP]"]
    assert encodings[1] == [None]  # "ok " ≠ its span's text "ok"
    assert encodings[2] == []
    assert len(encodings[3]) > 1 and all(e is None for e in encodings[3])
    # Given encodings (the sort's) are handed on as they are.
    given = [getter.spans_and_encodings([doc])[1][0][0] for doc in docs[:1]]
    with getter.known_lengths(docs[:1], [4], given):
        assert getter.spans_and_encodings(docs[:1])[1] == [[given[0]]]
    with getter.known_lengths(docs[4:], [1]):  # a count without an encoding
        assert getter.spans_and_encodings(docs[4:])[1] == [[None]]


def test_encode_wordpieces_matches_the_tokenizer_after_padded_calls(tiny_bert: Path) -> None:
    """The Rust tokenizer's batch call gives the wrapper's ids, offsets and word ids, also
    after a call that left padding and truncation on (as spacy-transformers' does)."""
    from transformers import AutoTokenizer

    from spacy_mtl.trf.span_getters import encode_wordpieces

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert), use_fast=True)
    texts = ["i love this movie", "", _long_text(30), "ok ok"]
    tokenizer(texts, padding="longest", truncation=True, max_length=8)
    lengths, encodings = encode_wordpieces(tokenizer, texts)
    expected = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    assert lengths == [len(ids) for ids in expected["input_ids"]]
    assert lengths[2] > 8 and lengths[1] == 0
    assert encodings is not None
    assert [e.ids for e in encodings] == expected["input_ids"]
    assert [e.offsets for e in encodings] == [
        list(map(tuple, o)) for o in expected["offset_mapping"]
    ]
    assert [e.word_ids for e in encodings] == [expected.word_ids(i) for i in range(len(texts))]


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_tokenize_windows_equals_spacy_transformers_tokenize(
    family: str, request: pytest.FixtureRequest
) -> None:
    """The Rust batch call gives spacy-transformers' arrays exactly: ids, type ids, mask,
    offsets, wordpiece strings, padding; also right after a call that turned padding off.
    For BERT's WordPiece and for RoBERTa's byte-level BPE (roberta-base's family: leading
    spaces are part of a piece, offsets trimmed by the post-processor)."""
    import numpy
    from spacy_transformers.layers.transformer_model import huggingface_tokenize
    from transformers import AutoTokenizer

    from spacy_mtl.trf.span_getters import encode_wordpieces, tokenize_windows

    folder = request.getfixturevalue(f"tiny_{family}")
    tokenizer = AutoTokenizer.from_pretrained(str(folder), use_fast=True)
    batches = [
        ["i love this movie", "", "ok [PAD] [CLS] ok", _long_text(200), "héllo wörld"],
        ["ok"],
    ]
    for side in ("right", "left"):
        tokenizer.padding_side = side
        for texts in batches:
            # Padding off on the Rust side; the special tokens added.
            _, encodings = encode_wordpieces(tokenizer, texts, special_tokens=True)
            assert encodings is not None
            before = [list(e.ids) for e in encodings]
            # Every other text from its known encoding.
            known = [e if i % 2 == 0 else None for i, e in enumerate(encodings)]
            for ours in (
                tokenize_windows(tokenizer, texts),
                tokenize_windows(tokenizer, texts, known),
            ):
                theirs = huggingface_tokenize(tokenizer, texts)
                assert set(ours) == set(theirs)
                for key, value in theirs.items():
                    if isinstance(value, numpy.ndarray):
                        assert ours[key].dtype == value.dtype, key
                        assert ours[key].shape == value.shape, key
                        numpy.testing.assert_array_equal(ours[key], value)
                    else:
                        assert ours[key] == value, key
            # The known encodings are left as they were (no padding).
            assert [list(e.ids) for e in encodings] == before
    assert ours["input_ids"].shape == (1, 3)
    tokenizer.padding_side = "right"
    # Without a pad token: the wrapper's own error, as before.
    tokenizer.pad_token = None
    with pytest.raises(ValueError, match="padding token"):
        tokenize_windows(tokenizer, ["ok", "i love this movie"])
