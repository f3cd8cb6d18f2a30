"""Conditional groups (`parent = "group/label"`): schema rules, joint and conditional
scores, decisions, gold checks and end-to-end scores, each against a computation written
out here independently (loops over docs, no schema helpers)."""

from typing import Any, Dict, List, Optional

import numpy
import pytest
import spacy
from conftest import make_examples, make_nlp

from spacy_mtl.errors import GoldError, SchemaError
from spacy_mtl.gold import GoldReader
from spacy_mtl.schema import GroupSchema, LabelGroup
from spacy_mtl.scorer import score_arrays
from spacy_mtl.workflows.predict.columns import OutputColumns

# offensive? -> only then targeted? -> only then at whom (multilabel).
HIER: Dict[str, Dict[str, Any]] = {
    "offensive": {"kind": "multiclass", "labels": ["no", "yes"]},
    "targeted": {"kind": "multiclass", "labels": ["no", "yes"], "parent": "offensive/yes"},
    "target": {"kind": "multilabel", "labels": ["group", "person"], "parent": "targeted/yes"},
    "topic": {"kind": "multilabel", "labels": ["news", "sport"]},
}
PARENTS = {"targeted": ("offensive", "yes"), "target": ("targeted", "yes")}


def hier_schema() -> GroupSchema:
    return GroupSchema.from_config(HIER)


# -- schema ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "groups,code",
    [
        ({"a": {"kind": "multiclass", "labels": ["x", "y"], "parent": "zzz/x"}}, "E019"),
        (
            {
                "b": {"kind": "multiclass", "labels": ["x", "y"], "parent": "a/x"},
                "a": {"kind": "multiclass", "labels": ["x", "y"]},
            },
            "E019",
        ),
        ({"a": {"kind": "multiclass", "labels": ["x", "y"], "parent": "a/x"}}, "E018"),
        ({"a": {"kind": "multiclass", "labels": ["x", "y"], "parent": "nolabel"}}, "E017"),
        ({"a": {"kind": "multiclass", "labels": ["x", "y"], "parent": "b/"}}, "E017"),
        (
            {
                "a": {"kind": "multiclass", "labels": ["x", "y"]},
                "b": {"kind": "multilabel", "labels": ["u"], "parent": "a/zz"},
            },
            "E020",
        ),
    ],
)
def test_schema_refuses_bad_parents(groups: Dict[str, Any], code: str) -> None:
    from spacy_mtl.errors import Errors

    start = getattr(Errors, code)[:20].split("{")[0]
    with pytest.raises(SchemaError) as err:
        GroupSchema.from_config(groups)
    assert start in str(err.value)


def test_parent_label_is_checked_once_the_parent_has_labels() -> None:
    groups = {
        "a": {"kind": "multiclass", "labels": []},
        "b": {"kind": "multilabel", "labels": ["u"], "parent": "a/zz"},
    }
    schema = GroupSchema.from_config(groups)  # labels of `a` not known yet: accepted
    with pytest.raises(SchemaError, match="'zz'"):
        schema.with_labels({"a": ["x", "y"]}).check_complete()
    schema.with_labels({"a": ["x", "zz"]}).check_complete()


def test_parent_round_trips_through_config() -> None:
    schema = hier_schema()
    again = GroupSchema.from_config(schema.to_config())
    assert again == schema
    assert again["target"].parent == "targeted/yes"
    assert "parent" not in again["topic"].to_config()
    assert schema.condition_columns == (None, 1, 3, None)


# -- joint and conditional scores, decisions ----------------------------------------------


def random_scores(schema: GroupSchema, n: int, seed: int) -> numpy.ndarray:
    rng = numpy.random.default_rng(seed)
    out = rng.random((n, schema.n_labels))
    for group, start, end in schema.slices():
        if group.is_multiclass:
            out[:, start:end] /= out[:, start:end].sum(axis=1, keepdims=True)
    return out.astype("f")


