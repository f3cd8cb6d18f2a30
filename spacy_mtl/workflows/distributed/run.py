"""`predict_distributed`: read, predict on the workers, write one file or a folder of parts."""

import logging
import math
import os
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, List, Optional, Sequence, Tuple, Union

from spacy.language import Language

from ...tables import Table
from ..predict import (
    DEFAULT_LABEL_SEP,
    Chunk,
    OutputColumns,
    OutputLock,
    PredictError,
    Scores,
    file_format,
    get_schema,
    load_model,
    open_writer,
    parts_dir,
    progress_path,
    resolve_output_format,
)
from .cluster import import_ray, local_cluster
from .parts import list_parts, parts_sink
from .reading import as_list, check_inputs, read_dataset
from .worker import DEFAULT_ROWS_PER_CALL, MTLPredictor, count_rows

# Times Ray restarts a worker whose process died and runs its calls again.
DEFAULT_MAX_RETRIES = 3
# Rows of a part file in dir mode (at least; the last has the rest).
DEFAULT_ROWS_PER_FILE = 100_000


@dataclass
class DistributedSummary:
    """What a `predict_distributed` run did.

    output (str): The output file or folder.
    mode (str): 'file' (written by the driver) or 'dir' (part files written by workers).
    rows, empty, truncated (int): As in `PredictSummary`; counted from the rows written,
        once each, also when Ray ran a call again after its worker died.
    seconds (float): Wall time of the job (reading, predicting, writing; workers loading
        the pipeline included; starting a cluster not included).
    files (List[str]): The files written.
    """

    output: str
    mode: str
    output_format: str
    rows: int = 0
    empty: int = 0
    truncated: int = 0
    seconds: float = 0.0
    workers: int = 0
    files: List[str] = field(default_factory=list)

    @property
    def docs_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def table(self) -> Table:
        """Rows written, empty and cut texts, workers, time and speed."""
        rows = [
            ("rows written", f"{self.rows:,}"),
            ("empty or missing text (empty prediction)", f"{self.empty:,}"),
            ("texts cut to nlp.max_length", f"{self.truncated:,}"),
            ("workers", str(self.workers)),
            ("time (cluster start not included)", f"{self.seconds:,.1f} s"),
            ("speed", f"{self.docs_per_second:,.1f} docs/s"),
        ]
        return Table(rows, max_col=60)


def output_mode(output: str, given: Optional[str] = None) -> str:
    """'file' or 'dir': as given, else 'dir' for URIs, paths ending in '/', folders that
    exist and names without a suffix, 'file' for other local names (out.csv; a suffix
    that names no format, out.xlsx, is then refused as by `predict`)."""
    if given is not None:
        if given not in ("file", "dir"):
            raise PredictError(f"Unknown output mode {given!r}; use 'file' or 'dir'.")
        return given
    if "://" in output or output.endswith(("/", os.sep)) or Path(output).is_dir():
        return "dir"
    return "file" if Path(output).suffix else "dir"


def check_paths(
    inputs: Sequence[str],
    output: str,
    *,
    mode: Optional[str] = None,
    input_format: Optional[str] = None,
    output_format: Optional[str] = None,
    overwrite: bool = False,
) -> Tuple[str, str, str]:
    """The input format, output mode and output format of a run, checked (before a
    cluster starts): each local input first, as by `predict` (missing, a loop of symbolic
    links, a FIFO or a device are refused; a folder is read), then its format; a file
    output is checked as by `predict` (out.xlsx, out.csv.gz and an existing file without
    `overwrite` are refused).

    RETURNS (Tuple[str, str, str]): (input format, 'file' or 'dir', output format).
    """
    if not inputs:
        raise PredictError("No input given.")
    # What each input is comes before what its name says: a FIFO or a missing file named
    # without a data suffix would otherwise be "cannot tell the format".
    check_inputs(inputs)
    in_fmt = file_format(inputs[0], input_format)
    mode = output_mode(output, mode)
    if mode == "file":
        out_fmt = resolve_output_format(Path(output), output_format, in_fmt)
        _check_output_file(Path(output), overwrite)
    else:
        out_fmt = (
            in_fmt if output_format is None else file_format(output, output_format, what="output")
        )
    return in_fmt, mode, out_fmt


