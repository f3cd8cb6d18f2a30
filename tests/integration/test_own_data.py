"""The README's "Train on your own data" path, walked by the command line alone on a
generated CSV with a multiclass and a multilabel column and the tiny random BERT:
convert -> init-config -> spacy train -> tune -> evaluate -> spacy package."""

import random
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
import srsly
from spacy.tokens import DocBin

SPEC = """\
format: csv
text: review
groups:
  sentiment:
    kind: multiclass
    column: stars
    labels: {1: negative, 3: neutral, 5: positive}
  topics:
    kind: multilabel
    column: topics
    delimiter: ";"
    empty: negative
"""

WORDS = {
    "negative": ["awful", "bad", "hate", "boring"],
    "neutral": ["ok", "fine", "average", "meh"],
    "positive": ["love", "great", "fun", "good"],
}
TOPICS = {"food": ["food", "meal"], "service": ["staff", "waiter"], "price": ["price", "cheap"]}


def _write_csv(path: Path, n: int = 90, seed: int = 0) -> None:
    rng = random.Random(seed)
    stars = {"negative": 1, "neutral": 3, "positive": 5}
    lines = ["review,stars,topics"]
    for i in range(n):
        sentiment = ["negative", "neutral", "positive"][i % 3]
        topics = sorted(rng.sample(list(TOPICS), rng.randint(0, 2)))
        words = [rng.choice(WORDS[sentiment])] + [rng.choice(TOPICS[t]) for t in topics]
        words += ["the", "day"][: rng.randint(0, 2)]
        rng.shuffle(words)
        lines.append(f"{' '.join(words)},{stars[sentiment]},{';'.join(topics)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf8")


def _run(args, cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"{' '.join(args)}\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def test_own_data_from_csv_to_package_by_the_cli(tmp_path: Path, tiny_bert: Path) -> None:
    _write_csv(tmp_path / "reviews.csv")
    (tmp_path / "reviews.yml").write_text(SPEC, encoding="utf8")

    # 1. convert, stratified over both groups
    out = _run(
        [
            "-m",
            "spacy_mtl",
            "convert",
            "reviews.csv",
            "corpus",
            "--spec",
            "reviews.yml",
            "--split",
            "train=0.7,dev=0.15,test=0.15",
            "--seed",
            "0",
        ],
        tmp_path,
    )
    assert "90 rows read" in " ".join(out.split())
    nlp = spacy.blank("en")
    counts = {}
    for split in ("train", "dev", "test"):
        docs = list(
            DocBin().from_disk(tmp_path / "corpus" / split / "reviews.spacy").get_docs(nlp.vocab)
        )
        counts[split] = len(docs)
        # every label of both groups reaches every split (stratified on every group)
        for label in (
            "sentiment/negative",
            "sentiment/neutral",
            "sentiment/positive",
            "topics/food",
            "topics/service",
            "topics/price",
        ):
            assert any(doc.cats.get(label) == 1.0 for doc in docs), (split, label)
    assert sum(counts.values()) == 90

    # 2. a config for these groups, with a short run whose schedule follows max_steps
    _run(
        [
            "-m",
            "spacy_mtl",
            "init-config",
            "reviews.yml",
            "config.cfg",
            "--model",
            str(tiny_bert),
            "--steps",
            "30",
        ],
        tmp_path,
    )
    config = spacy.util.load_config(tmp_path / "config.cfg")
    groups = config["components"]["mtl_textcat"]["groups"]
    assert list(groups) == ["sentiment", "topics"]
    assert groups["sentiment"]["kind"] == "multiclass"
    assert groups["sentiment"]["labels"] == ["negative", "neutral", "positive"]
    assert groups["topics"]["kind"] == "multilabel"
    assert config["training"]["max_steps"] == 30

    # 3. spacy train, no --code
    log = _run(
        [
            "-m",
            "spacy",
            "train",
            "config.cfg",
            "--output",
            "training",
            "--paths.train",
            "corpus/train",
            "--paths.dev",
            "corpus/dev",
        ],
        tmp_path,
    )
    assert "L sentiment" in log and "L topics" in log
    best = tmp_path / "training" / "model-best"
    assert (best / "meta.json").exists()

    # 4. tune on dev
    _run(["-m", "spacy_mtl", "tune", str(best), "corpus/dev", "training/model-tuned"], tmp_path)
    tuned = tmp_path / "training" / "model-tuned"
    report = srsly.read_json(tmp_path / "training" / "model-tuned-tune.json")
    assert set(report["groups"]) == {"sentiment", "topics"}
    assert not (tuned / "tune.json").exists()

    # 5. evaluate on test, scores into the meta, then a package that carries them
    _run(
        [
            "-m",
            "spacy_mtl",
            "evaluate",
            str(tuned),
            "corpus/test",
            "--output",
            "metrics",
            "--write-meta",
        ],
        tmp_path,
    )
    metrics = srsly.read_json(tmp_path / "metrics" / "metrics.json")
    assert {"mtl_score", "mtl_sentiment_macro_f", "mtl_topics_macro_f"} <= set(metrics)
    assert (tmp_path / "metrics" / "report.md").exists()
    (tmp_path / "packages").mkdir()
    _run(
        [
            "-m",
            "spacy",
            "package",
            str(tuned),
            "packages",
            "--name",
            "reviews",
            "--version",
            "0.0.1",
            "--build",
            "none",
            "--force",
        ],
        tmp_path,
    )
    packaged = srsly.read_json(tmp_path / "packages" / "en_reviews-0.0.1" / "meta.json")
    assert packaged["performance"]["mtl_score"] == pytest.approx(metrics["mtl_score"])

    # The tuned pipeline predicts both groups.
    doc = spacy.load(tuned)("love the food")
    assert set(doc._.mtl_scores) == {"sentiment", "topics"}
    assert set(doc.cats) == {f"sentiment/{s}" for s in WORDS} | {f"topics/{t}" for t in TOPICS}
