"""Tests of convert's `join` (label files joined by key or by row position) and
`threshold` (soft scores), docs/convert.md "Joined files" and "Soft labels".
"""

import csv
import random
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
import spacy
import srsly
from conftest import write
from spacy.language import Language
from spacy.tokens import Doc, DocBin
from typer.testing import CliRunner

from spacy_mtl.cli import app
from spacy_mtl.data.convert import (
    ConvertError,
    ConvertSpec,
    ConvertSummary,
    RowError,
    SpecError,
    convert_files,
)


@pytest.fixture(scope="module")
def nlp() -> Language:
    return spacy.blank("en")


def spec(data: Dict[str, Any]) -> ConvertSpec:
    return ConvertSpec.from_dict(data)


def docs_of(nlp: Language, summary: ConvertSummary) -> List[Doc]:
    docs: List[Doc] = []
    for path in summary.files:
        docs.extend(DocBin().from_disk(path).get_docs(nlp.vocab))
    return docs


def rejects_of(summary: ConvertSummary) -> List[Dict[str, str]]:
    assert summary.rejects is not None
    with summary.rejects.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def balanced(summary: ConvertSummary) -> bool:
    return all(c.rows_read == c.docs_written + c.rows_rejected for c in summary.corpora)


# A text file with ids, and a label file keyed by id (not in the same order).
LEVEL = {"kind": "multiclass", "column": "level", "labels": ["x", "y"]}
KEYED = {
    "format": "tsv",
    "id": "id",
    "join": [{"path": "{stem}.labels.csv", "key": "id"}],
    "groups": {"level": LEVEL},
}
TEXTS = "id\ttext\na\tfirst\nb\tsecond\nc\tthird\n"


def run_keyed(
    tmp_path: Path, labels: str, data: Dict[str, Any] = KEYED, **kwargs: Any
) -> ConvertSummary:
    src = write(tmp_path / "test.tsv", TEXTS)
    write(tmp_path / "test.labels.csv", labels)
    return convert_files([src], tmp_path / "out", spec(data), **kwargs)


# ---------------------------------------------------------------------------------------
# Key join


def test_key_join_is_a_left_join(tmp_path: Path, nlp: Language) -> None:
    summary = run_keyed(tmp_path, "id,level\nc,y\na,x\n")
    docs = docs_of(nlp, summary)
    assert [(d.user_data["id"], d.cats) for d in docs] == [
        ("a", {"level/x": 1.0, "level/y": 0.0}),
        ("b", {}),  # no row in the label file: the group is missing
        ("c", {"level/x": 0.0, "level/y": 1.0}),
    ]
    assert summary.rows_read == 3 and summary.docs_written == 3


def test_key_join_no_match_is_missing_even_with_empty_negative(
    tmp_path: Path, nlp: Language
) -> None:
    data = {
        **KEYED,
        "groups": {
            "tags": {"kind": "multilabel", "columns": ["p", "q"], "empty": "negative"},
        },
    }
    summary = run_keyed(tmp_path, "id,p,q\na,1,\nc,,\n", data)
    cats = [d.cats for d in docs_of(nlp, summary)]
    assert cats == [{"tags/p": 1.0, "tags/q": 0.0}, {}, {"tags/p": 0.0, "tags/q": 0.0}]


def test_key_join_keys_compare_as_stripped_text(tmp_path: Path, nlp: Language) -> None:
    src = write(tmp_path / "t.jsonl", '{"id": 5, "text": "five"}\n{"id": "6", "text": "six"}\n')
    write(tmp_path / "t.labels.csv", "id,level\n6 ,y\n5,x\n")
    data = {**KEYED, "format": None}
    data.pop("format")
    summary = convert_files([src], tmp_path / "out", spec(data))
    assert [d.cats["level/x"] for d in docs_of(nlp, summary)] == [1.0, 0.0]


def test_key_join_duplicate_key_names_file_and_line(tmp_path: Path) -> None:
    for mode in ("fail", "skip"):
        with pytest.raises(ConvertError) as info:
            run_keyed(tmp_path, "id,level\na,x\n\nc,y\na,y\n", on_error=mode)
        assert str(info.value).startswith(
            f"{tmp_path / 'test.labels.csv'}:5: column 'id': key 'a' is also on line 2."
        )
        assert not isinstance(info.value, RowError)  # a file error: stops in both modes
        assert not (tmp_path / "out").exists()


def test_key_only_in_the_joined_file_fails(tmp_path: Path) -> None:
    with pytest.raises(RowError) as info:
        run_keyed(tmp_path, "id,level\na,x\nzz,y\nb,x\n")
    err = info.value
    assert (err.path, err.line, err.column) == (tmp_path / "test.labels.csv", 3, "id")
    assert err.reason.startswith(f"key 'zz' matches no row of {tmp_path / 'test.tsv'}")
    assert not (tmp_path / "out").exists()


