"""Tests of `spacy_mtl.data.convert` and the `spacy-mtl convert` command.

Small files are written to tmp_path; the slow tests read the real data sets in
../shared/data (or $SPACY_MTL_DATA).
"""

import csv
import gzip
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
import spacy
import srsly
from conftest import read_docs, write
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Corpus
from typer.testing import CliRunner

from spacy_mtl.cli import app
from spacy_mtl.data.convert import (
    ConvertError,
    ConvertSpec,
    ConvertSummary,
    RowError,
    SpecError,
    assign_splits,
    convert_files,
    load_spec,
    parse_split,
)

SPECS = Path(__file__).parents[2] / "assets" / "specs"


def data_dir() -> Path:
    """The real data sets: $SPACY_MTL_DATA, else the shared/data folder next to the repo."""
    default = Path(__file__).parents[3] / "shared" / "data"
    return Path(os.environ.get("SPACY_MTL_DATA", str(default)))


@pytest.fixture(scope="module")
def nlp() -> Language:
    return spacy.blank("en")


def spec(data: Dict[str, Any]) -> ConvertSpec:
    return ConvertSpec.from_dict(data)


def run(
    tmp_path: Path, nlp: Language, name: str, content: str, spec_data: Dict[str, Any], **kwargs: Any
) -> Tuple[ConvertSummary, List[Doc]]:
    """Convert one small file; return the summary and the docs of its one output."""
    src = write(tmp_path / name, content)
    summary = convert_files([src], tmp_path / "out", spec(spec_data), **kwargs)
    files = [p for c in summary.corpora for paths in c.files.values() for p in paths]
    return summary, read_docs(nlp, files)


def fail(tmp_path: Path, name: str, content: str, spec_data: Dict[str, Any]) -> RowError:
    src = write(tmp_path / name, content)
    with pytest.raises(RowError) as info:
        convert_files([src], tmp_path / "out", spec(spec_data))
    assert not (tmp_path / "out").exists(), "a failed conversion must leave nothing behind"
    return info.value


SENTIMENT = {
    "groups": {
        "sentiment": {"kind": "multiclass", "column": "label", "labels": {0: "neg", 1: "pos"}}
    }
}
# A quoted field over three physical lines and a blank line: the rows after them sit on
# physical lines that a row counter (or pandas) would get wrong.
PREAMBLE = 'text,label\n"first\nsecond\nthird",1\n\nok,0\n'  # rows on lines 2 and 6


# ---------------------------------------------------------------------------------------
# Row errors name the file, the physical line and the column


def test_error_unknown_value_after_multiline_field_and_blank_line(tmp_path: Path) -> None:
    err = fail(tmp_path, "a.csv", PREAMBLE + "bad,7\n", SENTIMENT)
    assert (err.line, err.column) == (7, "label")
    assert str(err).startswith(f"{tmp_path / 'a.csv'}:7: column 'label': unknown label value '7'")


def test_error_multiclass_cell_with_two_labels(tmp_path: Path) -> None:
    group = {"kind": "multiclass", "column": "label", "delimiter": ",", "labels": ["neg", "pos"]}
    data = {"groups": {"s": group}}
    err = fail(tmp_path, "a.csv", PREAMBLE + 'x,"neg,pos"\n', data)
    assert (err.line, err.column) == (7, "label")
    assert "2 labels ['neg', 'pos'] in one cell" in err.reason


def test_error_empty_text(tmp_path: Path) -> None:
    err = fail(tmp_path, "a.csv", PREAMBLE + '"  ",1\n', SENTIMENT)
    assert (err.line, err.column, err.reason) == (7, "text", "empty text.")


def test_error_undecodable_bytes_names_the_line(tmp_path: Path) -> None:
    src = tmp_path / "a.csv"
    src.write_bytes(PREAMBLE.encode() + b"caf\xe9,1\nfine,0\n")
    with pytest.raises(RowError) as info:
        convert_files([src], tmp_path / "out", spec(SENTIMENT))
    assert info.value.line == 7
    assert "b'\\xe9' at position 3 of the line are not valid utf-8" in info.value.reason


def test_error_undecodable_bytes_inside_a_multiline_field(tmp_path: Path) -> None:
    src = tmp_path / "a.csv"
    src.write_bytes(b'text,label\n"one\ntw\xff\nthree",1\n')
    with pytest.raises(RowError) as info:
        convert_files([src], tmp_path / "out", spec(SENTIMENT))
    assert info.value.line == 3  # the bad physical line, not the row's first line


def test_error_missing_column_in_header(tmp_path: Path) -> None:
    src = write(tmp_path / "a.csv", "text,lbl\nhi,1\n")
    with pytest.raises(ConvertError, match=r"a\.csv:1: column 'label': not in the header"):
        convert_files([src], tmp_path / "out", spec(SENTIMENT), on_error="skip")
    assert not (tmp_path / "out").exists()


def test_error_missing_key_in_jsonl(tmp_path: Path) -> None:
    content = '{"text": "a", "label": 0}\n\n{"text": "b"}\n'
    err = fail(tmp_path, "a.jsonl", content, SENTIMENT)
    assert (err.line, err.column) == (3, "label")
    assert "no key 'label'" in err.reason


def test_error_short_row(tmp_path: Path) -> None:
    err = fail(tmp_path, "a.csv", PREAMBLE + "lonely\n", SENTIMENT)
    assert (err.line, err.column) == (7, "label")
    assert err.reason.startswith("missing: the row has 1 fields, expected 2")


def test_error_long_row(tmp_path: Path) -> None:
    err = fail(tmp_path, "a.csv", PREAMBLE + "a,b,1\n", SENTIMENT)
    assert (err.line, err.column) == (7, None)
    assert err.reason.startswith("the row has 3 fields, expected 2")
    assert str(err).startswith(f"{tmp_path / 'a.csv'}:7: the row has")


