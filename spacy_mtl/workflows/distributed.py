"""Predict at scale with Ray Data: the output of `spacy-mtl predict`, from many files or an
object store, on CPU or GPU workers, with the pipeline loaded once per worker.

The input is read as a Ray Dataset (Parquet, JSONL, CSV or TSV: files, folders, globs or
object-store URIs such as s3://bucket/comments/), streamed through a pool of actors that
each load the pipeline once (`MTLPredictor`), and written either
- as a folder of part files (`part-000000.parquet`, ...; names sort in input order), by
  the cluster's workers: the way for data that does not pass through one machine; or
- as one file, by this process, with the same writers as `predict_file`: the same bytes
  as the local command, for data that fits through the driver.

Why Ray Data (and not Dask or Spark) is written up in docs/predict.md.

DOCS: docs/predict.md, section "Scale out"
"""

import io
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from ..data.io import SEPARATORS, csv_reader
from ..tables import Table
from .predict import (
    DEFAULT_LABEL_SEP,
    Chunk,
    OutputColumns,
    PredictError,
    Scores,
    clean_text,
    components_after,
    file_format,
    get_schema,
    load_model,
    open_writer,
    parts_dir,
    progress_path,
    suffix_format,
)

RAY_EXTRA = 'The distributed engine needs Ray Data: pip install "spacy-mtl[distributed]".'
# Rows per call of a worker; the pipeline batches them by `batch_size` inside the call.
DEFAULT_ROWS_PER_CALL = 1024
# Ray's switch for one-machine clusters: "0" keeps a new cluster on 127.0.0.1.
_LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
# Output layouts of the workers: formatted for Ray's writer of a format, or "raw" (every
# score as a flat column, formatted on the driver by predict's writers).
_LAYOUTS = ("raw", "csv", "tsv", "jsonl", "parquet")


def _import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError:
        raise PredictError(RAY_EXTRA) from None
    return ray


# -- the worker ---------------------------------------------------------------------------


