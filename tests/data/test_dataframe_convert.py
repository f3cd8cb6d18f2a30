"""`convert_dataframe`: a pandas DataFrame converted with a convert spec, through the file
converter's own pipeline (parsers, splits, on_error, rejects, summary, shards)."""

import csv
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import pandas as pd
import pytest
import spacy
from conftest import write
from spacy.language import Language
from spacy.tokens import Doc, DocBin

import spacy_mtl
from spacy_mtl.data.convert import (
    ConvertError,
    ConvertSpec,
    ConvertSummary,
    RowError,
    SpecError,
    convert_files,
)
from spacy_mtl.data.convert.frames import cell_value, convert_dataframe

# Every layout the frame reader feeds: a value map with NaN (missing), a delimited
# multilabel column, one 0/1 column per label with NaN, a soft score, an id.
SPEC: Dict[str, Any] = {
    "text": "review",
    "id": "id",
    "groups": {
        "sentiment": {
            "kind": "multiclass",
            "column": "stars",
            "labels": {1: "negative", 2: "neutral", 3: "positive"},
        },
        "topic": {
            "kind": "multilabel",
            "column": "topics",
            "delimiter": "|",
            "labels": ["food", "service", "price"],
        },
        "emotion": {
            "kind": "multilabel",
            "columns": {"is_joy": "joy", "is_anger": "anger"},
        },
        "toxic": {"kind": "multiclass", "column": "tox", "labels": ["no", "yes"], "threshold": 0.5},
    },
}


def frame() -> pd.DataFrame:
    """Reviews with a string index in shuffled order, ints read as floats where NaN is
    (as pandas reads a CSV), and missing values in every kind of column."""
    nan = np.nan
    return pd.DataFrame(
        {
            "review": [
                "great food",
                "slow service, cold soup",
                "ok I guess",
                "pricey but good",
                'he said "hi, there"\nand left',
            ],
            "id": ["a1", "a2", "a3", "a4", "a5"],
            "stars": [3, 1, nan, 3, 2],
            "topics": ["food", "service|food", nan, "price|food", ""],
            "is_joy": [1.0, 0.0, nan, 1.0, 0.0],
            "is_anger": [0, 1, 0, 0, 0],
            "tox": [0.1, 0.7, nan, 0.0, 0.5],
            "unused": ["x", None, "z", "w", "v"],
        },
        index=["r3", "r1", "r17", "r0", "r9"],
    )


def docs_of(summary: ConvertSummary, nlp: Language) -> Dict[str, List[Doc]]:
    out: Dict[str, List[Doc]] = {}
    for corpus in summary.corpora:
        for split, paths in corpus.files.items():
            docs = out.setdefault(split, [])
            for path in paths:
                docs.extend(DocBin().from_disk(path).get_docs(nlp.vocab))
    return out


def content(docs: Sequence[Doc]) -> List[Tuple[str, Dict[str, float], Any]]:
    return [(d.text, dict(d.cats), d.user_data.get("id")) for d in docs]


@pytest.fixture(scope="module")
def nlp() -> Language:
    return spacy.blank("en")


def test_frame_and_its_csv_give_the_same_docs(tmp_path: Path, nlp: Language) -> None:
    """The frame, and the CSV pandas writes of it, convert to identical docs (texts, cats,
    ids), in every split, with the same summary counts."""
    df = frame()
    src = tmp_path / "data.csv"
    df.to_csv(src, index=False)
    spec = ConvertSpec.from_dict(SPEC)
    for split in (None, "train=0.6,dev=0.4"):
        from_csv = convert_files([src], tmp_path / "csv", spec, split=split)
        from_frame = convert_dataframe(df, spec, tmp_path / "frame", split=split)
        a, b = docs_of(from_csv, nlp), docs_of(from_frame, nlp)
        assert list(a) == list(b)
        for name in a:
            assert content(b[name]) == content(a[name])
        assert from_frame.rows_read == from_csv.rows_read == len(df)
        assert from_frame.corpora[0].docs == from_csv.corpora[0].docs
        assert from_frame.corpora[0].label_counts == from_csv.corpora[0].label_counts
        assert from_frame.schema == from_csv.schema
    assert [p.name for p in from_frame.files] == ["data.spacy", "data.spacy"]


