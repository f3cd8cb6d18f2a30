"""evaluate's Markdown report and its plots, rendered from the group reports (the data of
`spacy_mtl.workflows.report`).

DOCS: docs/evaluate.md
"""

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence

from .calibration import N_BINS
from .plots import plot_confusion, plot_label_f1, plot_pr_curves, plot_reliability
from .report_explain import explanation_lines, md_cell

if TYPE_CHECKING:  # report imports this module
    from .report import GroupReport


def render_report(
    reports: Sequence["GroupReport"],
    metrics: Dict[str, float],
    *,
    n_docs: int,
    n_words: int,
    model_name: str,
    data_name: str,
    base: Path,
) -> str:
    """The Markdown report; PNG links are relative to `base` (the report's folder)."""
    lines = [f"# Evaluation: `{model_name}`", ""]
    on = f" on `{data_name}`" if data_name else ""
    speed = metrics.get("speed")
    lines.append(
        f"{n_docs} docs{on}, {n_words} words"
        + (f", {speed:,.0f} words/s" if speed is not None else "")
        + ". Scores at the model's own thresholds and temperatures; docs not annotated for"
        " a group are left out of that group's scores."
    )
    lines.append("")
    if "mtl_score" in metrics:
        lines += [
            f"**mtl_score** (weighted mean of the groups' macro F): {metrics['mtl_score']:.3f}",
            "",
        ]
    lines += [
        "## Summary",
        "",
        "| group | kind | labels | docs annotated | macro F | acc / micro F | macro AUC | ECE |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    multi_component = len({r.component for r in reports}) > 1
    for r in reports:
        name = f"{r.component}:{r.name}" if multi_component else r.name
        second = r.acc if r.group.is_multiclass else r.micro_f
        second_name = "acc" if r.group.is_multiclass else "micro F"
        lines.append(
            f"| {name} | {r.group.kind} | {len(r.group.labels)} | {r.n_docs} | "
            f"{_fmt(r.macro_f)} | {_fmt(second)} ({second_name}) | {_fmt(r.macro_auc)} | "
            f"{_fmt(r.ece)} |"
        )
    lines += [
        "",
        f"ECE: expected calibration error, {N_BINS} equal-width bins (lower is better).",
        "",
    ]
    conditional = [r for r in reports if r.group.parent is not None]
    if conditional:
        lines += [
            "Conditional groups are scored above on the docs annotated for them (where "
            "their gold condition holds), with their conditional scores. End to end, a "
            "label also counts as missed when the predicted conditions block the group, "
            "and docs whose gold condition fails count too (gold: no label):",
            "",
            "| group | condition | docs | e2e macro F | e2e acc |",
            "| --- | --- | ---: | ---: | ---: |",
        ]
        for r in conditional:
            lines.append(
                f"| {md_cell(r.name)} | {md_cell(r.group.parent or '')} | "
                f"{r.e2e.get('n_docs', 0)} | "
                f"{_fmt(r.e2e.get('macro_f'))} | {_fmt(r.e2e.get('acc'))} |"
            )
        lines.append("")
    for r in reports:
        lines += _group_section(r, base, multi_component)
    return "\n".join(lines).rstrip() + "\n"


def _group_section(r: "GroupReport", base: Path, multi_component: bool) -> List[str]:
    g = r.group
    title = f"{r.component}:{g.name}" if multi_component else g.name
    lines = [
        f"## Group `{title}`",
        "",
        f"{g.kind}, {len(g.labels)} labels, {r.n_docs} docs annotated, "
        f"temperature {g.temperature:g}"
        + (f", applies where `{g.parent}`." if g.parent is not None else "."),
        "",
    ]
    if g.is_multiclass:
        lines += [
            "| label | P | R | F | support | AUC |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for lab in r.labels:
            lines.append(
                f"| {md_cell(lab.label)} | {_fmt(lab.p)} | {_fmt(lab.r)} | {_fmt(lab.f)} | "
                f"{lab.support} | {_fmt(lab.auc)} |"
            )
    else:
        lines += [
            "| label | threshold | P | R | F | support / annotated | AUC | AP |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for lab in r.labels:
            lines.append(
                f"| {md_cell(lab.label)} | {_fmt(lab.threshold, 2)} | {_fmt(lab.p)} | "
                f"{_fmt(lab.r)} | {_fmt(lab.f)} | {lab.support} / {lab.n_annotated} | "
                f"{_fmt(lab.auc)} | {_fmt(lab.ap)} |"
            )
    lines.append("")
    captions = {
        "f1": "Per-label F1",
        "confusion": "Confusion matrix",
        "pr": "Precision-recall curves",
        "reliability": "Reliability diagram",
    }
    for kind, path in r.plots.items():
        rel = Path(path).resolve().relative_to(base.resolve()).as_posix()
        lines += [f"![{captions.get(kind, kind)}: {title}]({rel})", ""]
    return lines + explanation_lines(r)


def _fmt(value: Optional[float], digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


# -- plots ------------------------------------------------------------------------------


def safe_filename(name: str) -> str:
    """A file name part from a group or component name ('/' and spaces replaced)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "group"


def write_plots(
    report: "GroupReport", plot_dir: Path, *, prefix_component: bool = False
) -> List[Path]:
    """Draw one group's plots into plot_dir; fills `report.plots` and returns the paths."""
    stem = safe_filename(report.name)
    if prefix_component:
        stem = f"{safe_filename(report.component)}_{stem}"
    g = report.group
    paths: Dict[str, Path] = {}
    paths["f1"] = plot_label_f1(
        [lab.label for lab in report.labels],
        [lab.f for lab in report.labels],
        [lab.support for lab in report.labels],
        plot_dir / f"{stem}_f1.png",
        title=f"{report.name}: per-label F1 (macro F {_fmt(report.macro_f)})",
        macro_f=report.macro_f,
    )
    if g.is_multiclass:
        paths["confusion"] = plot_confusion(
            list(g.labels),
            report.confusion(),
            plot_dir / f"{stem}_confusion.png",
            title=f"{report.name}: confusion matrix (acc {_fmt(report.acc)})",
        )
    else:
        curves = []
        for j, lab in enumerate(report.labels):
            rows = report.masks[:, j] > 0
            curves.append(
                (
                    lab.label,
                    report.probs[rows, j],
                    report.truths[rows, j],
                    lab.threshold if lab.threshold is not None else 0.5,
                )
            )
        paths["pr"] = plot_pr_curves(
            curves,
            plot_dir / f"{stem}_pr.png",
            title=f"{report.name}: precision-recall per label (macro AUC {_fmt(report.macro_auc)})",
        )
    what = "top-label confidence" if g.is_multiclass else "per-label probability"
    paths["reliability"] = plot_reliability(
        report.reliability(),
        plot_dir / f"{stem}_reliability.png",
        title=f"{report.name}: reliability ({what}), ECE {_fmt(report.ece)}",
    )
    report.plots = paths
    return list(paths.values())
