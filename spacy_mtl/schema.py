"""Label groups: what the component predicts, in what order, with what loss weight.

Plain Python, no spaCy: the convert command, the component and the scorer all share it.
A `GroupSchema` is immutable; "changing" it returns a new one.
"""

import math
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy

from .errors import Errors, SchemaError, format_labels

MULTICLASS = "multiclass"
MULTILABEL = "multilabel"
KINDS = (MULTICLASS, MULTILABEL)
SEP = "/"
DEFAULT_THRESHOLD = 0.5

_GROUP_KEYS = (
    "kind",
    "labels",
    "weight",
    "threshold",
    "class_offsets",
    "class_weights",
    "pos_weight",
    "temperature",
    "reduction",
    "parent",
)
REDUCTIONS = ("doc", "pair")
DEFAULT_REDUCTION = "doc"


def cat_key(group: str, label: str) -> str:
    """The doc.cats key of a label: '{group}/{label}'."""
    return f"{group}{SEP}{label}"


def split_key(key: str) -> Optional[Tuple[str, str]]:
    """Split a doc.cats key at its first '/' into (group, label); None if it has no '/'.

    Group names may not contain '/', labels may, so the first '/' is the separator.
    """
    group, sep, label = key.partition(SEP)
    return (group, label) if sep else None