def test_error_duplicate_header(tmp_path: Path) -> None:
    src = write(tmp_path / "a.csv", "text,label,label\nhi,1,0\n")
    with pytest.raises(ConvertError, match=r"a\.csv:1: column name 'label' appears more"):
        convert_files([src], tmp_path / "out", spec(SENTIMENT))


def test_error_jsonl_invalid_and_not_an_object(tmp_path: Path) -> None:
    err = fail(tmp_path, "a.jsonl", '{"text": "a", "label": 0}\n{"text": \n', SENTIMENT)
    assert err.line == 2 and err.reason.startswith("invalid JSON")
    err = fail(tmp_path, "b.jsonl", '["a", 0]\n', SENTIMENT)
    assert err.line == 1 and "got an array" in err.reason


def test_error_derived_multiclass_with_two_labels(tmp_path: Path) -> None:
    data = {
        "groups": {
            "emotion": {
                "kind": "multilabel",
                "column": "labels",
                "delimiter": ",",
                "labels": ["joy", "anger"],
            },
            "polarity": {
                "kind": "multiclass",
                "from": "emotion",
                "mapping": {"positive": ["joy"], "negative": ["anger"]},
            },
        }
    }
    content = 'text,labels\nfine,joy\nmixed,"joy,anger"\n'
    err = fail(tmp_path, "a.csv", content, data)
    assert (err.line, err.column) == (3, "labels")
    assert "map to 2 labels ['positive', 'negative']" in err.reason


def test_failed_run_keeps_earlier_outputs(tmp_path: Path, nlp: Language) -> None:
    src = write(tmp_path / "a.csv", "text,label\nhi,1\n")
    convert_files([src], tmp_path / "out", spec(SENTIMENT))
    before = (tmp_path / "out" / "a.spacy").read_bytes()
    write(tmp_path / "a.csv", "text,label\nhi,1\nthere,0\nbad,9\n")
    with pytest.raises(RowError):
        convert_files([src], tmp_path / "out", spec(SENTIMENT))
    assert (tmp_path / "out" / "a.spacy").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.spacy"]


def test_error_message_names_the_labels_file(tmp_path: Path) -> None:
    write(tmp_path / "train_text.txt", "one\ntwo\nthree\n")
    write(tmp_path / "train_labels.txt", "0\n5\n1\n")
    data = {
        "labels_file": {"replace": "_text", "with": "_labels"},
        "groups": {"s": {"kind": "multiclass", "column": "label", "labels": ["a", "b"]}},
    }
    with pytest.raises(RowError) as info:
        convert_files([tmp_path / "train_text.txt"], tmp_path / "out", spec(data))
    assert info.value.path == tmp_path / "train_labels.txt"
    assert (info.value.line, info.value.column) == (2, "label")


@pytest.mark.parametrize(
    "texts,labels,line,reason",
    [
        ("a\nb\nc\n", "0\n1\n", 3, "no line 3 in the labels file"),
        ("a\nb\n", "0\n1\n1\n", 3, "no line 3 in the text file"),
    ],
)
def test_error_paired_files_out_of_step(
    tmp_path: Path, texts: str, labels: str, line: int, reason: str
) -> None:
    write(tmp_path / "x_text.txt", texts)
    write(tmp_path / "x_labels.txt", labels)
    data = {
        "labels_file": {"replace": "_text", "with": "_labels"},
        "groups": {"s": {"kind": "multiclass", "column": "label", "labels": ["a", "b"]}},
    }
    with pytest.raises(RowError) as info:
        convert_files([tmp_path / "x_text.txt"], tmp_path / "out", spec(data))
    assert info.value.line == line and info.value.reason.startswith(reason)


def test_error_line_not_matching_pattern(tmp_path: Path) -> None:
    data = {
        "pattern": r"^(?P<label>\d) (?P<text>.*)$",
        "groups": {"s": {"kind": "multiclass", "column": "label", "labels": ["a", "b"]}},
    }
    err = fail(tmp_path, "sst.train", "1 good\n0 bad\nno label here\n", data)
    assert (err.line, err.column) == (3, None)
    assert "does not match the pattern" in err.reason


def test_error_one_column_per_label_value(tmp_path: Path) -> None:
    data = {"groups": {"tox": {"kind": "multilabel", "columns": ["toxic", "insult"]}}}
    err = fail(tmp_path, "a.csv", "text,toxic,insult\na,1,0\nb,0.5,1\n", data)
    assert (err.line, err.column) == (3, "toxic")
    assert "'0.5' is not 0 or 1" in err.reason


# ---------------------------------------------------------------------------------------
# Skip mode: nothing lost


def test_skip_mode_bookkeeping_and_rejects_file(tmp_path: Path, nlp: Language) -> None:
    content = (
        "text,label\n"
        "good one,1\n"  # 2
        '"multi\nline",0\n'  # 3-4
        "bad label,9\n"  # 5
        "\n"  # 6 blank: not a row
        ",1\n"  # 7 empty text
        "too,many,fields\n"  # 8
        "short\n"  # 9
        "last,0\n"  # 10
    )
    src = write(tmp_path / "mixed.csv", content)
    rejects = tmp_path / "rej" / "rejects.csv"
    summary = convert_files(
        [src], tmp_path / "out", spec(SENTIMENT), on_error="skip", rejects=rejects
    )
    corpus = summary.corpora[0]
    assert corpus.rows_read == 7
    assert corpus.docs_written == 3
    assert corpus.rows_rejected == 4
    assert corpus.rows_read == corpus.docs_written + corpus.rows_rejected
    docs = read_docs(nlp, corpus.files["all"])
    assert [d.text for d in docs] == ["good one", "multi\nline", "last"]
    with rejects.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["line"], r["column"]) for r in rows] == [
        ("5", "label"),
        ("7", "text"),
        ("8", ""),
        ("9", "label"),
    ]
    assert all(r["file"] == str(src) for r in rows)
    assert [r["content"] for r in rows] == ["bad label,9", ",1", "too,many,fields", "short"]
    assert rows[0]["reason"].startswith("unknown label value '9'")
    assert summary.rejects == rejects


