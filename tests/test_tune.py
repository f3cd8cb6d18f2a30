"""tune: thresholds, temperature scaling and ECE against independent computations."""

import math

import numpy
import pytest
import spacy
import torch
from conftest import GROUPS, TRAIN_DATA, make_examples, make_nlp
from sklearn.metrics import f1_score

from spacy_mtl.calibration import (
    apply_temperature,
    best_threshold,
    calibration_pairs,
    expected_calibration_error,
    f1_at_thresholds,
    fit_temperature,
    group_nll,
    reliability_bins,
)
from spacy_mtl.gold import GoldReader
from spacy_mtl.schema import GroupSchema
from spacy_mtl.tune import collect_logits, read_gold, tune_arrays, tune_pipeline

# -- thresholds -------------------------------------------------------------------------


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


def test_label_without_positives_keeps_default() -> None:
    schema = GroupSchema.from_config(
        {"emotion": {"kind": "multilabel", "labels": ["joy", "anger", "rare"]}}
    )
    logits = numpy.asarray([[2.0, -1.0, -3.0], [-2.0, 1.5, -2.0], [0.3, -0.2, -1.0], [-1, 2, 0]])
    truths = numpy.asarray([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0]], dtype="f")
    masks = numpy.ones_like(truths)
    masks[3, 2] = 0  # the last label is missing for one doc; still no positive anywhere
    new, results = tune_arrays(schema, logits, truths, masks, temperatures=False)
    group = new["emotion"]
    assert "rare" not in group.thresholds
    assert group.threshold_for("rare", new.threshold) == 0.5
    assert set(group.thresholds) == {"joy", "anger"}
    assert results[0].labels["rare"].tuned is False
    assert results[0].labels["joy"].tuned is True
    assert results[0].labels["rare"].n_annotated == 3


# -- temperature ------------------------------------------------------------------------


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


# -- ECE --------------------------------------------------------------------------------


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


# -- on a pipeline ----------------------------------------------------------------------


def _trained(bert=None, steps: int = 6):
    nlp = make_nlp(GROUPS, bert=bert)
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(steps):
        nlp.update(examples, sgd=optimizer)
    return nlp, examples


def test_tune_save_load_round_trip(tiny_bert, tmp_path) -> None:
    nlp, examples = _trained(tiny_bert, steps=4)
    comp = nlp.get_pipe("mtl_textcat")
    texts = [text for text, _ in TRAIN_DATA]
    # The listener path: logits collected for tuning are the pipeline's own.
    logits = collect_logits(nlp, texts, batch_size=4)
    probs = numpy.asarray([[doc.cats[k] for k in comp.schema.keys] for doc in nlp.pipe(texts)])
    assert apply_temperature(False, logits, 1.0)[:, 3:] == pytest.approx(probs[:, 3:], abs=1e-5)

    result = tune_pipeline(nlp, examples, floor=0.6, ceiling=0.9, batch_size=4)
    schema = comp.schema
    assert schema is result.schema
    assert all(0.6 <= t <= 0.9 for t in schema["emotion"].thresholds.values())
    assert set(schema["emotion"].thresholds) == {"joy", "anger", "sadness"}
    assert schema["sentiment"].temperature == result.groups[0].temperature != 1.0
    # Temperature scaling never raises the dev NLL it minimises.
    for group in result.groups:
        assert group.nll_after <= group.nll_before + 1e-9
    out = tmp_path / "tuned"
    nlp.to_disk(out)
    loaded = spacy.load(out)
    loaded_schema = loaded.get_pipe("mtl_textcat").schema
    # srsly's JSON reader may return a float one ulp off (0.6 → 0.6000000000000001).
    for name in ("sentiment", "emotion"):
        assert loaded_schema[name].temperature == pytest.approx(schema[name].temperature)
    emotion = loaded_schema["emotion"]
    assert emotion.thresholds == pytest.approx(schema["emotion"].thresholds)
    for doc, logit_row in zip(loaded.pipe(texts), logits):
        scores = doc._.mtl_scores["emotion"]
        expected = apply_temperature(False, logit_row[3:], emotion.temperature)
        assert list(scores.values()) == pytest.approx(expected.tolist(), abs=1e-5)
        chosen = [lab for lab, s in scores.items() if s >= emotion.thresholds[lab]]
        assert doc._.mtl_labels["emotion"] == chosen


def test_tune_pipeline_errors() -> None:
    nlp, examples = _trained(steps=1)
    with pytest.raises(ValueError, match="no component 'nope'"):
        tune_pipeline(nlp, examples, component="nope")
    with pytest.raises(ValueError, match="no dev examples"):
        tune_pipeline(nlp, [])
    with pytest.raises(ValueError, match="min-threshold"):
        tune_pipeline(nlp, examples, floor=0.9, ceiling=0.1)


def test_read_gold_ignores_other_components_groups() -> None:
    schema = GroupSchema.from_config({"sentiment": GROUPS["sentiment"]})
    nlp = make_nlp(GROUPS)
    examples = make_examples(nlp)
    truths, masks = read_gold(schema, examples)
    reader = GoldReader(schema)
    expected_t, expected_m = reader.read_batch(
        ({k: v for k, v in cats.items() if k.startswith("sentiment/")}, text)
        for text, cats in TRAIN_DATA
    )
    assert numpy.array_equal(truths, expected_t) and numpy.array_equal(masks, expected_m)
    assert math.isclose(float(masks[:, 0].sum()), 5.0)


def test_temperature_at_bound_is_flagged() -> None:
    # Every doc classified right with a wide margin: the NLL keeps falling as T → 0.
    schema = GroupSchema.from_config({"s": {"kind": "multiclass", "labels": ["a", "b"]}})
    logits = numpy.asarray([[3.0, -3.0], [-2.0, 2.0], [4.0, 0.0]])
    truths = numpy.asarray([[1, 0], [0, 1], [1, 0]], dtype="f")
    new, results = tune_arrays(schema, logits, truths, numpy.ones_like(truths))
    assert results[0].temperature_at_bound is True
    assert new["s"].temperature < 0.1
    # Mixed outcomes pin T down inside the bounds.
    truths[2] = [0, 1]
    _, results = tune_arrays(schema, logits, truths, numpy.ones_like(truths))
    assert results[0].temperature_at_bound is False
