import numpy
import pytest

from spacy_mtl.errors import SchemaError
from spacy_mtl.schema import (
    GroupSchema,
    LabelGroup,
    group_evidence,
    infer_groups,
    infer_labels,
    split_key,
)

CONFIG = {
    "sentiment": {"kind": "multiclass", "labels": ["neg", "pos"], "class_weights": {"neg": 2.0}},
    "emotion": {
        "kind": "multilabel",
        "labels": ["joy", "anger/rage"],
        "weight": 2.0,
        "threshold": {"joy": 0.3},
        "pos_weight": {"anger/rage": 4.0},
    },
}


def test_round_trip_and_order() -> None:
    schema = GroupSchema.from_config(CONFIG, threshold=0.4)
    assert schema.names == ["sentiment", "emotion"]
    assert schema.keys == ["sentiment/neg", "sentiment/pos", "emotion/joy", "emotion/anger/rage"]
    assert [(g.name, s, e) for g, s, e in schema.slices()] == [
        ("sentiment", 0, 2),
        ("emotion", 2, 4),
    ]
    again = GroupSchema.from_config(schema.to_config(), threshold=schema.threshold)
    assert again == schema
    emotion = schema["emotion"]
    assert emotion.threshold_for("joy", 0.4) == 0.3
    assert emotion.threshold_for("anger/rage", 0.4) == 0.4
    assert emotion.label_weights("pos_weight") == [1.0, 4.0]
    assert schema["sentiment"].label_weights("class_weights") == [2.0, 1.0]


def test_split_key_uses_first_slash() -> None:
    assert split_key("emotion/anger/rage") == ("emotion", "anger/rage")
    assert split_key("nogroup") is None


@pytest.mark.parametrize(
    "groups,message",
    [
        ({"a": {"kind": "multi", "labels": ["x"]}}, "unknown kind 'multi'"),
        ({"a/b": {"kind": "multiclass", "labels": ["x"]}}, "may not contain '/'"),
        ({"a": {"kind": "multiclass", "labels": ["x", "x"]}}, "'x' is listed more than once"),
        ({"a": {"labels": ["x"]}}, "`kind` is required"),
        ({"a": {"kind": "multiclass", "labels": "x"}}, "must be a list of strings"),
        ({"a": {"kind": "multiclass", "labels": ["x"], "weight": -1}}, "weight must be"),
        ({"a": {"kind": "multiclass", "labels": ["x"], "threshold": {"x": 0.2}}}, "threshold"),
        ({"a": {"kind": "multilabel", "labels": ["x"], "class_weights": {"x": 1}}}, "class_w"),
        ({"a": {"kind": "multilabel", "labels": ["x"], "threshold": {"y": 0.2}}}, "'y'"),
        ({"a": {"kind": "multilabel", "labels": ["x"], "threshold": {"x": 1.5}}}, "[0, 1]"),
        ({"a": {"kind": "multilabel", "labels": ["x"], "colour": 1}}, "unknown setting"),
        ({"a": {"kind": "multilabel", "labels": ["x"], "class_offsets": {"x": 1}}}, "class_o"),
        ({"a": {"kind": "multiclass", "labels": ["x"], "class_offsets": {"y": 1}}}, "'y'"),
        ({"a": {"kind": "multiclass", "labels": ["x"], "class_offsets": {"x": "1"}}}, "number"),
        (
            {"a": {"kind": "multiclass", "labels": ["x"], "class_offsets": {"x": float("inf")}}},
            "finite",
        ),
        ({}, "no groups"),
    ],
)
def test_invalid_schemas(groups: dict, message: str) -> None:
    with pytest.raises(SchemaError, match=None) as err:
        GroupSchema.from_config(groups)
    assert message in str(err.value)


def test_empty_group_after_initialize_is_an_error() -> None:
    schema = GroupSchema.from_config({"a": {"kind": "multilabel", "labels": []}})
    assert not schema.is_complete
    with pytest.raises(SchemaError, match="Group 'a' has no labels"):
        schema.check_complete()


def test_infer_labels_sorted_and_checked() -> None:
    schema = GroupSchema.from_config(
        {"a": {"kind": "multilabel", "labels": []}, "b": {"kind": "multiclass", "labels": ["x"]}}
    )
    keys = ["a/zeta", "b/x", "a/alpha", "a/zeta"]
    assert infer_labels(keys, schema) == {"a": ["alpha", "zeta"]}
    with pytest.raises(SchemaError, match="group 'c'"):
        infer_labels(["c/x"], schema)
    with pytest.raises(SchemaError, match="has no '/'"):
        infer_labels(["plain"], schema)


def test_with_labels_only_fills_empty_groups() -> None:
    schema = GroupSchema.from_config(
        {"a": {"kind": "multilabel", "labels": []}, "b": {"kind": "multiclass", "labels": ["x"]}}
    )
    filled = schema.with_labels({"a": ["p", "q"], "b": ["ignored"]})
    assert filled["a"].labels == ("p", "q")
    assert filled["b"].labels == ("x",)
    with pytest.raises(SchemaError, match="not in the schema"):
        schema.with_labels({"zzz": ["p"]})


def test_label_group_is_immutable() -> None:
    group = LabelGroup(name="a", kind="multiclass", labels=("x", "y"))
    with pytest.raises(AttributeError):
        group.labels = ("z",)  # type: ignore[misc]