def test_skip_mode_default_rejects_path_and_empty_file(tmp_path: Path) -> None:
    src = write(tmp_path / "clean.csv", "text,label\nhi,1\n")
    summary = convert_files([src], tmp_path / "out", spec(SENTIMENT), on_error="skip")
    assert summary.rejects == tmp_path / "out" / "clean.rejects.csv"
    assert summary.rejects.read_bytes() == b"file,line,column,reason,content\r\n"


def test_rejects_need_skip_mode(tmp_path: Path) -> None:
    src = write(tmp_path / "a.csv", "text,label\nhi,1\n")
    with pytest.raises(ConvertError, match="only written with --on-error skip"):
        convert_files([src], tmp_path / "out", spec(SENTIMENT), rejects=tmp_path / "r.csv")


# ---------------------------------------------------------------------------------------
# Round trips: every label layout gives exactly the expected doc.cats


def test_value_map(tmp_path: Path, nlp: Language) -> None:
    summary, docs = run(tmp_path, nlp, "a.csv", "text,label\nyay,1\nboo,0\nhm,\n", SENTIMENT)
    assert [d.cats for d in docs] == [
        {"sentiment/neg": 0.0, "sentiment/pos": 1.0},
        {"sentiment/neg": 1.0, "sentiment/pos": 0.0},
        {},  # empty cell: the group is missing
    ]
    assert summary.corpora[0].label_counts["all"]["sentiment"] == {"neg": 1, "pos": 1}
    assert summary.corpora[0].annotated["all"]["sentiment"] == 2


def test_value_map_keys_from_yaml_and_json_agree(tmp_path: Path) -> None:
    # YAML gives int keys, JSON string keys; srsly reads YAML 1.2, where yes/no/off are
    # strings, not booleans.
    yml = write(
        tmp_path / "s.yml",
        "groups:\n  s:\n    kind: multiclass\n    column: l\n"
        "    labels: {0: no, 1: yes, off: maybe}\n",
    )
    labels = {"0": "no", "1": "yes", "off": "maybe"}
    jsn = write(
        tmp_path / "s.json",
        json.dumps({"groups": {"s": {"kind": "multiclass", "column": "l", "labels": labels}}}),
    )
    assert load_spec(yml).groups == load_spec(jsn).groups
    assert load_spec(yml).groups[0].values == (("0", "no"), ("1", "yes"), ("off", "maybe"))


def test_plain_values_are_labels_inferred_in_sorted_order(tmp_path: Path, nlp: Language) -> None:
    data = {"groups": {"topic": {"kind": "multiclass", "column": "topic"}}}
    content = "text,topic\na,sport\nb,art\nc,sport\nd,\n"
    summary, docs = run(tmp_path, nlp, "a.csv", content, data)
    assert summary.inferred_labels == {"topic": ["art", "sport"]}
    assert "labels inferred from the data" in summary.warnings[0]
    assert [d.cats for d in docs] == [
        {"topic/art": 0.0, "topic/sport": 1.0},
        {"topic/art": 1.0, "topic/sport": 0.0},
        {"topic/art": 0.0, "topic/sport": 1.0},
        {},
    ]
    assert list(docs[0].cats) == ["topic/art", "topic/sport"]


