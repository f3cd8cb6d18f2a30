"""The mixing, length-bucketing training batcher and the data-set-tagging corpus reader."""

from collections import Counter
from pathlib import Path
from typing import List

import pytest
import spacy
from spacy.tokens import DocBin
from spacy.training import Example

from spacy_mtl.training.batchers import (
    DATASET_KEY,
    MixedBatcher,
    configure_mixed_batcher,
    create_dataset_corpus,
    dataset_of,
)


def _examples(nlp, name: str, n: int, group: str, seed: int = 0) -> List[Example]:
    out = []
    for i in range(n):
        # Lengths vary (1..40 words) so that sorting has something to do.
        words = " ".join(["w"] * (1 + (i * 7 + seed) % 40))
        doc = nlp.make_doc(f"{name} {i} {words}")
        ref = nlp.make_doc(doc.text)
        ref.cats = {f"{group}/a": 1.0, f"{group}/b": 0.0}
        out.append(Example(doc, ref))
    return out


class Item:
    """Stands in for an Example: the batcher only asks for a data set and a length."""

    def __init__(self, dataset: str, i: int) -> None:
        self.dataset = dataset
        self.text = f"{dataset} {i} " + "w " * (1 + (i * 7) % 40)


def _batcher(**kwargs) -> MixedBatcher:
    return MixedBatcher(
        get_dataset=lambda item: item.dataset,
        get_length=lambda item: len(item.text),
        verbose=False,
        **kwargs,
    )


SIZES = {"big": 8000, "mid": 1500, "small": 500}


@pytest.fixture(scope="module")
def sets():
    return {name: [Item(name, i) for i in range(n)] for name, n in SIZES.items()}


def _flat(sets) -> List[Item]:
    return [item for name in SIZES for item in sets[name]]


def _texts(batches) -> List[List[str]]:
    return [[item.text for item in batch] for batch in batches]


def test_data_set_from_groups_when_no_file_is_recorded() -> None:
    nlp = spacy.blank("en")
    eg = _examples(nlp, "x", 1, "emotion")[0]
    assert dataset_of(eg) == "groups:emotion"
    eg.reference.cats["offense/hate"] = 0.0
    assert dataset_of(eg) == "groups:emotion+offense"
    eg.reference.user_data[DATASET_KEY] = "davidson"
    assert dataset_of(eg) == "davidson"


def test_alpha_one_gives_every_doc_exactly_once_per_epoch(sets) -> None:
    items = _flat(sets)
    batcher = _batcher(size=32, alpha=1.0, seed=3)
    for _ in range(2):
        seen = Counter(id(eg) for batch in batcher(items) for eg in batch)
        assert len(seen) == len(items)
        assert set(seen.values()) == {1}


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_proportions_within_two_percent_over_ten_thousand_docs(sets, alpha: float) -> None:
    items = _flat(sets)
    batcher = _batcher(size=16, alpha=alpha, seed=0)
    counts: Counter = Counter()
    for batch in batcher(items):  # one epoch = 10,000 docs
        counts.update(item.dataset for item in batch)
    assert sum(counts.values()) == 10_000
    total = sum(n**alpha for n in SIZES.values())
    for name, n in SIZES.items():
        assert counts[name] / 10_000 == pytest.approx(n**alpha / total, abs=0.02)
    if alpha == 0.0:
        # Uniform: the 500-doc set is repeated, each doc ~6.7 times, none more than once
        # before all of them are used.
        small = Counter(id(it) for batch in batcher(items) for it in batch if it.dataset == "small")
        assert max(small.values()) - min(small.values()) <= 1


def test_reproducible_from_its_seed(sets) -> None:
    items = _flat(sets)
    first = _texts(_batcher(size=32, alpha=0.5, seed=7)(items))
    again = _texts(_batcher(size=32, alpha=0.5, seed=7)(items))
    other = _texts(_batcher(size=32, alpha=0.5, seed=8)(items))
    assert first == again
    assert first != other
    # Each epoch draws anew, and the sequence of epochs is reproducible too.
    batcher = _batcher(size=32, alpha=0.5, seed=7)
    epochs = [_texts(batcher(items)) for _ in range(2)]
    assert epochs[0] == first and epochs[1] != first


def test_sorting_by_length_pads_less(sets) -> None:
    items = _flat(sets)

    def padded(batches) -> int:
        return sum(max(len(item.text) for item in b) * len(b) for b in batches)

    real = sum(len(item.text) for item in items)
    plain = padded(_batcher(size=32, sort_by_length=False)(items))
    bucketed_batches = list(_batcher(size=32, sort_by_length=True)(items))
    bucketed = padded(bucketed_batches)
    assert bucketed < plain
    assert bucketed / real < 1.1 < plain / real
    # Same docs either way.
    assert sum(len(b) for b in bucketed_batches) == len(items)


