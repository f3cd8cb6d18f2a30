"""Parsing a row's cells into text, cats (the gold rules of docs/design.md) and stratum."""

import json
import math
import re
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ...errors import Errors, format_labels
from ...schema import MULTICLASS, cat_key
from .exceptions import CellError
from .spec import ConvertSpec, GroupSpec
from .values import clip, scalar_str, surrogate_at

# "5.0" where the spec says 5: what a float column written by pandas looks like.
_WHOLE_FLOAT = re.compile(r"^([+-]?\d+)\.0+$")
# A parsed row: (text, cats, id, stratum, groups dropped by `on_conflict: drop`).
Parsed = Tuple[str, Dict[str, float], Optional[str], int, Tuple[str, ...]]


def whole_number(value: str) -> str:
    """'5' for '5.0' (what pandas writes for an integer column with gaps), as explicit
    labels read it; any other value as it is."""
    match = _WHOLE_FLOAT.match(value)
    return match.group(1) if match is not None else value


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _is_nan_text(value: str) -> bool:
    """A cell that float() reads as NaN: 'NaN', 'nan', '-nan', ..."""
    return len(value) <= 4 and value.lower().lstrip("+-") == "nan"


def _check_unicode(column: str, value: str) -> None:
    """A lone surrogate (JSON "\\udfff", or a codec such as raw_unicode_escape) cannot be
    tokenized, stored or written as UTF-8: the row is bad, not the run."""
    position = surrogate_at(value)
    if position is not None:
        raise CellError(column, Errors.E274.format(char=value[position], pos=position))


