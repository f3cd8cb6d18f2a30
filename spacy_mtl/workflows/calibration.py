"""Calibration and threshold maths on plain numpy arrays (no spaCy, no scipy).

- `expected_calibration_error` / `reliability_bins`: ECE with equal-width bins
  (Guo et al. 2017, "On Calibration of Modern Neural Networks").
- `group_nll` / `fit_temperature`: temperature scaling, one scalar T per label group fit by
  minimising the group's negative log-likelihood on held-out logits;
  `at_temperature_bound` tells a fit that ran into the search's bounds.
- `best_threshold`: the decision threshold of one label that maximises its F1.
- `best_class_offsets`: per-class offsets of a multiclass decision (argmax of log p + b)
  that maximise the group's macro F1 (the multiclass counterpart of thresholds).
- `precision_recall_curve` / `average_precision`: the curve behind the report's PR plots.

DOCS: docs/evaluate.md
"""

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple

import numpy

from ..loss import activate_group, multiclass_loss, multilabel_loss

N_BINS = 15
# Bounds of the temperature search. T < 1 sharpens, T > 1 softens; a fit at a bound means
# the dev set cannot pin T down (e.g. every dev doc is classified right with a margin).
MIN_TEMPERATURE = 0.05
MAX_TEMPERATURE = 20.0
# A fit within this factor of a bound counts as stopped at it. The search's grid step is a
# factor of ~1.16, so a fit that ran into the bound ends between it and this factor; a T
# of 0.06 (logits x16) is a dev set that cannot constrain T, not a calibration.
BOUND_TOLERANCE = 1.25


# -- expected calibration error ---------------------------------------------------------


@dataclass
class ReliabilityBins:
    """Per-bin statistics of a reliability diagram (equal-width bins over [0, 1]).

    edges (numpy.ndarray): n_bins + 1 bin edges, 0.0 to 1.0.
    counts (numpy.ndarray): Number of predictions in each bin.
    confidence (numpy.ndarray): Mean predicted probability in each bin (nan if empty).
    accuracy (numpy.ndarray): Fraction of positive outcomes in each bin (nan if empty).
    """

    edges: numpy.ndarray
    counts: numpy.ndarray
    confidence: numpy.ndarray
    accuracy: numpy.ndarray

    @property
    def ece(self) -> float:
        """Σ_b (n_b / N) · |accuracy_b − confidence_b| over the non-empty bins."""
        total = int(self.counts.sum())
        if total == 0:
            return float("nan")
        filled = self.counts > 0
        gaps = numpy.abs(self.accuracy[filled] - self.confidence[filled])
        return float((self.counts[filled] * gaps).sum() / total)


def reliability_bins(
    probs: numpy.ndarray, outcomes: numpy.ndarray, n_bins: int = N_BINS
) -> ReliabilityBins:
    """Bin predicted probabilities into `n_bins` equal-width bins over [0, 1].

    Bin b holds probabilities in (b/n, (b+1)/n]; a probability of exactly 0 goes to the
    first bin (Guo et al.'s convention, so every value in [0, 1] falls in one bin).

    probs (numpy.ndarray): Predicted probabilities, any shape (flattened).
    outcomes (numpy.ndarray): 1 where the predicted event happened, same shape.
    n_bins (int): Number of bins.
    RETURNS (ReliabilityBins): The per-bin counts, mean confidences and accuracies.
    """
    p = numpy.asarray(probs, dtype="f8").ravel()
    y = numpy.asarray(outcomes, dtype="f8").ravel()
    if p.shape != y.shape:
        raise ValueError(f"probs and outcomes differ in size: {p.size} vs {y.size}.")
    edges = numpy.linspace(0.0, 1.0, n_bins + 1)
    # ceil(p·n) − 1 puts p in (b/n, (b+1)/n] into bin b; clip sends 0 to bin 0.
    which = numpy.clip(numpy.ceil(p * n_bins).astype(int) - 1, 0, n_bins - 1)
    counts = numpy.bincount(which, minlength=n_bins).astype("f8")
    sum_p = numpy.bincount(which, weights=p, minlength=n_bins)
    sum_y = numpy.bincount(which, weights=y, minlength=n_bins)
    with numpy.errstate(invalid="ignore", divide="ignore"):
        confidence = numpy.where(counts > 0, sum_p / counts, numpy.nan)
        accuracy = numpy.where(counts > 0, sum_y / counts, numpy.nan)
    return ReliabilityBins(edges=edges, counts=counts, confidence=confidence, accuracy=accuracy)


