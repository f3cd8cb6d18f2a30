"""Gold `doc.cats` → target and mask arrays, with the missing-label rules of docs/design.md
("Gold annotation").

- multiclass group: annotated when exactly one of its present keys is 1.0; no key of the
  group means the group is missing for the doc (mask 0 on all its columns).
- multilabel group: each present key is 1.0 or 0.0; an absent key is missing for that label.
Anything else (no '/', unknown label of a known group, a value outside {0, 1}, two
positives or none in a multiclass group) raises GoldError naming the doc, group and label.
A conditional group (`parent`) annotated on a doc whose gold says its condition does not
hold raises too (the child would be trained where it does not apply). Nothing is coerced.
Keys of a group the schema lacks raise too, unless the reader is made with
`unknown_groups="skip"`: then they are left out and the docs that had them counted per
group (`unknown_docs`), so the caller can warn once (the component's `unknown_groups`).
"""

from collections import Counter
from typing import Dict, Iterable, List, Mapping, Set, Tuple

import numpy
from spacy.training import Example

from .errors import Errors, GoldError, doc_start, format_labels
from .schema import GroupSchema, LabelGroup, split_key

# What a GoldReader does with the keys of a group its schema lacks.
UNKNOWN_GROUP_MODES = ("error", "skip")


class GoldReader:
    """Reads gold cats against one schema (builds its key index once).

    schema (GroupSchema): The groups and labels to read.
    unknown_groups (str): "error" (GoldError E102 for a key of a group the schema lacks)
        or "skip" (leave those keys out; `unknown_docs` counts, per such group, the docs
        read that had one). An unknown label of a known group is an error either way: it
        would silently mislabel the doc.
    """

    def __init__(self, schema: GroupSchema, unknown_groups: str = "error") -> None:
        if unknown_groups not in UNKNOWN_GROUP_MODES:
            raise ValueError(
                f"unknown_groups must be one of {UNKNOWN_GROUP_MODES}, got {unknown_groups!r}."
            )
        self.skip_unknown = unknown_groups == "skip"
        self.unknown_docs: Counter = Counter()
        self.schema = schema
        self.n_labels = schema.n_labels
        self.columns: Dict[Tuple[str, str], int] = {}
        self.multiclass: Dict[str, Tuple[int, int]] = {}
        for group, start, end in schema.slices():
            for j, label in enumerate(group.labels):
                self.columns[(group.name, label)] = start + j
            if group.is_multiclass:
                self.multiclass[group.name] = (start, end)
        # (child, start, end, parent condition's column) of each conditional group.
        self.conditions: List[Tuple[LabelGroup, int, int, int]] = [
            (group, start, end, column)
            for (group, start, end), column in zip(schema.slices(), schema.condition_columns)
            if column is not None
        ]

    def read(
        self, cats: Mapping[str, float], text: str = ""
    ) -> Tuple[numpy.ndarray, numpy.ndarray]:
        """One doc's (truth, mask) rows of width n_labels, float32."""
        truth = numpy.zeros((self.n_labels,), dtype="f")
        mask = numpy.zeros((self.n_labels,), dtype="f")
        self._fill(cats, text, truth, mask)
        return truth, mask

    def read_batch(
        self, batch: Iterable[Tuple[Mapping[str, float], str]]
    ) -> Tuple[numpy.ndarray, numpy.ndarray]:
        """(truths, masks) of shape (n_docs, n_labels) for (cats, text) pairs."""
        items = list(batch)
        truths = numpy.zeros((len(items), self.n_labels), dtype="f")
        masks = numpy.zeros((len(items), self.n_labels), dtype="f")
        for i, (cats, text) in enumerate(items):
            self._fill(cats, text, truths[i], masks[i])
        return truths, masks

    def _fill(
        self, cats: Mapping[str, float], text: str, truth: numpy.ndarray, mask: numpy.ndarray
    ) -> None:
        schema = self.schema
        skipped: Set[str] = set()
        for key, value in cats.items():
            parts = split_key(key)
            if parts is None:
                raise GoldError(Errors.E101.format(doc=doc_start(text), key=key))
            group, label = parts
            col = self.columns.get(parts)
            if col is None:
                if group not in schema:
                    if self.skip_unknown:
                        skipped.add(group)
                        continue
                    raise GoldError(
                        Errors.E102.format(
                            doc=doc_start(text), group=group, key=key, groups=schema.names
                        )
                    )
                raise GoldError(
                    Errors.E103.format(
                        doc=doc_start(text),
                        group=group,
                        label=label,
                        labels=format_labels(schema[group].labels),
                    )
                )
            if value != 1.0 and value != 0.0:
                raise GoldError(Errors.E104.format(doc=doc_start(text), value=value, key=key))
            truth[col] = value
            mask[col] = 1.0
        for group in skipped:  # a doc counts once per group, whatever its number of keys
            self.unknown_docs[group] += 1
        for name, (start, end) in self.multiclass.items():
            present = mask[start:end]
            if not present.any():
                continue
            positives = truth[start:end]
            n_pos = int(positives.sum())
            if n_pos != 1:
                labels = self.schema[name].labels
                if n_pos > 1:
                    on = [labels[j] for j in range(end - start) if positives[j] == 1.0]
                    raise GoldError(
                        Errors.E105.format(
                            doc=doc_start(text), group=name, n=n_pos, labels=format_labels(on)
                        )
                    )
                given = [labels[j] for j in range(end - start) if present[j] == 1.0]
                raise GoldError(
                    Errors.E106.format(doc=doc_start(text), group=name, labels=format_labels(given))
                )
            # The one positive fixes the others: the whole group is annotated.
            mask[start:end] = 1.0
        for child, start, end, column in self.conditions:
            # A child annotated where its parent's gold says the condition does not hold.
            if mask[column] and not truth[column] and mask[start:end].any():
                raise GoldError(
                    Errors.E113.format(doc=doc_start(text), group=child.name, parent=child.parent)
                )


