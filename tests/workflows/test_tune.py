"""tune: the tuned schema and its report, on arrays and on a pipeline (the calibration maths
are tested in test_calibration.py)."""

import inspect
import math

import numpy
import pytest
import spacy
from conftest import GROUPS, TRAIN_DATA, make_examples, make_nlp

from spacy_mtl.gold import GoldReader
from spacy_mtl.schema import GroupSchema
from spacy_mtl.workflows.calibration import apply_temperature, best_class_offsets
from spacy_mtl.workflows.tune import (
    TuneResult,
    collect_logits,
    read_gold,
    tune_arrays,
    tune_pipeline,
)

# -- on arrays --------------------------------------------------------------------------


def test_label_without_positives_keeps_default() -> None:
    schema = GroupSchema.from_config(
        {"emotion": {"kind": "multilabel", "labels": ["joy", "anger", "rare"]}}
    )
    logits = numpy.asarray([[2.0, -1.0, -3.0], [-2.0, 1.5, -2.0], [0.3, -0.2, -1.0], [-1, 2, 0]])
    truths = numpy.asarray([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0]], dtype="f")
    masks = numpy.ones_like(truths)
    masks[3, 2] = 0  # the last label is missing for one doc; still no positive anywhere
    new, results = tune_arrays(schema, logits, truths, masks, temperatures=False)
    group = new["emotion"]
    assert "rare" not in group.thresholds
    assert group.threshold_for("rare", new.threshold) == 0.5
    assert set(group.thresholds) == {"joy", "anger"}
    assert results[0].labels["rare"].tuned is False
    assert results[0].labels["joy"].tuned is True
    assert results[0].labels["rare"].n_annotated == 3


def test_multiclass_group_gets_class_offsets_and_scores_them() -> None:
    """tune fits class offsets for macro F1; the tuned schema decides with them, and
    --no-thresholds leaves the decision rule alone."""
    schema = GroupSchema.from_config(
        {"offense": {"kind": "multiclass", "labels": ["hate", "offensive", "neither"]}}
    )
    rng = numpy.random.default_rng(2)
    gold = rng.choice(3, size=400, p=[0.1, 0.7, 0.2])
    logits = rng.normal(size=(400, 3)) + 2.0 * numpy.eye(3)[gold]
    logits[:, 0] -= 2.0
    truths = numpy.eye(3, dtype="f")[gold]
    masks = numpy.ones_like(truths)
    new, results = tune_arrays(schema, logits, truths, masks, temperatures=False)
    offsets = new["offense"].class_offsets
    assert offsets.get("hate", 0.0) > 0.5
    assert results[0].class_offsets == dict(offsets) and results[0].class_offsets_before == {}
    assert results[0].macro_f_after > results[0].macro_f_before + 0.05
    # The reported "after" is the scorer's macro F under the tuned schema's decisions.
    picks = new["offense"].decide_matrix(apply_temperature(True, logits, 1.0)).argmax(axis=1)
    from spacy_mtl.workflows.calibration import multiclass_macro_f1

    assert results[0].macro_f_after == pytest.approx(multiclass_macro_f1(gold, picks, 3))
    kept, _ = tune_arrays(schema, logits, truths, masks, temperatures=False, thresholds=False)
    assert kept["offense"].class_offsets == {}


# -- on a pipeline ----------------------------------------------------------------------


def _trained(bert=None, steps: int = 6):
    nlp = make_nlp(GROUPS, bert=bert)
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(steps):
        nlp.update(examples, sgd=optimizer)
    return nlp, examples


