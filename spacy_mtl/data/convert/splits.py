"""Splitting a corpus into named parts (train/dev/test), stratified and deterministic."""

import hashlib
import math
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ...errors import Errors
from .exceptions import ConvertError

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


def assign_splits(strata: Sequence[int], fractions: Sequence[float], seed: int = 0) -> List[int]:
    """Assign rows to splits, stratified and deterministic.

    Within each stratum (rows with the same label of the stratifying group; -1 = rows
    missing that group) the rows are ordered by a keyed hash of (seed, row index) and cut
    into parts by largest-remainder rounding, so every split holds each stratum's share
    within one row.

    strata (Sequence[int]): Stratum of each row, in input order.
    fractions (Sequence[float]): Share of each split, summing to 1.
    seed (int): Changes the assignment; the same seed gives the same assignment.
    RETURNS (List[int]): Index of the split of each row.
    """
    members: Dict[int, List[int]] = {}
    for row, stratum in enumerate(strata):
        members.setdefault(stratum, []).append(row)
    out = [0] * len(strata)
    for stratum in sorted(members):
        rows = sorted(members[stratum], key=lambda row: _rank(seed, "row", row))
        counts = _apportion(len(rows), fractions, seed, stratum)
        start = 0
        for split, count in enumerate(counts):
            for row in rows[start : start + count]:
                out[row] = split
            start += count
    return out


def _apportion(n: int, fractions: Sequence[float], seed: int, stratum: int) -> List[int]:
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