def test_inferred_labels_that_differ_only_in_case_are_warned_about(
    tmp_path: Path, nlp: Language
) -> None:
    """'pos' and 'Pos' became two classes without a word."""
    data = {"groups": {"s": {"kind": "multiclass", "column": "s"}}}
    content = "text,s\na,pos\nb,Pos\nc,neg\nd,NEG\ne,Neg\nf,other\n"
    summary, docs = run(tmp_path, nlp, "a.csv", content, data)
    assert summary.inferred_labels == {"s": ["NEG", "Neg", "Pos", "neg", "other", "pos"]}
    clashes = [w for w in summary.warnings if "differ only in case" in w]
    assert len(clashes) == 2
    assert clashes[0].startswith("Group 's': the inferred labels ['NEG', 'Neg', 'neg'] differ")
    assert clashes[1].startswith("Group 's': the inferred labels ['Pos', 'pos'] differ")
    assert len(docs) == 6  # not merged: kept as they are
    # Labels listed in the spec: nothing is inferred, nothing to warn about.
    data = {"groups": {"s": {"kind": "multiclass", "column": "s", "labels": ["pos", "Pos"]}}}
    summary, _ = run(tmp_path, nlp, "b.csv", "text,s\na,pos\nb,Pos\n", data)
    assert summary.warnings == []
    # The command prints it.
    result = CliRunner().invoke(
        app,
        [
            "convert",
            str(tmp_path / "a.csv"),
            str(tmp_path / "cli"),
            "--spec",
            str(
                write(
                    tmp_path / "s.json",
                    json.dumps({"groups": {"s": {"kind": "multiclass", "column": "s"}}}),
                )
            ),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "['Pos', 'pos'] differ only in case" in " ".join(result.output.split())


def test_inferred_numeric_labels_sort_as_numbers(tmp_path: Path, nlp: Language) -> None:
    data = {"groups": {"n": {"kind": "multiclass", "column": "n"}}}
    summary, _ = run(tmp_path, nlp, "a.csv", "text,n\na,10\nb,2\nc,1\n", data)
    assert summary.inferred_labels == {"n": ["1", "2", "10"]}


def test_whole_floats_match_integer_values(tmp_path: Path, nlp: Language) -> None:
    # What a column of ints with a gap looks like after a trip through pandas.
    _, docs = run(tmp_path, nlp, "a.csv", "text,label\na,1.0\nb,0\n", SENTIMENT)
    assert [d.cats["sentiment/pos"] for d in docs] == [1.0, 0.0]


def test_delimited_codes_label_names_and_order(tmp_path: Path, nlp: Language) -> None:
    data = {
        "format": "tsv",
        "columns": ["text", "emotions", "id"],
        "id": "id",
        "groups": {
            "emotion": {
                "kind": "multilabel",
                "column": "emotions",
                "delimiter": ",",
                "labels": ["anger", "joy", "neutral"],
            }
        },
    }
    content = "so happy\t1\tid1\nugh, fine\t0,2\t007\nnothing\t\tid3\nnamed\tjoy\tid4\n"
    _, docs = run(tmp_path, nlp, "go.tsv", content, data)
    expected = [
        {"emotion/anger": 0.0, "emotion/joy": 1.0, "emotion/neutral": 0.0},
        {"emotion/anger": 1.0, "emotion/joy": 0.0, "emotion/neutral": 1.0},
        {},
        {"emotion/anger": 0.0, "emotion/joy": 1.0, "emotion/neutral": 0.0},
    ]
    assert [d.cats for d in docs] == expected
    assert list(docs[1].cats) == ["emotion/anger", "emotion/joy", "emotion/neutral"]
    assert [d.user_data.get("id") for d in docs] == ["id1", "007", "id3", "id4"]
    assert docs[1].text == "ugh, fine"


def test_label_names_win_over_codes(tmp_path: Path, nlp: Language) -> None:
    data = {"groups": {"g": {"kind": "multiclass", "column": "l", "labels": ["1", "0"]}}}
    _, docs = run(tmp_path, nlp, "a.csv", "text,l\na,0\nb,1\n", data)
    assert [d.cats for d in docs] == [{"g/1": 0.0, "g/0": 1.0}, {"g/1": 1.0, "g/0": 0.0}]


def test_one_column_per_label_with_missing_cells(tmp_path: Path, nlp: Language) -> None:
    data = {
        "missing_values": ["-1"],
        "groups": {
            "toxicity": {
                "kind": "multilabel",
                "columns": {"toxic": "toxic", "severe_toxic": "severe toxic"},
            }
        },
    }
    content = "text,toxic,severe_toxic\na,1,0\nb,0,\nc,,\nd,-1,1.0\ne,0,0\n"
    summary, docs = run(tmp_path, nlp, "a.csv", content, data)
    assert [d.cats for d in docs] == [
        {"toxicity/toxic": 1.0, "toxicity/severe toxic": 0.0},
        {"toxicity/toxic": 0.0},  # one label missing, the other annotated
        {},
        {"toxicity/severe toxic": 1.0},
        {"toxicity/toxic": 0.0, "toxicity/severe toxic": 0.0},  # annotated, no label
    ]
    assert summary.corpora[0].annotated["all"]["toxicity"] == 4


def test_one_column_per_label_multiclass(tmp_path: Path, nlp: Language) -> None:
    data = {"groups": {"s": {"kind": "multiclass", "columns": ["neg", "pos"]}}}
    _, docs = run(tmp_path, nlp, "a.csv", "text,neg,pos\na,0,1\nb,,\n", data)
    assert [d.cats for d in docs] == [{"s/neg": 0.0, "s/pos": 1.0}, {}]
    err = fail(tmp_path / "b", "b.csv", "text,neg,pos\na,1,1\n", data)
    assert err.line == 2 and "2 of its columns are 1" in err.reason
    err = fail(tmp_path / "c", "c.csv", "text,neg,pos\na,,1\n", data)
    assert (err.line, err.column) == (2, "neg") and "partly annotated" in err.reason


def test_jsonl_lists_scalars_nulls_and_empty_lists(tmp_path: Path, nlp: Language) -> None:
    data = {
        "id": "id",
        "groups": {
            "topic": {"kind": "multilabel", "column": "topics", "labels": ["a", "b"]},
            "sentiment": {
                "kind": "multiclass",
                "column": "sentiment",
                "labels": {0: "neg", 1: "pos"},
            },
        },
    }
    lines = [
        {"text": "one", "topics": ["a", "b"], "sentiment": 1, "id": "007"},
        {"text": "two", "topics": [], "sentiment": None, "id": 7},
        {"text": "three", "topics": None, "sentiment": "0", "id": None},
        {"text": "four", "topics": "b", "sentiment": 1.0, "id": "x"},
    ]
    content = "\n".join(json.dumps(line) for line in lines) + "\n\n"
    _, docs = run(tmp_path, nlp, "a.jsonl", content, data)
    assert [d.cats for d in docs] == [
        {"topic/a": 1.0, "topic/b": 1.0, "sentiment/neg": 0.0, "sentiment/pos": 1.0},
        {"topic/a": 0.0, "topic/b": 0.0},
        {"sentiment/neg": 1.0, "sentiment/pos": 0.0},
        {"topic/a": 0.0, "topic/b": 1.0, "sentiment/neg": 0.0, "sentiment/pos": 1.0},
    ]
    # The id keeps its text ("007" stays "007"); a JSON number becomes its JSON text.
    assert [d.user_data.get("id") for d in docs] == ["007", "7", None, "x"]


def test_jsonl_empty_list_for_multiclass_is_an_error(tmp_path: Path) -> None:
    err = fail(tmp_path, "a.jsonl", '{"text": "x", "label": []}\n', SENTIMENT)
    assert err.line == 1 and "no label (an empty list)" in err.reason


def test_empty_negative(tmp_path: Path, nlp: Language) -> None:
    data = {
        "missing_values": ["?"],
        "groups": {
            "topic": {
                "kind": "multilabel",
                "column": "topics",
                "delimiter": "|",
                "labels": ["a", "b"],
                "empty": "negative",
            }
        },
    }
    _, docs = run(tmp_path, nlp, "a.csv", "text,topics\nx,a|b\ny,\nz,?\n", data)
    assert [d.cats for d in docs] == [
        {"topic/a": 1.0, "topic/b": 1.0},
        {"topic/a": 0.0, "topic/b": 0.0},  # empty cell: annotated, no label
        {},  # an explicit missing value stays missing
    ]


def test_derived_groups(tmp_path: Path, nlp: Language) -> None:
    data = {
        "groups": {
            "emotion": {
                "kind": "multilabel",
                "columns": ["joy", "anger", "neutral"],
            },
            "sentiment": {
                "kind": "multilabel",
                "from": "emotion",
                "mapping": {
                    "positive": ["joy"],
                    "negative": ["anger"],
                    "neutral": ["neutral"],
                },
            },
            "polarity": {
                "kind": "multiclass",
                "from": "emotion",
                "mapping": {"emotional": ["joy", "anger"], "calm": ["neutral"]},
            },
        }
    }
    content = (
        "text,joy,anger,neutral\n"
        "a,1,0,0\n"  # joy
        "b,1,1,0\n"  # joy and anger: two sentiments, one polarity
        "c,,,\n"  # emotion missing: everything derived missing
        "d,0,,0\n"  # anger unknown, nothing positive
        "e,0,0,0\n"  # annotated, nothing positive
    )
    data_a = json.loads(json.dumps(data))
    del data_a["groups"]["polarity"]
    _, docs = run(tmp_path, nlp, "a.csv", content, data_a)
    assert [d.cats for d in docs] == [
        {
            "emotion/joy": 1.0,
            "emotion/anger": 0.0,
            "emotion/neutral": 0.0,
            "sentiment/positive": 1.0,
            "sentiment/negative": 0.0,
            "sentiment/neutral": 0.0,
        },
        {
            "emotion/joy": 1.0,
            "emotion/anger": 1.0,
            "emotion/neutral": 0.0,
            "sentiment/positive": 1.0,
            "sentiment/negative": 1.0,
            "sentiment/neutral": 0.0,
        },
        {},
        {
            "emotion/joy": 0.0,
            "emotion/neutral": 0.0,
            "sentiment/positive": 0.0,
            "sentiment/neutral": 0.0,  # 'negative' depends on the missing anger label
        },
        {
            "emotion/joy": 0.0,
            "emotion/anger": 0.0,
            "emotion/neutral": 0.0,
            "sentiment/positive": 0.0,
            "sentiment/negative": 0.0,
            "sentiment/neutral": 0.0,
        },
    ]
    _, docs = run(tmp_path / "mc", nlp, "a.csv", content.rsplit("e,", 1)[0], data)
    assert [{k: v for k, v in d.cats.items() if k.startswith("polarity")} for d in docs] == [
        {"polarity/emotional": 1.0, "polarity/calm": 0.0},
        {"polarity/emotional": 1.0, "polarity/calm": 0.0},
        {},
        {},
    ]
    err = fail(tmp_path / "e", "a.csv", "text,joy,anger,neutral\ne,0,0,0\n", data)
    assert "has no positive label here" in err.reason


def test_paired_label_file(tmp_path: Path, nlp: Language) -> None:
    write(tmp_path / "val_text.txt", "I love it  \n@user meh\n")
    write(tmp_path / "val_labels.txt", "2\n1\n")
    data = {
        "format": "lines",
        "labels_file": {"replace": "_text", "with": "_labels"},
        "groups": {
            "sentiment": {
                "kind": "multiclass",
                "column": "label",
                "labels": {0: "negative", 1: "neutral", 2: "positive"},
            }
        },
    }
    summary = convert_files(
        [tmp_path / "val_text.txt"], tmp_path / "out", spec(data), name="tweets"
    )
    docs = read_docs(nlp, summary.corpora[0].files["all"])
    assert summary.corpora[0].files["all"] == [tmp_path / "out" / "tweets.spacy"]
    assert [d.text for d in docs] == ["I love it  ", "@user meh"]
    assert [d.cats for d in docs] == [
        {"sentiment/negative": 0.0, "sentiment/neutral": 0.0, "sentiment/positive": 1.0},
        {"sentiment/negative": 0.0, "sentiment/neutral": 1.0, "sentiment/positive": 0.0},
    ]


def test_paired_blank_line_is_a_row(tmp_path: Path, nlp: Language) -> None:
    write(tmp_path / "t.txt", "one\n\nthree\n")
    write(tmp_path / "t.labels", "0\n1\n0\n")
    data = {
        "labels_file": "{stem}.labels",
        "groups": {"s": {"kind": "multiclass", "column": "label", "labels": ["a", "b"]}},
    }
    summary = convert_files([tmp_path / "t.txt"], tmp_path / "out", spec(data), on_error="skip")
    corpus = summary.corpora[0]
    assert (corpus.rows_read, corpus.docs_written, corpus.rows_rejected) == (3, 2, 1)
    docs = read_docs(nlp, corpus.files["all"])
    assert [(d.text, d.cats["s/b"]) for d in docs] == [("one", 0.0), ("three", 0.0)]
    rows = list(csv.DictReader(summary.rejects.open(newline="")))  # type: ignore[union-attr]
    # "'": a cell that starts with a tab is one a spreadsheet may run as a formula.
    assert (rows[0]["line"], rows[0]["column"], rows[0]["content"]) == ("2", "text", "'\t1")


def test_regex_lines(tmp_path: Path, nlp: Language) -> None:
    data = {
        "pattern": r"^(?P<label>[0-4]) (?P<text>.*)$",
        "groups": {
            "sst5": {
                "kind": "multiclass",
                "column": "label",
                "labels": ["vneg", "neg", "neu", "pos", "vpos"],
            }
        },
    }
    content = "4 a stirring , funny film \n0 dull\n"
    summary, docs = run(tmp_path, nlp, "stsa.fine.train", content, data)
    assert summary.corpora[0].name == "stsa.fine.train"
    assert [d.text for d in docs] == ["a stirring , funny film ", "dull"]
    assert [max(d.cats, key=d.cats.__getitem__) for d in docs] == ["sst5/vpos", "sst5/vneg"]


@pytest.mark.parametrize("text", ["NA", "N/A", "null", "None", "nan", "NaN", "n/a", "#N/A"])
def test_na_like_texts_survive(tmp_path: Path, nlp: Language, text: str) -> None:
    _, docs = run(tmp_path, nlp, "a.csv", f"text,label\n{text},1\n", SENTIMENT)
    assert [d.text for d in docs] == [text]


def test_bom_crlf_and_gzip(tmp_path: Path, nlp: Language) -> None:
    raw = '\ufefftext,label\r\nhi there,1\r\n"two\r\nlines",0\r\n'.encode()
    src = tmp_path / "a.csv.gz"
    src.write_bytes(gzip.compress(raw))
    summary = convert_files([src], tmp_path / "out", spec(SENTIMENT))
    docs = read_docs(nlp, summary.corpora[0].files["all"])
    assert summary.corpora[0].name == "a"
    assert [d.text for d in docs] == ["hi there", "two\r\nlines"]


def test_latin1_encoding(tmp_path: Path, nlp: Language) -> None:
    src = write(tmp_path / "a.csv", "text,label\ncafé,1\n", encoding="latin-1")
    summary = convert_files([src], tmp_path / "out", spec({**SENTIMENT, "encoding": "latin-1"}))
    assert [d.text for d in read_docs(nlp, summary.corpora[0].files["all"])] == ["café"]


# ---------------------------------------------------------------------------------------
# Streaming: chunks and shards


def test_file_larger_than_a_chunk_and_shards(tmp_path: Path, nlp: Language) -> None:
    n = 23
    lines = ["text,label"] + [f"row {i},{i % 2}" for i in range(n)]
    lines.insert(12, '"multi\nline",1')  # physical lines 12-13
    src = write(tmp_path / "big.csv", "\n".join(lines) + "\n")
    summary = convert_files([src], tmp_path / "out", spec(SENTIMENT), chunk_size=4, shard_size=10)
    corpus = summary.corpora[0]
    assert corpus.rows_read == n + 1
    assert [p.name for p in corpus.files["all"]] == [
        "big-000.spacy",
        "big-001.spacy",
        "big-002.spacy",
    ]
    docs = read_docs(nlp, corpus.files["all"])
    texts = [f"row {i}" for i in range(n)]
    texts.insert(11, "multi\nline")
    assert [d.text for d in docs] == texts
    # Line numbers stay physical across chunk boundaries.
    write(tmp_path / "big.csv", "\n".join([*lines, "broken,5"]) + "\n")
    with pytest.raises(RowError) as info:
        convert_files([src], tmp_path / "out", spec(SENTIMENT), chunk_size=4, shard_size=10)
    assert info.value.line == n + 4
    # A re-run with one shard replaces the three and leaves no stale shard behind.
    write(tmp_path / "big.csv", "\n".join(lines) + "\n")
    convert_files([src], tmp_path / "out", spec(SENTIMENT), chunk_size=4)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["big.spacy"]


def test_limit(tmp_path: Path, nlp: Language) -> None:
    content = "text,label\n" + "".join(f"r{i},1\n" for i in range(10))
    summary, docs = run(tmp_path, nlp, "a.csv", content, SENTIMENT, limit=3)
    assert summary.rows_read == 3 and [d.text for d in docs] == ["r0", "r1", "r2"]


def test_several_inputs_side_by_side_and_spacy_corpus_reads_them(
    tmp_path: Path, nlp: Language
) -> None:
    a = write(tmp_path / "goemo.csv", "text,label\na1,1\na2,0\n")
    b = write(tmp_path / "david.csv", "text,label\nb1,0\n")
    convert_files([a, b], tmp_path / "corpus", spec(SENTIMENT))
    convert_files([a], tmp_path / "corpus", spec(SENTIMENT), name="again")
    names = sorted(p.name for p in (tmp_path / "corpus").iterdir())
    assert names == ["again.spacy", "david.spacy", "goemo.spacy"]
    examples = list(Corpus(tmp_path / "corpus")(nlp))
    assert sorted(eg.reference.text for eg in examples) == ["a1", "a1", "a2", "a2", "b1"]
    combined = convert_files([a, b], tmp_path / "one", spec(SENTIMENT), name="both")
    docs = read_docs(nlp, combined.corpora[0].files["all"])
    assert [d.text for d in docs] == ["a1", "a2", "b1"]


def test_same_stem_twice_needs_a_name(tmp_path: Path) -> None:
    a = write(tmp_path / "x" / "train.csv", "text,label\na,1\n")
    b = write(tmp_path / "y" / "train.csv", "text,label\nb,1\n")
    with pytest.raises(ConvertError, match="give --name"):
        convert_files([a, b], tmp_path / "out", spec(SENTIMENT))


# ---------------------------------------------------------------------------------------
# Splits


def test_parse_split() -> None:
    assert parse_split("train=0.8, dev=0.1,test=0.1") == {"train": 0.8, "dev": 0.1, "test": 0.1}
    assert parse_split(None) is None
    for bad in ("train=0.8,dev=0.1", "train=0.5,train=0.5", "a b=1", "train", "t=x"):
        with pytest.raises(ConvertError, match="--split"):
            parse_split(bad)


def test_assign_splits_is_stratified_and_deterministic() -> None:
    strata = [0] * 503 + [1] * 97 + [2] * 31 + [-1] * 11
    strata = [strata[(i * 37) % len(strata)] for i in range(len(strata))]  # interleave
    fractions = [0.8, 0.1, 0.1]
    first = assign_splits(strata, fractions, seed=0)
    assert first == assign_splits(strata, fractions, seed=0)
    assert first != assign_splits(strata, fractions, seed=1)
    for stratum in (0, 1, 2, -1):
        rows = [s for s, st in zip(first, strata) if st == stratum]
        for split, fraction in enumerate(fractions):
            assert abs(rows.count(split) - fraction * len(rows)) < 1.0


def test_split_end_to_end(tmp_path: Path, nlp: Language) -> None:
    rows = ["text,id,label"]
    for i in range(200):
        label = "" if i % 10 == 9 else ("1" if i % 4 == 0 else "0")
        rows.append(f"doc {i},{i},{label}")
    rows.insert(50, "bad,x,7")
    src = write(tmp_path / "data.csv", "\n".join(rows) + "\n")
    spec_ = spec({**SENTIMENT, "id": "id"})

    def assignment(seed: int, out: str) -> Dict[str, List[str]]:
        summary = convert_files(
            [src],
            tmp_path / out,
            spec_,
            split="train=0.8,dev=0.1,test=0.1",
            seed=seed,
            on_error="skip",
            chunk_size=16,
        )
        corpus = summary.corpora[0]
        assert corpus.rows_read == 201 and corpus.rows_rejected == 1
        assert corpus.docs == {"train": 160, "dev": 20, "test": 20}
        out_ids = {}
        for split, files in corpus.files.items():
            assert files == [tmp_path / out / split / "data.spacy"]
            ids = [d.user_data["id"] for d in read_docs(nlp, files)]
            assert ids == sorted(ids, key=int), "input order is kept within a split"
            out_ids[split] = ids
        return out_ids

    a, b, c = assignment(0, "s0"), assignment(0, "s0b"), assignment(1, "s1")
    assert a == b
    assert a != c
    # Stratified: every class (and the rows missing the group) keeps its share ±1 row.
    labels = {str(i): ("" if i % 10 == 9 else ("1" if i % 4 == 0 else "0")) for i in range(200)}
    for cls in ("", "0", "1"):
        total = sum(1 for v in labels.values() if v == cls)
        for split, fraction in (("train", 0.8), ("dev", 0.1), ("test", 0.1)):
            n = sum(1 for i in a[split] if labels[i] == cls)
            assert abs(n - fraction * total) <= 1


def test_split_counts_per_split(tmp_path: Path) -> None:
    content = "text,label\n" + "".join(f"t{i},{i % 2}\n" for i in range(20))
    src = write(tmp_path / "a.csv", content)
    summary = convert_files([src], tmp_path / "out", spec(SENTIMENT), split="train=0.5,dev=0.5")
    counts = summary.corpora[0].label_counts
    assert counts["train"]["sentiment"] == {"neg": 5, "pos": 5}
    assert counts["dev"]["sentiment"] == {"neg": 5, "pos": 5}
    assert summary.corpora[0].total_label_counts()["sentiment"] == {"neg": 10, "pos": 10}


# ---------------------------------------------------------------------------------------
# Spec errors


@pytest.mark.parametrize(
    "data,message",
    [
        ({"groups": {}, "colums": []}, "unknown setting"),
        ({"format": "xlsx"}, "format 'xlsx' is not known"),
        ({"groups": {"g": {"kind": "multi", "column": "l"}}}, "`kind` of group 'g'"),
        ({"groups": {"g": {"kind": "multiclass"}}}, "exactly one of `column`"),
        (
            {"groups": {"g": {"kind": "multiclass", "column": "l", "columns": ["a"]}}},
            "exactly one of `column`",
        ),
        ({"groups": {"a/b": {"kind": "multiclass", "column": "l"}}}, "may not contain '/'"),
        (
            {"groups": {"g": {"kind": "multiclass", "column": "l", "empty": "negative"}}},
            "only valid for multilabel",
        ),
        (
            {"groups": {"g": {"kind": "multilabel", "from": "nope", "mapping": {"a": ["b"]}}}},
            "names no group defined above",
        ),
        (
            {
                "groups": {
                    "e": {"kind": "multilabel", "column": "l", "labels": ["joy", "sad", "meh"]},
                    "s": {"kind": "multilabel", "from": "e", "mapping": {"pos": ["joy"]}},
                }
            },
            r"does not cover label\(s\) \['sad', 'meh'\]",
        ),
        (
            {
                "groups": {
                    "e": {"kind": "multilabel", "column": "l", "labels": ["joy"]},
                    "s": {"kind": "multilabel", "from": "e", "mapping": {"pos": ["joyy"]}},
                }
            },
            "'joyy', which is not a label",
        ),
        (
            {
                "groups": {
                    "e": {"kind": "multilabel", "column": "l", "labels": ["joy"]},
                    "s": {
                        "kind": "multiclass",
                        "from": "e",
                        "mapping": {"a": ["joy"], "b": ["joy"]},
                    },
                }
            },
            "maps to several labels",
        ),
        (
            {"groups": {"g": {"kind": "multiclass", "column": "l", "labels": {1: "a", "1": "b"}}}},
            "listed twice",
        ),
        ({"pattern": "(?P<label>\\d) (.*)"}, "no named group for the text column"),
        ({"pattern": "(unclosed"}, "not a valid regular expression"),
        ({"format": "csv", "labels_file": "{stem}.labels"}, "`format` must be 'lines'"),
        ({"encoding": "utf-16"}, "not ASCII-compatible"),
        ({"sep": ";;"}, "one character"),
        ({"columns": ["a", "a"]}, "unique names"),
    ],
)
def test_spec_errors(data: Dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        spec(data)


def test_derived_from_inferred_labels_is_checked_after_inference(tmp_path: Path) -> None:
    data = {
        "groups": {
            "e": {"kind": "multilabel", "column": "l", "delimiter": ","},
            "s": {"kind": "multilabel", "from": "e", "mapping": {"pos": ["joy"]}},
        }
    }
    src = write(tmp_path / "a.csv", 'text,l\na,joy\nb,"joy,sad"\n')
    with pytest.raises(SpecError, match=r"does not cover label\(s\) \['sad'\]"):
        convert_files([src], tmp_path / "out", spec(data))


def test_spec_files_in_assets_load() -> None:
    paths = sorted(SPECS.glob("*.yml"))
    assert {p.stem for p in paths} >= {
        "goemotions",
        "davidson",
        "sst2",
        "sst5",
        "tweeteval_emotion",
        "tweeteval_hate",
        "tweeteval_irony",
        "tweeteval_offensive",
        "tweeteval_sentiment",
    }
    for path in paths:
        loaded = load_spec(path)
        assert loaded.is_complete, path
        assert loaded.schema() is not None
    go = load_spec(SPECS / "goemotions.yml")
    assert [g.name for g in go.groups] == ["emotion", "sentiment", "ekman"]
    assert len(go.groups[0].labels) == 28 and go.groups[0].labels[-1] == "neutral"
    assert go.groups[1].labels == ("positive", "negative", "ambiguous", "neutral")


def test_goemotions_spec_matches_the_official_mapping_files() -> None:
    folder = data_dir() / "goemotions"
    if not folder.is_dir():
        pytest.skip(f"GoEmotions not found in {folder} (set SPACY_MTL_DATA)")
    go = load_spec(SPECS / "goemotions.yml")
    emotions = (folder / "emotions.txt").read_text().split()
    assert list(go.group("emotion").labels) == emotions
    for group, file in (("sentiment", "sentiment_dict.json"), ("ekman", "ekman_mapping.json")):
        official = srsly.read_json(folder / file)
        mapping = {k: list(v) for k, v in go.group(group).mapping}
        assert mapping.pop("neutral") == ["neutral"]
        assert mapping == official


# ---------------------------------------------------------------------------------------
# CLI


def test_cli_convert(tmp_path: Path) -> None:
    src = write(tmp_path / "a.csv", "text,label\nyes,1\nno,0\n")
    spec_file = write(tmp_path / "spec.yml", srsly.yaml_dumps(SENTIMENT))
    result = CliRunner().invoke(
        app, ["convert", str(src), str(tmp_path / "out"), "--spec", str(spec_file)]
    )
    assert result.exit_code == 0, result.output
    assert "rows read 2 = docs written 2 + rows rejected 0" in result.output
    assert (tmp_path / "out" / "a.spacy").is_file()


def test_cli_convert_error(tmp_path: Path) -> None:
    src = write(tmp_path / "a.csv", "text,label\nyes,1\nno,2\n")
    spec_file = write(tmp_path / "spec.yml", srsly.yaml_dumps(SENTIMENT))
    args = ["convert", str(src), str(tmp_path / "out"), "--spec", str(spec_file)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    output = " ".join(result.output.split())  # wasabi wraps long lines
    assert "nothing was written" in output
    assert f"{src}:3: column 'label': unknown label value '2'" in output
    assert not (tmp_path / "out").exists()

    result = CliRunner().invoke(app, [*args, "--on-error", "skip", "--split", "train=0.5,dev=0.5"])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "rows read 2 = docs written 1 + rows rejected 1" in output
    assert (tmp_path / "out" / "a.rejects.csv").is_file()

    result = CliRunner().invoke(app, [*args, "--on-error", "ignore"])
    assert result.exit_code == 1 and "on_error must be 'fail' or 'skip'" in result.output


# ---------------------------------------------------------------------------------------
# Real data (slow)


def _real(path: str) -> Path:
    full = data_dir() / path
    if not full.is_file():
        pytest.skip(f"{full} not found: put the shared data there or set SPACY_MTL_DATA")
    return full


@pytest.mark.slow
def test_real_goemotions(tmp_path: Path) -> None:
    src = _real("goemotions/train.tsv")
    summary = convert_files([src], tmp_path, load_spec(SPECS / "goemotions.yml"), name="goemotions")
    corpus = summary.corpora[0]
    assert (corpus.rows_read, corpus.docs_written, corpus.rows_rejected) == (43_410, 43_410, 0)
    counts = corpus.total_label_counts()
    assert counts["emotion"]["neutral"] == 14_219
    assert counts["emotion"]["admiration"] == 4_130
    assert counts["emotion"]["grief"] == 77
    assert sum(counts["emotion"].values()) == 36_308 + 2 * 6_541 + 3 * 532 + 4 * 28 + 5
    assert counts["sentiment"] == {
        "positive": 17_410,
        "negative": 9_839,
        "ambiguous": 5_367,
        "neutral": 14_219,
    }
    assert counts["ekman"]["joy"] == 17_410 and counts["ekman"]["surprise"] == 5_367


@pytest.mark.slow
def test_real_davidson(tmp_path: Path, nlp: Language) -> None:
    src = _real("davidson_hate_offensive/labeled_data.csv")
    summary = convert_files(
        [src],
        tmp_path,
        load_spec(SPECS / "davidson.yml"),
        name="davidson",
        split="train=0.8,dev=0.1,test=0.1",
    )
    corpus = summary.corpora[0]
    assert (corpus.rows_read, corpus.docs_written, corpus.rows_rejected) == (24_783, 24_783, 0)
    assert corpus.total_label_counts()["offense"] == {
        "hate": 1_430,
        "offensive": 19_190,
        "neither": 4_163,
    }
    assert corpus.label_counts["dev"]["offense"] == {
        "hate": 143,
        "offensive": 1_919,
        "neither": 416,
    }
    examples = list(Corpus(tmp_path / "train")(nlp))
    assert len(examples) == corpus.docs["train"]


@pytest.mark.slow
def test_real_tweeteval_hate_blank_lines(tmp_path: Path) -> None:
    src = _real("tweeteval/hate/train_text.txt")
    summary = convert_files(
        [src], tmp_path, load_spec(SPECS / "tweeteval_hate.yml"), on_error="skip"
    )
    corpus = summary.corpora[0]
    assert (corpus.rows_read, corpus.docs_written, corpus.rows_rejected) == (9_000, 8_993, 7)


def test_a_cell_over_csv_default_field_limit_converts(tmp_path: Path, nlp: Language) -> None:
    long_text = "word " * 40_000  # 200,000 characters: over csv's 131,072 default limit
    content = f'text,label\n"{long_text}",1\nshort,0\n'
    _, docs = run(tmp_path, nlp, "long.csv", content, SENTIMENT)
    assert [len(doc.text) for doc in docs] == [len(long_text), 5]
