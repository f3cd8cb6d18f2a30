"""`join`: more columns for every row of an input, from other files, by key or by row
position (docs/convert.md, "Joined files").

A key join reads the joined file into an index first (key → its line and cells, kept
column by column; the only thing in memory besides a chunk of the input), then streams
the input: a left join. A position join streams both files side by side. Rows of a joined
file that reach no input row (a key no input row has, rows past the input's end, bad rows
without a readable key) come as `extra` records: errors that convert counts apart from
the rows read, because they are not input rows.
"""

import itertools
import json
import math
import unicodedata
from array import array
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import (
    Any,
    Collection,
    Dict,
    FrozenSet,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
)

from ...errors import Errors
from ..io import base_name, csv_reader, not_a_file
from .exceptions import ConvertError, SpecError
from .readers import Reader, Record, check_input_file, strip_eol
from .spec import ConvertSpec
from .values import (
    check_encoding,
    check_keys,
    check_sep,
    invalid_value,
    scalar_str,
    str_list,
)

JOIN_FORMATS = ("csv", "tsv", "jsonl")
_JOIN_KEYS = (
    "path",
    "key",
    "columns",
    "header",
    "sep",
    "quoting",
    "encoding",
    "format",
    "check",
)
# Joined cell values up to this length are shared between rows (label columns hold a few
# distinct values), for at most this many distinct values per joined file.
_SHARE_LEN = 64
_SHARE_MAX = 100_000

# A problem with a row found by a join: (file, line, column, reason).
Problem = Tuple[Path, int, Optional[str], str]
# What a join gives an input row: (its cells, the joined line or None, a problem or None).
Taken = Tuple[Mapping[str, Any], Optional[int], Optional[Problem]]


@dataclass(frozen=True)
class JoinSpec:
    """One entry of the spec's `join` list: a file whose columns are added to each row.

    path (str): File name template relative to the input's folder, with the fields
        {stem}, {name} and {suffix} of the input (as `labels_file`).
    key (Optional[str]): Join on this column (a left join); None joins by row position.
    columns (Tuple[str, ...]): Names for the file's columns (replacing a header row).
    header (Optional[bool]): Whether the first row is a header (default: unless `columns`).
    sep, quoting, encoding, format: As for the input (defaults from the joined file's own
        name, not the input's settings).
    check (Optional[str]): Position joins: this column must equal the input's column of
        the same name (after NFKC normalisation and whitespace collapsing).
    """

    path: str
    key: Optional[str] = None
    columns: Tuple[str, ...] = ()
    header: Optional[bool] = None
    sep: Optional[str] = None
    quoting: bool = True
    encoding: str = "utf-8"
    format: Optional[str] = None
    check: Optional[str] = None

    @property
    def shared(self) -> Optional[str]:
        """The column in both files: the key or the checked column."""
        return self.key if self.key is not None else self.check

    def path_for(self, input_path: Path) -> Path:
        """The joined file of `input_path`."""
        fields = {
            "name": input_path.name,
            "stem": base_name(input_path),
            "suffix": input_path.suffix,
        }
        return input_path.parent / self.path.format(**fields)

    def file_spec(self, source: str) -> ConvertSpec:
        """Settings to read the joined file with a `Reader`."""
        return ConvertSpec(
            format=self.format,
            columns=self.columns,
            header=self.header,
            sep=self.sep,
            quoting=self.quoting,
            encoding=self.encoding,
            source=source,
        )


def parse_joins(source: str, value: Any, main_columns: Sequence[str]) -> Tuple[JoinSpec, ...]:
    """Parse and check the spec's `join` list.

    source (str): The spec, for error messages.
    value (Any): The `join` value (None when absent).
    main_columns (Sequence[str]): The input's columns when the spec names them (`columns`
        or `pattern`), else empty: clashes are then found when the header is read.
    RETURNS (Tuple[JoinSpec, ...]): The joins, in order.
    """
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)) or not value:
        raise invalid_value(
            spec=source,
            key="join",
            where="",
            expected="a list of files to join, e.g. [{path: '{stem}.labels.csv', key: id}]",
            value=value,
        )
    joins: List[JoinSpec] = []
    added: Dict[str, str] = {column: "the input" for column in main_columns}
    for n, block in enumerate(value, 1):
        join = _parse_join(source, n, block)
        for column in join.columns:
            if column != join.shared and column in added:
                raise SpecError(
                    Errors.E281.format(
                        spec=source, n=n, path=join.path, column=column, other=added[column]
                    )
                )
        for column in join.columns:
            if column != join.shared:
                added[column] = f"join {n} ({join.path})"
        joins.append(join)
    return tuple(joins)


