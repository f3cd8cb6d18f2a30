"""spacy_mtl.trf.transformer: the `mtl_transformer` component, whose `nlp.pipe` runs each buffer
of docs sorted by wordpieces and gives them back in input order."""

import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy
import pytest
import spacy
from conftest import GROUPS, make_examples
from spacy.language import Language
from spacy.util import fix_random_seed
from spacy_transformers.pipeline_component import Transformer
from thinc.api import Adam

from spacy_mtl.trf.span_getters import WordpieceSpans
from spacy_mtl.trf.transformer import SortedTransformer, padded_runs, pipeline_sorts

# Lengths from 0 to ~60 wordpieces, mixed so that input-order batches pad a lot.
TEXTS = [
    "i love this movie",
    "what a very long day it was " * 8,
    "ok",
    "",
    "the food was fine but the service was bad and the people were awful " * 3,
    "meh",
    "this is boring and bad",
    "a sad sad day",
    "good",
    "why why why " * 5,
    "i hate this awful film",
    "fun",
    "the best thing",
]


def make_pipeline(
    bert: Path,
    factory: str = "mtl_transformer",
    *,
    initialize: bool = True,
    transformer_config: Optional[Dict[str, Any]] = None,
    **config: Any,
) -> Language:
    fix_random_seed(0)
    nlp = spacy.blank("en")
    get_spans: Dict[str, Any] = {"@span_getters": "spacy-mtl.wordpiece_spans.v1", "window": 24}
    if factory == "transformer":
        # spacy-transformers' own component: the getter loads the tokenizer from `name`.
        get_spans["name"] = str(bert)
    model = {
        "@architectures": "spacy-transformers.TransformerModel.v3",
        "name": str(bert),
        "tokenizer_config": {"use_fast": True},
        "transformer_config": transformer_config or {},
        "get_spans": get_spans,
    }
    nlp.add_pipe(factory, name="transformer", config={"model": model, **config})
    nlp.add_pipe("mtl_textcat", config={"groups": GROUPS})
    if initialize:
        nlp.initialize(lambda: make_examples(nlp))
    return nlp


def scores(docs: List[Any]) -> numpy.ndarray:
    return numpy.asarray([[doc.cats[key] for key in sorted(doc.cats)] for doc in docs])


@pytest.fixture(scope="module")
def nlp(tiny_bert: Path) -> Language:
    return make_pipeline(tiny_bert)


def record_batches(nlp: Language) -> List[List[str]]:
    """Record the texts of every batch the transformer's model predicts."""
    component = nlp.get_pipe("transformer")
    seen: List[List[str]] = []
    predict = component.predict

    def spy(docs: Any) -> Any:
        docs = list(docs)
        seen.append([doc.text for doc in docs])
        return predict(docs)

    component.predict = spy  # type: ignore[method-assign]
    return seen


def test_factory_builds_a_sorting_transformer(nlp: Language) -> None:
    component = nlp.get_pipe("transformer")
    assert isinstance(component, SortedTransformer)
    assert isinstance(component, Transformer)
    assert component.cfg["sort_by_length"] is True
    assert component.cfg["buffer_batches"] == 32
    assert pipeline_sorts(nlp) and not pipeline_sorts(nlp, before="transformer")
    # The span getter counts with the model's own tokenizer: the config names no folder.
    getter = component.model.attrs["get_spans"]
    assert isinstance(getter, WordpieceSpans) and getter.name == ""
    assert getter.tokenizer is component.model.tokenizer


def test_bad_buffer_settings_are_refused(tiny_bert: Path) -> None:
    with pytest.raises(ValueError, match="buffer_batches"):
        make_pipeline(tiny_bert, initialize=False, buffer_batches=0)
    with pytest.raises(ValueError, match="buffer_wordpieces"):
        make_pipeline(tiny_bert, initialize=False, buffer_wordpieces=0)


