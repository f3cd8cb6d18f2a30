"""`spacy_mtl.predict_dataframe`: predictions of a DataFrame column, indexed like the frame."""

import math
import subprocess
import sys
from pathlib import Path
from typing import Any, List

import numpy as np
import pandas as pd
import pytest
import spacy
from conftest import GROUPS, make_examples, make_nlp
from spacy.language import Language

import spacy_mtl
from spacy_mtl.errors import ComponentError
from spacy_mtl.workflows.dataframe import predict_dataframe
from spacy_mtl.workflows.predict import PredictError

TEXTS: List[Any] = [
    "i love this movie",
    None,  # missing
    "the food was ok but the day was very very long and boring, really boring",
    np.nan,  # missing, as pandas reads an empty CSV cell
    "   ",  # only whitespace: empty
    "what a great fun day!!!",
    42,  # a number: predicted as "42"
    "i hate this awful film",
    "",
    "meh",
]


@pytest.fixture(scope="module")
def nlp() -> Language:
    """A tiny Tok2Vec pipeline trained a few steps, with per-label thresholds that make
    `emotion` hold 'joy' always and 'anger' never (so the list column is not all empty)."""
    nlp = make_nlp(GROUPS)
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(8):
        nlp.update(examples, sgd=optimizer)
    component = nlp.get_pipe("mtl_textcat")
    schema = component.schema.replace_group("emotion", thresholds={"joy": 0.01, "anger": 0.99})
    component.set_schema(schema)  # type: ignore[attr-defined]
    return nlp


def _expected_text(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value)
    return text if text.strip() else None


def test_index_kept_and_scores_match_one_by_one(nlp: Language) -> None:
    """A shuffled integer index comes back as it was; every row's labels are its doc's
    `mtl_labels` and its scores its doc's cats (one `nlp(text)` at a time) to 1e-6, across
    chunk and batch boundaries; empty and missing texts get an empty prediction."""
    index = pd.Index([7, 3, 9, 0, 5, 1, 8, 2, 6, 4], name="row_id")
    df = pd.DataFrame({"review": TEXTS, "other": range(len(TEXTS))}, index=index)
    result = predict_dataframe(nlp, df, "review", scores=True, chunk_size=3, batch_size=2)
    assert result.index.equals(df.index) and result.index.name == "row_id"
    keys = [key for key in nlp.get_pipe("mtl_textcat").schema.keys]
    assert list(result.columns) == ["sentiment", "emotion", *keys]
    assert all(result[key].dtype == np.float64 for key in keys)
    for label, value in zip(index, TEXTS):
        row = result.loc[label]
        text = _expected_text(value)
        if text is None:
            assert row["sentiment"] is None and row["emotion"] == []
            assert all(math.isnan(row[key]) for key in keys)
            continue
        doc = nlp(text)
        assert row["sentiment"] == doc._.mtl_labels["sentiment"]
        assert row["emotion"] == doc._.mtl_labels["emotion"]
        assert [row[key] for key in keys] == pytest.approx([doc.cats[k] for k in keys], abs=1e-6)
    predicted = [_expected_text(v) is not None for v in TEXTS]
    assert all(result["emotion"][predicted].map(lambda labels: labels == ["joy"]))


def test_string_index_multilabel_lists_and_label_sep(nlp: Language) -> None:
    df = pd.DataFrame(
        {"text": ["i love this movie", pd.NA, "a sad sad day"]},
        index=["r17", "r2", "r5"],
    ).astype({"text": "string"})
    result = predict_dataframe(nlp, df)
    assert list(result.index) == ["r17", "r2", "r5"]
    assert list(result.columns) == ["sentiment", "emotion"]  # no scores by default
    assert result.loc["r17", "emotion"] == ["joy"] and result.loc["r2", "emotion"] == []
    assert isinstance(result.loc["r5", "sentiment"], str)
    joined = predict_dataframe(nlp, df, label_sep="|", prefix="pred_")
    assert list(joined.columns) == ["pred_sentiment", "pred_emotion"]
    assert list(joined["pred_emotion"]) == ["|".join(labels) for labels in result["emotion"]]
    assert joined.loc["r17", "pred_emotion"].startswith("joy")
    # The prefixed columns join back onto the frame.
    assert list(df.join(joined).columns) == ["text", "pred_sentiment", "pred_emotion"]


