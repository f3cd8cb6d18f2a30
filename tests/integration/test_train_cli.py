"""`spacy train` with mtl_textcat: no --code, per-group loss columns, best model by mtl_score."""

import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from conftest import TRAIN_DATA
from spacy.cli.init_config import fill_config
from spacy.tokens import DocBin

CONFIG = """
[paths]
train = null
dev = null
bert = null

[nlp]
lang = "en"
pipeline = ["transformer", "mtl_textcat"]
batch_size = 8

[components]

[components.transformer]
factory = "transformer"

[components.transformer.model]
@architectures = "spacy-transformers.TransformerModel.v3"
name = ${paths.bert}
tokenizer_config = {"use_fast": true}

[components.transformer.model.get_spans]
@span_getters = "spacy-transformers.strided_spans.v1"
window = 64
stride = 48

[components.mtl_textcat]
factory = "mtl_textcat"

[components.mtl_textcat.groups]

[components.mtl_textcat.groups.sentiment]
kind = "multiclass"
labels = ["negative", "neutral", "positive"]

[components.mtl_textcat.groups.emotion]
kind = "multilabel"
labels = []
weight = 2.0

[corpora]

[corpora.train]
@readers = "spacy.Corpus.v1"
path = ${paths.train}

[corpora.dev]
@readers = "spacy.Corpus.v1"
path = ${paths.dev}

[training]
max_steps = 12
eval_frequency = 4
seed = 0

[training.logger]
@loggers = "spacy-mtl.ConsoleLogger.v1"

[training.optimizer]
@optimizers = "Adam.v1"
learn_rate = 0.001

[initialize]
"""


def test_spacy_train_without_code(tmp_path: Path, tiny_bert: Path) -> None:
    nlp = spacy.blank("en")
    db = DocBin()
    for text, cats in TRAIN_DATA:
        doc = nlp.make_doc(text)
        doc.cats = cats
        db.add(doc)
    db.to_disk(tmp_path / "train.spacy")
    (tmp_path / "base.cfg").write_text(CONFIG.replace("bert = null", f'bert = "{tiny_bert}"'))
    # A partial config, as users write them; spaCy fills in the defaults (ours included).
    fill_config(tmp_path / "config.cfg", tmp_path / "base.cfg", silent=True)
    result = subprocess.run(
        [
            sys.executable, "-m", "spacy", "train", str(tmp_path / "config.cfg"),
            "--output", str(tmp_path / "out"),
            "--paths.train", str(tmp_path / "train.spacy"),
            "--paths.dev", str(tmp_path / "train.spacy"),
        ],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    header = next(line for line in result.stdout.splitlines() if line.strip().startswith("E "))
    for column in ("Loss transformer", "Loss mtl_textcat", "L sentiment", "L emotion", "mtl_score"):
        assert column in header
    best = spacy.load(tmp_path / "out" / "model-best")
    assert best.get_pipe("mtl_textcat").label_data["emotion"] == ["anger", "joy", "sadness"]
    assert "mtl_score" in best.meta["performance"]
    assert best("i love this movie")._.mtl_scores["sentiment"].keys() == {
        "negative",
        "neutral",
        "positive",
    }


def test_logger_shows_learned_weights_and_docs_per_data_set(tmp_path: Path) -> None:
    import io
    import json

    from conftest import GROUPS, make_examples, make_nlp

    from spacy_mtl.training.logger import make_console_logger

    nlp = make_nlp(GROUPS, weighting="uncertainty")
    nlp.config["training"]["score_weights"] = {"mtl_score": 1.0}
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda egs=examples: egs)
    losses: dict = {}
    for _ in range(3):
        nlp.update(examples, sgd=optimizer, losses=losses)
    out = io.StringIO()
    log_step, finalize = make_console_logger(str(tmp_path / "log.jsonl"))(nlp, out, out)
    log_step(
        {"epoch": 0, "step": 3, "losses": losses, "other_scores": {"mtl_score": 0.5}, "score": 0.5}
    )
    finalize()
    header, _, row = out.getvalue().splitlines()[:3]
    assert "w sentiment" in header and "w emotion" in header
    assert "Docs per data set" in header
    assert "groups:emotion 3" in row and "groups:emotion+sentiment 12" in row
    record = json.loads((tmp_path / "log.jsonl").read_text().splitlines()[0])
    weights = nlp.get_pipe("mtl_textcat").group_loss_weights
    assert record["loss_weights"]["mtl_textcat:emotion"] == pytest.approx(weights["emotion"])
    assert weights["emotion"] != 2.0  # learned, no longer the configured weight
    assert record["docs_seen"]["groups:sentiment"] == 3
