"""The `spacy-mtl` command line: a thin typer layer over plain functions.

Each command parses its options, calls one function from the module that does the work,
and prints with wasabi. Heavy imports happen inside the commands, so `spacy-mtl --help`
stays fast.
"""

from pathlib import Path
from typing import Any, List, Optional

import typer

# rich_markup_mode=None as in spaCy's own app: plain click help, where the "[onnx]" of
# `pip install "spacy-mtl[onnx]"` is text, not a rich markup tag that vanishes.
app = typer.Typer(
    name="spacy-mtl",
    help="Train, convert and run multi-group text classifiers for spaCy.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)

# Options that mean the same in every command that has them, spelled as spaCy's commands
# spell them (tests/integration/test_cli_conventions.py compares them with spaCy's).
CODE = typer.Option(
    None,
    "--code",
    "-c",
    help="Path to Python file with additional code (registered functions) to be imported "
    "before the pipeline loads.",
)
GPU_ID = typer.Option(-1, "--gpu-id", "-g", help="GPU ID or -1 for CPU.")
BATCH_SIZE = typer.Option(64, "--batch-size", "-b", min=1, help="Docs per batch.")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"spacy-mtl {_package_version()}")
        raise typer.Exit()


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("spacy-mtl")
    except PackageNotFoundError:  # run from a source tree that was never installed
        from . import __version__

        return __version__


