"""Tabular data sets (CSV, TSV, JSONL, one-text-per-line files) → `.spacy` corpora.

A small spec (YAML or JSON, see docs/convert.md) says where the text is and how each
label group is laid out in the file. Gold labels go into `doc.cats` under
"{group}/{label}" keys with the semantics of DESIGN.md: an annotated group has every
one of its keys (1.0 or 0.0); a missing group (or, for one column per label, a missing
label) has no key at all.

Files are read line by line and rows are checked one by one, so every error names its
file and physical line, and memory is bounded by the shard size, not the file size.
Output is written to temporary files next to the destination and renamed into place
only when every input converted, so a failed run leaves no partial corpus.
"""

import bz2
import codecs
import csv
import gzip
import hashlib
import itertools
import json
import lzma
import math
import os
import re
import secrets
import shutil
import sys
import tempfile
from array import array
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import (
    IO,
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Literal,
    Mapping,
    Optional,
    Sequence,
    Set,
    Tuple,
    Union,
    cast,
)

import srsly
from spacy.language import Language
from spacy.tokens import Doc, DocBin
from tqdm import tqdm

from .errors import Errors, SchemaError, format_labels
from .schema import MULTICLASS, MULTILABEL, GroupSchema, LabelGroup, cat_key

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_SHARD_SIZE",
    "FORMATS",
    "ConvertError",
    "ConvertSpec",
    "ConvertSummary",
    "CorpusSummary",
    "GroupSpec",
    "RowError",
    "SpecError",
    "assign_splits",
    "convert_files",
    "load_spec",
    "parse_split",
]

FORMATS = ("csv", "tsv", "jsonl", "lines")
EMPTY_POLICIES = ("missing", "negative")
ON_ERROR = ("fail", "skip")
DEFAULT_SHARD_SIZE = 50_000
DEFAULT_CHUNK_SIZE = 10_000
NO_SPLIT = "all"
REJECT_FIELDS = ("file", "line", "column", "reason", "content")

_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".txt": "lines",
}
_COMPRESSED: Dict[str, Callable[..., Any]] = {
    ".gz": lambda raw: gzip.GzipFile(fileobj=raw),
    ".bz2": bz2.BZ2File,
    ".xz": lzma.LZMAFile,
}
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
)
_GROUP_KEYS = ("kind", "column", "columns", "labels", "delimiter", "empty", "from", "mapping")
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_SHARD_SUFFIX = re.compile(r"-\d{3,}$")
# "5.0" where the spec says 5: what a float column written by pandas looks like.
_WHOLE_FLOAT = re.compile(r"^([+-]?\d+)\.0+$")

PathLike = Union[str, Path]


# ---------------------------------------------------------------------------------------
# Errors


class ConvertError(ValueError):
    """Converting cannot go on: a bad spec, input, option or file (not skippable)."""


class SpecError(ConvertError):
    """The convert spec is not valid."""


class RowError(ConvertError):
    """One input row is bad. `--on-error skip` writes it to the rejects file.

    path (Path): The file the bad cell came from.
    line (int): Physical line (1-based) where the row starts, or the bad line itself.
    column (Optional[str]): The column at fault, if one is.
    reason (str): What is wrong.
    """

    def __init__(self, path: Path, line: int, column: Optional[str], reason: str) -> None:
        self.path = path
        self.line = line
        self.column = column
        self.reason = reason
        if column is None:
            text = Errors.E241.format(file=path, line=line, reason=reason)
        else:
            text = Errors.E240.format(file=path, line=line, column=column, reason=reason)
        super().__init__(text)


class _CellError(Exception):
    """A bad cell found while parsing a row; becomes a RowError with the row's place."""

    def __init__(self, column: Optional[str], reason: str) -> None:
        super().__init__(reason)
        self.column = column
        self.reason = reason


# ---------------------------------------------------------------------------------------
# Spec


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
        return spec

    def schema(self) -> Optional[GroupSchema]:
        """The groups as a `GroupSchema` (kind and labels) for the component's config.

        RETURNS (Optional[GroupSchema]): None if the spec has no groups.
        """
        if not self.groups:
            return None
        return GroupSchema(groups=tuple(LabelGroup(g.name, g.kind, g.labels) for g in self.groups))

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
            base = _base_name(text_path)
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
    if not path.is_file():
        raise SpecError(Errors.E215.format(spec=path, error="the file does not exist."))
    try:
        is_json = path.suffix.lower() == ".json"
        data = srsly.read_json(path) if is_json else srsly.read_yaml(path)
    except Exception as err:  # YAML and JSON parsers raise many types
        raise SpecError(Errors.E215.format(spec=path, error=f"cannot be parsed: {err}")) from err
    return ConvertSpec.from_dict(data, source=str(path))


def _parse_spec(data: Any, source: str) -> ConvertSpec:
    if not isinstance(data, Mapping):
        raise SpecError(Errors.E201.format(spec=source, value=data))
    data = {str(key): value for key, value in data.items()}
    _check_keys(source, data, _TOP_KEYS, "")
    fmt = data.get("format")
    if fmt is not None and fmt not in FORMATS:
        raise SpecError(Errors.E204.format(spec=source, value=fmt, known=list(FORMATS)))
    text = _str_setting(source, data, "text", "text")
    id_col = data.get("id")
    if id_col is not None:
        id_col = _str_setting(source, data, "id", None)
    columns = _str_list(source, data.get("columns"), "columns", "")
    if len(set(columns)) != len(columns):
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        raise SpecError(
            Errors.E203.format(
                spec=source, key="columns", where="", expected="unique names", value=dupes
            )
        )
    header = data.get("header")
    if header is not None and not isinstance(header, bool):
        raise SpecError(
            Errors.E203.format(
                spec=source, key="header", where="", expected="true or false", value=header
            )
        )
    sep = data.get("sep")
    if sep is not None and (not isinstance(sep, str) or len(sep) != 1):
        raise SpecError(
            Errors.E203.format(
                spec=source, key="sep", where="", expected="one character", value=sep
            )
        )
    quoting = data.get("quoting", True)
    if not isinstance(quoting, bool):
        raise SpecError(
            Errors.E203.format(
                spec=source, key="quoting", where="", expected="true or false", value=quoting
            )
        )
    encoding = _str_setting(source, data, "encoding", "utf-8")
    _check_encoding(source, encoding)
    pattern = data.get("pattern")
    if pattern is not None:
        pattern = _str_setting(source, data, "pattern", None)
        try:
            compiled = re.compile(pattern)
        except re.error as err:
            raise SpecError(Errors.E211.format(spec=source, pattern=pattern, error=err)) from err
        if text not in compiled.groupindex:
            raise SpecError(Errors.E212.format(spec=source, text=text))
    labels_file, labels_replace = _parse_labels_file(source, data.get("labels_file"))
    if (pattern is not None or labels_file or labels_replace) and fmt not in (None, "lines"):
        if labels_file or labels_replace:
            raise SpecError(Errors.E216.format(spec=source, format=fmt))
        raise SpecError(
            Errors.E206.format(spec=source, group="-", key="pattern", where="with format 'lines'")
        )
    labels_column = _str_setting(source, data, "labels_column", "label")
    missing_values = tuple(
        _key_str(source, v, "missing_values")
        for v in _as_list(source, data.get("missing_values"), "missing_values")
    )
    groups_data = data.get("groups") or {}
    if not isinstance(groups_data, Mapping):
        raise SpecError(
            Errors.E203.format(
                spec=source,
                key="groups",
                where="",
                expected="a mapping {name: settings}",
                value=groups_data,
            )
        )
    groups: List[GroupSpec] = []
    for name, block in groups_data.items():
        groups.append(_parse_group(source, _key_str(source, name, "groups"), block, groups))
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
    )


