"""The evaluate report's plots: per-label F1 bars, a confusion matrix, precision-recall
curves and a reliability diagram, each drawn from plain arrays into a PNG.

matplotlib is an optional dependency (`pip install spacy-mtl[report]`), imported only when
a plot is drawn; figures are drawn with the Agg canvas, never through pyplot's global state.
"""

import math
from pathlib import Path
from typing import Any, Optional, Sequence, Tuple

import numpy

from .calibration import ReliabilityBins, average_precision, precision_recall_curve

# PR small multiples: more labels than this and only the most frequent are drawn.
MAX_PR_LABELS = 30
# Confusion matrices write the counts in the cells up to this many classes.
MAX_ANNOTATED_CLASSES = 15


def require_matplotlib() -> Any:
    """matplotlib, or an ImportError that says how to install it."""
    try:
        import matplotlib
        import matplotlib.figure
        from matplotlib.backends import backend_agg  # noqa: F401
    except ImportError as err:
        raise ImportError(
            "The evaluate report draws its plots with matplotlib, which is not installed. "
            "Install it with: pip install spacy-mtl[report] (or run without plots)."
        ) from err
    return matplotlib


def _new_figure(width: float, height: float) -> Any:
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)  # Agg canvas: no display, no pyplot global state
    return fig


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(str(path), format="png", bbox_inches="tight")
    return path


def plot_label_f1(
    labels: Sequence[str],
    f1: Sequence[float],
    support: Sequence[int],
    path: Path,
    *,
    title: str = "",
    macro_f: Optional[float] = None,
) -> Path:
    """Horizontal F1 bars, best label on top, with each label's gold support."""
    order = sorted(range(len(labels)), key=lambda i: (-f1[i], labels[i]))
    height = max(2.2, 0.28 * len(labels) + 1.2)
    fig = _new_figure(6.5, height)
    ax = fig.add_subplot(1, 1, 1)
    ys = numpy.arange(len(order))[::-1]
    values = [f1[i] for i in order]
    ax.barh(ys, values, color="#4C72B0", height=0.7)
    ax.set_yticks(ys)
    ax.set_yticklabels([f"{labels[i]} (n={support[i]})" for i in order], fontsize=8)
    for y, v in zip(ys, values):
        ax.text(min(v + 0.01, 0.93), y, f"{v:.2f}", va="center", fontsize=7)
    if macro_f is not None:
        ax.axvline(
            macro_f, color="#C44E52", linestyle="--", linewidth=1, label=f"macro F {macro_f:.2f}"
        )
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, len(order) - 0.4)
    ax.set_xlabel("F1")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def plot_confusion(
    labels: Sequence[str], matrix: numpy.ndarray, path: Path, *, title: str = ""
) -> Path:
    """Confusion matrix: gold rows, predicted columns; colour = share of the gold row."""
    k = len(labels)
    size = max(3.5, 0.45 * k + 2.0)
    fig = _new_figure(size + 0.8, size)
    ax = fig.add_subplot(1, 1, 1)
    totals = matrix.sum(axis=1, keepdims=True)
    share = numpy.divide(matrix, totals, out=numpy.zeros(matrix.shape), where=totals > 0)
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of gold row (recall)")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    if k <= MAX_ANNOTATED_CLASSES:
        for i in range(k):
            for j in range(k):
                color = "white" if share[i, j] > 0.6 else "black"
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8, color=color)
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def plot_pr_curves(
    curves: Sequence[Tuple[str, numpy.ndarray, numpy.ndarray, float]],
    path: Path,
    *,
    title: str = "",
    max_labels: int = MAX_PR_LABELS,
) -> Path:
    """Small multiples of precision-recall curves, one panel per label, most frequent first.

    curves: (label, scores, gold, threshold) per label, over the docs annotated for it.
    Each panel shows the curve, the label's base rate (a random ranker's precision) and a
    dot where the label's threshold operates. Past max_labels only the most frequent labels
    are drawn (the title says how many).
    """
    ranked = sorted(curves, key=lambda c: (-int((numpy.asarray(c[2]) > 0.5).sum()), c[0]))
    shown = ranked[:max_labels]
    n = len(shown)
    ncols = min(n, 6) if n > 4 else max(n, 1)
    nrows = max(1, math.ceil(n / ncols))
    fig = _new_figure(2.3 * ncols, 2.1 * nrows + 0.5)
    for i, (label, scores, gold, threshold) in enumerate(shown):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        gold_b = numpy.asarray(gold) > 0.5
        precision, recall, thresholds = precision_recall_curve(scores, gold_b)
        support = int(gold_b.sum())
        if precision.size == 0:
            ax.text(0.5, 0.5, "no positives", ha="center", va="center", fontsize=8)
            ax.set_title(f"{label} (n=0)", fontsize=8)
        else:
            ax.step(
                numpy.r_[0.0, recall],
                numpy.r_[precision[0], precision],
                where="post",
                linewidth=1.2,
            )
            ax.axhline(support / len(gold_b), color="grey", linestyle=":", linewidth=0.8)
            # The operating point: the lowest curve threshold still >= the label's threshold.
            at = numpy.flatnonzero(thresholds >= threshold)
            if at.size:
                k = at[-1]
                ax.plot([recall[k]], [precision[k]], "o", color="#C44E52", markersize=4)
            ap = average_precision(scores, gold_b)
            ax.set_title(f"{label} (n={support}) AP {ap:.2f}", fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.tick_params(labelsize=6)
        if i % ncols == 0:
            ax.set_ylabel("precision", fontsize=7)
        if i >= n - ncols:
            ax.set_xlabel("recall", fontsize=7)
    note = f" (top {n} of {len(curves)} labels by support)" if len(curves) > n else ""
    fig.suptitle(title + note + "\n• = operating threshold, dotted = base rate", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_reliability(bins: ReliabilityBins, path: Path, *, title: str = "") -> Path:
    """Reliability diagram: observed frequency per bin (bars) against the bin's mean predicted
    probability (red lines) and the diagonal, with the bin counts below (log scale)."""
    fig = _new_figure(5.0, 5.6)
    grid = fig.add_gridspec(2, 1, height_ratios=[3, 1], hspace=0.08)
    ax = fig.add_subplot(grid[0])
    hist = fig.add_subplot(grid[1], sharex=ax)
    width = bins.edges[1] - bins.edges[0]
    centers = bins.edges[:-1] + width / 2
    filled = bins.counts > 0
    ax.bar(
        centers[filled],
        bins.accuracy[filled],
        width=width,
        color="#4C72B0",
        edgecolor="white",
        label="observed frequency",
    )
    # Mean confidence as a line across each bar: the bar's top above or below it is the
    # gap (under- or over-confidence); shaded gap bars would hide the bar beneath them.
    left = bins.edges[:-1][filled]
    ax.hlines(
        bins.confidence[filled],
        left + 0.1 * width,
        left + 0.9 * width,
        colors="#C44E52",
        linewidth=2.5,
        label="mean predicted probability",
    )
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("observed frequency")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.tick_params(labelbottom=False)
    hist.bar(centers, bins.counts, width=width, color="grey", edgecolor="white")
    if bins.counts.max(initial=0) > 0:
        hist.set_yscale("log")
    hist.set_ylabel("count", fontsize=8)
    hist.set_xlabel("predicted probability (bin)")
    return _save(fig, path)
