"""evaluate: metrics.json, report.md with its PNGs, PR maths, and the tune/evaluate CLI."""

import re
import sys
from pathlib import Path

import numpy
import pytest
import spacy
import srsly
from conftest import GROUPS, TRAIN_DATA, make_examples, make_nlp
from sklearn.metrics import average_precision_score
from sklearn.metrics import precision_recall_curve as sk_pr_curve
from spacy.tokens import DocBin
from typer.testing import CliRunner

from spacy_mtl.calibration import average_precision, precision_recall_curve
from spacy_mtl.cli import app
from spacy_mtl.report import evaluate_to_dir, load_corpus, metrics_dict

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny Tok2Vec pipeline trained a few steps, saved, with a gold DocBin beside it."""
    nlp = make_nlp(GROUPS)
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(5):
        nlp.update(examples, sgd=optimizer)
    root = tmp_path_factory.mktemp("trained")
    nlp.to_disk(root / "model")
    db = DocBin()
    for text, cats in TRAIN_DATA:
        doc = nlp.make_doc(text)
        doc.cats = cats
        db.add(doc)
    db.to_disk(root / "dev.spacy")
    return nlp, examples, root


def _linked_files(report: Path):
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report.read_text(encoding="utf8"))


def test_evaluate_writes_metrics_report_and_plots(trained, tmp_path) -> None:
    nlp, examples, _ = trained
    result = evaluate_to_dir(nlp, examples, tmp_path / "metrics", data_name="train")
    metrics = srsly.read_json(tmp_path / "metrics" / "metrics.json")
    for key in (
        "mtl_score",
        "speed",
        "mtl_sentiment_acc",
        "mtl_sentiment_macro_f",
        "mtl_emotion_micro_f",
        "mtl_emotion_macro_f",
        "mtl_emotion_macro_auc",
    ):
        assert key in metrics
    assert all(type(v) is float for v in metrics.values())
    assert metrics["speed"] > 0
    # Same numbers as nlp.evaluate, which runs the pipeline on its own.
    reference = nlp.evaluate(examples)
    assert metrics["mtl_score"] == pytest.approx(reference["mtl_score"])
    assert metrics["mtl_emotion_macro_auc"] == pytest.approx(reference["mtl_emotion_macro_auc"])

    report = tmp_path / "metrics" / "report.md"
    text = report.read_text(encoding="utf8")
    assert "| sentiment | multiclass | 3 | 5 |" in text
    assert "| emotion | multilabel | 3 | 5 |" in text
    links = _linked_files(report)
    # f1 + confusion + reliability for the multiclass group, f1 + pr + reliability for the other
    assert len(links) == 6
    assert {Path(link).name for link in links} == {p.name for p in result.plot_paths}
    for link in links:
        assert not Path(link).is_absolute()
        png = report.parent / link
        assert png.read_bytes()[:8] == PNG_MAGIC
        assert png.stat().st_size > 1000
    ece = next(g.ece for g in result.groups if g.name == "sentiment")
    assert 0.0 <= ece <= 1.0


def test_evaluate_without_plots_has_no_links(trained, tmp_path) -> None:
    nlp, examples, _ = trained
    result = evaluate_to_dir(nlp, examples, tmp_path, plots=False)
    assert result.plot_paths == []
    assert _linked_files(result.report_path) == []
    assert not (tmp_path / "plots").exists()


def test_missing_matplotlib_names_the_extra(trained, tmp_path, monkeypatch) -> None:
    nlp, examples, _ = trained
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib → ImportError
    with pytest.raises(ImportError, match=re.escape("pip install spacy-mtl[report]")):
        evaluate_to_dir(nlp, examples, tmp_path)


def test_metrics_dict_keeps_top_level_numbers_only() -> None:
    scores = {
        "a": numpy.float32(0.5),
        "b": None,
        "c": {"x": {"p": 1.0}},
        "d": 3,
        "e": float("nan"),
        "speed": 100.0,
    }
    out = metrics_dict(scores)
    assert out == {"a": 0.5, "d": 3.0, "speed": 100.0}
    assert all(type(v) is float for v in out.values())


def test_pr_curve_and_ap_against_sklearn() -> None:
    rng = numpy.random.default_rng(7)
    scores = numpy.round(rng.random(80), 1)  # ties
    gold = rng.random(80) < 0.35
    precision, recall, thresholds = precision_recall_curve(scores, gold)
    sk_p, sk_r, sk_t = sk_pr_curve(gold, scores)
    # sklearn: thresholds ascending, plus a final (P=1, R=0) point.
    assert thresholds[::-1] == pytest.approx(sk_t)
    assert precision[::-1] == pytest.approx(sk_p[:-1])
    assert recall[::-1] == pytest.approx(sk_r[:-1])
    assert average_precision(scores, gold) == pytest.approx(average_precision_score(gold, scores))
    assert average_precision(scores, numpy.zeros(80, dtype=bool)) is None


def test_load_corpus_errors(trained, tmp_path) -> None:
    nlp, _, root = trained
    with pytest.raises(FileNotFoundError, match="Corpus not found"):
        load_corpus(nlp, tmp_path / "nope.spacy")
    with pytest.raises(FileNotFoundError, match=r"No \.spacy file"):
        load_corpus(nlp, tmp_path)
    assert len(load_corpus(nlp, root / "dev.spacy")) == len(TRAIN_DATA)


# -- CLI --------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_evaluate(trained, tmp_path) -> None:
    _, _, root = trained
    out = tmp_path / "metrics"
    result = runner.invoke(
        app, ["evaluate", str(root / "model"), str(root / "dev.spacy"), "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "mtl_score" in srsly.read_json(out / "metrics.json")
    assert all((out / link).stat().st_size > 0 for link in _linked_files(out / "report.md"))
    assert "emotion" in result.output


def test_cli_tune(trained, tmp_path) -> None:
    _, _, root = trained
    out = tmp_path / "tuned"
    result = runner.invoke(
        app,
        [
            "tune",
            str(root / "model"),
            str(root),  # a folder of .spacy files works too
            str(out),
            "--min-threshold",
            "0.2",
            "--max-threshold",
            "0.8",
            "--batch-size",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    report = srsly.read_json(out / "tune.json")
    assert set(report["groups"]) == {"sentiment", "emotion"}
    emotion = report["groups"]["emotion"]
    assert {"ece_before", "ece_after", "macro_f_before", "macro_f_after"} <= set(emotion)
    tuned = spacy.load(out).get_pipe("mtl_textcat").schema
    assert tuned["sentiment"].temperature == pytest.approx(
        report["groups"]["sentiment"]["temperature"]
    )
    assert all(0.2 <= t <= 0.8 for t in tuned["emotion"].thresholds.values())
    assert "ECE" in result.output


@pytest.mark.parametrize("command", ["tune", "evaluate"])
def test_cli_bad_paths_fail_clearly(trained, tmp_path, command) -> None:
    _, _, root = trained
    args = [command, str(root / "model"), str(tmp_path / "missing.spacy")]
    args += [str(tmp_path / "out")] if command == "tune" else ["--output", str(tmp_path / "m")]
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert "not found" in result.output
    assert "missing.spacy" in result.output
    args[1] = str(tmp_path / "no_model")
    args[2] = str(root / "dev.spacy")
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert result.exit_code == 1
    assert "no such folder or installed pipeline package" in result.output
    assert "no_model" in result.output


def test_cli_tune_unknown_component(trained, tmp_path) -> None:
    _, _, root = trained
    result = runner.invoke(
        app,
        ["tune", str(root / "model"), str(root / "dev.spacy"), str(tmp_path), "-c", "nope"],
    )
    assert result.exit_code != 0
    assert "no component 'nope'" in result.output