class GroupParser:
    """Reads one group's annotation from a row: {label: 1.0 | 0.0}, {} when missing."""

    def __init__(self, group: GroupSpec, spec: ConvertSpec, by_name: Dict[str, GroupSpec]) -> None:
        self.group = group
        self.name = group.name
        self.multiclass = group.kind == MULTICLASS
        self.labels = group.labels
        self.missing = frozenset(("", *spec.missing_values))
        self.empty_negative = group.empty == "negative"
        lookup: Dict[str, str] = {}
        if group.values:
            lookup = dict(group.values)
        elif group.column is not None:
            # A list of labels: a cell holds a label, or its 0-based code. Names win
            # over codes, so labels that look like numbers keep their meaning.
            lookup = {str(i): label for i, label in enumerate(group.labels)}
            lookup.update({label: label for label in group.labels})
        self.lookup = lookup
        shown = [value for value, _ in group.values] if group.values else list(group.labels)
        self.known = format_labels(shown[:30]) + (" ..." if len(shown) > 30 else "")
        if not group.values and group.labels:
            self.known += f" or their codes 0-{len(group.labels) - 1}"
        # The column named in errors of a derived group: its source's column, if one.
        root = group
        while root.source is not None:
            root = by_name[root.source]
        self.error_column = root.column

    def conflict_column(self, annotation: Mapping[str, float]) -> Optional[str]:
        """The column an error about the group's annotation names: its `column`, the first
        of its `columns` that is annotated, or a derived group's source column."""
        if self.group.columns:
            return next(col for col, label in self.group.columns if label in annotation)
        return self.group.column if self.group.column is not None else self.error_column

    def annotate(
        self, cells: Mapping[str, Any], done: Mapping[str, Dict[str, float]]
    ) -> Dict[str, float]:
        group = self.group
        if group.source is not None:
            return self._derived(done[group.source])
        if group.columns:
            return self._per_label(cells)
        assert group.column is not None
        if group.threshold is not None:  # two labels; a score >= threshold is the second
            score = self._score(group.column, _cell_value(cells, group.column))
            if score is None:
                return {}
            gold = self.labels[1] if score >= group.threshold else self.labels[0]
            return {label: 1.0 if label == gold else 0.0 for label in self.labels}
        values = self.cell_values(cells, group.column)
        if values is None:
            return {}
        found = list(dict.fromkeys(self._label(v) for v in values))
        if self.multiclass:
            if len(found) != 1:
                if not found:
                    raise CellError(group.column, Errors.E259.format(group=self.name))
                raise CellError(
                    group.column,
                    Errors.E243.format(n=len(found), labels=clip(found), group=self.name),
                )
            gold = found[0]
            return {label: 1.0 if label == gold else 0.0 for label in self.labels}
        positive = set(found)
        return {label: 1.0 if label in positive else 0.0 for label in self.labels}

    def cell_values(self, cells: Mapping[str, Any], column: str) -> Optional[List[str]]:
        """The label values in a cell; None for a missing annotation, [] for 'no label'."""
        value = _cell_value(cells, column)
        if value is None:
            return None
        if _is_nan(value):  # JSON NaN: as the text "NaN" in a CSV cell
            if "NaN" in self.missing:
                return None
            raise CellError(column, Errors.E275.format(value="NaN"))
        if isinstance(value, str):
            _check_unicode(column, value)
            value = value.strip()
            if value in self.missing:
                return [] if (not value and self.empty_negative) else None
            if self.group.delimiter is not None:
                parts = [p.strip() for p in value.split(self.group.delimiter)]
                parts = [p for p in parts if p]
                if not parts:
                    return [] if self.empty_negative else None
            else:
                parts = [value]
            if not self.lookup:  # labels inferred from the data: NaN is not one
                for part in parts:
                    if _is_nan_text(part):
                        raise CellError(column, Errors.E275.format(value=part))
            return parts
        if isinstance(value, list):
            # JSONL lists: [] is an explicit "annotated, no label". A list of empty names
            # ([""], what "".split(";") gives) is read as the empty cell it came from, as a
            # CSV cell ";;" is: missing (or "no label" with `empty: negative`).
            out = []
            for item in value:
                if isinstance(item, (list, dict)) or item is None or _is_nan(item):
                    raise CellError(column, Errors.E260.format(kind=_type_name(item)))
                if isinstance(item, str):
                    _check_unicode(column, item)
                item_str = item.strip() if isinstance(item, str) else scalar_str(item)
                if item_str:
                    out.append(item_str)
            if value and not out:
                return [] if self.empty_negative else None
            return out
        try:
            return [scalar_str(value)]
        except TypeError:
            raise CellError(column, Errors.E260.format(kind=_type_name(value))) from None

    def _label(self, value: str) -> str:
        if not self.lookup:  # labels not known yet (inference pass): values are labels
            return value
        label = self.lookup.get(value)
        if label is None:
            whole = _WHOLE_FLOAT.match(value)
            if whole is not None:
                label = self.lookup.get(whole.group(1))
        if label is None:
            if _is_nan_text(value):
                raise CellError(self.group.column, Errors.E275.format(value=value))
            raise CellError(
                self.group.column, Errors.E242.format(value=clip(value), known=self.known)
            )
        return label

    def _per_label(self, cells: Mapping[str, Any]) -> Dict[str, float]:
        out: Dict[str, float] = {}
        empty_cols: List[str] = []
        for column, label in self.group.columns:
            value = _cell_value(cells, column)
            flag = self._flag(column, value)
            if flag is None:
                empty_cols.append(column)
                continue
            out[label] = flag
        if self.multiclass and out:
            if empty_cols:
                present = [c for c, _ in self.group.columns if c not in empty_cols]
                raise CellError(
                    empty_cols[0],
                    Errors.E258.format(group=self.name, missing=empty_cols, present=present),
                )
            positive = [label for label, flag in out.items() if flag == 1.0]
            if len(positive) != 1:
                raise CellError(
                    None, Errors.E257.format(group=self.name, n=len(positive), labels=positive)
                )
        return out

    def _flag(self, column: str, value: Any) -> Optional[float]:
        if self.group.threshold is not None:
            score = self._score(column, value)
            if score is None or score == -1.0:
                return None if score is None else 0.0
            return 1.0 if score >= self.group.threshold else 0.0
        if value is None:
            return None
        if _is_nan(value):  # JSON NaN: as the text "NaN" in a CSV cell
            return self._nan(column)
        if isinstance(value, str):
            text = value.strip()
            if text in self.missing:
                return 0.0 if (not text and self.empty_negative) else None
            value = text
        elif isinstance(value, (list, dict)):
            raise CellError(column, Errors.E260.format(kind=_type_name(value)))
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise CellError(column, Errors.E252.format(value=clip(value))) from None
        if math.isnan(number):
            raise CellError(column, Errors.E275.format(value=value))
        if number not in (0.0, 1.0):
            raise CellError(column, Errors.E252.format(value=clip(value)))
        return number

    def _nan(self, column: str) -> Optional[float]:
        """A NaN label is missing only when the spec lists "NaN" in missing_values."""
        if "NaN" in self.missing:
            return None
        raise CellError(column, Errors.E275.format(value="NaN"))

    def _score(self, column: str, value: Any) -> Optional[float]:
        """A soft score in [0, 1]; None when missing, -1.0 for `empty: negative`'s empty cell."""
        if value is None:
            return None
        if _is_nan(value):
            return self._nan(column)
        number: Any = value
        if isinstance(value, str):
            text = value.strip()
            if text in self.missing:
                return -1.0 if (not text and self.empty_negative) else None
            try:
                number = float(text)
            except ValueError:
                raise CellError(
                    column, Errors.E289.format(value=clip(value), group=self.name)
                ) from None
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CellError(column, Errors.E289.format(value=clip(value), group=self.name))
        try:
            number = float(number)
        except OverflowError:  # an int too large for a float: not in [0, 1] either
            number = math.inf
        if math.isnan(number):
            return self._nan(column)
        if not 0.0 <= number <= 1.0:
            raise CellError(column, Errors.E289.format(value=clip(value), group=self.name))
        return number

    def _derived(self, origin: Dict[str, float]) -> Dict[str, float]:
        if not origin:
            return {}
        group = self.group
        if not self.multiclass:
            out: Dict[str, float] = {}
            for target, members in group.mapping:
                flags = [origin.get(m) for m in members]
                if 1.0 in flags:
                    out[target] = 1.0
                elif None not in flags:
                    out[target] = 0.0
                # else: some member label is missing and none is positive → unknown
            return out
        targets = [t for t, members in group.mapping if any(origin.get(m) == 1.0 for m in members)]
        if len(targets) == 1:
            return {label: 1.0 if label == targets[0] else 0.0 for label in self.labels}
        if len(targets) > 1:
            positives = [label for label, flag in origin.items() if flag == 1.0]
            raise CellError(
                self.error_column,
                Errors.E255.format(
                    group=self.name,
                    labels=positives,
                    source=group.source,
                    n=len(targets),
                    targets=targets,
                ),
            )
        if any(m not in origin for _, members in group.mapping for m in members):
            return {}  # nothing positive and some source labels missing: unknown
        raise CellError(self.error_column, Errors.E256.format(group=self.name, source=group.source))