@dataclass(frozen=True)
class LabelGroup:
    """One group of labels predicted together.

    name (str): Group name, the part of the doc.cats key before '/'.
    kind (str): 'multiclass' (softmax, exactly one label) or 'multilabel' (sigmoid).
    labels (Tuple[str, ...]): Ordered labels; empty until inferred at initialize.
    weight (float): Weight of this group's loss in the total loss.
    thresholds (Dict[str, float]): Per-label decision thresholds (multilabel only); labels
        not listed use the component-wide threshold.
    class_offsets (Dict[str, float]): Per-class decision offsets (multiclass only): the
        decision is the argmax of log p + offset (unlisted classes: 0), the multiclass
        counterpart of thresholds. `tune` fits them on dev for macro F1; the scores in
        doc.cats stay the model's probabilities.
    class_weights (Dict[str, float]): Per-class weights of the cross-entropy (multiclass
        only), torch's `weight=` argument; unlisted classes weigh 1.0.
    pos_weight (Dict[str, float]): Per-label weight of positives in the binary cross-entropy
        (multilabel only), torch's `pos_weight=` argument; unlisted labels weigh 1.0.
    temperature (float): Logits are divided by this before the activation (calibration).
    reduction (str): How a multilabel group's BCE is averaged: "doc" (each annotated doc's
        summed BCE, averaged over the annotated docs: a per-doc negative log-likelihood like
        a multiclass group's cross-entropy) or "pair" (the mean over annotated (doc, label)
        pairs). Multiclass groups are always per doc. See docs/benchmarks.md for the choice.
    parent (Optional[str]): A condition '{group}/{label}': this group applies only where
        that (earlier) group's label is that one (a multilabel parent: where that label is
        on). Its scores are then conditional, P(label | condition); see docs/design.md
        ("Conditional groups").
    """

    name: str
    kind: str
    labels: Tuple[str, ...] = ()
    weight: float = 1.0
    thresholds: Mapping[str, float] = field(default_factory=dict)
    class_offsets: Mapping[str, float] = field(default_factory=dict)
    class_weights: Mapping[str, float] = field(default_factory=dict)
    pos_weight: Mapping[str, float] = field(default_factory=dict)
    temperature: float = 1.0
    reduction: str = DEFAULT_REDUCTION
    parent: Optional[str] = None

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not name:
            raise SchemaError(Errors.E015.format(group=name))
        if SEP in name:
            raise SchemaError(Errors.E002.format(group=name))
        if self.kind not in KINDS:
            raise SchemaError(Errors.E001.format(group=name, kind=self.kind))
        seen = set()
        for label in self.labels:
            if not isinstance(label, str) or not label:
                raise SchemaError(Errors.E011.format(group=name, value=list(self.labels)))
            if label in seen:
                raise SchemaError(Errors.E003.format(group=name, label=label))
            seen.add(label)
        _check_positive(name, "weight", self.weight, allow_zero=True)
        _check_positive(name, "temperature", self.temperature)
        if self.reduction not in REDUCTIONS:
            raise SchemaError(Errors.E013.format(group=name, value=self.reduction))
        if self.kind == MULTICLASS and self.reduction != DEFAULT_REDUCTION:
            raise SchemaError(Errors.E007.format(group=name, field="reduction", kind=MULTILABEL))
        if self.kind == MULTICLASS:
            for fld in ("thresholds", "pos_weight"):
                if getattr(self, fld):
                    raise SchemaError(Errors.E007.format(group=name, field=fld, kind=MULTILABEL))
        else:
            for fld in ("class_weights", "class_offsets"):
                if getattr(self, fld):
                    raise SchemaError(Errors.E007.format(group=name, field=fld, kind=MULTICLASS))
        for label, value in self.thresholds.items():
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise SchemaError(Errors.E009.format(group=name, label=label, value=value))
        for fld in ("class_weights", "pos_weight"):
            for value in getattr(self, fld).values():
                _check_positive(name, fld, value, allow_zero=True)
        for label, value in self.class_offsets.items():
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise SchemaError(Errors.E014.format(group=name, label=label, value=value))
        if self.parent is not None:
            parts = split_key(self.parent) if isinstance(self.parent, str) else None
            if parts is None or not parts[0] or not parts[1]:
                raise SchemaError(Errors.E017.format(group=name, value=self.parent))
            if parts[0] == name:
                raise SchemaError(Errors.E018.format(group=name, parent=self.parent))
        if self.labels:
            self.check_label_refs()

    @property
    def condition(self) -> Optional[Tuple[str, str]]:
        """(parent group, label) of a conditional group, else None."""
        return split_key(self.parent) if self.parent is not None else None

    def check_label_refs(self) -> None:
        """Check that per-label settings name labels of the group."""
        for fld in ("thresholds", "class_offsets", "class_weights", "pos_weight"):
            for label in getattr(self, fld):
                if label not in self.labels:
                    raise SchemaError(
                        Errors.E006.format(
                            group=self.name,
                            field=fld,
                            label=label,
                            labels=format_labels(self.labels),
                        )
                    )

    @property
    def is_multiclass(self) -> bool:
        return self.kind == MULTICLASS

    @property
    def keys(self) -> Tuple[str, ...]:
        """The group's doc.cats keys, in label order."""
        return tuple(cat_key(self.name, label) for label in self.labels)

    def threshold_for(self, label: str, default: float = DEFAULT_THRESHOLD) -> float:
        return float(self.thresholds.get(label, default))

    def resolved_offsets(self) -> Tuple[float, ...]:
        """Each class's decision offset in label order (0.0 where none is set)."""
        return tuple(float(self.class_offsets.get(label, 0.0)) for label in self.labels)

    def resolved_thresholds(self, default: float = DEFAULT_THRESHOLD) -> Tuple[float, ...]:
        """Each label's decision threshold in label order, `default` where none is set."""
        return tuple(self.threshold_for(label, default) for label in self.labels)

    def decide_matrix(self, scores: Any, default: float = DEFAULT_THRESHOLD) -> numpy.ndarray:
        """The decisions of a batch: a bool array (n_docs, n_labels), True where chosen.

        The one decision rule of spacy_mtl (component, scorer and predict use it).
        Multiclass: the label with the largest log score + class offset (without offsets the
        most probable label), the first one on ties (numpy's argmax).
        Multilabel: every label whose score is at or above its threshold.

        scores (array-like): The group's scores (probabilities), (n_docs, n_labels).
        default (float): The threshold of labels without their own (the component's).
        """
        s = numpy.asarray(scores, dtype="f8").reshape((-1, len(self.labels)))
        if self.is_multiclass:
            chosen = numpy.zeros(s.shape, dtype=bool)
            if s.shape[1]:
                if self.class_offsets:
                    # argmax(log p + b) = argmax(p · e^b), without log(0).
                    s = s * self._offset_factors[None, :]
                chosen[numpy.arange(len(s)), s.argmax(axis=1)] = True
            return chosen
        # In float64: a float32 score is compared with the threshold as written.
        return s >= self._threshold_array(default)[None, :]

    # Arrays of the decision rule, made once per group (the group is frozen; its mappings
    # are never changed in place).

    @cached_property
    def _offset_factors(self) -> numpy.ndarray:
        return numpy.exp(numpy.asarray(self.resolved_offsets(), dtype="f8"))

    def _threshold_array(self, default: float) -> numpy.ndarray:
        cache = self._thresholds_by_default
        if default not in cache:
            cache[default] = numpy.asarray(self.resolved_thresholds(default), dtype="f8")
        return cache[default]

    @cached_property
    def _thresholds_by_default(self) -> Dict[float, numpy.ndarray]:
        return {}

    def decide(
        self, scores: Sequence[float], default: float = DEFAULT_THRESHOLD
    ) -> Union[str, List[str]]:
        """The decision of one doc: a label (multiclass) or a list of labels (multilabel).

        scores (Sequence[float]): The group's scores in label order.
        default (float): The threshold of labels without their own (the component's).
        """
        chosen = self.decide_matrix([list(scores)], default)[0]
        picked = [label for label, keep in zip(self.labels, chosen) if keep]
        return picked[0] if self.is_multiclass else picked

    def label_weights(self, which: str) -> Optional[List[float]]:
        """Per-label `class_weights` or `pos_weight` as a list in label order, or None."""
        weights: Mapping[str, float] = getattr(self, which)
        if not weights:
            return None
        return [float(weights.get(label, 1.0)) for label in self.labels]

    @classmethod
    def from_config(cls, name: str, cfg: Mapping[str, Any]) -> "LabelGroup":
        """Build a group from its config block (the dict under `groups.{name}`)."""
        if not isinstance(cfg, Mapping):
            raise SchemaError(f"Group {name!r}: expected a block of settings, got {cfg!r}.")
        unknown = sorted(set(cfg) - set(_GROUP_KEYS))
        if unknown:
            raise SchemaError(Errors.E008.format(group=name, keys=unknown, known=list(_GROUP_KEYS)))
        if "kind" not in cfg:
            raise SchemaError(Errors.E012.format(group=name))
        labels = cfg.get("labels") or []
        if isinstance(labels, str) or not isinstance(labels, (list, tuple)):
            raise SchemaError(Errors.E011.format(group=name, value=labels))
        threshold = cfg.get("threshold") or {}
        if isinstance(threshold, (int, float)):
            # One number for the whole group: the same threshold for every label.
            if not labels:
                raise SchemaError(
                    f"Group {name!r}: a single-number threshold needs the labels listed; "
                    "give a {label: threshold} mapping or set the component's threshold."
                )
            threshold = {label: float(threshold) for label in labels}
        return cls(
            name=name,
            kind=cfg["kind"],
            labels=tuple(labels),
            weight=float(cfg.get("weight", 1.0)),
            thresholds=_float_map(name, "threshold", threshold),
            class_offsets=_float_map(name, "class_offsets", cfg.get("class_offsets") or {}),
            class_weights=_float_map(name, "class_weights", cfg.get("class_weights") or {}),
            pos_weight=_float_map(name, "pos_weight", cfg.get("pos_weight") or {}),
            temperature=float(cfg.get("temperature", 1.0)),
            reduction=cfg.get("reduction", DEFAULT_REDUCTION),
            parent=cfg.get("parent"),
        )

    def to_config(self) -> Dict[str, Any]:
        """The group's config block; `from_config(name, to_config())` gives it back."""
        cfg: Dict[str, Any] = {"kind": self.kind, "labels": list(self.labels)}
        cfg["weight"] = self.weight
        if self.thresholds:
            cfg["threshold"] = dict(self.thresholds)
        if self.class_offsets:
            cfg["class_offsets"] = dict(self.class_offsets)
        if self.class_weights:
            cfg["class_weights"] = dict(self.class_weights)
        if self.pos_weight:
            cfg["pos_weight"] = dict(self.pos_weight)
        if self.temperature != 1.0:
            cfg["temperature"] = self.temperature
        if self.kind == MULTILABEL:
            # Always written: a saved model keeps the loss it was trained with even if the
            # default changes.
            cfg["reduction"] = self.reduction
        if self.parent is not None:
            cfg["parent"] = self.parent
        return cfg