def predict_distributed(
    model: Union[str, Path],
    inputs: Union[str, Path, Sequence[Union[str, Path]]],
    output: Union[str, Path],
    *,
    text_column: str = "text",
    input_format: Optional[str] = None,
    output_format: Optional[str] = None,
    mode: Optional[str] = None,
    component: str = "mtl_textcat",
    scores: bool = False,
    batch_size: int = 64,
    rows_per_call: int = DEFAULT_ROWS_PER_CALL,
    rows_per_file: int = DEFAULT_ROWS_PER_FILE,
    num_workers: int = 2,
    max_retries: int = DEFAULT_MAX_RETRIES,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    columns: Optional[Sequence[str]] = None,
    quoting: bool = True,
    prefix: str = "",
    label_sep: str = DEFAULT_LABEL_SEP,
    csv_safe: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    pipeline: Optional[Language] = None,
    code: Optional[str] = None,
    address: Optional[str] = None,
) -> DistributedSummary:
    """Predict every row of a dataset on the Ray cluster this process is connected to
    (`ray.init(address=...)` or `local_cluster` before the call), else on the cluster at
    `address` (or RAY_ADDRESS), else on a one-machine cluster started for the call and
    bound to 127.0.0.1 (`local_cluster`: nothing on the network can reach it).

    model (Union[str, Path]): Pipeline folder that every worker can read (a shared file
        system, or the same path on each node) or an installed pipeline package name.
    inputs: A file, folder, glob or URI (s3://, gs://, ...), or a list of them.
    output (Union[str, Path]): A file (mode 'file') or folder / URI (mode 'dir').
    mode (Optional[str]): 'file' or 'dir'; by default from `output` (see `output_mode`).
    rows_per_call (int): Rows a worker gets per call (pipelined in `batch_size` batches).
    rows_per_file (int): Mode 'dir': rows of a part file (at least; the last has the
        rest), written by one task.
    num_workers (int): Actors, each with the pipeline loaded once.
    max_retries (int): Times Ray restarts a worker whose process died (killed, out of
        memory, its node lost) and runs the calls it had again, per worker and per call;
        once they are spent, the job stops with a `PredictError`. The rows of a call run
        again are written and counted once.
    cpus_per_worker, gpus_per_worker (float): Ray resources per actor; with GPUs, each
        actor runs on its GPU.
    pipeline (Optional[Language]): `model` already loaded by the caller; else it is loaded
        here first (a model that cannot be loaded fails before the workers start, with
        `ModelLoadError` naming the folder and file).
    code (Optional[str]): Python file every worker imports before it loads the pipeline
        (`--code`; a path each worker can read). The caller imports it in this process.
    address (Optional[str]): A Ray cluster to connect to ('auto', 'ray://host:10001')
        when this process is not connected to one.
    csv_safe (bool): As in `predict_file`, for CSV/TSV output in both modes.
    The other arguments are those of `predict_file`.
    RETURNS (DistributedSummary): Counts and timing.
    DOCS: docs/predict.md, section "Scale out"
    """
    ray = import_ray()
    paths = as_list(inputs)
    output = str(output)
    in_fmt, mode, out_fmt = check_paths(
        paths,
        output,
        mode=mode,
        input_format=input_format,
        output_format=output_format,
        overwrite=overwrite,
    )
    if min(batch_size, rows_per_call, rows_per_file, num_workers) < 1:
        raise PredictError(
            "batch_size, rows_per_call, rows_per_file and num_workers must be at least 1."
        )
    if max_retries < 0:
        raise PredictError("max_retries must be at least 0.")
    if not label_sep:
        raise PredictError("label_sep (--label-sep) must not be empty.")
    # Loaded here once, in both modes: a damaged model (or a wrong --component) is one
    # clear error before any worker starts, not one per actor.
    nlp = pipeline if pipeline is not None else load_model(model)
    schema = get_schema(nlp, component)
    if out_fmt in ("csv", "tsv"):
        OutputColumns(schema, label_sep=label_sep).check_label_sep()
    cpus = math.ceil(num_workers * cpus_per_worker) + 1  # one more to read and write
    with _connected(ray, address, cpus, math.ceil(num_workers * gpus_per_worker)):
        started = time.perf_counter()
        summary = DistributedSummary(output, mode, out_fmt, workers=num_workers)
        # A dataset copies the context when it is created: set it first. Rows come out in
        # input order: the contract of the file mode, and the order of the part names.
        context = ray.data.DataContext.get_current()
        before = (context.execution_options.preserve_order, context.enable_progress_bars)
        context.execution_options.preserve_order = True
        context.enable_progress_bars = progress
        try:
            dataset = read_dataset(
                paths, in_fmt, text_column=text_column, columns=columns, quoting=quoting
            )
            # Blocks of one call each. A reader makes a block of a file (or a Parquet row
            # group), which one worker takes whole while the others wait; and a worker that
            # dies loses one call, not a file, which Ray runs again on its restarted actor.
            dataset = dataset.repartition(target_num_rows_per_block=rows_per_call)
            predicted = _map_batches(
                dataset,
                MTLPredictor,
                fn_constructor_kwargs={
                    "model": str(model),
                    "text_column": text_column,
                    "layout": "raw" if mode == "file" else out_fmt,
                    "component": component,
                    "scores": scores,
                    "prefix": prefix,
                    "label_sep": label_sep,
                    "batch_size": batch_size,
                    "use_gpu": gpus_per_worker > 0,
                    "threads": max(1, int(cpus_per_worker)),
                    "code": code,
                },
                batch_size=rows_per_call,
                batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=num_workers),
                num_cpus=cpus_per_worker,
                num_gpus=gpus_per_worker,
                # Ray Data restarts a worker that died, and runs its calls again, without end
                # by default: a call that kills its worker each time would never end.
                max_restarts=max_retries,
                max_task_retries=max_retries,
            )
            with _one_line_errors(output, max_retries):
                if mode == "file":
                    assert schema is not None
                    out = OutputColumns(schema, scores=scores, prefix=prefix, label_sep=label_sep)
                    with OutputLock(Path(output)):
                        _write_file(
                            predicted,
                            Path(output),
                            out_fmt,
                            in_fmt,
                            out,
                            summary,
                            source=paths[0],
                            text_column=text_column,
                            max_length=nlp.max_length,
                            rows_per_chunk=rows_per_call,
                            csv_safe=csv_safe,
                        )
                else:
                    sink = parts_sink(
                        output,
                        out_fmt,
                        text_column=text_column,
                        max_length=nlp.max_length,
                        rows_per_file=rows_per_file,
                        overwrite=overwrite,
                        csv_safe=csv_safe,
                    )
                    predicted.write_datasink(sink)
                    summary.rows, summary.empty, summary.truncated = sink.counts
                    summary.files = list_parts(output)
        finally:
            context.execution_options.preserve_order, context.enable_progress_bars = before
        summary.seconds = time.perf_counter() - started
    return summary