def hand_joint(row: List[float]) -> Dict[str, Dict[str, float]]:
    """The joint probabilities of one doc, by the chain rule written out."""
    cond = {
        "offensive": dict(zip(["no", "yes"], row[0:2])),
        "targeted": dict(zip(["no", "yes"], row[2:4])),
        "target": dict(zip(["group", "person"], row[4:6])),
        "topic": dict(zip(["news", "sport"], row[6:8])),
    }
    p_off = cond["offensive"]["yes"]
    p_tgt = cond["targeted"]["yes"] * p_off
    return {
        "offensive": cond["offensive"],
        "targeted": {k: v * p_off for k, v in cond["targeted"].items()},
        "target": {k: v * p_tgt for k, v in cond["target"].items()},
        "topic": cond["topic"],
    }


def test_joint_scores_follow_the_chain_rule_and_invert() -> None:
    schema = hier_schema()
    scores = random_scores(schema, 50, seed=1)
    joint = schema.joint_scores(scores)
    for row, got in zip(scores.tolist(), joint):
        expected = hand_joint(row)
        flat = [expected[g.name][label] for g in schema for label in g.labels]
        assert got == pytest.approx(flat, rel=1e-12)
    back = schema.conditional_scores(joint)
    # Exact for the one-level children (a float32 value times a float32 value is exact in
    # float64), within rounding for the grandchild.
    numpy.testing.assert_allclose(back, scores.astype("f8"), rtol=1e-12)
    numpy.testing.assert_array_equal(back.astype("f"), scores)


def test_conditional_scores_are_zero_where_the_condition_has_no_mass() -> None:
    schema = hier_schema()
    joint = numpy.zeros((1, schema.n_labels))
    joint[0, 0] = 1.0  # offensive/no = 1: the children have no mass
    assert schema.conditional_scores(joint)[0, 2:6].tolist() == [0.0] * 4


def hand_decide(schema: GroupSchema, row: List[float]) -> Dict[str, Any]:
    """Decisions of one doc written out: argmax / threshold, then block by the parent."""
    out: Dict[str, Any] = {}
    for group, start, end in schema.slices():
        values = row[start:end]
        if group.is_multiclass:
            decision: Any = group.labels[max(range(len(values)), key=lambda j: (values[j], -j))]
        else:
            decision = [lab for lab, v in zip(group.labels, values) if v >= schema.threshold]
        if group.name in PARENTS:
            parent, label = PARENTS[group.name]
            held = out[parent]
            ok = held is not None and (held == label if isinstance(held, str) else label in held)
            decision = decision if ok else None
        out[group.name] = decision
    return out


def test_decisions_are_blocked_below_an_unmet_condition() -> None:
    schema = hier_schema()
    scores = random_scores(schema, 200, seed=2)
    seen = {"blocked": 0, "open": 0}
    for row in scores.tolist():
        decided = schema.decide(row)
        assert decided == hand_decide(schema, row)
        seen["blocked" if decided["targeted"] is None else "open"] += 1
        if decided["targeted"] is None or decided["targeted"] == "no":
            assert decided["target"] is None
    assert min(seen.values()) > 20  # both cases were exercised


# -- gold -----------------------------------------------------------------------------------


def test_gold_refuses_a_child_annotated_where_its_condition_fails() -> None:
    reader = GoldReader(hier_schema())
    ok_missing_parent = {"targeted/yes": 1.0, "targeted/no": 0.0}
    reader.read(ok_missing_parent)
    reader.read({"offensive/yes": 1.0, "offensive/no": 0.0, "targeted/no": 1.0})
    reader.read({"offensive/no": 1.0, "offensive/yes": 0.0})  # child missing: fine
    with pytest.raises(GoldError, match="'targeted' is annotated, but its condition"):
        reader.read({"offensive/no": 1.0, "offensive/yes": 0.0, "targeted/yes": 1.0}, "txt")
    # A multilabel child of a multiclass child: the parent's 'yes' is 0 there.
    with pytest.raises(GoldError, match="'target' is annotated"):
        reader.read({"targeted/no": 1.0, "target/person": 0.0})