@app.callback()
def _callback(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """spacy_mtl: one spaCy text classifier for several label groups."""
    # With a callback, a single command still needs its name: `spacy-mtl convert ...`.


def _import_code(code: Optional[Path]) -> None:
    """Import the --code file as spaCy's commands do (its registered functions become
    available); a missing or failing file ends the command with one line."""
    if code is not None:
        from spacy.cli._util import import_code

        import_code(code)


def _check_output(output: Path, force: bool, *, folder: bool) -> None:
    """Refuse an existing OUTPUT without --force (as `predict` and `spacy apply` do),
    before anything slow runs. A folder output may exist empty; a file where a folder
    goes (or the reverse) is refused even with --force."""
    from wasabi import msg

    if output.exists() and output.is_dir() != folder:
        kind = "a folder" if folder else "a file"
        msg.fail(f"{output} exists and is not {kind}; choose another OUTPUT.", exits=1)
    taken = any(output.iterdir()) if folder and output.exists() else output.exists()
    if taken and not force:
        msg.fail(f"{output} already exists; use -F/--force to replace it.", exits=1)


@app.command("convert")
def convert_command(
    inputs: list[Path] = typer.Argument(
        ..., help="Input files: CSV, TSV, JSONL or one text per line (also .gz/.bz2/.xz)."
    ),
    output_dir: Path = typer.Argument(..., help="Folder for the .spacy files (created)."),
    spec: Path = typer.Option(
        ..., "--spec", "-s", help="Spec file (YAML or JSON): text column and label groups."
    ),
    name: Optional[str] = typer.Option(
        None,
        "--name",
        help="Read all inputs into one corpus of this name (default: one per input, "
        "named after the file).",
    ),
    lang: str = typer.Option("en", "--lang", "-l", help="Tokenizer language (spacy.blank)."),
    split: Optional[str] = typer.Option(
        None,
        "--split",
        help="Split each corpus, e.g. train=0.8,dev=0.1,test=0.1 (stratified by the first "
        "multiclass group) into OUTPUT_DIR/<split>/.",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of --split."),
    on_error: str = typer.Option(
        "fail",
        "--on-error",
        help="fail: stop at the first bad row and write nothing. skip: write the good rows "
        "and list every bad one in the rejects file.",
    ),
    rejects: Optional[Path] = typer.Option(
        None,
        "--rejects",
        help="Rejects CSV for --on-error skip (default OUTPUT_DIR/<name>.rejects.csv).",
    ),
    limit: Optional[int] = typer.Option(
        None, "--limit", min=1, help="Read at most N rows of each input."
    ),
    # 50,000 is data.convert.DEFAULT_SHARD_SIZE, written out to keep `--help` free of spaCy.
    shard_size: int = typer.Option(
        50_000,
        "--shard-size",
        min=1,
        help="Most docs per .spacy file; more are written as <name>-000.spacy, ...",
    ),
) -> None:
    """Convert tabular files to .spacy corpora with label groups in doc.cats.
    See docs/convert.md for the spec format.
    """
    from wasabi import msg

    from .data.convert import ConvertError, convert_files, load_spec

    try:
        summary = convert_files(
            inputs,
            output_dir,
            load_spec(spec),
            split=split,
            seed=seed,
            on_error=on_error,
            rejects=rejects,
            limit=limit,
            lang=lang,
            name=name,
            shard_size=shard_size,
            progress=True,
        )
    except ConvertError as err:
        msg.fail("Conversion stopped; nothing was written", str(err), exits=1)
    except OSError as err:  # one that convert does not word itself: still one line
        where = err.filename if err.filename is not None else output_dir
        msg.fail("Conversion stopped", f"{where}: {err.strerror or err}", exits=1)
    for corpus in summary.corpora:
        msg.divider(corpus.name)
        msg.text(
            f"rows read {corpus.rows_read:,} = docs written {corpus.docs_written:,} "
            f"+ rows rejected {corpus.rows_rejected:,}"
        )
        if corpus.joined_rows_rejected:
            msg.text(
                f"joined-file rows rejected {corpus.joined_rows_rejected:,} (rows of `join` "
                "files that belong to no input row; not among the rows read)"
            )
        for joined_file, n_unmatched in corpus.join_unmatched.items():
            msg.text(
                f"join {joined_file}: {n_unmatched:,} input rows matched no row of it (their "
                "groups from it are missing)"
            )
        for group_name, n_dropped in corpus.conflicts_dropped.items():
            msg.text(
                f"group {group_name!r}: {n_dropped:,} rows kept without its labels "
                "(`on_conflict: drop`: annotated where its parent condition does not hold)"
            )
        _print_table(corpus.files_table())
        for group in summary.schema.groups if summary.schema is not None else ():
            _print_table(corpus.label_table(group))
        for line in corpus.first_rejects:
            msg.text(f"  rejected: {line}", spaced=False)
    for warning in summary.warnings:
        msg.warn(warning)
    if summary.rejects is not None:
        if summary.rows_rejected or summary.joined_rows_rejected:
            joined = summary.joined_rows_rejected
            extra = f" and {joined:,} joined-file rows" if joined else ""
            msg.warn(
                f"{summary.rows_rejected:,} rows{extra} rejected, listed in", str(summary.rejects)
            )
        else:
            msg.good("No rows rejected; empty rejects file", str(summary.rejects))
    msg.good(
        f"Wrote {summary.docs_written:,} docs of {summary.rows_read:,} rows read "
        f"({summary.rows_rejected:,} rejected) to {output_dir}"
    )


@app.command("init-config")
def init_config_command(
    specs: Optional[List[Path]] = typer.Argument(
        None,
        help="Convert spec(s) (YAML or JSON) whose groups the config gets, in order; none "
        "with --from-corpus.",
        show_default=False,
    ),
    output: Path = typer.Argument(..., help="The config file to write (folders are created)."),
    model: Optional[str] = typer.Option(
        None,
        "--model",
        help="Transformer: a Hugging Face hub name or a local folder (default: MiniLM on the "
        "CPU, roberta-base with --gpu).",
    ),
    gpu: bool = typer.Option(
        False, "--gpu", help="The GPU defaults (configs/gpu.cfg): roberta-base, fp16, 6,000 steps."
    ),
    steps: Optional[int] = typer.Option(
        None,
        "--steps",
        min=1,
        help="training.max_steps: the warm-up, decay and eval interval follow it.",
    ),
    from_corpus: Optional[Path] = typer.Option(
        None,
        "--from-corpus",
        help="Read the groups from a converted corpus (.spacy files) instead of specs; kinds "
        "are inferred from the gold.",
    ),
    groups: Optional[str] = typer.Option(
        None, "--groups", help="Only these groups, comma-separated (e.g. emotion,offense)."
    ),
    force: bool = typer.Option(False, "--force", "-F", help="Overwrite OUTPUT."),
) -> None:
    """Write a training config for your label groups (spacy_mtl/configs/ templates).
    See docs/configs.md.
    """
    from wasabi import msg

    from .data.convert import ConvertError
    from .workflows.init_config import (
        InitConfigError,
        groups_from_corpus,
        groups_from_specs,
        render_config,
        write_config,
    )

    specs = specs or []
    only = [name.strip() for name in groups.split(",") if name.strip()] if groups else None
    try:
        if from_corpus is not None:
            if specs:
                raise InitConfigError("Give convert specs or --from-corpus, not both.")
            found = groups_from_corpus(from_corpus, only=only)
        else:
            found = groups_from_specs(specs, only=only)
        text = render_config(found, template="gpu" if gpu else "cpu", model=model, steps=steps)
        write_config(text, output, force=force)
    except (InitConfigError, ConvertError) as err:
        msg.fail("No config written", str(err), exits=1)
    rows = [(g.name, g.kind, len(g.labels) or "[] (at initialize)", g.weight) for g in found]
    msg.table(rows, header=("group", "kind", "labels", "weight"), divider=True)
    inferred = [f"{g.name}: {g.kind}" for g in found if g.kind_inferred]
    if inferred:
        msg.warn(
            f"Kinds inferred from {from_corpus} (multiclass: every annotated doc has exactly "
            "one label): " + ", ".join(inferred),
            f"Check them in {output} ([components.mtl_textcat.groups.<group>] kind).",
        )
    msg.good(f"Wrote {output}")
    msg.text(
        f"Train: python -m spacy train {output} --output training --paths.train "
        "corpus/train --paths.dev corpus/dev"
    )


@app.command("tune")
def tune_command(
    model_dir: Path = typer.Argument(..., help="Trained pipeline folder (training/model-best)."),
    dev_path: Path = typer.Argument(..., help="Dev corpus: a .spacy file or a folder of them."),
    output_dir: Path = typer.Argument(
        ..., help="Folder to save the tuned pipeline to (created, with its parents)."
    ),
    component: str = typer.Option("mtl_textcat", "--component", help="Component to tune."),
    min_threshold: float = typer.Option(0.05, "--min-threshold", help="Lowest threshold allowed."),
    max_threshold: float = typer.Option(0.95, "--max-threshold", help="Highest threshold allowed."),
    code: Optional[Path] = CODE,
    gpu_id: int = GPU_ID,
    batch_size: int = BATCH_SIZE,
    report: Optional[Path] = typer.Option(
        None,
        "--report",
        help="Where to write the JSON report (default: OUTPUT_DIR-tune.json beside the "
        "folder, so that it does not travel in a package built from it).",
    ),
    temperature: bool = typer.Option(
        True, "--temperature/--no-temperature", help="Fit a temperature per group."
    ),
    thresholds: bool = typer.Option(
        True,
        "--thresholds/--no-thresholds",
        help="Tune the decisions: multilabel thresholds and multiclass class offsets.",
    ),
    force: bool = typer.Option(
        False, "--force", "-F", help="Replace OUTPUT_DIR if it exists and is not empty."
    ),
) -> None:
    """Calibrate a trained pipeline on dev data (a temperature per group, then per-label
    thresholds for multilabel groups) and save it to OUTPUT_DIR. See docs/evaluate.md.
    """
    from wasabi import msg

    from .data.io import cannot_write
    from .workflows.report import check_corpus_path, load_corpus
    from .workflows.tune import check_bounds, save_tuned, tune_pipeline

    try:
        # Before loading the model: a typo should not cost its loading time.
        check_corpus_path(dev_path)
        check_bounds(min_threshold, max_threshold)
    except (ValueError, FileNotFoundError) as err:
        msg.fail(str(err), exits=1)
    _check_output(output_dir, force, folder=True)
    report_path = report if report is not None else tune_report_path(output_dir)
    for path, folder in ((output_dir, True), (report_path, False)):
        problem = cannot_write(path, folder=folder)
        if problem is not None:
            msg.fail(f"Cannot write {path}: {problem}.", exits=1)
    _import_code(code)
    nlp = _load_pipeline(model_dir, gpu_id)
    try:
        examples = load_corpus(nlp, dev_path)
        msg.info(f"Tuning {component!r} on {len(examples)} dev docs from {dev_path}")
        result = tune_pipeline(
            nlp,
            examples,
            component=component,
            floor=min_threshold,
            ceiling=max_threshold,
            batch_size=batch_size,
            temperatures=temperature,
            thresholds=thresholds,
            show_progress=True,
        )
        # The folder and its parents are made, as `spacy train` makes them.
        save_tuned(nlp, output_dir, report_path, result.to_dict())
    except (ValueError, FileNotFoundError) as err:
        msg.fail(str(err), exits=1)

    _print_table(result.table())
    for warning in result.warnings():
        msg.warn(warning)
    msg.good("Saved the tuned pipeline", str(output_dir))
    msg.good("Saved the tuning report", str(report_path))


@app.command("evaluate")
def evaluate_command(
    model_dir: Path = typer.Argument(..., help="Trained pipeline folder or package name."),
    data_path: Path = typer.Argument(..., help="Gold corpus: a .spacy file or a folder of them."),
    output: Optional[Path] = typer.Option(
        None,
        "--output",
        "-o",
        help="Folder for metrics.json, report.md and plots/ (created). Without it the "
        "scores are printed only.",
    ),
    component: Optional[str] = typer.Option(
        None, "--component", help="Report on this mtl_textcat component only."
    ),
    code: Optional[Path] = CODE,
    gpu_id: int = GPU_ID,
    batch_size: int = BATCH_SIZE,
    plots: bool = typer.Option(
        True, "--plots/--no-plots", help="Draw PNG plots (matplotlib) into --output."
    ),
    explain: int = typer.Option(
        3,
        "--explain",
        min=0,
        help="Per group, explain this many of the most confidently right and most "
        "confidently wrong test docs in the report (occlusion; 0: none). With --output.",
    ),
    write_meta: bool = typer.Option(
        False,
        "--write-meta",
        help="Also write the scores into MODEL/meta.json as its `performance`, so `spacy "
        "package` and a Hugging Face Hub card show them (MODEL must be a folder).",
    ),
) -> None:
    """Evaluate a pipeline and print its scores per group. With --output DIR, also write
    DIR/metrics.json (the scores `spacy evaluate` writes) and a Markdown report with
    per-group tables and plots (DIR/report.md, DIR/plots/). See docs/evaluate.md.
    """
    from wasabi import msg

    from .workflows.report import (
        check_corpus_path,
        evaluate_to_dir,
        load_corpus,
        write_performance,
    )

    if write_meta and not (model_dir / "meta.json").is_file():
        msg.fail(
            f"--write-meta needs a pipeline folder with a meta.json; {model_dir} is not one "
            "(evaluate the folder a package was built from).",
            exits=1,
        )

    try:
        check_corpus_path(data_path)
    except FileNotFoundError as err:
        msg.fail(str(err), exits=1)
    _import_code(code)
    nlp = _load_pipeline(model_dir, gpu_id)
    try:
        examples = load_corpus(nlp, data_path)
        msg.info(f"Evaluating on {len(examples)} docs from {data_path}")
        result = evaluate_to_dir(
            nlp,
            examples,
            output,
            components=[component] if component else None,
            batch_size=batch_size,
            plots=plots and output is not None,
            model_name=str(model_dir),
            data_name=str(data_path),
            show_progress=True,
            explain=explain,
        )
    except (ValueError, FileNotFoundError, ImportError) as err:
        msg.fail(str(err), exits=1)

    _print_table(result.table())
    if "mtl_score" in result.metrics:
        score, speed = result.metrics["mtl_score"], result.metrics.get("speed", 0.0)
        msg.text(f"mtl_score {score:.3f}, {speed:.0f} words/s")
    if result.metrics_path is not None:
        msg.good("Saved metrics", str(result.metrics_path))
    if result.report_path is not None:
        msg.good("Saved report", str(result.report_path))
    if result.explanations_path is not None:
        msg.good("Saved explanations", str(result.explanations_path))
    if write_meta:
        meta_path = write_performance(model_dir, result.metrics, data_name=str(data_path))
        msg.good("Saved the scores as the pipeline's performance", str(meta_path))


# Options that `predict` and `predict-distributed` share.
TEXT_COLUMN = typer.Option("text", "--text-column", "-t", help="Column of the texts.")
SCORES = typer.Option(
    False, "--scores/--labels", help="Also write every label's score (default: labels)."
)
COMPONENT = typer.Option("mtl_textcat", "--component", help="The mtl_textcat component to report.")
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


def tune_report_path(output_dir: Path) -> Path:
    """Where `tune` writes its report by default: beside the tuned folder, not inside it
    (`spacy package` copies the whole folder into the wheel)."""
    return output_dir.with_name(f"{output_dir.name}-tune.json")


def _split_columns(columns: Optional[str]) -> Optional[List[str]]:
    """--columns "text,label,id" -> ["text", "label", "id"]."""
    return [c.strip() for c in columns.split(",")] if columns else None


@app.command("predict")
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
    columns: Optional[str] = typer.Option(
        None, "--columns", help="Column names of a CSV/TSV without a header, e.g. text,label,id."
    ),
    quoting: bool = typer.Option(
        True, "--quoting/--no-quoting", help='Whether CSV/TSV input quotes cells ("a, b").'
    ),
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

    from .errors import ModelLoadError
    from .workflows.predict import PredictError, predict_file, progress_path

    if n_process > 1:
        # The tokenizers library warns in every forked process otherwise.
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    _import_code(code)
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
            columns=_split_columns(columns),
            quoting=quoting,
            prefix=prefix,
            label_sep=label_sep,
            csv_safe=csv_safe,
            max_record_bytes=max_record_bytes,
            overwrite=force,
            progress=True,
        )
    except ModelLoadError as err:
        _fail_model(err)
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
    _print_table(summary.table())
    if summary.replaced:
        shown = ", ".join(summary.replaced_at)
        more = "" if summary.replaced <= len(summary.replaced_at) else ", ..."
        msg.warn(
            f"{summary.replaced:,} input lines had characters that are not valid UTF-8 (bad "
            "bytes, lone surrogates in JSON), replaced with U+FFFD; their rows were predicted "
            f"and written: {shown}{more}"
        )
    msg.good(f"Wrote {summary.output_format.upper()} with predictions", str(output))


@app.command("predict-distributed")
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
        help="Path to Python file with additional code (registered functions) to be imported "
        "before the pipeline loads, here and in every worker (a path each worker can read).",
    ),
    columns: Optional[str] = typer.Option(
        None, "--columns", help="Column names of CSV/TSV files without a header."
    ),
    quoting: bool = typer.Option(
        True, "--quoting/--no-quoting", help="Whether CSV/TSV input quotes cells."
    ),
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

    from .workflows.distributed import check_paths, local_cluster, predict_distributed
    from .workflows.predict import PredictError

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
    _import_code(code)
    nlp = _load_pipeline(Path(model), -1)
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
                columns=_split_columns(columns),
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
    _print_table(summary.table())
    where = output if summary.mode == "file" else f"{output} ({len(summary.files)} part files)"
    msg.good(f"Wrote {summary.output_format.upper()} with predictions", where)


