"""Reading convert's inputs: physical lines → records (the cells of one row, with its
place in the file), for CSV, TSV, JSONL and one-text-per-line files (with an optional
paired labels file).
"""

import codecs
import csv
import json
import lzma
import re
import signal
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import (
    IO,
    Any,
    Collection,
    Dict,
    Iterator,
    List,
    Mapping,
    Optional,
    Pattern,
    Sequence,
    Set,
    Tuple,
)

from ...errors import Errors
from ..io import (
    SEPARATORS,
    DuplicateKey,
    FloatOverflow,
    compression,
    csv_reader,
    decompressed,
    format_from_name,
    not_a_file,
    overflowing_key,
    parse_json_float,
    unique_keys,
)
from .exceptions import ConvertError
from .spec import FORMATS, ConvertSpec
from .values import clip


@dataclass
class Record:
    """One row of an input file: its cells, or why it has none (`error`).

    path (Path): The input file.
    line (int): Physical line (1-based) where the row starts.
    cells (Optional[Mapping[str, Any]]): {column: value}; None when the row is bad.
    raw (str): The row's text as read, for the rejects file.
    error (Optional[Tuple[Optional[str], str]]): (column at fault or None, reason).
    """

    path: Path
    line: int
    cells: Optional[Mapping[str, Any]]
    raw: str
    error: Optional[Tuple[Optional[str], str]] = None
    error_path: Optional[Path] = None  # where the error is, when not `path`
    labels_path: Optional[Path] = None  # the paired labels file, for errors in its column
    error_line: Optional[int] = None  # the line in `error_path`, when not `line`
    # `join`: (joined file, its line, the columns it gave) for errors in those columns.
    joined_from: Tuple[Tuple[Path, int, Collection[str]], ...] = ()
    # A joined file's row that belongs to no input row (always an error): counted apart
    # from the rows read.
    extra: bool = False
    # A DataFrame row (`convert_dataframe`): (its index label,); errors name it.
    index: Optional[Tuple[Any]] = None
    # `join`: the joined files that had no row for this (good) input row.
    unjoined: Tuple[Path, ...] = ()


# What reading a (compressed) file can raise besides decoding errors.
READ_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError)
# Lines longer than this are not matched against `pattern` (a row error): even a
# linear-time pattern is slow on a huge line.
PATTERN_LINE_LIMIT = 10_000
# CPU seconds `pattern` may take on one line; then the line is a row error. check_pattern
# refuses the shapes that take exponential time, but not those that backtrack
# polynomially (`[^,]*[^;]*!`: hours on a 10,000-character line), which cannot be told
# from useful patterns by their shape.
PATTERN_CPU_SECONDS = 2.0


class PatternTimeout(Exception):
    """`pattern` ran longer than its CPU time on one line (see `PatternClock`)."""


def _stop_pattern(signum: int, frame: Any) -> None:
    raise PatternTimeout


class PatternClock:
    """Stops `pattern.fullmatch` on a line after `seconds` of CPU time: Python's matcher
    runs signal handlers between its steps, so a CPU timer (SIGVTALRM) raises
    `PatternTimeout` from inside it. Use as a context manager around the lines of a
    file: the handler is set once (setting it per line would cost more than matching),
    the timer per line. Needs POSIX and the main thread (where Python runs signal
    handlers); elsewhere matches are not bounded.
    """

    def __init__(self, seconds: float, *, enabled: bool = True) -> None:
        self.seconds = seconds
        self.active = (
            enabled
            and hasattr(signal, "setitimer")
            and threading.current_thread() is threading.main_thread()
        )
        self._previous: Any = None

    def __enter__(self) -> "PatternClock":
        if self.active:
            self._previous = signal.signal(signal.SIGVTALRM, _stop_pattern)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.active:
            signal.setitimer(signal.ITIMER_VIRTUAL, 0)
            # A signal still pending now finds the old handler (or none): it stops nothing.
            signal.signal(signal.SIGVTALRM, self._previous)

    def fullmatch(self, pattern: Pattern[str], text: str) -> Optional[Any]:
        """`pattern.fullmatch(text)`, or PatternTimeout after `seconds` of CPU time."""
        if not self.active:
            return pattern.fullmatch(text)
        signal.setitimer(signal.ITIMER_VIRTUAL, self.seconds)
        try:
            return pattern.fullmatch(text)
        finally:
            signal.setitimer(signal.ITIMER_VIRTUAL, 0)


