"""spacy_mtl.trf.onednn: linear layers through oneDNN with packed weights for CPU inference, and
the `mtl_transformer` component that runs its encoder that way (`onednn = true`)."""

import copy
import pickle
from pathlib import Path

import numpy
import pytest
import torch
from conftest import make_examples
from test_transformer import TEXTS, make_pipeline, scores
from thinc.api import Adam

from spacy_mtl.trf.onednn import PackedLinear, onednn_available, packed_clone
from spacy_mtl.trf.serving import _PACKED

pytestmark = pytest.mark.skipif(
    not onednn_available(), reason="this torch has no oneDNN linear kernels (not x86)"
)


def linear(n_in: int = 24, n_out: int = 40, bias: bool = True) -> torch.nn.Linear:
    torch.manual_seed(0)
    return torch.nn.Linear(n_in, n_out, bias=bias)


@pytest.mark.parametrize("shape", [(5, 24), (3, 7, 24), (2, 0, 24)])
@pytest.mark.parametrize("bias", [True, False])
def test_packed_linear_equals_torch_linear(shape: tuple, bias: bool) -> None:
    """The same numbers as torch's own `F.linear` on the same weights (2-D, 3-D, empty)."""
    layer = linear(bias=bias)
    packed = PackedLinear(layer)
    x = torch.randn(shape)
    with torch.inference_mode():
        got = packed(x)
        expected = torch.nn.functional.linear(x, layer.weight, layer.bias)
    assert got.shape == expected.shape == (*shape[:-1], 40)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert packed._versions  # it took the packed path
    # A non-contiguous input (a transposed view).
    xt = torch.randn(7, 3, 24).transpose(0, 1)
    with torch.inference_mode():
        torch.testing.assert_close(packed(xt), layer(xt), rtol=1e-5, atol=1e-5)


def test_packed_linear_repacks_when_the_weights_change() -> None:
    """In place through torch (an optimizer step, load_state_dict), a new storage (`.data =`)
    and a new parameter: each time the output follows the new weights."""
    layer = linear()
    packed = PackedLinear(layer)
    x = torch.randn(4, 24)

    def check() -> None:
        with torch.inference_mode():
            torch.testing.assert_close(packed(x), layer(x), rtol=1e-5, atol=1e-5)

    check()
    with torch.no_grad():
        layer.weight.mul_(2.0)
        layer.bias.add_(1.0)
    check()
    layer.load_state_dict({"weight": torch.randn(40, 24), "bias": torch.randn(40)})
    check()
    layer.weight.data = torch.randn(40, 24)
    check()
    layer.weight = torch.nn.Parameter(torch.randn(40, 24))
    check()


def test_packed_linear_runs_the_layer_itself_with_gradients_or_other_dtypes() -> None:
    """With gradients on, the original layer runs (the packed weights have no autograd):
    the gradient is torch's own. float64 inputs also run the original layer."""
    layer = linear()
    packed = PackedLinear(layer)
    x = torch.randn(4, 24)
    packed(x).sum().backward()
    grad = layer.weight.grad.clone()
    layer.weight.grad = None
    layer(x).sum().backward()
    torch.testing.assert_close(grad, layer.weight.grad)
    assert not packed._versions  # never packed
    double = torch.nn.Linear(24, 40).double()
    with torch.inference_mode():
        x64 = torch.randn(4, 24, dtype=torch.float64)
        assert PackedLinear(double)(x64).dtype == torch.float64


