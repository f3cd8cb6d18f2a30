"""spacy_mtl.trf.fused: the standard classifier's inference in numpy gives the thinc graph's
logits, and only that architecture on CPU takes it."""

from pathlib import Path
from typing import Any, Dict, List

import numpy
import pytest
import spacy
from conftest import GROUPS, make_examples, make_nlp, transformer_config
from spacy.language import Language
from spacy.util import fix_random_seed
from thinc.api import Adam

from spacy_mtl.trf.fused import fused_logits, fused_output_layer

# Whitespace tokens (no wordpieces), unknown characters, a URL, and docs of several windows.
TEXTS = [
    "i love this movie",
    "ok  so   very\n\nbad",
    "what a great fun day \u2603\u2603 !!",
    "see https://example.com/a-b?c=1 now",
    "the food was fine but the service was bad and the people were awful " * 6,
    " ",
    "why why why " * 20,
]


def build(bert: Path, factory: str, get_spans: Dict[str, Any], **model: Any) -> Language:
    fix_random_seed(0)
    nlp = spacy.blank("en")
    config = transformer_config(str(bert))
    config["model"]["get_spans"] = get_spans
    nlp.add_pipe(factory, name="transformer", config=config)
    head: Dict[str, Any] = {"groups": GROUPS}
    if model:
        head["model"] = {
            "@architectures": "spacy-mtl.MultiGroupClassifier.v1",
            "tok2vec": {
                "@architectures": "spacy-transformers.TransformerListener.v1",
                "grad_factor": 1.0,
                "pooling": {"@layers": "reduce_mean.v1"},
            },
            **model,
        }
    nlp.add_pipe("mtl_textcat", config=head)
    nlp.initialize(lambda: make_examples(nlp))
    return nlp


WORDPIECE_SPANS = {"@span_getters": "spacy-mtl.wordpiece_spans.v1", "window": 24}
# Overlapping windows: tokens of the overlap are aligned to wordpieces of two windows.
STRIDED_SPANS = {"@span_getters": "spacy-transformers.strided_spans.v1", "window": 8, "stride": 6}


@pytest.fixture(scope="module")
def nlp(tiny_bert: Path) -> Language:
    return build(tiny_bert, "mtl_transformer", WORDPIECE_SPANS)


def graph_logits(nlp: Language, docs: List[Any]) -> numpy.ndarray:
    """The thinc graph's logits (what `predict` computed before the fused path)."""
    return nlp.get_pipe("mtl_textcat").model.predict(docs)


def in_two_windows(trf_data: Any) -> bool:
    """Whether some token is aligned to wordpieces of two windows."""
    seq_len = trf_data.wordpieces.input_ids.shape[1]
    rows = numpy.split(trf_data.align.dataXd.ravel(), numpy.cumsum(trf_data.align.lengths)[:-1])
    return any(len(set((token_rows // seq_len).tolist())) > 1 for token_rows in rows)


def annotated(nlp: Language, texts: List[str]) -> List[Any]:
    trf = nlp.get_pipe("transformer")
    return [trf(nlp.make_doc(text)) for text in texts]


def test_standard_architecture_is_fused(nlp: Language) -> None:
    component = nlp.get_pipe("mtl_textcat")
    assert fused_output_layer(component.model) is component.model.get_ref("output_layer")


@pytest.mark.parametrize(
    "factory,get_spans",
    [
        ("mtl_transformer", WORDPIECE_SPANS),
        ("transformer", {**STRIDED_SPANS}),
    ],
)
def test_fused_logits_equal_the_graphs(
    tiny_bert: Path, factory: str, get_spans: Dict[str, Any]
) -> None:
    nlp = build(tiny_bert, factory, get_spans)
    docs = annotated(nlp, [t for t in TEXTS if t.strip()])
    if factory == "transformer":
        # The strided windows overlap: some token is aligned to more than one wordpiece row
        # of different windows, which the fused weights must sum.
        assert any(in_two_windows(doc._.trf_data) for doc in docs)
    output = nlp.get_pipe("mtl_textcat").model.get_ref("output_layer")
    fused = fused_logits(output, docs)
    assert fused is not None
    numpy.testing.assert_allclose(fused, graph_logits(nlp, docs), rtol=1e-5, atol=1e-5)


def test_predict_takes_the_fused_path_and_keeps_its_output(nlp: Language) -> None:
    component = nlp.get_pipe("mtl_textcat")
    docs = annotated(nlp, TEXTS)
    expected = component.model.predict([doc for doc in docs if len(doc)])
    calls: List[int] = []
    listener = component.model.get_ref("tok2vec").layers[0]
    forward = listener._func

    def spy(model: Any, X: Any, is_train: bool) -> Any:
        calls.append(len(X))
        return forward(model, X, is_train)

    listener._func = spy
    try:
        got = component.predict(docs)
    finally:
        listener._func = forward
    assert calls == []  # the graph's listener did not run
    filled = [i for i, doc in enumerate(docs) if len(doc)]
    numpy.testing.assert_allclose(got[filled], expected, rtol=1e-5, atol=1e-5)


def test_fused_path_reads_the_current_weights(tiny_bert: Path) -> None:
    nlp = build(tiny_bert, "mtl_transformer", WORDPIECE_SPANS)
    docs = annotated(nlp, TEXTS[:4])
    before = nlp.get_pipe("mtl_textcat").predict(docs)
    optimizer = Adam(0.01)
    for _ in range(3):
        nlp.update(make_examples(nlp), sgd=optimizer)
    docs = annotated(nlp, TEXTS[:4])
    after = nlp.get_pipe("mtl_textcat").predict(docs)
    assert not numpy.allclose(before, after)
    numpy.testing.assert_allclose(after, graph_logits(nlp, docs), rtol=1e-5, atol=1e-5)


def test_docs_without_transformer_output_use_the_graph(nlp: Language) -> None:
    component = nlp.get_pipe("mtl_textcat")
    docs = [nlp.make_doc(text) for text in TEXTS[:3]]  # the transformer did not run
    output = component.model.get_ref("output_layer")
    assert fused_logits(output, docs) is None
    numpy.testing.assert_allclose(component.predict(docs), graph_logits(nlp, docs), atol=1e-6)


@pytest.mark.parametrize("model", [{"hidden_width": 8}, {"pooling": "max"}, {"pooling": "cls"}])
def test_other_architectures_use_the_graph(tiny_bert: Path, model: Dict[str, Any]) -> None:
    nlp = build(tiny_bert, "mtl_transformer", WORDPIECE_SPANS, **model)
    component = nlp.get_pipe("mtl_textcat")
    assert fused_output_layer(component.model) is None
    docs = annotated(nlp, TEXTS[:3])
    numpy.testing.assert_allclose(component.predict(docs), graph_logits(nlp, docs), atol=1e-6)


def test_a_tok2vec_model_uses_the_graph() -> None:
    nlp = make_nlp(GROUPS)
    nlp.initialize(lambda: make_examples(nlp))
    assert fused_output_layer(nlp.get_pipe("mtl_textcat").model) is None
