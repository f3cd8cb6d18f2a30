"""`spacy-mtl tune`: temperatures and decision thresholds fit on dev (workflows/tune.py)."""

from pathlib import Path
from typing import Optional

import typer

from ._util import (
    BATCH_SIZE,
    CODE,
    GPU_ID,
    check_new_output,
    import_code,
    load_pipeline,
    print_table,
)


def tune_report_path(output_dir: Path) -> Path:
    """Where `tune` writes its report by default: beside the tuned folder, not inside it
    (`spacy package` copies the whole folder into the wheel)."""
    return output_dir.with_name(f"{output_dir.name}-tune.json")


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

    from ..data.io import cannot_write
    from ..workflows.report import check_corpus_path, load_corpus
    from ..workflows.tune import check_bounds, save_tuned, tune_pipeline

    try:
        # Before loading the model: a typo should not cost its loading time.
        check_corpus_path(dev_path)
        check_bounds(min_threshold, max_threshold)
    except (ValueError, FileNotFoundError) as err:
        msg.fail(str(err), exits=1)
    check_new_output(output_dir, force, folder=True)
    report_path = report if report is not None else tune_report_path(output_dir)
    for path, folder in ((output_dir, True), (report_path, False)):
        problem = cannot_write(path, folder=folder)
        if problem is not None:
            msg.fail(f"Cannot write {path}: {problem}.", exits=1)
    import_code(code)
    nlp = load_pipeline(model_dir, gpu_id)
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

    print_table(result.table())
    for warning in result.warnings():
        msg.warn(warning)
    msg.good("Saved the tuned pipeline", str(output_dir))
    msg.good("Saved the tuning report", str(report_path))