def test_pipe_sorts_across_batches_and_keeps_input_order(nlp: Language) -> None:
    seen = record_batches(nlp)
    try:
        docs = list(nlp.pipe(TEXTS, batch_size=3))
    finally:
        del nlp.get_pipe("transformer").predict
    assert [doc.text for doc in docs] == TEXTS
    assert all(set(doc._.mtl_scores) == set(GROUPS) for doc in docs)
    # The model saw the docs shortest first (the empty doc leads), not in input order.
    ran = [text for batch in seen for text in batch]
    assert sorted(ran) == sorted(TEXTS)
    assert ran[0] == "" and ran != TEXTS
    tokenizer = nlp.get_pipe("transformer").model.tokenizer
    lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in ran]
    assert lengths == sorted(lengths)
    # With contexts too.
    pairs = list(nlp.pipe(((t, i) for i, t in enumerate(TEXTS)), as_tuples=True, batch_size=3))
    assert [(doc.text, i) for doc, i in pairs] == [(t, i) for i, t in enumerate(TEXTS)]


def test_sorted_scores_equal_unsorted(nlp: Language) -> None:
    component = nlp.get_pipe("transformer")
    sorted_docs = list(nlp.pipe(TEXTS, batch_size=4))
    component.cfg["sort_by_length"] = False
    try:
        assert not pipeline_sorts(nlp)
        unsorted_docs = list(nlp.pipe(TEXTS, batch_size=4))
    finally:
        component.cfg["sort_by_length"] = True
    one_by_one = [nlp(text) for text in TEXTS]
    assert scores(sorted_docs).shape == (len(TEXTS), 6)
    numpy.testing.assert_allclose(scores(sorted_docs), scores(unsorted_docs), atol=1e-5)
    numpy.testing.assert_allclose(scores(sorted_docs), scores(one_by_one), atol=1e-5)
    # The long docs were cut into windows of at most 24 wordpieces.
    widths = [doc._.trf_data.wordpieces.input_ids.shape for doc in sorted_docs]
    assert max(w[1] for w in widths) <= 24 and max(w[0] for w in widths) > 1