def _parse_group(source: str, name: str, block: Any, before: Sequence[GroupSpec]) -> GroupSpec:
    where = f" of group {name!r}"
    if not isinstance(block, Mapping):
        raise SpecError(
            Errors.E203.format(
                spec=source, key=name, where="", expected="a mapping of settings", value=block
            )
        )
    block = {str(key): value for key, value in block.items()}
    _check_keys(source, block, _GROUP_KEYS, where)
    kind = block.get("kind")
    if kind not in (MULTICLASS, MULTILABEL):
        raise SpecError(
            Errors.E203.format(
                spec=source,
                key="kind",
                where=where,
                expected="'multiclass' or 'multilabel'",
                value=kind,
            )
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
        raise SpecError(
            Errors.E203.format(
                spec=source,
                key="empty",
                where=where,
                expected="'missing' or 'negative'",
                value=empty,
            )
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
    group_source: Optional[str] = None
    mapping: Tuple[Tuple[str, Tuple[str, ...]], ...] = ()
    if layout == "column":
        column = _key_str(source, block["column"], f"column{where}")
        raw_labels = block.get("labels")
        if isinstance(raw_labels, Mapping):
            pairs = [
                (_key_str(source, k, f"labels{where}"), _key_str(source, v, f"labels{where}"))
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
            labels = tuple(
                _key_str(source, v, f"labels{where}")
                for v in _as_list(source, raw_labels, f"labels{where}")
            )
        delimiter = block.get("delimiter")
        if delimiter is not None and (not isinstance(delimiter, str) or not delimiter):
            raise SpecError(
                Errors.E203.format(
                    spec=source,
                    key="delimiter",
                    where=where,
                    expected="a non-empty string",
                    value=delimiter,
                )
            )
        only("mapping", "with `from`")
    elif layout == "columns":
        raw = block["columns"]
        if isinstance(raw, Mapping):
            columns = tuple(
                (
                    _key_str(source, k, f"columns{where}"),
                    _key_str(source, v, f"columns{where}"),
                )
                for k, v in raw.items()
            )
        else:
            names = _str_list(source, raw, "columns", where)
            columns = tuple((col, col) for col in names)
        if not columns:
            raise SpecError(
                Errors.E203.format(
                    spec=source,
                    key="columns",
                    where=where,
                    expected="at least one column",
                    value=raw,
                )
            )
        labels = tuple(label for _, label in columns)
        only("labels", "with `column` (with `columns`, the labels are the columns' labels)")
        only("delimiter", "with `column`")
        only("mapping", "with `from`")
    else:
        group_source = _key_str(source, block["from"], f"from{where}")
        known = [g.name for g in before]
        if group_source not in known:
            raise SpecError(
                Errors.E207.format(spec=source, group=name, source=group_source, groups=known)
            )
        raw_map = block.get("mapping")
        if not isinstance(raw_map, Mapping) or not raw_map:
            raise SpecError(
                Errors.E203.format(
                    spec=source,
                    key="mapping",
                    where=where,
                    expected="a mapping {label: [source labels]}",
                    value=raw_map,
                )
            )
        mapping = tuple(
            (
                _key_str(source, target, f"mapping{where}"),
                tuple(
                    _key_str(source, v, f"mapping{where}")
                    for v in _as_list(source, members, f"mapping{where}")
                ),
            )
            for target, members in raw_map.items()
        )
        labels = tuple(target for target, _ in mapping)
        only("labels", "with `column` (a derived group's labels are its mapping's keys)")
        only("delimiter", "with `column`")
    group = GroupSpec(
        name=name,
        kind=kind,
        labels=labels,
        column=column,
        values=values,
        delimiter=delimiter,
        columns=columns,
        empty=empty,
        source=group_source,
        mapping=mapping,
    )
    _check_group(source, group)
    if group.source is not None:
        parent = next(g for g in before if g.name == group.source)
        _check_mapping(source, group, parent)
    return group


def _check_group(source: str, group: GroupSpec) -> None:
    """Name, kind and labels checks shared with the component's schema."""
    try:
        LabelGroup(group.name, group.kind, group.labels)
    except SchemaError as err:
        raise SpecError(Errors.E215.format(spec=source, error=err)) from err


def _check_mapping(source: str, group: GroupSpec, parent: GroupSpec) -> None:
    if not parent.labels:
        return  # the parent's labels are inferred from the data; checked again after that
    covered: Dict[str, List[str]] = {}
    for target, members in group.mapping:
        for member in members:
            if member not in parent.labels:
                raise SpecError(
                    Errors.E209.format(
                        spec=source,
                        group=group.name,
                        label=target,
                        value=member,
                        source=parent.name,
                        labels=format_labels(parent.labels),
                    )
                )
            covered.setdefault(member, []).append(target)
    uncovered = [label for label in parent.labels if label not in covered]
    if uncovered:
        raise SpecError(
            Errors.E208.format(spec=source, group=group.name, labels=uncovered, source=parent.name)
        )
    if group.kind == MULTICLASS:
        for member, targets in covered.items():
            if len(set(targets)) > 1:
                raise SpecError(
                    Errors.E210.format(
                        spec=source,
                        group=group.name,
                        label=member,
                        source=parent.name,
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
    raise SpecError(
        Errors.E203.format(
            spec=source,
            key="labels_file",
            where="",
            expected="a file name template such as '{stem}.labels', or "
            "{replace: _text, with: _labels}",
            value=value,
        )
    )


def _check_keys(source: str, data: Mapping[str, Any], known: Sequence[str], where: str) -> None:
    unknown = [key for key in data if key not in known]
    if unknown:
        raise SpecError(
            Errors.E202.format(spec=source, keys=unknown, where=where, known=list(known))
        )


def _str_setting(source: str, data: Mapping[str, Any], key: str, default: Any) -> Any:
    value = data.get(key, default)
    if value is default:
        return value
    if not isinstance(value, str) or not value:
        raise SpecError(
            Errors.E203.format(
                spec=source, key=key, where="", expected="a non-empty string", value=value
            )
        )
    return value


def _as_list(source: str, value: Any, key: str) -> List[Any]:
    if value is None:
        return []
    if isinstance(value, (str, int, float)):
        return [value]
    if isinstance(value, (list, tuple)):
        return list(value)
    raise SpecError(
        Errors.E203.format(spec=source, key=key, where="", expected="a list", value=value)
    )


def _str_list(source: str, value: Any, key: str, where: str) -> List[str]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise SpecError(
            Errors.E203.format(
                spec=source,
                key=key,
                where=where,
                expected="a list of non-empty strings",
                value=value,
            )
        )
    return list(value)


def _key_str(source: str, value: Any, where: str) -> str:
    """A spec key or label as the string a cell would hold (YAML 1 → '1', true → 'true')."""
    try:
        return _scalar_str(value)
    except TypeError:
        raise SpecError(
            Errors.E203.format(
                spec=source, key=where, where="", expected="a string or number", value=value
            )
        ) from None


def _scalar_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value
    raise TypeError(type(value).__name__)


def _check_encoding(source: str, encoding: str) -> None:
    # Lines are split on b"\n" before decoding, so that a bad byte names its line; that
    # only works for encodings where ASCII bytes stand for themselves (not UTF-16).
    try:
        codecs.lookup(encoding)
        ok = "a\n".encode(encoding) == b"a\n"
    except (LookupError, UnicodeError):
        ok = False
    if not ok:
        raise SpecError(Errors.E214.format(spec=source, encoding=encoding))


# ---------------------------------------------------------------------------------------
# Reading: physical lines → records (cells of one row, with its place in the file)


@dataclass
class _Record:
    path: Path
    line: int
    cells: Optional[Mapping[str, Any]]
    raw: str
    error: Optional[Tuple[Optional[str], str]] = None
    error_path: Optional[Path] = None  # where the error is, when not `path`
    labels_path: Optional[Path] = None  # the paired labels file, for errors in its column


class _LineSource:
    """Physical lines of a file, decoded one at a time so a bad byte names its line.

    Iterating gives decoded lines with their line endings (what `csv.reader` expects from
    a file opened with newline=""). `take()` hands back the text consumed since the last
    call, for the rejects file, and the decoding problems found in it.
    """

    def __init__(self, path: Path, encoding: str) -> None:
        self.path = path
        self.encoding = encoding
        self._raw: IO[bytes] = open(path, "rb")  # noqa: SIM115 (closed by close())
        opener = _COMPRESSED.get(path.suffix.lower())
        # The decompressor reads from the raw file, so that `position` (progress) is the
        # number of bytes on disk read so far.
        self._file: IO[bytes] = cast(IO[bytes], opener(self._raw)) if opener else self._raw
        self._strip_bom = codecs.lookup(encoding).name == "utf-8" or encoding.lower() in (
            "utf-8-sig",
            "utf_8_sig",
        )
        self._decoder_name = "utf-8" if self._strip_bom else encoding
        self.line_no = 0
        self._pending: List[str] = []
        self._bad: List[Tuple[int, str]] = []

    def __iter__(self) -> "_LineSource":
        return self

    def __next__(self) -> str:
        data = self._file.readline()
        if not data:
            raise StopIteration
        self.line_no += 1
        if self.line_no == 1 and self._strip_bom and data.startswith(codecs.BOM_UTF8):
            data = data[len(codecs.BOM_UTF8) :]
        try:
            text = data.decode(self._decoder_name)
        except UnicodeDecodeError as err:
            text = data.decode(self._decoder_name, errors="replace")
            bad = data[err.start : err.end]
            self._bad.append(
                (
                    self.line_no,
                    Errors.E245.format(data=bad, pos=err.start, encoding=self.encoding),
                )
            )
        self._pending.append(text)
        return text

    def take(self) -> Tuple[str, List[Tuple[int, str]]]:
        raw = "".join(self._pending)
        bad = self._bad
        self._pending = []
        self._bad = []
        return raw, bad

    @property
    def position(self) -> int:
        """Bytes of the file on disk read so far (compressed bytes for .gz etc.)."""
        return self._raw.tell()

    def close(self) -> None:
        if self._file is not self._raw:
            self._file.close()
        self._raw.close()


def _strip_eol(text: str) -> str:
    if text.endswith("\n"):
        text = text[:-1]
    if text.endswith("\r"):
        text = text[:-1]
    return text


def _base_name(path: Path) -> str:
    """File name without a compression suffix and a known data extension."""
    name = path.name
    for suffix in _COMPRESSED:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    for suffix in (*_EXTENSIONS, ".json"):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _file_format(path: Path, spec: ConvertSpec) -> str:
    if spec.format is not None:
        return spec.format
    if spec.pattern is not None or spec.labels_file or spec.labels_file_replace:
        return "lines"
    name = path.name.lower()
    for suffix in _COMPRESSED:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    fmt = _EXTENSIONS.get(os.path.splitext(name)[1])
    if fmt is None:
        raise ConvertError(Errors.E221.format(path=path, known=list(FORMATS)))
    return fmt


class _Reader:
    """Records of one input file, any format. Use as a context manager."""

    def __init__(self, path: Path, spec: ConvertSpec, *, check_columns: bool = True) -> None:
        self.path = path
        self.spec = spec
        self.format = _file_format(path, spec)
        self.check_columns = check_columns
        self.labels_path = spec.labels_path(path) if self.format == "lines" else None
        if self.labels_path is not None and not self.labels_path.is_file():
            raise ConvertError(Errors.E225.format(path=path, labels=self.labels_path))
        if self.format in ("csv", "tsv") and not spec.columns and spec.header is False:
            raise ConvertError(Errors.E222.format(path=path, format=self.format))
        self._source = _LineSource(path, spec.encoding)
        self._labels: Optional[_LineSource] = None
        if self.labels_path is not None:
            self._labels = _LineSource(self.labels_path, spec.encoding)

    def __enter__(self) -> "_Reader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._source.close()
        if self._labels is not None:
            self._labels.close()

    @property
    def position(self) -> int:
        return self._source.position

    def __iter__(self) -> Iterator[_Record]:
        if self.format in ("csv", "tsv"):
            return self._delimited()
        if self.format == "jsonl":
            return self._jsonl()
        return self._lines()

    def _decode_error(self, bad: List[Tuple[int, str]], raw: str) -> _Record:
        line, reason = bad[0]
        return _Record(self.path, line, None, raw, error=(None, reason))

    def _delimited(self) -> Iterator[_Record]:
        spec = self.spec
        sep = spec.sep or ("\t" if self.format == "tsv" else ",")
        quoting: Literal[0, 3] = csv.QUOTE_MINIMAL if spec.quoting else csv.QUOTE_NONE
        source = self._source
        # Python's csv refuses cells over 128 KiB by default; a long document is a row to
        # convert, not an error (the limit is process-wide; predict.py raises it the same way).
        csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
        reader = csv.reader(source, delimiter=sep, quoting=quoting)
        names: Optional[List[str]] = None if self._has_header else list(spec.columns)
        if names is not None:
            self._check_names(names, 0)
        end = 0
        while True:
            start = end + 1
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                end = source.line_no
                raw, _ = source.take()
                yield _Record(
                    self.path, start, None, raw, error=(None, Errors.E262.format(error=err))
                )
                continue
            end = source.line_no
            raw, bad = source.take()
            if not fields:
                continue  # a blank line: no row, as in pandas
            if names is None:
                if bad:
                    line, reason = bad[0]
                    raise ConvertError(Errors.E241.format(file=self.path, line=line, reason=reason))
                names = self._header(fields, start)
                continue
            if bad:
                yield self._decode_error(bad, raw)
            elif len(fields) != len(names):
                listed = ", ".join(names)
                error: Tuple[Optional[str], str]
                if len(fields) < len(names):
                    error = (
                        names[len(fields)],
                        Errors.E246.format(n=len(fields), m=len(names), columns=listed),
                    )
                else:
                    error = (
                        None,
                        Errors.E247.format(n=len(fields), m=len(names), columns=listed, sep=sep),
                    )
                yield _Record(self.path, start, None, raw, error=error)
            else:
                yield _Record(self.path, start, dict(zip(names, fields)), raw)

    @property
    def _has_header(self) -> bool:
        if self.spec.header is not None:
            return self.spec.header
        return not self.spec.columns

    def _header(self, fields: List[str], line: int) -> List[str]:
        loc = f"{self.path}:{line}"
        if self.spec.columns:
            # `header: true` with `columns`: the file's header row is replaced.
            if len(fields) != len(self.spec.columns):
                raise ConvertError(
                    Errors.E237.format(
                        loc=loc, n=len(fields), m=len(self.spec.columns), columns=fields
                    )
                )
            names = list(self.spec.columns)
        else:
            names = fields
            seen: Set[str] = set()
            for name in names:
                if name in seen:
                    raise ConvertError(Errors.E236.format(loc=loc, column=name))
                seen.add(name)
        self._check_names(names, line)
        return names

    def _check_names(self, names: Sequence[str], line: int) -> None:
        if not self.check_columns:
            return
        for column in self.spec.input_columns:
            if column not in names:
                raise ConvertError(
                    Errors.E235.format(
                        loc=f"{self.path}:{max(line, 1)}", column=column, columns=list(names)
                    )
                )

    def _jsonl(self) -> Iterator[_Record]:
        source = self._source
        for text in source:
            line = source.line_no
            raw, bad = source.take()
            if not text.strip():
                continue
            if bad:
                yield self._decode_error(bad, raw)
                continue
            try:
                obj = json.loads(text)
            except ValueError as err:
                yield _Record(
                    self.path, line, None, raw, error=(None, Errors.E248.format(error=err))
                )
                continue
            if not isinstance(obj, dict):
                kind = "an array" if isinstance(obj, list) else f"a {type(obj).__name__}"
                yield _Record(
                    self.path, line, None, raw, error=(None, Errors.E249.format(kind=kind))
                )
                continue
            yield _Record(self.path, line, obj, raw)

    def _lines(self) -> Iterator[_Record]:
        spec = self.spec
        pattern = re.compile(spec.pattern) if spec.pattern is not None else None
        available = list(pattern.groupindex) if pattern is not None else [spec.text]
        labels = self._labels
        if labels is not None:
            available.append(spec.labels_column)
        if self.check_columns:
            for column in spec.input_columns:
                if column not in available:
                    raise ConvertError(
                        Errors.E238.format(
                            loc=f"{self.path}:1", column=column, format="lines", columns=available
                        )
                    )
        source = self._source
        # Every line is a row, blank or not: in paired files, position is the alignment.
        for _line_text in source:
            line = source.line_no
            raw, bad = source.take()
            content = _strip_eol(raw)
            cells: Dict[str, Any] = {}
            error: Optional[Tuple[Optional[str], str]] = None
            error_path: Optional[Path] = None
            if bad:
                error = (None, bad[0][1])
            elif pattern is not None:
                match = pattern.fullmatch(content)
                if match is None:
                    error = (None, Errors.E251.format(pattern=spec.pattern))
                else:
                    cells = match.groupdict()
            else:
                cells = {spec.text: content}
            if labels is not None:
                try:
                    next(labels)
                except StopIteration:
                    if error is None:
                        error = (
                            spec.labels_column,
                            Errors.E253.format(
                                line=line, labels=self.labels_path, n=labels.line_no
                            ),
                        )
                        error_path = self.labels_path
                else:
                    label_raw, label_bad = labels.take()
                    label_text = _strip_eol(label_raw)
                    content = f"{content}\t{label_text}"
                    if label_bad and error is None:
                        error = (spec.labels_column, label_bad[0][1])
                        error_path = self.labels_path
                    cells[spec.labels_column] = label_text
            yield _Record(
                self.path,
                line,
                None if error else cells,
                content,
                error=error,
                error_path=error_path,
                labels_path=self.labels_path,
            )
        if labels is not None:
            for _ in labels:
                label_raw, _bad = labels.take()
                yield _Record(
                    self.path,
                    labels.line_no,
                    None,
                    "\t" + _strip_eol(label_raw),
                    error=(
                        spec.labels_column,
                        Errors.E254.format(line=labels.line_no, text=self.path),
                    ),
                    error_path=self.labels_path,
                    labels_path=self.labels_path,
                )


# ---------------------------------------------------------------------------------------
# Parsing a row's cells into text, cats and stratum


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


class _GroupParser:
    """Reads one group's annotation from a row: {label: 1.0 | 0.0}, {} when missing."""

    def __init__(self, group: GroupSpec, spec: ConvertSpec, parents: Dict[str, GroupSpec]) -> None:
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
            root = parents[root.source]
        self.error_column = root.column

    def annotate(
        self, cells: Mapping[str, Any], done: Mapping[str, Dict[str, float]]
    ) -> Dict[str, float]:
        group = self.group
        if group.source is not None:
            return self._derived(done[group.source])
        if group.columns:
            return self._per_label(cells)
        assert group.column is not None
        values = self.cell_values(cells, group.column)
        if values is None:
            return {}
        found = list(dict.fromkeys(self._label(v) for v in values))
        if self.multiclass:
            if len(found) != 1:
                if not found:
                    raise _CellError(group.column, Errors.E259.format(group=self.name))
                raise _CellError(
                    group.column,
                    Errors.E243.format(n=len(found), labels=found, group=self.name),
                )
            gold = found[0]
            return {label: 1.0 if label == gold else 0.0 for label in self.labels}
        positive = set(found)
        return {label: 1.0 if label in positive else 0.0 for label in self.labels}

    def cell_values(self, cells: Mapping[str, Any], column: str) -> Optional[List[str]]:
        """The label values in a cell; None for a missing annotation, [] for 'no label'."""
        value = _cell(cells, column)
        if value is None or _is_nan(value):
            return None
        if isinstance(value, str):
            value = value.strip()
            if value in self.missing:
                return [] if (not value and self.empty_negative) else None
            if self.group.delimiter is not None:
                parts = [p.strip() for p in value.split(self.group.delimiter)]
                parts = [p for p in parts if p]
                if not parts:
                    return [] if self.empty_negative else None
                return parts
            return [value]
        if isinstance(value, list):
            # JSONL lists: [] is an explicit "annotated, no label".
            out = []
            for item in value:
                if isinstance(item, (list, dict)) or item is None or _is_nan(item):
                    raise _CellError(column, Errors.E260.format(kind=_kind(item)))
                item_str = item.strip() if isinstance(item, str) else _scalar_str(item)
                if item_str:
                    out.append(item_str)
            return out
        try:
            return [_scalar_str(value)]
        except TypeError:
            raise _CellError(column, Errors.E260.format(kind=_kind(value))) from None

    def _label(self, value: str) -> str:
        if not self.lookup:  # labels not known yet (inference pass): values are labels
            return value
        label = self.lookup.get(value)
        if label is None:
            whole = _WHOLE_FLOAT.match(value)
            if whole is not None:
                label = self.lookup.get(whole.group(1))
        if label is None:
            raise _CellError(self.group.column, Errors.E242.format(value=value, known=self.known))
        return label

    def _per_label(self, cells: Mapping[str, Any]) -> Dict[str, float]:
        out: Dict[str, float] = {}
        empty_cols: List[str] = []
        for column, label in self.group.columns:
            value = _cell(cells, column)
            flag = self._flag(column, value)
            if flag is None:
                empty_cols.append(column)
                continue
            out[label] = flag
        if self.multiclass and out:
            if empty_cols:
                present = [c for c, _ in self.group.columns if c not in empty_cols]
                raise _CellError(
                    empty_cols[0],
                    Errors.E258.format(group=self.name, missing=empty_cols, present=present),
                )
            positive = [label for label, flag in out.items() if flag == 1.0]
            if len(positive) != 1:
                raise _CellError(
                    None, Errors.E257.format(group=self.name, n=len(positive), labels=positive)
                )
        return out

    def _flag(self, column: str, value: Any) -> Optional[float]:
        if value is None or _is_nan(value):
            return None
        if isinstance(value, str):
            text = value.strip()
            if text in self.missing:
                return 0.0 if (not text and self.empty_negative) else None
            value = text
        elif isinstance(value, (list, dict)):
            raise _CellError(column, Errors.E260.format(kind=_kind(value)))
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise _CellError(column, Errors.E252.format(value=value)) from None
        if math.isnan(number):
            return None
        if number not in (0.0, 1.0):
            raise _CellError(column, Errors.E252.format(value=value))
        return number

    def _derived(self, parent: Dict[str, float]) -> Dict[str, float]:
        if not parent:
            return {}
        group = self.group
        if not self.multiclass:
            out: Dict[str, float] = {}
            for target, members in group.mapping:
                flags = [parent.get(m) for m in members]
                if 1.0 in flags:
                    out[target] = 1.0
                elif None not in flags:
                    out[target] = 0.0
                # else: some member label is missing and none is positive → unknown
            return out
        targets = [t for t, members in group.mapping if any(parent.get(m) == 1.0 for m in members)]
        if len(targets) == 1:
            return {label: 1.0 if label == targets[0] else 0.0 for label in self.labels}
        if len(targets) > 1:
            positives = [label for label, flag in parent.items() if flag == 1.0]
            raise _CellError(
                self.error_column,
                Errors.E255.format(
                    group=self.name,
                    labels=positives,
                    source=group.source,
                    n=len(targets),
                    targets=targets,
                ),
            )
        if any(m not in parent for _, members in group.mapping for m in members):
            return {}  # nothing positive and some source labels missing: unknown
        raise _CellError(
            self.error_column, Errors.E256.format(group=self.name, source=group.source)
        )


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "JSON object"
    if value is None:
        return "null"
    return type(value).__name__


def _cell(cells: Mapping[str, Any], column: str) -> Any:
    try:
        return cells[column]
    except KeyError:
        raise _CellError(column, Errors.E250.format(column=column)) from None


class _RowParser:
    """Turns a record's cells into (text, cats, id, stratum)."""

    def __init__(self, spec: ConvertSpec) -> None:
        self.spec = spec
        parents = {g.name: g for g in spec.groups}
        self.groups = [_GroupParser(g, spec, parents) for g in spec.groups]
        # Keys are built once and shared by every doc: tens of thousands of dicts hold
        # references to the same strings.
        self.keys = {
            g.name: {label: cat_key(g.name, label) for label in g.labels} for g in spec.groups
        }
        strat = spec.stratify_group
        self.stratify = strat.name if strat is not None else None
        self.strata = {label: i for i, label in enumerate(strat.labels)} if strat else {}

    def parse(self, cells: Mapping[str, Any]) -> Tuple[str, Dict[str, float], Optional[str], int]:
        spec = self.spec
        text = _cell(cells, spec.text)
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise _CellError(spec.text, Errors.E261.format(value=text))
        if not text.strip():
            raise _CellError(spec.text, Errors.E244)
        doc_id: Optional[str] = None
        if spec.id is not None:
            value = _cell(cells, spec.id)
            if value is not None and not _is_nan(value):
                doc_id = value if isinstance(value, str) else json.dumps(value)
                doc_id = doc_id or None
        done: Dict[str, Dict[str, float]] = {}
        cats: Dict[str, float] = {}
        for parser in self.groups:
            annotation = parser.annotate(cells, done)
            done[parser.name] = annotation
            keys = self.keys[parser.name]
            for label, value in annotation.items():
                cats[keys[label]] = value
        stratum = -1
        if self.stratify is not None:
            for label, value in done[self.stratify].items():
                if value == 1.0:
                    stratum = self.strata[label]
        return text, cats, doc_id, stratum


# ---------------------------------------------------------------------------------------
# Splits


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


# ---------------------------------------------------------------------------------------
# Writing


class _ShardWriter:
    """Writes docs as DocBins of at most `shard_size` docs into a (temporary) folder."""

    def __init__(self, folder: Path, shard_size: int, store_user_data: bool) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.shard_size = shard_size
        self.store_user_data = store_user_data
        # srsly.msgpack_dumps, which DocBin.add calls per doc for user_data, builds a new
        # Packer each time and that scans the installed entry points: ~0.3 ms a doc, more
        # than tokenizing. One packer per writer gives the same bytes (use_bin_type, as
        # srsly does), appended to DocBin.user_data the way DocBin.add would.
        self._packer = srsly.msgpack.Packer(use_bin_type=True) if store_user_data else None
        self.paths: List[Path] = []
        self.n_docs = 0
        self._bin = self._new_bin()

    def _new_bin(self) -> DocBin:
        # ORTH (and spaces) only: the docs come from the tokenizer alone, so other token
        # attributes would be zeros that cost space and time.
        return DocBin(attrs=["ORTH"], store_user_data=False)

    def add(self, doc: Doc) -> None:
        self._bin.add(doc)
        if self._packer is not None:
            self._bin.user_data.append(self._packer.pack(doc.user_data))
        self.n_docs += 1
        if len(self._bin) >= self.shard_size:
            self._flush()

    def _flush(self) -> None:
        path = self.folder / f"{len(self.paths):06d}.spacy"
        self._bin.store_user_data = self.store_user_data
        try:
            self._bin.to_disk(path)
        except ValueError as err:
            raise ConvertError(Errors.E228.format(path=path, n=len(self._bin))) from err
        self.paths.append(path)
        self._bin = self._new_bin()

    def close(self) -> List[Path]:
        # An empty corpus still gets one (empty) file, so a stale one is replaced.
        if len(self._bin) or not self.paths:
            self._flush()
        return self.paths


class _Rejects:
    """The rejects CSV, written to a temporary file and renamed into place at the end."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Not mkstemp: its files are private (0600); this one should get the umask's mode
        # like any file the user writes.
        self.tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        self._file = open(self.tmp, "x", encoding="utf-8", newline="")  # noqa: SIM115
        self._writer = csv.writer(self._file)
        self._writer.writerow(REJECT_FIELDS)

    def write(self, error: RowError, content: str) -> None:
        column = error.column if error.column is not None else ""
        self._writer.writerow([str(error.path), error.line, column, error.reason, content])

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def commit(self) -> None:
        self.close()
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        self.close()
        self.tmp.unlink(missing_ok=True)


def _final_paths(folder: Path, name: str, n: int) -> List[Path]:
    if n == 1:
        return [folder / f"{name}.spacy"]
    # Zero-padded to a fixed width: spaCy's Corpus reads files in sorted order, and that
    # must be input order.
    width = max(3, len(str(n - 1)))
    return [folder / f"{name}-{i:0{width}d}.spacy" for i in range(n)]


def _stale_outputs(folder: Path, name: str, keep: Sequence[Path]) -> List[Path]:
    """Earlier outputs of `name` in `folder` that this run does not overwrite."""
    if not folder.is_dir():
        return []
    pattern = re.compile(rf"^{re.escape(name)}(-\d{{3,}})?\.spacy$")
    keep_names = {p.name for p in keep}
    return sorted(p for p in folder.iterdir() if pattern.match(p.name) and p.name not in keep_names)


# ---------------------------------------------------------------------------------------
# Summary


@dataclass
class CorpusSummary:
    """What one output corpus got.

    name (str): The corpus name (file stem of its .spacy files).
    inputs (List[Path]): The input files, in order.
    rows_read (int): Rows read (records; blank lines of CSV/TSV/JSONL are not rows).
    rows_rejected (int): Bad rows written to the rejects file (skip mode).
    docs (Dict[str, int]): Docs written per split ('all' without --split).
    files (Dict[str, List[Path]]): Files written per split.
    annotated (Dict[str, Dict[str, int]]): split → group → docs annotated for the group.
    label_counts (Dict[str, Dict[str, Dict[str, int]]]): split → group → label → docs
        with that label positive.
    first_rejects (List[str]): The first few rejected rows' messages.
    """

    name: str
    inputs: List[Path]
    rows_read: int = 0
    rows_rejected: int = 0
    docs: Dict[str, int] = field(default_factory=dict)
    files: Dict[str, List[Path]] = field(default_factory=dict)
    annotated: Dict[str, Dict[str, int]] = field(default_factory=dict)
    label_counts: Dict[str, Dict[str, Dict[str, int]]] = field(default_factory=dict)
    first_rejects: List[str] = field(default_factory=list)

    @property
    def docs_written(self) -> int:
        return sum(self.docs.values())

    def total_label_counts(self) -> Dict[str, Dict[str, int]]:
        """group → label → positives, summed over the splits."""
        out: Dict[str, Dict[str, int]] = {}
        for groups in self.label_counts.values():
            for group, labels in groups.items():
                target = out.setdefault(group, {})
                for label, n in labels.items():
                    target[label] = target.get(label, 0) + n
        return out

    def total_annotated(self) -> Dict[str, int]:
        out: Dict[str, int] = {}
        for groups in self.annotated.values():
            for group, n in groups.items():
                out[group] = out.get(group, 0) + n
        return out


@dataclass
class ConvertSummary:
    """What `convert_files` did.

    corpora (List[CorpusSummary]): One per output name.
    schema (Optional[GroupSchema]): The groups and labels written (after inference).
    rejects (Optional[Path]): The rejects CSV (skip mode).
    inferred_labels (Dict[str, List[str]]): Labels inferred from the data, per group.
    warnings (List[str]): Things worth a look (inferred labels, empty splits).
    """

    corpora: List[CorpusSummary]
    schema: Optional[GroupSchema] = None
    rejects: Optional[Path] = None
    inferred_labels: Dict[str, List[str]] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        return sum(c.rows_read for c in self.corpora)

    @property
    def rows_rejected(self) -> int:
        return sum(c.rows_rejected for c in self.corpora)

    @property
    def docs_written(self) -> int:
        return sum(c.docs_written for c in self.corpora)

    @property
    def files(self) -> List[Path]:
        return [p for c in self.corpora for paths in c.files.values() for p in paths]


class _Counter:
    """Per-split label counts, from each written doc's cats."""

    def __init__(self, spec: ConvertSpec, summary: CorpusSummary, splits: Sequence[str]) -> None:
        self.keys = {
            cat_key(g.name, label): (g.name, label) for g in spec.groups for label in g.labels
        }
        for split in splits:
            summary.docs[split] = 0
            summary.annotated[split] = {g.name: 0 for g in spec.groups}
            summary.label_counts[split] = {
                g.name: {label: 0 for label in g.labels} for g in spec.groups
            }
        self.summary = summary

    def add(self, split: str, cats: Mapping[str, float]) -> None:
        self.summary.docs[split] += 1
        counts = self.summary.label_counts[split]
        seen: Set[str] = set()
        for key, value in cats.items():
            group, label = self.keys[key]
            seen.add(group)
            if value == 1.0:
                counts[group][label] += 1
        annotated = self.summary.annotated[split]
        for group in seen:
            annotated[group] += 1


# ---------------------------------------------------------------------------------------
# Converting


def convert_files(
    inputs: Sequence[PathLike],
    output_dir: PathLike,
    spec: Union[ConvertSpec, PathLike],
    *,
    split: Union[str, Mapping[str, float], None] = None,
    seed: int = 0,
    on_error: str = "fail",
    rejects: Optional[PathLike] = None,
    limit: Optional[int] = None,
    lang: str = "en",
    name: Optional[str] = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = False,
) -> ConvertSummary:
    """Convert tabular files to .spacy corpora with label groups in doc.cats.

    Without `name`, each input becomes its own corpus named after the file
    (`OUTPUT_DIR/<stem>.spacy`); with `name`, the inputs are read in order into one
    corpus. With `split`, each corpus is split into `OUTPUT_DIR/<split>/<name>.spacy`.
    A corpus above `shard_size` docs is written as `<name>-000.spacy`, `<name>-001.spacy`,
    ... Docs keep input order in every file. Nothing is written unless every input
    converts: files are written to a hidden temporary folder in OUTPUT_DIR and renamed
    into place at the end (replacing earlier outputs of the same name).

    inputs (Sequence[Union[str, Path]]): CSV, TSV, JSONL or one-text-per-line files
        (optionally .gz, .bz2 or .xz).
    output_dir (Union[str, Path]): Folder for the corpora (created if needed).
    spec (Union[ConvertSpec, str, Path]): The spec, or the path of a spec file.
    split (Union[str, Mapping[str, float], None]): e.g. 'train=0.8,dev=0.1,test=0.1'.
        Stratified by the spec's first multiclass group; deterministic for a seed.
    seed (int): Seed of the split.
    on_error (str): 'fail' stops at the first bad row and writes nothing; 'skip' writes
        the good rows and lists every bad row in the rejects file.
    rejects (Optional[Union[str, Path]]): Rejects CSV (skip mode); default
        OUTPUT_DIR/<first corpus name>.rejects.csv.
    limit (Optional[int]): Read at most this many rows of each input.
    lang (str): Language of the tokenizer (`spacy.blank(lang)`).
    name (Optional[str]): Name of the one corpus made from all inputs.
    shard_size (int): Most docs per .spacy file.
    chunk_size (int): Rows per progress update, and docs per buffer file when splitting.
    progress (bool): Show tqdm progress bars (on stderr).
    RETURNS (ConvertSummary): Rows read and rejected, docs and label counts per split,
        files written.

    DOCS: docs/convert.md
    """
    if on_error not in ON_ERROR:
        raise ConvertError(Errors.E226.format(value=on_error))
    if on_error == "fail" and rejects is not None:
        raise ConvertError(Errors.E227)
    for label, number in (("shard_size", shard_size), ("chunk_size", chunk_size)):
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise ConvertError(Errors.E231.format(n=label, value=number))
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConvertError(Errors.E231.format(n="limit", value=limit))
    if not isinstance(spec, ConvertSpec):
        spec = load_spec(spec)
    fractions = parse_split(split)
    paths = [Path(p) for p in inputs]
    if not paths:
        raise ConvertError(Errors.E230.format(path="(no inputs)"))
    for path in paths:
        if not path.is_file():
            raise ConvertError(Errors.E230.format(path=path))
    plan = _plan_corpora(paths, name)
    out_dir = Path(output_dir)

    summary = ConvertSummary(corpora=[])
    if not spec.is_complete:
        inferred = _infer_labels(paths, spec, limit)
        spec = spec.with_labels(inferred)
        summary.inferred_labels = {g: list(labels) for g, labels in inferred.items() if labels}
        for group, labels in summary.inferred_labels.items():
            summary.warnings.append(Errors.W201.format(group=group, labels=labels))
    for group_spec in spec.groups:
        if not group_spec.labels:
            # Nothing in the data for it either: the group cannot be written.
            raise SpecError(
                Errors.E215.format(
                    spec=spec.source, error=Errors.E004.format(group=group_spec.name)
                )
            )
    summary.schema = spec.schema()

    nlp = _blank(lang)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConvertError(Errors.E233.format(path=out_dir))
    created_out = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp_root = Path(tempfile.mkdtemp(prefix=".spacy-mtl-convert-", dir=out_dir))
    rejects_file: Optional[_Rejects] = None
    try:
        if on_error == "skip":
            rejects_path = (
                Path(rejects) if rejects is not None else out_dir / f"{plan[0][0]}.rejects.csv"
            )
            rejects_file = _Rejects(rejects_path)
            summary.rejects = rejects_path
        moves: List[Tuple[Path, Path]] = []
        stale: List[Path] = []
        for index, (corpus_name, corpus_inputs) in enumerate(plan):
            corpus = CorpusSummary(name=corpus_name, inputs=corpus_inputs)
            summary.corpora.append(corpus)
            temp_files = _convert_corpus(
                corpus,
                spec,
                nlp,
                tmp_root / f"{index:03d}",
                fractions=fractions,
                seed=seed,
                rejects=rejects_file,
                limit=limit,
                shard_size=shard_size,
                chunk_size=chunk_size,
                progress=progress,
            )
            if corpus.rows_read != corpus.docs_written + corpus.rows_rejected:
                raise RuntimeError(  # a bug, not a data problem
                    f"{corpus_name}: {corpus.rows_read} rows read but "
                    f"{corpus.docs_written} written + {corpus.rows_rejected} rejected."
                )
            for split_name, files in temp_files.items():
                folder = out_dir if fractions is None else out_dir / split_name
                finals = _final_paths(folder, corpus_name, len(files))
                corpus.files[split_name] = finals
                moves.extend(zip(files, finals))
                stale.extend(_stale_outputs(folder, corpus_name, finals))
                if corpus.docs[split_name] == 0 and fractions is not None:
                    summary.warnings.append(Errors.W202.format(name=corpus_name, split=split_name))
        # Everything converted: move into place, then drop earlier outputs this run
        # replaced with a different number of shards.
        for tmp, final in moves:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
        for path in stale:
            path.unlink(missing_ok=True)
        if rejects_file is not None:
            rejects_file.commit()
    except BaseException:
        if rejects_file is not None:
            rejects_file.discard()
        shutil.rmtree(tmp_root, ignore_errors=True)
        if created_out and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise
    shutil.rmtree(tmp_root, ignore_errors=True)
    return summary


def _blank(lang: str) -> Language:
    import spacy

    try:
        return spacy.blank(lang)
    except (ImportError, OSError, ValueError) as err:
        # ValueError/ImportError: unknown language code or its missing dependencies.
        raise ConvertError(Errors.E229.format(lang=lang, error=err)) from err


def _plan_corpora(paths: Sequence[Path], name: Optional[str]) -> List[Tuple[str, List[Path]]]:
    if name is not None:
        _check_name(name)
        return [(name, list(paths))]
    plan: List[Tuple[str, List[Path]]] = []
    seen: Dict[str, Path] = {}
    for path in paths:
        stem = _base_name(path)
        if stem in seen:
            raise ConvertError(Errors.E223.format(name=stem, first=seen[stem], second=path))
        _check_name(stem)
        seen[stem] = path
        plan.append((stem, [path]))
    return plan


def _check_name(name: str) -> None:
    why = None
    if not name or "/" in name or "\\" in name:
        why = "it must be a non-empty file name"
    elif name.startswith("."):
        why = "spaCy's corpus reader skips files whose name starts with '.'"
    elif _SHARD_SUFFIX.search(name):
        why = "names ending in '-' and three or more digits are kept for shards"
    if why is not None:
        raise ConvertError(Errors.E224.format(name=name, why=why))


def _infer_labels(
    paths: Sequence[Path], spec: ConvertSpec, limit: Optional[int]
) -> Dict[str, List[str]]:
    """Labels of the groups the spec lists none for, from every input's cells.

    Bad rows are passed over here: the conversion pass reports them with their place.
    """
    todo = [g for g in spec.groups if not g.labels and g.column is not None]
    parents = {g.name: g for g in spec.groups}
    parsers = [_GroupParser(g, spec, parents) for g in todo]
    found: Dict[str, Set[str]] = {g.name: set() for g in todo}
    for path in paths:
        with _Reader(path, spec) as reader:
            for n, record in enumerate(reader, 1):
                if limit is not None and n > limit:
                    break
                if record.cells is None:
                    continue
                for parser in parsers:
                    assert parser.group.column is not None
                    try:
                        values = parser.cell_values(record.cells, parser.group.column)
                    except _CellError:
                        continue
                    found[parser.name].update(values or ())
    return {group: _label_order(values) for group, values in found.items()}


def _label_order(values: Iterable[str]) -> List[str]:
    """Sorted, numerically when every label is a whole number (so '2' comes before '10')."""
    values = list(values)
    if values and all(v.isascii() and v.isdigit() for v in values):
        return sorted(values, key=lambda v: (int(v), v))
    return sorted(values)


def _convert_corpus(
    corpus: CorpusSummary,
    spec: ConvertSpec,
    nlp: Language,
    tmp: Path,
    *,
    fractions: Optional[Dict[str, float]],
    seed: int,
    rejects: Optional[_Rejects],
    limit: Optional[int],
    shard_size: int,
    chunk_size: int,
    progress: bool,
) -> Dict[str, List[Path]]:
    """Convert one corpus into temporary files; return them per split, in order.

    Without a split this is one pass. With a split, the assignment needs every row's
    stratum before the first doc is written, so a first pass parses the rows (cheap: no
    tokenizing) and reports the bad ones, and a second pass parses them again, tokenizes
    and writes each doc to its split. Memory stays flat: one int per row, one chunk of
    rows, one shard per split.
    """
    parser = _RowParser(spec)
    splits = list(fractions) if fractions is not None else [NO_SPLIT]
    counter = _Counter(spec, corpus, splits)
    writers = [_ShardWriter(tmp / split, shard_size, spec.id is not None) for split in splits]

    def report(error: RowError, record: _Record) -> None:
        if rejects is None:
            raise error
        corpus.rows_rejected += 1
        rejects.write(error, _strip_eol(record.raw))
        if len(corpus.first_rejects) < 5:
            corpus.first_rejects.append(str(error))

    assignment: Optional[Iterator[int]] = None
    if fractions is not None:
        strata = array("i")
        for record, row in _parsed_rows(corpus, parser, nlp, limit, chunk_size, progress, "read"):
            corpus.rows_read += 1
            if isinstance(row, RowError):
                report(row, record)
            else:
                strata.append(row[3])
        assignment = iter(assign_splits(strata, list(fractions.values()), seed))
    desc = "write" if fractions is not None else corpus.name
    for record, row in _parsed_rows(corpus, parser, nlp, limit, chunk_size, progress, desc):
        if assignment is None:
            corpus.rows_read += 1
            if isinstance(row, RowError):
                report(row, record)
                continue
        elif isinstance(row, RowError):
            continue  # reported in the first pass
        text, cats, doc_id, _ = row
        doc = nlp.make_doc(text)
        doc.cats = cats
        if doc_id is not None:
            doc.user_data["id"] = doc_id
        split = 0 if assignment is None else next(assignment, -1)
        if split < 0:
            raise ConvertError(Errors.E232.format(name=corpus.name))
        writers[split].add(doc)
        counter.add(splits[split], cats)
    if assignment is not None and next(assignment, None) is not None:
        raise ConvertError(Errors.E232.format(name=corpus.name))
    return {split: writer.close() for split, writer in zip(splits, writers)}


_Parsed = Tuple[str, Dict[str, float], Optional[str], int]


def _parsed_rows(
    corpus: CorpusSummary,
    parser: _RowParser,
    nlp: Language,
    limit: Optional[int],
    chunk_size: int,
    progress: bool,
    desc: str,
) -> Iterator[Tuple[_Record, Union[_Parsed, RowError]]]:
    """Every row of the corpus's inputs, parsed (or its error), read chunk by chunk."""
    total = sum(p.stat().st_size for p in corpus.inputs)
    with tqdm(
        total=total, unit="B", unit_scale=True, desc=desc, disable=not progress, leave=False
    ) as bar:
        done_bytes = 0
        for path in corpus.inputs:
            with _Reader(path, parser.spec) as reader:
                records = iter(reader)
                if limit is not None:
                    records = itertools.islice(records, limit)
                while True:
                    chunk = list(itertools.islice(records, chunk_size))
                    if not chunk:
                        break
                    for record in chunk:
                        yield record, _parse_record(record, parser, nlp)
                    bar.update(done_bytes + reader.position - bar.n)
            done_bytes += path.stat().st_size
            bar.update(done_bytes - bar.n)


def _parse_record(record: _Record, parser: _RowParser, nlp: Language) -> Union[_Parsed, RowError]:
    """The row's (text, cats, id, stratum), or the RowError that says what is wrong."""
    if record.cells is None:
        assert record.error is not None
        column, reason = record.error
        return RowError(record.error_path or record.path, record.line, column, reason)
    try:
        parsed = parser.parse(record.cells)
    except _CellError as err:
        path = record.path
        if record.labels_path is not None and err.column == parser.spec.labels_column:
            path = record.labels_path
        return RowError(path, record.line, err.column, err.reason)
    if len(parsed[0]) > nlp.max_length:
        reason = Errors.E263.format(n=len(parsed[0]), limit=nlp.max_length)
        return RowError(record.path, record.line, parser.spec.text, reason)
    return parsed