def test_gold_refuses_a_child_of_a_multilabel_parent_whose_label_is_off() -> None:
    schema = GroupSchema.from_config(
        {
            "toxicity": {"kind": "multilabel", "labels": ["insult", "threat"]},
            "insult_type": {
                "kind": "multiclass",
                "labels": ["a", "b"],
                "parent": "toxicity/insult",
            },
        }
    )
    reader = GoldReader(schema)
    reader.read({"toxicity/insult": 1.0, "insult_type/a": 1.0})
    reader.read({"toxicity/threat": 0.0, "insult_type/a": 1.0})  # insult itself unknown
    with pytest.raises(GoldError, match="'toxicity/insult' is 0"):
        reader.read({"toxicity/insult": 0.0, "insult_type/b": 1.0})


# -- end-to-end scores ---------------------------------------------------------------------


def hand_e2e_f(
    schema: GroupSchema, gold: List[Dict[str, float]], scores: numpy.ndarray, group: str
) -> Optional[float]:
    """Macro F of one conditional group end to end, counted doc by doc."""
    labels = schema[group].labels
    counts = {label: [0, 0, 0] for label in labels}  # tp, fp, fn
    for cats, row in zip(gold, scores.tolist()):
        decided = hand_decide(schema, row)[group]
        if decided is None:
            predicted = set()
        else:
            predicted = {decided} if isinstance(decided, str) else set(decided)
        annotated = any(key.startswith(group + "/") for key in cats)
        fails = False
        name = group
        while name in PARENTS:  # any gold condition above the group known to fail
            parent, label = PARENTS[name]
            if cats.get(f"{parent}/{label}") == 0.0:
                fails = True
            name = parent
        if not annotated and not fails:
            continue
        for label in labels:
            key = f"{group}/{label}"
            if annotated and key not in cats and not schema[group].is_multiclass:
                continue  # a multilabel label not annotated
            is_gold = annotated and cats.get(key) == 1.0
            is_pred = label in predicted
            counts[label][0] += is_gold and is_pred
            counts[label][1] += is_pred and not is_gold
            counts[label][2] += is_gold and not is_pred
    fs = []
    for tp, fp, fn in counts.values():
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        fs.append(2 * p * r / (p + r) if p + r else 0.0)
    return sum(fs) / len(fs)


def random_gold(schema: GroupSchema, n: int, seed: int) -> List[Dict[str, float]]:
    """Hierarchical gold with missing parts, always consistent with the conditions."""
    rng = numpy.random.default_rng(seed)
    out = []
    for _ in range(n):
        cats: Dict[str, float] = {}
        off = rng.random() < 0.5
        if rng.random() < 0.8:
            cats.update({"offensive/yes": float(off), "offensive/no": float(not off)})
        tgt = off and rng.random() < 0.6
        if off and rng.random() < 0.8:
            cats.update({"targeted/yes": float(tgt), "targeted/no": float(not tgt)})
        if tgt and rng.random() < 0.8:
            for label in ("group", "person"):
                if rng.random() < 0.9:
                    cats[f"target/{label}"] = float(rng.random() < 0.5)
        cats.update({"topic/news": float(rng.random() < 0.3)})
        out.append(cats)
    return out


def test_end_to_end_scores_match_a_doc_by_doc_count() -> None:
    schema = hier_schema()
    gold = random_gold(schema, 300, seed=3)
    scores = random_scores(schema, 300, seed=4)
    truths, masks = GoldReader(schema).read_batch((cats, "") for cats in gold)
    results = score_arrays(schema, truths, masks, scores)
    for group in ("targeted", "target"):
        assert results[f"mtl_{group}_e2e_macro_f"] == pytest.approx(
            hand_e2e_f(schema, gold, scores, group)
        )
        assert results[f"mtl_{group}_e2e_n_docs"] > 50
    assert "mtl_topic_e2e_macro_f" not in results
    # Multiclass e2e accuracy: right label, or no label where the gold condition fails.
    right = n = 0
    for cats, row in zip(gold, scores.tolist()):
        decided = hand_decide(schema, row)["targeted"]
        if "targeted/yes" in cats:
            n += 1
            right += decided == ("yes" if cats["targeted/yes"] == 1.0 else "no")
        elif cats.get("offensive/yes") == 0.0:
            n += 1
            right += decided is None
    assert results["mtl_targeted_e2e_acc"] == pytest.approx(right / n)


