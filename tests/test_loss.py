"""The loss and its gradient against torch's own definitions on the same numbers."""

import math

import numpy
import pytest
import torch
import torch.nn.functional as F

from spacy_mtl.loss import activate, activate_group, group_loss, multiclass_loss, multilabel_loss
from spacy_mtl.schema import GroupSchema


def _rng_logits(n: int, k: int, seed: int, scale: float = 3.0) -> numpy.ndarray:
    return (numpy.random.default_rng(seed).normal(size=(n, k)) * scale).astype("f")


def _torch_grad(fn, logits: numpy.ndarray):
    x = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    loss = fn(x)
    loss.backward()
    return float(loss.detach()), x.grad.numpy()


@pytest.mark.parametrize("with_weights", [False, True])
def test_multiclass_matches_torch_cross_entropy(with_weights: bool) -> None:
    logits = _rng_logits(7, 4, seed=1)
    y = numpy.array([0, 3, 1, 1, 2, 0, 3])
    annotated = numpy.array([1, 1, 0, 1, 1, 0, 1], dtype="f")
    truths = numpy.eye(4, dtype="f")[y] * annotated[:, None]
    weights = numpy.array([0.5, 2.0, 1.0, 3.0], dtype="f") if with_weights else None
    loss, grad = multiclass_loss(numpy, logits, truths, annotated, weights)

    target = torch.tensor(numpy.where(annotated > 0, y, -100))
    w = None if weights is None else torch.tensor(weights, dtype=torch.float64)
    ref_loss, ref_grad = _torch_grad(
        lambda x: F.cross_entropy(x, target, weight=w, ignore_index=-100), logits
    )
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    numpy.testing.assert_allclose(grad, ref_grad, rtol=1e-4, atol=1e-6)
    # Unannotated rows get no gradient at all.
    assert not grad[annotated == 0].any()


def _torch_bce(x, truths, mask, pos_weight, reduction: str) -> torch.Tensor:
    """torch's BCE with logits over the annotated pairs, reduced per doc or per pair."""
    y = torch.tensor(truths, dtype=torch.float64)
    keep = torch.tensor(mask > 0)
    pw = None if pos_weight is None else torch.tensor(pos_weight, dtype=torch.float64)
    if reduction == "pair":
        full = F.binary_cross_entropy_with_logits(x, y, pos_weight=pw, reduction="none")
        return full[keep].mean()
    # "doc": the sum over the annotated pairs ÷ the number of docs with any annotated pair,
    # written with reduction="sum" on the selected pairs, as the design states it.
    n_docs = int(keep.any(dim=1).sum())
    rows, cols = keep.nonzero(as_tuple=True)
    pw_pairs = None if pw is None else pw[cols]
    total = F.binary_cross_entropy_with_logits(
        x[rows, cols], y[rows, cols], pos_weight=pw_pairs, reduction="sum"
    )
    return total / n_docs


@pytest.mark.parametrize("reduction", ["doc", "pair"])
@pytest.mark.parametrize("with_pos_weight", [False, True])
def test_multilabel_matches_torch_bce_with_logits(with_pos_weight: bool, reduction: str) -> None:
    logits = _rng_logits(6, 5, seed=2)
    rng = numpy.random.default_rng(3)
    truths = (rng.random((6, 5)) > 0.6).astype("f")
    mask = (rng.random((6, 5)) > 0.3).astype("f")
    mask[4] = 0.0  # a doc with no annotated label: it must not count in either mean
    pos_weight = numpy.array([1.0, 3.0, 0.5, 2.0, 1.0], dtype="f") if with_pos_weight else None
    loss, grad = multilabel_loss(numpy, logits, truths * mask, mask, pos_weight, reduction)
    ref_loss, ref_grad = _torch_grad(
        lambda x: _torch_bce(x, truths, mask, pos_weight, reduction), logits
    )
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    numpy.testing.assert_allclose(grad, ref_grad, rtol=1e-4, atol=1e-6)
    assert not grad[4].any()


def test_doc_reduction_is_pair_reduction_times_annotated_labels_per_doc() -> None:
    # With every label of every doc annotated, "doc" = K x "pair" (the scale it restores).
    logits = _rng_logits(5, 28, seed=7)
    truths = (numpy.random.default_rng(8).random((5, 28)) > 0.9).astype("f")
    mask = numpy.ones_like(truths)
    doc, _ = multilabel_loss(numpy, logits, truths, mask, None, "doc")
    pair, _ = multilabel_loss(numpy, logits, truths, mask, None, "pair")
    assert doc == pytest.approx(28 * pair, rel=1e-5)
    with pytest.raises(ValueError, match="reduction"):
        multilabel_loss(numpy, logits, truths, mask, None, "mean")