def _parse_join(source: str, n: int, block: Any) -> JoinSpec:
    where = f" of join {n}"
    if not isinstance(block, Mapping):
        raise invalid_value(
            spec=source, key="join", where=f" entry {n}", expected="a mapping", value=block
        )
    block = {str(key): value for key, value in block.items()}
    check_keys(source, block, _JOIN_KEYS, where)
    path = block.get("path")
    if not isinstance(path, str) or not path:
        raise invalid_value(
            spec=source, key="path", where=where, expected="a file name", value=path
        )

    def problem(text: str) -> SpecError:
        return SpecError(Errors.E280.format(spec=source, n=n, path=path, problem=text))

    try:
        path.format(name="x", stem="x", suffix=".x")
    except (KeyError, IndexError, ValueError) as err:
        raise problem(
            f"`path` may use the fields {{stem}}, {{name}} and {{suffix}} of the input "
            f"(write {{{{ and }}}} for braces): {err!r}."
        ) from None
    names: Dict[str, Optional[str]] = {}
    for setting in ("key", "check", "sep", "format"):
        item = block.get(setting)
        if item is not None and (not isinstance(item, str) or not item):
            raise invalid_value(
                spec=source, key=setting, where=where, expected="a non-empty string", value=item
            )
        names[setting] = item
    key, check, sep, fmt = names["key"], names["check"], names["sep"], names["format"]
    if fmt is not None and fmt not in JOIN_FORMATS:
        raise problem(f"`format` {fmt!r} cannot be joined; use one of {list(JOIN_FORMATS)}.")
    if sep is not None:
        check_sep(source, sep, where)
    if key is not None and check is not None:
        raise problem(
            "`check` compares a column of two files joined by row position; a join by `key` "
            "matches rows by their key, so leave out one of them."
        )
    columns = str_list(source, block.get("columns"), "columns", where)
    if len(set(columns)) != len(columns):
        raise invalid_value(
            spec=source, key="columns", where=where, expected="unique names", value=columns
        )
    for role, name in (("key", key), ("check", check)):
        if name is not None and columns and name not in columns:
            raise problem(f"`{role}` {name!r} is not one of its `columns` {columns}.")
    header = block.get("header")
    if header is not None and not isinstance(header, bool):
        raise invalid_value(
            spec=source, key="header", where=where, expected="true or false", value=header
        )
    quoting = block.get("quoting", True)
    if not isinstance(quoting, bool):
        raise invalid_value(
            spec=source, key="quoting", where=where, expected="true or false", value=quoting
        )
    encoding = block.get("encoding", "utf-8")
    if not isinstance(encoding, str) or not encoding:
        raise invalid_value(
            spec=source, key="encoding", where=where, expected="a non-empty string", value=encoding
        )
    check_encoding(source, encoding)
    join = JoinSpec(
        path=path,
        key=key,
        columns=tuple(columns),
        header=header,
        sep=sep,
        quoting=quoting,
        encoding=encoding,
        format=fmt,
        check=check,
    )
    if fmt == "jsonl" and not columns:
        raise problem(_JSONL_COLUMNS)
    return join


_JSONL_COLUMNS = (
    "a JSONL file has no header row: list the keys to take from each object in `columns`."
)