def test_bad_settings_are_refused() -> None:
    for kwargs in ({"size": 0}, {"size": 8, "alpha": -1}, {"size": 8, "buffer": 0}):
        with pytest.raises(ValueError, match="mixed_batcher"):
            configure_mixed_batcher(**kwargs)


def test_corpus_reader_records_each_docs_file(tmp_path: Path) -> None:
    nlp = spacy.blank("en")
    for name, group in (("goemotions", "emotion"), ("sub/davidson", "offense")):
        path = tmp_path / f"{name}.spacy"
        path.parent.mkdir(parents=True, exist_ok=True)
        docs = []
        for i in range(3):
            doc = nlp.make_doc(f"{name} text {i}")
            doc.cats = {f"{group}/a": 1.0}
            docs.append(doc)
        DocBin(docs=docs).to_disk(path)
    corpus = create_dataset_corpus(tmp_path)
    found = Counter(dataset_of(eg) for eg in corpus(nlp))
    assert found == {"goemotions": 3, "sub/davidson": 3}
    # The registered names resolve from a config, as `spacy train` would.
    batcher = spacy.registry.resolve(
        {"b": {"@batchers": "spacy-mtl.mixed_batcher.v1", "size": 2, "alpha": 0.0}}
    )["b"]
    batches = list(batcher(list(corpus(nlp))))
    assert sum(len(b) for b in batches) == 6


def test_plan_is_printed_once_not_every_epoch(sets, capsys) -> None:
    batcher = MixedBatcher(
        get_dataset=lambda item: item.dataset,
        get_length=lambda item: len(item.text),
        verbose=True,
        size=64,
    )
    items = _flat(sets)
    for _ in range(4):
        list(batcher(items))
    printed = capsys.readouterr().out
    assert printed.count("mixed_batcher epoch") == 1
    # A different plan (another epoch size) is printed again.
    batcher.epoch_docs = 1000
    list(batcher(items))
    assert capsys.readouterr().out.count("mixed_batcher epoch") == 1


def _hierarchy(nlp) -> List[Example]:
    """One file of a three-level hierarchy: 60 docs annotated for `top` only, 30 for
    top+mid, 10 for all three levels."""
    out = []
    for n, groups in ((60, ["top"]), (30, ["top", "mid"]), (10, ["top", "mid", "deep"])):
        for i in range(n):
            doc = nlp.make_doc(f"{'+'.join(groups)} doc {i}")
            ref = nlp.make_doc(doc.text)
            ref.cats = {f"{g}/yes": 1.0 for g in groups}
            ref.user_data[DATASET_KEY] = "one_file"
            out.append(Example(doc, ref))
    return out


def test_strata_by_groups_mix_the_levels_of_one_file() -> None:
    nlp = spacy.blank("en")
    examples = _hierarchy(nlp)
    by_file = MixedBatcher(size=10, alpha=0.0, verbose=False)
    by_groups = MixedBatcher(size=10, alpha=0.0, strata="groups", verbose=False)
    # By file: one stratum, every doc once.
    seen = Counter(len(eg.reference.cats) for batch in by_file(examples) for eg in batch)
    assert seen == {1: 60, 2: 30, 3: 10}
    # By groups, alpha 0: each of the three strata gets a third of the epoch's 100 docs.
    seen = Counter(len(eg.reference.cats) for batch in by_groups(examples) for eg in batch)
    assert sorted(seen.values()) == [33, 33, 34]
    assert by_groups.plan({"a": 60, "b": 30, "c": 10}) == {"a": 34, "b": 33, "c": 33}
    # The stratum is recorded for the component's docs-per-data-set count.
    names = {eg.reference.user_data["mtl_stratum"] for eg in examples}
    assert names == {"groups:top", "groups:mid+top", "groups:deep+mid+top"}


def test_strata_must_be_known() -> None:
    with pytest.raises(ValueError, match="strata must be one of"):
        configure_mixed_batcher(size=4, strata="labels")


def test_component_counts_docs_per_stratum() -> None:
    from conftest import make_nlp

    nlp = make_nlp(
        {
            "top": {"kind": "multilabel", "labels": ["yes"]},
            "mid": {"kind": "multilabel", "labels": ["yes"], "parent": "top/yes"},
            "deep": {"kind": "multilabel", "labels": ["yes"], "parent": "mid/yes"},
        }
    )
    examples = _hierarchy(nlp)
    optimizer = nlp.initialize(lambda: examples)
    batcher = MixedBatcher(size=20, alpha=0.0, strata="groups", verbose=False)
    for batch in batcher(examples):
        nlp.update(batch, sgd=optimizer)
    seen = nlp.get_pipe("mtl_textcat").docs_seen
    assert sorted(seen.values()) == [33, 33, 34]
    assert set(seen) == {"groups:top", "groups:mid+top", "groups:deep+mid+top"}