def gold_applies(
    schema: GroupSchema, truths: numpy.ndarray, masks: numpy.ndarray
) -> Dict[str, numpy.ndarray]:
    """Per conditional group, what the gold says of each doc: 1 annotated for the group
    (so it applies), 0 known not to apply (the gold of a condition above it is 0), -1
    unknown (not annotated, and no condition above it known to fail)."""
    state: Dict[str, numpy.ndarray] = {}
    for (group, start, end), column in zip(schema.slices(), schema.condition_columns):
        if column is None:
            continue
        parent = group.condition[0]  # type: ignore[index]
        fails = (masks[:, column] > 0) & (truths[:, column] == 0)
        if parent in state:
            fails |= state[parent] == 0
        annotated = (masks[:, start:end] > 0).any(axis=1)
        state[group.name] = numpy.where(annotated, 1, numpy.where(fails, 0, -1))
    return state


# Where `spacy-mtl.Corpus.v1` records each doc's data set (its .spacy file) in `user_data`.
DATASET_KEY = "mtl_dataset"


# Where `spacy-mtl.mixed_batcher.v1` with `strata = "groups"` records each doc's stratum.
STRATUM_KEY = "mtl_stratum"


def dataset_of(example: Example) -> str:
    """The data set of an example: its file as recorded by `spacy-mtl.Corpus.v1`, else the
    groups its gold annotates ('groups:emotion+sentiment')."""
    name = example.reference.user_data.get(DATASET_KEY)
    if name is not None:
        return str(name)
    return groups_of(example)


def groups_of(example: Example) -> str:
    """The groups an example's gold annotates, as one name: 'groups:emotion+sentiment'."""
    groups = set()
    for key in example.reference.cats:
        parts = split_key(key)
        groups.add(parts[0] if parts else key)
    return "groups:" + "+".join(sorted(groups))


def stratum_of(example: Example) -> str:
    """The stratum the batcher drew an example from (`STRATUM_KEY`), else its data set:
    what the training table's "Docs per data set" column counts."""
    name = example.reference.user_data.get(STRATUM_KEY)
    return str(name) if name is not None else dataset_of(example)