def _load_pipeline(model: Path, gpu_id: int) -> Any:
    """Load a pipeline (folder or package), on GPU `gpu_id` when it is >= 0; a model that
    cannot be loaded ends the command with one line naming the folder and file."""
    from wasabi import msg

    from .errors import ModelLoadError
    from .workflows.loading import load_pipeline

    if gpu_id >= 0:
        msg.info(f"Using GPU {gpu_id}")
    try:
        return load_pipeline(model, gpu_id)
    except ModelLoadError as err:
        _fail_model(err)


def _fail_model(err: Exception) -> Any:
    """End a command on a model that cannot be loaded (`ModelLoadError`): one unwrapped
    line (wasabi would wrap it) naming the folder, the file and the problem; exit 1."""
    typer.secho(f"✘ {err}", fg="red", err=True)
    raise typer.Exit(1) from None


@app.command("distill-labels")
def distill_labels_command(
    teachers: list[Path] = typer.Argument(
        ..., help="Trained teacher pipeline(s): folders or package names; later ones win."
    ),
    corpus: Path = typer.Argument(..., help=".spacy file or folder, or unlabelled .txt / .jsonl"),
    output: Path = typer.Argument(..., help="The .spacy file to write (folders created)."),
    component: str = typer.Option(
        "mtl_textcat", "--component", help="The teachers' mtl_textcat component."
    ),
    batch_size: int = BATCH_SIZE,
    limit: int = typer.Option(0, "--limit", min=0, help="Read at most N docs (0: all)."),
    code: Optional[Path] = CODE,
    gpu_id: int = GPU_ID,
    force: bool = typer.Option(False, "--force", "-F", help="Replace OUTPUT if it exists."),
) -> None:
    """Store each teacher's logits with every doc (doc._.mtl_teacher) for a student to learn
    from; gold doc.cats are kept. The arguments are in the order of `predict`: the
    pipeline(s), the data, the output. See docs/training.md, "Distillation".
    """
    from wasabi import msg

    from .workflows.distill import check_corpus, check_output, distill_corpus

    try:
        check_corpus(corpus)
        check_output(corpus, output)
    except (FileNotFoundError, ValueError) as err:
        msg.fail(str(err), exits=1)
    _check_output(output, force, folder=False)
    _import_code(code)
    loaded = [_load_pipeline(teacher, gpu_id) for teacher in teachers]
    try:
        n = distill_corpus(
            loaded,
            corpus,
            output,
            component=component,
            batch_size=batch_size,
            limit=limit,
            warn=msg.warn,
        )
    except (ValueError, OSError) as err:
        msg.fail("Distillation stopped; nothing was written", str(err), exits=1)
    msg.good(f"Wrote {n} docs with teacher logits to {output}")


