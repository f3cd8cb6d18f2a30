"""evaluate's report explains a few confidently right and confidently wrong docs per group."""

import re

import numpy
import pytest

from spacy_mtl.schema import LabelGroup
from spacy_mtl.workflows import report_render
from spacy_mtl.workflows.report import GroupReport, evaluate_to_dir
from spacy_mtl.workflows.report_explain import CONFIDENT, WRONG, md_cell, pick_cases


def _report(group: LabelGroup, probs, truths, masks) -> GroupReport:
    return GroupReport(
        component="mtl_textcat",
        group=group,
        n_docs=len(probs),
        macro_f=None,
        acc=None,
        micro_f=None,
        macro_auc=None,
        ece=None,
        labels=[],
        truths=numpy.asarray(truths, dtype="f8"),
        masks=numpy.asarray(masks, dtype="f8"),
        probs=numpy.asarray(probs, dtype="f8"),
    )


def test_multiclass_cases_rank_right_and_wrong_by_the_predicted_score() -> None:
    group = LabelGroup("sentiment", "multiclass", ("neg", "pos"))
    probs = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.99, 0.01], [0.05, 0.95]]
    truths = [[1, 0], [0, 1], [0, 1], [1, 0], [1, 0], [0, 1]]
    masks = [[1, 1]] * 5 + [[0, 0]]  # the last doc is not annotated: never picked
    cases = pick_cases(_report(group, probs, truths, masks), [5] * 6, k=2, max_tokens=10)
    assert cases == [
        (CONFIDENT, 4, 0),  # right, 0.99
        (CONFIDENT, 0, 0),  # right, 0.9
        (WRONG, 3, 1),  # predicted pos at 0.7, gold neg
        (WRONG, 2, 0),  # predicted neg at 0.6, gold pos
    ]
    # Docs longer than max_tokens (and empty ones) are not picked.
    cases = pick_cases(_report(group, probs, truths, masks), [5, 5, 5, 5, 50, 0], 2, 10)
    assert [(kind, row) for kind, row, _ in cases] == [
        (CONFIDENT, 0),
        (CONFIDENT, 1),
        (WRONG, 3),
        (WRONG, 2),
    ]


def test_multilabel_cases_take_false_positives_and_misses_and_each_doc_once() -> None:
    group = LabelGroup("emotion", "multilabel", ("joy", "anger"))
    probs = [[0.95, 0.9], [0.1, 0.2], [0.7, 0.05], [0.3, 0.6]]
    truths = [[1, 1], [1, 0], [0, 0], [0, 1]]
    masks = [[1, 1], [1, 1], [1, 1], [1, 0]]  # doc 3's anger is not annotated
    cases = pick_cases(_report(group, probs, truths, masks), [3] * 4, k=3, max_tokens=10)
    # Doc 0 has two true positives but is picked once, for its best one.
    assert [c for c in cases if c[0] == CONFIDENT] == [(CONFIDENT, 0, 0)]
    # Missed joy of doc 1 (1 - 0.1 = 0.9), false joy of doc 2 (0.7); doc 3's anger at 0.6
    # is not annotated, so not wrong.
    assert [c for c in cases if c[0] == WRONG] == [(WRONG, 1, 0), (WRONG, 2, 0)]


def test_evaluate_report_explains_docs_with_their_own_scores(saved_pipeline, tmp_path) -> None:
    nlp, examples, _ = saved_pipeline
    result = evaluate_to_dir(nlp, examples, tmp_path / "metrics", plots=False, explain=2)
    assert result.explanations_path == tmp_path / "metrics" / "explanations.html"
    page = result.explanations_path.read_text(encoding="utf8")
    text = result.report_path.read_text(encoding="utf8")
    assert text.count("### Explanations") == len(result.groups)
    total = 0
    for report in result.groups:
        assert report.explanations, report.name
        assert len({(c.kind, c.row) for c in report.explanations}) == len(report.explanations)
        for case in report.explanations:
            expl = case.explanation
            assert expl.text == examples[case.row].reference.text
            j = report.group.labels.index(expl.label)
            # The explanation's full-text score is the score the report judged the doc on.
            assert expl.score == pytest.approx(report.probs[case.row, j], abs=1e-5)
            assert len(expl.weights) == len(examples[case.row].reference)
            # Predicted: the group's decision rule on the doc's own row.
            row = report.group.decide_matrix(report.probs[case.row : case.row + 1])[0]
            assert case.predicted == tuple(
                label for label, on in zip(report.group.labels, row) if on
            )
            assert f"({expl.score:.3f})" in text
            total += 1
    assert page.count('class="mtl-explain"') == total
    assert len(re.findall(r"^\| (confident|wrong) \|", text, flags=re.M)) == total


def test_evaluate_explain_zero_writes_no_explanations(saved_pipeline, tmp_path) -> None:
    nlp, examples, _ = saved_pipeline
    result = evaluate_to_dir(nlp, examples, tmp_path, plots=False, explain=0)
    assert result.explanations_path is None
    assert not (tmp_path / "explanations.html").exists()
    assert "### Explanations" not in result.report_path.read_text(encoding="utf8")


def test_report_tables_share_one_markdown_escaper() -> None:
    # report.md's metric tables and its explanation tables escape cells the same way.
    assert report_render.md_cell is md_cell
    assert md_cell("a|b") == "a\\|b"
    assert md_cell("not_spam *x* [l](u) <b>") == "not\\_spam \\*x\\* \\[l\\](u) \\<b\\>"
    assert md_cell("two\r\nlines") == "two  lines"
