"""calibration: thresholds, temperature scaling, NLL, ECE and PR curves against
independent computations (torch, scikit-learn, loops written out by hand)."""

import numpy
import pytest
import torch
from sklearn.metrics import average_precision_score, f1_score
from sklearn.metrics import precision_recall_curve as sk_pr_curve

from spacy_mtl.workflows.calibration import (
    MAX_TEMPERATURE,
    MIN_TEMPERATURE,
    at_temperature_bound,
    average_precision,
    best_class_offsets,
    best_threshold,
    calibration_pairs,
    expected_calibration_error,
    f1_at_thresholds,
    fit_temperature,
    group_nll,
    multiclass_macro_f1,
    precision_recall_curve,
    reliability_bins,
)


def test_best_threshold_known_answer() -> None:
    scores = numpy.asarray([0.9, 0.8, 0.7, 0.35, 0.3, 0.2, 0.1])
    gold = numpy.asarray([1, 1, 0, 1, 0, 0, 0])
    choice = best_threshold(scores, gold, floor=0.0, ceiling=1.0)
    # Cutting between 0.35 and 0.3: tp=3, fp=1, fn=0 → F1 = 6/7; every other cut is worse.
    assert choice is not None
    assert choice.threshold == pytest.approx(0.325)
    assert choice.f1 == pytest.approx(6 / 7)
    assert choice.n_positive == 3 and choice.n_annotated == 7


def test_best_threshold_respects_floor_and_ceiling() -> None:
    scores = numpy.asarray([0.04, 0.2, 0.01, 0.1])
    gold = numpy.asarray([1, 1, 0, 0])
    free = best_threshold(scores, gold, floor=0.0, ceiling=1.0)
    assert free is not None
    assert free.threshold == pytest.approx(0.025)  # predicts 0.04, 0.1, 0.2: F1 0.8
    assert free.f1 == pytest.approx(0.8)
    floored = best_threshold(scores, gold, floor=0.05, ceiling=0.95)
    assert floored is not None
    # Below 0.05 is out of bounds: the best cut left is between 0.1 and 0.2 (F1 2/3).
    assert floored.threshold == pytest.approx(0.15)
    assert floored.f1 == pytest.approx(2 / 3)
    capped = best_threshold(numpy.asarray([0.99, 0.98, 0.2]), [1, 0, 0], floor=0.0, ceiling=0.9)
    assert capped is not None
    assert capped.threshold <= 0.9
    # Capped at 0.9, both high scores are predicted positive: F1 = 2/3.
    assert capped.f1 == pytest.approx(2 / 3)


def test_best_threshold_keeps_default_when_nothing_beats_it() -> None:
    # Every positive scores below the floor: F1 is 0 for every allowed threshold.
    choice = best_threshold([0.01, 0.02, 0.3], [1, 1, 0], floor=0.05, ceiling=0.95, default=0.4)
    assert choice is not None
    assert choice.threshold == 0.4 and choice.f1 == 0.0
    # A tie between the default and another cut keeps the default.
    choice = best_threshold([0.9, 0.6, 0.1], [1, 0, 0], floor=0.0, ceiling=1.0, default=0.7)
    assert choice is not None
    assert choice.threshold == 0.7 and choice.f1 == 1.0


def test_best_threshold_matches_brute_force() -> None:
    rng = numpy.random.default_rng(3)
    for _ in range(20):
        n = int(rng.integers(5, 60))
        gold = rng.random(n) < 0.3
        gold[0] = True
        # Rounded scores make ties, the hard case.
        scores = numpy.round(numpy.clip(rng.random(n) * 0.6 + gold * 0.3, 0, 1), 2)
        choice = best_threshold(scores, gold, floor=0.05, ceiling=0.95)
        assert choice is not None
        assert 0.05 <= choice.threshold <= 0.95
        brute = max(_f1_by_hand(gold, scores >= t) for t in numpy.linspace(0.05, 0.95, 901))
        assert choice.f1 == pytest.approx(brute)
        assert f1_score(gold, scores >= choice.threshold) == pytest.approx(brute)


def _f1_by_hand(gold, pred) -> float:
    tp = sum(1 for g, p in zip(gold, pred) if g and p)
    fp = sum(1 for g, p in zip(gold, pred) if not g and p)
    fn = sum(1 for g, p in zip(gold, pred) if g and not p)
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def test_f1_at_thresholds_against_sklearn() -> None:
    rng = numpy.random.default_rng(0)
    scores = rng.random(50)
    gold = rng.random(50) < 0.4
    ts = numpy.asarray([0.0, 0.2, 0.5, 0.77, 1.0])
    ours = f1_at_thresholds(scores, gold, ts)
    theirs = [f1_score(gold, scores >= t, zero_division=0) for t in ts]
    assert ours == pytest.approx(theirs)


