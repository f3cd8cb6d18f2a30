"""Splitting a corpus into named parts (train/dev/test), stratified on every label of
every group and deterministic.

The assignment is iterative stratification (Sechidis, Tsoumakas and Vlahavas, "On the
Stratification of Multi-Label Data", ECML PKDD 2011), preceded by a coverage pass; see
`assign_splits` for what it guarantees.
"""

import hashlib
import math
import re
from array import array
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from ...errors import Errors
from ...schema import cat_key
from .exceptions import ConvertError

# A label with at least this many rows per split (n >= MIN_PER_SPLIT * n_splits) is put
# in every split by the coverage pass (see assign_splits).
MIN_PER_SPLIT = 2

_SPLIT_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def parse_split(value: Union[str, Mapping[str, float], None]) -> Optional[Dict[str, float]]:
    """Parse a split like 'train=0.8,dev=0.1,test=0.1' into {name: fraction}.

    value (Union[str, Mapping[str, float], None]): The split as text or a mapping.
    RETURNS (Optional[Dict[str, float]]): Ordered {split: fraction}; None for no split.
    """
    if value is None:
        return None
    if isinstance(value, str):
        pairs: List[Tuple[str, Any]] = []
        for part in value.split(","):
            name, eq, number = part.strip().partition("=")
            if not eq:
                raise ConvertError(
                    Errors.E220.format(value=value, problem=f"{part.strip()!r} has no '='")
                )
            pairs.append((name.strip(), number.strip()))
    else:
        pairs = list(value.items())
    out: Dict[str, float] = {}
    for name, number in pairs:
        if not _SPLIT_NAME.match(name):
            raise ConvertError(Errors.E220.format(value=value, problem=f"bad name {name!r}"))
        if name in out:
            raise ConvertError(Errors.E220.format(value=value, problem=f"{name!r} twice"))
        try:
            fraction = float(number)
        except (TypeError, ValueError):
            raise ConvertError(
                Errors.E220.format(value=value, problem=f"{number!r} is not a number")
            ) from None
        if not 0.0 < fraction <= 1.0:
            raise ConvertError(
                Errors.E220.format(value=value, problem=f"{name}={number} is not in (0, 1]")
            )
        out[name] = fraction
    if not out or abs(sum(out.values()) - 1.0) > 1e-6:
        raise ConvertError(
            Errors.E220.format(value=value, problem=f"the fractions sum to {sum(out.values()):g}")
        )
    return out


def _rank(seed: int, *parts: Any) -> bytes:
    # A keyed hash instead of random.shuffle/numpy: the order is the same on every Python
    # and numpy version and platform, and never depends on hash randomization.
    text = ":".join(str(p) for p in (seed, *parts))
    return hashlib.blake2b(text.encode("utf8"), digest_size=8).digest()


class SplitLabels:
    """The stratification labels of each row, for `assign_splits`, stored flat.

    A row's labels are its positive labels in every group (value 1.0) and, for each group
    the row lacks (no key of it), that group's "missing" pseudo-label, so that rows without
    a group are spread like the others. Memory: one int per label of a row, and one per
    row (no cats, no text).

    groups (Sequence[Tuple[str, Sequence[str]]]): (group name, labels) of each group.
    """

    def __init__(self, groups: Sequence[Tuple[str, Sequence[str]]]) -> None:
        self._index: Dict[str, Tuple[int, int]] = {}
        n = 0
        for g, (name, labels) in enumerate(groups):
            for label in labels:
                self._index[cat_key(name, label)] = (n, g)
                n += 1
        self._missing = [n + g for g in range(len(groups))]
        self._flat = array("i")
        self._starts = array("q", [0])

    def add(self, cats: Mapping[str, float]) -> None:
        """Record the next row's labels from its `doc.cats`."""
        seen = 0
        flat = self._flat
        index = self._index
        for key, value in cats.items():
            label, group = index[key]
            seen |= 1 << group
            if value == 1.0:
                flat.append(label)
        for group, missing in enumerate(self._missing):
            if not seen >> group & 1:
                flat.append(missing)
        self._starts.append(len(flat))

    def __len__(self) -> int:
        return len(self._starts) - 1

    def __getitem__(self, row: int) -> Sequence[int]:
        return self._flat[self._starts[row] : self._starts[row + 1]]

    def __iter__(self) -> Iterator[Sequence[int]]:
        for row in range(len(self)):
            yield self[row]


RowLabels = Union[SplitLabels, Sequence[int], Sequence[Sequence[int]]]


