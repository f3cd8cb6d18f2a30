"""evaluate: metrics.json, report.md with its PNGs, PR maths, and the tune/evaluate CLI."""

import re
import sys
from pathlib import Path

import numpy
import pytest
import srsly
from conftest import TRAIN_DATA

from spacy_mtl.workflows.report import evaluate_to_dir, load_corpus, metrics_dict

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _linked_files(report: Path):
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report.read_text(encoding="utf8"))


def test_evaluate_writes_metrics_report_and_plots(saved_pipeline, tmp_path) -> None:
    nlp, examples, _ = saved_pipeline
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


def test_evaluate_without_plots_has_no_links(saved_pipeline, tmp_path) -> None:
    nlp, examples, _ = saved_pipeline
    result = evaluate_to_dir(nlp, examples, tmp_path, plots=False)
    assert result.plot_paths == []
    assert _linked_files(result.report_path) == []
    assert not (tmp_path / "plots").exists()


def test_missing_matplotlib_names_the_extra(saved_pipeline, tmp_path, monkeypatch) -> None:
    nlp, examples, _ = saved_pipeline
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


def test_load_corpus_errors(saved_pipeline, tmp_path) -> None:
    nlp, _, root = saved_pipeline
    with pytest.raises(FileNotFoundError, match="Corpus not found"):
        load_corpus(nlp, tmp_path / "nope.spacy")
    with pytest.raises(FileNotFoundError, match=r"No \.spacy file"):
        load_corpus(nlp, tmp_path)
    assert len(load_corpus(nlp, root / "dev.spacy")) == len(TRAIN_DATA)


def test_write_performance_puts_test_scores_in_meta_for_spacy_package(
    saved_pipeline, tmp_path
) -> None:
    import shutil

    import spacy
    from spacy.cli.package import get_meta

    from spacy_mtl.workflows.report import write_performance

    nlp, examples, root = saved_pipeline
    model = tmp_path / "model"
    shutil.copytree(root / "model", model)
    result = evaluate_to_dir(nlp, examples, tmp_path / "metrics", plots=False)
    write_performance(model, result.metrics, data_name="corpus/test")
    meta = srsly.read_json(model / "meta.json")
    assert meta["performance"]["mtl_score"] == pytest.approx(result.metrics["mtl_score"])
    assert meta["performance"]["mtl_emotion_macro_f"] == pytest.approx(
        result.metrics["mtl_emotion_macro_f"]
    )
    assert meta["spacy_mtl"]["performance_data"] == "corpus/test"
    # The pipeline still loads, and `spacy package` would card these scores (its meta merge).
    assert spacy.load(model).meta["performance"] == meta["performance"]
    assert get_meta(model, {"name": "x"})["performance"] == meta["performance"]


def test_write_performance_needs_a_folder(tmp_path) -> None:
    from spacy_mtl.workflows.report import write_performance

    with pytest.raises(FileNotFoundError, match="pipeline folder"):
        write_performance(tmp_path / "en_some_package", {"mtl_score": 0.5}, data_name="x")


def test_evaluate_progress_bar_counts_docs(saved_pipeline, tmp_path, capsys, monkeypatch) -> None:
    import tqdm

    seen = []

    class Recording(tqdm.tqdm):
        def __init__(self, *args, **kwargs) -> None:
            kwargs["disable"] = False  # as on a terminal
            super().__init__(*args, **kwargs)

        def close(self) -> None:
            if not self.disable:
                seen.append((self.n, self.total))
            super().close()

    monkeypatch.setattr(tqdm, "tqdm", Recording)
    nlp, examples, _ = saved_pipeline
    evaluate_to_dir(nlp, examples, tmp_path / "m", plots=False, show_progress=True)
    assert seen == [(len(examples), len(examples))]


# -- issue 29: nothing to score, and outputs that cannot be written --------------------


def test_evaluate_refuses_docs_without_gold(saved_pipeline, tmp_path) -> None:
    from spacy.training import Example

    nlp, examples, _ = saved_pipeline
    bare = [
        Example(nlp.make_doc(eg.reference.text), nlp.make_doc(eg.reference.text)) for eg in examples
    ]
    with pytest.raises(ValueError, match=r"Nothing to evaluate for none.*no gold doc\.cats"):
        evaluate_to_dir(nlp, bare, None)
    assert not (tmp_path / "out").exists()


def test_evaluate_output_that_cannot_be_written(saved_pipeline, tmp_path, monkeypatch) -> None:
    import errno

    from typer.testing import CliRunner

    from spacy_mtl.cli import app
    from spacy_mtl.workflows import report

    nlp, examples, root = saved_pipeline
    (tmp_path / "file").write_text("x")
    # A file where the folder goes: refused before the prediction runs, by the CLI too.
    result = CliRunner().invoke(
        app,
        ["evaluate", str(root / "model"), str(root / "dev.spacy"), "-o", str(tmp_path / "file")],
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "is a file, not a folder" in " ".join(result.output.split())

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(report.srsly, "write_json", full)
    with pytest.raises(ValueError, match=r"Cannot write the evaluation to .*No space left"):
        evaluate_to_dir(nlp, examples, tmp_path / "out", plots=False)