@pytest.mark.parametrize("true_t", [0.5, 2.5])
def test_temperature_recovers_known_scale_multiclass(true_t: float) -> None:
    rng = numpy.random.default_rng(1)
    z = rng.normal(size=(20000, 4)) * 2.0  # a calibrated model's logits
    p = numpy.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    labels = (p.cumsum(axis=1) > rng.random((len(p), 1))).argmax(axis=1)
    truths = numpy.eye(4)[labels]
    masks = numpy.ones_like(truths)
    fitted = fit_temperature(True, z * true_t, truths, masks)
    assert fitted == pytest.approx(true_t, rel=0.05)


@pytest.mark.parametrize("true_t", [0.4, 3.0])
def test_temperature_recovers_known_scale_multilabel(true_t: float) -> None:
    rng = numpy.random.default_rng(2)
    z = rng.normal(size=(8000, 3)) * 2.0
    truths = (rng.random(z.shape) < 1 / (1 + numpy.exp(-z))).astype("f")
    masks = (rng.random(z.shape) < 0.8).astype("f")  # missing pairs must not count
    truths_noisy = truths.copy()
    truths_noisy[masks == 0] = 1.0 - truths_noisy[masks == 0]
    fitted = fit_temperature(False, z * true_t, truths_noisy, masks)
    assert fitted == pytest.approx(true_t, rel=0.05)


def test_group_nll_matches_torch() -> None:
    rng = numpy.random.default_rng(4)
    x = rng.normal(size=(7, 3)) * 3
    y_idx = rng.integers(0, 3, size=7)
    y = numpy.eye(3)[y_idx]
    mask = numpy.ones_like(y)
    mask[[1, 4]] = 0
    keep = mask[:, 0] > 0
    t = 1.7
    expected = torch.nn.functional.cross_entropy(
        torch.tensor(x[keep] / t), torch.tensor(y_idx[keep])
    ).item()
    assert group_nll(True, x, y, mask, t) == pytest.approx(expected)
    yb = (rng.random((7, 3)) < 0.5).astype("f8")
    mb = (rng.random((7, 3)) < 0.7).astype("f8")
    expected_bce = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor(x / t)[mb > 0], torch.tensor(yb)[mb > 0]
    ).item()
    assert group_nll(False, x, yb, mb, t) == pytest.approx(expected_bce)


def test_temperature_none_when_nothing_annotated() -> None:
    x = numpy.zeros((3, 2))
    assert fit_temperature(True, x, numpy.zeros((3, 2)), numpy.zeros((3, 2))) is None
    assert fit_temperature(False, x, numpy.zeros((3, 2)), numpy.zeros((3, 2))) is None


def _ece_by_hand(probs, outcomes, n_bins=15):
    """Straightforward loop: bins (lo, hi], 0 goes into the first bin."""
    total, n = 0.0, len(probs)
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        members = [i for i, p in enumerate(probs) if (lo < p <= hi) or (b == 0 and p == 0.0)]
        if members:
            conf = sum(probs[i] for i in members) / len(members)
            acc = sum(outcomes[i] for i in members) / len(members)
            total += len(members) / n * abs(acc - conf)
    return total


def test_ece_hand_examples() -> None:
    # Every probability in its own bin: ECE is the mean |outcome − p|.
    probs = [0.1, 0.2, 0.9, 0.95, 0.5]
    outcomes = [0, 1, 1, 1, 0]
    assert expected_calibration_error(probs, outcomes) == pytest.approx(1.55 / 5)
    # 0.9 and 0.92 share the bin (13/15, 14/15]: conf .91, acc .5; 0.3 alone, gap .7.
    assert expected_calibration_error([0.9, 0.92, 0.3], [1, 0, 1]) == pytest.approx(
        2 / 3 * 0.41 + 1 / 3 * 0.7
    )
    rng = numpy.random.default_rng(5)
    p = numpy.r_[rng.random(300), 0.0, 1.0, 1 / 15, 2 / 15]  # bin edges included
    o = (rng.random(len(p)) < p).astype(float)
    assert expected_calibration_error(p, o) == pytest.approx(_ece_by_hand(list(p), list(o)))
    bins = reliability_bins(p, o)
    assert bins.counts.sum() == len(p)


def test_calibration_pairs_multiclass_and_multilabel() -> None:
    probs = numpy.asarray([[0.7, 0.2, 0.1], [0.3, 0.6, 0.1], [0.2, 0.3, 0.5]])
    truths = numpy.asarray([[1, 0, 0], [1, 0, 0], [0, 0, 0]], dtype="f")
    masks = numpy.asarray([[1, 1, 1], [1, 1, 1], [0, 0, 0]], dtype="f")
    conf, outcome = calibration_pairs(True, probs, truths, masks)
    assert conf.tolist() == pytest.approx([0.7, 0.6])
    assert outcome.tolist() == [1.0, 0.0]
    masks_ml = numpy.asarray([[1, 0, 1], [0, 0, 0], [0, 1, 0]], dtype="f")
    conf, outcome = calibration_pairs(False, probs, truths, masks_ml)
    assert conf.tolist() == pytest.approx([0.7, 0.1, 0.3])
    assert outcome.tolist() == [1.0, 0.0, 0.0]