def expected_calibration_error(
    probs: numpy.ndarray, outcomes: numpy.ndarray, n_bins: int = N_BINS
) -> float:
    """ECE = Σ_b (n_b / N) · |acc_b − conf_b| with equal-width bins; nan with no data."""
    return reliability_bins(probs, outcomes, n_bins).ece


def calibration_pairs(
    kind_is_multiclass: bool, probs: numpy.ndarray, truths: numpy.ndarray, mask: numpy.ndarray
) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """The (confidence, outcome) pairs whose calibration a group's ECE measures.

    Multiclass: one pair per annotated doc, the top label's probability and whether the
    top label is the gold one. Multilabel: one pair per annotated (doc, label), the label's
    probability and its gold value.

    probs, truths, mask (numpy.ndarray): The group's columns, (n_docs, n_labels).
    RETURNS (Tuple[numpy.ndarray, numpy.ndarray]): confidences and outcomes, 1-D.
    """
    probs = numpy.asarray(probs, dtype="f8")
    truths = numpy.asarray(truths)
    mask = numpy.asarray(mask) > 0
    if kind_is_multiclass:
        rows = mask[:, 0] if mask.shape[1] else numpy.zeros(len(mask), dtype=bool)
        p, y = probs[rows], truths[rows]
        top = p.argmax(axis=1)
        outcome = (y.argmax(axis=1) == top).astype("f8")
        return p[numpy.arange(len(p)), top], outcome
    return probs[mask], (truths[mask] > 0.5).astype("f8")


# -- temperature scaling ----------------------------------------------------------------


def group_nll(
    kind_is_multiclass: bool,
    logits: numpy.ndarray,
    truths: numpy.ndarray,
    mask: numpy.ndarray,
    temperature: float = 1.0,
) -> float:
    """Mean negative log-likelihood of one group's logits divided by `temperature`.

    The training loss of loss.py, unweighted (no class or positive weights: calibration is
    about probabilities, not the training objective): cross-entropy of softmax(x / T) over
    the annotated docs (multiclass), binary cross-entropy of sigmoid(x / T) averaged over the
    annotated (doc, label) pairs (multilabel). Returns nan when nothing is annotated.
    """
    x = numpy.asarray(logits, dtype="f8") / temperature
    y = numpy.asarray(truths, dtype="f8")
    m = (numpy.asarray(mask) > 0).astype("f8")
    if kind_is_multiclass:
        if not m[:, 0].any():
            return float("nan")
        return multiclass_loss(numpy, x, y, m[:, 0])[0]
    if not m.any():
        return float("nan")
    return multilabel_loss(numpy, x, y, m, reduction="pair")[0]


