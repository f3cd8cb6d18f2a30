"""The run-length settings that follow max_steps: spacy-mtl.warmup_linear.v1 (thinc's
warmup_linear with the warm-up as a share of the run) and spacy-mtl.eval_frequency.v1."""

import io
from itertools import islice
from pathlib import Path
from typing import Any, Dict, List

import pytest
import spacy
from spacy.schemas import ConfigSchemaTraining
from spacy.tokens import DocBin
from spacy.training import loop
from spacy.training.initialize import init_nlp
from spacy.util import load_config, registry
from thinc.api import Config
from thinc.schedules import warmup_linear

from spacy_mtl.training.schedules import eval_frequency, warmup_linear_ratio, warmup_steps_of

STUDENT = Path(__file__).resolve().parents[2] / "configs" / "student_tok2vec.cfg"


@pytest.mark.parametrize(
    "rate,ratio,total,warmup",
    [(1e-4, 0.1, 1200, 120), (3e-5, 0.1, 6000, 600), (1e-3, 0.05, 2000, 100), (1e-4, 0.1, 40, 4)],
)
def test_warmup_linear_ratio_is_thinc_warmup_linear(
    rate: float, ratio: float, total: int, warmup: int
) -> None:
    """Bit-equal to thinc's warmup_linear.v1 with warmup_steps = ratio · total, past the end."""
    assert warmup_steps_of(ratio, total) == warmup
    ours = list(islice(warmup_linear_ratio(rate, ratio, total), total + 10))
    thincs = list(islice(warmup_linear(rate, warmup, total), total + 10))
    assert ours == thincs
    assert ours[warmup] == rate and ours[total] == 0.0 and ours[total - 1] > 0.0
    assert max(ours) == rate and ours.index(rate) == warmup


def test_warmup_linear_ratio_registered() -> None:
    block = {
        "@schedules": "spacy-mtl.warmup_linear.v1",
        "initial_rate": 1e-4,
        "warmup_ratio": 0.25,
        "total_steps": 8,
    }
    schedule = registry.resolve({"lr": block})["lr"]
    assert list(islice(schedule, 10)) == list(islice(warmup_linear(1e-4, 2, 8), 10))


@pytest.mark.parametrize(
    "args,message",
    [
        ((1e-4, 0.1, 0), "max_steps = 0"),
        ((1e-4, 0.1, -5), "positive"),
        ((1e-4, 1.0, 100), "warmup_ratio"),
        ((1e-4, -0.1, 100), "warmup_ratio"),
    ],
)
def test_warmup_linear_ratio_bad_args(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=r"spacy-mtl\.warmup_linear\.v1") as err:
        warmup_linear_ratio(*args)
    assert message in str(err.value)


@pytest.mark.parametrize(
    "max_steps,evals,expected",
    [(1200, 2, 600), (6000, 12, 500), (2000, 8, 250), (40, 2, 20), (3, 8, 1)],
)
def test_eval_frequency(max_steps: int, evals: int, expected: int) -> None:
    assert eval_frequency(max_steps, evals) == expected
    block = {"@misc": "spacy-mtl.eval_frequency.v1", "max_steps": max_steps, "evals": evals}
    assert registry.resolve({"f": block})["f"] == expected


@pytest.mark.parametrize("max_steps,evals", [(0, 2), (-1, 2), (100, 0)])
def test_eval_frequency_bad_args(max_steps: int, evals: int) -> None:
    with pytest.raises(ValueError, match=r"spacy-mtl\.eval_frequency\.v1"):
        eval_frequency(max_steps, evals)


def test_eval_frequency_block_resolves_to_an_int_for_spacy() -> None:
    """spaCy's training schema wants a StrictInt: the block resolves before validation."""
    config = load_config(STUDENT, overrides={"training.max_steps": 40}, interpolate=True)
    training = registry.resolve(config["training"], schema=ConfigSchemaTraining)
    assert training["eval_frequency"] == 5 and type(training["eval_frequency"]) is int


def test_spacy_training_loop_gets_the_int(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`spacy train`'s loop receives eval_frequency = max_steps // evals and evaluates at
    those steps (the student config, max_steps overridden to 8, evals 4: every 2)."""
    nlp = spacy.blank("en")
    corpus = DocBin()
    for text, label in [("good film", "pos"), ("bad film", "neg"), ("great fun", "pos")]:
        doc = nlp.make_doc(text)
        doc.cats = {"s/pos": float(label == "pos"), "s/neg": float(label == "neg")}
        corpus.add(doc)
    corpus.to_disk(tmp_path / "c.spacy")
    overrides = {
        "paths.train": str(tmp_path / "c.spacy"),
        "paths.dev": str(tmp_path / "c.spacy"),
        "training.max_steps": 8,
        "training.eval_frequency.evals": 4,
    }
    config: Config = load_config(STUDENT, overrides=overrides)
    config["components"]["mtl_textcat"]["groups"] = {
        "s": {"kind": "multiclass", "labels": ["pos", "neg"]}
    }
    seen: Dict[str, Any] = {}
    steps: List[int] = []
    original = loop.train_while_improving

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        for batch, info, is_best_checkpoint in original(*args, **kwargs):
            if is_best_checkpoint is not None:  # an evaluation step
                steps.append(info["step"])
            yield batch, info, is_best_checkpoint

    monkeypatch.setattr(loop, "train_while_improving", spy)
    trained = init_nlp(config)
    loop.train(trained, None, stdout=io.StringIO(), stderr=io.StringIO())
    assert seen["eval_frequency"] == 2 and type(seen["eval_frequency"]) is int
    assert seen["max_steps"] == 8
    assert steps == [0, 2, 4, 6, 8]