def _key_text(value: Any) -> Optional[str]:
    """A key cell as text ('5' for JSON 5 and 5.0), stripped; None when empty or absent."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if not isinstance(value, str):
        try:
            value = scalar_str(value)
        except TypeError:
            return None
    return value.strip() or None


def _normalized(value: Any) -> str:
    """Text for `check`: NFKC (NBSP → space, full-width → ASCII), whitespace collapsed."""
    if value is None:
        return ""
    if not isinstance(value, str):
        try:
            value = scalar_str(value)
        except TypeError:
            value = json.dumps(value)
    return " ".join(unicodedata.normalize("NFKC", value).split())


class _Joined:
    """A joined file of one input: its reader and the columns it adds to each row."""

    def __init__(self, n: int, join: JoinSpec, input_path: Path, source: str) -> None:
        self.n = n
        self.join = join
        self.input = input_path
        self.source = source
        self.path = join.path_for(input_path)
        if not self.path.is_file():
            if not_a_file(self.path) != "does not exist":
                check_input_file(self.path)  # a FIFO, a device, a link loop
            raise ConvertError(Errors.E283.format(path=input_path, joined=self.path))
        self.reader = Reader(self.path, join.file_spec(source), check_columns=False)
        if self.reader.format not in JOIN_FORMATS:
            raise SpecError(
                Errors.E280.format(
                    spec=source,
                    n=n,
                    path=join.path,
                    problem=f"{self.path} reads as {self.reader.format!r}; set `format` in "
                    f"the join to one of {list(JOIN_FORMATS)}.",
                )
            )
        if self.reader.format == "jsonl" and not join.columns:
            raise SpecError(
                Errors.E280.format(spec=source, n=n, path=join.path, problem=_JSONL_COLUMNS)
            )
        self.names: List[str] = []
        self.columns: List[str] = []  # added to each input row
        self.column_set: FrozenSet[str] = frozenset()
        self.empty: Dict[str, Any] = {}

    def _set_columns(self) -> None:
        """The file's columns, once its header is read; its key (or check) must be one."""
        if self.names:
            return
        names = self.reader.names
        self.names = list(names if names is not None else self.join.columns)
        shared = self.join.shared
        if shared is not None and shared not in self.names:
            raise ConvertError(
                Errors.E235.format(loc=f"{self.path}:1", column=shared, columns=self.names)
            )
        self.columns = [c for c in self.names if c != shared]
        self.column_set = frozenset(self.columns)
        # No row to join: the columns are absent (like JSON null), so groups read from
        # them are missing, even with `empty: negative`.
        self.empty = dict.fromkeys(self.columns)

    def _cells(
        self, record: Record
    ) -> Tuple[Optional[Mapping[str, Any]], Tuple[Optional[str], str]]:
        """A joined record's cells, or (None, its error)."""
        if record.cells is None:
            assert record.error is not None
            return None, record.error
        if self.reader.format == "jsonl":
            for column in self.names:
                if column not in record.cells:
                    return None, (column, Errors.E250.format(column=column))
        return record.cells, (None, "")

    def _extra(self, record: Record, error: Tuple[Optional[str], str]) -> Record:
        """A joined row that reaches no input row, as an error record."""
        return Record(self.path, record.line, None, strip_eol(record.raw), error=error, extra=True)

    def take(self, record: Record, cells: Optional[Mapping[str, Any]]) -> Taken:
        raise NotImplementedError

    def leftovers(self) -> Iterator[Record]:
        """Rows of the joined file that no input row took (errors), after the input."""
        return iter(())

    def close(self) -> None:
        self.reader.__exit__(None, None, None)