def _print_table(table: Any) -> None:
    """Print a `spacy_mtl.tables.Table` with wasabi."""
    from wasabi import msg

    if table.title is not None:
        msg.text(table.title, spaced=False)
    msg.table(
        list(table.rows),
        header=table.header,
        divider=table.header is not None,
        aligns=table.aligns,
        max_col=table.max_col,
    )


@app.command("quantize")
def quantize_command(
    model: Path = typer.Argument(..., help="Trained pipeline: folder or package name."),
    output: Path = typer.Argument(..., help="Folder for the int8 pipeline (created)."),
    method: str = typer.Option(
        "onnx",
        "--method",
        "-m",
        help="onnx: ONNX Runtime int8 (the faster; needs spacy-mtl[onnx]). torch: torch "
        "dynamic int8 (no extra dependency).",
    ),
    code: Optional[Path] = CODE,
    force: bool = typer.Option(
        False, "--force", "-F", help="Replace OUTPUT if it exists and is not empty."
    ),
) -> None:
    """Write a copy of MODEL whose transformer runs in int8 on CPU (ONNX Runtime or torch
    dynamic quantization; the fp32 weights are kept). It loads with spacy.load, works with
    predict and spacy package. See docs/performance.md, "int8 on CPU".
    """
    from wasabi import msg

    from .errors import ModelLoadError
    from .workflows.quantize import METHODS, quantize_pipeline

    if method not in METHODS:
        msg.fail(f"Unknown --method {method!r}: use {' or '.join(METHODS)}.", exits=1)
    _check_output(output, force, folder=True)
    _import_code(code)
    # nlp.to_disk makes the folder, not its parents.
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        done = quantize_pipeline(
            model, output, method=method, overwrite=force, on_step=lambda line: msg.text(line)
        )
    except ModelLoadError as err:
        _fail_model(err)
    except (ImportError, OSError) as err:
        msg.fail("Quantization stopped", str(err), exits=1)
    extra = f"; now mtl_transformer: {', '.join(done['converted'])}" if done["converted"] else ""
    components = ", ".join(done["components"])
    msg.good(f"Wrote {output}: {done['quantize']} transformer in {components}{extra}")