def test_key_only_in_the_joined_file_is_a_joined_reject(tmp_path: Path, nlp: Language) -> None:
    summary = run_keyed(tmp_path, "id,level\na,x\nzz,y\nb,x\nyy,x\n", on_error="skip")
    corpus = summary.corpora[0]
    assert (corpus.rows_read, corpus.docs_written, corpus.rows_rejected) == (3, 3, 0)
    assert corpus.joined_rows_rejected == summary.joined_rows_rejected == 2
    rows = rejects_of(summary)
    joined = str(tmp_path / "test.labels.csv")
    assert [(r["file"], r["line"], r["column"], r["content"]) for r in rows] == [
        (joined, "3", "id", "zz,y"),
        (joined, "5", "id", "yy,x"),
    ]
    assert len(docs_of(nlp, summary)) == 3


def test_key_join_with_split_counts_once(tmp_path: Path) -> None:
    summary = run_keyed(
        tmp_path, "id,level\na,x\nzz,y\nb,7\n", on_error="skip", split="train=0.5,dev=0.5"
    )
    corpus = summary.corpora[0]
    assert (corpus.rows_read, corpus.docs_written, corpus.rows_rejected) == (3, 2, 1)
    assert corpus.joined_rows_rejected == 1
    assert balanced(summary)
    lines = [(r["file"], r["line"], r["column"]) for r in rejects_of(summary)]
    joined = str(tmp_path / "test.labels.csv")
    # b's bad label is named at its line of the label file; zz reaches no input row.
    assert lines == [(joined, "4", "level"), (joined, "3", "id")]


def test_error_in_a_joined_cell_names_the_joined_file(tmp_path: Path) -> None:
    with pytest.raises(RowError) as info:
        run_keyed(tmp_path, "id,level\nb,x\n\nc,huh\n")
    err = info.value
    assert (err.path, err.line, err.column) == (tmp_path / "test.labels.csv", 4, "level")
    assert "unknown label value 'huh'" in err.reason
    assert f"(joined to {tmp_path / 'test.tsv'}:4)" in err.reason


def test_bad_joined_rows(tmp_path: Path, nlp: Language) -> None:
    # c's row is short (its key can still be read: c's input row is rejected with it);
    # a row with an empty key reaches no input row.
    summary = run_keyed(tmp_path, "id,level\na,x\nc\n,y\n", on_error="skip")
    corpus = summary.corpora[0]
    assert (corpus.rows_read, corpus.docs_written, corpus.rows_rejected) == (3, 2, 1)
    assert corpus.joined_rows_rejected == 1
    joined = str(tmp_path / "test.labels.csv")
    rows = rejects_of(summary)
    # Bad rows without a key come first (before the input's rows); the content of a
    # rejected input row is the input's row.
    assert [(r["file"], r["line"], r["column"], r["content"]) for r in rows] == [
        (joined, "4", "id", ",y"),
        (joined, "3", "level", "c\tthird"),
    ]
    assert rows[0]["reason"].startswith("empty key")
    assert rows[1]["reason"].startswith("missing: the row has 1 fields")
    assert [d.user_data["id"] for d in docs_of(nlp, summary)] == ["a", "b"]
    with pytest.raises(RowError) as info:
        run_keyed(tmp_path, "id,level\na,x\nc\n")
    assert (info.value.path, info.value.line) == (tmp_path / "test.labels.csv", 3)


def test_joined_file_problems_stop_the_conversion(tmp_path: Path) -> None:
    src = write(tmp_path / "test.tsv", TEXTS)
    with pytest.raises(ConvertError, match=r"joined file .*test.labels.csv does not exist"):
        convert_files([src], tmp_path / "out", spec(KEYED), on_error="skip")
    write(tmp_path / "test.labels.csv", "key,level\na,x\n")
    with pytest.raises(ConvertError, match=r"test.labels.csv:1: column 'id': not in the header"):
        convert_files([src], tmp_path / "out", spec(KEYED), on_error="skip")
    write(tmp_path / "test.tsv", "ident\ttext\na\tfirst\n")
    write(tmp_path / "test.labels.csv", "id,level\na,x\n")
    with pytest.raises(ConvertError, match=r"test.tsv:1: column 'id': not in the header"):
        convert_files([src], tmp_path / "out", spec({**KEYED, "id": None}), on_error="skip")
    assert not (tmp_path / "out").exists()