@dataclass(frozen=True)
class ActivationLayout:
    """The output columns of all multilabel groups (a slice when contiguous, else indices;
    None without any), each multiclass group's (start, end), and each column's temperature
    (None when all are 1): `activate` runs one sigmoid for all multilabel groups."""

    sigmoid_columns: Union[slice, numpy.ndarray, None]
    softmax_slices: Tuple[Tuple[int, int], ...]
    temperatures: Optional[Tuple[float, ...]]


@dataclass(frozen=True)
class GroupSchema:
    """The ordered label groups of one component, and the component-wide threshold."""

    groups: Tuple[LabelGroup, ...]
    threshold: float = DEFAULT_THRESHOLD

    def __post_init__(self) -> None:
        # No groups is allowed here (a component whose groups are inferred at initialize);
        # `from_config` and `check_complete` refuse it.
        names = [g.name for g in self.groups]
        if len(set(names)) != len(names):
            raise SchemaError(f"Group names must be unique, got {names}.")
        if not 0.0 <= self.threshold <= 1.0:
            raise SchemaError(f"threshold must be in [0, 1], got {self.threshold!r}.")
        self._check_parents(labels_known=False)

    def _check_parents(self, labels_known: bool) -> None:
        """Each condition names an earlier group (so there is no cycle) and, once that group
        has labels, one of them. labels_known: the labels must be there (check_complete)."""
        seen: Dict[str, LabelGroup] = {}
        for group in self.groups:
            condition = group.condition
            if condition is not None:
                parent, label = condition
                if parent not in seen:
                    later = parent in self
                    raise SchemaError(
                        Errors.E019.format(
                            group=group.name,
                            parent=group.parent,
                            problem="comes after it" if later else "is not a group",
                            groups=self.names,
                        )
                    )
                labels = seen[parent].labels
                if (labels or labels_known) and label not in labels:
                    raise SchemaError(
                        Errors.E020.format(
                            group=group.name,
                            parent=parent,
                            label=label,
                            labels=format_labels(labels),
                        )
                    )
            seen[group.name] = group

    @classmethod
    def from_config(
        cls,
        groups: Mapping[str, Mapping[str, Any]],
        threshold: float = DEFAULT_THRESHOLD,
        *,
        allow_empty: bool = False,
    ) -> "GroupSchema":
        """Build a schema from the component's `groups` config (group order is kept).

        groups (Mapping[str, Mapping[str, Any]]): {group: settings}.
        threshold (float): The component-wide decision threshold.
        allow_empty (bool): Accept no groups at all (the component infers them at
            initialize); otherwise that is an error.
        RETURNS (GroupSchema): The schema.
        """
        if not isinstance(groups, Mapping):
            raise SchemaError(f"`groups` must be a mapping {{name: settings}}, got {groups!r}.")
        if not groups and not allow_empty:
            raise SchemaError(Errors.E010)
        return cls(
            groups=tuple(LabelGroup.from_config(name, cfg) for name, cfg in groups.items()),
            threshold=float(threshold),
        )

    def to_config(self) -> Dict[str, Dict[str, Any]]:
        return {g.name: g.to_config() for g in self.groups}

    def __iter__(self) -> Iterator[LabelGroup]:
        return iter(self.groups)

    def __len__(self) -> int:
        return len(self.groups)

    def __contains__(self, name: object) -> bool:
        return any(g.name == name for g in self.groups)

    def __getitem__(self, name: str) -> LabelGroup:
        for group in self.groups:
            if group.name == name:
                return group
        raise KeyError(f"No group {name!r} in the schema (groups: {self.names}).")

    @property
    def names(self) -> List[str]:
        return [g.name for g in self.groups]

    @property
    def n_labels(self) -> int:
        """Total number of labels over all groups: the model's output width."""
        return sum(len(g.labels) for g in self.groups)

    @property
    def keys(self) -> List[str]:
        """Every doc.cats key, in model output order."""
        return [key for g in self.groups for key in g.keys]

    def slices(self) -> List[Tuple[LabelGroup, int, int]]:
        """(group, start, end) column ranges of each group in the model output."""
        out = []
        start = 0
        for group in self.groups:
            out.append((group, start, start + len(group.labels)))
            start += len(group.labels)
        return out

    @cached_property
    def activation_layout(self) -> "ActivationLayout":
        """Which output columns `activate` runs softmax and sigmoid over (made once)."""
        multilabel = [
            numpy.arange(start, end) for g, start, end in self.slices() if not g.is_multiclass
        ]
        columns = numpy.concatenate(multilabel) if multilabel else numpy.zeros(0, dtype=int)
        sigmoid_columns: Union[slice, numpy.ndarray, None] = None
        if columns.size and (columns[-1] - columns[0] + 1 == columns.size):
            sigmoid_columns = slice(int(columns[0]), int(columns[-1]) + 1)
        elif columns.size:
            sigmoid_columns = columns
        temperatures = [g.temperature for g in self.groups for _ in g.labels]
        return ActivationLayout(
            sigmoid_columns=sigmoid_columns,
            softmax_slices=tuple(
                (start, end) for g, start, end in self.slices() if g.is_multiclass
            ),
            temperatures=None if set(temperatures) <= {1.0} else tuple(temperatures),
        )

    def decide(self, row: Sequence[float]) -> Dict[str, Union[str, List[str], None]]:
        """{group: decision} of one doc's (conditional) scores, all groups in output order,
        at the schema's thresholds (the component-wide one where a label has none); None for
        a conditional group whose condition the decisions above it do not meet."""
        decided = self.decide_batch([list(row)])
        out: Dict[str, Union[str, List[str], None]] = {}
        for group, (chosen, applies) in zip(self.groups, decided):
            if applies is not None and not applies[0]:
                out[group.name] = None
                continue
            picked = [label for label, keep in zip(group.labels, chosen[0]) if keep]
            out[group.name] = picked[0] if group.is_multiclass else picked
        return out

    def decide_batch(
        self, scores: Any, default: Optional[float] = None
    ) -> List[Tuple[numpy.ndarray, Optional[numpy.ndarray]]]:
        """Per group in order, (chosen, applies) for a batch of conditional scores.

        chosen: bool (n_docs, n_labels), `LabelGroup.decide_matrix` on the group's scores.
        applies: bool (n_docs,), where the decisions meet the group's condition and every
        condition above it (its parent decided the condition's label, and the parent
        applies); None for an unconditional group.

        scores (array-like): Conditional scores (n_docs, n_labels), as `scores_of` gives.
        default (Optional[float]): The threshold of labels without their own; the schema's.
        """
        s = numpy.asarray(scores, dtype="f8").reshape((-1, self.n_labels))
        default = self.threshold if default is None else default
        out: List[Tuple[numpy.ndarray, Optional[numpy.ndarray]]] = []
        by_name: Dict[str, Tuple[numpy.ndarray, Optional[numpy.ndarray]]] = {}
        for (group, start, end), column in zip(self.slices(), self.condition_columns):
            chosen = group.decide_matrix(s[:, start:end], default)
            applies: Optional[numpy.ndarray] = None
            if column is not None:
                parent, label = group.condition  # type: ignore[misc]
                parent_chosen, parent_applies = by_name[parent]
                applies = parent_chosen[:, self[parent].labels.index(label)].copy()
                if parent_applies is not None:
                    applies &= parent_applies
            by_name[group.name] = (chosen, applies)
            out.append((chosen, applies))
        return out

    # -- conditional groups (`parent`) ---------------------------------------------------

    @property
    def is_conditional(self) -> bool:
        """Whether any group has a parent condition."""
        return any(g.parent is not None for g in self.groups)

    @cached_property
    def condition_columns(self) -> Tuple[Optional[int], ...]:
        """Per group in order, the output column of its parent condition's label; None for
        an unconditional group."""
        starts = {g.name: start for g, start, _ in self.slices()}
        columns: List[Optional[int]] = []
        for group in self.groups:
            condition = group.condition
            if condition is None:
                columns.append(None)
            else:
                parent, label = condition
                columns.append(starts[parent] + self[parent].labels.index(label))
        return tuple(columns)

    def joint_scores(self, scores: Any) -> numpy.ndarray:
        """Joint probabilities of conditional scores, float64 (n_docs, n_labels).

        A conditional group's P(label | condition) times its condition's joint probability
        (the parent label's joint score), group by group in order: a parent comes before
        its children, so chains compose. Unconditional groups are unchanged. These are the
        values of doc.cats.
        """
        joint = numpy.array(scores, dtype="f8").reshape((-1, self.n_labels))
        for (_, start, end), column in zip(self.slices(), self.condition_columns):
            if column is not None:
                joint[:, start:end] *= joint[:, column : column + 1]
        return joint

    def conditional_scores(self, joint: Any) -> numpy.ndarray:
        """The inverse of `joint_scores` (e.g. for scores read back from doc.cats): each
        conditional group's joint scores divided by its condition's joint probability, 0
        where that is 0. float64 (n_docs, n_labels)."""
        joint = numpy.asarray(joint, dtype="f8").reshape((-1, self.n_labels))
        cond = joint.copy()
        for (_, start, end), column in zip(self.slices(), self.condition_columns):
            if column is not None:
                p = joint[:, column : column + 1]
                with numpy.errstate(divide="ignore", invalid="ignore"):
                    cond[:, start:end] = numpy.where(p > 0, joint[:, start:end] / p, 0.0)
        return cond

    def scores_from_cats(self, cats: Any) -> numpy.ndarray:
        """The scores the groups are decided and scored on, from doc.cats values in schema
        order (n_docs, n_labels): a conditional group's joint ones made conditional
        (`conditional_scores`), the others as they are. The one place that turns what
        doc.cats holds back into `doc._.mtl_scores`' values; float64."""
        if self.is_conditional:
            return self.conditional_scores(cats)
        return numpy.asarray(cats, dtype="f8")

    def fingerprint(self) -> Dict[str, Any]:
        """What the model's output columns mean: groups, kinds, labels and output width.

        Saved with the weights and compared on load, so a `cfg` edited or swapped after
        training (groups reordered, a label removed) is refused instead of mislabelling.
        """
        return {
            "groups": [[g.name, g.kind, list(g.labels)] for g in self.groups],
            "n_labels": self.n_labels,
        }

    @property
    def is_complete(self) -> bool:
        """Whether there are groups and every group has at least one label."""
        return bool(self.groups) and all(g.labels for g in self.groups)

    def check_complete(self) -> None:
        if not self.groups:
            raise SchemaError(Errors.E010)
        for group in self.groups:
            if not group.labels:
                raise SchemaError(Errors.E004.format(group=group.name))
            group.check_label_refs()
        self._check_parents(labels_known=True)

    def replace_group(self, name: str, **changes: Any) -> "GroupSchema":
        """A new schema with one group's fields changed (validated again)."""
        self[name]  # raises KeyError for an unknown group
        groups = tuple(replace(g, **changes) if g.name == name else g for g in self.groups)
        return replace(self, groups=groups)

    def with_labels(self, labels: Mapping[str, Sequence[str]]) -> "GroupSchema":
        """Fill the groups that have no labels yet from `{group: labels}`.

        Groups that already have labels keep them; a name not in the schema is an error.
        """
        for name in labels:
            if name not in self:
                raise SchemaError(
                    f"Labels were given for group {name!r}, which is not in the schema "
                    f"(groups: {self.names}). Add it to `groups` in the config."
                )
        groups = tuple(
            g if g.labels or g.name not in labels else replace(g, labels=tuple(labels[g.name]))
            for g in self.groups
        )
        return replace(self, groups=groups)