def test_pr_curve_and_ap_against_sklearn() -> None:
    rng = numpy.random.default_rng(7)
    scores = numpy.round(rng.random(80), 1)  # ties
    gold = rng.random(80) < 0.35
    precision, recall, thresholds = precision_recall_curve(scores, gold)
    sk_p, sk_r, sk_t = sk_pr_curve(gold, scores)
    # sklearn: thresholds ascending, plus a final (P=1, R=0) point.
    assert thresholds[::-1] == pytest.approx(sk_t)
    assert precision[::-1] == pytest.approx(sk_p[:-1])
    assert recall[::-1] == pytest.approx(sk_r[:-1])
    assert average_precision(scores, gold) == pytest.approx(average_precision_score(gold, scores))
    assert average_precision(scores, numpy.zeros(80, dtype=bool)) is None


def test_multiclass_macro_f1_against_sklearn() -> None:
    rng = numpy.random.default_rng(3)
    gold = rng.integers(0, 4, size=300)
    pred = numpy.where(rng.random(300) < 0.6, gold, rng.integers(0, 3, size=300))  # 3 unpredicted
    ours = multiclass_macro_f1(gold, pred, 4)
    ref = f1_score(gold, pred, labels=[0, 1, 2, 3], average="macro", zero_division=0)
    assert ours == pytest.approx(ref, abs=1e-12)


def test_class_offsets_recover_an_underpredicted_rare_class() -> None:
    """A rare class whose probabilities are squashed: the argmax never picks it, offsets do.
    The fitted offsets are the best on a brute-force grid over two free offsets."""
    rng = numpy.random.default_rng(1)
    n = 600
    gold = rng.choice(3, size=n, p=[0.08, 0.72, 0.2])
    logits = rng.normal(size=(n, 3)) + 2.0 * numpy.eye(3)[gold]
    logits[:, 0] -= 2.5  # the rare class is under-scored
    probs = numpy.exp(logits) / numpy.exp(logits).sum(axis=1, keepdims=True)
    choice = best_class_offsets(probs, gold)
    assert choice is not None
    assert choice.macro_f1 > choice.macro_f1_before + 0.1
    assert choice.offsets[0] > 1.0
    log_p = numpy.log(probs)
    found = multiclass_macro_f1(gold, (log_p + numpy.array(choice.offsets)).argmax(axis=1), 3)
    assert found == pytest.approx(choice.macro_f1)
    grid = numpy.arange(-3.0, 3.01, 0.25)
    brute = max(
        multiclass_macro_f1(gold, (log_p + numpy.array([a, 0.0, c])).argmax(axis=1), 3)
        for a in grid
        for c in grid
    )
    assert choice.macro_f1 >= brute - 0.005


def test_class_offsets_stay_zero_when_the_argmax_is_already_best() -> None:
    gold = numpy.array([0, 1, 2, 0, 1, 2])
    probs = numpy.eye(3)[gold] * 0.8 + 0.2 / 3
    choice = best_class_offsets(probs, gold)
    assert choice is not None
    assert choice.offsets == (0.0, 0.0, 0.0) and choice.macro_f1 == choice.macro_f1_before == 1.0
    assert best_class_offsets(numpy.zeros((0, 3)), numpy.zeros(0)) is None


def test_fixed_class_offsets_stay_zero() -> None:
    """`fixed` classes keep offset 0 while the others are still fit."""
    rng = numpy.random.default_rng(1)
    n = 600
    gold = rng.choice(3, size=n, p=[0.08, 0.72, 0.2])
    logits = rng.normal(size=(n, 3)) + 2.0 * numpy.eye(3)[gold]
    logits[:, 0] -= 2.5
    probs = numpy.exp(logits) / numpy.exp(logits).sum(axis=1, keepdims=True)
    free = best_class_offsets(probs, gold)
    held = best_class_offsets(probs, gold, fixed=[True, False, False])
    assert free is not None and held is not None
    assert free.offsets[0] > 1.0 and held.offsets[0] == 0.0
    # The other classes still move (shifting class 1 down is how class 0 gains here).
    assert held.offsets != (0.0, 0.0, 0.0) and held.macro_f1 > held.macro_f1_before


@pytest.mark.parametrize(
    "t,expected",
    [
        (MIN_TEMPERATURE, True),
        (0.06, True),
        (0.07, False),
        (1.0, False),
        (15.0, False),
        (17.0, True),
        (MAX_TEMPERATURE, True),
    ],
)
def test_at_temperature_bound(t: float, expected: bool) -> None:
    assert at_temperature_bound(t) is expected


def test_separable_data_fit_runs_to_the_bound() -> None:
    # Every doc right with a margin: the NLL keeps falling as T -> 0, the fit ends near the
    # bound, and at_temperature_bound says so.
    logits = numpy.asarray([[0.4, -0.4], [-0.4, 0.4]] * 4)
    truths = numpy.asarray([[1, 0], [0, 1]] * 4, dtype="f")
    fitted = fit_temperature(True, logits, truths, numpy.ones_like(truths))
    assert fitted is not None and fitted < MIN_TEMPERATURE * 1.05
    assert at_temperature_bound(fitted)