def test_joined_column_clashing_with_an_input_column_is_a_spec_error(tmp_path: Path) -> None:
    # Known from the spec: the input's `columns`.
    with pytest.raises(SpecError, match=r"join 1 \(l.csv\): column 'level' is also a column"):
        spec({**KEYED, "columns": ["id", "text", "level"], "join": [{"path": "l.csv", "key": "id",
              "columns": ["id", "level"]}]})  # fmt: skip
    # Two joins giving the same column.
    two = [
        {"path": "a.csv", "key": "id", "columns": ["id", "level"]},
        {"path": "b.csv", "key": "id", "columns": ["id", "level"]},
    ]
    with pytest.raises(SpecError, match=r"join 2 \(b.csv\): column 'level' is also a column of "):
        spec({**KEYED, "join": two})
    # Known once the headers are read. The key itself is in both, as it must be.
    src = write(tmp_path / "test.tsv", "id\ttext\tlevel\na\tfirst\tx\n")
    write(tmp_path / "test.labels.csv", "id,level\na,x\n")
    with pytest.raises(SpecError, match=r"column 'level' is also a column of .*test.tsv"):
        convert_files([src], tmp_path / "out", spec(KEYED))
    write(tmp_path / "test.b.csv", "id,level\na,x\n")
    data = {**KEYED, "join": [*KEYED["join"], {"path": "{stem}.b.csv", "key": "id"}]}
    with pytest.raises(SpecError, match=r"join 2 \(.*test.b.csv\): column 'level'"):
        convert_files([write(tmp_path / "test.tsv", TEXTS)], tmp_path / "out", spec(data))


def test_columns_rename_the_label_files_of_a_hierarchy(tmp_path: Path, nlp: Language) -> None:
    # Every level file says `id,label`: `columns` with `header: true` renames them.
    src = write(tmp_path / "test.tsv", TEXTS)
    write(tmp_path / "test.l1.csv", "id,label\na,x\nb,y\nc,y\n")
    write(tmp_path / "test.l2.csv", "id,label\nc,q\n")
    data = {
        "format": "tsv",
        "join": [
            {"path": "{stem}.l1.csv", "key": "id", "columns": ["id", "l1"], "header": True},
            {"path": "{stem}.l2.csv", "key": "id", "columns": ["id", "l2"], "header": True},
        ],
        "groups": {
            "l1": {"kind": "multiclass", "column": "l1", "labels": ["x", "y"]},
            "l2": {"kind": "multiclass", "column": "l2", "labels": ["p", "q"]},
        },
    }
    summary = convert_files([src], tmp_path / "out", spec(data))
    assert [d.cats for d in docs_of(nlp, summary)] == [
        {"l1/x": 1.0, "l1/y": 0.0},
        {"l1/x": 0.0, "l1/y": 1.0},
        {"l1/x": 0.0, "l1/y": 1.0, "l2/p": 0.0, "l2/q": 1.0},
    ]


def test_jsonl_joined_file_takes_the_listed_keys(tmp_path: Path, nlp: Language) -> None:
    src = write(tmp_path / "test.tsv", TEXTS)
    write(tmp_path / "test.labels.jsonl", '{"id": "a", "level": 1, "other": 0}\n{"id": "b"}\n')
    data = {
        **KEYED,
        "join": [{"path": "{stem}.labels.jsonl", "key": "id", "columns": ["id", "level"]}],
    }
    summary = convert_files([src], tmp_path / "out", spec(data), on_error="skip")
    assert [d.cats for d in docs_of(nlp, summary)] == [{"level/x": 0.0, "level/y": 1.0}, {}]
    rows = rejects_of(summary)
    assert [(r["line"], r["column"]) for r in rows] == [("2", "level")]
    assert rows[0]["file"] == str(tmp_path / "test.labels.jsonl")
    assert "no key 'level'" in rows[0]["reason"]
    assert summary.corpora[0].rows_rejected == 1 and balanced(summary)


def test_limit_does_not_report_the_keys_past_it(tmp_path: Path) -> None:
    summary = run_keyed(tmp_path, "id,level\na,x\nc,y\n", limit=1, on_error="skip")
    assert (summary.rows_read, summary.joined_rows_rejected) == (1, 0)
    summary = run_keyed(tmp_path, "id,level\na,x\nc,y\nd,y\n", limit=5, on_error="skip")
    assert (summary.rows_read, summary.joined_rows_rejected) == (3, 1)


def test_labels_inferred_from_a_joined_column(tmp_path: Path, nlp: Language) -> None:
    data = {**KEYED, "groups": {"level": {"kind": "multiclass", "column": "level"}}}
    summary = run_keyed(tmp_path, "id,level\na,zeta\nb,alpha\n", data)
    assert summary.inferred_labels == {"level": ["alpha", "zeta"]}
    assert docs_of(nlp, summary)[0].cats == {"level/alpha": 0.0, "level/zeta": 1.0}


# ---------------------------------------------------------------------------------------
# Position join

POSITIONAL = {
    "format": "csv",
    "sep": ";",
    "join": [{"path": "{stem}.extra.csv", "check": "text"}],
    "groups": {"extra": {"kind": "multilabel", "columns": ["p"]}},
}


def run_positional(tmp_path: Path, main: str, extra: str, **kwargs: Any) -> ConvertSummary:
    src = write(tmp_path / "soft.csv", main)
    write(tmp_path / "soft.extra.csv", extra)
    return convert_files([src], tmp_path / "out", spec(POSITIONAL), **kwargs)


