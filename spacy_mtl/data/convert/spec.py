"""Convert's spec: where the text is and how each label group is laid out in a row.

A spec is read from YAML or JSON (`load_spec`) or a mapping (`ConvertSpec.from_dict`) and
checked once, so every error names the spec, the key and the group at fault.

DOCS: docs/convert.md
"""

import json
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

import srsly

from ...errors import Errors, SchemaError, format_labels
from ...schema import MULTICLASS, MULTILABEL, GroupSchema, LabelGroup, split_key
from ..io import DuplicateKey, PathLike, base_name, unique_keys
from .exceptions import ConvertError, SpecError
from .values import (
    as_list,
    check_cell_value,
    check_encoding,
    check_keys,
    check_pattern,
    check_sep,
    check_unicode,
    invalid_value,
    key_str,
    str_list,
    str_setting,
)

if TYPE_CHECKING:
    from .joins import JoinSpec

FORMATS = ("csv", "tsv", "jsonl", "lines")
EMPTY_POLICIES = ("missing", "negative")
CONFLICT_POLICIES = ("error", "drop")
_TOP_KEYS = (
    "format",
    "text",
    "id",
    "columns",
    "header",
    "sep",
    "quoting",
    "encoding",
    "pattern",
    "labels_file",
    "labels_column",
    "missing_values",
    "groups",
    "join",
)
_GROUP_KEYS = (
    "kind",
    "column",
    "columns",
    "labels",
    "delimiter",
    "empty",
    "from",
    "mapping",
    "threshold",
    "parent",
    "on_conflict",
)


@dataclass(frozen=True)
class GroupSpec:
    """How one label group is read from a row.

    name (str): Group name (the part of the doc.cats key before '/').
    kind (str): 'multiclass' or 'multilabel'.
    labels (Tuple[str, ...]): The group's labels in order; empty until inferred from the
        data (only possible with `column` and no `labels` in the spec).
    column (Optional[str]): The one column holding the label(s).
    values (Tuple[Tuple[str, str], ...]): (cell value, label) pairs from a `labels`
        mapping. Empty when `labels` is a list: cells then hold a label or its 0-based code.
    delimiter (Optional[str]): Separator of several labels in one cell.
    columns (Tuple[Tuple[str, str], ...]): (column, label) pairs: one 0/1 column per label.
    empty (str): What an empty cell means: 'missing' (default) or 'negative' (multilabel:
        annotated, no label).
    source (Optional[str]): `from`: the group this one is derived from.
    mapping (Tuple[Tuple[str, Tuple[str, ...]], ...]): (label, source labels) pairs of a
        derived group.
    threshold (Optional[float]): Soft scores in [0, 1]: a score >= threshold is positive
        (multilabel `columns`), or the second of two labels (multiclass `column`).
    parent (Optional[str]): A condition '{group}/{label}' on an earlier group: this group
        applies only where that group's label is that one (multilabel: that label is on).
        The component's `parent` (`LabelGroup.parent`).
    on_conflict (str): A row annotated for this group where its parent's value says the
        condition does not hold: 'error' (default; a bad row) or 'drop' (the row is kept
        without this group's keys, and the summary counts it).
    """

    name: str
    kind: str
    labels: Tuple[str, ...] = ()
    column: Optional[str] = None
    values: Tuple[Tuple[str, str], ...] = ()
    delimiter: Optional[str] = None
    columns: Tuple[Tuple[str, str], ...] = ()
    empty: str = "missing"
    source: Optional[str] = None
    mapping: Tuple[Tuple[str, Tuple[str, ...]], ...] = ()
    threshold: Optional[float] = None
    parent: Optional[str] = None
    on_conflict: str = "error"

    @property
    def condition(self) -> Optional[Tuple[str, str]]:
        """(parent group, label) of a conditional group, else None."""
        return split_key(self.parent) if self.parent is not None else None

    @property
    def layout(self) -> str:
        """'column', 'columns' or 'from'."""
        if self.source is not None:
            return "from"
        return "columns" if self.columns else "column"

    @property
    def input_columns(self) -> Tuple[str, ...]:
        """The file columns this group reads."""
        if self.column is not None:
            return (self.column,)
        return tuple(col for col, _ in self.columns)