@pytest.mark.parametrize("reduction", ["doc", "pair"])
def test_group_loss_is_weighted_sum_and_matches_torch(reduction: str) -> None:
    schema = GroupSchema.from_config(
        {
            "a": {"kind": "multiclass", "labels": ["x", "y", "z"], "weight": 0.7},
            "b": {
                "kind": "multilabel",
                "labels": ["p", "q"],
                "weight": 4.0,
                "reduction": reduction,
            },
        }
    )
    logits = _rng_logits(4, 5, seed=4)
    truths = numpy.array(
        [[1, 0, 0, 1, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 1], [0, 1, 0, 0, 0]], dtype="f"
    )
    mask = numpy.array(
        [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0], [0, 0, 0, 1, 1], [1, 1, 1, 0, 0]], dtype="f"
    )
    result = group_loss(numpy, schema, logits, truths, mask)

    def reference(x: torch.Tensor) -> torch.Tensor:
        y_a = torch.tensor([0, 2, -100, 1])
        ce = F.cross_entropy(x[:, :3], y_a, ignore_index=-100)
        bce = _torch_bce(x[:, 3:], truths[:, 3:], mask[:, 3:], None, reduction)
        return 0.7 * ce + 4.0 * bce

    ref_loss, ref_grad = _torch_grad(reference, logits)
    assert result.total == pytest.approx(ref_loss, rel=1e-5)
    numpy.testing.assert_allclose(result.d_logits, ref_grad, rtol=1e-4, atol=1e-6)
    assert result.total == pytest.approx(
        0.7 * result.per_group["a"] + 4.0 * result.per_group["b"], rel=1e-6
    )


def test_nothing_annotated_gives_zero_loss_and_gradient() -> None:
    schema = GroupSchema.from_config(
        {
            "a": {"kind": "multiclass", "labels": ["x", "y"]},
            "b": {"kind": "multilabel", "labels": ["p"]},
        }
    )
    logits = _rng_logits(3, 3, seed=5)
    zeros = numpy.zeros_like(logits)
    result = group_loss(numpy, schema, logits, zeros, zeros)
    assert result.total == 0.0
    assert result.per_group == {"a": 0.0, "b": 0.0}
    assert not result.d_logits.any()


def test_extreme_logits_are_finite() -> None:
    logits = numpy.array([[1e4, -1e4, 0.0, 1e4, -1e4]], dtype="f")
    schema = GroupSchema.from_config(
        {
            "a": {"kind": "multiclass", "labels": ["x", "y", "z"]},
            "b": {"kind": "multilabel", "labels": ["p", "q"]},
        }
    )
    truths = numpy.array([[0, 1, 0, 0, 1]], dtype="f")
    mask = numpy.ones_like(truths)
    result = group_loss(numpy, schema, logits, truths, mask)
    assert numpy.isfinite(result.total)
    assert numpy.isfinite(result.d_logits).all()
    # CE: the gold class is 2e4 below the top logit; BCE ("doc"): both labels wrong by 1e4,
    # summed over the doc's two labels.
    assert result.total == pytest.approx(4e4, rel=1e-4)
    scores = activate(numpy, schema, logits)
    assert numpy.isfinite(scores).all()
    assert scores[0, :3].sum() == pytest.approx(1.0)


def test_activate_matches_torch_with_temperature() -> None:
    schema = GroupSchema.from_config(
        {
            "a": {"kind": "multiclass", "labels": ["x", "y", "z"], "temperature": 2.0},
            "b": {"kind": "multilabel", "labels": ["p", "q"], "temperature": 0.5},
        }
    )
    logits = _rng_logits(5, 5, seed=6)
    scores = activate(numpy, schema, logits)
    x = torch.tensor(logits)
    numpy.testing.assert_allclose(scores[:, :3], torch.softmax(x[:, :3] / 2.0, dim=1), rtol=1e-5)
    numpy.testing.assert_allclose(scores[:, 3:], torch.sigmoid(x[:, 3:] / 0.5), rtol=1e-5)