def test_position_join_shorter_file(tmp_path: Path, nlp: Language) -> None:
    # NBSP against a space, runs of spaces, a full-width letter: equal after NFKC and
    # whitespace collapsing.
    summary = run_positional(
        tmp_path,
        "text\nhello  world\nＡ b\nthird\n",
        "text,p\nhello\u00a0world,1\n A b ,0\n",
    )
    assert [d.cats for d in docs_of(nlp, summary)] == [{"extra/p": 1.0}, {"extra/p": 0.0}, {}]
    assert summary.rows_read == summary.docs_written == 3


def test_position_join_longer_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RowError) as info:
        run_positional(tmp_path, "text\na\n", "text,p\na,1\nb,0\n")
    err = info.value
    assert (err.path, err.line, err.column) == (tmp_path / "soft.extra.csv", 3, None)
    assert "more rows than" in err.reason and "its row 2" in err.reason
    assert not (tmp_path / "out").exists()
    summary = run_positional(tmp_path, "text\na\n", "text,p\na,1\nb,0\n\nc,1\n", on_error="skip")
    assert (summary.rows_read, summary.docs_written, summary.rows_rejected) == (1, 1, 0)
    assert summary.joined_rows_rejected == 2
    assert [(r["line"], r["content"]) for r in rejects_of(summary)] == [("3", "b,0"), ("5", "c,1")]


def test_position_join_check_mismatch_is_a_row_error(tmp_path: Path, nlp: Language) -> None:
    with pytest.raises(RowError) as info:
        run_positional(tmp_path, "text\na\nb\n", "text,p\na,1\n\nc,0\n")
    err = info.value
    assert (err.path, err.line, err.column) == (tmp_path / "soft.extra.csv", 4, "text")
    assert err.reason.startswith(f"'c' is not 'b' of {tmp_path / 'soft.csv'}:3")
    summary = run_positional(tmp_path, "text\na\nb\n", "text,p\na,1\n\nc,0\n", on_error="skip")
    assert (summary.rows_read, summary.docs_written, summary.rows_rejected) == (2, 1, 1)
    assert [d.text for d in docs_of(nlp, summary)] == ["a"]


def test_position_join_keeps_step_past_bad_rows(tmp_path: Path, nlp: Language) -> None:
    # The input's bad row (too many fields) still takes its joined row; a bad joined row
    # rejects its input row, named at the joined file's line.
    summary = run_positional(
        tmp_path, "text\na\nb;x\nc\nd\n", "text,p\na,1\nb,0\nc\nd,1\n", on_error="skip"
    )
    assert [(d.text, d.cats) for d in docs_of(nlp, summary)] == [
        ("a", {"extra/p": 1.0}),
        ("d", {"extra/p": 1.0}),
    ]
    rows = rejects_of(summary)
    assert [(Path(r["file"]).name, r["line"], r["column"]) for r in rows] == [
        ("soft.csv", "3", ""),
        ("soft.extra.csv", "4", "p"),
    ]
    assert balanced(summary) and summary.joined_rows_rejected == 0


# ---------------------------------------------------------------------------------------
# Thresholds


SOFT = {
    "format": "csv",
    "groups": {
        "hate": {
            "kind": "multiclass",
            "column": "isHate",
            "labels": ["not_hate", "hate"],
            "threshold": 0.5,
        },
        "target": {"kind": "multilabel", "columns": ["gender", "race"], "threshold": 0.5},
    },
}


def test_threshold(tmp_path: Path, nlp: Language) -> None:
    src = write(
        tmp_path / "s.csv",
        "text,isHate,gender,race\n"  # header
        "a,0.5,0.49999,1\n"
        "b,0.1,0,\n"
        "c,,1.0,0.5\n"
        "d,1,,0.0\n",
    )
    summary = convert_files([src], tmp_path / "out", spec(SOFT))
    assert [d.cats for d in docs_of(nlp, summary)] == [
        {"hate/not_hate": 0.0, "hate/hate": 1.0, "target/gender": 0.0, "target/race": 1.0},
        {"hate/not_hate": 1.0, "hate/hate": 0.0, "target/gender": 0.0},
        {"target/gender": 1.0, "target/race": 1.0},
        {"hate/not_hate": 0.0, "hate/hate": 1.0, "target/race": 0.0},
    ]


def test_threshold_nan_is_an_error_unless_listed_missing(tmp_path: Path, nlp: Language) -> None:
    """As in 0/1 columns: a NaN score is a row error unless missing_values lists "NaN"."""
    src = write(tmp_path / "s.csv", "text,isHate,gender,race\nd,1,NaN,0.0\n")
    with pytest.raises(RowError) as info:
        convert_files([src], tmp_path / "out", spec(SOFT))
    assert (info.value.line, info.value.column) == (2, "gender")
    summary = convert_files([src], tmp_path / "out", spec({**SOFT, "missing_values": ["NaN"]}))
    assert [d.cats for d in docs_of(nlp, summary)] == [
        {"hate/not_hate": 0.0, "hate/hate": 1.0, "target/race": 0.0}
    ]