def assign_splits(rows: RowLabels, fractions: Sequence[float], seed: int = 0) -> List[int]:
    """Assign rows to splits, stratified on every label and deterministic.

    Each row carries a set of labels (`SplitLabels`: its positive labels in every group,
    multilabel included, and a pseudo-label per group it lacks); an int is a row with one
    label (a stratum, e.g. -1 for rows missing the group). Rows are ordered by a keyed hash
    of (seed, row index), then:

    1. Coverage: every label with at least MIN_PER_SPLIT (2) rows per split, i.e.
       n >= 2 x the number of splits, rarest first, gets one of its unplaced rows in each
       split that has none of it yet.
    2. Iterative stratification (Sechidis et al. 2011): repeatedly the label with the fewest
       unplaced rows places each of them in the split that most lacks that label (its share
       of the label's rows by largest-remainder rounding, minus what the split has), ties to
       the split that most lacks rows overall, then by the row's hash.
    3. Rows with no label go where the most rows are lacking.

    Guarantees: every row lands in exactly one split; the same rows, fractions and seed
    give the same assignment on any machine. A label with n >= 2 x n_splits rows lands in
    every split unless labels rarer than it, placed first, had already placed so many of its
    rows that fewer were left than splits it still lacked (so always when none of its rows
    carries another label of n >= 2 x n_splits rows that is no more frequent than it; the
    summary's label counts per split show the rest). When each row has one label (one
    multiclass group), every split gets each label's share to within one row, as long as
    each share rounds to at least one row.

    rows (RowLabels): The labels of each row (distinct ints), in input order.
    fractions (Sequence[float]): Share of each split, summing to 1.
    seed (int): Changes the assignment; the same seed gives the same assignment.
    RETURNS (List[int]): Index of the split of each row.
    """
    n, k = len(rows), len(fractions)
    keys = array("Q", (int.from_bytes(_rank(seed, "row", row), "big") for row in range(n)))
    order = sorted(range(n), key=keys.__getitem__)
    # Each label's rows, in hash order (filled in that order).
    members: Dict[int, array] = {}
    for row in order:
        for label in _labels_of(rows, row):
            if label not in members:
                members[label] = array("i")
            members[label].append(row)
    del order
    wanted = {label: _apportion(len(m), fractions, seed, label) for label, m in members.items()}
    have = {label: [0] * k for label in members}
    left = {label: len(m) for label, m in members.items()}
    target = _apportion(n, fractions, seed, "rows")
    size = [0] * k
    out = array("b", [-1]) * n if k < 128 else array("h", [-1]) * n

    def place(row: int, split: int) -> None:
        out[row] = split
        size[split] += 1
        for label in _labels_of(rows, row):
            have[label][split] += 1
            left[label] -= 1

    by_size = sorted(members, key=lambda label: (len(members[label]), label))
    for label in by_size:
        if len(members[label]) < MIN_PER_SPLIT * k:
            continue
        lacking = [j for j in range(k) if have[label][j] == 0]
        free = (row for row in members[label] if out[row] < 0)
        for split in lacking:
            row = next(free, -1)
            if row < 0:
                break
            place(row, split)

    active = [label for label in by_size if left[label] > 0]
    while active:
        label = min(active, key=lambda lab: (left[lab], lab))
        need, got = wanted[label], have[label]
        for row in members[label]:
            if out[row] >= 0:
                continue
            place(row, _most_lacking(keys[row], target, size, need, got))
        active = [lab for lab in active if left[lab] > 0]

    for row in range(n):
        if out[row] < 0:  # no label at all
            place(row, _most_lacking(keys[row], target, size))
    return out.tolist()


def _most_lacking(
    key: int,
    target: List[int],
    size: List[int],
    need: Optional[List[int]] = None,
    got: Optional[List[int]] = None,
) -> int:
    """The split that most lacks the label (need - got), then rows (target - size); ties
    rotate with the row's hash key, so they do not all go to the first split."""
    k = len(target)
    best, best_score = 0, None
    for j in range(k):
        score = (
            need[j] - got[j] if need is not None and got is not None else 0,
            target[j] - size[j],
            (j - key) % k,
        )
        if best_score is None or score > best_score:
            best, best_score = j, score
    return best


def _labels_of(rows: RowLabels, row: int) -> Sequence[int]:
    labels = rows[row]
    return (labels,) if isinstance(labels, int) else labels


def _apportion(n: int, fractions: Sequence[float], seed: int, stratum: Any) -> List[int]:
    exact = [f * n for f in fractions]
    counts = [math.floor(x) for x in exact]
    left = n - sum(counts)
    # Largest remainder first; ties broken by a seeded hash, not always the first split.
    order = sorted(
        range(len(fractions)),
        key=lambda i: (-(exact[i] - counts[i]), _rank(seed, "tie", stratum, i)),
    )
    for i in order[:left]:
        counts[i] += 1
    return counts
