"""Writing `predict`'s output: CSV/TSV/JSONL appended to OUTPUT.partial and renamed to
OUTPUT when complete, Parquet as part files merged at the end; `commit` makes what was
written durable (the resume position). OUTPUT itself only ever appears whole."""

import csv
import json
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence

from ...data.io import SEPARATORS, csv_reader, csv_safe_cell
from .columns import OutputColumns, Scores
from .formats import PARTIAL_SUFFIX, PARTS_SUFFIX, PredictError, import_parquet, shorten
from .readers import Chunk, Reader


def _format_cell(value: Any) -> str:
    """A value of a non-CSV input as a CSV cell."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isnan(value):
        return ""
    if isinstance(value, (bool, list, dict)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf8", errors="replace")
    return str(value)


def _json_safe(value: Any) -> Any:
    # JSON has no NaN: a NaN from Parquet is written as null.
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


class Writer:
    """Writes chunks of rows with their predictions; `commit` makes them durable.

    position (int): What `commit` returned last: bytes written (CSV/TSV/JSONL) or parts
        written (Parquet). A resumed writer starts at the position of the progress file.
    """

    def __init__(
        self, path: Path, fmt: str, out: OutputColumns, reader: Reader, *, csv_safe: bool = False
    ) -> None:
        self.path = path
        self.fmt = fmt
        self.out = out
        self.reader = reader
        self.csv_safe = csv_safe
        self.position = 0

    def write(self, chunk: Chunk, scores: Sequence[Scores]) -> None:
        raise NotImplementedError

    def commit(self) -> int:
        raise NotImplementedError

    def finish(self) -> None:
        """Complete the output (write a header if no row came; merge Parquet parts)."""

    def close(self) -> None:
        """Release the file; called on success and on error."""


class TextWriter(Writer):
    """CSV, TSV and JSONL: OUTPUT.partial, appended to; resumed by truncating to a
    position; renamed to OUTPUT by `finish`."""

    def __init__(
        self,
        path: Path,
        fmt: str,
        out: OutputColumns,
        reader: Reader,
        *,
        resume_at: Optional[int] = None,
        csv_safe: bool = False,
    ) -> None:
        super().__init__(path, fmt, out, reader, csv_safe=csv_safe)
        self._header: Optional[List[str]] = None
        self.partial = partial_path(path)
        if resume_at is not None:
            # Everything after the last committed chunk is a chunk that was cut short (or
            # written but not recorded): drop it and write it again.
            with open(self.partial, "r+b") as raw:
                size = raw.seek(0, os.SEEK_END)
                if size < resume_at:
                    # truncate() would pad with NUL bytes: never write a corrupt file.
                    raise PredictError(
                        f"{self.partial} has {size:,} bytes, fewer than the {resume_at:,} "
                        "recorded as written; start over with --force."
                    )
                raw.truncate(resume_at)
            self.position = resume_at
            if fmt in SEPARATORS and resume_at > 0:
                self._header = self._written_header(self.partial, len(out.names(fmt)))
        self._file = open(  # noqa: SIM115 (closed by close())
            self.partial, "a" if resume_at else "w", encoding="utf8", newline=""
        )
        if fmt in SEPARATORS:
            self._csv = csv.writer(
                self._file,
                delimiter=SEPARATORS[fmt],
                quoting=csv.QUOTE_MINIMAL,
                lineterminator="\n",
            )
            # Python's csv quotes a cell for the characters of its line terminator only: a
            # lone "\r" would be written bare, and every CSV reader ends the row there.
            # A row with one is written with every cell quoted.
            self._csv_quoted = csv.writer(
                self._file,
                delimiter=SEPARATORS[fmt],
                quoting=csv.QUOTE_ALL,
                lineterminator="\n",
            )

    def _written_header(self, path: Path, n_added: int) -> List[str]:
        """The input columns of the header an earlier run wrote (for JSONL input they
        depend on what had been read when it was written)."""
        with open(path, encoding="utf8", newline="") as file:
            header: List[str] = next(csv_reader(file, self.fmt), [])
        return header[: len(header) - n_added]

    def _columns(self) -> List[str]:
        if self._header is None:
            # For JSONL input: the keys of the rows read so far (at least the first chunk).
            self._header = list(self.reader.columns)
            self._write_rows([self._safe([*self._header, *self.out.names(self.fmt)])])
        return self._header

    def _write_rows(self, rows: List[List[str]]) -> None:
        if not any("\r" in cell for row in rows for cell in row):
            self._csv.writerows(rows)
            return
        for row in rows:
            writer = self._csv_quoted if any("\r" in cell for cell in row) else self._csv
            writer.writerow(row)

    def _safe(self, cells: List[str]) -> List[str]:
        return [csv_safe_cell(cell) for cell in cells] if self.csv_safe else cells

    def write(self, chunk: Chunk, scores: Sequence[Scores]) -> None:
        if self.fmt == "jsonl":
            self._write_jsonl(chunk, scores)
            return
        columns = self._columns()
        known = set(columns)
        rows: List[List[str]] = []
        for record, row in zip(chunk.records, scores):
            if len(record) > len(columns) and not known.issuperset(record):
                extra = sorted(set(record) - known)
                n = len(rows)
                where = (
                    chunk.wheres[n]
                    if n < len(chunk.wheres)
                    else f"{self.reader.path}: row {chunk.start + n + 1:,}"
                )
                raise PredictError(
                    f"{where}: the row has column(s) {shorten(repr(extra))} that the first "
                    f"rows did not have, so they are not in the {self.fmt.upper()} header; "
                    "write JSONL or Parquet instead."
                )
            cells = [_format_cell(record.get(name)) for name in columns]
            rows.append(self._safe([*cells, *self.out.tabular(row)]))
        self._write_rows(rows)

    def _write_jsonl(self, chunk: Chunk, scores: Sequence[Scores]) -> None:
        lines = []
        for record, row in zip(chunk.records, scores):
            fields = {key: _json_safe(value) for key, value in record.items()}
            fields.update(self.out.fields(row, nested=True))
            lines.append(json.dumps(fields, ensure_ascii=False, default=_json_default) + "\n")
        self._file.write("".join(lines))

    def commit(self) -> int:
        self._file.flush()
        os.fsync(self._file.fileno())
        self.position = self._file.tell()
        return self.position

    def finish(self) -> None:
        if self.fmt in SEPARATORS and self.position == 0:
            self._columns()  # an input without rows still gets its header
            self.commit()
        self._file.close()
        os.replace(self.partial, self.path)
        fsync_path(self.path.parent)

    def close(self) -> None:
        self._file.close()


class ParquetWriter(Writer):
    """Parquet: one part file per chunk in OUTPUT.parts/, merged into OUTPUT at the end
    (a Parquet file has its index at the end, so it cannot be appended to)."""

    def __init__(
        self,
        path: Path,
        out: OutputColumns,
        reader: Reader,
        *,
        resume_at: Optional[int] = None,
    ) -> None:
        super().__init__(path, "parquet", out, reader)
        self._pq = import_parquet()
        self.parts = parts_dir(path)
        if resume_at is None:
            if self.parts.exists():
                shutil.rmtree(self.parts)
        else:
            self.position = resume_at
            # Parts from chunks that were not recorded as done are written again.
            for part in self.parts.glob("part-*"):
                if not part.name.endswith(".parquet") or _part_index(part) >= resume_at:
                    part.unlink()
        self.parts.mkdir(parents=True, exist_ok=True)

    def _part(self, index: int) -> Path:
        return self.parts / f"part-{index:06d}.parquet"

    def table(self, records: Sequence[Mapping[str, Any]], scores: Sequence[Scores]) -> Any:
        """Input columns (with their Parquet types, as strings from CSV/TSV, inferred from
        JSONL) and the added columns."""
        import pyarrow as pa

        names: List[str] = []
        arrays: List[Any] = []
        schema = self.reader.arrow_schema
        columns = list(self.reader.columns)
        if self.reader.fmt == "jsonl":
            # Only the keys these records have: a key first seen in a later chunk is added
            # there, and the merge fills it with nulls elsewhere.
            present = set().union(*(r.keys() for r in records)) if records else set()
            columns = [c for c in columns if c in present]
        for name in columns:
            values = [record.get(name) for record in records]
            try:
                if schema is not None:
                    array = pa.array(values, type=schema.field(name).type)
                elif self.reader.fmt in SEPARATORS:
                    array = pa.array(values, type=pa.string())
                else:
                    array = pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
                raise PredictError(
                    f"{self.reader.path}: column {name!r} has values of mixed types, which "
                    f"Parquet cannot store ({err}); write JSONL instead."
                ) from None
            names.append(name)
            arrays.append(array)
        for name, array in self.out.arrow_columns(scores):
            names.append(name)
            arrays.append(array)
        return pa.Table.from_arrays(arrays, names=names)

    def write(self, chunk: Chunk, scores: Sequence[Scores]) -> None:
        table = self.table(chunk.records, scores)
        part = self._part(chunk.index)
        tmp = part.with_name(part.name + ".tmp")
        self._pq.write_table(table, str(tmp))
        fsync_path(tmp)
        os.replace(tmp, part)
        self.position = chunk.index + 1

    def commit(self) -> int:
        fsync_path(self.parts)
        return self.position

    def finish(self) -> None:
        import pyarrow as pa

        parts = sorted(self.parts.glob("part-*.parquet"), key=_part_index)
        if [_part_index(p) for p in parts] != list(range(len(parts))):
            raise PredictError(
                f"{self.parts}: part files are missing ({[p.name for p in parts]}); start "
                "over with --force."
            )
        if not parts:
            # No rows: an empty file with the columns there would have been.
            self.write(Chunk(0, 0, [], []), [])
            parts = [self._part(0)]
        schemas = [self._pq.read_schema(str(p)) for p in parts]
        unified = pa.unify_schemas(schemas, promote_options="permissive")
        tmp = self.path.with_name(self.path.name + ".tmp")
        with self._pq.ParquetWriter(str(tmp), unified) as writer:
            for part in parts:  # one part in memory at a time
                table = self._pq.read_table(str(part))
                columns = [
                    table.column(f.name).cast(f.type)
                    if f.name in table.column_names
                    else pa.nulls(len(table), f.type)
                    for f in unified
                ]
                writer.write_table(pa.Table.from_arrays(columns, schema=unified))
        fsync_path(tmp)
        os.replace(tmp, self.path)


def partial_path(path: Path) -> Path:
    """The file a CSV/TSV/JSONL output is written to until it is complete."""
    return path.with_name(path.name + PARTIAL_SUFFIX)


def parts_dir(path: Path) -> Path:
    """Folder of the per-chunk part files of a Parquet output."""
    return path.with_name(path.name + PARTS_SUFFIX)


def _part_index(path: Path) -> int:
    try:
        return int(path.name.split("-", 1)[1].split(".", 1)[0])
    except (IndexError, ValueError):
        return sys.maxsize


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_writer(
    path: Path,
    fmt: str,
    out: OutputColumns,
    reader: Reader,
    *,
    resume_at: Optional[int] = None,
    csv_safe: bool = False,
) -> Writer:
    """A writer for `fmt`; `resume_at` continues from a recorded position.

    csv_safe (bool): CSV/TSV: write a cell that a spreadsheet would run as a formula (it
        starts with =, +, -, @, a tab or a carriage return) with a "'" before it.
    """
    if fmt == "parquet":
        return ParquetWriter(path, out, reader, resume_at=resume_at)
    return TextWriter(path, fmt, out, reader, resume_at=resume_at, csv_safe=csv_safe)