@pytest.mark.parametrize(
    "cell,column",
    [
        ("abc", "isHate"),
        ("1.5", "isHate"),
        ("-0.1", "isHate"),
        ("0,7", "isHate"),  # a decimal comma is not a number here
        ("inf", "gender"),
    ],
)
def test_threshold_bad_cells(tmp_path: Path, cell: str, column: str) -> None:
    row = {"isHate": "0.5", "gender": "0.5", "race": "0.5", column: cell}
    src = write(
        tmp_path / "s.csv",
        "text,isHate,gender,race\nok,0,0,0\n"
        f"t,{row['isHate']},{row['gender']},{row['race']}\n".replace("0,7", '"0,7"'),
    )
    with pytest.raises(RowError) as info:
        convert_files([src], tmp_path / "out", spec(SOFT))
    err = info.value
    assert (err.path, err.line, err.column) == (src, 3, column)
    assert err.reason.startswith(f"value {cell!r} is not a number in [0, 1]")


def test_threshold_jsonl_values(tmp_path: Path, nlp: Language) -> None:
    src = write(
        tmp_path / "s.jsonl",
        '{"text": "a", "isHate": 0.75, "gender": 0, "race": null}\n'
        '{"text": "b", "isHate": true, "gender": 0, "race": 0}\n',
    )
    data = {**SOFT, "format": "jsonl"}
    summary = convert_files([src], tmp_path / "out", spec(data), on_error="skip")
    assert [d.cats for d in docs_of(nlp, summary)] == [
        {"hate/not_hate": 0.0, "hate/hate": 1.0, "target/gender": 0.0}
    ]
    rows = rejects_of(summary)
    assert [(r["line"], r["column"]) for r in rows] == [("2", "isHate")]


def test_soft_scores_without_threshold_are_still_errors(tmp_path: Path) -> None:
    src = write(tmp_path / "s.csv", "text,gender\na,0.7\n")
    data = {"groups": {"target": {"kind": "multilabel", "columns": ["gender"]}}}
    with pytest.raises(RowError, match=r"'0\.7' is not 0 or 1"):
        convert_files([src], tmp_path / "out", spec(data))


