"""Label every row of a CSV, TSV, JSONL or Parquet file with a trained pipeline.

`predict_file` streams the input in chunks of rows, runs `nlp.pipe` over their texts, and
writes each input row, in input order, with the predictions of one `mtl_textcat` component
added: per group the predicted label(s), and optionally every label's score. Memory stays
flat in the size of the file. A run that stops (an error, Ctrl-C, a lost machine) continues
after its last complete chunk when it is started again with the same output.

How a chunk is known to be complete: after each chunk the output is flushed and fsynced,
then a small sidecar, `OUTPUT.progress.json`, is replaced atomically with the number of
rows done and the output's size in bytes at that point. A rerun truncates the output to
that size (dropping a chunk that was half written, or written but not yet recorded), skips
that many input rows and appends. Parquet cannot be appended to, so Parquet output is
written as one part file per chunk in `OUTPUT.parts/` and merged into OUTPUT at the end.
The sidecar is deleted when the output is complete.

The output formatting (`OutputColumns`) and the file readers and writers are shared with
`spacy_mtl.distributed`, so that both give the same columns.

DOCS: docs/predict.md
"""

import bz2
import csv
import gzip
import json
import lzma
import math
import os
import shutil
import sys
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import (
    IO,
    Any,
    Callable,
    Deque,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from spacy.language import Language

from .schema import GroupSchema

PathLike = Union[str, Path]
# Scores of one row in the component's label order; None for an empty or missing text.
Scores = Optional[List[float]]
Label = Union[None, str, List[str]]

FORMATS = ("csv", "tsv", "jsonl", "parquet")
DEFAULT_CHUNK_SIZE = 10_000
DEFAULT_LABEL_SEP = "|"
PROGRESS_SUFFIX = ".progress.json"
PARTS_SUFFIX = ".parts"
PROGRESS_VERSION = 1

_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_COMPRESSED: Dict[str, Callable[..., IO[str]]] = {
    ".gz": gzip.open,
    ".bz2": bz2.open,
    ".xz": lzma.open,
}
_SEPARATORS = {"csv": ",", "tsv": "\t"}
_PARQUET_EXTRA = 'Parquet needs pyarrow: pip install "spacy-mtl[parquet]" (or pyarrow).'


class PredictError(ValueError):
    """The input, the output or the options of a prediction run are not usable.

    Each message names the file, line or row, and column at fault, and what to do.
    """


# -- options ------------------------------------------------------------------------------


def file_format(path: PathLike, given: Optional[str] = None, *, what: str = "input") -> str:
    """The format of a file: `given` if set, else from the name (.csv, .tsv/.tab,
    .jsonl/.ndjson, .parquet/.pq, each optionally followed by .gz, .bz2 or .xz).

    path (PathLike): The file.
    given (Optional[str]): A format named by the user; checked.
    what (str): 'input' or 'output', for the error message.
    RETURNS (str): One of FORMATS.
    """
    if given is not None:
        fmt = given.lower()
        if fmt not in FORMATS:
            raise PredictError(f"Unknown {what} format {given!r}; use one of {list(FORMATS)}.")
        return fmt
    suffixes = [s.lower() for s in Path(str(path)).suffixes]
    if suffixes and suffixes[-1] in _COMPRESSED:
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in _SUFFIXES:
        return _SUFFIXES[suffixes[-1]]
    raise PredictError(
        f"{path}: cannot tell the {what} format from the file name; give it with "
        f"--{'format' if what == 'input' else 'output-format'} ({'|'.join(FORMATS)})."
    )


def load_model(model: Union[PathLike, Language], gpu_id: int = -1) -> Language:
    """A pipeline: `model` itself if it is one, else `spacy.load(model)` (a folder or the
    name of an installed pipeline package), on GPU `gpu_id` when it is >= 0."""
    if isinstance(model, Language):
        return model
    import spacy

    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    path = Path(model)
    if not path.exists() and not spacy.util.is_package(str(model)):
        raise PredictError(f"Model {model}: no such folder or installed pipeline package.")
    return spacy.load(path if path.exists() else str(model))


def get_schema(nlp: Language, component: str) -> GroupSchema:
    """The label-group schema of the `mtl_textcat` component `component` of `nlp`."""
    if component not in nlp.pipe_names:
        raise PredictError(
            f"The pipeline has no component {component!r} (components: {nlp.pipe_names}); "
            "name the mtl_textcat component with --component."
        )
    schema = getattr(nlp.get_pipe(component), "schema", None)
    if not isinstance(schema, GroupSchema):
        raise PredictError(
            f"Component {component!r} is not an mtl_textcat component (it has no label-group "
            "schema); name the mtl_textcat component with --component."
        )
    return schema


def components_after(nlp: Language, component: str) -> List[str]:
    """The components after `component`: its predictions do not need them, so prediction
    disables them."""
    names = nlp.pipe_names
    return names[names.index(component) + 1 :]


# -- output columns -----------------------------------------------------------------------


class OutputColumns:
    """The columns prediction adds to each row, from a component's schema.

    Per group a label column `{prefix}{group}`: the label (multiclass: the most probable
    one) or the labels at or above their thresholds (multilabel; a list, or in CSV/TSV one
    cell joined with `label_sep`). With `scores`, each label's score: flat columns
    `{prefix}{group}/{label}` in CSV/TSV/Parquet, a nested object
    `{prefix}scores: {group: {label: score}}` in JSONL. An empty or missing text gets an
    empty prediction: no label (None / [] / empty cells) and no scores (None).
    The decision rule is the component's own (see `MultiGroupTextCategorizer.set_annotations`)
    applied to doc.cats, which survives `nlp.pipe(n_process>1)` in every spaCy version.
    """

    def __init__(
        self,
        schema: GroupSchema,
        *,
        scores: bool = False,
        prefix: str = "",
        label_sep: str = DEFAULT_LABEL_SEP,
    ) -> None:
        self.schema = schema
        self.scores = scores
        self.prefix = prefix
        self.label_sep = label_sep
        self.keys = list(schema.keys)
        self._slices = schema.slices()
        self._thresholds = [
            [group.threshold_for(label, schema.threshold) for label in group.labels]
            for group in schema
        ]

    @property
    def label_columns(self) -> List[str]:
        return [f"{self.prefix}{group.name}" for group in self.schema]

    @property
    def score_columns(self) -> List[str]:
        return [f"{self.prefix}{key}" for key in self.keys]

    @property
    def nested_scores_column(self) -> str:
        return f"{self.prefix}scores"

    def names(self, fmt: str) -> List[str]:
        """The added column names for output format `fmt`, in order."""
        if not self.scores:
            return self.label_columns
        if fmt == "jsonl":
            return [*self.label_columns, self.nested_scores_column]
        return [*self.label_columns, *self.score_columns]

    def check_collisions(self, columns: Iterable[str], fmt: str, where: str) -> None:
        """Raise if an input column has the name of an added column."""
        taken = sorted(set(columns) & set(self.names(fmt)))
        if taken:
            raise PredictError(
                f"{where}: the input already has column(s) {taken}, which predict would add; "
                "give a --prefix for the predicted columns, e.g. --prefix pred_."
            )

    def scores_of(self, cats: Mapping[str, float]) -> List[float]:
        """A doc's scores in the component's label order, read from doc.cats."""
        try:
            return [float(cats[key]) for key in self.keys]
        except KeyError as err:
            raise PredictError(
                f"A predicted doc has no score for {err.args[0]!r} in doc.cats: was the "
                "component disabled, or is the model not the one the schema describes?"
            ) from None

    def decide(self, row: Sequence[float]) -> List[Union[str, List[str]]]:
        """Per group, the label (multiclass: first argmax, as the component does) or the
        labels at or above their thresholds (multilabel)."""
        out: List[Union[str, List[str]]] = []
        for (group, start, end), thresholds in zip(self._slices, self._thresholds):
            values = row[start:end]
            if group.is_multiclass:
                best = max(range(len(values)), key=values.__getitem__)
                out.append(group.labels[best])
            else:
                out.append(
                    [
                        label
                        for label, value, threshold in zip(group.labels, values, thresholds)
                        if value >= threshold
                    ]
                )
        return out

    def labels(self, row: Scores) -> List[Label]:
        """Per group, the decided label(s); None / [] for an empty prediction."""
        if row is None:
            return [None if g.is_multiclass else [] for g in self.schema]
        return list(self.decide(row))

    def tabular(self, row: Scores) -> List[str]:
        """The added CSV/TSV cells of one row."""
        cells = []
        for label in self.labels(row):
            if isinstance(label, list):
                cells.append(self.label_sep.join(label))
            else:
                cells.append("" if label is None else label)
        if self.scores:
            cells.extend([""] * len(self.keys) if row is None else [repr(v) for v in row])
        return cells

    def fields(self, row: Scores, *, nested: bool) -> Dict[str, Any]:
        """The added fields of one row: labels as strings and lists; scores flat
        (Parquet) or nested under `{prefix}scores` (JSONL)."""
        out: Dict[str, Any] = dict(zip(self.label_columns, self.labels(row)))
        if not self.scores:
            return out
        if nested:
            if row is None:
                out[self.nested_scores_column] = None
            else:
                out[self.nested_scores_column] = {
                    group.name: dict(zip(group.labels, row[start:end]))
                    for group, start, end in self._slices
                }
        else:
            values: Sequence[Optional[float]] = [None] * len(self.keys) if row is None else row
            out.update(zip(self.score_columns, values))
        return out

    def arrow_columns(
        self, rows: Sequence[Scores], *, joined: bool = False
    ) -> List[Tuple[str, Any]]:
        """The added columns of a batch as pyarrow arrays (Parquet layout: flat scores).

        joined (bool): Multilabel labels as one `label_sep`-joined string (for CSV) instead
            of a list of strings.
        """
        import pyarrow as pa

        decided = [self.labels(row) for row in rows]
        columns: List[Tuple[str, Any]] = []
        for i, (group, name) in enumerate(zip(self.schema, self.label_columns)):
            values = [labels[i] for labels in decided]
            if group.is_multiclass:
                columns.append((name, pa.array(values, type=pa.string())))
            elif joined:
                cells = [self.label_sep.join(v) if isinstance(v, list) else "" for v in values]
                columns.append((name, pa.array(cells, type=pa.string())))
            else:
                columns.append((name, pa.array(values, type=pa.list_(pa.string()))))
        if self.scores:
            for j, name in enumerate(self.score_columns):
                floats = [None if row is None else row[j] for row in rows]
                columns.append((name, pa.array(floats, type=pa.float64())))
        return columns

    def nested_scores_array(self, rows: Sequence[Scores]) -> Any:
        """The JSONL `{prefix}scores` column as a pyarrow struct array (for Ray's writer)."""
        import pyarrow as pa

        group_types = [
            pa.field(g.name, pa.struct([pa.field(label, pa.float64()) for label in g.labels]))
            for g in self.schema
        ]
        values = [self.fields(row, nested=True)[self.nested_scores_column] for row in rows]
        return pa.array(values, type=pa.struct(group_types))


# -- texts --------------------------------------------------------------------------------


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


@dataclass
class Chunk:
    """Consecutive input rows, predicted and written together.

    index (int): Position of the chunk in the output (resumed chunks count).
    start (int): Input row number of the first row (0-based, header not counted).
    records (List[Dict[str, Any]]): The input rows, {column: value}.
    texts (List[Optional[str]]): What to predict per row; None: an empty prediction.
    truncated (int): Texts cut to nlp.max_length characters.
    """

    index: int
    start: int
    records: List[Dict[str, Any]]
    texts: List[Optional[str]]
    truncated: int = 0

    @property
    def n_empty(self) -> int:
        return sum(text is None for text in self.texts)


# -- readers ------------------------------------------------------------------------------


def _open_text(path: Path, mode: str = "rt") -> IO[str]:
    opener = _COMPRESSED.get(path.suffix.lower())
    # newline="": csv handles line ends itself (quoted newlines); utf-8-sig drops a BOM.
    if opener is not None:
        return opener(path, mode, encoding="utf-8-sig", newline="")
    return open(path, mode, encoding="utf-8-sig", newline="")


class Reader:
    """Rows of an input file as ({column: value}, 'file:line' or 'file:row N') pairs.

    columns (List[str]): The input's columns (for JSONL: filled as records are read).
    arrow_schema: The Parquet schema (pyarrow), else None.
    total (Optional[int]): Number of rows when known without reading (Parquet).
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
        self._file: Optional[IO[str]] = None
        self._csv: Any = None
        self._parquet: Any = None
        if not path.exists():
            raise PredictError(f"{path}: the input file does not exist.")
        if columns is not None and fmt not in _SEPARATORS:
            raise PredictError(
                f"{path}: column names (--columns) are for CSV/TSV files without a header "
                f"row; a {fmt} file names its own columns."
            )
        try:
            if fmt in _SEPARATORS:
                self._open_delimited(columns, quoting)
            elif fmt == "jsonl":
                self._file = _open_text(path)
            else:
                self._open_parquet()
        except BaseException:
            self.close()
            raise

    def _open_parquet(self) -> None:
        pq = _import_parquet()
        try:
            self._parquet = pq.ParquetFile(str(self.path))
        except Exception as err:  # pyarrow raises several types for a bad file
            raise PredictError(f"{self.path}: not a readable Parquet file: {err}") from None
        self.arrow_schema = self._parquet.schema_arrow
        self.columns = list(self.arrow_schema.names)
        self.total = self._parquet.metadata.num_rows

    def _open_delimited(self, columns: Optional[Sequence[str]], quoting: bool) -> None:
        # Cells are read as the exact strings in the file: no type or NA detection, so a
        # text "NA" or "null" is predicted as that text. Raise the cell size limit
        # (128 KiB by default) so that very long texts are read, not refused.
        csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
        self._file = _open_text(self.path)
        self._csv = csv.reader(
            self._file,
            delimiter=_SEPARATORS[self.fmt],
            quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE,
        )
        if columns is not None:
            self.columns = list(columns)
        else:
            try:
                self.columns = next(self._csv, [])
            except (csv.Error, UnicodeDecodeError) as err:
                raise PredictError(f"{self.path}:1: the header cannot be read: {err}") from None
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

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._parquet is not None and hasattr(self._parquet, "close"):
            self._parquet.close()

    def rows(self) -> Iterator[Tuple[Dict[str, Any], str]]:
        if self.fmt in _SEPARATORS:
            return self._delimited_rows()
        if self.fmt == "jsonl":
            return self._jsonl_rows()
        return self._parquet_rows()

    def _delimited_rows(self) -> Iterator[Tuple[Dict[str, Any], str]]:
        columns = self.columns
        n = len(columns)
        while True:
            try:
                fields = next(self._csv)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as err:
                raise PredictError(
                    f"{self.path}:{self._csv.line_num}: the row cannot be read: {err}"
                ) from None
            where = f"{self.path}:{self._csv.line_num}"
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
        assert self._file is not None
        known = set(self.columns)
        line_no = 0
        while True:
            try:
                line = self._file.readline()
            except UnicodeDecodeError as err:
                raise PredictError(f"{self.path}:{line_no + 1}: not valid UTF-8: {err}") from None
            if not line:
                return
            line_no += 1
            if not line.strip():
                continue  # a blank line is not a record
            where = f"{self.path}:{line_no}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise PredictError(f"{where}: invalid JSON: {err}.") from None
            if not isinstance(record, dict):
                raise PredictError(
                    f"{where}: expected one JSON object per line, got {type(record).__name__}."
                )
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


def _import_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise PredictError(_PARQUET_EXTRA) from None
    return pq


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
    if skipped < skip:
        raise PredictError(
            f"{reader.path}: the earlier run recorded {skip:,} rows done, but the file has "
            f"only {skipped:,}; was it changed? Start over with --overwrite."
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
        yield Chunk(index, start, [record for record, _ in batch], texts, truncated)
        index += 1
        start += len(batch)


# -- prediction ---------------------------------------------------------------------------


def iter_predictions(
    nlp: Language,
    chunks: Iterable[Chunk],
    out: OutputColumns,
    *,
    component: str = "mtl_textcat",
    batch_size: int = 64,
    n_process: int = 1,
    sort_by_length: bool = False,
    on_doc: Optional[Callable[[int], None]] = None,
) -> Iterator[Tuple[Chunk, List[Scores]]]:
    """Predict chunk after chunk in one `nlp.pipe` stream, and yield each chunk with its
    rows' scores as soon as all its docs are done, in input order.

    One stream rather than one `nlp.pipe` call per chunk: with n_process > 1 the worker
    processes start once, not once per chunk, and batches run across chunk boundaries.
    Empty texts never reach the pipeline (they get None). Chunks are read ahead only as
    far as `nlp.pipe` reads texts ahead, so memory stays at a chunk or two.

    sort_by_length (bool): Within each chunk, run the texts sorted by length
        (`spacy_mtl.batching.iter_by_length`: wordpieces with a transformer), so that a
        batch pads less; one process only.
    on_doc (Optional[Callable[[int], None]]): Called with the number of rows finished
        (for a progress bar).
    YIELDS (Tuple[Chunk, List[Optional[List[float]]]]): A chunk and its rows' scores.
    """
    if sort_by_length:
        if n_process > 1:
            raise PredictError("sort_by_length runs in one process; use n_process=1.")
        yield from _sorted_predictions(nlp, chunks, out, component, batch_size, on_doc)
        return
    pending: Deque[int] = deque()
    state: Dict[int, Tuple[Chunk, List[Scores], List[int]]] = {}

    def texts() -> Iterator[Tuple[str, Tuple[int, int]]]:
        for chunk in chunks:
            todo = len(chunk.texts) - chunk.n_empty
            state[chunk.index] = (chunk, [None] * len(chunk.texts), [todo])
            pending.append(chunk.index)
            for i, text in enumerate(chunk.texts):
                if text is not None:
                    # The context is plain ints: with n_process > 1 it is pickled to the
                    # workers and back, so it cannot point at the chunk itself.
                    yield text, (chunk.index, i)

    def ready() -> Iterator[Tuple[Chunk, List[Scores]]]:
        while pending and state[pending[0]][2][0] == 0:
            chunk, scores, _ = state.pop(pending.popleft())
            if on_doc is not None and chunk.n_empty:
                on_doc(chunk.n_empty)
            yield chunk, scores

    with _fork_safe_threads(n_process):
        docs = nlp.pipe(
            texts(),
            as_tuples=True,
            batch_size=batch_size,
            n_process=n_process,
            disable=components_after(nlp, component),
        )
        for doc, (index, i) in docs:
            _, scores, todo = state[index]
            scores[i] = out.scores_of(doc.cats)
            todo[0] -= 1
            if on_doc is not None:
                on_doc(1)
            yield from ready()
        yield from ready()
    if pending:
        raise RuntimeError(f"Prediction lost docs: chunks {list(pending)} were not finished.")


def _sorted_predictions(
    nlp: Language,
    chunks: Iterable[Chunk],
    out: OutputColumns,
    component: str,
    batch_size: int,
    on_doc: Optional[Callable[[int], None]],
) -> Iterator[Tuple[Chunk, List[Scores]]]:
    """iter_predictions with the texts of each chunk sorted by length."""
    from .batching import iter_by_length

    disable = components_after(nlp, component)
    for chunk in chunks:
        rows = [i for i, text in enumerate(chunk.texts) if text is not None]
        texts = [chunk.texts[i] for i in rows]
        scores: List[Scores] = [None] * len(chunk.texts)
        # Scores are taken from each doc as it comes: docs are not held to restore order.
        for j, doc in iter_by_length(nlp, texts, batch_size=batch_size, disable=disable):
            scores[rows[j]] = out.scores_of(doc.cats)
            # iter_by_length keeps the chunk's docs until the chunk is done; these are our
            # own docs, so drop what is large in them (the transformer's output).
            doc.user_data.clear()
            if on_doc is not None:
                on_doc(1)
        if on_doc is not None and chunk.n_empty:
            on_doc(chunk.n_empty)
        yield chunk, scores


@contextmanager
def _fork_safe_threads(n_process: int) -> Iterator[None]:
    """With n_process > 1, run torch on one thread per process while the workers exist.

    nlp.pipe forks its workers (Linux). If this process has run torch on several threads
    (any prediction or training before), the OpenMP thread pool does not survive the fork
    and the workers hang at their first forward pass (seen with torch 2.13 and
    spacy-transformers 1.4). One thread in the parent at fork time avoids that, and the
    workers inherit it: n_process workers on one thread each, rather than each on all
    the cores.
    """
    torch = sys.modules.get("torch") if n_process > 1 else None
    if torch is None:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# -- writers ------------------------------------------------------------------------------


def _cell(value: Any) -> str:
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

    def __init__(self, path: Path, fmt: str, out: OutputColumns, reader: Reader) -> None:
        self.path = path
        self.fmt = fmt
        self.out = out
        self.reader = reader
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
    """CSV, TSV and JSONL: one file, appended to; resumed by truncating to a position."""

    def __init__(
        self,
        path: Path,
        fmt: str,
        out: OutputColumns,
        reader: Reader,
        *,
        resume_at: Optional[int] = None,
    ) -> None:
        super().__init__(path, fmt, out, reader)
        self._header: Optional[List[str]] = None
        if resume_at is not None:
            # Everything after the last committed chunk is a chunk that was cut short (or
            # written but not recorded): drop it and write it again.
            with open(path, "r+b") as raw:
                raw.truncate(resume_at)
            self.position = resume_at
            if fmt in _SEPARATORS and resume_at > 0:
                self._header = self._written_header(path, len(out.names(fmt)))
        self._file = open(path, "a" if resume_at else "w", encoding="utf8", newline="")  # noqa: SIM115
        if fmt in _SEPARATORS:
            self._csv = csv.writer(
                self._file,
                delimiter=_SEPARATORS[fmt],
                quoting=csv.QUOTE_MINIMAL,
                lineterminator="\n",
            )

    def _written_header(self, path: Path, n_added: int) -> List[str]:
        """The input columns of the header an earlier run wrote (for JSONL input they
        depend on what had been read when it was written)."""
        with open(path, encoding="utf8", newline="") as file:
            header = next(csv.reader(file, delimiter=_SEPARATORS[self.fmt]), [])
        return header[: len(header) - n_added]

    def _columns(self) -> List[str]:
        if self._header is None:
            # For JSONL input: the keys of the rows read so far (at least the first chunk).
            self._header = list(self.reader.columns)
            self._csv.writerow([*self._header, *self.out.names(self.fmt)])
        return self._header

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
                raise PredictError(
                    f"{self.reader.path}: row {chunk.start + len(rows) + 1:,} has column(s) "
                    f"{extra} that the first rows did not have, so they are not in the "
                    f"{self.fmt.upper()} header; write JSONL or Parquet instead."
                )
            cells = [_cell(record.get(name)) for name in columns]
            rows.append([*cells, *self.out.tabular(row)])
        self._csv.writerows(rows)

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
        if self.fmt in _SEPARATORS and self.position == 0:
            self._columns()  # an input without rows still gets its header
            self.commit()

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
        self._pq = _import_parquet()
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
                elif self.reader.fmt in _SEPARATORS:
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
        _fsync_path(tmp)
        os.replace(tmp, part)
        self.position = chunk.index + 1

    def commit(self) -> int:
        _fsync_path(self.parts)
        return self.position

    def finish(self) -> None:
        import pyarrow as pa

        parts = sorted(self.parts.glob("part-*.parquet"), key=_part_index)
        if [_part_index(p) for p in parts] != list(range(len(parts))):
            raise PredictError(
                f"{self.parts}: part files are missing ({[p.name for p in parts]}); start "
                "over with --overwrite."
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
        _fsync_path(tmp)
        os.replace(tmp, self.path)


def parts_dir(path: Path) -> Path:
    """Folder of the per-chunk part files of a Parquet output."""
    return path.with_name(path.name + PARTS_SUFFIX)


def _part_index(path: Path) -> int:
    try:
        return int(path.name.split("-", 1)[1].split(".", 1)[0])
    except (IndexError, ValueError):
        return sys.maxsize


def _fsync_path(path: Path) -> None:
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
) -> Writer:
    """A writer for `fmt`; `resume_at` continues from a recorded position."""
    if fmt == "parquet":
        return ParquetWriter(path, out, reader, resume_at=resume_at)
    return TextWriter(path, fmt, out, reader, resume_at=resume_at)


# -- progress file ------------------------------------------------------------------------


def progress_path(output: Path) -> Path:
    """The sidecar that records the complete chunks of an unfinished output."""
    return output.with_name(output.name + PROGRESS_SUFFIX)


def _write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf8") as file:
        json.dump(data, file, indent=2, sort_keys=True)
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)


def _input_identity(path: Path) -> Dict[str, Any]:
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _settings(nlp: Language, model: Any, schema: GroupSchema, **options: Any) -> Dict[str, Any]:
    """What must not change between an interrupted run and its resumption."""
    meta = nlp.meta
    settings = {
        "model": str(model) if not isinstance(model, Language) else None,
        "model_meta": f"{meta.get('name')}-{meta.get('version')}",
        "schema": {"groups": schema.to_config(), "threshold": schema.threshold},
        **options,
    }
    # JSON-normalised (tuples become lists) so that it compares equal after a round trip.
    return json.loads(json.dumps(settings, sort_keys=True))


def _check_resume(progress: Mapping[str, Any], settings: Mapping[str, Any], path: Path) -> None:
    where = f"{progress_path(path)} (an unfinished earlier run)"
    if progress.get("version") != PROGRESS_VERSION:
        raise PredictError(f"{where}: unknown version; start over with --overwrite.")
    before = progress.get("settings", {})
    changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
    if changed:
        raise PredictError(
            f"{where} used other settings ({', '.join(changed)} differ); rerun with the same "
            "model and options to continue it, or start over with --overwrite."
        )


# -- the whole file -----------------------------------------------------------------------


@dataclass
class PredictSummary:
    """What a `predict_file` run did.

    rows (int): Rows in the output (input rows, in order).
    rows_this_run (int): Rows predicted by this run (rows minus those resumed).
    resumed_rows (int): Rows an earlier, interrupted run had already written.
    empty (int): Rows with an empty or missing text (empty prediction), all runs.
    truncated (int): Texts cut to nlp.max_length characters, all runs.
    chunks (int): Chunks in the output.
    seconds (float): Wall time of this run, loading the pipeline included.
    load_seconds (float): Of which loading the pipeline.
    """

    input: Path
    output: Path
    input_format: str
    output_format: str
    rows: int = 0
    rows_this_run: int = 0
    resumed_rows: int = 0
    empty: int = 0
    truncated: int = 0
    chunks: int = 0
    seconds: float = 0.0
    load_seconds: float = 0.0
    columns: List[str] = field(default_factory=list)

    @property
    def docs_per_second(self) -> float:
        """Rows of this run per second of reading, predicting and writing (loading the
        pipeline not included)."""
        busy = self.seconds - self.load_seconds
        return self.rows_this_run / busy if busy > 0 else 0.0


def predict_file(
    model: Union[PathLike, Language],
    input_path: PathLike,
    output_path: PathLike,
    *,
    text_column: str = "text",
    input_format: Optional[str] = None,
    output_format: Optional[str] = None,
    component: str = "mtl_textcat",
    scores: bool = False,
    batch_size: int = 64,
    n_process: int = 1,
    gpu_id: int = -1,
    sort_by_length: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    columns: Optional[Sequence[str]] = None,
    quoting: bool = True,
    prefix: str = "",
    label_sep: str = DEFAULT_LABEL_SEP,
    overwrite: bool = False,
    progress: bool = False,
    on_chunk: Optional[Callable[[Chunk], None]] = None,
) -> PredictSummary:
    """Predict every row of a file and write the rows with their predictions.

    model (Union[str, Path, Language]): A pipeline folder, an installed pipeline package
        name, or a loaded pipeline.
    input_path (Union[str, Path]): CSV, TSV, JSONL or Parquet (text formats optionally
        .gz/.bz2/.xz compressed).
    output_path (Union[str, Path]): The output file (not compressed).
    text_column (str): The column (JSON key) with the texts.
    input_format, output_format (Optional[str]): 'csv', 'tsv', 'jsonl' or 'parquet'; by
        default from the file names (the output: else the input's format).
    component (str): The mtl_textcat component to report.
    scores (bool): Also write every label's score.
    batch_size (int): Docs per `nlp.pipe` batch.
    n_process (int): Processes for `nlp.pipe` (CPU only).
    gpu_id (int): GPU to load `model` on; -1 for CPU.
    sort_by_length (bool): Run each chunk's texts sorted by length (less padding in a
        transformer's batches); n_process must be 1.
    chunk_size (int): Rows read, predicted and committed together (the resume unit).
    columns (Optional[Sequence[str]]): Column names of a CSV/TSV file without a header.
    quoting (bool): CSV/TSV input uses quotes ("a, b" and "" inside); False reads quote
        characters as text (a TSV that never quotes). Output always quotes as needed.
    prefix (str): Prepended to the added column names (when the input has such columns).
    label_sep (str): Joins the labels of a multilabel group in a CSV/TSV cell.
    overwrite (bool): Replace an existing output (and forget an unfinished run).
    progress (bool): Show a progress bar (docs/s).
    on_chunk (Optional[Callable[[Chunk], None]]): Called after each chunk is committed.
    RETURNS (PredictSummary): Counts and timing.
    DOCS: docs/predict.md
    """
    started = time.perf_counter()
    input_path = Path(input_path)
    output_path = Path(output_path)
    in_fmt = file_format(input_path, input_format)
    out_fmt = _output_format(output_path, output_format, in_fmt)
    if batch_size < 1 or chunk_size < 1 or n_process < 1:
        raise PredictError(
            "batch_size, chunk_size and n_process must be at least 1, got "
            f"{batch_size}, {chunk_size} and {n_process}."
        )
    if n_process > 1 and gpu_id >= 0:
        raise PredictError("n_process > 1 runs on CPU only; use n_process=1 with a GPU.")
    if n_process > 1 and sort_by_length:
        raise PredictError("sort_by_length runs in one process; use n_process=1.")
    if input_path.resolve() == output_path.resolve():
        raise PredictError(f"{output_path}: the output would overwrite the input.")
    nlp = load_model(model, gpu_id)
    loaded = time.perf_counter()
    schema = get_schema(nlp, component)
    out = OutputColumns(schema, scores=scores, prefix=prefix, label_sep=label_sep)
    settings = _settings(
        nlp,
        model,
        schema,
        text_column=text_column,
        input_format=in_fmt,
        output_format=out_fmt,
        component=component,
        scores=scores,
        columns=list(columns) if columns is not None else None,
        quoting=quoting,
        prefix=prefix,
        label_sep=label_sep,
    )
    progress_file = progress_path(output_path)
    with Reader(
        input_path, in_fmt, columns=columns, quoting=quoting, chunk_size=chunk_size
    ) as reader:
        # The input is checked before anything is written: a misspelt option leaves no
        # unfinished run behind.
        if in_fmt != "jsonl":
            if text_column not in reader.columns:
                raise PredictError(
                    f"{input_path}: no column {text_column!r}; the columns are "
                    f"{reader.columns}. Set --text-column (or --columns for a file without "
                    "a header)."
                )
            out.check_collisions(reader.columns, out_fmt, str(input_path))
        done = _start_or_resume(
            output_path, out_fmt, progress_file, settings, input_path, overwrite
        )
        summary = PredictSummary(input_path, output_path, in_fmt, out_fmt)
        summary.resumed_rows = summary.rows = done["rows_done"]
        summary.empty, summary.truncated = done["empty"], done["truncated"]
        summary.chunks = done["chunks_done"]
        resume_at = done["position"] if done["rows_done"] or done["chunks_done"] else None
        writer = open_writer(output_path, out_fmt, out, reader, resume_at=resume_at)
        bar = _progress_bar(progress, reader.total, done["rows_done"])
        try:
            chunks = read_chunks(
                reader,
                text_column,
                chunk_size,
                max_length=nlp.max_length,
                skip=done["rows_done"],
                first_index=done["chunks_done"],
                reserved=out.names(out_fmt),
            )
            for chunk, chunk_scores in iter_predictions(
                nlp,
                chunks,
                out,
                component=component,
                batch_size=batch_size,
                n_process=n_process,
                sort_by_length=sort_by_length,
                on_doc=bar.update if bar is not None else None,
            ):
                writer.write(chunk, chunk_scores)
                position = writer.commit()
                summary.rows += len(chunk.records)
                summary.rows_this_run += len(chunk.records)
                summary.empty += chunk.n_empty
                summary.truncated += chunk.truncated
                summary.chunks = chunk.index + 1
                done.update(
                    rows_done=summary.rows,
                    chunks_done=summary.chunks,
                    position=position,
                    empty=summary.empty,
                    truncated=summary.truncated,
                )
                _write_json_atomic(progress_file, done)
                if on_chunk is not None:
                    on_chunk(chunk)
            writer.finish()
        except BaseException:
            writer.close()
            if summary.rows == 0:
                # Nothing was committed: there is nothing to resume, and a rerun (with
                # other options, say) should not be told about an unfinished run.
                _remove_output(output_path, progress_file)
            raise
        finally:
            if bar is not None:
                bar.close()
        writer.close()
        summary.columns = [*reader.columns, *out.names(out_fmt)]
    # The output is complete: the sidecar goes, so a rerun does not "continue" it.
    progress_file.unlink()
    if out_fmt == "parquet":
        shutil.rmtree(parts_dir(output_path), ignore_errors=True)
    summary.seconds = time.perf_counter() - started
    summary.load_seconds = loaded - started
    return summary


def _remove_output(output: Path, progress_file: Path) -> None:
    for path in (output, progress_file):
        if path.exists():
            path.unlink()
    if parts_dir(output).exists():
        shutil.rmtree(parts_dir(output))


def _output_format(path: Path, given: Optional[str], input_format: str) -> str:
    if path.suffix.lower() in _COMPRESSED:
        raise PredictError(
            f"{path}: compressed output is not supported (a resumed run truncates and "
            "appends); write it plain and compress it afterwards."
        )
    if given is None and path.suffix.lower() not in _SUFFIXES:
        return input_format
    return file_format(path, given, what="output")


def _start_or_resume(
    output: Path,
    fmt: str,
    progress_file: Path,
    settings: Dict[str, Any],
    input_path: Path,
    overwrite: bool,
) -> Dict[str, Any]:
    """The progress record to start from: a fresh one, or the unfinished run's."""
    fresh = {
        "version": PROGRESS_VERSION,
        "settings": settings,
        "input": _input_identity(input_path),
        "rows_done": 0,
        "chunks_done": 0,
        "position": 0,
        "empty": 0,
        "truncated": 0,
    }
    if overwrite:
        _remove_output(output, progress_file)
    elif progress_file.exists():
        try:
            progress = json.loads(progress_file.read_text(encoding="utf8"))
        except (OSError, ValueError) as err:
            raise PredictError(
                f"{progress_file}: the progress file cannot be read ({err}); start over with "
                "--overwrite."
            ) from None
        _check_resume(progress, settings, output)
        if progress.get("input") != fresh["input"]:
            raise PredictError(
                f"{input_path} changed (size or modification time) since the unfinished run "
                f"recorded in {progress_file}; start over with --overwrite."
            )
        if fmt != "parquet" and progress["position"] and not output.exists():
            raise PredictError(
                f"{output} is gone but {progress_file} records {progress['rows_done']:,} rows "
                "written; start over with --overwrite."
            )
        return progress
    elif output.exists() or parts_dir(output).exists():
        raise PredictError(
            f"{output} already exists (and no unfinished run is recorded for it); use "
            "--overwrite to replace it."
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    _write_json_atomic(progress_file, fresh)
    return fresh


def _progress_bar(show: bool, total: Optional[int], initial: int) -> Any:
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        unit=" docs",
        unit_scale=True,
        smoothing=0.1,
        dynamic_ncols=True,
        leave=True,
    )
