"""`spacy-mtl evaluate`: scores, metrics.json and report.md (workflows/report.py)."""

from pathlib import Path
from typing import Optional

import typer

from ._util import BATCH_SIZE, CODE, GPU_ID, import_code, load_pipeline, print_table


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

    from ..workflows.report import (
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
    import_code(code)
    nlp = load_pipeline(model_dir, gpu_id)
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

    print_table(result.table())
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