class MTLPredictor:
    """A Ray Data callable class: one instance per actor, so the pipeline is loaded once
    per worker, not per batch. Takes a pyarrow batch, returns it with predictions added.

    model (str): Pipeline folder (visible to every worker) or installed package name.
    text_column (str): The column with the texts.
    layout (str): 'parquet', 'jsonl', 'csv'/'tsv' (the columns `predict_file` writes for
        that format) or 'raw' (flat score columns, null for an empty text).
    component, scores, prefix, label_sep, batch_size: As in `predict_file`.
    use_gpu (bool): Load on the GPU Ray assigned to this actor.
    threads (Optional[int]): torch threads (the CPUs Ray reserved for this actor); None
        leaves torch as it is.
    tally: A `_Tally` actor handle to count rows, or None.
    """

    def __init__(
        self,
        model: str,
        *,
        text_column: str,
        layout: str,
        component: str = "mtl_textcat",
        scores: bool = False,
        prefix: str = "",
        label_sep: str = DEFAULT_LABEL_SEP,
        batch_size: int = 64,
        use_gpu: bool = False,
        threads: Optional[int] = None,
        tally: Any = None,
    ) -> None:
        if layout not in _LAYOUTS:
            raise PredictError(f"Unknown layout {layout!r}; use one of {list(_LAYOUTS)}.")
        if not use_gpu and threads is not None:
            import torch

            torch.set_num_threads(max(1, threads))
        # Ray sets CUDA_VISIBLE_DEVICES to the actor's GPU, so it is device 0 here.
        self.nlp = load_model(model, 0 if use_gpu else -1)
        self.schema = get_schema(self.nlp, component)
        self.disable = components_after(self.nlp, component)
        self.text_column = text_column
        self.layout = layout
        self.batch_size = batch_size
        self.tally = tally
        self.out = OutputColumns(
            self.schema, scores=scores or layout == "raw", prefix=prefix, label_sep=label_sep
        )

    def predict(self, values: Sequence[Any]) -> Tuple[List[Scores], int, int]:
        """Scores of each cell's text (None: empty or missing), and the counts of empty
        and truncated texts."""
        texts: List[Optional[str]] = []
        truncated = 0
        for value in values:
            text = clean_text(value, f"column {self.text_column!r}")
            if text is not None and len(text) > self.nlp.max_length:
                text = text[: self.nlp.max_length]
                truncated += 1
            texts.append(text)
        filled = [text for text in texts if text is not None]
        docs = iter(self.nlp.pipe(filled, batch_size=self.batch_size, disable=self.disable))
        scores: List[Scores] = [
            None if text is None else self.out.scores_of(next(docs).cats) for text in texts
        ]
        return scores, len(texts) - len(filled), truncated

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        if self.text_column not in batch.column_names:
            raise PredictError(
                f"The input has no column {self.text_column!r}; its columns are "
                f"{batch.column_names}. Set --text-column."
            )
        taken = sorted(set(batch.column_names) & set(self._added_names()))
        if taken:
            raise PredictError(
                f"The input already has column(s) {taken}, which predict would add; give a "
                "--prefix for the predicted columns, e.g. --prefix pred_."
            )
        scores, empty, truncated = self.predict(batch.column(self.text_column).to_pylist())
        if self.layout == "jsonl":
            for name, array in self.out.arrow_columns(scores)[: len(self.out.label_columns)]:
                batch = batch.append_column(name, array)
            if self.out.scores:
                batch = batch.append_column(
                    self.out.nested_scores_column, self.out.nested_scores_array(scores)
                )
        else:
            joined = self.layout in SEPARATORS
            for name, array in self.out.arrow_columns(scores, joined=joined):
                if self.layout == "raw" and name in self.out.label_columns:
                    continue  # the driver decides the labels from the scores
                batch = batch.append_column(name, array)
        if self.tally is not None:
            import ray

            ray.get(self.tally.add.remote(len(scores), empty, truncated))
        assert isinstance(batch, pa.Table)
        return batch

    def _added_names(self) -> List[str]:
        if self.layout == "raw":
            return self.out.score_columns
        return self.out.names(self.layout)


class _Tally:
    """Counts rows, empty and truncated texts over all workers (a Ray actor)."""

    def __init__(self) -> None:
        self.counts = [0, 0, 0]

    def add(self, rows: int, empty: int, truncated: int) -> None:
        self.counts[0] += rows
        self.counts[1] += empty
        self.counts[2] += truncated

    def get(self) -> List[int]:
        return self.counts


# -- the cluster --------------------------------------------------------------------------


@contextmanager
def local_cluster(
    num_cpus: int,
    *,
    num_gpus: Optional[int] = None,
    object_store_memory: Optional[int] = None,
    temp_dir: Optional[str] = None,
    quiet: bool = True,
) -> Iterator[Any]:
    """Start a one-machine Ray cluster bound to the loopback interface, and stop it.

    Ray binds a new cluster to the machine's network address so that other nodes can
    join. A local cluster needs no one to join, so it is kept on 127.0.0.1 (through
    Ray's switch for one-machine clusters, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0).

    num_cpus (int): CPUs the cluster may schedule (workers and readers share them).
    num_gpus (Optional[int]): GPUs to offer (None: Ray detects them).
    object_store_memory (Optional[int]): Bytes for the object store (None: Ray's default,
        30% of the memory).
    temp_dir (Optional[str]): Ray's session folder (keep the path short: it holds sockets).
    quiet (bool): Keep the workers' logs out of this process's output.
    YIELDS: The `ray` module, initialised.
    """
    # Both switches are process-wide: they are set for the cluster's lifetime only and put
    # back afterwards, so a later ray.init in this process behaves as Ray's default.
    previous_env = os.environ.get(_LOOPBACK_ENV)
    os.environ[_LOOPBACK_ENV] = "0"  # read by the Ray processes
    constants: Any = None
    previous_flag: Any = None
    try:
        ray = _import_ray()
        if ray.is_initialized():
            raise PredictError("Ray is already initialised in this process; shut it down first.")
        constants = getattr(getattr(ray, "_private", None), "ray_constants", None)
        if constants is not None and hasattr(constants, "ENABLE_RAY_CLUSTER"):
            # The module read the variable when ray was imported; this process may have
            # done that already.
            previous_flag = constants.ENABLE_RAY_CLUSTER
            constants.ENABLE_RAY_CLUSTER = False
        ray.init(
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            object_store_memory=object_store_memory,
            include_dashboard=False,
            log_to_driver=not quiet,
            configure_logging=not quiet,
            _temp_dir=temp_dir,
        )
        try:
            yield ray
        finally:
            ray.shutdown()
    finally:
        if previous_env is None:
            os.environ.pop(_LOOPBACK_ENV, None)
        else:
            os.environ[_LOOPBACK_ENV] = previous_env
        if previous_flag is not None:
            constants.ENABLE_RAY_CLUSTER = previous_flag


