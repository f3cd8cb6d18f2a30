"""`spacy-mtl predict` and `spacy-mtl predict-distributed`: a file (or many, on a Ray
cluster) → the same rows with predictions (workflows/predict/, workflows/distributed/).
The two commands take the same options for what they share, defined once below.
"""

from pathlib import Path
from typing import Any, List, Optional

import typer

from ._util import (
    BATCH_SIZE,
    CODE,
    CODE_HELP,
    GPU_ID,
    fail_model,
    import_code,
    load_pipeline,
    print_table,
)

# Options that `predict` and `predict-distributed` share (with --batch-size). Each command
# spells its own --format, --output-format, --code and --force: their defaults or reach
# differ (one file or several; one process or the workers; a resumable run or not).
TEXT_COLUMN = typer.Option("text", "--text-column", "-t", help="Column of the texts.")
SCORES = typer.Option(
    False, "--scores/--labels", help="Also write every label's score (default: labels)."
)
COMPONENT = typer.Option("mtl_textcat", "--component", help="The mtl_textcat component to report.")
COLUMNS = typer.Option(
    None, "--columns", help="Column names of a CSV/TSV without a header, e.g. text,label,id."
)
QUOTING = typer.Option(
    True, "--quoting/--no-quoting", help='Whether CSV/TSV input quotes cells ("a, b").'
)
PREFIX = typer.Option("", "--prefix", help="Prefix of the added column names.")
LABEL_SEP = typer.Option(
    "|", "--label-sep", help="Joins a multilabel group's labels in a CSV/TSV cell."
)
CSV_SAFE = typer.Option(
    False,
    "--csv-safe",
    help="CSV/TSV output: put a ' before cells that start with =, +, -, @, a tab or a "
    "carriage return, which a spreadsheet would run as formulas (default: cells as they are).",
)


def split_columns(columns: Optional[str]) -> Optional[List[str]]:
    """--columns "text,label,id" -> ["text", "label", "id"]."""
    return [c.strip() for c in columns.split(",")] if columns else None