def infer_labels(keys: Iterable[str], schema: GroupSchema) -> Dict[str, List[str]]:
    """Labels of the schema's label-less groups found among doc.cats keys, sorted.

    Sorted, not first-seen, so the output order does not depend on corpus order.
    Keys of groups that already have labels are ignored here (they are checked as gold).
    Raises SchemaError for a key without '/' or a group the schema does not know.
    """
    empty = {g.name for g in schema if not g.labels}
    found: Dict[str, set] = {name: set() for name in empty}
    for key in keys:
        parts = split_key(key)
        if parts is None:
            raise SchemaError(
                f"doc.cats key {key!r} has no '/': spacy_mtl expects '{{group}}/{{label}}'."
            )
        group, label = parts
        if group not in schema:
            raise SchemaError(
                f"doc.cats key {key!r} names group {group!r}, which is not in the schema "
                f"(groups: {schema.names})."
            )
        if group in found:
            found[group].add(label)
    return {name: sorted(labels) for name, labels in found.items() if labels}


@dataclass(frozen=True)
class GroupEvidence:
    """What the gold doc.cats of a corpus show about one group (see `infer_groups`).

    name (str): The group name.
    labels (Tuple[str, ...]): Every label seen, sorted.
    n_docs (int): Docs with at least one key of the group (annotated for it).
    n_not_one (int): Of those, docs without exactly one label at 1.0.
    """

    name: str
    labels: Tuple[str, ...]
    n_docs: int
    n_not_one: int

    @property
    def kind(self) -> str:
        """Multiclass when every annotated doc has exactly one positive, else multilabel."""
        return MULTICLASS if self.n_not_one == 0 else MULTILABEL