def os_cause(err: OSError) -> str:
    """An OSError's cause in words, without the file name (the message names it)."""
    if err.strerror:
        return err.strerror
    return str(err) or type(err).__name__


def read_cause(err: BaseException, path: Path) -> str:
    """Why a file cannot be read, in words: a truncated or corrupt archive says so."""
    suffix = compression(path)
    if isinstance(err, EOFError) and suffix is not None:
        return f"the {suffix} file is truncated (it ends before its compressed data does)"
    if isinstance(err, (zlib.error, lzma.LZMAError)) or (
        suffix is not None and isinstance(err, OSError) and not err.errno
    ):
        return f"it is not a valid {suffix} file ({err})"
    if isinstance(err, OSError):
        return os_cause(err)
    return str(err) or type(err).__name__


class LineSource:
    """Physical lines of a file, decoded one at a time so a bad byte names its line.

    Iterating gives decoded lines with their line endings (what `csv.reader` expects from
    a file opened with newline=""). `take()` hands back the text consumed since the last
    call, for the rejects file, and the decoding problems found in it.
    """

    def __init__(self, path: Path, encoding: str) -> None:
        self.path = path
        self.encoding = encoding
        try:
            self._raw: IO[bytes] = open(path, "rb")  # noqa: SIM115 (closed by close())
        except OSError as err:
            raise ConvertError(Errors.E266.format(path=path, cause=os_cause(err))) from err
        # The decompressor reads from the raw file, so that `position` (progress) is the
        # number of bytes on disk read so far.
        self._file = decompressed(self._raw, path)
        self._strip_bom = codecs.lookup(encoding).name == "utf-8" or encoding.lower() in (
            "utf-8-sig",
            "utf_8_sig",
        )
        self._decoder_name = "utf-8" if self._strip_bom else encoding
        self.line_no = 0
        self._pending: List[str] = []
        self._bad: List[Tuple[int, str]] = []

    def __iter__(self) -> "LineSource":
        return self

    def __next__(self) -> str:
        try:
            data = self._file.readline()
        except READ_ERRORS as err:
            # A truncated or corrupt .gz/.bz2/.xz (EOFError, zlib/lzma errors, OSError), or
            # a disk error: the file cannot be read on, so the run stops here.
            cause = read_cause(err, self.path)
            raise ConvertError(Errors.E266.format(path=self.path, cause=cause)) from err
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


# One decoder for every line (json.loads with a hook would build one per call). A number
# too large for a float (1e400) is a bad row, not a silent inf.
_JSON = json.JSONDecoder(object_pairs_hook=unique_keys, parse_float=parse_json_float)