def test_tune_save_load_round_trip(tiny_bert, tmp_path) -> None:
    nlp, examples = _trained(tiny_bert, steps=4)
    comp = nlp.get_pipe("mtl_textcat")
    texts = [text for text, _ in TRAIN_DATA]
    # The listener path: logits collected for tuning are the pipeline's own.
    logits = collect_logits(nlp, texts, batch_size=4)
    probs = numpy.asarray([[doc.cats[k] for k in comp.schema.keys] for doc in nlp.pipe(texts)])
    assert apply_temperature(False, logits, 1.0)[:, 3:] == pytest.approx(probs[:, 3:], abs=1e-5)

    result = tune_pipeline(nlp, examples, floor=0.6, ceiling=0.9, batch_size=4)
    schema = comp.schema
    assert schema is result.schema
    assert all(0.6 <= t <= 0.9 for t in schema["emotion"].thresholds.values())
    assert set(schema["emotion"].thresholds) == {"joy", "anger", "sadness"}
    assert schema["sentiment"].temperature == result.groups[0].temperature != 1.0
    # Temperature scaling never raises the dev NLL it minimises.
    for group in result.groups:
        assert group.nll_after <= group.nll_before + 1e-9
    out = tmp_path / "tuned"
    nlp.to_disk(out)
    loaded = spacy.load(out)
    loaded_schema = loaded.get_pipe("mtl_textcat").schema
    # srsly's JSON reader may return a float one ulp off (0.6 → 0.6000000000000001).
    for name in ("sentiment", "emotion"):
        assert loaded_schema[name].temperature == pytest.approx(schema[name].temperature)
    emotion = loaded_schema["emotion"]
    assert emotion.thresholds == pytest.approx(schema["emotion"].thresholds)
    for doc, logit_row in zip(loaded.pipe(texts), logits):
        scores = doc._.mtl_scores["emotion"]
        expected = apply_temperature(False, logit_row[3:], emotion.temperature)
        assert list(scores.values()) == pytest.approx(expected.tolist(), abs=1e-5)
        chosen = [lab for lab, s in scores.items() if s >= emotion.thresholds[lab]]
        assert doc._.mtl_labels["emotion"] == chosen


def test_tune_pipeline_errors() -> None:
    nlp, examples = _trained(steps=1)
    with pytest.raises(ValueError, match="no component 'nope'"):
        tune_pipeline(nlp, examples, component="nope")
    with pytest.raises(ValueError, match="no dev examples"):
        tune_pipeline(nlp, [])
    with pytest.raises(ValueError, match="min-threshold"):
        tune_pipeline(nlp, examples, floor=0.9, ceiling=0.1)


def test_read_gold_ignores_other_components_groups() -> None:
    schema = GroupSchema.from_config({"sentiment": GROUPS["sentiment"]})
    nlp = make_nlp(GROUPS)
    examples = make_examples(nlp)
    truths, masks = read_gold(schema, examples)
    reader = GoldReader(schema)
    expected_t, expected_m = reader.read_batch(
        ({k: v for k, v in cats.items() if k.startswith("sentiment/")}, text)
        for text, cats in TRAIN_DATA
    )
    assert numpy.array_equal(truths, expected_t) and numpy.array_equal(masks, expected_m)
    assert math.isclose(float(masks[:, 0].sum()), 5.0)


def test_temperature_at_bound_is_flagged() -> None:
    # Every doc classified right with a wide margin: the NLL keeps falling as T → 0.
    schema = GroupSchema.from_config({"s": {"kind": "multiclass", "labels": ["a", "b"]}})
    logits = numpy.asarray([[3.0, -3.0], [-2.0, 2.0], [4.0, 0.0]])
    truths = numpy.asarray([[1, 0], [0, 1], [1, 0]], dtype="f")
    new, results = tune_arrays(schema, logits, truths, numpy.ones_like(truths))
    assert results[0].temperature_at_bound is True
    assert results[0].temperature_fitted is not None and results[0].temperature_fitted < 0.1
    assert new["s"].temperature == 1.0  # the fit is reported, not saved
    # Mixed outcomes pin T down inside the bounds.
    truths[2] = [0, 1]
    _, results = tune_arrays(schema, logits, truths, numpy.ones_like(truths))
    assert results[0].temperature_at_bound is False


def _result(schema: GroupSchema, groups) -> TuneResult:
    return TuneResult(component="mtl_textcat", n_docs=8, groups=groups, schema=schema)


