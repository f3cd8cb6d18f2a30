"""`predict_file`: read, predict, write and commit chunk after chunk; resume after a stop."""

import errno
import itertools
import os
import shutil
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, Sequence, Union

from spacy.language import Language

from ...data.io import input_clash
from ...tables import Table
from .columns import OutputColumns
from .formats import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_LABEL_SEP,
    DEFAULT_MAX_RECORD_BYTES,
    PathLike,
    PredictError,
    file_format,
    resolve_output_format,
)
from .inference import get_schema, iter_predictions, load_model
from .lock import OutputLock
from .readers import Chunk, Reader, RowDigest, check_input_file, read_chunks
from .resume import (
    model_files,
    model_folder,
    progress_path,
    remove_output,
    run_settings,
    start_or_resume,
    tail_digest,
    write_json_atomic,
)
from .writers import Writer, open_writer, partial_path, parts_dir

# How many places of replaced characters a summary names (all are counted).
REPLACED_SHOWN = 10


@dataclass
class PredictSummary:
    """What a `predict_file` run did.

    rows (int): Rows in the output (input rows, in order).
    rows_this_run (int): Rows predicted by this run (rows minus those resumed).
    resumed_rows (int): Rows an earlier, interrupted run had already written.
    empty (int): Rows with an empty or missing text (empty prediction), all runs.
    truncated (int): Texts cut to nlp.max_length characters, all runs.
    replaced (int): Lines where characters that are not valid UTF-8 (bad bytes, lone
        surrogates in JSON) were replaced with U+FFFD, all runs; the rows are written.
    replaced_at (List[str]): The first REPLACED_SHOWN of them, 'file:line'.
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
    replaced: int = 0
    replaced_at: List[str] = field(default_factory=list)
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

    def table(self) -> Table:
        """Rows written, predicted, empty and cut texts, time and speed."""
        rows = [
            ("rows written", f"{self.rows:,}"),
            ("predicted by this run", f"{self.rows_this_run:,}"),
            ("empty or missing text (empty prediction)", f"{self.empty:,}"),
            ("texts cut to nlp.max_length", f"{self.truncated:,}"),
            ("lines with invalid characters replaced (U+FFFD)", f"{self.replaced:,}"),
            ("time", f"{self.seconds:,.1f} s (loading the pipeline: {self.load_seconds:.1f} s)"),
            ("speed (loading not counted)", f"{self.docs_per_second:,.1f} docs/s"),
        ]
        return Table(rows, max_col=60)


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
    sort_by_length: Optional[bool] = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    columns: Optional[Sequence[str]] = None,
    quoting: bool = True,
    prefix: str = "",
    label_sep: str = DEFAULT_LABEL_SEP,
    csv_safe: bool = False,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
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
    sort_by_length (Optional[bool]): Run the texts sorted by length (less padding in a
        transformer's batches; the rows are written in input order). None (default):
        sorted, unless n_process > 1 and the pipeline's transformer is not an
        `mtl_transformer` (which sorts in each process); True: sorted, which with
        n_process > 1 needs an `mtl_transformer`; False: in input order.
    chunk_size (int): Rows read, predicted and committed together (the resume unit).
    columns (Optional[Sequence[str]]): Column names of a CSV/TSV file without a header.
    quoting (bool): CSV/TSV input uses quotes ("a, b" and "" inside); False reads quote
        characters as text (a TSV that never quotes). Output always quotes as needed.
    prefix (str): Prepended to the added column names (when the input has such columns).
    label_sep (str): Joins the labels of a multilabel group in a CSV/TSV cell (not empty).
    csv_safe (bool): CSV/TSV output: a cell that a spreadsheet would run as a formula
        (it starts with =, +, -, @, a tab or a carriage return) is written with a "'"
        before it. Off by default: cells are copied as they are.
    max_record_bytes (int): The most bytes of one input line (JSONL) or row (CSV/TSV);
        a longer one stops the run with an error naming its line.
    overwrite (bool): Replace an existing output (and forget an unfinished run).
    progress (bool): Show a progress bar (docs/s).
    on_chunk (Optional[Callable[[Chunk], None]]): Called after each chunk is committed.
    RETURNS (PredictSummary): Counts and timing.
    RAISES PredictError: Bad input (naming its file, line and column), options, a changed
        input or model on a resume, another run writing the same output (OUTPUT.lock), an
        output that cannot be written (a full disk: what was saved is kept, to resume).
    DOCS: docs/predict.md
    """
    started = time.perf_counter()
    input_path = Path(input_path)
    output_path = Path(output_path)
    # What the input is comes before what its name says: a folder, a FIFO or a missing
    # file named without a data suffix would otherwise be "cannot tell the format".
    check_input_file(input_path)
    in_fmt = file_format(input_path, input_format)
    out_fmt = resolve_output_format(output_path, output_format, in_fmt)
    if batch_size < 1 or chunk_size < 1 or n_process < 1:
        raise PredictError(
            "batch_size, chunk_size and n_process must be at least 1, got "
            f"{batch_size}, {chunk_size} and {n_process}."
        )
    if n_process > 1 and gpu_id >= 0:
        raise PredictError("n_process > 1 runs on CPU only; use n_process=1 with a GPU.")
    if not label_sep:
        raise PredictError(
            "label_sep (--label-sep) must not be empty: the labels of a multilabel group "
            "could not be told apart in a CSV/TSV cell."
        )
    if output_path.is_symlink() and not output_path.exists():
        # A dangling link would be replaced by the output; a loop is surely a mistake.
        try:
            output_path.resolve(strict=True)
        except (OSError, RuntimeError):  # RuntimeError: a loop (Python < 3.13)
            if _is_loop(output_path):
                raise PredictError(
                    f"{output_path}: a loop of symbolic links; name a file for the output."
                ) from None
    if input_clash(output_path, [input_path]) is not None:
        raise PredictError(f"{output_path}: the output would overwrite the input.")
    nlp = load_model(model, gpu_id)
    loaded = time.perf_counter()
    sort_by_length = _resolve_sorting(nlp, component, sort_by_length, n_process)
    schema = get_schema(nlp, component)
    out = OutputColumns(schema, scores=scores, prefix=prefix, label_sep=label_sep)
    if out_fmt in ("csv", "tsv"):
        out.check_label_sep()
    settings = run_settings(
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
        csv_safe=csv_safe,
    )
    folder = model_folder(nlp, model)
    files = model_files(folder) if folder is not None else None
    progress_file = progress_path(output_path)
    try:
        output_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _write_error(err, output_path) from None
    with (
        OutputLock(output_path),
        Reader(
            input_path,
            in_fmt,
            columns=columns,
            quoting=quoting,
            chunk_size=chunk_size,
            max_record_bytes=max_record_bytes,
        ) as reader,
    ):
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
        try:
            done = start_or_resume(
                output_path, out_fmt, progress_file, settings, input_path, overwrite, files
            )
        except OSError as err:
            raise _write_error(err, output_path) from None
        summary = PredictSummary(input_path, output_path, in_fmt, out_fmt)
        summary.resumed_rows = summary.rows = done["rows_done"]
        summary.empty, summary.truncated = done["empty"], done["truncated"]
        # Progress files of earlier versions have no count of replaced characters.
        summary.replaced = done.setdefault("replaced", 0)
        summary.replaced_at = list(done.setdefault("replaced_at", []))
        summary.chunks = done["chunks_done"]
        resuming = bool(done["rows_done"] or done["chunks_done"])
        resume_at = done["position"] if resuming else None
        bar = _progress_bar(progress, reader.total, done["rows_done"])
        writer: Optional[Writer] = None
        try:
            # The rows done are read (and checked against the earlier run's digest), and
            # the first chunk, before the writer cuts the output to its saved size.
            chunks = _primed(
                read_chunks(
                    reader,
                    text_column,
                    chunk_size,
                    max_length=nlp.max_length,
                    skip=done["rows_done"],
                    first_index=done["chunks_done"],
                    reserved=out.names(out_fmt),
                    digest=RowDigest(),
                    skipped_digest=done.get("input_digest") if resuming else None,
                )
            )
            writer = open_writer(
                output_path, out_fmt, out, reader, resume_at=resume_at, csv_safe=csv_safe
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
                summary.replaced += len(chunk.replaced)
                room = REPLACED_SHOWN - len(summary.replaced_at)
                summary.replaced_at.extend(chunk.replaced[: max(room, 0)])
                summary.chunks = chunk.index + 1
                done.update(
                    rows_done=summary.rows,
                    chunks_done=summary.chunks,
                    position=position,
                    empty=summary.empty,
                    truncated=summary.truncated,
                    replaced=summary.replaced,
                    replaced_at=summary.replaced_at,
                    input_digest=chunk.digest,
                )
                if out_fmt != "parquet":
                    done["tail"] = tail_digest(partial_path(output_path), position)
                write_json_atomic(progress_file, done)
                if on_chunk is not None:
                    on_chunk(chunk)
            writer.finish()
        except BaseException as err:
            if writer is not None:
                with suppress(OSError):  # a full disk fails the flush of close() too
                    writer.close()
            if summary.rows == 0:
                # Nothing was committed: there is nothing to resume, and a rerun (with
                # other options, say) should not be told about an unfinished run.
                with suppress(OSError):
                    remove_output(output_path, progress_file)
            if isinstance(err, OSError):
                # Reading errors are PredictErrors already: this is the output's.
                raise _write_error(err, output_path, saved=summary.rows) from None
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


def _is_loop(path: Path) -> bool:
    try:
        os.stat(path)
    except OSError as err:
        return err.errno == errno.ELOOP
    return False


def _primed(chunks: Iterator[Chunk]) -> Iterator[Chunk]:
    """`chunks`, with its first chunk read now."""
    first = next(chunks, None)
    return iter(()) if first is None else itertools.chain([first], chunks)


def _write_error(err: OSError, output: Path, *, saved: int = 0) -> PredictError:
    """One line for an output that cannot be written: the file, the cause, what to do."""
    where = err.filename or output
    cause = err.strerror or str(err)
    if err.errno == errno.ENOSPC or err.errno == errno.EDQUOT:
        todo = "free some space"
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        todo = "write to a folder you can write to"
    else:
        todo = "fix that"
    if saved:
        todo += (
            f", then run the same command again to continue after the {saved:,} rows saved "
            f"({output.name} itself is written once the output is complete)"
        )
    else:
        todo += " and run again"
    return PredictError(f"{where}: cannot write the output ({cause}); {todo}.")


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


def _resolve_sorting(
    nlp: Language, component: str, sort_by_length: Optional[bool], n_process: int
) -> bool:
    """Whether to sort: None means yes where it works (see predict_file)."""
    from ...trf.transformer import pipeline_sorts

    sorts_itself = pipeline_sorts(nlp, before=component)
    if sort_by_length is None:
        return n_process == 1 or sorts_itself
    if sort_by_length and n_process > 1 and not sorts_itself:
        raise PredictError(
            "sort_by_length runs in one process unless the pipeline's transformer is an "
            "mtl_transformer; use n_process=1, or --no-sort-by-length."
        )
    return sort_by_length