# -- reading ------------------------------------------------------------------------------


def _as_list(inputs: Union[str, Path, Sequence[Union[str, Path]]]) -> List[str]:
    if isinstance(inputs, (str, Path)):
        return [str(inputs)]
    return [str(path) for path in inputs]


def _first_file(path: str, fmt: str) -> Tuple[Any, str]:
    """(filesystem, path) of the first file of `fmt` at a path, folder or URI."""
    import pyarrow.fs as pafs

    filesystem, inner = pafs.FileSystem.from_uri(path) if "://" in path else (None, path)
    if filesystem is None:
        filesystem = pafs.LocalFileSystem()
        inner = str(Path(path).resolve())
    info = filesystem.get_file_info(inner)
    if info.type == pafs.FileType.NotFound:
        raise PredictError(f"{path}: no such file or folder.")
    if info.type == pafs.FileType.Directory:
        found = sorted(
            entry.path
            for entry in filesystem.get_file_info(pafs.FileSelector(inner, recursive=True))
            if entry.type == pafs.FileType.File and _is_format(entry.path, fmt)
        )
        if not found:
            raise PredictError(f"{path}: the folder has no {fmt} files.")
        inner = found[0]
    return filesystem, inner


def _is_format(path: str, fmt: str) -> bool:
    try:
        return file_format(path) == fmt
    except PredictError:
        return False


def csv_header(path: str, fmt: str, *, quoting: bool = True) -> List[str]:
    """The header row of the first CSV/TSV file at a path, folder or URI."""
    filesystem, inner = _first_file(path, fmt)
    with filesystem.open_input_stream(inner, compression="detect") as stream:
        head = stream.read(1 << 20).decode("utf-8-sig", errors="replace")
    reader = csv_reader(io.StringIO(head, newline=""), fmt, quoting=quoting)
    return next(reader, [])


def read_dataset(
    inputs: Union[str, Path, Sequence[Union[str, Path]]],
    fmt: str,
    *,
    text_column: str,
    columns: Optional[Sequence[str]] = None,
    quoting: bool = True,
) -> Any:
    """The input as a Ray Dataset; CSV/TSV cells are read as exact strings (no type or NA
    detection, as in `predict_file`: a text "NA" stays the text "NA")."""
    ray = _import_ray()
    paths = _as_list(inputs)
    if fmt == "parquet":
        return ray.data.read_parquet(paths)
    if fmt == "jsonl":
        try:
            return ray.data.read_json(paths, lines=True, file_extensions=None)
        except TypeError:  # Ray before `lines`: its JSON reader reads JSON lines
            return ray.data.read_json(paths, file_extensions=None)
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = list(columns) if columns is not None else csv_header(paths[0], fmt, quoting=quoting)
    if text_column not in names:
        raise PredictError(
            f"{paths[0]}: no column {text_column!r}; the columns are {names}. Set "
            "--text-column (or --columns for files without a header)."
        )
    return ray.data.read_csv(
        paths,
        file_extensions=None,
        read_options=pacsv.ReadOptions(column_names=list(columns)) if columns else None,
        parse_options=pacsv.ParseOptions(
            delimiter=SEPARATORS[fmt],
            quote_char='"' if quoting else False,
            newlines_in_values=True,
        ),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in names},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )


# -- the whole job ------------------------------------------------------------------------


@dataclass
class DistributedSummary:
    """What a `predict_distributed` run did.

    output (str): The output file or folder.
    mode (str): 'file' (written by the driver) or 'dir' (part files written by workers).
    rows, empty, truncated (int): As in `PredictSummary`.
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
    """'file' or 'dir': as given, else 'dir' for URIs, paths ending in '/' and names
    without a known file suffix, 'file' for local names like out.csv."""
    if given is not None:
        if given not in ("file", "dir"):
            raise PredictError(f"Unknown output mode {given!r}; use 'file' or 'dir'.")
        return given
    if "://" in output or output.endswith(("/", os.sep)):
        return "dir"
    return "file" if suffix_format(output) is not None else "dir"


class _PartNames:
    """part-000000.parquet, ...: a write task's index in the name, so that the names sort
    in input order (the job preserves order)."""

    def __init__(self, extension: str) -> None:
        self.extension = extension

    def get_filename_for_task(self, write_uuid: str, task_index: int) -> str:
        return f"part-{task_index:06d}.{self.extension}"


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
    num_workers: int = 2,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    columns: Optional[Sequence[str]] = None,
    quoting: bool = True,
    prefix: str = "",
    label_sep: str = DEFAULT_LABEL_SEP,
    overwrite: bool = False,
    progress: bool = False,
) -> DistributedSummary:
    """Predict every row of a dataset on the Ray cluster this process is connected to
    (call `ray.init(address=...)` or use `local_cluster` first; with neither, Ray starts
    a local cluster or joins the one named by RAY_ADDRESS).

    model (Union[str, Path]): Pipeline folder that every worker can read (a shared file
        system, or the same path on each node) or an installed pipeline package name.
    inputs: A file, folder, glob or URI (s3://, gs://, ...), or a list of them.
    output (Union[str, Path]): A file (mode 'file') or folder / URI (mode 'dir').
    mode (Optional[str]): 'file' or 'dir'; by default from `output` (see `output_mode`).
    rows_per_call (int): Rows a worker gets per call (pipelined in `batch_size` batches).
    num_workers (int): Actors, each with the pipeline loaded once.
    cpus_per_worker, gpus_per_worker (float): Ray resources per actor; with GPUs, each
        actor runs on its GPU.
    The other arguments are those of `predict_file`.
    RETURNS (DistributedSummary): Counts and timing.
    DOCS: docs/predict.md, section "Scale out"
    """
    ray = _import_ray()
    paths = _as_list(inputs)
    if not paths:
        raise PredictError("No input given.")
    in_fmt = file_format(paths[0], input_format)
    output = str(output)
    mode = output_mode(output, mode)
    out_fmt = _output_format(output, output_format, in_fmt, mode)
    if min(batch_size, rows_per_call, num_workers) < 1:
        raise PredictError("batch_size, rows_per_call and num_workers must be at least 1.")
    if mode == "file":
        _check_output_file(Path(output), overwrite)
    schema = get_schema(load_model(model), component) if mode == "file" else None
    started = time.perf_counter()
    if not ray.is_initialized():
        ray.init(include_dashboard=False)
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
        tally = ray.remote(num_cpus=0)(_Tally).remote()
        predicted = dataset.map_batches(
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
                "tally": tally,
            },
            batch_size=rows_per_call,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=num_workers),
            num_cpus=cpus_per_worker,
            num_gpus=gpus_per_worker,
        )
        if mode == "file":
            assert schema is not None
            out = OutputColumns(schema, scores=scores, prefix=prefix, label_sep=label_sep)
            _write_file(predicted, Path(output), out_fmt, in_fmt, out, summary, rows_per_call)
            summary.truncated = ray.get(tally.get.remote())[2]
        else:
            _write_dir(predicted, output, out_fmt, overwrite)
            summary.rows, summary.empty, summary.truncated = ray.get(tally.get.remote())
            summary.files = _list_parts(output)
    finally:
        context.execution_options.preserve_order, context.enable_progress_bars = before
    summary.seconds = time.perf_counter() - started
    return summary


def _output_format(output: str, given: Optional[str], in_fmt: str, mode: str) -> str:
    if given is not None or (mode == "file" and suffix_format(output) is not None):
        return file_format(output, given, what="output")
    return in_fmt


def _check_output_file(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise PredictError(f"{path} already exists; use --overwrite to replace it.")
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
    rows_per_chunk: int,
) -> None:
    """Stream the workers' results to this process and write them with the writers of
    `predict_file`: the same file the local command writes."""
    score_names = [f"{out.prefix}{key}" for key in out.keys]
    writer = None
    index = 0
    try:
        for batch in predicted.iter_batches(batch_format="pyarrow", batch_size=rows_per_chunk):
            inputs = batch.drop_columns(score_names)
            if writer is None:
                source = _BatchSource(str(path), in_fmt, inputs.schema)
                writer = open_writer(path, out_fmt, out, source)  # type: ignore[arg-type]
            columns = [batch.column(name).to_pylist() for name in score_names]
            scores: List[Scores] = (
                [None if row[0] is None else list(row) for row in zip(*columns)] if columns else []
            )
            records = inputs.to_pylist()
            writer.write(Chunk(index, summary.rows, records, [None] * len(records)), scores)
            writer.commit()
            index += 1
            summary.rows += len(records)
            summary.empty += sum(row is None for row in scores)
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


def _write_dir(predicted: Any, output: str, out_fmt: str, overwrite: bool) -> None:
    """The workers write part files into the output folder or URI."""
    try:
        from ray.data import SaveMode
    except ImportError:  # Ray before save modes: check a local folder here
        if not overwrite and "://" not in output and Path(output).exists():
            raise PredictError(f"{output} already exists; use --overwrite.") from None
        save: Dict[str, Any] = {}
    else:
        save = {"mode": SaveMode.OVERWRITE if overwrite else SaveMode.ERROR}
    extension = {"parquet": "parquet", "jsonl": "jsonl", "csv": "csv", "tsv": "tsv"}[out_fmt]
    names = _PartNames(extension)
    if out_fmt == "parquet":
        predicted.write_parquet(output, filename_provider=names, **save)
    elif out_fmt == "jsonl":
        predicted.write_json(
            output,
            filename_provider=names,
            **save,
            # pandas writes 10 significant digits by default; 15 is its most.
            pandas_json_args_fn=lambda: {"double_precision": 15, "force_ascii": False},
        )
    else:
        import pyarrow.csv as pacsv

        predicted.write_csv(
            output,
            filename_provider=names,
            **save,
            arrow_csv_args_fn=lambda: {
                "write_options": pacsv.WriteOptions(
                    delimiter=SEPARATORS[out_fmt], quoting_style="needed"
                )
            },
        )


def _list_parts(output: str) -> List[str]:
    if "://" in output:
        return []
    return sorted(str(p) for p in Path(output).glob("part-*"))


__all__ = [
    "RAY_EXTRA",
    "DistributedSummary",
    "MTLPredictor",
    "local_cluster",
    "output_mode",
    "predict_distributed",
    "read_dataset",
]