def test_padded_runs_bound_the_padded_wordpieces() -> None:
    # window 10 with 2 special tokens: 8 wordpieces per window.
    assert padded_runs([1, 2, 3], window=10, n_special=2, most=100) == [[0, 1, 2]]
    # 3 docs of 5 pieces pad to 3 x 7 = 21 > 20: a second run.
    assert padded_runs([5, 5, 5], window=10, n_special=2, most=20) == [[0, 1], [2]]
    # 20 pieces = 3 windows of (up to) 10: 30 padded alone, over `most` yet in a run of
    # its own; then 2 more windows would make 5 x 10.
    assert padded_runs([0, 20, 9], window=10, n_special=2, most=25) == [[0], [1], [2]]
    assert padded_runs([], window=10, n_special=2, most=25) == []
    lengths = [0, 1, 3, 3, 7, 8, 9, 15, 40, 41]
    runs = padded_runs(lengths, window=10, n_special=2, most=40)
    assert [i for run in runs for i in run] == list(range(len(lengths)))
    for run in runs:
        windows = sum(max(1, -(-lengths[i] // 8)) for i in run)
        padded = windows * min(lengths[run[-1]] + 2, 10)
        assert padded <= 40 or len(run) == 1


def test_padded_runs_end_at_most_docs_and_at_length_steps_once_filled() -> None:
    lengths = [1, 1, 1, 2, 2, 2, 2, 5, 5, 6]
    # No doc limit, no filling rule: one run (padding 10 x 8 = 80 <= 100).
    assert padded_runs(lengths, window=10, n_special=2, most=100) == [list(range(10))]
    assert padded_runs(lengths, window=10, n_special=2, most=100, most_docs=4) == [
        [0, 1, 2, 3],
        [4, 5, 6, 7],
        [8, 9],
    ]
    # A run of 2 docs or more ends before a longer doc; one of 1 doc takes the next.
    assert padded_runs(lengths, window=10, n_special=2, most=100, fill_docs=2) == [
        [0, 1, 2],
        [3, 4, 5, 6],
        [7, 8],
        [9],
    ]
    assert padded_runs(lengths, window=10, n_special=2, most=100, fill_docs=4) == [
        [0, 1, 2, 3, 4, 5, 6],
        [7, 8, 9],
    ]
    # Lengths past the window pad to the window: equal, so no step.
    assert padded_runs([7, 8, 30], window=10, n_special=2, most=100, fill_docs=1) == [
        [0],
        [1, 2],
    ]


@contextmanager
def forward_shapes(component: Any) -> Iterator[List[Tuple[int, int]]]:
    """The (windows, width) of each forward pass of the component's encoder in the block."""
    shapes: List[Tuple[int, int]] = []
    hook = component.model.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: shapes.append(tuple(kwargs["input_ids"].shape)),
        with_kwargs=True,
    )
    try:
        yield shapes
    finally:
        hook.remove()


def test_cpu_pipe_cuts_runs_where_the_length_steps_up(nlp: Language) -> None:
    """On CPU, a run of `pipe` ends where the wordpiece length steps up once it holds a
    quarter of batch_size docs: it pads less than runs of batch_size docs, scores equal."""
    component = nlp.get_pipe("transformer")
    texts = [t for t in TEXTS if t and len(t) < 80] * 3
    with forward_shapes(component) as shapes:
        docs = list(nlp.pipe(texts, batch_size=len(texts)))
    n_special = 2
    tokenizer = component.model.tokenizer
    lengths = sorted(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    # Several runs, each but the last of a quarter of the docs or more, in ascending
    # order of width; together they pad less than one run of all the docs.
    assert len(shapes) > 1
    assert sum(windows for windows, _ in shapes) == len(texts)
    assert all(windows >= len(texts) // 4 for windows, _ in shapes[:-1])
    padded = sum(windows * width for windows, width in shapes)
    assert padded < len(texts) * (max(lengths) + n_special)
    assert [width for _, width in shapes] == sorted(width for _, width in shapes)
    numpy.testing.assert_allclose(scores(docs), scores([nlp(t) for t in texts]), atol=1e-5)


def test_pipe_splits_a_batch_at_max_batch_items_wordpieces(nlp: Language) -> None:
    """Each forward pass of `pipe` pads at most max_batch_items wordpieces (a doc alone
    may pass it); the docs come back in order with the scores of the default runs."""
    component = nlp.get_pipe("transformer")
    texts = [t for t in TEXTS if t] * 2
    whole = list(nlp.pipe(texts, batch_size=len(texts)))
    try:
        with forward_shapes(component) as shapes:
            component.cfg["max_batch_items"] = 60
            seen = record_batches(nlp)
            split = list(nlp.pipe(texts, batch_size=len(texts)))
    finally:
        component.cfg["max_batch_items"] = 4096
        component.__dict__.pop("predict", None)
    assert len(shapes) == len(seen) > 3
    for (windows, width), batch in zip(shapes, seen):
        assert windows * width <= 60 or len(batch) == 1, (windows, width, batch)
    assert [doc.text for doc in split] == texts
    numpy.testing.assert_allclose(scores(split), scores(whole), atol=1e-5)


def counted(texts: List[str], pulled: List[int]) -> Iterator[str]:
    for text in texts:
        pulled[0] += 1
        yield text


def test_buffer_bounds_what_is_read_ahead(nlp: Language) -> None:
    component = nlp.get_pipe("transformer")
    texts = TEXTS * 4  # 52 docs
    batch_size, batches = 3, 2
    component.cfg["buffer_batches"] = batches
    try:
        pulled = [0]
        read_when_out = []
        for doc in nlp.pipe(counted(texts, pulled), batch_size=batch_size):
            read_when_out.append(pulled[0])
            assert doc.has_extension("trf_data") and doc._.trf_data is not None
    finally:
        component.cfg["buffer_batches"] = 32
    buffer = batch_size * batches
    assert len(read_when_out) == len(texts)
    # When doc i leaves, no more than its own buffer (plus what mtl_textcat's batch of 3
    # pulls through) has been read: never the whole input.
    for i, read in enumerate(read_when_out):
        assert read <= (i // buffer + 1) * buffer + batch_size, (i, read)
    assert read_when_out[0] < len(texts)


def test_buffer_ends_at_the_wordpiece_budget(nlp: Language) -> None:
    component = nlp.get_pipe("transformer")
    long_text = "the food was fine but the service was bad " * 6  # ~50 wordpieces
    texts = [long_text] * 12
    component.cfg["buffer_wordpieces"] = 60
    try:
        pulled = [0]
        first = None
        for doc in nlp.pipe(counted(texts, pulled), batch_size=2):
            first = pulled[0] if first is None else first
            assert doc.text == long_text
    finally:
        component.cfg["buffer_wordpieces"] = 131072
    # Two batches of 2 docs reach 60 wordpieces; the buffer of 32 batches ends there.
    assert first is not None and first <= 2 * 2 + 2


@contextmanager
def spied_tokenizer(nlp: Language) -> Iterator[List[Any]]:
    """Within the block, the transformer's span getter counts with a spy of its tokenizer;
    yields the list of the spy's calls, through the wrapper or its Rust tokenizer (their
    positional arguments)."""
    getter = nlp.get_pipe("transformer").model.attrs["get_spans"]
    real = getter.tokenizer
    calls: List[Any] = []

    class BackendSpy:
        def encode_batch(self, *args: Any, **kwargs: Any) -> Any:
            calls.append(args)
            return real.backend_tokenizer.encode_batch(*args, **kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(real.backend_tokenizer, name)

    class Spy:
        is_fast = True
        backend_tokenizer = BackendSpy()

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            calls.append(args)
            return real(*args, **kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    getter._tokenizer = Spy()
    getter._model = None  # keep the spy
    try:
        yield calls
    finally:
        getter._tokenizer = real
        getter.bind(nlp.get_pipe("transformer").model)


def test_known_lengths_skip_the_span_getters_tokenizer(nlp: Language) -> None:
    getter = nlp.get_pipe("transformer").model.attrs["get_spans"]
    docs = [nlp.make_doc(t) for t in ("i love this movie", "", "ok")]
    expected = getter(docs)
    with spied_tokenizer(nlp) as calls:
        with getter.known_lengths(docs, [4, 0, 1]):
            spans = getter(docs)
        assert calls == []
        assert getter(docs) == spans  # outside the block it tokenizes again
        assert len(calls) == 1
    assert [[(s.start, s.end) for s in row] for row in spans] == [
        [(s.start, s.end) for s in row] for row in expected
    ]


def test_known_encodings_cut_long_docs_without_the_tokenizer(nlp: Language) -> None:
    """Docs longer than a window are cut from the encodings that mtl_transformer made to
    sort them: the same spans, and no second tokenizer call."""
    from spacy_mtl.trf.span_getters import encode_wordpieces

    getter = nlp.get_pipe("transformer").model.attrs["get_spans"]
    texts = [" ".join(["unbelievably wonderful movie"] * 80), "ok", "so so " * 40]
    docs = [nlp.make_doc(t) for t in texts]
    expected = getter(docs)
    assert max(len(row) for row in expected) > 1  # at least one doc spans several windows
    texts = [doc.text for doc in docs]
    lengths, encodings = encode_wordpieces(getter.tokenizer, texts, special_tokens=True)
    assert encodings is not None
    # The counts leave the special tokens out, the encodings have them.
    assert lengths == encode_wordpieces(getter.tokenizer, texts)[0]
    assert [len(e) for e in encodings] == [n + getter.n_special for n in lengths]
    with spied_tokenizer(nlp) as calls:
        with getter.known_lengths(docs, lengths, encodings):
            spans = getter(docs)
        assert calls == []
        with getter.known_lengths(docs, lengths):  # lengths only: the long docs are encoded
            assert getter(docs) == spans
        assert len(calls) == 1
    assert [[(s.start, s.end) for s in row] for row in spans] == [
        [(s.start, s.end) for s in row] for row in expected
    ]


def test_training_is_unchanged(tiny_bert: Path) -> None:
    """nlp.update through the listener: the same losses and weights as with
    spacy-transformers' `transformer` and the same span getter."""
    results = []
    for factory in ("transformer", "mtl_transformer"):
        nlp = make_pipeline(tiny_bert, factory)
        optimizer = Adam(0.001)
        losses: List[Dict[str, float]] = []
        for _ in range(3):
            losses.append(nlp.update(make_examples(nlp), sgd=optimizer, losses={}))
        docs = list(nlp.pipe(TEXTS, batch_size=4))
        results.append((losses, scores(docs)))
    (losses_a, scores_a), (losses_b, scores_b) = results
    assert losses_a[0]["mtl_textcat"] > 0
    assert losses_a[0]["transformer"] > 0  # the listener sent a gradient back
    for a, b in zip(losses_a, losses_b):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-9)
    numpy.testing.assert_allclose(scores_a, scores_b, atol=1e-5)


def test_prediction_runs_in_eval_and_inference_mode_and_training_in_train_mode(
    tiny_bert: Path,
) -> None:
    """Prediction leaves the encoder in eval mode (no `train()` walk after each call) under
    torch.inference_mode on CPU; an update still runs it in train mode (dropout on) with
    gradients; the copy of a model keeps the behaviour."""
    import torch

    nlp = make_pipeline(tiny_bert)
    component = nlp.get_pipe("transformer")
    encoder = component.model.transformer
    seen: List[Any] = []

    def record(module: Any, args: Any, kwargs: Any) -> None:
        seen.append((module.training, torch.is_inference_mode_enabled(), torch.is_grad_enabled()))

    encoder.register_forward_pre_hook(record, with_kwargs=True)
    nlp("i love this movie")
    list(nlp.pipe(TEXTS[:4]))
    assert seen and set(seen) == {(False, True, False)}
    assert not encoder.training  # left in eval mode after the call
    seen.clear()
    nlp.update(make_examples(nlp), sgd=Adam(0.001))
    assert set(seen) == {(True, False, True)}
    seen.clear()
    doc = nlp("i love this movie")
    assert set(seen) == {(False, True, False)}
    copied = component.model.copy()
    copied_encoder = copied.transformer
    copied_encoder.train()
    copied_seen: List[Any] = []
    copied_encoder.register_forward_pre_hook(
        lambda module, args, kwargs: copied_seen.append(module.training), with_kwargs=True
    )
    copied.predict([doc])
    assert copied_seen == [False]
    assert not encoder.training


def test_forward_equals_spacy_transformers_forward(nlp: Language) -> None:
    """mtl_transformer's model tokenizes with the Rust tokenizer; its output is
    spacy-transformers' forward's: wordpieces, alignment, hidden states."""
    from spacy_transformers.layers import transformer_model

    from spacy_mtl.trf.transformer import forward_tokenizing_with_rust

    model = nlp.get_pipe("transformer").model
    assert model._func is forward_tokenizing_with_rust
    docs = [nlp.make_doc(t) for t in TEXTS]
    ours, _ = forward_tokenizing_with_rust(model, docs, False)
    theirs, _ = transformer_model.forward(model, docs, False)
    assert ours.wordpieces.strings == theirs.wordpieces.strings
    assert ours.wordpieces.lengths == theirs.wordpieces.lengths
    numpy.testing.assert_array_equal(ours.wordpieces.input_ids, theirs.wordpieces.input_ids)
    numpy.testing.assert_array_equal(ours.align.data, theirs.align.data)
    numpy.testing.assert_array_equal(ours.align.lengths, theirs.align.lengths)
    hidden = ours.model_output.last_hidden_state
    assert hidden.shape[0] > len(TEXTS) - 1  # long docs are several windows
    numpy.testing.assert_allclose(hidden, theirs.model_output.last_hidden_state, atol=1e-6)
    # The stock transformer keeps spacy-transformers' forward.
    stock = make_pipeline(nlp.get_pipe("transformer").model.attrs["name"], "transformer")
    assert stock.get_pipe("transformer").model._func is transformer_model.forward


def test_forward_equals_spacy_transformers_forward_for_byte_level_bpe(
    tiny_roberta: Path,
) -> None:
    """The same parity for RoBERTa's byte-level BPE (roberta-base, configs/gpu.cfg): the
    tokenizer family whose pieces carry their leading space and whose offsets the
    post-processor trims. Sorted pipe scores equal one by one's too."""
    from spacy_transformers.layers import transformer_model

    from spacy_mtl.trf.transformer import forward_tokenizing_with_rust

    nlp = make_pipeline(tiny_roberta)
    model = nlp.get_pipe("transformer").model
    docs = [nlp.make_doc(t) for t in [*TEXTS, "héllo  wörld,  what a day!!!"]]
    ours, _ = forward_tokenizing_with_rust(model, docs, False)
    theirs, _ = transformer_model.forward(model, docs, False)
    assert ours.wordpieces.strings == theirs.wordpieces.strings
    assert any(s.startswith("Ġ") for strings in ours.wordpieces.strings for s in strings)
    numpy.testing.assert_array_equal(ours.wordpieces.input_ids, theirs.wordpieces.input_ids)
    numpy.testing.assert_array_equal(ours.align.data, theirs.align.data)
    numpy.testing.assert_array_equal(ours.align.lengths, theirs.align.lengths)
    numpy.testing.assert_allclose(
        ours.model_output.last_hidden_state, theirs.model_output.last_hidden_state, atol=1e-6
    )
    numpy.testing.assert_allclose(
        scores(list(nlp.pipe(TEXTS, batch_size=4))),
        scores([nlp(text) for text in TEXTS]),
        atol=1e-5,
    )


def assert_same_doc_data(ours: List[Any], theirs: List[Any]) -> None:
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a.wordpieces.strings == b.wordpieces.strings
        assert list(a.wordpieces.lengths) == list(b.wordpieces.lengths)
        numpy.testing.assert_array_equal(a.wordpieces.input_ids, b.wordpieces.input_ids)
        numpy.testing.assert_array_equal(a.align.data, b.align.data)
        numpy.testing.assert_array_equal(a.align.lengths, b.align.lengths)
        assert sorted(a.model_output.keys()) == sorted(b.model_output.keys())
        for key, value in b.model_output.items():
            mine = a.model_output[key]
            if isinstance(value, list):
                assert len(mine) == len(value)
                for x, y in zip(mine, value):
                    numpy.testing.assert_array_equal(x, y)
            else:
                numpy.testing.assert_array_equal(mine, value)


@pytest.mark.parametrize("hidden_states", [False, True])
def test_split_by_doc_equals_spacy_transformers_split(
    tiny_bert: Path, hidden_states: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The split without the token map gives spacy-transformers' per-doc data: empty docs,
    docs of several windows, outputs of every layer."""
    from spacy_mtl.trf.transformer import split_by_doc

    nlp = make_pipeline(tiny_bert, transformer_config={"output_hidden_states": hidden_states})
    model = nlp.get_pipe("transformer").model
    docs = [nlp.make_doc(t) for t in TEXTS]
    batch, _ = model(docs, is_train=False)
    assert batch.cached_doc_data is None  # split where it is read: set_annotations
    assert sum(len(spans) > 1 for spans in batch.spans) >= 2  # several windows
    assert any(not spans for spans in batch.spans)  # an empty doc
    if hidden_states:
        assert isinstance(batch.model_output.hidden_states, tuple)
    calls: List[int] = []

    def spy(predictions: Any) -> Any:
        calls.append(1)
        return split_by_doc(predictions)

    monkeypatch.setattr("spacy_mtl.trf.transformer.split_by_doc", spy)
    nlp.get_pipe("transformer").set_annotations(docs, batch)
    assert calls == [1]
    ours = batch.cached_doc_data
    assert ours is not None
    assert all(doc._.trf_data is data for doc, data in zip(docs, ours))
    batch.cached_doc_data = None
    assert_same_doc_data(ours, batch.split_by_doc())
    # One doc (nlp(text)).
    one, _ = model([docs[1]], is_train=False)
    assert_same_doc_data(split_by_doc(one), one.split_by_doc())


def odd_spans(docs: List[Any]) -> List[List[Any]]:
    """Spans spacy-transformers allows: overlapping, with gaps, out of order, none."""
    out: List[List[Any]] = []
    kinds = iter(range(len(docs)))
    for k, doc in enumerate(docs):
        n = len(doc)
        if n < 6:
            out.append([doc[:]] if k % 2 and n else [])
            continue
        kind = next(kinds) % 3
        if kind == 0:
            out.append([doc[0 : n // 2 + 1], doc[n // 2 - 1 :]])  # overlap
        elif kind == 1:
            out.append([doc[1 : n // 2], doc[n // 2 + 1 : n - 1]])  # gaps
        else:
            out.append([doc[n // 2 :], doc[: n // 2]])  # out of order
    return out


def test_split_by_doc_equals_spacy_transformers_split_for_any_spans(nlp: Language) -> None:
    from spacy_mtl.trf.transformer import split_by_doc

    model = nlp.get_pipe("transformer").model
    getter = model.attrs["get_spans"]
    model.attrs["get_spans"] = odd_spans
    try:
        docs = [nlp.make_doc(t) for t in TEXTS + TEXTS[1:2]]
        batch, _ = model(docs, is_train=False)
        one, _ = model([docs[4]], is_train=False)
    finally:
        model.attrs["get_spans"] = getter
    ours = split_by_doc(batch)
    batch.cached_doc_data = None
    assert_same_doc_data(ours, batch.split_by_doc())
    assert_same_doc_data(split_by_doc(one), one.split_by_doc())


def test_split_by_doc_leaves_a_repeated_doc_to_spacy_transformers(nlp: Language) -> None:
    from spacy_mtl.trf.transformer import split_by_doc

    model = nlp.get_pipe("transformer").model
    doc = nlp.make_doc(TEXTS[0])
    batch, _ = model([doc, nlp.make_doc(TEXTS[1]), doc], is_train=False)
    calls: List[int] = []
    split = batch.split_by_doc

    def spy() -> Any:
        calls.append(1)
        return split()

    batch.split_by_doc = spy  # type: ignore[method-assign]
    assert_same_doc_data(split_by_doc(batch), split())
    assert calls == [1]


def test_save_and_load_need_no_model_folder(tiny_bert: Path, tmp_path: Path) -> None:
    bert = shutil.copytree(tiny_bert, tmp_path / "bert")
    nlp = make_pipeline(bert, buffer_batches=5)
    before = scores(list(nlp.pipe(TEXTS)))
    nlp.to_disk(tmp_path / "model")
    shutil.rmtree(bert)
    loaded = spacy.load(tmp_path / "model")
    component = loaded.get_pipe("transformer")
    assert isinstance(component, SortedTransformer)
    assert component.cfg["buffer_batches"] == 5
    getter = component.model.attrs["get_spans"]
    # The getter counts with the loaded model's tokenizer, not the (deleted) folder.
    assert getter.tokenizer is component.model.tokenizer
    numpy.testing.assert_allclose(scores(list(loaded.pipe(TEXTS))), before, atol=1e-5)
    from_bytes = make_pipeline(tiny_bert, initialize=False)
    from_bytes.from_bytes(nlp.to_bytes())
    numpy.testing.assert_allclose(scores(list(from_bytes.pipe(TEXTS))), before, atol=1e-5)


@pytest.mark.parametrize("limit", [0, 10**9])
def test_big_training_batches_checkpoint_with_the_same_gradients(
    tiny_bert: Path, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    """A training batch over CHECKPOINT_WORDPIECES runs the encoder with gradient
    checkpointing (issue 28: a batch of long docs held 7 GB of activations): the weights
    after two updates with dropout equal those without it, and the flag is off after each
    forward pass."""
    from spacy_mtl.trf import transformer as trf

    def weights_after_updates(limit: int) -> Tuple[Dict[str, Any], int]:
        monkeypatch.setattr(trf, "CHECKPOINT_WORDPIECES", limit)
        nlp = make_pipeline(tiny_bert)
        hf = nlp.get_pipe("transformer").model.layers[0].shims[0]._hfmodel.transformer
        enabled: List[int] = []
        enable = type(hf).gradient_checkpointing_enable

        def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
            enabled.append(1)
            return enable(self, *args, **kwargs)

        monkeypatch.setattr(type(hf), "gradient_checkpointing_enable", spy)
        fix_random_seed(1)
        optimizer = Adam(1e-3)
        examples = make_examples(nlp)
        for _ in range(2):
            nlp.update(examples, sgd=optimizer, drop=0.1)
            assert not hf.is_gradient_checkpointing
        monkeypatch.undo()
        return {n: p.detach().clone() for n, p in hf.named_parameters()}, len(enabled)

    reference, never = weights_after_updates(10**9)
    weights, times = weights_after_updates(limit)
    assert never == 0 and times == (2 if limit == 0 else 0)
    for name, value in reference.items():
        assert numpy.allclose(value.numpy(), weights[name].numpy(), atol=1e-6), name
    fresh = make_pipeline(tiny_bert).get_pipe("transformer").model.layers[0].shims[0]
    initial = dict(fresh._hfmodel.transformer.named_parameters())
    changed = [
        n
        for n, v in reference.items()
        if not numpy.array_equal(v.numpy(), initial[n].detach().numpy())
    ]
    assert changed  # the updates did change the weights