def minimize_scalar_log(
    func: Callable[[float], float],
    low: float,
    high: float,
    *,
    n_grid: int = 41,
    tol: float = 1e-5,
) -> float:
    """Minimise a function of one positive variable on [low, high], searched in log space.

    A log-spaced grid finds the best bracket (robust to a function that is flat or not
    unimodal far from the optimum), then golden-section search refines inside it.
    Returns the argmin.
    """
    log_lo, log_hi = math.log(low), math.log(high)
    grid = numpy.linspace(log_lo, log_hi, n_grid)
    values = [func(math.exp(g)) for g in grid]
    best = int(numpy.nanargmin(values))
    a = grid[max(best - 1, 0)]
    b = grid[min(best + 1, n_grid - 1)]
    invphi = (math.sqrt(5.0) - 1.0) / 2.0
    c = b - invphi * (b - a)
    d = a + invphi * (b - a)
    fc, fd = func(math.exp(c)), func(math.exp(d))
    while b - a > tol:
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - invphi * (b - a)
            fc = func(math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + invphi * (b - a)
            fd = func(math.exp(d))
    candidates = [(values[best], grid[best]), (fc, c), (fd, d)]
    return math.exp(min(candidates, key=lambda item: item[0])[1])


def fit_temperature(
    kind_is_multiclass: bool,
    logits: numpy.ndarray,
    truths: numpy.ndarray,
    mask: numpy.ndarray,
    *,
    low: float = MIN_TEMPERATURE,
    high: float = MAX_TEMPERATURE,
) -> Optional[float]:
    """The temperature T in [low, high] that minimises `group_nll` (Guo et al. 2017).

    The NLL is convex in 1/T, so it is unimodal in log T and golden-section search finds
    the global minimum. Returns None when nothing in the group is annotated.
    """
    m = numpy.asarray(mask) > 0
    if not (m[:, 0].any() if kind_is_multiclass else m.any()):
        return None
    x = numpy.asarray(logits, dtype="f8")
    return minimize_scalar_log(
        lambda t: group_nll(kind_is_multiclass, x, truths, mask, t), low, high
    )


def at_temperature_bound(
    temperature: float,
    *,
    low: float = MIN_TEMPERATURE,
    high: float = MAX_TEMPERATURE,
    tolerance: float = BOUND_TOLERANCE,
) -> bool:
    """Whether a fitted temperature stopped at (within `tolerance`, a factor, of) a bound of
    the search [low, high]: the NLL was still falling there, so the data do not pin T down.
    """
    return temperature <= low * tolerance or temperature >= high / tolerance


def apply_temperature(
    kind_is_multiclass: bool, logits: numpy.ndarray, temperature: float
) -> numpy.ndarray:
    """softmax(x / T) or sigmoid(x / T) of one group's logits, in float64."""
    return activate_group(numpy, kind_is_multiclass, numpy.asarray(logits, dtype="f8"), temperature)


# -- thresholds -------------------------------------------------------------------------


@dataclass
class ThresholdChoice:
    """The best threshold of one label and the F1 it gives on the data it was chosen on."""

    threshold: float
    f1: float
    n_positive: int
    n_annotated: int


def f1_at_thresholds(
    scores: numpy.ndarray, gold: numpy.ndarray, thresholds: numpy.ndarray
) -> numpy.ndarray:
    """F1 of the decision `score >= t` for each t in `thresholds` (vectorised)."""
    s = numpy.sort(numpy.asarray(scores, dtype="f8"))
    pos = numpy.sort(numpy.asarray(scores, dtype="f8")[numpy.asarray(gold, dtype=bool)])
    t = numpy.asarray(thresholds, dtype="f8")
    # Predicted positive = scores >= t: count them via searchsorted on the sorted scores.
    n_pred = len(s) - numpy.searchsorted(s, t, side="left")
    tp = len(pos) - numpy.searchsorted(pos, t, side="left")
    denom = n_pred + len(pos)
    with numpy.errstate(invalid="ignore", divide="ignore"):
        return numpy.where(denom > 0, 2.0 * tp / denom, 0.0)


def best_threshold(
    scores: numpy.ndarray,
    gold: numpy.ndarray,
    *,
    floor: float = 0.05,
    ceiling: float = 0.95,
    default: float = 0.5,
) -> Optional[ThresholdChoice]:
    """The threshold in [floor, ceiling] that maximises F1 of `score >= threshold`.

    Every decision a threshold can make is tried: the candidates are the midpoints between
    consecutive distinct scores (a midpoint keeps the margin on both sides that the
    score itself would not), clipped to [floor, ceiling], the two bounds and `default`.
    Ties go to the candidate closest to `default`, the least surprising change: `default`
    itself when it is as good as the best.

    scores (numpy.ndarray): Predicted probabilities of the label, 1-D, annotated docs only.
    gold (numpy.ndarray): 1 where the label is gold-positive, same length.
    floor, ceiling (float): Bounds of the threshold (a threshold near 0 or 1 fits noise).
    default (float): The threshold to prefer among equals.
    RETURNS (Optional[ThresholdChoice]): None when the label has no positive (F1 is then 0
        for every threshold and there is nothing to tune).
    """
    if not 0.0 <= floor <= ceiling <= 1.0:
        raise ValueError(f"Need 0 <= floor <= ceiling <= 1, got floor={floor}, ceiling={ceiling}.")
    s = numpy.asarray(scores, dtype="f8").ravel()
    y = numpy.asarray(gold).ravel() > 0.5
    n_pos = int(y.sum())
    if n_pos == 0:
        return None
    distinct = numpy.unique(s)
    mids = (distinct[1:] + distinct[:-1]) / 2.0
    # The current threshold is a candidate too, so that it stays unless something beats it
    # (e.g. when no threshold in range catches a single positive and F1 is 0 everywhere).
    candidates = numpy.unique(numpy.clip(numpy.r_[mids, floor, ceiling, default], floor, ceiling))
    f1 = f1_at_thresholds(s, y, candidates)
    best_f1 = f1.max()
    # Exact ties only: F1 values of the same decision are computed identically.
    tied = candidates[f1 == best_f1]
    choice = float(tied[numpy.argmin(numpy.abs(tied - default))])
    return ThresholdChoice(
        threshold=choice, f1=float(best_f1), n_positive=n_pos, n_annotated=len(s)
    )


# Candidate offsets of one class: log-odds shifts of up to e^±3 ≈ 20x, in steps of 0.05.
OFFSET_GRID = numpy.round(numpy.arange(-3.0, 3.0001, 0.05), 2)


def multiclass_macro_f1(gold: numpy.ndarray, pred: numpy.ndarray, n_classes: int) -> float:
    """Macro F1 over all `n_classes` classes (a class never gold nor predicted scores 0),
    as the scorer computes it."""
    total = 0.0
    for j in range(n_classes):
        tp = float(((pred == j) & (gold == j)).sum())
        denom = float((pred == j).sum() + (gold == j).sum())
        total += 2.0 * tp / denom if denom else 0.0
    return total / n_classes


@dataclass
class OffsetChoice:
    offsets: Tuple[float, ...]
    macro_f1_before: float
    macro_f1: float


def best_class_offsets(
    probs: numpy.ndarray,
    gold: numpy.ndarray,
    *,
    grid: numpy.ndarray = OFFSET_GRID,
    passes: int = 3,
    fixed: Optional[Sequence[bool]] = None,
) -> Optional[OffsetChoice]:
    """Per-class offsets b that maximise macro F1 of argmax(log p + b), by coordinate ascent.

    Each pass tries every value of `grid` for one class at a time, the others fixed, and
    keeps the best; ties go to the value closest to 0 (no change unless it helps). Adding
    the same number to every offset changes no decision, so the result is one of many
    equivalent ones: the one nearest 0 that the search reaches.

    probs (numpy.ndarray): (n_docs, n_classes) probabilities of the annotated docs.
    gold (numpy.ndarray): (n_docs,) gold class indices.
    fixed (Optional[Sequence[bool]]): Per class, True to keep its offset at 0 (tune passes
        the classes never gold in the data: a negative offset would only learn that the
        data lack them).
    RETURNS (Optional[OffsetChoice]): None when there are no docs.
    """
    p = numpy.asarray(probs, dtype="f8")
    y = numpy.asarray(gold).astype(int).ravel()
    if p.ndim != 2 or len(p) == 0 or len(y) != len(p):
        return None
    k = p.shape[1]
    log_p = numpy.log(numpy.maximum(p, 1e-300))
    offsets = numpy.zeros(k)
    before = multiclass_macro_f1(y, log_p.argmax(axis=1), k)
    best = before
    order = numpy.argsort(numpy.abs(grid), kind="stable")  # 0 first: ties keep the smallest
    for _ in range(passes):
        changed = False
        for j in range(k):
            if fixed is not None and fixed[j]:
                continue
            scores = []
            for value in grid[order]:
                trial = offsets.copy()
                trial[j] = value
                scores.append(multiclass_macro_f1(y, (log_p + trial).argmax(axis=1), k))
            pick = int(numpy.argmax(scores))
            if scores[pick] > best:
                best = scores[pick]
                offsets[j] = float(grid[order][pick])
                changed = True
        if not changed:
            break
    return OffsetChoice(
        offsets=tuple(float(v) for v in offsets), macro_f1_before=before, macro_f1=best
    )


# -- precision-recall curve -------------------------------------------------------------


def precision_recall_curve(
    scores: numpy.ndarray, gold: numpy.ndarray
) -> Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
    """Precision and recall of `score >= t` at every distinct score t, highest t first.

    Returns (precision, recall, thresholds), each one entry per distinct score, recall
    rising. Empty arrays when there is no positive.
    """
    s = numpy.asarray(scores, dtype="f8").ravel()
    y = numpy.asarray(gold).ravel() > 0.5
    n_pos = int(y.sum())
    if n_pos == 0 or s.size == 0:
        empty = numpy.zeros((0,), dtype="f8")
        return empty, empty, empty
    order = numpy.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    tp = numpy.cumsum(y)
    n_pred = numpy.arange(1, len(s) + 1)
    # The decision at a tied score includes the whole run: keep each run's last index.
    last = numpy.r_[numpy.flatnonzero(s[1:] != s[:-1]), len(s) - 1]
    precision = tp[last] / n_pred[last]
    recall = tp[last] / n_pos
    return precision, recall, s[last]


def average_precision(scores: numpy.ndarray, gold: numpy.ndarray) -> Optional[float]:
    """AP = Σ_k (R_k − R_{k−1}) · P_k (the step-wise area, as scikit-learn defines it)."""
    precision, recall, _ = precision_recall_curve(scores, gold)
    if precision.size == 0:
        return None
    steps = numpy.diff(numpy.r_[0.0, recall])
    return float((steps * precision).sum())