@contextmanager
def _connected(ray: Any, address: Optional[str], num_cpus: int, num_gpus: int) -> Iterator[None]:
    """Connected to a Ray cluster for the block: the one this process is connected to,
    the one at `address` (or RAY_ADDRESS, which Ray reads), else a local cluster on the
    loopback interface, stopped afterwards. Ray's own default (`ray.init()`) would bind a
    new cluster to the machine's network address, open to the network."""
    if ray.is_initialized():
        yield
    elif address is not None or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address)
        yield
    else:
        with local_cluster(num_cpus, num_gpus=num_gpus or None):
            yield


def _map_batches(dataset: Any, fn: Any, **kwargs: Any) -> Any:
    """`dataset.map_batches`, with Ray's warning that its extra keyword arguments (the
    only way to set `max_restarts` and `max_task_retries`) are deprecated kept quiet."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*is deprecated")
        return dataset.map_batches(fn, **kwargs)


def _stopped(err: Exception, output: str, max_retries: int) -> PredictError:
    """One line for a job that Ray gave up on, instead of its traceback: the worker's own
    `PredictError` (a bad cell, a column clash), or what happened to the workers."""
    import ray

    # Ray passes a worker's exception on as text, in a traceback that ends with it.
    marker = f"{PredictError.__name__}: "
    raised = [line for line in str(err).splitlines() if marker in line]
    if raised:
        return PredictError(raised[-1].split(marker, 1)[1].strip())
    if isinstance(err, (ray.exceptions.ActorDiedError, ray.exceptions.WorkerCrashedError)):
        what = (
            "A worker died (killed, out of memory, its node lost) more often than Ray "
            f"restarts it and runs its calls again (--max-retries {max_retries})"
        )
    else:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        what = f"Ray stopped the job ({type(err).__name__}: {first})"
    return PredictError(
        f"{what}; {output} is incomplete. Run the command again with --force to "
        "predict it from the start."
    )


@contextmanager
def _one_line_errors(output: str, max_retries: int) -> Iterator[None]:
    """A job that Ray gives up on raises one `PredictError` (`_stopped`). What Ray Data
    logs at ERROR (the job's tracebacks) goes to its log file only (in the Ray session
    folder, logs/ray-data/), not to the console as well, for the job's time."""
    import ray

    def below_error(record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR

    consoles = [
        handler
        for handler in logging.getLogger("ray.data").handlers
        if isinstance(handler, logging.StreamHandler)
        and not isinstance(handler, logging.FileHandler)
    ]
    for handler in consoles:
        handler.addFilter(below_error)
    try:
        yield
    except ray.exceptions.RayError as err:
        raise _stopped(err, output, max_retries) from None
    finally:
        for handler in consoles:
            handler.removeFilter(below_error)


def _check_output_file(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise PredictError(f"{path} already exists; use --force to replace it.")
    if progress_path(path).exists():
        raise PredictError(
            f"{progress_path(path)} records an unfinished local run into {path}; finish it "
            "with `spacy-mtl predict`, or delete the progress file."
        )
    path.parent.mkdir(parents=True, exist_ok=True)


class _BatchSource:
    """What predict's writers need to know about the input, for Ray batches."""

    def __init__(self, path: str, fmt: str, arrow_schema: Any) -> None:
        self.path = path
        self.fmt = fmt
        self.arrow_schema = arrow_schema
        self.columns: List[str] = list(arrow_schema.names) if arrow_schema is not None else []
        self.total: Optional[int] = None


def _write_file(
    predicted: Any,
    path: Path,
    out_fmt: str,
    in_fmt: str,
    out: OutputColumns,
    summary: DistributedSummary,
    *,
    source: str,
    text_column: str,
    max_length: int,
    rows_per_chunk: int,
    csv_safe: bool = False,
) -> None:
    """Stream the workers' results to this process and write them with the writers of
    `predict_file`: the same file the local command writes (`source` names the input in
    messages)."""
    score_names = [f"{out.prefix}{key}" for key in out.keys]
    writer = None
    index = 0
    try:
        for batch in predicted.iter_batches(batch_format="pyarrow", batch_size=rows_per_chunk):
            inputs = batch.drop_columns(score_names)
            if writer is None:
                # The workers add score columns only; the labels are added here.
                out.check_collisions(inputs.column_names, out_fmt, source)
                batches = _BatchSource(str(path), in_fmt, inputs.schema)
                source_rows: Any = batches  # what the writers read of a Reader
                writer = open_writer(path, out_fmt, out, source_rows, csv_safe=csv_safe)
            columns = [batch.column(name).to_pylist() for name in score_names]
            scores: List[Scores] = (
                [None if row[0] is None else list(row) for row in zip(*columns)] if columns else []
            )
            records = inputs.to_pylist()
            writer.write(Chunk(index, summary.rows, records, [None] * len(records)), scores)
            writer.commit()
            index += 1
            rows, empty, truncated = count_rows(inputs, text_column, max_length)
            summary.rows += rows
            summary.empty += empty
            summary.truncated += truncated
        if writer is None:
            raise PredictError(f"{summary.output}: the input has no rows; nothing was written.")
        writer.finish()
    finally:
        if writer is not None:
            writer.close()
    if out_fmt == "parquet":
        import shutil

        shutil.rmtree(parts_dir(path), ignore_errors=True)
    summary.files = [str(path)]
