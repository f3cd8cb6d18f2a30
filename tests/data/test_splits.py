"""`convert --split`: stratified on every label of every group (multilabel included),
deterministic given the seed, every row in exactly one split."""

import random
from collections import Counter
from pathlib import Path
from typing import Dict, List, Sequence

import pytest
import spacy
from conftest import write
from spacy.tokens import DocBin

from spacy_mtl.data.convert import ConvertSpec, assign_splits, convert_files
from spacy_mtl.data.convert.splits import MIN_PER_SPLIT, SplitLabels

FRACTIONS = [0.8, 0.1, 0.1]
COMMON = ["joy", "anger", "sadness", "neutral"]
RARE = ["grief", "pride", "relief", "remorse"]


def _corpus(n: int, seed: int) -> List[List[str]]:
    """Multilabel rows: common labels at random, and each rare label on exactly
    MIN_PER_SPLIT x 3 = 6 rows, half of them also carrying common labels."""
    rng = random.Random(seed)
    rows = [[label for label in COMMON if rng.random() < 0.3] for _ in range(n)]
    places = rng.sample(range(n), len(RARE) * MIN_PER_SPLIT * len(FRACTIONS))
    for i, row in enumerate(places):
        label = RARE[i % len(RARE)]
        rows[row] = [label] if i % 2 else [*rows[row], label]
    return rows


def _ids(rows: Sequence[Sequence[str]]) -> List[List[int]]:
    index = {label: i for i, label in enumerate(COMMON + RARE)}
    return [[index[label] for label in row] for row in rows]


def _per_split(rows: Sequence[Sequence[str]], assignment: Sequence[int]) -> Dict[str, Counter]:
    counts: Dict[str, Counter] = {label: Counter() for label in COMMON + RARE}
    for row, split in zip(rows, assignment):
        for label in row:
            counts[label][split] += 1
    return counts


@pytest.mark.parametrize("seed", range(10))
def test_rare_multilabel_labels_land_in_every_split(seed: int) -> None:
    rows = _corpus(600, seed)
    assignment = assign_splits(_ids(rows), FRACTIONS, seed=seed)
    counts = _per_split(rows, assignment)
    for label in RARE:
        assert sum(counts[label].values()) == 6
        assert all(counts[label][split] >= 1 for split in range(3)), (label, counts[label])


def test_proportions_are_near_the_requested_ones() -> None:
    rows = _corpus(2000, 0)
    assignment = assign_splits(_ids(rows), FRACTIONS, seed=0)
    sizes = Counter(assignment)
    for split, fraction in enumerate(FRACTIONS):
        assert abs(sizes[split] - fraction * len(rows)) <= 3
    for label, per_split in _per_split(rows, assignment).items():
        total = sum(per_split.values())
        if label in COMMON:  # ~600 rows each: their share to within 2 rows
            for split, fraction in enumerate(FRACTIONS):
                assert abs(per_split[split] - fraction * total) <= 2, (label, per_split)


def test_deterministic_by_seed_and_every_row_once() -> None:
    rows = _ids(_corpus(500, 1))
    first = assign_splits(rows, FRACTIONS, seed=3)
    assert first == assign_splits(rows, FRACTIONS, seed=3)
    assert first != assign_splits(rows, FRACTIONS, seed=4)
    assert len(first) == len(rows) and set(first) == {0, 1, 2}
    # Rows without any label are placed too, where rows are lacking.
    with_empty = [*rows, *([[]] * 40)]
    out = assign_splits(with_empty, FRACTIONS, seed=3)
    assert len(out) == len(with_empty) and all(0 <= s < 3 for s in out)
    sizes = Counter(out)
    assert abs(sizes[0] - 0.8 * len(with_empty)) <= 2


def test_one_label_per_row_keeps_each_share_to_one_row() -> None:
    # The guarantee of the single-multiclass-group case: each stratum's share ±1 row.
    strata = [0] * 503 + [1] * 97 + [2] * 31 + [-1] * 11 + [3] * 6
    strata = [strata[(i * 37) % len(strata)] for i in range(len(strata))]
    out = assign_splits(strata, FRACTIONS, seed=0)
    for stratum in (0, 1, 2, -1, 3):
        got = [s for s, st in zip(out, strata) if st == stratum]
        for split, fraction in enumerate(FRACTIONS):
            assert abs(got.count(split) - fraction * len(got)) < 1.0 + (stratum == 3)
    # 6 rows (2 per split): in every split, though 0.1 x 6 rounds to 0 for one of them.
    assert {s for s, st in zip(out, strata) if st == 3} == {0, 1, 2}


def test_split_labels_store_positives_and_missing_groups() -> None:
    labels = SplitLabels([("s", ["neg", "pos"]), ("e", ["joy", "anger"])])
    labels.add({"s/neg": 0.0, "s/pos": 1.0, "e/joy": 1.0, "e/anger": 1.0})
    labels.add({"e/joy": 0.0, "e/anger": 0.0})  # s missing, e annotated with no positive
    labels.add({"s/neg": 1.0, "s/pos": 0.0})  # e missing
    assert len(labels) == 3
    assert [list(row) for row in labels] == [[1, 2, 3], [4], [0, 5]]


def test_convert_split_stratifies_a_multilabel_group(tmp_path: Path) -> None:
    """End to end: a multilabel-only spec (no multiclass group, so before this every row
    was one stratum); the rare label reaches dev and test, and every row lands in exactly
    one split."""
    lines = ["text,id,emotions"]
    rng = random.Random(0)
    rare_rows = set(rng.sample(range(400), 6))
    for i in range(400):
        emotions = [e for e in ("joy", "anger") if rng.random() < 0.4]
        if i in rare_rows:
            emotions.append("grief")
        lines.append(f'doc {i},{i},"{",".join(emotions)}"')
    src = write(tmp_path / "data.csv", "\n".join(lines) + "\n")
    group = {"kind": "multilabel", "column": "emotions", "delimiter": ","}
    spec = ConvertSpec.from_dict(
        {"id": "id", "groups": {"emotion": {**group, "labels": ["joy", "anger", "grief"]}}}
    )
    summary = convert_files(
        [src], tmp_path / "out", spec, split="train=0.8,dev=0.1,test=0.1", seed=0
    )
    corpus = summary.corpora[0]
    for split in ("train", "dev", "test"):
        assert corpus.label_counts[split]["emotion"]["grief"] >= 1
    nlp = spacy.blank("en")
    seen: List[str] = []
    for files in corpus.files.values():
        for path in files:
            seen.extend(d.user_data["id"] for d in DocBin().from_disk(path).get_docs(nlp.vocab))
    assert sorted(seen, key=int) == [str(i) for i in range(400)]  # each row exactly once
    for split, wanted in (("train", 320), ("dev", 40), ("test", 40)):
        assert abs(corpus.docs[split] - wanted) <= 3