@app.command("serve")
def serve_command(
    model: Path = typer.Argument(..., help="Trained pipeline: folder or package name."),
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Address to bind. The default takes local connections only; the server has "
        "no authentication, so put a proxy in front before binding 0.0.0.0.",
    ),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port to bind."),
    workers: int = typer.Option(
        1,
        "--workers",
        min=1,
        help="Worker processes, each with its own copy of the pipeline.",
    ),
    max_texts: int = typer.Option(256, "--max-texts", min=1, help="Most texts per request."),
    max_body: int = typer.Option(
        1_000_000, "--max-body", min=1, help="Largest request body, in bytes."
    ),
    code: Optional[Path] = CODE,
    gpu_id: int = GPU_ID,
) -> None:
    """Serve MODEL over HTTP: POST /predict, POST /explain, GET /health, GET /info, the
    OpenAPI docs at /docs and a page at /. Requests of concurrent clients are batched
    through nlp.pipe. Stops on Ctrl+C or SIGTERM. See docs/serve.md.
    """
    from wasabi import msg

    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        msg.fail(
            f'serve needs FastAPI and uvicorn ({err}): pip install "spacy-mtl[serve]"', exits=1
        )
    from .errors import ComponentError
    from .workflows.serve import make_app, run_server
    from .workflows.serve.server import is_loopback

    _import_code(code)
    # Loaded here with one worker (and served as it is), to check it with several: a bad
    # model fails once, with one line, not in each worker.
    nlp = _load_pipeline(model, gpu_id)
    options = {"max_texts": max_texts, "max_body_bytes": max_body}
    try:
        make_app(nlp, **options)
    except ComponentError as err:
        msg.fail(str(err), exits=1)
    if workers > 1:
        del nlp
        nlp = None
    if not is_loopback(host):
        msg.warn(f"Binding {host}: anyone who can reach this address can use the server.")
    run_server(
        nlp,
        model=str(model),
        host=host,
        port=port,
        workers=workers,
        code=None if code is None else str(code),
        gpu_id=gpu_id,
        app_options=options,
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