def test_frame_cells_are_read_as_the_spec_says(tmp_path: Path, nlp: Language) -> None:
    """What the parsers make of the frame's values, row by row: NaN is a missing label
    (no keys for the group), an empty string an empty cell, a float 3.0 the code 3."""
    summary = convert_dataframe(frame(), SPEC, tmp_path / "out")
    docs = docs_of(summary, nlp)["all"]
    assert [d.text for d in docs] == list(frame()["review"])
    first, _, missing, _, last = (d.cats for d in docs)
    assert first["sentiment/positive"] == 1.0 and first["topic/food"] == 1.0
    assert first["emotion/joy"] == 1.0 and first["toxic/no"] == 1.0
    # r17: NaN stars, topics, is_joy and tox: those groups / labels are missing.
    assert not any(k.startswith(("sentiment/", "topic/", "toxic/")) for k in missing)
    assert missing == {"emotion/anger": 0.0}
    # r9: '' topics is missing (empty: missing); tox 0.5 >= threshold is 'yes'.
    assert not any(k.startswith("topic/") for k in last)
    assert last["toxic/yes"] == 1.0 and last["sentiment/neutral"] == 1.0
    assert [d.user_data["id"] for d in docs] == ["a1", "a2", "a3", "a4", "a5"]


def test_nan_in_a_label_column_is_missing_as_in_csv(tmp_path: Path, nlp: Language) -> None:
    """NaN, None and pd.NA in a label column all mean what the empty CSV cell means:
    missing by default, 'annotated, no label' with `empty: negative`."""
    df = pd.DataFrame(
        {
            "text": ["a", "b", "c", "d"],
            "labels": pd.array(["x|y", None, pd.NA, "y"], dtype="string"),
            "floats": [np.nan, 1.0, np.nan, 0.0],
        },
        index=[10, 20, 30, 40],
    )
    src = tmp_path / "d.csv"
    df.to_csv(src, index=False)
    for empty in ("missing", "negative"):
        spec = {
            "groups": {
                "g": {
                    "kind": "multilabel",
                    "column": "labels",
                    "delimiter": "|",
                    "labels": ["x", "y"],
                    "empty": empty,
                },
                "f": {"kind": "multiclass", "column": "floats", "labels": ["zero", "one"]},
            }
        }
        a = docs_of(convert_dataframe(df, spec, tmp_path / f"frame-{empty}"), nlp)["all"]
        loaded = ConvertSpec.from_dict(spec)
        b = docs_of(convert_files([src], tmp_path / f"csv-{empty}", loaded), nlp)["all"]
        assert content(a) == content(b)
        expected = {} if empty == "missing" else {"g/x": 0.0, "g/y": 0.0}
        assert {k: v for k, v in a[1].cats.items() if k.startswith("g/")} == expected
        assert {k: v for k, v in a[2].cats.items() if k.startswith("g/")} == expected
        assert "f/zero" not in a[0].cats and a[1].cats["f/one"] == 1.0


def test_bad_cell_names_the_index_label_and_column(tmp_path: Path) -> None:
    df = frame()
    df.loc["r17", "stars"] = 7
    with pytest.raises(RowError) as info:
        convert_dataframe(df, SPEC, tmp_path / "out")
    err = info.value
    assert str(err).startswith("row 'r17', column 'stars': unknown label value '7'")
    assert err.index == ("r17",) and err.column == "stars"
    assert not (tmp_path / "out").exists(), "a failed conversion leaves nothing behind"
    # An integer index is named as an integer; an empty text by its column.
    df = pd.DataFrame({"text": ["fine", "  "], "label": [0, 1]}, index=[5, 3])
    spec = {"groups": {"s": {"kind": "multiclass", "column": "label", "labels": ["a", "b"]}}}
    with pytest.raises(RowError, match=r"^row 3, column 'text': empty text\."):
        convert_dataframe(df, spec, tmp_path / "out")