@pytest.mark.parametrize("temperature", [None, 1.0, 3.0])
@pytest.mark.parametrize("order", ["contiguous", "interleaved", "one kind"])
def test_activate_equals_each_groups_activation(order: str, temperature: object) -> None:
    """One sigmoid over all multilabel columns (a slice or an index) gives each group's own
    activation exactly, and torch's to float rounding."""
    groups = {
        "ml1": {"kind": "multilabel", "labels": ["a", "b", "c"], "temperature": 0.5},
        "mc1": {"kind": "multiclass", "labels": ["x", "y"]},
        "ml2": {"kind": "multilabel", "labels": ["p", "q"]},
        "mc2": {"kind": "multiclass", "labels": ["u", "v", "w"], "temperature": 2.0},
    }
    names = {
        "contiguous": ["ml1", "ml2", "mc1", "mc2"],
        "interleaved": ["ml1", "mc1", "ml2", "mc2"],
        "one kind": ["ml1", "ml2"],
    }[order]
    schema = GroupSchema.from_config({name: groups[name] for name in names})
    layout = schema.activation_layout
    assert isinstance(layout.sigmoid_columns, numpy.ndarray) == (order == "interleaved")
    logits = _rng_logits(6, schema.n_labels, seed=9) * 4
    scores = activate(numpy, schema, logits, temperature=temperature)  # type: ignore[arg-type]
    assert scores.dtype == logits.dtype
    for group, start, end in schema.slices():
        t = group.temperature if temperature is None else temperature
        expected = activate_group(numpy, group.is_multiclass, logits[:, start:end], t)
        numpy.testing.assert_array_equal(scores[:, start:end], expected)
        x = torch.tensor(logits[:, start:end]) / t
        theirs = torch.softmax(x, dim=1) if group.is_multiclass else torch.sigmoid(x)
        numpy.testing.assert_allclose(scores[:, start:end], theirs, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("reduction", ["doc", "pair"])
def test_uncertainty_weighting_matches_torch(reduction: str) -> None:
    """Σ_g exp(−s_g)·w_g·L_g + s_g/2 and its gradients on logits and s, by torch autograd."""
    schema = GroupSchema.from_config(
        {
            "a": {"kind": "multiclass", "labels": ["x", "y", "z"], "weight": 0.7},
            "b": {
                "kind": "multilabel",
                "labels": ["p", "q"],
                "weight": 2.0,
                "reduction": reduction,
            },
        }
    )
    logits = _rng_logits(4, 5, seed=5)
    truths = numpy.array(
        [[1, 0, 0, 1, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 1], [0, 1, 0, 0, 0]], dtype="f"
    )
    mask = numpy.array(
        [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0], [0, 0, 0, 1, 1], [1, 1, 1, 0, 0]], dtype="f"
    )
    log_vars = [0.4, -0.9]
    result = group_loss(numpy, schema, logits, truths, mask, log_vars)

    x = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    s = torch.tensor(log_vars, dtype=torch.float64, requires_grad=True)
    ce = F.cross_entropy(x[:, :3], torch.tensor([0, 2, -100, 1]), ignore_index=-100)
    bce = _torch_bce(x[:, 3:], truths[:, 3:], mask[:, 3:], None, reduction)
    total = torch.exp(-s[0]) * 0.7 * ce + s[0] / 2 + torch.exp(-s[1]) * 2.0 * bce + s[1] / 2
    total.backward()
    assert result.total == pytest.approx(float(total.detach()), rel=1e-5)
    numpy.testing.assert_allclose(result.d_logits, x.grad.numpy(), rtol=1e-4, atol=1e-6)
    numpy.testing.assert_allclose(result.d_log_vars, s.grad.numpy(), rtol=1e-5, atol=1e-7)
    # At s = 0 the weighted part is the fixed weighting's total.
    fixed = group_loss(numpy, schema, logits, truths, mask)
    at_zero = group_loss(numpy, schema, logits, truths, mask, [0.0, 0.0])
    assert at_zero.total == pytest.approx(fixed.total, rel=1e-6)
    numpy.testing.assert_allclose(at_zero.d_logits, fixed.d_logits, rtol=1e-6)


def test_uncertainty_weighting_leaves_an_absent_group_alone() -> None:
    """A group with nothing annotated in the batch adds no s/2 term and gets no gradient."""
    schema = GroupSchema.from_config(
        {
            "a": {"kind": "multiclass", "labels": ["x", "y"]},
            "b": {"kind": "multilabel", "labels": ["p", "q"]},
        }
    )
    logits = _rng_logits(3, 4, seed=6)
    truths = numpy.array([[1, 0, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0]], dtype="f")
    mask = numpy.array([[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0]], dtype="f")
    result = group_loss(numpy, schema, logits, truths, mask, [0.3, 1.5])
    assert result.d_log_vars[1] == 0.0
    assert result.d_log_vars[0] != 0.0
    only_a = math.exp(-0.3) * result.per_group["a"] + 0.15
    assert result.total == pytest.approx(only_a, rel=1e-6)
    assert not result.d_logits[:, 2:].any()
    with pytest.raises(ValueError, match="log_vars has 1 values for 2 groups"):
        group_loss(numpy, schema, logits, truths, mask, [0.0])