def _type_name(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "JSON object"
    if value is None:
        return "null"
    return type(value).__name__


def _cell_value(cells: Mapping[str, Any], column: str) -> Any:
    try:
        return cells[column]
    except KeyError:
        raise CellError(column, Errors.E250.format(column=column)) from None


class RowParser:
    """Turns a record's cells into (text, cats, id, stratum, dropped groups)."""

    def __init__(self, spec: ConvertSpec) -> None:
        self.spec = spec
        by_name = {g.name: g for g in spec.groups}
        self.by_name = by_name
        self.groups = [GroupParser(g, spec, by_name) for g in spec.groups]
        # Keys are built once and shared by every doc: tens of thousands of dicts hold
        # references to the same strings.
        self.keys = {
            g.name: {label: cat_key(g.name, label) for label in g.labels} for g in spec.groups
        }
        strat = spec.stratify_group
        self.stratify = strat.name if strat is not None else None
        self.strata = {label: i for i, label in enumerate(strat.labels)} if strat else {}

    def parse(self, cells: Mapping[str, Any]) -> Parsed:
        spec = self.spec
        text = _cell_value(cells, spec.text)
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise CellError(spec.text, Errors.E261.format(value=clip(text)))
        if not text.strip():
            raise CellError(spec.text, Errors.E244)
        _check_unicode(spec.text, text)
        doc_id: Optional[str] = None
        if spec.id is not None:
            value = _cell_value(cells, spec.id)
            if value is not None and not _is_nan(value):
                doc_id = value if isinstance(value, str) else json.dumps(value)
                _check_unicode(spec.id, doc_id)
                doc_id = doc_id or None
        done: Dict[str, Dict[str, float]] = {}
        cats: Dict[str, float] = {}
        dropped: List[str] = []
        for parser in self.groups:
            annotation = parser.annotate(cells, done)
            conditional = parser.group.condition is not None
            if annotation and conditional and self._conflict(parser, annotation, done):
                dropped.append(parser.name)
                annotation = {}  # missing: also for groups derived from it
            done[parser.name] = annotation
            keys = self.keys[parser.name]
            for label, value in annotation.items():
                cats[keys[label]] = value
        stratum = -1
        if self.stratify is not None:
            for label, value in done[self.stratify].items():
                if value == 1.0:
                    stratum = self.strata[label]
        return text, cats, doc_id, stratum, tuple(dropped)

    def _conflict(
        self,
        parser: GroupParser,
        annotation: Mapping[str, float],
        done: Mapping[str, Dict[str, float]],
    ) -> bool:
        """Whether an annotated conditional group's parent says, in the same row, that the
        condition does not hold (its label is 0: a multiclass parent has another label).
        With `on_conflict: error` that is a bad row (CellError); with 'drop', True. A
        parent that is missing (or its condition label, in a multilabel parent) is no
        conflict."""
        group = parser.group
        assert group.condition is not None
        parent_name, label = group.condition
        parent = done[parent_name]
        if parent.get(label) != 0.0:
            return False
        if group.on_conflict == "drop":
            return True
        if self.by_name[parent_name].kind == MULTICLASS:
            gold = [name for name, value in parent.items() if value == 1.0]
            found = f"group {parent_name!r} is {clip(gold[0]) if gold else gold!r}"
        else:
            found = f"{cat_key(parent_name, label)!r} is 0"
        raise CellError(
            parser.conflict_column(annotation),
            Errors.E279.format(group=group.name, parent=group.parent, found=found),
        )
