"""Reading `predict`'s input: rows of CSV, TSV, JSONL or Parquet, cut into chunks of texts."""

import csv
import json
import math
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from ...data.io import (
    SEPARATORS,
    TextLines,
    csv_reader,
    may_have_surrogates,
    replace_surrogates,
)
from .formats import DEFAULT_CHUNK_SIZE, PredictError, import_parquet


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
    raise PredictError(f"{where}: the text must be a string, got {type(value).__name__} {value!r}.")


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
    """

    index: int
    start: int
    records: List[Dict[str, Any]]
    texts: List[Optional[str]]
    truncated: int = 0
    replaced: List[str] = field(default_factory=list)
    wheres: List[str] = field(default_factory=list)

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
    """

    def __init__(
        self,
        path: Path,
        fmt: str,
        *,
        columns: Optional[Sequence[str]] = None,
        quoting: bool = True,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
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
        if not path.exists():
            raise PredictError(f"{path}: the input file does not exist.")
        if columns is not None and fmt not in SEPARATORS:
            raise PredictError(
                f"{path}: column names (--columns) are for CSV/TSV files without a header "
                f"row; a {fmt} file names its own columns."
            )
        try:
            if fmt in SEPARATORS:
                self._open_delimited(columns, quoting)
            elif fmt == "jsonl":
                self._lines = TextLines(path, errors="replace")
            else:
                self._open_parquet()
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

    def _open_delimited(self, columns: Optional[Sequence[str]], quoting: bool) -> None:
        # Cells are read as the exact strings in the file: no type or NA detection, so a
        # text "NA" or "null" is predicted as that text.
        self._lines = TextLines(self.path, errors="replace")
        self._csv = csv_reader(self._lines, self.fmt, quoting=quoting)
        if columns is not None:
            self.columns = list(columns)
        else:
            try:
                self.columns = next(self._csv, [])
            except csv.Error as err:
                raise PredictError(
                    f"{self.path}:{self._lines.line_no}: the header cannot be read: {err}"
                ) from None
            self._note_replaced()
        seen = set()
        for name in self.columns:
            if name in seen:
                raise PredictError(
                    f"{self.path}: column name {name!r} appears more than once in the "
                    "header; rename it, or name the columns with --columns."
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
        if self.fmt in SEPARATORS:
            return self._delimited_rows()
        if self.fmt == "jsonl":
            return self._jsonl_rows()
        return self._parquet_rows()

    def _delimited_rows(self) -> Iterator[Tuple[Dict[str, Any], str]]:
        assert self._lines is not None
        lines = self._lines
        columns = self.columns
        n = len(columns)
        while True:
            start = lines.line_no + 1  # csv reads exactly the lines of one row
            try:
                fields = next(self._csv)
            except StopIteration:
                return
            except csv.Error as err:
                raise PredictError(
                    f"{self.path}:{start}: the row (lines {start}-{lines.line_no}) cannot be "
                    f"read: {err}"
                ) from None
            self._note_replaced()
            where = f"{self.path}:{start}"
            if len(fields) > n:
                raise PredictError(
                    f"{where}: the row has {len(fields)} fields, the header {n} ({columns}); "
                    "a field that contains the delimiter needs quotes."
                )
            # A short row (or a blank line) is kept: its missing cells are missing values.
            record: Dict[str, Any] = dict(zip(columns, fields))
            for name in columns[len(fields) :]:
                record[name] = None
            yield record, where

    def _jsonl_rows(self) -> Iterator[Tuple[Dict[str, Any], str]]:
        assert self._lines is not None
        lines = self._lines
        known = set(self.columns)
        for line in lines:
            if not line.strip():
                continue  # a blank line is not a record
            where = f"{self.path}:{lines.line_no}"
            try:
                record = json.loads(line, parse_constant=_json_constant)
            except json.JSONDecodeError as err:
                raise PredictError(f"{where}: invalid JSON: {err}.") from None
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
        for batch in self._parquet.iter_batches(batch_size=self._chunk_size):
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
    YIELDS (Chunk): The chunks, in input order.
    """
    taken = frozenset(reserved)
    rows = reader.rows()
    skipped = sum(1 for _ in islice(rows, skip))
    reader.take_replaced()  # of rows an earlier run wrote (and counted)
    if skipped < skip:
        raise PredictError(
            f"{reader.path}: the earlier run recorded {skip:,} rows done, but the file has "
            f"only {skipped:,}; was it changed? Start over with --force."
        )
    index = first_index
    start = skip
    seen_text_column = False
    while True:
        batch = list(islice(rows, chunk_size))
        if not batch:
            return
        texts: List[Optional[str]] = []
        truncated = 0
        for record, where in batch:
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
        if not seen_text_column:
            # JSONL has no header to check up front: a record may lack the key (a missing
            # text), but a whole chunk without it is a misspelt --text-column.
            raise PredictError(
                f"{reader.path}: no row among the first {start + len(batch):,} has the text "
                f"column {text_column!r} (columns seen: {reader.columns}); set --text-column."
            )
        records = [record for record, _ in batch]
        wheres = [where for _, where in batch]
        yield Chunk(index, start, records, texts, truncated, reader.take_replaced(), wheres)
        index += 1
        start += len(batch)