class KeyJoin(_Joined):
    """A left join on `key`: the joined file is indexed first, then the input streams."""

    def __init__(self, n: int, join: JoinSpec, input_path: Path, source: str) -> None:
        super().__init__(n, join, input_path, source)
        try:
            self._build_index()
        finally:
            self.close()

    def _build_index(self) -> None:
        join = self.join
        assert join.key is not None
        self.key = join.key
        self.index: Dict[str, int] = {}  # key → row number in the arrays below
        self.lines = array("q")  # row → physical line
        self.values: List[List[Any]] = []  # column → row → value
        self.bad: Dict[int, Tuple[Optional[str], str]] = {}  # row → (column, reason)
        self.early: List[Record] = []  # bad rows without a key: they reach no input row
        shared: Dict[Any, Any] = {}
        for record in self.reader:
            self._set_columns()
            if not self.values:
                self.values = [[] for _ in self.columns]
            cells, error = self._cells(record)
            key = _key_text(cells.get(self.key)) if cells is not None else self._key_of(record)
            if key is None:
                self.early.append(
                    self._extra(record, error if cells is None else (self.key, Errors.E288))
                )
                continue
            first = self.index.get(key)
            if first is not None:
                raise ConvertError(
                    Errors.E284.format(
                        file=self.path,
                        line=record.line,
                        column=self.key,
                        key=key,
                        first=self.lines[first],
                    )
                )
            row = len(self.lines)
            self.index[key] = row
            self.lines.append(record.line)
            if cells is None:
                self.bad[row] = error
                for column_values in self.values:
                    column_values.append(None)
                continue
            for column, column_values in zip(self.columns, self.values):
                value = cells[column]
                if isinstance(value, str) and len(value) <= _SHARE_LEN:
                    if len(shared) < _SHARE_MAX:
                        value = shared.setdefault(value, value)
                    else:
                        value = shared.get(value, value)
                column_values.append(value)
        self._set_columns()
        if not self.values:
            self.values = [[] for _ in self.columns]
        self.matched = bytearray(len(self.lines))

    def _key_of(self, record: Record) -> Optional[str]:
        """The key of a bad row, if it can be read, so that its input row is rejected too."""
        if not self.names or self.key not in self.names:
            return None
        text = strip_eol(record.raw)
        try:
            if self.reader.format == "jsonl":
                obj = json.loads(text)
                return _key_text(obj.get(self.key)) if isinstance(obj, dict) else None
            spec = self.reader.spec
            fields: List[str] = next(
                csv_reader(
                    text.splitlines(True), self.reader.format, sep=spec.sep, quoting=spec.quoting
                ),
                [],
            )
        except Exception:  # any parse problem (csv.Error, JSON, ...): no key
            return None
        at = self.names.index(self.key)
        return _key_text(fields[at]) if at < len(fields) else None

    def take(self, record: Record, cells: Optional[Mapping[str, Any]]) -> Taken:
        if cells is None:
            return self.empty, None, None
        if self.key not in cells:
            return (
                self.empty,
                None,
                (record.path, record.line, self.key, Errors.E250.format(column=self.key)),
            )
        key = _key_text(cells[self.key])
        row = self.index.get(key) if key is not None else None
        if row is None:
            return self.empty, None, None
        self.matched[row] = 1
        line = self.lines[row]
        if self.bad:
            error = self.bad.get(row)
            if error is not None:
                return self.empty, None, (self.path, line, error[0], error[1])
        return {c: v[row] for c, v in zip(self.columns, self.values)}, line, None

    def leftovers(self) -> Iterator[Record]:
        if self.matched.count(0) == 0:
            return
        keys = {row: key for key, row in self.index.items() if not self.matched[row]}
        wanted = {self.lines[row]: row for row in keys}
        # Read the file again for the rows' raw text (the index keeps none): only when
        # some rows were not joined.
        with Reader(self.path, self.reader.spec, check_columns=False) as reader:
            for record in reader:
                row = wanted.get(record.line)
                if row is None:
                    continue
                error = self.bad.get(row) or (
                    self.key,
                    Errors.E285.format(key=keys[row], input=self.input),
                )
                yield self._extra(record, error)


class PositionJoin(_Joined):
    """A join by row position: row i of the input gets row i of the joined file."""

    def __init__(self, n: int, join: JoinSpec, input_path: Path, source: str) -> None:
        super().__init__(n, join, input_path, source)
        self.check = join.check
        self.records = iter(self.reader)
        self.taken = 0
        try:
            self.pending = next(self.records, None)  # reads the header, if any
            self._set_columns()
        except BaseException:
            self.close()
            raise

    def take(self, record: Record, cells: Optional[Mapping[str, Any]]) -> Taken:
        joined = self.pending
        if joined is None:  # a shorter joined file: the later rows get no cells
            return self.empty, None, None
        self.pending = next(self.records, None)
        self.taken += 1
        if cells is None:  # the input row is bad: its joined row goes with it
            return self.empty, None, None
        joined_cells, error = self._cells(joined)
        if joined_cells is None:
            return self.empty, None, (self.path, joined.line, error[0], error[1])
        if self.check is not None:
            if self.check not in cells:
                return (
                    self.empty,
                    None,
                    (record.path, record.line, self.check, Errors.E250.format(column=self.check)),
                )
            ours, theirs = cells[self.check], joined_cells[self.check]
            if _normalized(ours) != _normalized(theirs):
                reason = Errors.E287.format(
                    value=_short(theirs), other=_short(ours), input=record.path, line=record.line
                )
                return self.empty, None, (self.path, joined.line, self.check, reason)
        return {c: joined_cells[c] for c in self.columns}, joined.line, None

    def leftovers(self) -> Iterator[Record]:
        while self.pending is not None:
            record, self.pending = self.pending, next(self.records, None)
            self.taken += 1
            yield self._extra(record, (None, Errors.E286.format(input=self.input, n=self.taken)))


