"""The doc pooling layer against torch autograd on the same arrays."""

import numpy
import pytest
import torch
from thinc.api import NumpyOps

from spacy_mtl.layers import doc_pooling


def _docs():
    rng = numpy.random.default_rng(0)
    return [
        rng.normal(size=(3, 4)).astype("f"),
        numpy.zeros((0, 0), dtype="f"),  # an empty doc from a transformer
        rng.normal(size=(1, 4)).astype("f"),
        rng.normal(size=(5, 4)).astype("f"),
    ]


def _torch_pool(kind: str, arrays, weights: numpy.ndarray) -> list:
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    rows = []
    for t in tensors:
        if t.shape[0] == 0:
            rows.append(torch.zeros(4))
        elif kind == "mean":
            rows.append(t.mean(dim=0))
        elif kind == "max":
            rows.append(t.max(dim=0).values)
        else:
            rows.append(t[0])
    out = torch.stack(rows)
    (out * torch.tensor(weights)).sum().backward()
    grads = [t.grad if t.grad is not None else torch.zeros_like(t) for t in tensors]
    return out.detach().numpy(), [g.numpy() for g in grads]


@pytest.mark.parametrize("kind", ["mean", "max", "first"])
def test_pooling_forward_and_backward_match_torch(kind: str) -> None:
    model = doc_pooling(kind)
    model.initialize(X=_docs())
    assert model.get_dim("nO") == 4
    Y, backprop = model(_docs(), is_train=True)
    weights = numpy.random.default_rng(1).normal(size=Y.shape).astype("f")
    ref_Y, ref_grads = _torch_pool(kind, _docs(), weights)
    numpy.testing.assert_allclose(Y, ref_Y, rtol=1e-6)
    grads = backprop(weights)
    assert [g.shape for g in grads] == [a.shape for a in _docs()]
    for got, want in zip(grads, ref_grads):
        numpy.testing.assert_allclose(got, want, rtol=1e-6)


def test_all_empty_batch_gives_zeros() -> None:
    model = doc_pooling("mean")
    model.set_dim("nO", 4)
    Y, backprop = model([numpy.zeros((0, 0), dtype="f")] * 2, is_train=True)
    assert Y.shape == (2, 4) and not Y.any()
    assert [g.shape for g in backprop(Y)] == [(0, 0), (0, 0)]
    assert isinstance(model.ops, NumpyOps)


def test_unknown_pooling() -> None:
    with pytest.raises(ValueError, match="Pooling 'sum'"):
        doc_pooling("sum")