def group_evidence(cats: Iterable[Mapping[str, float]]) -> Tuple[GroupEvidence, ...]:
    """The groups seen in gold doc.cats, sorted by name (so the result does not depend on
    corpus order), with their labels and the counts that decide their kind.

    cats (Iterable[Mapping[str, float]]): Each doc's gold doc.cats.
    RETURNS (Tuple[GroupEvidence, ...]): One per '{group}/' prefix seen.
    """
    labels: Dict[str, set] = {}
    n_docs: Dict[str, int] = {}
    n_not_one: Dict[str, int] = {}
    for doc_cats in cats:
        positives: Dict[str, int] = {}
        for key, value in doc_cats.items():
            parts = split_key(key)
            if parts is None:
                raise SchemaError(
                    f"doc.cats key {key!r} has no '/': spacy_mtl expects '{{group}}/{{label}}'."
                )
            group, label = parts
            labels.setdefault(group, set()).add(label)
            positives[group] = positives.get(group, 0) + (value == 1.0)
        for group, n in positives.items():
            n_docs[group] = n_docs.get(group, 0) + 1
            n_not_one[group] = n_not_one.get(group, 0) + (n != 1)
    return tuple(
        GroupEvidence(name, tuple(sorted(labels[name])), n_docs[name], n_not_one[name])
        for name in sorted(labels)
    )