@dataclass(frozen=True)
class ConvertSpec:
    """What `convert_files` reads from each input row. Build it with `load_spec`.

    See docs/convert.md for every key; the fields mirror the spec file's keys.
    """

    groups: Tuple[GroupSpec, ...] = ()
    text: str = "text"
    id: Optional[str] = None
    format: Optional[str] = None
    columns: Tuple[str, ...] = ()
    header: Optional[bool] = None
    sep: Optional[str] = None
    quoting: bool = True
    encoding: str = "utf-8"
    pattern: Optional[str] = None
    labels_file: Optional[str] = None
    labels_file_replace: Optional[Tuple[str, str]] = None
    labels_column: str = "label"
    missing_values: Tuple[str, ...] = ()
    source: str = "<dict>"
    join: Tuple["JoinSpec", ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<dict>") -> "ConvertSpec":
        """Build and validate a spec from its parsed YAML/JSON content.

        data (Mapping[str, Any]): The spec's top-level mapping.
        source (str): Where the spec came from, for error messages.
        RETURNS (ConvertSpec): The validated spec.

        DOCS: docs/convert.md
        """
        return _parse_spec(data, source)

    def group(self, name: str) -> GroupSpec:
        for group in self.groups:
            if group.name == name:
                return group
        raise KeyError(name)

    @property
    def input_columns(self) -> List[str]:
        """Every column a row must provide, in spec order, without repeats."""
        cols = [self.text] + ([self.id] if self.id else [])
        for group in self.groups:
            cols.extend(group.input_columns)
        return list(dict.fromkeys(cols))

    @property
    def stratify_group(self) -> Optional[GroupSpec]:
        """The first multiclass group: `--split` keeps its label proportions per split."""
        for group in self.groups:
            if group.kind == MULTICLASS:
                return group
        return None

    @property
    def is_complete(self) -> bool:
        """Whether every group has its labels (none left to infer from the data)."""
        return all(group.labels for group in self.groups)

    def with_labels(self, labels: Mapping[str, Sequence[str]]) -> "ConvertSpec":
        """A new spec with inferred labels filled in for the label-less groups."""
        groups = tuple(
            replace(g, labels=tuple(labels[g.name])) if not g.labels and g.name in labels else g
            for g in self.groups
        )
        spec = replace(self, groups=groups)
        for group in spec.groups:
            _check_group(spec.source, group)
            if group.source is not None:
                _check_mapping(spec.source, group, spec.group(group.source))
            if group.condition is not None:
                _check_parent_label(spec.source, group, spec.group(group.condition[0]))
        return spec

    def schema(self) -> Optional[GroupSchema]:
        """The groups as a `GroupSchema` (kind and labels) for the component's config.

        RETURNS (Optional[GroupSchema]): None if the spec has no groups.
        """
        if not self.groups:
            return None
        return GroupSchema(
            groups=tuple(LabelGroup(g.name, g.kind, g.labels, parent=g.parent) for g in self.groups)
        )

    def labels_path(self, text_path: Path) -> Optional[Path]:
        """The label file paired with `text_path`, if the spec has `labels_file`."""
        if self.labels_file_replace is not None:
            old, new = self.labels_file_replace
            if old not in text_path.name:
                raise ConvertError(
                    Errors.E225.format(
                        path=text_path,
                        labels=f"(its name has no {old!r} to replace with {new!r})",
                    )
                )
            # Replace the last occurrence: the role word sits next to the extension.
            head, _, tail = text_path.name.rpartition(old)
            return text_path.with_name(head + new + tail)
        if self.labels_file is not None:
            base = base_name(text_path)
            fields = {"name": text_path.name, "stem": base, "suffix": text_path.suffix}
            return text_path.parent / self.labels_file.format(**fields)
        return None


def load_spec(path: PathLike) -> ConvertSpec:
    """Read and validate a convert spec from a YAML (.yml, .yaml) or JSON (.json) file.

    srsly reads YAML 1.2, so `yes`/`no` stay strings; mapping keys (YAML ints, JSON
    strings) are compared as strings.

    path (Union[str, Path]): The spec file.
    RETURNS (ConvertSpec): The validated spec.

    DOCS: docs/convert.md
    """
    path = Path(path)
    if path.is_dir():
        raise SpecError(Errors.E215.format(spec=path, error="is a folder, not a file."))
    if not path.is_file():
        raise SpecError(Errors.E215.format(spec=path, error="the file does not exist."))
    try:
        if path.suffix.lower() == ".json":
            # Python's json, not srsly's: a duplicate key would silently keep the last value.
            text = path.read_text(encoding="utf-8-sig")
            data = json.loads(text, object_pairs_hook=unique_keys)
        else:
            data = srsly.read_yaml(path)  # ruamel refuses duplicate keys itself
    except DuplicateKey as dup:
        raise SpecError(Errors.E276.format(spec=path, key=dup.key)) from None
    except Exception as err:  # YAML and JSON parsers raise many types
        raise SpecError(Errors.E215.format(spec=path, error=f"cannot be parsed: {err}")) from err
    return ConvertSpec.from_dict(data, source=str(path))


def _parse_spec(data: Any, source: str) -> ConvertSpec:
    if not isinstance(data, Mapping):
        raise SpecError(Errors.E201.format(spec=source, value=data))
    check_unicode(source, data, "")
    data = {str(key): value for key, value in data.items()}
    check_keys(source, data, _TOP_KEYS, "")
    fmt = data.get("format")
    if fmt is not None and fmt not in FORMATS:
        raise SpecError(Errors.E204.format(spec=source, value=fmt, known=list(FORMATS)))
    text = str_setting(source, data, "text", "text")
    id_col = data.get("id")
    if id_col is not None:
        id_col = str_setting(source, data, "id", None)
    columns = str_list(source, data.get("columns"), "columns", "")
    if len(set(columns)) != len(columns):
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        raise invalid_value(
            spec=source, key="columns", where="", expected="unique names", value=dupes
        )
    header = data.get("header")
    if header is not None and not isinstance(header, bool):
        raise invalid_value(
            spec=source, key="header", where="", expected="true or false", value=header
        )
    sep = data.get("sep")
    if sep is not None:
        check_sep(source, sep, "")
    quoting = data.get("quoting", True)
    if not isinstance(quoting, bool):
        raise invalid_value(
            spec=source, key="quoting", where="", expected="true or false", value=quoting
        )
    encoding = str_setting(source, data, "encoding", "utf-8")
    check_encoding(source, encoding)
    pattern = data.get("pattern")
    if pattern is not None:
        pattern = str_setting(source, data, "pattern", None)
        try:
            compiled = re.compile(pattern)
        except re.error as err:
            raise SpecError(Errors.E211.format(spec=source, pattern=pattern, error=err)) from err
        if text not in compiled.groupindex:
            raise SpecError(Errors.E212.format(spec=source, text=text))
        check_pattern(source, pattern)
    labels_file, labels_replace = _parse_labels_file(source, data.get("labels_file"))
    if (pattern is not None or labels_file or labels_replace) and fmt not in (None, "lines"):
        if labels_file or labels_replace:
            raise SpecError(Errors.E216.format(spec=source, format=fmt))
        raise SpecError(
            Errors.E206.format(spec=source, group="-", key="pattern", where="with format 'lines'")
        )
    labels_column = str_setting(source, data, "labels_column", "label")
    missing_values = tuple(
        key_str(source, v, "missing_values")
        for v in as_list(source, data.get("missing_values"), "missing_values", scalar=False)
    )
    for value in missing_values:
        if value != value.strip():
            # Cells are stripped before they are compared: ' NA' would never match.
            raise invalid_value(
                spec=source,
                key="missing_values",
                where="",
                expected="values without surrounding whitespace (cells are stripped)",
                value=value,
            )
    groups_data = data.get("groups") or {}
    if not isinstance(groups_data, Mapping):
        raise invalid_value(
            spec=source,
            key="groups",
            where="",
            expected="a mapping {name: settings}",
            value=groups_data,
        )
    groups: List[GroupSpec] = []
    names = [key_str(source, name, "groups") for name in groups_data]
    for name, block in zip(names, groups_data.values()):
        groups.append(_parse_group(source, name, block, groups, names))
    from .joins import parse_joins  # joins reads files with readers, which import this module

    joins = parse_joins(source, data.get("join"), main_columns(columns, pattern, text))
    return ConvertSpec(
        groups=tuple(groups),
        text=text,
        id=id_col,
        format=fmt,
        columns=tuple(columns),
        header=header,
        sep=sep,
        quoting=quoting,
        encoding=encoding,
        pattern=pattern,
        labels_file=labels_file,
        labels_file_replace=labels_replace,
        labels_column=labels_column,
        missing_values=missing_values,
        source=source,
        join=joins,
    )


def main_columns(columns: Sequence[str], pattern: Optional[str], text: str) -> Tuple[str, ...]:
    """The input's columns when the spec alone tells them (else ()), to check `join`."""
    if columns:
        return tuple(columns)
    if pattern is not None:
        return tuple(re.compile(pattern).groupindex)
    return ()


def _parse_group(
    source: str, name: str, block: Any, before: Sequence[GroupSpec], names: Sequence[str]
) -> GroupSpec:
    where = f" of group {name!r}"
    if not isinstance(block, Mapping):
        raise invalid_value(
            spec=source, key=name, where="", expected="a mapping of settings", value=block
        )
    block = {str(key): value for key, value in block.items()}
    check_keys(source, block, _GROUP_KEYS, where)
    kind = block.get("kind")
    if kind not in (MULTICLASS, MULTILABEL):
        raise invalid_value(
            spec=source,
            key="kind",
            where=where,
            expected="'multiclass' or 'multilabel'",
            value=kind,
        )
    given = [key for key in ("column", "columns", "from") if block.get(key) is not None]
    if len(given) != 1:
        raise SpecError(Errors.E205.format(spec=source, group=name, given=given or "none"))
    layout = given[0]

    def only(key: str, valid: str) -> None:
        if block.get(key) is not None:
            raise SpecError(Errors.E206.format(spec=source, group=name, key=key, where=valid))

    empty = block.get("empty", "missing")
    if empty not in EMPTY_POLICIES:
        raise invalid_value(
            spec=source, key="empty", where=where, expected="'missing' or 'negative'", value=empty
        )
    if empty == "negative" and kind == MULTICLASS:
        raise SpecError(
            Errors.E206.format(
                spec=source, group=name, key="empty: negative", where="for multilabel groups"
            )
        )
    labels: Tuple[str, ...] = ()
    values: Tuple[Tuple[str, str], ...] = ()
    column: Optional[str] = None
    columns: Tuple[Tuple[str, str], ...] = ()
    delimiter: Optional[str] = None
    source_name: Optional[str] = None
    mapping: Tuple[Tuple[str, Tuple[str, ...]], ...] = ()
    if layout == "column":
        column = key_str(source, block["column"], f"column{where}")
        raw_labels = block.get("labels")
        if isinstance(raw_labels, Mapping):
            pairs = [
                (key_str(source, k, f"labels{where}"), key_str(source, v, f"labels{where}"))
                for k, v in raw_labels.items()
            ]
            seen: Set[str] = set()
            for value, _ in pairs:
                if value in seen:
                    raise SpecError(Errors.E213.format(spec=source, group=name, value=value))
                seen.add(value)
            values = tuple(pairs)
            labels = tuple(dict.fromkeys(label for _, label in pairs))
        elif raw_labels is not None:
            if not isinstance(raw_labels, (list, tuple)):
                # Not one label: 'neg,neu,pos' is a list written as a string.
                raise invalid_value(
                    spec=source,
                    key=f"labels{where}",
                    where="",
                    expected="a list or a mapping",
                    value=raw_labels,
                )
            labels = tuple(key_str(source, v, f"labels{where}") for v in raw_labels)
        delimiter = block.get("delimiter")
        if delimiter is not None and (not isinstance(delimiter, str) or not delimiter):
            raise invalid_value(
                spec=source,
                key="delimiter",
                where=where,
                expected="a non-empty string",
                value=delimiter,
            )
        only("mapping", "with `from`")
        for value in [v for v, _ in values] if values else labels:
            check_cell_value(source, name, value, delimiter)
    elif layout == "columns":
        raw = block["columns"]
        if isinstance(raw, Mapping):
            columns = tuple(
                (
                    key_str(source, k, f"columns{where}"),
                    key_str(source, v, f"columns{where}"),
                )
                for k, v in raw.items()
            )
        else:
            names = str_list(source, raw, "columns", where)
            columns = tuple((col, col) for col in names)
        if not columns:
            raise invalid_value(
                spec=source, key="columns", where=where, expected="at least one column", value=raw
            )
        labels = tuple(label for _, label in columns)
        only("labels", "with `column` (with `columns`, the labels are the columns' labels)")
        only("delimiter", "with `column`")
        only("mapping", "with `from`")
    else:
        source_name = key_str(source, block["from"], f"from{where}")
        known = [g.name for g in before]
        if source_name not in known:
            raise SpecError(
                Errors.E207.format(spec=source, group=name, source=source_name, groups=known)
            )
        raw_map = block.get("mapping")
        if not isinstance(raw_map, Mapping) or not raw_map:
            raise invalid_value(
                spec=source,
                key="mapping",
                where=where,
                expected="a mapping {label: [source labels]}",
                value=raw_map,
            )
        mapping = tuple(
            (
                key_str(source, target, f"mapping{where}"),
                tuple(
                    key_str(source, v, f"mapping{where}")
                    for v in as_list(source, members, f"mapping{where}")
                ),
            )
            for target, members in raw_map.items()
        )
        labels = tuple(target for target, _ in mapping)
        only("labels", "with `column` (a derived group's labels are its mapping's keys)")
        only("delimiter", "with `column`")
    threshold = _parse_threshold(source, name, kind, layout, block)
    parent = _parse_parent(source, name, block.get("parent"), before, names)
    on_conflict = block.get("on_conflict", "error")
    if on_conflict not in CONFLICT_POLICIES:
        raise invalid_value(
            spec=source,
            key="on_conflict",
            where=where,
            expected="'error' or 'drop'",
            value=on_conflict,
        )
    if parent is None:
        only("on_conflict", "on a conditional group (with `parent`)")
    group = GroupSpec(
        name=name,
        kind=kind,
        labels=labels,
        column=column,
        values=values,
        delimiter=delimiter,
        columns=columns,
        empty=empty,
        source=source_name,
        mapping=mapping,
        threshold=threshold,
        parent=parent,
        on_conflict=on_conflict,
    )
    _check_group(source, group)
    if group.source is not None:
        origin = next(g for g in before if g.name == group.source)
        _check_mapping(source, group, origin)
    if group.condition is not None:
        origin = next(g for g in before if g.name == group.condition[0])
        _check_parent_label(source, group, origin)
    return group


def _parse_parent(
    source: str, name: str, value: Any, before: Sequence[GroupSpec], names: Sequence[str]
) -> Optional[str]:
    """`parent: group/label`: a condition on a group defined above this one.

    names (Sequence[str]): Every group of the spec, in order (for the error message).
    """
    if value is None:
        return None
    parts = split_key(value) if isinstance(value, str) else None
    if parts is None or not parts[0] or not parts[1]:
        raise SpecError(Errors.E217.format(spec=source, group=name, value=value))
    parent_name = parts[0]
    if parent_name not in [g.name for g in before]:
        if parent_name == name:
            problem = "names the group itself"
        elif parent_name in names:
            problem = f"names group {parent_name!r}, which comes after it"
        else:
            problem = f"names group {parent_name!r}, which the spec does not have"
        raise SpecError(
            Errors.E218.format(
                spec=source, group=name, parent=value, problem=problem, groups=list(names)
            )
        )
    return value


def _check_parent_label(source: str, group: GroupSpec, parent: GroupSpec) -> None:
    """The condition's label is one of the parent group's (once they are known)."""
    assert group.condition is not None
    label = group.condition[1]
    if parent.labels and label not in parent.labels:
        raise SpecError(
            Errors.E219.format(
                spec=source,
                group=group.name,
                parent=group.parent,
                label=label,
                source=parent.name,
                labels=format_labels(parent.labels),
            )
        )


def _check_group(source: str, group: GroupSpec) -> None:
    """Name, kind, labels and parent checks shared with the component's schema."""
    try:
        LabelGroup(group.name, group.kind, group.labels, parent=group.parent)
    except SchemaError as err:
        raise SpecError(Errors.E215.format(spec=source, error=err)) from err


def _check_mapping(source: str, group: GroupSpec, origin: GroupSpec) -> None:
    if not origin.labels:
        return  # the source's labels are inferred from the data; checked again after that
    covered: Dict[str, List[str]] = {}
    for target, members in group.mapping:
        for member in members:
            if member not in origin.labels:
                raise SpecError(
                    Errors.E209.format(
                        spec=source,
                        group=group.name,
                        label=target,
                        value=member,
                        source=origin.name,
                        labels=format_labels(origin.labels),
                    )
                )
            covered.setdefault(member, []).append(target)
    uncovered = [label for label in origin.labels if label not in covered]
    if uncovered:
        raise SpecError(
            Errors.E208.format(spec=source, group=group.name, labels=uncovered, source=origin.name)
        )
    if group.kind == MULTICLASS:
        for member, targets in covered.items():
            if len(set(targets)) > 1:
                raise SpecError(
                    Errors.E210.format(
                        spec=source,
                        group=group.name,
                        label=member,
                        source=origin.name,
                        targets=targets,
                    )
                )


def _parse_labels_file(source: str, value: Any) -> Tuple[Optional[str], Optional[Tuple[str, str]]]:
    if value is None:
        return None, None
    if isinstance(value, str) and value:
        return value, None
    if isinstance(value, Mapping) and set(map(str, value)) == {"replace", "with"}:
        old = value.get("replace")
        new = value.get("with")
        if isinstance(old, str) and old and isinstance(new, str) and old != new:
            return None, (old, new)
    raise invalid_value(
        spec=source,
        key="labels_file",
        where="",
        expected="a file name template such as '{stem}.labels', or {replace: _text, with: _labels}",
        value=value,
    )


def _parse_threshold(
    source: str, name: str, kind: str, layout: str, block: Mapping[str, Any]
) -> Optional[float]:
    """`threshold`: soft scores in [0, 1] cut into gold labels (docs/convert.md)."""
    value = block.get("threshold")
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not 0.0 < value <= 1.0
    ):
        raise invalid_value(
            spec=source,
            key="threshold",
            where=f" of group {name!r}",
            expected="a number in (0, 1]",
            value=value,
        )
    why = None
    labels = block.get("labels")
    if kind == MULTILABEL and layout != "columns":
        why = f"this multilabel group has `{layout}`, not `columns`"
    elif kind == MULTICLASS and layout != "column":
        why = f"this multiclass group has `{layout}`, not `column`"
    elif kind == MULTICLASS and (not isinstance(labels, (list, tuple)) or len(labels) != 2):
        why = f"this multiclass group's `labels` are {labels!r}, not a list of two"
    elif block.get("delimiter") is not None:
        why = "a soft score is one number per cell, so `delimiter` does not apply"
    if why is not None:
        raise SpecError(Errors.E282.format(spec=source, group=name, why=why))
    return float(value)