def _short(value: Any, limit: int = 80) -> Any:
    if isinstance(value, str) and len(value) > limit:
        return value[: limit - 3] + "..."
    return value


@contextmanager
def open_input(
    path: Path, spec: ConvertSpec, *, limit: Optional[int] = None
) -> Iterator[Tuple[Reader, Iterator[Record]]]:
    """An input's reader and its records (at most `limit`), with the spec's joins applied.

    A record of an input row gets the joined files' columns (their cells, or None where a
    joined file has no row for it); a problem found by a join makes it an error record.
    Joined rows that reach no input row come as `extra` error records: bad rows without
    a key first, the others after the input's last row (not when `limit` cut the input
    short, as the rest of the input might have taken them).
    """
    joins: List[_Joined] = []
    try:
        for n, join in enumerate(spec.join, 1):
            joins.append(
                (KeyJoin if join.key is not None else PositionJoin)(n, join, path, spec.source)
            )
        added: Dict[str, _Joined] = {}
        for joined in joins:
            for column in joined.columns:
                other = added.get(column)
                if other is not None:
                    raise SpecError(
                        Errors.E281.format(
                            spec=spec.source,
                            n=joined.n,
                            path=joined.path,
                            column=column,
                            other=other.path,
                        )
                    )
                added[column] = joined
        required = [j.join.shared for j in joins if j.join.shared is not None]
        with Reader(
            path, spec, joined=set(added), required=list(dict.fromkeys(required))
        ) as reader:
            records: Iterator[Record] = iter(reader)
            if limit is not None:
                records = itertools.islice(records, limit)
            yield reader, (_join(records, joins, added, spec, limit) if joins else records)
    finally:
        for joined in joins:
            joined.close()


def _join(
    records: Iterator[Record],
    joins: Sequence[_Joined],
    added: Mapping[str, _Joined],
    spec: ConvertSpec,
    limit: Optional[int],
) -> Iterator[Record]:
    for joined in joins:
        if isinstance(joined, KeyJoin):
            yield from joined.early
    columns = frozenset(added)
    count = 0
    for record in records:
        count += 1
        cells = record.cells
        if cells is None:
            for joined in joins:
                joined.take(record, None)
            yield record
            continue
        if not columns.isdisjoint(cells):
            clash = next(c for c in added if c in cells)
            raise SpecError(
                Errors.E281.format(
                    spec=spec.source,
                    n=added[clash].n,
                    path=added[clash].path,
                    column=clash,
                    other=f"{record.path} (row on line {record.line})",
                )
            )
        merged = dict(cells)
        sources: List[Tuple[Path, int, Collection[str]]] = []
        unjoined: List[Path] = []
        problem: Optional[Problem] = None
        for joined in joins:
            cells_added, line, error = joined.take(record, cells)
            merged.update(cells_added)
            if line is not None:
                sources.append((joined.path, line, joined.column_set))
            elif error is None:
                unjoined.append(joined.path)
            if error is not None and problem is None:
                problem = error
        if problem is not None:
            where, problem_line, column, reason = problem
            yield Record(
                record.path,
                record.line,
                None,
                record.raw,
                error=(column, reason),
                error_path=where,
                error_line=problem_line,
                labels_path=record.labels_path,
            )
            continue
        record.cells = merged
        record.joined_from = tuple(sources)
        record.unjoined = tuple(unjoined)
        yield record
    if limit is None or count < limit:
        for joined in joins:
            yield from joined.leftovers()


__all__ = ["JOIN_FORMATS", "JoinSpec", "KeyJoin", "PositionJoin", "open_input", "parse_joins"]
