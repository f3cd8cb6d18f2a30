"""spacy_mtl.gold: gold doc.cats → (truth, mask) rows, with the missing-label rules of
docs/design.md, and an error naming the doc, group and label for anything else."""

from typing import Dict, List

import numpy
import pytest

from spacy_mtl.errors import GoldError
from spacy_mtl.gold import GoldReader
from spacy_mtl.schema import GroupSchema

SCHEMA = GroupSchema.from_config(
    {
        "sentiment": {"kind": "multiclass", "labels": ["neg", "neu", "pos"]},
        "emotion": {"kind": "multilabel", "labels": ["joy", "anger"]},
    }
)
READER = GoldReader(SCHEMA)


def test_multiclass_group_missing_or_annotated() -> None:
    truth, mask = READER.read({"emotion/joy": 1.0, "emotion/anger": 0.0})
    assert mask.tolist() == [0, 0, 0, 1, 1]  # no key of the group: missing
    assert truth.tolist() == [0, 0, 0, 1, 0]
    # The one positive fixes the others: the whole group is annotated.
    truth, mask = READER.read({"sentiment/pos": 1.0})
    assert mask.tolist() == [1, 1, 1, 0, 0]
    assert truth.tolist() == [0, 0, 1, 0, 0]


def test_multilabel_absent_key_is_missing_for_that_label_only() -> None:
    truth, mask = READER.read({"emotion/anger": 0.0})
    assert mask.tolist() == [0, 0, 0, 0, 1]
    # Annotated with no positive label ("no emotion") is an answer, not missing.
    truth, mask = READER.read({"emotion/joy": 0.0, "emotion/anger": 0.0})
    assert mask.tolist() == [0, 0, 0, 1, 1]
    assert not truth.any()


def test_read_batch_matches_read() -> None:
    batch = [({"sentiment/neg": 1.0}, "a"), ({}, "b"), ({"emotion/joy": 1.0}, "c")]
    truths, masks = READER.read_batch(batch)
    assert truths.shape == masks.shape == (3, SCHEMA.n_labels)
    assert truths.dtype == numpy.float32
    for i, (cats, text) in enumerate(batch):
        truth, mask = READER.read(cats, text)
        assert truths[i].tolist() == truth.tolist()
        assert masks[i].tolist() == mask.tolist()
    assert not masks[1].any()


@pytest.mark.parametrize(
    "cats,fragments",
    [
        ({"sentiment": 1.0}, ["'sentiment'", "no '/'"]),
        ({"topic/x": 1.0}, ["'topic'", "'topic/x'"]),
        ({"sentiment/happy": 1.0}, ["'sentiment'", "'happy'", "neg"]),
        ({"emotion/joy": 0.5}, ["0.5", "'emotion/joy'"]),
        ({"sentiment/neg": 1.0, "sentiment/pos": 1.0}, ["'sentiment'", "2 positive"]),
        ({"sentiment/neg": 0.0, "sentiment/neu": 0.0}, ["'sentiment'", "none is 1.0"]),
    ],
)
def test_bad_gold_names_doc_group_and_label(cats: Dict[str, float], fragments: List[str]) -> None:
    with pytest.raises(GoldError) as err:
        READER.read(cats, "a text to find")
    message = str(err.value)
    assert "a text to find" in message
    for fragment in fragments:
        assert fragment in message


def test_unknown_group_skip_counts_docs_once() -> None:
    reader = GoldReader(SCHEMA, unknown_groups="skip")
    truths, masks = reader.read_batch(
        [
            ({"sentiment/pos": 1.0, "tags/a": 1.0, "tags/b": 0.0}, "one"),
            ({"tags/a": 0.0, "topic/x": 1.0}, "two"),
            ({"emotion/joy": 1.0}, "three"),
        ]
    )
    assert reader.unknown_docs == {"tags": 2, "topic": 1}
    expected_t, expected_m = READER.read_batch(
        [({"sentiment/pos": 1.0}, "one"), ({}, "two"), ({"emotion/joy": 1.0}, "three")]
    )
    assert numpy.array_equal(truths, expected_t) and numpy.array_equal(masks, expected_m)
    # An unknown label of a known group would mislabel silently: still an error.
    with pytest.raises(GoldError, match="no label 'happy'"):
        reader.read({"sentiment/happy": 1.0})
    with pytest.raises(GoldError, match="has no '/'"):
        reader.read({"tags": 1.0})
    with pytest.raises(GoldError, match="group 'tags'"):
        READER.read({"tags/a": 1.0})
    assert READER.unknown_docs == {}
    with pytest.raises(ValueError, match="unknown_groups"):
        GoldReader(SCHEMA, unknown_groups="warn")