def infer_groups(cats: Iterable[Mapping[str, float]]) -> Tuple[LabelGroup, ...]:
    """Groups, kinds and labels read from gold doc.cats, for a schema with no groups.

    A group is every '{group}/{label}' prefix seen, its labels every label seen (both
    sorted). It is multiclass when each doc with a key of the group has exactly one of them
    at 1.0, else multilabel.

    cats (Iterable[Mapping[str, float]]): Each training doc's gold doc.cats.
    RETURNS (Tuple[LabelGroup, ...]): The groups; empty if no doc has a key.
    """
    return tuple(LabelGroup(e.name, e.kind, e.labels) for e in group_evidence(cats))


def _check_positive(group: str, fld: str, value: Any, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        ok = value >= 0 if allow_zero else value > 0
    if not ok:
        raise SchemaError(Errors.E005.format(group=group, field=fld, value=value))


def _float_map(group: str, fld: str, value: Any) -> Dict[str, float]:
    if not isinstance(value, Mapping):
        raise SchemaError(
            f"Group {group!r}: {fld} must be a mapping {{label: number}}, got {value!r}."
        )
    out = {}
    for label, number in value.items():
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise SchemaError(
                f"Group {group!r}: {fld} for label {label!r} must be a number, got {number!r}."
            )
        out[str(label)] = float(number)
    return out
