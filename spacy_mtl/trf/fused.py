"""The standard classifier's inference in a few numpy calls (`mtl_textcat.predict` on CPU).

`spacy-mtl.MultiGroupClassifier.v1` over a transformer listener with `reduce_mean` pooling
and `pooling = "mean"` computes, for one doc with transformer output H (wordpieces × width)
and alignment A (token t ↔ wordpieces A_t):

    token vector   v_t = mean(H[w] for w in A_t)           (0 when A_t is empty)
    doc vector     p   = mean(v_t for the doc's n tokens)
    logits             = p · Wᵀ + b                        (dropout is off at inference)

so p = Σ_w c_w · H[w] with c_w = Σ_{t: w ∈ A_t} 1 / (n · |A_t|): one weighted sum per doc.
The thinc graph takes nine Model calls (chain, listener, trfs2arrays, reduce_mean, pooling,
chain, dropout, linear) and a dozen array copies for the same numbers. After a transformer
forward pass has evicted the CPU caches, each call is ~0.05 ms: 0.5 ms of `nlp(text)` on a
tweet, measured at p50 1.19× → 1.14× a raw Hugging Face forward (README "Fast by default").

Only that exact architecture on CPU (NumpyOps) takes this path; training, other
architectures and GPU use the thinc graph. The outputs are the graph's to float rounding
(tests/test_fused.py compares them on docs with whitespace tokens, several windows and
empty alignments).
"""

from typing import Any, List, Optional, Tuple

import numpy
from spacy.tokens import Doc
from spacy_transformers.layers.listener import TransformerListener
from spacy_transformers.layers.trfs2arrays import forward as trfs2arrays_forward
from thinc.api import Model
from thinc.layers.chain import forward as chain_forward
from thinc.layers.dropout import forward as dropout_forward
from thinc.layers.linear import forward as linear_forward
from thinc.layers.reduce_mean import forward as reduce_mean_forward
from thinc.types import Floats2d

from ..layers import forward as doc_pooling_forward


def fused_output_layer(model: Model) -> Optional[Model]:
    """The Linear layer of `model` if it is the standard classifier that `fused_logits` can
    run: chain(chain(TransformerListener, trfs2arrays(reduce_mean)), doc pooling "mean",
    chain(Dropout..., Linear)). None for anything else. (The caller checks that the model
    runs on NumpyOps: a model can move to a GPU after this is asked.)
    """
    if not _is_chain(model, 3):
        return None
    tok2vec, pooling, head = model.layers
    if not _is_chain(tok2vec, 2):
        return None
    listener, to_arrays = tok2vec.layers
    if not isinstance(listener, TransformerListener):
        return None
    if to_arrays._func is not trfs2arrays_forward or len(to_arrays.layers) != 1:
        return None
    if to_arrays.layers[0]._func is not reduce_mean_forward:
        return None
    if pooling._func is not doc_pooling_forward or pooling.attrs.get("pooling") != "mean":
        return None
    if not head.layers or head._func is not chain_forward:
        return None
    *dropouts, output = head.layers
    if any(layer._func is not dropout_forward for layer in dropouts):
        return None
    if output._func is not linear_forward:
        return None
    return output


def fused_logits(output_layer: Model, docs: List[Doc]) -> Optional[Floats2d]:
    """Logits of non-empty docs, as the standard classifier's graph computes them (see the
    module docstring); None if a doc has no usable transformer output (the graph then
    decides what happens)."""
    W: Any = output_layer.get_param("W")
    b: Any = output_layer.get_param("b")
    pooled = numpy.empty((len(docs), W.shape[1]), dtype="float32")
    for i, doc in enumerate(docs):
        found = _hidden_and_weights(doc._.trf_data, W.shape[1])
        if found is None:
            return None
        hidden, weights = found
        pooled[i] = weights @ hidden
    return pooled @ W.T + b


def _hidden_and_weights(trf_data: Any, width: int) -> Optional[Tuple[Any, Any]]:
    output = getattr(trf_data, "model_output", None)
    hidden = None if output is None else output.get("last_hidden_state")
    if not isinstance(hidden, numpy.ndarray) or hidden.size == 0 or hidden.shape[-1] != width:
        return None
    hidden = hidden.reshape((-1, width))
    lengths = trf_data.align.lengths
    n_tokens = lengths.shape[0]
    if n_tokens == 0:
        return None
    # Each alignment entry weighs 1 / (n · |A_t|); a wordpiece sums the weights of its
    # entries (a token of two windows, a wordpiece of two tokens).
    per_token = 1.0 / (n_tokens * numpy.maximum(lengths, 1))
    per_entry = numpy.repeat(per_token, lengths)
    entries = trf_data.align.dataXd.ravel()
    weights = numpy.bincount(entries, per_entry, minlength=hidden.shape[0])
    return hidden, weights.astype("float32")


def _is_chain(model: Model, n_layers: int) -> bool:
    return model._func is chain_forward and len(model.layers) == n_layers
