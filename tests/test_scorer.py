"""Scores against scikit-learn on the same predictions, with missing labels left out."""

import numpy
import pytest
from sklearn.metrics import f1_score, precision_recall_fscore_support, roc_auc_score

from spacy_mtl.schema import GroupSchema
from spacy_mtl.scorer import roc_auc, score_arrays

SCHEMA = GroupSchema.from_config(
    {
        "s": {"kind": "multiclass", "labels": ["a", "b", "c"], "weight": 1.0},
        "e": {"kind": "multilabel", "labels": ["p", "q"], "weight": 3.0, "threshold": {"q": 0.3}},
    },
    threshold=0.5,
)


def _data(n: int = 60, seed: int = 0):
    rng = numpy.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    truths = numpy.zeros((n, 5), dtype="f")
    truths[numpy.arange(n), y] = 1.0
    truths[:, 3:] = rng.random((n, 2)) > 0.5
    masks = numpy.ones((n, 5), dtype="f")
    masks[: n // 4, :3] = 0.0  # a quarter of the docs lack the multiclass group
    masks[n // 2 :, 4] = 0.0  # half lack label q
    truths *= masks
    scores = rng.random((n, 5)).astype("f")
    scores[:, :3] /= scores[:, :3].sum(axis=1, keepdims=True)
    # Make predictions informative so the scores are not all near chance.
    scores[:, :3] += truths[:, :3] * 0.5
    scores[:, 3:] = numpy.clip(scores[:, 3:] * 0.6 + truths[:, 3:] * 0.4, 0, 1)
    return truths, masks, scores, y


def test_multiclass_scores_match_sklearn() -> None:
    truths, masks, scores, y = _data()
    result = score_arrays(SCHEMA, truths, masks, scores)
    keep = masks[:, 0] > 0
    gold, pred = y[keep], scores[keep, :3].argmax(axis=1)
    p, r, f, _ = precision_recall_fscore_support(gold, pred, labels=[0, 1, 2], zero_division=0)
    assert result["mtl_s_acc"] == pytest.approx(float((gold == pred).mean()))
    assert result["mtl_s_macro_f"] == pytest.approx(float(f.mean()))
    assert result["mtl_s_macro_p"] == pytest.approx(float(p.mean()))
    assert result["mtl_s_f_per_type"]["b"]["r"] == pytest.approx(float(r[1]))


def test_multilabel_scores_match_sklearn_on_annotated_pairs() -> None:
    truths, masks, scores, _ = _data()
    result = score_arrays(SCHEMA, truths, masks, scores)
    per_label_f, aucs = [], []
    tp = fp = fn = 0
    for j, threshold in ((3, 0.5), (4, 0.3)):
        keep = masks[:, j] > 0
        gold, pred = truths[keep, j] > 0, scores[keep, j] >= threshold
        per_label_f.append(f1_score(gold, pred, zero_division=0))
        aucs.append(roc_auc_score(gold, scores[keep, j]))
        tp += int((gold & pred).sum())
        fp += int((~gold & pred).sum())
        fn += int((gold & ~pred).sum())
    assert result["mtl_e_macro_f"] == pytest.approx(numpy.mean(per_label_f))
    assert result["mtl_e_micro_f"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert result["mtl_e_macro_auc"] == pytest.approx(numpy.mean(aucs))
    assert result["mtl_e_auc_per_type"]["q"] == pytest.approx(aucs[1])
    expected = (1.0 * result["mtl_s_macro_f"] + 3.0 * result["mtl_e_macro_f"]) / 4.0
    assert result["mtl_score"] == pytest.approx(expected)


def test_scores_are_plain_floats_or_none() -> None:
    truths, masks, scores, _ = _data()
    masks[:, :3] = 0.0
    result = score_arrays(SCHEMA, truths * masks, masks, scores)
    assert result["mtl_s_macro_f"] is None and result["mtl_s_acc"] is None
    assert result["mtl_score"] == pytest.approx(result["mtl_e_macro_f"])

    def check(value):
        if isinstance(value, dict):
            for v in value.values():
                check(v)
        else:
            assert value is None or type(value) is float

    check(result)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_auc_matches_sklearn_with_ties(seed: int) -> None:
    rng = numpy.random.default_rng(seed)
    gold = rng.random(200) > 0.7
    scores = numpy.round(rng.random(200) + gold * 0.3, 1)  # many ties
    assert roc_auc(gold, scores) == pytest.approx(roc_auc_score(gold, scores))
    assert roc_auc(numpy.ones(5, bool), numpy.arange(5.0)) is None
