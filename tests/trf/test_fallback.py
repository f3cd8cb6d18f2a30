"""Each private torch API behind a public fallback: replaced by one that raises (as a changed
signature after a torch upgrade would), the pipeline still predicts the same scores, with
one warning."""

import warnings
from pathlib import Path

import numpy
import pytest
import torch
from test_transformer import TEXTS, make_pipeline, scores

from spacy_mtl.errors import MTLWarning
from spacy_mtl.trf.fallback import INT8_FULL_RANGE, ONEDNN_LINEAR
from spacy_mtl.trf.onednn import onednn_available


@pytest.fixture(autouse=True)
def fresh_fallbacks():
    ONEDNN_LINEAR.reset()
    INT8_FULL_RANGE.reset()
    yield
    ONEDNN_LINEAR.reset()
    INT8_FULL_RANGE.reset()


def _raising(name: str):
    def broken(*args, **kwargs):
        raise RuntimeError(f"{name}() got an unexpected keyword argument (simulated)")

    return broken


@pytest.mark.skipif(not onednn_available(), reason="this torch has no oneDNN linear kernels")
@pytest.mark.parametrize("op", ["_reorder_linear_weight", "_linear_pointwise"])
def test_onednn_operator_that_raises_falls_back_to_nn_linear(
    tiny_bert: Path, monkeypatch, op: str
) -> None:
    reference = scores(list(make_pipeline(tiny_bert, onednn=False).pipe(TEXTS, batch_size=4)))
    monkeypatch.setattr(torch.ops.mkldnn, op, _raising(op))
    with pytest.warns(MTLWarning, match="oneDNN") as record:
        nlp = make_pipeline(tiny_bert)  # onednn = true, the default
        got = scores(list(nlp.pipe(TEXTS, batch_size=4)))
        again = scores([nlp(text) for text in TEXTS])
    assert len([w for w in record if issubclass(w.category, MTLWarning)]) == 1
    assert op in str(record[0].message) or "simulated" in str(record[0].message)
    numpy.testing.assert_allclose(got, reference, atol=1e-4)
    numpy.testing.assert_allclose(again, reference, atol=1e-4)
    # A new pipeline in the same process does not try again (and does not warn again).
    with warnings.catch_warnings():
        warnings.simplefilter("error", MTLWarning)
        fresh = make_pipeline(tiny_bert)
        numpy.testing.assert_allclose(scores(list(fresh.pipe(TEXTS))), reference, atol=1e-4)
    assert fresh.get_pipe("transformer").model.layers[0].shims[0].mtl_onednn is False


def test_int8_full_range_operator_that_raises_falls_back_to_torch_int8(monkeypatch) -> None:
    from spacy_mtl.trf.torch_int8 import FullRangeLinear, quantize_dynamic_int8

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))
    x = torch.randn(5, 16)
    full = quantize_dynamic_int8(module, reduce_range=False)
    seven_bit = quantize_dynamic_int8(module, reduce_range=True)
    assert isinstance(full[0], FullRangeLinear)
    original = torch.ops.quantized.linear_dynamic

    def broken_unless_torch_default(x, params, reduce_range=True):
        if not reduce_range:
            raise RuntimeError("linear_dynamic(): unexpected argument (simulated)")
        return original(x, params, reduce_range=reduce_range)

    expected = seven_bit(x)
    monkeypatch.setattr(torch.ops.quantized, "linear_dynamic", broken_unless_torch_default)
    with pytest.warns(MTLWarning, match="8-bit activations") as record:
        got = full(x)
    assert len(record) == 1
    # The fallback is torch's own int8 layer: its numbers exactly, and near fp32.
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got, module(x), atol=0.05, rtol=0.05)


@pytest.mark.parametrize("broken", ["raises", "missing"])
def test_vnni_check_that_breaks_means_torch_default_7_bit_activations(
    monkeypatch, broken: str
) -> None:
    """`torch.cpu._is_vnni_supported` is private: when it raises or is gone, int8 layers
    take torch's own 7-bit activations (the public DynamicLinear), never the 8-bit path."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    from spacy_mtl.trf.torch_int8 import FullRangeLinear, full_range_is_safe, quantize_dynamic_int8

    if broken == "raises":
        monkeypatch.setattr(torch.cpu, "_is_vnni_supported", _raising("_is_vnni_supported"))
    else:
        monkeypatch.delattr(torch.cpu, "_is_vnni_supported", raising=False)
    assert full_range_is_safe() is False
    quantized = quantize_dynamic_int8(torch.nn.Sequential(torch.nn.Linear(8, 4)))
    assert type(quantized[0]) is DynamicLinear and not isinstance(quantized[0], FullRangeLinear)