def test_small_dev_set_keeps_temperature_and_names_the_flag() -> None:
    """8 dev docs, all right with a margin (the issue's case: T ran to 0.05 and the tuned
    model said 0.993 where the model said .45): T stays 1.0 and the warning says why and
    names --no-temperature. A group that the same data do pin down is still tuned."""
    schema = GroupSchema.from_config(
        {
            "sentiment": {"kind": "multiclass", "labels": ["negative", "positive"]},
            "emotion": {"kind": "multilabel", "labels": ["joy", "anger"]},
        }
    )
    rng = numpy.random.default_rng(0)
    gold = numpy.asarray([0, 1, 0, 1, 1, 0, 1, 0])
    sentiment = numpy.stack([1.0 - 2.0 * gold, 2.0 * gold - 1.0], axis=1) * 0.4
    emotion = rng.normal(size=(8, 2))
    logits = numpy.concatenate([sentiment, emotion], axis=1)
    truths = numpy.concatenate(
        [numpy.eye(2)[gold], (rng.random((8, 2)) < 0.5).astype("f")], axis=1
    ).astype("f")
    masks = numpy.ones_like(truths)
    new, results = tune_arrays(schema, logits, truths, masks)
    by_name = {g.group: g for g in results}
    sent = by_name["sentiment"]
    assert sent.temperature_at_bound and sent.temperature_fitted < 0.0625
    assert sent.temperature == new["sentiment"].temperature == 1.0
    # What the saved model now says for a doc it got right: .69, not .99.
    assert apply_temperature(True, sentiment[:1], 1.0)[0, 0] == pytest.approx(0.69, abs=0.01)
    warnings = _result(new, results).warnings()
    about = [w for w in warnings if "temperature" in w]
    assert len(about) == 1 and "'sentiment'" in about[0]
    assert "--no-temperature" in about[0] and "stays 1" in about[0] and "8 dev docs" in about[0]
    assert all("--no-temperature" in w for w in about)
    # The flag the message names is the CLI's.
    from spacy_mtl import cli

    assert "--no-temperature" in inspect.getsource(cli.tune_command)


def test_ordinary_dev_set_still_tunes_a_temperature() -> None:
    """Noisy logits of a known over-confidence (x3): the fit lands inside the bounds, is
    saved, and nothing is flagged."""
    schema = GroupSchema.from_config({"s": {"kind": "multiclass", "labels": ["a", "b", "c"]}})
    rng = numpy.random.default_rng(1)
    gold = rng.integers(0, 3, size=300)
    logits = 3.0 * (rng.normal(size=(300, 3)) + 1.5 * numpy.eye(3)[gold])
    truths = numpy.eye(3, dtype="f")[gold]
    new, results = tune_arrays(schema, logits, truths, numpy.ones_like(truths))
    assert results[0].temperature_at_bound is False
    assert 1.5 < new["s"].temperature < 6.0
    assert new["s"].temperature == results[0].temperature == results[0].temperature_fitted
    assert _result(new, results).warnings() == []


def test_labels_without_dev_positive_are_named_and_not_tuned() -> None:
    schema = GroupSchema.from_config(
        {
            "emotion": {"kind": "multilabel", "labels": ["joy", "anger", "rare"]},
            "offense": {"kind": "multiclass", "labels": ["hate", "offensive", "neither"]},
        }
    )
    rng = numpy.random.default_rng(3)
    n = 60
    gold_mc = rng.choice([1, 2], size=n)  # "hate" is never gold in dev
    mc_logits = rng.normal(size=(n, 3)) + 2.0 * numpy.eye(3)[gold_mc]
    mc_logits[:10, 0] += 4.0  # ... but the model predicts it on some docs
    ml_gold = numpy.stack([rng.random(n) < 0.4, rng.random(n) < 0.3, numpy.zeros(n)], 1)
    ml_logits = rng.normal(size=(n, 3)) + 2.0 * ml_gold
    logits = numpy.concatenate([ml_logits, mc_logits], axis=1)
    truths = numpy.concatenate([ml_gold, numpy.eye(3)[gold_mc]], axis=1).astype("f")
    masks = numpy.ones_like(truths)
    new, results = tune_arrays(schema, logits, truths, masks, temperatures=False)
    emotion, offense = results
    assert emotion.no_dev_positive == ["rare"] and offense.no_dev_positive == ["hate"]
    assert "rare" not in new["emotion"].thresholds and emotion.labels["rare"].tuned is False
    assert new["emotion"].threshold_for("rare", new.threshold) == 0.5
    # Untuned, a class never gold in dev gets a negative offset (suppressing it only fits
    # dev's lack of it); tune keeps it at 0.
    free = best_class_offsets(apply_temperature(True, mc_logits, 1.0), gold_mc)
    assert free is not None and free.offsets[0] < 0
    assert "hate" not in new["offense"].class_offsets
    warnings = _result(new, results).warnings()
    assert len(warnings) == 2
    assert "'emotion'" in warnings[0] and "'rare'" in warnings[0] and "1 of 3" in warnings[0]
    assert "'offense'" in warnings[1] and "'hate'" in warnings[1]
    assert "'joy'" not in warnings[0] and "'neither'" not in warnings[1]


