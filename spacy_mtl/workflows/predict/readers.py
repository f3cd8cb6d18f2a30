"""Reading `predict`'s input: rows of CSV, TSV, JSONL or Parquet, cut into chunks of texts."""

import csv
import errno
import hashlib
import json
import lzma
import math
import os
import stat
import zlib
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from ...data.io import (
    SEPARATORS,
    DuplicateKey,
    FloatOverflow,
    RecordBudget,
    RecordTooLong,
    TextLines,
    csv_reader,
    may_have_surrogates,
    overflowing_key,
    parse_json_float,
    replace_surrogates,
    unique_keys,
)
from .formats import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_MAX_RECORD_BYTES,
    MAX_JSON_DEPTH,
    PredictError,
    import_parquet,
    shorten,
)

# What reading a damaged file raises: a compressed file cut short (EOFError), bad
# compressed data (zlib.error, lzma.LZMAError, OSError for gzip and bz2), a disk error.
READ_ERRORS = (EOFError, OSError, zlib.error, lzma.LZMAError)


def clean_text(value: Any, where: str) -> Optional[str]:
    """The text to predict from a cell, or None for an empty prediction.

    None, NaN and texts of only whitespace are empty; numbers (from JSON or Parquet) are
    predicted as their string; anything else (a list, an object) is an error.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise PredictError(
        f"{where}: the text must be a string, got {type(value).__name__} {shorten(repr(value))}."
    )


def check_input_file(path: Path) -> None:
    """Raise a PredictError unless `path` is a regular file that can be read: a missing
    file, a symbolic link loop, a folder, a named pipe or a device (/dev/zero) each get
    their own message. A pipe or a device cannot be read again to resume, nor has it a
    size and a modification time that tell a changed input."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise PredictError(f"{path}: the input file does not exist.") from None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise PredictError(
                f"{path}: a loop of symbolic links (it links to itself, through "
                "others); point it at the input file."
            ) from None
        raise PredictError(f"{path}: the input cannot be read ({err.strerror or err}).") from None
    mode = info.st_mode
    if stat.S_ISREG(mode):
        if not os.access(path, os.R_OK):
            raise PredictError(f"{path}: the input cannot be read (permission denied).")
        return
    kind = (
        "a folder"
        if stat.S_ISDIR(mode)
        else "a named pipe (FIFO)"
        if stat.S_ISFIFO(mode)
        else "a character device"
        if stat.S_ISCHR(mode)
        else "a block device"
        if stat.S_ISBLK(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "not a regular file"
    )
    raise PredictError(
        f"{path}: {kind}, not a regular file. predict reads a file, which it can read "
        "again to resume an interrupted run: save the data to a file first."
    )


def _too_deep(value: Any, limit: int) -> bool:
    """Whether lists and dicts nest more than `limit` levels in `value` (iterative: a
    recursive walk would itself hit Python's recursion limit)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def parse_json_line(line: str, where: str) -> Any:
    """One line of JSONL, or a PredictError naming `where` ('file:line') and the cause:
    invalid JSON, a key given twice in an object, nesting deeper than MAX_JSON_DEPTH, a
    number of more digits than Python converts (4,300 by default), a number too large for
    a float (1e400: it would be predicted, or written back, as infinity)."""
    try:
        value = json.loads(
            line,
            parse_constant=_json_constant,
            parse_float=parse_json_float,
            object_pairs_hook=unique_keys,
        )
    except FloatOverflow as err:
        key = overflowing_key(line)
        field = "" if key is None else f"key {shorten(repr(key))}: "
        raise PredictError(
            f"{where}: {field}the number {shorten(err.literal)} is too large for a float "
            "(it would be read as infinity); write it as a string, or fix the value."
        ) from None
    except DuplicateKey as err:
        raise PredictError(
            f"{where}: key {shorten(repr(err.key))} appears more than once in one object; "
            "a JSON reader keeps only the last value (the others would be lost): remove or "
            "rename the others."
        ) from None
    except json.JSONDecodeError as err:
        raise PredictError(f"{where}: invalid JSON: {err}.") from None
    except RecursionError:
        raise PredictError(
            f"{where}: the JSON nests arrays or objects too deep to read (more than "
            f"{MAX_JSON_DEPTH} levels are refused)."
        ) from None
    except ValueError as err:  # an integer of more digits than int() converts
        raise PredictError(f"{where}: a value cannot be read: {shorten(str(err))}.") from None
    # A line with few brackets cannot nest deep: the walk is for the rare one that can.
    if line.count("[") + line.count("{") > MAX_JSON_DEPTH and _too_deep(value, MAX_JSON_DEPTH):
        raise PredictError(
            f"{where}: the JSON nests arrays or objects more than {MAX_JSON_DEPTH} levels "
            "deep; predict refuses such a row (its writers recurse per level)."
        )
    return value


class RowDigest:
    """A running SHA-256 of rows, to tell on a resume that the rows an earlier run did
    are those of the input now (size and modification time can stay the same when the
    file is edited or replaced). Each row is hashed as canonical JSON, as read: the
    same for every format, and independent of the chunk size."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def update(self, record: Dict[str, Any]) -> None:
        data = json.dumps(record, ensure_ascii=True, default=repr, allow_nan=True)
        self._hash.update(data.encode("ascii") + b"\n")

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _json_constant(name: str) -> Optional[float]:
    """NaN, Infinity, -Infinity (not JSON; Python's json writes them). NaN is read as
    null, a missing value, which is what predict's writers make of it (JSONL null, an
    empty CSV cell): a column of ids with a NaN in it stays a column of integers, rather
    than becoming floats (1.0, and Parquet refusing an id past 2**53)."""
    return None if name == "NaN" else float(name)


@dataclass
class Chunk:
    """Consecutive input rows, predicted and written together.

    index (int): Position of the chunk in the output (resumed chunks count).
    start (int): Input row number of the first row (0-based, header not counted).
    records (List[Dict[str, Any]]): The input rows, {column: value}.
    texts (List[Optional[str]]): What to predict per row; None: an empty prediction.
    truncated (int): Texts cut to nlp.max_length characters.
    replaced (List[str]): 'file:line' of each line of these rows where characters that
        cannot be written as UTF-8 (bytes that are not UTF-8, lone surrogates in JSON)
        were replaced with U+FFFD.
    wheres (List[str]): 'file:line' (or 'file:row N') of each row, for error messages.
    digest (Optional[str]): `RowDigest` of the input rows up to the end of this chunk
        (the resume check), if the chunks were read with one.
    """

    index: int
    start: int
    records: List[Dict[str, Any]]
    texts: List[Optional[str]]
    truncated: int = 0
    replaced: List[str] = field(default_factory=list)
    wheres: List[str] = field(default_factory=list)
    digest: Optional[str] = None

    @property
    def n_empty(self) -> int:
        return sum(text is None for text in self.texts)


# -- readers ------------------------------------------------------------------------------


class Reader:
    """Rows of an input file as ({column: value}, 'file:line' or 'file:row N') pairs; the
    line is the physical line where the row starts.

    Characters that cannot be written as UTF-8 (bytes of CSV/TSV/JSONL that are not UTF-8,
    lone surrogates such as "\\udfff" in JSON strings) are replaced with U+FFFD, so the row
    is predicted and written all the same; `replaced` lists where ('file:line').

    columns (List[str]): The input's columns (for JSONL: filled as records are read).
    arrow_schema: The Parquet schema (pyarrow), else None.
    total (Optional[int]): Number of rows when known without reading (Parquet).
    replaced (List[str]): 'file:line' of lines with replaced characters not yet taken by
        `take_replaced`.
    max_record_bytes (int): The most bytes of one line (JSONL) or row (CSV/TSV); a
        longer one stops the run with an error naming its line.

    Reading errors (a compressed file cut short or damaged, a disk error) are raised as
    a PredictError naming the file, the line and the cause.
    """

    def __init__(
        self,
        path: Path,
        fmt: str,
        *,
        columns: Optional[Sequence[str]] = None,
        quoting: bool = True,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    ) -> None:
        self.path = path
        self.fmt = fmt
        self.columns: List[str] = []
        self.arrow_schema: Any = None
        self.total: Optional[int] = None
        self._chunk_size = chunk_size
        self.replaced: List[str] = []
        self._lines: Optional[TextLines] = None
        self._csv: Any = None
        self._parquet: Any = None
        self._budget: Optional[RecordBudget] = None
        self._rows: Optional[Iterator[Tuple[Dict[str, Any], str]]] = None
        if max_record_bytes < 1:
            raise PredictError(f"max_record_bytes must be at least 1, got {max_record_bytes}.")
        self.max_record_bytes = max_record_bytes
        check_input_file(path)
        if columns is not None and fmt not in SEPARATORS:
            raise PredictError(
                f"{path}: column names (--columns) are for CSV/TSV files without a header "
                f"row; a {fmt} file names its own columns."
            )
        try:
            if fmt in SEPARATORS:
                self._open_delimited(columns, quoting)
            elif fmt == "jsonl":
                self._open_lines()
            else:
                self._open_parquet()
        except READ_ERRORS as err:
            self.close()
            raise self._read_error(err) from None
        except BaseException:
            self.close()
            raise

    def _open_parquet(self) -> None:
        pq = import_parquet()
        try:
            self._parquet = pq.ParquetFile(str(self.path))
        except Exception as err:  # pyarrow raises several types for a bad file
            raise PredictError(f"{self.path}: not a readable Parquet file: {err}") from None
        self.arrow_schema = self._parquet.schema_arrow
        self.columns = list(self.arrow_schema.names)
        self.total = self._parquet.metadata.num_rows

    def _open_lines(self) -> TextLines:
        self._lines = TextLines(self.path, errors="replace")
        self._budget = RecordBudget(self._lines, self.max_record_bytes)
        return self._lines

    def _read_error(self, err: BaseException) -> PredictError:
        """One line for a file that cannot be read on: where, and why."""
        line = self._lines.line_no + 1 if self._lines is not None else None
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        if isinstance(err, EOFError):
            cause = f"the compressed file is cut short ({err})"
        elif isinstance(err, (zlib.error, lzma.LZMAError)) or (
            isinstance(err, OSError) and err.errno is None
        ):
            cause = f"the compressed data is damaged ({err})"
        else:
            assert isinstance(err, OSError)
            cause = f"{err.strerror or err}"
        return PredictError(
            f"{where}: the input cannot be read: {cause}. Nothing after the last saved chunk "
            "is written; replace the file and run again (with --force if it changed)."
        )

    def _too_long(self, start: int) -> PredictError:
        what = "line" if self.fmt == "jsonl" else "row (its lines from there on)"
        hint = (
            "a file without line ends, or not JSONL?"
            if self.fmt == "jsonl"
            else "a quote that is never closed (--no-quoting for a file that does not quote)?"
        )
        return PredictError(
            f"{self.path}:{start}: the {what} is longer than {self.max_record_bytes:,} bytes, "
            f"the limit of one record (max_record_bytes, --max-record-bytes): {hint}"
        )

    def _open_delimited(self, columns: Optional[Sequence[str]], quoting: bool) -> None:
        # Cells are read as the exact strings in the file: no type or NA detection, so a
        # text "NA" or "null" is predicted as that text.
        lines = self._open_lines()
        self._csv = csv_reader(lines, self.fmt, quoting=quoting)
        if columns is not None:
            self.columns = list(columns)
        else:
            try:
                self.columns = next(self._csv, [])
            except csv.Error as err:
                raise PredictError(
                    f"{self.path}:{lines.line_no}: the header cannot be read: {err}"
                ) from None
            except RecordTooLong:
                raise self._too_long(1) from None
            self._note_replaced()
        seen = set()
        for name in self.columns:
            if name in seen:
                raise PredictError(
                    f"{self.path}: column name {shorten(repr(name))} appears more than once "
                    "in the header; rename it, or name the columns with --columns."
                )
            seen.add(name)

    def __enter__(self) -> "Reader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _note_replaced(self) -> None:
        lines = self._lines
        if lines is not None and lines.replaced:
            self.replaced.extend(f"{self.path}:{line}" for line in lines.replaced)
            lines.replaced.clear()

    def take_replaced(self) -> List[str]:
        """The 'file:line' of replaced characters since the last call."""
        taken, self.replaced = self.replaced, []
        return taken

    def close(self) -> None:
        if self._lines is not None:
            self._lines.close()
        if self._parquet is not None and hasattr(self._parquet, "close"):
            self._parquet.close()

    def rows(self) -> Iterator[Tuple[Dict[str, Any], str]]:
        """The rows not yet read: one iterator, however often it is asked for."""
        if self._rows is None:
            self._rows = self._checked_rows()
        return self._rows

    def _checked_rows(self) -> Iterator[Tuple[Dict[str, Any], str]]:
        if self.fmt in SEPARATORS:
            rows = self._delimited_rows()
        elif self.fmt == "jsonl":
            rows = self._jsonl_rows()
        else:
            rows = self._parquet_rows()
        try:
            yield from rows
        except READ_ERRORS as err:
            raise self._read_error(err) from None

    def _delimited_rows(self) -> Iterator[Tuple[Dict[str, Any], str]]:
        assert self._lines is not None
        lines = self._lines
        columns = self.columns
        n = len(columns)
        budget = self._budget
        assert budget is not None
        while True:
            start = lines.line_no + 1  # csv reads exactly the lines of one row
            budget.start_record()
            try:
                fields = next(self._csv)
            except StopIteration:
                return
            except RecordTooLong:
                raise self._too_long(start) from None
            except csv.Error as err:
                raise PredictError(
                    f"{self.path}:{start}: the row (lines {start}-{lines.line_no}) cannot be "
                    f"read: {err}"
                ) from None
            self._note_replaced()
            where = f"{self.path}:{start}"
            if len(fields) > n:
                raise PredictError(
                    f"{where}: the row has {len(fields)} fields, the header {n} "
                    f"({shorten(repr(columns))}); a field that contains the delimiter needs "
                    "quotes."
                )
            # A short row (or a blank line) is kept: its missing cells are missing values.
            record: Dict[str, Any] = dict(zip(columns, fields))
            for name in columns[len(fields) :]:
                record[name] = None
            yield record, where

    def _jsonl_rows(self) -> Iterator[Tuple[Dict[str, Any], str]]:
        assert self._lines is not None
        lines = self._lines
        budget = self._budget
        assert budget is not None
        known = set(self.columns)
        while True:
            budget.start_record()
            try:
                line = next(lines)
            except StopIteration:
                return
            except RecordTooLong:
                raise self._too_long(lines.line_no + 1) from None
            if not line.strip():
                continue  # a blank line is not a record
            where = f"{self.path}:{lines.line_no}"
            record = parse_json_line(line, where)
            if not isinstance(record, dict):
                raise PredictError(
                    f"{where}: expected one JSON object per line, got {type(record).__name__}."
                )
            if may_have_surrogates(line):
                cleaned = replace_surrogates(record)
                if cleaned != record:
                    record = cleaned
                    lines.replaced.append(lines.line_no)
            self._note_replaced()
            for key in record:
                if key not in known:
                    known.add(key)
                    self.columns.append(key)
            yield record, where

    def _parquet_rows(self) -> Iterator[Tuple[Dict[str, Any], str]]:
        row = 0
        batches = self._parquet.iter_batches(batch_size=self._chunk_size)
        while True:
            try:
                batch = next(batches, None)
            except READ_ERRORS:
                raise
            except Exception as err:  # pyarrow raises several types for a damaged file
                raise PredictError(
                    f"{self.path}: the Parquet file cannot be read after row {row:,}: "
                    f"{shorten(str(err))}"
                ) from None
            if batch is None:
                return
            for record in batch.to_pylist():
                row += 1
                yield record, f"{self.path}:row {row}"


def read_chunks(
    reader: Reader,
    text_column: str,
    chunk_size: int,
    *,
    max_length: int,
    skip: int = 0,
    first_index: int = 0,
    reserved: Iterable[str] = (),
    digest: Optional[RowDigest] = None,
    skipped_digest: Optional[str] = None,
) -> Iterator[Chunk]:
    """Cut the reader's rows into chunks, with the text of each row cleaned for prediction.

    reader (Reader): The open input.
    text_column (str): The column with the texts.
    chunk_size (int): Rows per chunk.
    max_length (int): Longer texts are cut to this many characters (nlp.max_length).
    skip (int): Input rows to skip first (done by an earlier run).
    first_index (int): Index of the first chunk.
    reserved (Iterable[str]): Names of the added columns: a row that has one is an error
        (checked per row, as JSONL rows may each have other keys).
    digest (Optional[RowDigest]): Hashes the rows, the skipped ones included; each chunk
        gets the digest up to its end.
    skipped_digest (Optional[str]): What `digest` must be after the skipped rows (the
        earlier run's record): else the input changed, and the run stops.
    YIELDS (Chunk): The chunks, in input order.
    """
    taken = frozenset(reserved)
    rows = reader.rows()
    skipped = 0
    for record, _ in islice(rows, skip):
        skipped += 1
        if digest is not None:
            digest.update(record)
    reader.take_replaced()  # of rows an earlier run wrote (and counted)
    if skipped < skip:
        raise PredictError(
            f"{reader.path}: the earlier run recorded {skip:,} rows done, but the file has "
            f"only {skipped:,}; was it changed? Start over with --force."
        )
    if digest is not None and skipped_digest is not None and digest.hexdigest() != skipped_digest:
        raise PredictError(
            f"{reader.path}: its first {skip:,} rows are not those the unfinished run "
            "predicted (the file was edited or replaced, though its size and modification "
            "time are the same): continuing would mix two inputs in one output. Start over "
            "with --force."
        )
    index = first_index
    start = skip
    seen_text_column = False
    while True:
        # Each row is checked as it is read: a bad row is then the first one reported,
        # not a structural error of a later row of the same chunk.
        batch: List[Any] = []
        texts: List[Optional[str]] = []
        truncated = 0
        for record, where in islice(rows, chunk_size):
            batch.append((record, where))
            if digest is not None:
                digest.update(record)
            if not taken.isdisjoint(record):
                raise PredictError(
                    f"{where}: the row already has {sorted(taken.intersection(record))}, "
                    "which predict would add; give a --prefix for the predicted columns, "
                    "e.g. --prefix pred_."
                )
            value = record.get(text_column)
            seen_text_column = seen_text_column or text_column in record
            text = clean_text(value, f"{where}: column {text_column!r}")
            if text is not None and len(text) > max_length:
                text = text[:max_length]
                truncated += 1
            texts.append(text)
        if not batch:
            return
        if not seen_text_column:
            # JSONL has no header to check up front: a record may lack the key (a missing
            # text), but a whole chunk without it is a misspelt --text-column.
            raise PredictError(
                f"{reader.path}: no row among the first {start + len(batch):,} has the text "
                f"column {text_column!r} (columns seen: {shorten(repr(reader.columns))}); set "
                "--text-column."
            )
        records = [record for record, _ in batch]
        wheres = [where for _, where in batch]
        yield Chunk(
            index,
            start,
            records,
            texts,
            truncated,
            reader.take_replaced(),
            wheres,
            digest.hexdigest() if digest is not None else None,
        )
        index += 1
        start += len(batch)