def test_series_and_duplicate_index_labels(nlp: Language) -> None:
    texts = pd.Series(["i love this movie", "i hate this awful film", "ok"], index=["a", "a", "b"])
    result = predict_dataframe(nlp, texts, scores=True)
    assert list(result.index) == ["a", "a", "b"]
    for i, text in enumerate(texts):
        assert result["sentiment/positive"].iloc[i] == pytest.approx(
            nlp(text).cats["sentiment/positive"], abs=1e-6
        )


def test_wrong_text_column_lists_the_columns(nlp: Language) -> None:
    df = pd.DataFrame({"body": ["hi"], "id": [1]})
    with pytest.raises(PredictError, match=r"no column 'text'; the columns are \['body', 'id'\]"):
        predict_dataframe(nlp, df)
    with pytest.raises(PredictError, match="2 columns named 'body'"):
        predict_dataframe(nlp, pd.concat([df, df], axis=1), "body")
    with pytest.raises(PredictError, match="takes a pandas DataFrame"):
        predict_dataframe(nlp, ["hi"], "body")  # type: ignore[arg-type]
    with pytest.raises(ComponentError, match="no component 'nope'"):
        predict_dataframe(nlp, df, "body", component="nope")


def test_a_text_that_is_not_a_string_names_its_index_label(nlp: Language) -> None:
    df = pd.DataFrame({"text": ["fine", ["a", "list"]]}, index=["r1", "r17"])
    with pytest.raises(PredictError, match=r"^row 'r17', column 'text': the text must be a str"):
        predict_dataframe(nlp, df)


def test_empty_frame_gives_empty_columns(nlp: Language) -> None:
    df = pd.DataFrame({"text": pd.Series([], dtype=object)}, index=pd.Index([], name="k"))
    result = predict_dataframe(nlp, df, scores=True)
    keys = list(nlp.get_pipe("mtl_textcat").schema.keys)
    assert len(result) == 0 and result.index.name == "k"
    assert list(result.columns) == ["sentiment", "emotion", *keys]
    assert result["sentiment/negative"].dtype == np.float64


def test_long_texts_are_cut_as_predict_does(nlp: Language) -> None:
    long_text = "i love this movie " * 20
    nlp.max_length = 40
    try:
        result = predict_dataframe(nlp, pd.DataFrame({"text": [long_text]}), scores=True)
        cut = nlp(long_text[:40]).cats["sentiment/positive"]
    finally:
        nlp.max_length = 1_000_000
    assert result["sentiment/positive"].iloc[0] == pytest.approx(cut, abs=1e-6)


def test_mtl_transformer_sorts_inside_nlp_pipe(
    tiny_bert: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an mtl_transformer, the frame streams through nlp.pipe unsorted by us (the
    component sorts its buffers); the rows still come back in the frame's order."""
    import spacy_mtl.trf.batching as batching

    nlp = spacy.blank("en")
    nlp.add_pipe("mtl_transformer", name="transformer", config={"model": {"name": str(tiny_bert)}})
    nlp.add_pipe("mtl_textcat", config={"groups": GROUPS})
    nlp.initialize(lambda: make_examples(nlp))
    sorted_runs: List[int] = []
    real = batching.iter_by_length

    def spy(*args: Any, **kwargs: Any) -> Any:
        sorted_runs.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(batching, "iter_by_length", spy)
    texts = [("what a great fun day " * (i % 4 + 1))[: 7 + 13 * i] for i in range(8)]
    df = pd.DataFrame({"text": texts}, index=[f"t{i}" for i in range(8)][::-1])
    result = predict_dataframe(nlp, df, scores=True, batch_size=3)
    assert sorted_runs == []
    assert list(result.index) == list(df.index)
    for label, text in zip(df.index, texts):
        doc = nlp(text)
        for key, value in doc.cats.items():
            assert result.loc[label, key] == pytest.approx(value, abs=1e-5)


def test_lazy_exports_do_not_import_pandas() -> None:
    """The package, its DataFrame helpers looked up (not called) and the convert run import
    without pandas: it is imported only when a helper is called. (In a full environment
    spacy-transformers may import pandas through scikit-learn; that is not ours.)"""
    code = (
        "import sys\n"
        "sys.modules['pandas'] = None  # any `import pandas` now raises ImportError\n"
        "import spacy_mtl, spacy_mtl.data.convert.run, spacy_mtl.workflows.predict\n"
        "print(spacy_mtl.predict_dataframe.__name__, spacy_mtl.convert_dataframe.__name__)\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert out.stdout.split() == ["predict_dataframe", "convert_dataframe"]
    assert spacy_mtl.predict_dataframe is predict_dataframe
    assert {"predict_dataframe", "convert_dataframe"} <= set(spacy_mtl.__all__)
