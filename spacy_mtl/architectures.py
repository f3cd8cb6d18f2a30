"""Registered model builders. Names are versioned and never change once released."""

from typing import List, Optional

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Dropout, Linear, Model, Relu, chain
from thinc.types import Floats2d

from .layers import doc_pooling


@registry.architectures("spacy-mtl.MultiGroupClassifier.v1")
def build_multi_group_classifier(
    tok2vec: Model[List[Doc], List[Floats2d]],
    *,
    pooling: str = "mean",
    hidden_width: int = 0,
    dropout: float = 0.1,
    nO: Optional[int] = None,
) -> Model[List[Doc], Floats2d]:
    """Token vectors → one pooled vector per doc → (hidden layer) → logits of all labels.

    The output is raw logits, one column per label of every group in schema order; the
    `mtl_textcat` component applies each group's softmax or sigmoid, so its loss is the true
    cross-entropy / binary cross-entropy on logits.

    tok2vec (Model[List[Doc], List[Floats2d]]): Token vectors, e.g. a
        `spacy-transformers.TransformerListener.v1` or a `spacy.Tok2Vec.v2`. It is called once
        per batch; every group's head reads the same pooled vector.
    pooling (str): 'mean' (default), 'max', or 'first' / 'cls' (the first token's vector).
    hidden_width (int): Width of an optional ReLU hidden layer; 0 for none.
    dropout (float): Dropout on the pooled vector (and after the hidden layer).
    nO (Optional[int]): Number of labels over all groups; set by the component at initialize.
    RETURNS (Model[List[Doc], Floats2d]): Logits, shape (n_docs, n_labels).

    The component reads three refs of the model it is given; another architecture for
    `mtl_textcat` must set them too:
    - `pooling`: the doc-pooling layer; its `nO` is the width of the pooled vector.
    - `head`: pooled vectors → logits; run alone on a zero vector for empty docs.
    - `output_layer`: the last layer; its `nO` is set to the schema's number of labels at
      initialize, and compared with the saved schema on load.
    """
    pool = doc_pooling(pooling)
    head_layers: List[Model] = [Dropout(dropout)]
    if hidden_width > 0:
        head_layers.append(Relu(nO=hidden_width, dropout=dropout))
    output_layer = Linear(nO=nO)
    head_layers.append(output_layer)
    head: Model[Floats2d, Floats2d] = chain(*head_layers)
    model: Model[List[Doc], Floats2d] = chain(tok2vec, pool, head)
    # The component runs `head` alone for empty docs (pooled vector of zeros).
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("pooling", pool)
    model.set_ref("head", head)
    model.set_ref("output_layer", output_layer)
    model.attrs["pooling"] = pooling
    if nO is not None:
        model.set_dim("nO", nO)
    model.name = "mtl_classifier"
    return model