def predict_command(
    model: str = typer.Argument(..., help="Trained pipeline folder or installed package name."),
    input_path: Path = typer.Argument(
        ..., help="CSV, TSV, JSONL or Parquet file (text formats also .gz/.bz2/.xz)."
    ),
    output: Path = typer.Argument(..., help="Output file: every input row, predictions added."),
    text_column: str = TEXT_COLUMN,
    input_format: Optional[str] = typer.Option(
        None, "--format", "-f", help="csv|tsv|jsonl|parquet (default: from the file name)."
    ),
    output_format: Optional[str] = typer.Option(
        None,
        "--output-format",
        help="csv|tsv|jsonl|parquet (default: from the output name, else the input's).",
    ),
    batch_size: int = BATCH_SIZE,
    n_process: int = typer.Option(
        1, "--n-process", "-n", min=1, help="Processes for nlp.pipe (CPU only)."
    ),
    code: Optional[Path] = CODE,
    gpu_id: int = GPU_ID,
    threads: Optional[int] = typer.Option(
        None,
        "--threads",
        min=1,
        help="torch threads (default: torch's, one per core); on a busy machine 1 can be "
        "faster. With --n-process > 1 each process uses 1.",
    ),
    sort_by_length: Optional[bool] = typer.Option(
        None,
        "--sort-by-length/--no-sort-by-length",
        help="Run the texts sorted by length (rows still written in input order): less "
        "padding in a transformer's batches. Default: sorted, except with --n-process > 1 "
        "on a pipeline whose transformer is not an mtl_transformer.",
        show_default=False,
    ),
    scores: bool = SCORES,
    # 10,000 is predict.DEFAULT_CHUNK_SIZE, written out to keep `--help` free of spaCy.
    chunk_size: int = typer.Option(
        10_000,
        "--chunk-size",
        min=1,
        help="Rows read, predicted and saved together; an interrupted run resumes after "
        "the last saved chunk.",
    ),
    component: str = COMPONENT,
    columns: Optional[str] = COLUMNS,
    quoting: bool = QUOTING,
    prefix: str = PREFIX,
    label_sep: str = LABEL_SEP,
    csv_safe: bool = CSV_SAFE,
    # 10,000,000 is predict.DEFAULT_MAX_RECORD_BYTES.
    max_record_bytes: int = typer.Option(
        10_000_000,
        "--max-record-bytes",
        min=1,
        help="Most bytes of one input line (JSONL) or row (CSV/TSV); a longer one stops "
        "the run, naming its line.",
    ),
    force: bool = typer.Option(
        False, "--force", "-F", help="Replace OUTPUT (and forget an unfinished run into it)."
    ),
) -> None:
    """Predict the label groups of every row of a file. Writes the input rows in order with
    one column per group (the label, or the labels at or above their thresholds) and, with
    --scores, a score per label. Rerun the same command to continue an interrupted run.
    See docs/predict.md.
    """
    import os

    from wasabi import msg

    from ..errors import ModelLoadError
    from ..workflows.predict import PredictError, predict_file, progress_path

    if n_process > 1:
        # The tokenizers library warns in every forked process otherwise.
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    import_code(code)
    resuming = progress_path(output).exists() and not force
    try:
        summary = predict_file(
            model,
            input_path,
            output,
            text_column=text_column,
            input_format=input_format,
            output_format=output_format,
            component=component,
            scores=scores,
            batch_size=batch_size,
            n_process=n_process,
            gpu_id=gpu_id,
            sort_by_length=sort_by_length,
            chunk_size=chunk_size,
            columns=split_columns(columns),
            quoting=quoting,
            prefix=prefix,
            label_sep=label_sep,
            csv_safe=csv_safe,
            max_record_bytes=max_record_bytes,
            overwrite=force,
            progress=True,
        )
    except ModelLoadError as err:
        fail_model(err)
    except (PredictError, OSError) as err:
        msg.fail("Prediction stopped", str(err), exits=1)
    except KeyboardInterrupt:
        msg.warn(
            "Interrupted. Run the same command again to continue after the last saved chunk",
            str(progress_path(output)),
            exits=130,
        )
    if resuming:
        msg.info(f"Continued an interrupted run after {summary.resumed_rows:,} rows")
    print_table(summary.table())
    if summary.rows == 0:
        # Exit 0 all the same: a file with no rows is valid input, and its output (the
        # header, or an empty file) is written; but it is rarely the file that was meant.
        msg.warn(
            f"No rows were read from {input_path}: the output has no rows. Check that it "
            "is the file you meant (a header only, or an empty or blank JSONL file)"
        )
    if summary.replaced:
        shown = ", ".join(summary.replaced_at)
        more = "" if summary.replaced <= len(summary.replaced_at) else ", ..."
        msg.warn(
            f"{summary.replaced:,} input lines had characters that are not valid UTF-8 (bad "
            "bytes, lone surrogates in JSON), replaced with U+FFFD; their rows were predicted "
            f"and written: {shown}{more}"
        )
    msg.good(f"Wrote {summary.output_format.upper()} with predictions", str(output))