# -- the component -------------------------------------------------------------------------

TRAIN: List[tuple] = [
    (
        "you are an idiot",
        {
            "offensive/yes": 1.0,
            "offensive/no": 0.0,
            "targeted/yes": 1.0,
            "targeted/no": 0.0,
            "target/person": 1.0,
            "target/group": 0.0,
        },
    ),
    (
        "what a lovely day",
        {"offensive/yes": 0.0, "offensive/no": 1.0, "topic/news": 0.0, "topic/sport": 0.0},
    ),
    (
        "this damn weather",
        {"offensive/yes": 1.0, "offensive/no": 0.0, "targeted/yes": 0.0, "targeted/no": 1.0},
    ),
    (
        "those people are vermin",
        {
            "offensive/yes": 1.0,
            "offensive/no": 0.0,
            "targeted/yes": 1.0,
            "targeted/no": 0.0,
            "target/group": 1.0,
            "target/person": 0.0,
        },
    ),
    (
        "the match was great",
        {"offensive/no": 1.0, "offensive/yes": 0.0, "topic/sport": 1.0, "topic/news": 0.0},
    ),
]
TEXTS = ["you are an idiot", "what a lovely day", "this damn weather", "hello", "the news"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    nlp = make_nlp(HIER)
    examples = make_examples(nlp, TRAIN)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(10):
        nlp.update(examples, sgd=optimizer)
    path = tmp_path_factory.mktemp("cond") / "model"
    nlp.to_disk(path)
    return nlp, path


def check_doc(doc: Any, schema: GroupSchema) -> None:
    scores = doc._.mtl_scores
    row = [scores[g.name][label] for g in schema for label in g.labels]
    expected = hand_joint(row)
    for group in schema:
        for label in group.labels:
            assert doc.cats[f"{group.name}/{label}"] == pytest.approx(
                expected[group.name][label], rel=1e-6
            )
    assert doc._.mtl_labels == hand_decide(schema, row)


def test_component_writes_joint_cats_conditional_scores_and_blocked_labels(trained) -> None:
    nlp, path = trained
    schema = nlp.get_pipe("mtl_textcat").schema
    docs = list(nlp.pipe(TEXTS))
    for doc in docs:
        check_doc(doc, schema)
    # The parent's own scores are unchanged in doc.cats; a child's are joint.
    doc = docs[0]
    assert doc.cats["offensive/yes"] == doc._.mtl_scores["offensive"]["yes"]
    assert doc.cats["targeted/yes"] < doc._.mtl_scores["targeted"]["yes"]
    # Loaded from disk: the parents come back and the outputs are the same.
    loaded = spacy.load(path)
    assert loaded.get_pipe("mtl_textcat").schema["target"].parent == "targeted/yes"
    for doc, again in zip(docs, loaded.pipe(TEXTS)):
        assert again.cats == pytest.approx(doc.cats, rel=1e-6)
        assert again._.mtl_labels == doc._.mtl_labels


def test_component_blocks_a_child_where_the_parent_decides_otherwise(trained) -> None:
    nlp, _ = trained
    comp = nlp.get_pipe("mtl_textcat")
    schema = comp.schema
    # Force the decisions through the logits: offensive/no wins for doc 0, yes for doc 1.
    logits = numpy.zeros((2, schema.n_labels), dtype="f")
    logits[0, 0], logits[1, 1] = 5.0, 5.0
    logits[:, 3] = 5.0  # targeted/yes
    logits[:, 6:] = -5.0  # topic: nothing
    docs = [nlp.make_doc("a"), nlp.make_doc("b")]
    comp.set_annotations(docs, logits)
    assert docs[0]._.mtl_labels["targeted"] is None
    assert docs[0]._.mtl_labels["target"] is None
    assert docs[0]._.mtl_labels["topic"] == []
    assert docs[1]._.mtl_labels["targeted"] == "yes"
    assert docs[1]._.mtl_labels["target"] is not None


def test_predict_columns_leave_a_blocked_child_empty(trained) -> None:
    nlp, _ = trained
    schema = nlp.get_pipe("mtl_textcat").schema
    out = OutputColumns(schema, scores=True)
    for doc in nlp.pipe(TEXTS):
        labels = out.labels(out.scores_of(doc.cats))
        assert labels == list(doc._.mtl_labels.values())
        cells = out.tabular(out.scores_of(doc.cats))
        for cell, group in zip(cells, schema):
            if doc._.mtl_labels[group.name] is None:
                assert cell == ""


def test_scorer_scores_children_on_conditional_scores(trained) -> None:
    nlp, _ = trained
    examples = make_examples(nlp, TRAIN)
    scores = nlp.evaluate(examples)
    assert "mtl_targeted_e2e_macro_f" in scores and "mtl_target_e2e_n_docs" in scores
    # The conditional scoring equals scoring the conditional scores directly.
    schema = nlp.get_pipe("mtl_textcat").schema
    docs = list(nlp.pipe(text for text, _ in TRAIN))
    cond = numpy.asarray(
        [[d._.mtl_scores[g.name][lab] for g in schema for lab in g.labels] for d in docs], "f"
    )
    truths, masks = GoldReader(schema).read_batch((cats, "") for _, cats in TRAIN)
    direct = score_arrays(schema, truths, masks, cond)
    for key in ("mtl_targeted_macro_f", "mtl_target_macro_auc", "mtl_targeted_e2e_macro_f"):
        assert scores[key] == pytest.approx(direct[key])


def test_training_refuses_inconsistent_hierarchical_gold() -> None:
    nlp = make_nlp(HIER)
    bad = [
        ("x", {"offensive/no": 1.0, "offensive/yes": 0.0, "targeted/yes": 1.0, "targeted/no": 0.0})
    ]
    examples = make_examples(nlp, TRAIN + bad)
    with pytest.raises(GoldError, match="condition 'offensive/yes'"):
        optimizer = nlp.initialize(lambda: examples)
        nlp.update(examples, sgd=optimizer)


def test_label_group_parent_is_validated_alone() -> None:
    with pytest.raises(SchemaError):
        LabelGroup("a", "multiclass", ("x",), parent=3)  # type: ignore[arg-type]
    assert LabelGroup("a", "multiclass", ("x",), parent="b/y").condition == ("b", "y")
    assert hier_schema().condition_columns[:2] == (None, 1)


def test_teacher_targets_skip_a_child_whose_gold_condition_fails() -> None:
    nlp = make_nlp(HIER)
    examples = make_examples(nlp, TRAIN)
    nlp.initialize(lambda: examples)
    comp = nlp.get_pipe("mtl_textcat")
    schema = comp.schema
    for eg in examples:  # a teacher logit for every label of every doc
        eg.reference._.mtl_teacher = {key: 0.5 for key in schema.keys}
    _, mask = comp._targets(examples)
    mask = numpy.asarray(mask)
    for (text, cats), row in zip(TRAIN, mask):
        fails = cats.get("offensive/yes") == 0.0
        # targeted (columns 2-3) and target (4-5) sit below offensive/yes
        assert (row[2:6] == 0).all() == fails, text
        assert (row[0:2] > 0).all() and (row[6:] > 0).all()


def test_report_has_the_end_to_end_table(trained, tmp_path) -> None:
    from spacy_mtl.workflows.report import evaluate_to_dir

    nlp, _ = trained
    result = evaluate_to_dir(nlp, make_examples(nlp, TRAIN), tmp_path, plots=False)
    report = (tmp_path / "report.md").read_text(encoding="utf8")
    assert "| group | condition | docs | e2e macro F | e2e acc |" in report
    assert "| targeted | offensive/yes |" in report
    assert "applies where `targeted/yes`" in report
    e2e = next(r.e2e for r in result.groups if r.name == "targeted")
    assert e2e["n_docs"] == 5  # 3 docs annotated for targeted + 2 whose offensive is no
    assert result.metrics["mtl_targeted_e2e_macro_f"] == pytest.approx(e2e["macro_f"])