def test_skip_keeps_the_other_rows_and_counts_the_rejected(tmp_path: Path, nlp: Language) -> None:
    df = frame()
    df.loc["r1", "stars"] = 9
    df.loc["r0", "review"] = ""
    rejects = tmp_path / "rejects.csv"
    summary = convert_dataframe(df, SPEC, tmp_path / "out", on_error="skip", rejects=rejects)
    corpus = summary.corpora[0]
    assert (corpus.rows_read, corpus.rows_rejected, corpus.docs_written) == (5, 2, 3)
    assert summary.rows_rejected == 2
    assert [d.user_data["id"] for d in docs_of(summary, nlp)["all"]] == ["a1", "a3", "a5"]
    assert corpus.first_rejects[0].startswith("row 'r1', column 'stars': unknown label value")
    with rejects.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["file"], r["line"], r["column"]) for r in rows] == [
        ("<DataFrame>", "r1", "stars"),
        ("<DataFrame>", "r0", "review"),
    ]
    assert '"stars": 9' in rows[0]["content"] and '"id": "a2"' in rows[0]["content"]


def test_spec_fields_that_read_files_are_refused(tmp_path: Path) -> None:
    df = frame()
    joined = {**SPEC, "join": [{"path": "{stem}.labels.csv", "key": "id"}]}
    with pytest.raises(SpecError, match=r"`join` does not apply to a DataFrame.*merge"):
        convert_dataframe(df, joined, tmp_path / "out")
    lines = {"text": "text", "pattern": r"(?P<label>\d) (?P<text>.*)", "groups": {}}
    with pytest.raises(SpecError, match="`pattern` does not apply"):
        convert_dataframe(df, lines, tmp_path / "out")
    # File-reading settings are ignored: the frame is already read.
    settings = {**SPEC, "sep": ";", "encoding": "latin-1", "header": False, "quoting": False}
    assert convert_dataframe(df, settings, tmp_path / "out").docs_written == len(df)


def test_missing_column_lists_the_frame_columns(tmp_path: Path) -> None:
    df = frame().drop(columns=["tox"])
    with pytest.raises(ConvertError, match=r"no column 'tox'.*'review', 'id', 'stars'"):
        convert_dataframe(df, SPEC, tmp_path / "out")
    with pytest.raises(ConvertError, match="takes a pandas DataFrame, got list"):
        convert_dataframe([{"review": "x"}], SPEC, tmp_path / "out")  # type: ignore[arg-type]


def test_spec_file_inferred_labels_limit_and_empty(tmp_path: Path, nlp: Language) -> None:
    """A spec file, labels inferred from the frame (as from a file), `limit`, an empty
    frame, a non-string column name and the lazy package export."""
    spec_file = write(
        tmp_path / "spec.yml",
        "text: '0'\ngroups:\n  lang:\n    kind: multiclass\n    column: lang\n",
    )
    df = pd.DataFrame({0: [f"text {i}" for i in range(10)], "lang": ["en", "de"] * 5})
    summary = spacy_mtl.convert_dataframe(df, spec_file, tmp_path / "out", limit=6, name="x")
    assert summary.inferred_labels == {"lang": ["de", "en"]}
    assert summary.docs_written == 6 and summary.files == [tmp_path / "out" / "x.spacy"]
    # Nothing to infer from an empty frame, as from an empty file.
    with pytest.raises(SpecError, match="Group 'lang' has no labels"):
        convert_dataframe(df.iloc[:0], spec_file, tmp_path / "empty")
    empty = convert_dataframe(frame().iloc[:0], SPEC, tmp_path / "empty")
    assert empty.rows_read == 0 and len(docs_of(empty, nlp)["all"]) == 0


def test_cell_values() -> None:
    assert cell_value(np.int64(3)) == 3 and type(cell_value(np.int64(3))) is int
    assert cell_value(np.float64("nan")) == "" and cell_value(None) == ""
    assert cell_value(pd.NA) == "" and cell_value(pd.NaT) == ""
    assert cell_value(np.datetime64("NaT")) == ""
    assert cell_value(np.array(["a", "b"])) == ["a", "b"]
    assert cell_value(("a",)) == ["a"] and cell_value(np.bool_(True)) is True
    assert cell_value("  NaN ") == "  NaN "  # a string is the string, as in a CSV