def test_reduction_defaults_to_doc_is_saved_and_validated() -> None:
    schema = GroupSchema.from_config(
        {
            "e": {"kind": "multilabel", "labels": ["a", "b"]},
            "p": {"kind": "multilabel", "labels": ["a"], "reduction": "pair"},
            "s": {"kind": "multiclass", "labels": ["x", "y"]},
        }
    )
    assert [g.reduction for g in schema] == ["doc", "pair", "doc"]
    cfg = schema.to_config()
    # Written for multilabel groups, so a saved model keeps its loss if the default changes.
    assert cfg["e"]["reduction"] == "doc" and cfg["p"]["reduction"] == "pair"
    assert "reduction" not in cfg["s"]
    assert GroupSchema.from_config(cfg) == schema
    with pytest.raises(SchemaError, match="reduction"):
        GroupSchema.from_config({"e": {"kind": "multilabel", "labels": ["a"], "reduction": "x"}})
    with pytest.raises(SchemaError, match="reduction"):
        GroupSchema.from_config({"s": {"kind": "multiclass", "labels": ["x"], "reduction": "pair"}})


def test_decide_multiclass_takes_first_argmax() -> None:
    group = LabelGroup("sentiment", "multiclass", ("neg", "neu", "pos"))
    assert group.decide([0.2, 0.5, 0.3]) == "neu"
    assert group.decide([0.4, 0.2, 0.4]) == "neg"  # ties: the first, as numpy's argmax
    matrix = group.decide_matrix([[0.2, 0.5, 0.3], [0.9, 0.05, 0.05]])
    assert matrix.tolist() == [[False, True, False], [True, False, False]]


def test_decide_multilabel_uses_own_threshold_else_the_default() -> None:
    group = LabelGroup("emotion", "multilabel", ("joy", "anger"), thresholds={"joy": 0.8})
    assert group.decide([0.7, 0.3], default=0.25) == ["anger"]  # 0.7 < 0.8; 0.3 >= 0.25
    assert group.decide([0.8, 0.3], default=0.5) == ["joy"]  # at the threshold: chosen
    assert group.resolved_thresholds(0.4) == (0.8, 0.4)


def test_schema_decide_resolves_the_component_threshold() -> None:
    schema = GroupSchema.from_config(
        {
            "sentiment": {"kind": "multiclass", "labels": ["neg", "pos"]},
            "emotion": {"kind": "multilabel", "labels": ["joy", "anger"]},
        },
        threshold=0.3,
    )
    assert schema.decide([0.1, 0.9, 0.35, 0.2]) == {"sentiment": "pos", "emotion": ["joy"]}


def test_fingerprint_names_groups_labels_and_width() -> None:
    schema = GroupSchema.from_config(
        {
            "a": {"kind": "multiclass", "labels": ["x", "y"]},
            "b": {"kind": "multilabel", "labels": ["z"]},
        }
    )
    assert schema.fingerprint() == {
        "groups": [["a", "multiclass", ["x", "y"]], ["b", "multilabel", ["z"]]],
        "n_labels": 3,
    }
    swapped = GroupSchema(groups=tuple(reversed(schema.groups)))
    assert swapped.fingerprint() != schema.fingerprint()


def test_class_offsets_shift_the_multiclass_decision() -> None:
    """argmax(log p + b), checked against an independent numpy computation."""
    group = LabelGroup("offense", "multiclass", ("hate", "offensive", "neither"),
                       class_offsets={"hate": 1.2, "neither": -0.3})  # fmt: skip
    assert group.decide([0.3, 0.6, 0.1]) == "hate"  # log .3 + 1.2 > log .6
    assert group.decide([0.1, 0.8, 0.1]) == "offensive"
    rng = numpy.random.default_rng(0)
    probs = rng.dirichlet([0.5, 2.0, 1.0], size=500)
    probs[0] = [0.0, 1.0, 0.0]  # log 0 must not break the rule
    with numpy.errstate(divide="ignore"):
        expected = (numpy.log(probs) + numpy.array([1.2, 0.0, -0.3])).argmax(axis=1)
    assert (group.decide_matrix(probs).argmax(axis=1) == expected).all()
    # Round trip through the config; unlisted classes are 0.
    again = LabelGroup.from_config("offense", group.to_config())
    assert again == group and again.resolved_offsets() == (1.2, 0.0, -0.3)


def test_empty_schema_only_where_allowed() -> None:
    """No groups: refused by default, allowed for a component that infers them at
    initialize, and then incomplete."""
    schema = GroupSchema.from_config({}, allow_empty=True)
    assert len(schema) == 0 and schema.n_labels == 0 and not schema.is_complete
    with pytest.raises(SchemaError, match="no groups"):
        schema.check_complete()


def test_infer_groups_kinds_and_labels() -> None:
    """Multiclass only where every doc with a key of the group has exactly one 1.0."""
    cats = [
        {"a/x": 1.0, "a/y": 0.0, "b/p": 1.0, "c/u": 1.0},
        {"a/y": 1.0, "b/p": 1.0, "b/q": 1.0},
        {"b/q": 0.0, "c/v": 1.0},
        {},
    ]
    evidence = {e.name: e for e in group_evidence(cats)}
    assert (evidence["b"].n_docs, evidence["b"].n_not_one) == (3, 2)
    groups = infer_groups(cats)
    assert [(g.name, g.kind, g.labels) for g in groups] == [
        ("a", "multiclass", ("x", "y")),
        ("b", "multilabel", ("p", "q")),
        ("c", "multiclass", ("u", "v")),
    ]
    assert infer_groups(reversed(cats)) == groups
    assert infer_groups([{}]) == ()
    with pytest.raises(SchemaError, match="no '/'"):
        infer_groups([{"plain": 1.0}])
