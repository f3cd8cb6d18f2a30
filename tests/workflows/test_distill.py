"""Distillation: blended targets against torch, the λ schedule, teacher → student."""

import pickle
from typing import Dict, List

import numpy
import pytest
import torch
import torch.nn.functional as F
from conftest import GROUPS, TOK2VEC_MODEL, TRAIN_DATA, make_examples, make_nlp
from spacy.language import Language
from spacy.training import Example

from spacy_mtl.loss import group_loss
from spacy_mtl.schema import GroupSchema
from spacy_mtl.teacher import blend_targets, linear_schedule, schedule_value
from spacy_mtl.workflows.distill import teacher_logits

SCHEMA = GroupSchema.from_config(
    {
        "s": {"kind": "multiclass", "labels": ["a", "b", "c"], "weight": 1.0},
        "e": {"kind": "multilabel", "labels": ["p", "q"], "weight": 2.0},
    }
)


def test_blended_loss_and_gradient_match_torch_soft_targets() -> None:
    rng = numpy.random.default_rng(0)
    logits = rng.normal(size=(4, 5)).astype("f")
    t_logits = rng.normal(size=(4, 5)).astype("f") * 2
    truths = numpy.array(
        [[1, 0, 0, 1, 0], [0, 0, 1, 0, 1], [0, 0, 0, 0, 0], [0, 1, 0, 1, 0]], dtype="f"
    )
    gold_mask = numpy.array(
        [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0], [0, 0, 0, 0, 0], [0, 0, 0, 1, 0]], dtype="f"
    )
    truths *= gold_mask
    teacher_mask = numpy.array(
        [[1, 1, 1, 1, 1], [0, 0, 0, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], dtype="f"
    )
    lam, temp = 0.3, 2.0
    targets, mask = blend_targets(SCHEMA, truths, gold_mask, t_logits, teacher_mask, lam, temp)
    result = group_loss(numpy, SCHEMA, logits, targets, mask)

    # Independent: build the blended targets with torch and use torch's soft-target losses.
    tt = torch.tensor(t_logits, dtype=torch.float64) / temp
    teacher = torch.cat([torch.softmax(tt[:, :3], 1), torch.sigmoid(tt[:, 3:])], 1)
    gold = torch.tensor(truths, dtype=torch.float64)
    g, t = torch.tensor(gold_mask > 0), torch.tensor(teacher_mask > 0)
    blended = torch.where(g & t, lam * gold + (1 - lam) * teacher, torch.where(g, gold, teacher))
    keep = g | t
    x = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    rows = keep[:, 0]
    ce = F.cross_entropy(x[rows, :3], blended[rows, :3])
    bce = F.binary_cross_entropy_with_logits(x[:, 3:], blended[:, 3:], reduction="none")
    # The multilabel group's default reduction, "doc": summed BCE per doc ÷ docs.
    kept = keep[:, 3:]
    total = 1.0 * ce + 2.0 * bce[kept].sum() / kept.any(dim=1).sum()
    total.backward()
    assert result.total == pytest.approx(float(total.detach()), rel=1e-5)
    numpy.testing.assert_allclose(result.d_logits, x.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_linear_schedule() -> None:
    schedule = linear_schedule(0.0, 1.0, 4)
    assert [schedule(step) for step in range(6)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    # It also iterates like thinc's generator schedules, and pickles (a generator does not).
    values = iter(schedule)
    assert [next(values) for _ in range(6)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert pickle.loads(pickle.dumps(schedule))(2) == 0.5
    with pytest.raises(ValueError, match="steps must be positive"):
        linear_schedule(0.0, 1.0, 0)


def test_gold_weight_must_be_a_number_or_a_schedule_of_the_step() -> None:
    assert schedule_value(0.3, 7) == 0.3
    assert schedule_value(linear_schedule(0.0, 1.0, 10), 5) == 0.5
    with pytest.raises(ValueError, match="cannot be pickled"):
        schedule_value(iter([1.0, 1.0]), 0)
    with pytest.raises(ValueError, match="gold_weight"):
        # thinc's own schedules are generators: refused when the component is built.
        make_nlp(GROUPS, distill={"gold_weight": {"@schedules": "constant.v1", "rate": 0.5}})


def _distill_config(steps: int) -> Dict:
    return {
        "gold_weight": {"@schedules": "spacy-mtl.linear.v1", "steps": steps},
        "temperature": 1.0,
    }


def _train(nlp: Language, examples: List[Example], steps: int) -> None:
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(steps):
        nlp.update(examples, sgd=optimizer)


def test_gold_weight_follows_its_schedule_across_updates() -> None:
    nlp = make_nlp(GROUPS, distill=_distill_config(4))
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    component = nlp.get_pipe("mtl_textcat")
    seen = []
    for _ in range(6):
        nlp.update(examples, sgd=optimizer)
        seen.append(component.gold_weight)
    assert seen == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]


UNLABELLED = [
    "i love this fun day",
    "what an awful boring movie",
    "the food was fine",
    "i hate bad food",
    "great great film",
    "sad people",
    "this is ok",
    "really happy and nice",
]


def _distance(teacher: Language, student: Language, texts: List[str]) -> float:
    """Mean absolute difference of the two pipelines' scores over every doc.cats key."""
    gaps = [
        abs(t_doc.cats[key] - s_doc.cats[key])
        for t_doc, s_doc in zip(teacher.pipe(texts), student.pipe(texts))
        for key in t_doc.cats
    ]
    return sum(gaps) / len(gaps)


def test_student_learns_teacher_from_unlabelled_text() -> None:
    teacher = make_nlp(GROUPS)
    _train(teacher, make_examples(teacher), steps=40)
    teacher_pipe = teacher.get_pipe("mtl_textcat")
    docs = list(teacher_logits([teacher], (teacher.make_doc(t) for t in UNLABELLED)))
    assert all(set(doc._.mtl_teacher) == set(teacher_pipe.labels) for doc in docs)
    assert all(not doc.cats for doc in docs)  # unlabelled: the teacher is the only target

    groups = {g.name: {"kind": g.kind, "labels": list(g.labels)} for g in teacher_pipe.schema}
    model = {**TOK2VEC_MODEL, "hidden_width": 16}  # a different student architecture
    student = make_nlp(groups, model=model, distill=_distill_config(1000))
    examples = [Example(student.make_doc(doc.text), doc) for doc in docs]
    optimizer = student.initialize(lambda: examples)
    before = _distance(teacher, student, UNLABELLED)
    losses: Dict[str, float] = {}
    for _ in range(60):
        losses = {}
        student.update(examples, sgd=optimizer, losses=losses)
    after = _distance(teacher, student, UNLABELLED)
    assert losses["mtl_textcat:sentiment"] > 0  # trained on teacher targets alone
    assert after < before / 3, (before, after)


def test_teacher_logits_rows_follow_their_docs() -> None:
    """Texts run sorted by length across small buffers; each doc still gets its own logits,
    equal to the teacher's on that doc alone, and a later teacher overrides shared groups."""
    first = make_nlp(GROUPS)
    _train(first, make_examples(first), steps=5)
    second = make_nlp({"sentiment": GROUPS["sentiment"]})
    sentiment_only = [
        (text, {k: v for k, v in cats.items() if k.startswith("sentiment/")})
        for text, cats in TRAIN_DATA
    ]
    second_examples = make_examples(second, sentiment_only)
    second.initialize(lambda: second_examples)
    texts = [t * (1 + i % 4) for i, t in enumerate(UNLABELLED * 3)]  # mixed lengths
    docs = list(
        teacher_logits(
            [first, second], (first.make_doc(t) for t in texts), batch_size=2, buffer_size=5
        )
    )
    assert [doc.text for doc in docs] == texts
    one, two = first.get_pipe("mtl_textcat"), second.get_pipe("mtl_textcat")
    for doc in docs:
        alone = one.predict([first(doc.text)])[0]
        expected = dict(zip(one.schema.keys, alone.tolist()))
        alone = two.predict([second(doc.text)])[0]
        expected.update(zip(two.schema.keys, alone.tolist()))
        assert set(doc._.mtl_teacher) == set(expected)
        for key, value in expected.items():
            assert doc._.mtl_teacher[key] == pytest.approx(value, abs=1e-4), (doc.text, key)


def test_docs_without_gold_or_teacher_contribute_nothing() -> None:
    nlp = make_nlp(GROUPS)
    examples = make_examples(nlp)
    nlp.initialize(lambda: examples)
    component = nlp.get_pipe("mtl_textcat")
    empty = [Example(nlp.make_doc(t), nlp.make_doc(t)) for t in UNLABELLED[:3]]
    logits = component.model.predict([eg.predicted for eg in empty])
    loss, grad = component.get_loss(empty, logits)
    assert loss == 0.0 and not numpy.asarray(grad).any()

    # With teacher logits only, the target is exactly the teacher's distribution.
    taught = [Example(nlp.make_doc(t), nlp.make_doc(t)) for t in UNLABELLED[:3]]
    keys = component.labels
    t_logits = numpy.random.default_rng(0).normal(size=(3, len(keys)))
    for eg, row in zip(taught, t_logits):
        eg.reference._.mtl_teacher = dict(zip(keys, row.tolist()))
    result = component.get_group_losses(taught, t_logits.astype("f"))
    # Student logits == teacher logits: the gradient of CE/BCE vanishes at the target.
    assert numpy.abs(result.d_logits).max() < 1e-6
    assert result.per_group["sentiment"] > 0  # the entropy of the teacher's distribution


def test_distill_corpus_keeps_gold_and_adds_teacher(tmp_path) -> None:
    from spacy.tokens import DocBin

    from spacy_mtl.workflows.distill import distill_corpus

    teacher = make_nlp(GROUPS)
    _train(teacher, make_examples(teacher), steps=5)
    teacher.to_disk(tmp_path / "teacher")
    labelled = DocBin()
    for eg in make_examples(teacher)[:3]:
        labelled.add(eg.reference)
    labelled.to_disk(tmp_path / "gold.spacy")
    (tmp_path / "raw.txt").write_text("\n".join(UNLABELLED[:4]) + "\n", encoding="utf8")

    n = distill_corpus([tmp_path / "teacher"], tmp_path / "gold.spacy", tmp_path / "a.spacy")
    docs = list(DocBin().from_disk(tmp_path / "a.spacy").get_docs(teacher.vocab))
    assert n == len(docs) == 3
    gold_docs = [eg.reference for eg in make_examples(teacher)[:3]]
    keys = set(teacher.get_pipe("mtl_textcat").labels)
    for doc, gold in zip(docs, gold_docs):
        assert doc.cats == gold.cats
        assert set(doc._.mtl_teacher) == keys

    n = distill_corpus([tmp_path / "teacher"], tmp_path / "raw.txt", tmp_path / "b.spacy")
    docs = list(DocBin().from_disk(tmp_path / "b.spacy").get_docs(teacher.vocab))
    assert [doc.text for doc in docs] == UNLABELLED[:4]
    assert all(doc._.mtl_teacher and not doc.cats for doc in docs)


def test_distill_labels_cli(tmp_path) -> None:
    from spacy.tokens import DocBin
    from typer.testing import CliRunner

    from spacy_mtl.cli import app

    teacher = make_nlp(GROUPS)
    _train(teacher, make_examples(teacher), steps=2)
    teacher.to_disk(tmp_path / "teacher")
    (tmp_path / "raw.jsonl").write_text('{"text": "i love it"}\n\n{"text": "bad"}\n')
    out = tmp_path / "out" / "distilled.spacy"
    teacher_dir = str(tmp_path / "teacher")
    args = ["distill-labels", teacher_dir, str(tmp_path / "raw.jsonl"), str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Wrote 2 docs" in result.output
    docs = list(DocBin().from_disk(out).get_docs(teacher.vocab))
    assert [d.text for d in docs] == ["i love it", "bad"]

    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"txt": "oops"}\n')
    args = ["distill-labels", teacher_dir, str(tmp_path / "bad.jsonl"), str(out), "--force"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1  # a clear message, not a traceback
    assert "bad.jsonl:2" in result.output


def test_distill_refuses_its_input_as_output(tmp_path) -> None:
    from spacy.tokens import DocBin
    from typer.testing import CliRunner

    from spacy_mtl.cli import app
    from spacy_mtl.workflows.distill import check_output

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    DocBin().to_disk(corpus / "gold.spacy")
    before = (corpus / "gold.spacy").read_bytes()
    (tmp_path / "link.spacy").symlink_to(corpus / "gold.spacy")
    with pytest.raises(ValueError, match="is the input corpus"):
        check_output(corpus / "gold.spacy", tmp_path / "link.spacy")
    with pytest.raises(ValueError, match="inside the input corpus folder"):
        check_output(corpus, corpus / "sub" / "out.spacy")
    check_output(corpus, tmp_path / "out.spacy")  # beside it: fine
    # The CLI refuses before loading any teacher, even with --force.
    args = ["distill-labels", str(tmp_path / "no-teacher"), str(corpus / "gold.spacy")]
    result = CliRunner().invoke(app, [*args, str(corpus / "." / "gold.spacy"), "--force"])
    assert result.exit_code == 1 and "is the input corpus" in result.output
    assert (corpus / "gold.spacy").read_bytes() == before