def test_packed_clone_shares_everything_but_the_linear_layers(tiny_bert: Path) -> None:
    """The clone of a BERT: linear layers replaced (wrapping the originals), every other
    submodule the original object, the original untouched (its state_dict keys and
    modules), the clone in eval mode, and its output the original's to 1e-5."""
    from transformers import BertModel

    model = BertModel.from_pretrained(str(tiny_bert)).eval()
    keys = list(model.state_dict())
    original_linears = [m for m in model.modules() if type(m) is torch.nn.Linear]
    clone = packed_clone(model)
    assert clone is not model
    packed = [m for m in clone.modules() if isinstance(m, PackedLinear)]
    assert [m.linear for m in packed] == original_linears
    inner = [m for m in clone.modules() if type(m) is torch.nn.Linear]
    assert inner == original_linears  # only the wrapped originals
    assert clone.embeddings is model.embeddings
    assert clone.encoder.layer[0].attention.output.LayerNorm is (
        model.encoder.layer[0].attention.output.LayerNorm
    )
    assert list(model.state_dict()) == keys
    assert all(type(m) is not PackedLinear for m in model.modules())
    assert not any(m.training for m in clone.modules())
    ids = torch.randint(5, 60, (3, 9))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    with torch.inference_mode():
        expected = model(input_ids=ids, attention_mask=mask).last_hidden_state
        got = clone(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # A module with no linear layer is returned as it is.
    norm = torch.nn.LayerNorm(4)
    assert packed_clone(norm) is norm


def test_pipeline_scores_equal_the_stock_forward(tiny_bert: Path) -> None:
    """`onednn = true` (the default) gives the scores of `onednn = false` to 1e-5, through
    `nlp.pipe` and `nlp(text)`, and runs the packed copy (whose linear layers wrap the
    encoder's own) while the encoder's own Linear modules do the arithmetic only with
    `onednn = false`."""
    fast = make_pipeline(tiny_bert)
    slow = make_pipeline(tiny_bert, onednn=False)
    shim = fast.get_pipe("transformer").model.layers[0].shims[0]
    assert shim.mtl_onednn is True
    assert slow.get_pipe("transformer").model.layers[0].shims[0].mtl_onednn is False
    numpy.testing.assert_allclose(
        scores(list(fast.pipe(TEXTS, batch_size=4))),
        scores(list(slow.pipe(TEXTS, batch_size=4))),
        atol=1e-5,
    )
    numpy.testing.assert_allclose(
        scores([fast(text) for text in TEXTS]), scores([slow(text) for text in TEXTS]), atol=1e-5
    )
    encoder, clone = _PACKED[shim]
    assert encoder is shim._model
    linears = [m for m in encoder.modules() if type(m) is torch.nn.Linear]
    assert linears and all(m._versions for m in clone.modules() if isinstance(m, PackedLinear))
    assert [m.linear for m in clone.modules() if isinstance(m, PackedLinear)] == linears


def test_updates_reach_the_packed_weights(tiny_bert: Path) -> None:
    """After nlp.update (thinc's optimizer writes torch's weights through numpy, which no
    tensor version shows), predictions follow the new weights: equal to a pipeline with
    `onednn = false` given the same updates."""
    results = []
    for onednn in (True, False):
        nlp = make_pipeline(tiny_bert, onednn=onednn)
        optimizer = Adam(0.01)
        before = scores(list(nlp.pipe(TEXTS)))
        for _ in range(2):
            nlp.update(make_examples(nlp), sgd=optimizer)
            after = scores(list(nlp.pipe(TEXTS)))
        results.append((before, after))
    (before_fast, after_fast), (_, after_slow) = results
    assert numpy.abs(after_fast - before_fast).max() > 1e-3  # the update changed the scores
    numpy.testing.assert_allclose(after_fast, after_slow, atol=1e-5)


def test_copies_and_pickles_never_carry_the_packed_weights(tiny_bert: Path) -> None:
    """The packed copy is kept outside the shim: a model copy and the pipeline's bytes work
    after prediction, and the copy predicts the same scores."""
    nlp = make_pipeline(tiny_bert)
    docs = list(nlp.pipe(TEXTS))
    component = nlp.get_pipe("transformer")
    copied = component.model.copy()
    pickle.dumps(component.model.layers[0].shims[0]._model)
    assert copy.deepcopy(component.cfg) == component.cfg
    data = nlp.to_bytes()
    assert data
    outputs = copied.predict(docs[:3])
    expected = component.model.predict(docs[:3])
    numpy.testing.assert_allclose(
        outputs.model_output.last_hidden_state,
        expected.model_output.last_hidden_state,
        atol=1e-5,
    )