def looks_like_header(fields: Sequence[str], names: Sequence[str]) -> List[str]:
    """The cells of a row that are their own column's name (case and surrounding space
    ignored), when at least half of the row's columns (and one) are: a header row read as
    data. Else []."""
    same = [
        field
        for field, name in zip(fields, names)
        if field.strip().casefold() == name.strip().casefold()
    ]
    return same if len(same) >= max(1, (len(names) + 1) // 2) else []


def check_input_file(path: Path) -> None:
    """Refuse an input that is not a regular file, saying what it is (a folder, a FIFO,
    a device such as /dev/zero, a symbolic link loop) rather than that it does not exist.
    """
    kind = not_a_file(path)
    if kind is None:
        return
    if kind == "does not exist":
        raise ConvertError(Errors.E230.format(path=path))
    if kind == "a folder":
        raise ConvertError(Errors.E271.format(path=path))
    if kind.startswith("cannot be read"):
        raise ConvertError(Errors.E266.format(path=path, cause=kind[len("cannot be read ") :]))
    fix = "fix or remove the link"
    if not kind.startswith("a symbolic link"):
        fix = "convert reads each input more than once, so write the data to a file first"
    raise ConvertError(Errors.E268.format(path=path, kind=kind, fix=fix))


def strip_eol(text: str) -> str:
    if text.endswith("\n"):
        text = text[:-1]
    if text.endswith("\r"):
        text = text[:-1]
    return text


def _file_format(path: Path, spec: ConvertSpec) -> str:
    if spec.format is not None:
        return spec.format
    if spec.pattern is not None or spec.labels_file or spec.labels_file_replace:
        return "lines"
    fmt = format_from_name(path)
    if fmt not in FORMATS:
        raise ConvertError(Errors.E221.format(path=path, known=list(FORMATS)))
    return fmt


class Reader:
    """Records of one input file, any format. Use as a context manager."""

    def __init__(
        self,
        path: Path,
        spec: ConvertSpec,
        *,
        check_columns: bool = True,
        joined: Collection[str] = (),
        required: Sequence[str] = (),
    ) -> None:
        self.path = path
        self.spec = spec
        self.format = _file_format(path, spec)
        self.check_columns = check_columns
        # `join`: columns other files add to each row (the spec's columns may be among
        # them), and columns this file must have itself (the joins' keys).
        self.joined = joined
        self.required = required
        # The column names, once known (CSV/TSV: after the header row).
        self.names: Optional[List[str]] = None
        self.labels_path = spec.labels_path(path) if self.format == "lines" else None
        if self.labels_path is not None and self.labels_path.is_dir():
            raise ConvertError(Errors.E272.format(path=path, labels=self.labels_path))
        if self.labels_path is not None and not self.labels_path.is_file():
            if not_a_file(self.labels_path) != "does not exist":
                check_input_file(self.labels_path)  # a FIFO, a device, a link loop
            raise ConvertError(Errors.E225.format(path=path, labels=self.labels_path))
        if self.format in ("csv", "tsv") and not spec.columns and spec.header is False:
            raise ConvertError(Errors.E222.format(path=path, format=self.format))
        self._source = LineSource(path, spec.encoding)
        self._labels: Optional[LineSource] = None
        if self.labels_path is not None:
            self._labels = LineSource(self.labels_path, spec.encoding)

    def __enter__(self) -> "Reader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._source.close()
        if self._labels is not None:
            self._labels.close()

    @property
    def position(self) -> int:
        return self._source.position

    def __iter__(self) -> Iterator[Record]:
        if self.format in ("csv", "tsv"):
            return self._delimited()
        if self.format == "jsonl":
            return self._jsonl()
        return self._lines()

    def _decode_error(self, bad: List[Tuple[int, str]], raw: str) -> Record:
        line, reason = bad[0]
        return Record(self.path, line, None, raw, error=(None, reason))

    def _delimited(self) -> Iterator[Record]:
        spec = self.spec
        sep = spec.sep or SEPARATORS[self.format]
        source = self._source
        reader = csv_reader(source, self.format, sep=spec.sep, quoting=spec.quoting)
        names: Optional[List[str]] = None if self._has_header else list(spec.columns)
        if names is not None:
            self._check_names(names, 0)
            self.names = names
        end = 0
        # Without a header row, the first row is checked for one (`columns` given, the
        # file's header read as data): a silent shift of every row otherwise.
        check_header = names is not None and bool(spec.columns)
        while True:
            start = end + 1
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                end = source.line_no
                raw, _ = source.take()
                yield Record(
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
                self.names = names
                continue
            if check_header:
                check_header = False
                cells = looks_like_header(fields, names)
                if cells:
                    reason = Errors.E299.format(line=start, cells=cells)
                    yield Record(self.path, start, None, raw, error=(None, reason))
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
                yield Record(self.path, start, None, raw, error=error)
            else:
                yield Record(self.path, start, dict(zip(names, fields)), raw)

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
        for column in [*self.spec.input_columns, *self.required]:
            if column not in names and (column in self.required or column not in self.joined):
                raise ConvertError(
                    Errors.E235.format(
                        loc=f"{self.path}:{max(line, 1)}", column=column, columns=list(names)
                    )
                )

    def _jsonl(self) -> Iterator[Record]:
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
                obj = _JSON.decode(text)
            except DuplicateKey as dup:
                reason = Errors.E265.format(key=clip(dup.key))
                yield Record(self.path, line, None, raw, error=(None, reason))
                continue
            except FloatOverflow as big:
                reason = Errors.E234.format(number=clip(big.literal))
                yield Record(self.path, line, None, raw, error=(overflowing_key(text), reason))
                continue
            except RecursionError:
                # ~1,000 nested brackets exhaust the parser's stack: this row is bad, not
                # the run.
                reason = Errors.E264.format(what="brackets nested about 1,000 levels deep")
                yield Record(self.path, line, None, raw, error=(None, reason))
                continue
            except ValueError as err:
                if "integer string conversion" in str(err):  # Python's 4,300-digit limit
                    reason = Errors.E264.format(what="a number of more than 4,300 digits")
                else:
                    reason = Errors.E248.format(error=clip(str(err)))
                yield Record(self.path, line, None, raw, error=(None, reason))
                continue
            if not isinstance(obj, dict):
                kind = "an array" if isinstance(obj, list) else f"a {type(obj).__name__}"
                yield Record(
                    self.path, line, None, raw, error=(None, Errors.E249.format(kind=kind))
                )
                continue
            yield Record(self.path, line, obj, raw)

    def _lines(self) -> Iterator[Record]:
        spec = self.spec
        pattern = re.compile(spec.pattern) if spec.pattern is not None else None
        available = list(pattern.groupindex) if pattern is not None else [spec.text]
        labels = self._labels
        if labels is not None:
            available.append(spec.labels_column)
        if self.check_columns:
            for column in [*spec.input_columns, *self.required]:
                if column not in available and (
                    column in self.required or column not in self.joined
                ):
                    raise ConvertError(
                        Errors.E238.format(
                            loc=f"{self.path}:1", column=column, format="lines", columns=available
                        )
                    )
        with PatternClock(PATTERN_CPU_SECONDS, enabled=pattern is not None) as clock:
            yield from self._matched_lines(pattern, clock)

    def _matched_lines(
        self, pattern: Optional[Pattern[str]], clock: PatternClock
    ) -> Iterator[Record]:
        spec = self.spec
        labels = self._labels
        source = self._source
        # Every line is a row, blank or not: in paired files, position is the alignment.
        for _line_text in source:
            line = source.line_no
            raw, bad = source.take()
            content = strip_eol(raw)
            cells: Dict[str, Any] = {}
            error: Optional[Tuple[Optional[str], str]] = None
            error_path: Optional[Path] = None
            if bad:
                error = (None, bad[0][1])
            elif pattern is not None and len(content) > PATTERN_LINE_LIMIT:
                error = (None, Errors.E296.format(n=len(content), limit=PATTERN_LINE_LIMIT))
            elif pattern is not None:
                try:
                    match = clock.fullmatch(pattern, content)
                except PatternTimeout:
                    reason = Errors.E239.format(pattern=spec.pattern, limit=PATTERN_CPU_SECONDS)
                    error = (None, reason)
                else:
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
                    label_text = strip_eol(label_raw)
                    content = f"{content}\t{label_text}"
                    if label_bad and error is None:
                        error = (spec.labels_column, label_bad[0][1])
                        error_path = self.labels_path
                    cells[spec.labels_column] = label_text
            yield Record(
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
                yield Record(
                    self.path,
                    labels.line_no,
                    None,
                    "\t" + strip_eol(label_raw),
                    error=(
                        spec.labels_column,
                        Errors.E254.format(line=labels.line_no, text=self.path),
                    ),
                    error_path=self.labels_path,
                    labels_path=self.labels_path,
                )