# -- issue 29: nothing to tune, and outputs that cannot be written --------------------


def _renamed(examples, old: str, new: str):
    """Copies of the examples with the gold keys of group `old` renamed to `new`."""
    from spacy.training import Example

    out = []
    for eg in examples:
        ref = eg.reference.copy()
        ref.cats = {
            (new + key[len(old) :] if key.startswith(old + "/") else key): value
            for key, value in eg.reference.cats.items()
        }
        out.append(Example(eg.predicted, ref))
    return out


def test_tune_refuses_a_corpus_with_nothing_to_tune() -> None:
    nlp, examples = _trained(steps=1)
    other = _renamed(_renamed(examples, "sentiment", "polarity"), "emotion", "feeling")
    with pytest.raises(ValueError, match="Nothing to tune for none of them") as info:
        tune_pipeline(nlp, other)
    text = str(info.value)
    assert "['sentiment', 'emotion']" in text and "'polarity'" in text and "'feeling'" in text
    # A misspelt group: the other group alone would be tuned and the typo ignored.
    typo = _renamed(examples, "emotion", "emotoin")
    with pytest.raises(ValueError, match=r"Nothing to tune for not \['emotion'\]"):
        tune_pipeline(nlp, typo)
    bare = _renamed(examples, "x", "x")
    for eg in bare:
        eg.reference.cats = {}
    with pytest.raises(ValueError, match=r"no gold doc\.cats at all"):
        tune_pipeline(nlp, bare)


def test_save_tuned_leaves_nothing_half_written(tmp_path, monkeypatch) -> None:
    import errno

    from spacy_mtl.workflows.tune import save_tuned

    nlp, _ = _trained(steps=1)
    real = type(nlp).to_disk

    def failing(self, path, **kwargs):  # writes part of the pipeline, then the disk is full
        real(self, path, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(type(nlp), "to_disk", failing)
    out = tmp_path / "deep" / "tuned"
    with pytest.raises(ValueError, match=r"Cannot save the tuned pipeline to .*No space left"):
        save_tuned(nlp, out, tmp_path / "tuned-tune.json", {"n_docs": 1})
    assert not out.exists() and sorted(p.name for p in out.parent.iterdir()) == []
    monkeypatch.setattr(type(nlp), "to_disk", real)
    save_tuned(nlp, out, tmp_path / "tuned-tune.json", {"n_docs": 1})
    assert (out / "config.cfg").is_file() and (tmp_path / "tuned-tune.json").is_file()
    assert sorted(p.name for p in out.parent.iterdir()) == ["tuned"]  # no temp folder


def test_tune_cli_unwritable_output_is_one_line(saved_pipeline, tmp_path, monkeypatch) -> None:
    import errno
    import tempfile

    from typer.testing import CliRunner

    from spacy_mtl.cli import app

    _, _, root = saved_pipeline
    (tmp_path / "taken").write_text("a file")
    args = ["tune", str(root / "model"), str(root / "dev.spacy")]
    result = CliRunner().invoke(app, [*args, str(tmp_path / "taken" / "tuned")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "is a file, where a folder" in " ".join(result.output.split())

    def read_only(*a, **k):  # root ignores chmod: simulate a read-only folder
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    result = CliRunner().invoke(app, [*args, str(tmp_path / "ro" / "tuned")])
    assert result.exit_code == 1, result.output
    assert "Permission denied" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "ro").exists()