@pytest.mark.parametrize(
    "group,message",
    [
        ({"kind": "multilabel", "column": "l", "labels": ["a"], "threshold": 0.5}, "has `column`"),
        ({"kind": "multiclass", "columns": ["a", "b"], "threshold": 0.5}, "has `columns`"),
        (
            {"kind": "multiclass", "column": "l", "labels": ["a", "b", "c"], "threshold": 0.5},
            "not a list of two",
        ),
        (
            {"kind": "multiclass", "column": "l", "labels": {0: "a", 1: "b"}, "threshold": 0.5},
            "not a list of two",
        ),
        ({"kind": "multiclass", "column": "l", "threshold": 0.5}, "not a list of two"),
        (
            {
                "kind": "multiclass",
                "column": "l",
                "labels": ["a", "b"],
                "delimiter": ",",
                "threshold": 0.5,
            },
            "`delimiter` does not apply",
        ),
        ({"kind": "multilabel", "columns": ["a"], "threshold": 0}, r"a number in \(0, 1\]"),
        ({"kind": "multilabel", "columns": ["a"], "threshold": 1.5}, r"a number in \(0, 1\]"),
        ({"kind": "multilabel", "columns": ["a"], "threshold": "0.5"}, r"a number in \(0, 1\]"),
        ({"kind": "multilabel", "columns": ["a"], "threshold": True}, r"a number in \(0, 1\]"),
    ],
)
def test_threshold_spec_errors(group: Dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        spec({"groups": {"g": group}})


def test_threshold_spec_error_for_derived_group() -> None:
    groups = {
        "g": {"kind": "multilabel", "columns": ["a"]},
        "d": {"kind": "multilabel", "from": "g", "mapping": {"x": ["a"]}, "threshold": 0.5},
    }
    with pytest.raises(SpecError, match="has `from`"):
        spec({"groups": groups})


@pytest.mark.parametrize(
    "join,message",
    [
        ("labels.csv", "`join` must be a list"),
        ([], "`join` must be a list"),
        (["labels.csv"], "`join` entry 1 must be a mapping"),
        ([{"key": "id"}], "`path` of join 1 must be a file name"),
        ([{"path": "a.csv", "on": "id"}], r"unknown setting\(s\) \['on'\] of join 1"),
        ([{"path": "{base}.csv"}], "may use the fields"),
        ([{"path": "a.txt", "format": "lines"}], "`format` 'lines' cannot be joined"),
        ([{"path": "a.csv", "key": "id", "check": "text"}], "leave out one of them"),
        ([{"path": "a.csv", "key": "id", "columns": ["k", "v"]}], "`key` 'id' is not one of"),
        ([{"path": "a.csv", "columns": ["k", "k"]}], "unique names"),
        ([{"path": "a.jsonl", "format": "jsonl", "key": "id"}], "JSONL file has no header"),
        ([{"path": "a.csv", "sep": ";;"}], "one character"),
        ([{"path": "a.csv", "header": "yes"}], "true or false"),
        ([{"path": "a.csv", "encoding": "utf-16"}], "not ASCII-compatible"),
    ],
)
def test_join_spec_errors(join: Any, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        spec({"join": join})


def test_join_jsonl_without_columns_found_from_the_name(tmp_path: Path) -> None:
    src = write(tmp_path / "test.tsv", TEXTS)
    write(tmp_path / "test.labels.jsonl", '{"id": "a", "level": 1}\n')
    data = {**KEYED, "join": [{"path": "{stem}.labels.jsonl", "key": "id"}]}
    with pytest.raises(SpecError, match="JSONL file has no header row"):
        convert_files([src], tmp_path / "out", spec(data))


# ---------------------------------------------------------------------------------------
# Generated data sets: the counts


def make_hierarchy(folder: Path, n: int, seed: int) -> Tuple[Path, Dict[str, Dict[str, int]]]:
    """A test split as one text file plus one `id,label` file per level; deeper levels list
    only the ids that have that level. Returns the text file and the expected counts."""
    rng = random.Random(seed)
    levels = {
        "l1": ["animal", "plant", "thing"],
        "l2": ["small", "large"],
        "l3": ["red", "green", "blue", "other"],
    }
    texts = ["id\ttext"]
    rows: Dict[str, List[Tuple[str, str]]] = {name: [] for name in levels}
    expected: Dict[str, Dict[str, int]] = {name: {} for name in levels}
    for i in range(n):
        doc_id = f"doc{i:05d}"
        texts.append(f"{doc_id}\ttext number {i}, with words")
        depth = rng.choice([1, 1, 2, 2, 3]) if i % 11 else 0  # every 11th row: no label
        for level, name in enumerate(levels, 1):
            if level <= depth:
                label = rng.choice(levels[name])
                rows[name].append((doc_id, label))
                expected[name][label] = expected[name].get(label, 0) + 1
    write(folder / "test.tsv", "\n".join(texts) + "\n")
    for name, pairs in rows.items():
        rng.shuffle(pairs)  # a key join does not care about order
        lines = ["id,label", *(f"{i},{label}" for i, label in pairs)]
        write(folder / f"test.{name}.csv", "\n".join(lines) + "\n")
    return folder / "test.tsv", expected


HIERARCHY = {
    "format": "tsv",
    "id": "id",
    "join": [
        {"path": f"{{stem}}.{name}.csv", "key": "id", "columns": ["id", name], "header": True}
        for name in ("l1", "l2", "l3")
    ],
    "groups": {
        "l1": {"kind": "multiclass", "column": "l1", "labels": ["animal", "plant", "thing"]},
        "l2": {"kind": "multiclass", "column": "l2", "labels": ["small", "large"]},
        "l3": {"kind": "multiclass", "column": "l3", "labels": ["red", "green", "blue", "other"]},
    },
}


def test_generated_hierarchical_data_set(tmp_path: Path, nlp: Language) -> None:
    src, expected = make_hierarchy(tmp_path / "data", 2_500, seed=3)
    summary = convert_files(
        [src], tmp_path / "out", spec(HIERARCHY), chunk_size=300, shard_size=1_000
    )
    corpus = summary.corpora[0]
    assert (corpus.rows_read, corpus.docs_written, corpus.rows_rejected) == (2_500, 2_500, 0)
    assert corpus.total_label_counts() == {
        name: {label: expected[name].get(label, 0) for label in group["labels"]}
        for name, group in HIERARCHY["groups"].items()
    }
    assert corpus.total_annotated() == {name: sum(c.values()) for name, c in expected.items()}
    assert corpus.total_annotated()["l1"] == 2_500 - len(range(0, 2_500, 11))
    assert len(corpus.files["all"]) == 3
    docs = docs_of(nlp, summary)
    assert [d.user_data["id"] for d in docs] == [f"doc{i:05d}" for i in range(2_500)]
    # A deeper level is only there with the levels above it.
    for doc in docs:
        groups = {key.split("/")[0] for key in doc.cats}
        assert groups in (set(), {"l1"}, {"l1", "l2"}, {"l1", "l2", "l3"})

    # The same with an unknown id in level 3 and a split: one joined reject, counted apart.
    with (tmp_path / "data" / "test.l3.csv").open("a") as f:
        f.write("doc99999,red\n")
    summary = convert_files(
        [src], tmp_path / "out2", spec(HIERARCHY), split="train=0.8,test=0.2", on_error="skip"
    )
    corpus = summary.corpora[0]
    assert (corpus.rows_read, corpus.docs_written, corpus.rows_rejected) == (2_500, 2_500, 0)
    assert corpus.joined_rows_rejected == 1
    # Stratified by l1 (3 labels and the unlabelled rows): each stratum within one row.
    assert sum(corpus.docs.values()) == 2_500 and abs(corpus.docs["test"] - 500) <= 4
    rows = rejects_of(summary)
    n_l3 = sum(expected["l3"].values())
    assert [(Path(r["file"]).name, r["line"]) for r in rows] == [("test.l3.csv", str(n_l3 + 2))]


def make_soft(folder: Path, n: int, n_extra: int, seed: int) -> Dict[str, int]:
    """`;`-separated annotator agreements, and per-label scores for the first `n_extra`
    rows in a second file whose texts have NBSP where the first has spaces."""
    rng = random.Random(seed)
    main = ["comment;isHate;gender;race"]
    extra = ["comment;violence;directed"]
    counts = {"hate": 0, "gender": 0, "race": 0, "violence": 0, "directed": 0, "missing": 0}
    for i in range(n):
        text = f"comment {i} says  something"
        scores = [round(rng.random(), 4) for _ in range(3)]
        cells = [f"{s}" for s in scores]
        if i % 13 == 0:
            cells[2] = ""  # race missing
            counts["missing"] += 1
        for name, score, cell in zip(("hate", "gender", "race"), scores, cells):
            counts[name] += bool(cell) and score >= 0.5
        main.append(";".join([text, *cells]))
        if i < n_extra:
            more = [round(rng.random(), 4) for _ in range(2)]
            counts["violence"] += more[0] >= 0.5
            counts["directed"] += more[1] >= 0.5
            extra.append(";".join([text.replace(" ", "\u00a0"), *map(str, more)]))
    write(folder / "soft.csv", "\n".join(main) + "\n")
    write(folder / "soft.extra.csv", "\n".join(extra) + "\n")
    return counts


# SOFT's groups in a ';'-separated file, plus a group from a second file joined by position.
SOFT_SPEC = {
    **SOFT,
    "sep": ";",
    "text": "comment",
    "join": [{"path": "{stem}.extra.csv", "sep": ";", "check": "comment"}],
    "groups": {
        **SOFT["groups"],
        "extra": {"kind": "multilabel", "columns": ["violence", "directed"], "threshold": 0.5},
    },
}


def test_generated_soft_label_data_set(tmp_path: Path, nlp: Language) -> None:
    counts = make_soft(tmp_path / "data", 3_000, 1_200, seed=5)
    src = tmp_path / "data" / "soft.csv"
    summary = convert_files([src], tmp_path / "out", spec(SOFT_SPEC), chunk_size=500)
    corpus = summary.corpora[0]
    assert (corpus.rows_read, corpus.docs_written, corpus.rows_rejected) == (3_000, 3_000, 0)
    labels = corpus.total_label_counts()
    assert labels["hate"] == {"not_hate": 3_000 - counts["hate"], "hate": counts["hate"]}
    assert labels["target"] == {"gender": counts["gender"], "race": counts["race"]}
    assert labels["extra"] == {"violence": counts["violence"], "directed": counts["directed"]}
    assert corpus.total_annotated() == {"hate": 3_000, "target": 3_000, "extra": 1_200}
    docs = docs_of(nlp, summary)
    assert sum("target/race" not in d.cats for d in docs) == counts["missing"]
    assert docs[1_199].cats.keys() >= {"extra/violence"}
    assert not any(k.startswith("extra/") for k in docs[1_200].cats)

    # The extra file one row out of step: its first row's text is another's.
    lines = (tmp_path / "data" / "soft.extra.csv").read_text("utf-8").splitlines()
    write(tmp_path / "data" / "soft.extra.csv", "\n".join([lines[0], *lines[2:]]) + "\n")
    summary = convert_files(
        [src], tmp_path / "out", spec(SOFT_SPEC), on_error="skip", split="a=0.5,b=0.5"
    )
    corpus = summary.corpora[0]
    assert (corpus.rows_read, corpus.docs_written, corpus.rows_rejected) == (3_000, 1_801, 1_199)
    rows = rejects_of(summary)
    assert rows[0]["file"].endswith("soft.extra.csv") and rows[0]["line"] == "2"
    assert rows[0]["column"] == "comment"


# ---------------------------------------------------------------------------------------
# CLI


def test_cli_states_joined_rejects_apart(tmp_path: Path) -> None:
    src = write(tmp_path / "test.tsv", TEXTS)
    write(tmp_path / "test.labels.csv", "id,level\na,x\nzz,y\nb,q\n")
    spec_file = write(tmp_path / "spec.yml", srsly.yaml_dumps(KEYED))
    args = ["convert", str(src), str(tmp_path / "out"), "--spec", str(spec_file)]
    result = CliRunner().invoke(app, [*args, "--on-error", "skip"])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "rows read 3 = docs written 2 + rows rejected 1" in output
    assert "joined-file rows rejected 1 (rows of `join` files that belong to no input row" in output
    assert "1 rows and 1 joined-file rows rejected" in output
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert f"{tmp_path / 'test.labels.csv'}:4: column 'level': unknown label value 'q'" in output


# ---------------------------------------------------------------------------------------
# The worked examples of docs/convert.md: their spec is read from the page itself.

DOCS = Path(__file__).parents[2] / "docs" / "convert.md"


def docs_spec(heading: str) -> ConvertSpec:
    page = DOCS.read_text(encoding="utf-8")
    section = page[page.index(heading) :]
    block = section[section.index("```yaml\n") + len("```yaml\n") :]
    return ConvertSpec.from_dict(srsly.yaml_loads(block[: block.index("```")]))


def test_docs_example_hierarchical(tmp_path: Path, nlp: Language) -> None:
    write(tmp_path / "test.level1.csv", "id,label\nt2,plant\nt1,animal\nt3,thing\n")
    write(tmp_path / "test.level2.csv", "id,label\nt1,mammal\nt2,tree\n")
    write(tmp_path / "test.level3.csv", "id,label\nt1,cetacean\n")
    src = write(
        tmp_path / "test.tsv",
        "id\ttext\nt1\tA whale is not a fish.\nt2\tOak trees live long.\nt3\tThe kettle is on.\n",
    )
    hierarchy = docs_spec("### Worked example: hierarchical labels")
    summary = convert_files([src], tmp_path / "corpus", hierarchy)
    assert [d.cats for d in docs_of(nlp, summary)] == [
        {
            **{"level1/animal": 1.0, "level1/plant": 0.0, "level1/thing": 0.0},
            **{"level2/mammal": 1.0, "level2/fish": 0.0, "level2/tree": 0.0},
            **{"level2/flower": 0.0, "level3/cetacean": 1.0, "level3/primate": 0.0},
        },
        {
            **{"level1/animal": 0.0, "level1/plant": 1.0, "level1/thing": 0.0},
            **{"level2/mammal": 0.0, "level2/fish": 0.0, "level2/tree": 1.0},
            "level2/flower": 0.0,
        },
        {"level1/animal": 0.0, "level1/plant": 0.0, "level1/thing": 1.0},
    ]


def test_docs_example_soft_labels(tmp_path: Path, nlp: Language) -> None:
    src = write(
        tmp_path / "comments.csv",
        "comment;isHate;gender;race\nwomen should stay home;0.83;0.91;0.0\n"
        "nice day today;0.0;0.0;0.0\nthey are all the same;0.4;;0.62\n",
    )
    write(
        tmp_path / "comments.more.csv",
        "comment;violence;directed_vs_generalized\n"
        "women\u00a0should stay\u00a0home;0.1;0.7\nnice  day today;0;0.2\n",
    )
    summary = convert_files([src], tmp_path / "corpus", docs_spec("### Worked example: soft"))
    assert [d.cats for d in docs_of(nlp, summary)] == [
        {"hate/not_hate": 0.0, "hate/hate": 1.0, "target/gender": 1.0, "target/race": 0.0}
        | {"more/violence": 0.0, "more/directed": 1.0},
        {"hate/not_hate": 1.0, "hate/hate": 0.0, "target/gender": 0.0, "target/race": 0.0}
        | {"more/violence": 0.0, "more/directed": 0.0},
        {"hate/not_hate": 1.0, "hate/hate": 0.0, "target/race": 1.0},
    ]


def _benchmark_module() -> Any:
    import importlib.util

    path = Path(__file__).parents[2] / "benchmarks" / "convert_join.py"
    module_spec = importlib.util.spec_from_file_location("convert_join", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def test_benchmark_layouts_give_the_same_docs(tmp_path: Path, nlp: Language) -> None:
    """benchmarks/convert_join.py's two layouts (label file joined by key, label column)."""
    counts = _benchmark_module().generate(tmp_path, 500, 1)
    docs = {}
    for name in ("plain", "join"):
        data = srsly.read_json(tmp_path / f"{name}.json")
        summary = convert_files(
            [tmp_path / name / "test.tsv"], tmp_path / f"out-{name}", spec(data)
        )
        assert summary.corpora[0].total_label_counts() == {"sentiment": counts}
        docs[name] = [(d.text, d.cats) for d in docs_of(nlp, summary)]
    assert len(docs["join"]) == 500 and docs["join"] == docs["plain"]
    assert sum(bool(cats) for _, cats in docs["join"]) == sum(counts.values()) < 500
    lines = (tmp_path / "join" / "test.labels.csv").read_text().splitlines()[1:]
    ids = [int(line.split(",")[0][1:]) for line in lines]
    assert ids != sorted(ids) and len(set(ids)) == len(ids)  # another order, each id once


@pytest.mark.slow
def test_benchmark_script_smoke(tmp_path: Path) -> None:
    """The script end to end on a few rows (two convert subprocesses: ~1 minute)."""
    import subprocess
    import sys

    script = Path(__file__).parents[2] / "benchmarks" / "convert_join.py"
    out = tmp_path / "result.json"
    subprocess.run(
        [sys.executable, str(script), "--rows", "300", "--out", str(out)],
        check=True,
        capture_output=True,
    )
    result = srsly.read_json(out)
    assert result["rows"] == 300 and 0 < result["labelled_rows"] < 300
    for name in ("plain", "join"):
        assert result[name]["rows_per_s"] > 0 and result[name]["peak_rss_mb"] > 10