def predict_distributed_command(
    model: str = typer.Argument(
        ..., help="Pipeline folder every worker can read, or an installed package name."
    ),
    inputs: list[str] = typer.Argument(
        ..., help="Input files, folders, globs or URIs (s3://...): Parquet, JSONL, CSV, TSV."
    ),
    output: str = typer.Argument(
        ..., help="Output: a file (out.csv) or a folder / URI of part files (see --mode)."
    ),
    text_column: str = TEXT_COLUMN,
    input_format: Optional[str] = typer.Option(
        None, "--format", "-f", help="csv|tsv|jsonl|parquet (default: from the first name)."
    ),
    output_format: Optional[str] = typer.Option(
        None, "--output-format", help="csv|tsv|jsonl|parquet (default: as for predict)."
    ),
    mode: Optional[str] = typer.Option(
        None,
        "--mode",
        help="file: one file written by this process (same as predict); dir: part files "
        "written by the workers. Default: file for local names like out.csv, else dir.",
    ),
    address: Optional[str] = typer.Option(
        None,
        "--address",
        help="Ray cluster to use ('auto', 'ray://host:10001'); default: start a local "
        "cluster on this machine (loopback only) for the run.",
    ),
    workers: int = typer.Option(2, "--workers", "-w", min=1, help="Workers (model copies)."),
    max_retries: int = typer.Option(
        3,
        "--max-retries",
        min=0,
        help="Times a worker whose process died (killed, out of memory, node lost) is "
        "restarted and its calls run again; then the job stops.",
    ),
    cpus_per_worker: float = typer.Option(1.0, "--cpus-per-worker", help="CPUs per worker."),
    gpus_per_worker: float = typer.Option(0.0, "--gpus-per-worker", help="GPUs per worker."),
    local_cpus: Optional[int] = typer.Option(
        None,
        "--local-cpus",
        help="CPUs of the local cluster (default: workers x CPUs per worker, plus one "
        "for reading and writing).",
    ),
    batch_size: int = BATCH_SIZE,
    rows_per_call: int = typer.Option(
        1024, "--rows-per-call", min=1, help="Rows handed to a worker at a time."
    ),
    rows_per_file: int = typer.Option(
        100_000,
        "--rows-per-file",
        min=1,
        help="Mode dir: rows of a part file (at least; the last has the rest).",
    ),
    scores: bool = SCORES,
    component: str = COMPONENT,
    code: Optional[Path] = typer.Option(
        None,
        "--code",
        "-c",
        help=f"{CODE_HELP}, here and in every worker (a path each worker can read).",
    ),
    columns: Optional[str] = COLUMNS,
    quoting: bool = QUOTING,
    prefix: str = PREFIX,
    label_sep: str = LABEL_SEP,
    csv_safe: bool = CSV_SAFE,
    force: bool = typer.Option(False, "--force", "-F", help="Replace OUTPUT."),
) -> None:
    """Predict on a Ray cluster (pip install "spacy-mtl[distributed]"): the pipeline is
    loaded once per worker; the output has the columns `predict` writes. See
    docs/predict.md, section "Scale out".
    """
    import math
    from contextlib import nullcontext

    from wasabi import msg

    from ..workflows.distributed import check_paths, local_cluster, predict_distributed
    from ..workflows.predict import PredictError

    # Checked here, before a cluster starts: a bad name or a damaged model is one line,
    # at once.
    try:
        check_paths(
            inputs,
            output,
            mode=mode,
            input_format=input_format,
            output_format=output_format,
            overwrite=force,
        )
    except PredictError as err:
        msg.fail("Prediction stopped", str(err), exits=1)
    import_code(code)
    nlp = load_pipeline(Path(model), -1)
    try:
        if address is None:
            cpus = local_cpus or math.ceil(workers * cpus_per_worker) + 1
            msg.info(f"Starting a local Ray cluster ({cpus} CPUs, loopback only)")
            cluster: Any = local_cluster(cpus, num_gpus=math.ceil(workers * gpus_per_worker))
        else:
            import ray

            if not ray.is_initialized():
                ray.init(address=address)
            cluster = nullcontext()
        with cluster:
            summary = predict_distributed(
                model,
                inputs,
                output,
                text_column=text_column,
                input_format=input_format,
                output_format=output_format,
                mode=mode,
                component=component,
                scores=scores,
                batch_size=batch_size,
                rows_per_call=rows_per_call,
                rows_per_file=rows_per_file,
                num_workers=workers,
                max_retries=max_retries,
                cpus_per_worker=cpus_per_worker,
                gpus_per_worker=gpus_per_worker,
                columns=split_columns(columns),
                quoting=quoting,
                prefix=prefix,
                label_sep=label_sep,
                csv_safe=csv_safe,
                overwrite=force,
                progress=True,
                pipeline=nlp,
                code=None if code is None else str(code),
            )
    except (PredictError, OSError) as err:
        msg.fail("Prediction stopped", str(err), exits=1)
    print_table(summary.table())
    where = output if summary.mode == "file" else f"{output} ({len(summary.files)} part files)"
    msg.good(f"Wrote {summary.output_format.upper()} with predictions", where)
