"""Reliability of `spacy_mtl.data.convert` (issue 15): inputs and specs that used to crash,
destroy a file, leave debris or pass silently.

Each test fails without its fix: lone surrogates (a traceback), a rejects file over its
input, spec mistakes read as something else, NaN labels read two ways, a documented limit
that did not hold, temporary files left by a killed run, a folder reported as missing.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict

import pytest
import spacy
import srsly
from conftest import read_docs, rejects_rows, write
from spacy.language import Language
from typer.testing import CliRunner

from spacy_mtl.cli import app
from spacy_mtl.data.convert import (
    ConvertError,
    ConvertSpec,
    RowError,
    SpecError,
    convert_files,
    load_spec,
    writers,
)
from spacy_mtl.errors import SchemaError
from spacy_mtl.schema import LabelGroup

REPO = Path(__file__).parents[2]
SENTIMENT = {
    "groups": {
        "sentiment": {"kind": "multiclass", "column": "label", "labels": {0: "neg", 1: "pos"}}
    }
}


@pytest.fixture(scope="module")
def nlp() -> Language:
    return spacy.blank("en")


# ---------------------------------------------------------------------------------------
# 1. Lone surrogates are row errors, not a UnicodeEncodeError


def jsonl_line(**cells: Any) -> str:
    return json.dumps(cells) + "\n"  # json.dumps escapes a lone surrogate as \udfff


SURROGATE_ROWS = (
    jsonl_line(text="good", label="a", id="1")
    + jsonl_line(text="bad \udfff text", label="a", id="2")
    + jsonl_line(text="ok", label="a", id="x\ud800")
    + jsonl_line(text="fine", label="b\udfff", id="4")
    + jsonl_line(text="last", label="b", id="5")
)
SURROGATE_SPEC = {"id": "id", "groups": {"g": {"kind": "multiclass", "column": "label"}}}


def test_lone_surrogates_in_jsonl_are_rejected_rows(tmp_path: Path, nlp: Language) -> None:
    src = write(tmp_path / "s.jsonl", SURROGATE_ROWS)
    assert "\\udfff" in src.read_text()  # the file holds the JSON escape, valid UTF-8
    # Labels inferred from the data: a surrogate label would become a doc.cats key.
    summary = convert_files(
        [src], tmp_path / "out", ConvertSpec.from_dict(SURROGATE_SPEC), on_error="skip"
    )
    corpus = summary.corpora[0]
    assert (corpus.rows_read, corpus.docs_written, corpus.rows_rejected) == (5, 2, 3)
    assert summary.inferred_labels == {"g": ["a", "b"]}
    docs = read_docs(nlp, corpus.files["all"])
    assert [(d.text, d.user_data["id"], d.cats) for d in docs] == [
        ("good", "1", {"g/a": 1.0, "g/b": 0.0}),
        ("last", "5", {"g/a": 0.0, "g/b": 1.0}),
    ]
    assert summary.rejects is not None
    rows = rejects_rows(summary.rejects)
    assert [(r["line"], r["column"]) for r in rows] == [("2", "text"), ("3", "id"), ("4", "label")]
    assert all("lone surrogate" in r["reason"] for r in rows)
    assert "'\\udfff' at position 4" in rows[0]["reason"]
    assert rows[0]["content"] == SURROGATE_ROWS.splitlines()[1]


def test_lone_surrogate_fails_the_run_with_its_place(tmp_path: Path) -> None:
    src = write(tmp_path / "s.jsonl", SURROGATE_ROWS)
    with pytest.raises(RowError) as info:
        convert_files([src], tmp_path / "out", ConvertSpec.from_dict(SURROGATE_SPEC))
    assert (info.value.line, info.value.column) == (2, "text")
    assert str(info.value).startswith(f"{src}:2: column 'text': ")
    assert not (tmp_path / "out").exists()


def test_lone_surrogates_in_csv_and_lines_files(tmp_path: Path, nlp: Language) -> None:
    # raw_unicode_escape is ASCII-compatible (accepted by the spec) and decodes the bytes
    # \udfff to a lone surrogate: the way one reaches a CSV cell.
    src = tmp_path / "s.csv"
    src.write_bytes(b"text,label\nok,1\nbad \\udfff,0\n\\ud800,1\nlast,0\n")
    data = {"encoding": "raw_unicode_escape", **SENTIMENT}
    summary = convert_files([src], tmp_path / "out", ConvertSpec.from_dict(data), on_error="skip")
    corpus = summary.corpora[0]
    assert (corpus.rows_read, corpus.docs_written, corpus.rows_rejected) == (4, 2, 2)
    assert [d.text for d in read_docs(nlp, corpus.files["all"])] == ["ok", "last"]
    assert summary.rejects is not None
    rows = rejects_rows(summary.rejects)
    assert [(r["line"], r["column"]) for r in rows] == [("3", "text"), ("4", "text")]
    # The rejects file is UTF-8: the surrogate is written as its escape.
    assert [r["content"] for r in rows] == ["bad \\udfff,0", "\\ud800,1"]

    lines = tmp_path / "l.txt"
    lines.write_bytes(b"1 good\n0 bad \\udfff\n")
    data = {"encoding": "raw_unicode_escape", "pattern": r"^(?P<label>\d) (?P<text>.*)$"}
    data.update(SENTIMENT)
    with pytest.raises(RowError) as info:
        convert_files([lines], tmp_path / "out2", ConvertSpec.from_dict(data))
    assert (info.value.path, info.value.line, info.value.column) == (lines, 2, "text")


# ---------------------------------------------------------------------------------------
# 2. An output or rejects path that is (or links to) an input is refused


def _inputs(tmp_path: Path) -> Path:
    return write(tmp_path / "a.csv", "text,label\nyes,1\nno,2\n")


@pytest.mark.parametrize("link", ["same", "symlink", "hardlink", "dotted"])
def test_rejects_path_that_is_an_input_is_refused(tmp_path: Path, link: str) -> None:
    src = _inputs(tmp_path)
    before = src.read_bytes()
    rejects = tmp_path / "r.csv"
    if link == "same":
        rejects = src
    elif link == "symlink":
        rejects.symlink_to(src)
    elif link == "hardlink":
        os.link(src, rejects)
    else:
        rejects = tmp_path / "sub" / ".." / "a.csv"
        (tmp_path / "sub").mkdir()
    spec = ConvertSpec.from_dict(SENTIMENT)
    with pytest.raises(ConvertError, match="is an input") as info:
        convert_files([src], tmp_path / "out", spec, on_error="skip", rejects=rejects)
    assert str(rejects) in str(info.value) and str(src) in str(info.value)
    assert src.read_bytes() == before
    assert not (tmp_path / "out").exists()


def test_rejects_path_that_is_the_paired_labels_file_or_spec_is_refused(tmp_path: Path) -> None:
    text = write(tmp_path / "train_text.txt", "good\nbad\n")
    labels = write(tmp_path / "train_labels.txt", "1\n0\n")
    data = {"labels_file": {"replace": "_text", "with": "_labels"}, **SENTIMENT}
    with pytest.raises(ConvertError, match="is an input"):
        convert_files(
            [text], tmp_path / "out", ConvertSpec.from_dict(data), on_error="skip", rejects=labels
        )
    assert labels.read_text() == "1\n0\n"
    spec_file = write(tmp_path / "spec.yml", srsly.yaml_dumps(SENTIMENT))
    before = spec_file.read_bytes()
    with pytest.raises(ConvertError, match="is an input"):
        convert_files([_inputs(tmp_path)], tmp_path / "out", spec_file, on_error="skip",
                      rejects=spec_file)  # fmt: skip
    assert spec_file.read_bytes() == before


def test_rejects_path_that_is_a_joined_file_is_refused(tmp_path: Path) -> None:
    text = write(tmp_path / "train.csv", "id,text\n1,good\n2,bad\n")
    joined = write(tmp_path / "labels.csv", "id,label\n1,1\n2,0\n")
    data = {"format": "csv", "join": [{"path": "labels.csv", "key": "id"}], **SENTIMENT}
    with pytest.raises(ConvertError, match="is an input"):
        convert_files(
            [text], tmp_path / "out", ConvertSpec.from_dict(data), on_error="skip", rejects=joined
        )
    assert joined.read_text() == "id,label\n1,1\n2,0\n"


def test_corpus_output_that_is_an_input_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # An input with a name that convert would write: out/a.spacy (via --name) ...
    src = write(out / "a.spacy", "text,label\nyes,1\n")
    spec = ConvertSpec.from_dict({"format": "csv", **SENTIMENT})
    with pytest.raises(ConvertError, match="is an input"):
        convert_files([src], out, spec, name="a")
    # ... or one of the old shards a run deletes when it writes fewer.
    shard = write(out / "b-001.spacy", "text,label\nno,0\n")
    with pytest.raises(ConvertError, match="is an input"):
        convert_files([shard], out, spec, name="b")
    # ... or a hard link to one.
    other = write(tmp_path / "c.csv", "text,label\nyes,1\n")
    os.link(other, out / "c.spacy")
    with pytest.raises(ConvertError, match="is an input"):
        convert_files([other], out, spec, name="c")
    assert src.read_text() == "text,label\nyes,1\n"
    assert shard.read_text() == "text,label\nno,0\n"
    assert (out / "c.spacy").read_text() == "text,label\nyes,1\n"


def test_rejects_path_that_is_a_corpus_file_is_refused(tmp_path: Path) -> None:
    src = _inputs(tmp_path)
    spec = ConvertSpec.from_dict(SENTIMENT)
    for rejects in (tmp_path / "out" / "a.spacy", tmp_path / "out" / "dev" / "a-001.spacy"):
        split = "train=0.5,dev=0.5" if "dev" in rejects.parts else None
        with pytest.raises(ConvertError, match="name of a corpus file"):
            convert_files([src], tmp_path / "out", spec, on_error="skip", rejects=rejects,
                          split=split)  # fmt: skip
    assert not (tmp_path / "out").exists()


def test_cli_rejects_over_input_is_refused(tmp_path: Path) -> None:
    src = _inputs(tmp_path)
    spec_file = write(tmp_path / "spec.yml", srsly.yaml_dumps(SENTIMENT))
    args = ["convert", str(src), str(tmp_path / "out"), "--spec", str(spec_file)]
    result = CliRunner().invoke(app, [*args, "--on-error", "skip", "--rejects", str(src)])
    assert result.exit_code == 1
    assert "is an input" in " ".join(result.output.split())
    assert src.read_text() == "text,label\nyes,1\nno,2\n"


def test_rejects_path_that_is_a_folder_is_refused_before_converting(tmp_path: Path) -> None:
    src = _inputs(tmp_path)
    folder = tmp_path / "rej"
    folder.mkdir()
    with pytest.raises(ConvertError, match="is a folder"):
        convert_files([src], tmp_path / "out", ConvertSpec.from_dict(SENTIMENT),
                      on_error="skip", rejects=folder)  # fmt: skip
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------
# 7. Spec mistakes that used to pass


def test_json_spec_with_a_duplicate_key(tmp_path: Path) -> None:
    path = write(
        tmp_path / "spec.json",
        '{"text": "a", "text": "b", "groups": {"g": {"kind": "multiclass", "column": "l"}}}',
    )
    with pytest.raises(SpecError, match=r"duplicate key 'text'"):
        load_spec(path)
    nested = write(
        tmp_path / "nested.json",
        '{"groups": {"g": {"kind": "multiclass", "column": "l", "labels": ["a"],'
        ' "labels": ["b", "c"]}}}',
    )
    with pytest.raises(SpecError, match=r"duplicate key 'labels'"):
        load_spec(nested)
    # A clean JSON spec still loads, non-ASCII and a BOM too.
    good = tmp_path / "good.json"
    good.write_bytes(b"\xef\xbb\xbf" + json.dumps({**SENTIMENT, "text": "t\u00e9"}).encode())
    assert load_spec(good).text == "t\u00e9"


@pytest.mark.parametrize(
    "data,message",
    [
        (
            {"groups": {"g": {"kind": "multiclass", "column": "l", "labels": "neg,neu,pos"}}},
            r"`labels of group 'g'` must be a list or a mapping",
        ),
        ({"missing_values": 5}, r"`missing_values` must be a list"),
        ({"missing_values": "-1"}, r"`missing_values` must be a list"),
        (
            {"groups": {"": {"kind": "multiclass", "column": "l", "labels": ["a"]}}},
            "empty group name",
        ),
        (
            {"groups": {"g": {"kind": "multiclass", "column": "l", "labels": ["a\udfff"]}}},
            "lone surrogate",
        ),
        ({"text": "t\ud800"}, "lone surrogate"),
    ],
)
def test_spec_mistakes_are_errors(data: Dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        ConvertSpec.from_dict(data)


@pytest.mark.parametrize(
    "text",
    [
        "groups: &x {g: *x}",
        "text: &x [*x]",
        "missing_values: &x [*x]",
        "groups: {g: {kind: multiclass, column: l, labels: &x [a, *x]}}",
    ],
)
def test_yaml_spec_that_holds_itself_is_a_spec_error(tmp_path: Path, text: str) -> None:
    # Found by tests/test_fuzz_convert.py: a YAML alias inside its own anchor makes a
    # list or mapping that contains itself (the surrogate check recursed forever).
    path = write(tmp_path / "spec.yml", text + "\n")
    with pytest.raises(SpecError, match=r"spec\.yml"):
        load_spec(path)


def test_schema_empty_group_name_message() -> None:
    with pytest.raises(SchemaError, match="empty group name") as info:
        LabelGroup("", "multiclass", ("a",))
    assert "may not contain" not in str(info.value)


# ---------------------------------------------------------------------------------------
# 8. NaN label values: the same rule in CSV and JSONL


NAN_SPEC: Dict[str, Any] = {
    "groups": {
        "s": {"kind": "multiclass", "column": "label", "labels": ["neg", "pos"]},
        "t": {"kind": "multilabel", "columns": ["toxic", "rude"]},
    }
}


@pytest.mark.parametrize("where", ["column", "columns"])
def test_nan_label_is_a_row_error_in_csv_and_jsonl(tmp_path: Path, where: str) -> None:
    label, flag = ("NaN", "0") if where == "column" else ("pos", "NaN")
    column = "label" if where == "column" else "toxic"
    csv_src = write(tmp_path / "a.csv", f"text,label,toxic,rude\nok,neg,0,1\nx,{label},{flag},0\n")
    row = {"text": "x", "label": "pos", "toxic": 0, "rude": 0, column: float("nan")}
    jsonl_src = write(
        tmp_path / "b.jsonl",
        json.dumps({"text": "ok", "label": "neg", "toxic": 0, "rude": 1}) + "\n" + json.dumps(row),
    )
    assert "NaN" in jsonl_src.read_text()
    for src in (csv_src, jsonl_src):
        with pytest.raises(RowError) as info:
            convert_files([src], tmp_path / "out", ConvertSpec.from_dict(NAN_SPEC))
        assert (info.value.line, info.value.column) == (3 if src == csv_src else 2, column)
        assert "NaN" in info.value.reason and "missing_values" in info.value.reason


def test_nan_listed_in_missing_values_is_missing_in_both(tmp_path: Path, nlp: Language) -> None:
    data = {"missing_values": ["NaN"], **NAN_SPEC}
    csv_src = write(tmp_path / "a.csv", "text,label,toxic,rude\nx,NaN,NaN,1\n")
    row = {"text": "x", "label": float("nan"), "toxic": float("nan"), "rude": 1}
    jsonl_src = write(tmp_path / "b.jsonl", json.dumps(row) + "\n")
    for src in (csv_src, jsonl_src):
        summary = convert_files([src], tmp_path / "out", ConvertSpec.from_dict(data))
        docs = read_docs(nlp, summary.corpora[0].files["all"])
        assert [d.cats for d in docs] == [{"t/rude": 1.0}], src


# ---------------------------------------------------------------------------------------
# 9. The cell-size limit the docs state is the real one


def test_long_cells_convert_up_to_nlp_max_length(tmp_path: Path, nlp: Language) -> None:
    long_text = "word " * 180_000  # 900,000 characters
    csv_src = write(tmp_path / "a.csv", f'text,label\n"{long_text}",1\n')
    jsonl_src = write(tmp_path / "b.jsonl", json.dumps({"text": long_text, "label": 0}) + "\n")
    summary = convert_files(
        [csv_src, jsonl_src], tmp_path / "out", ConvertSpec.from_dict(SENTIMENT)
    )
    docs = read_docs(nlp, [p for c in summary.corpora for p in c.files["all"]])
    assert [len(d.text) for d in docs] == [900_000, 900_000]
    too_long = "x" * (nlp.max_length + 1)
    src = write(tmp_path / "c.csv", f"text,label\nshort,1\n{too_long},0\n")
    with pytest.raises(RowError) as info:
        convert_files([src], tmp_path / "out2", ConvertSpec.from_dict(SENTIMENT))
    assert (info.value.line, info.value.column) == (3, "text")
    assert "more than nlp.max_length (1,000,000)" in info.value.reason
    docs_text = (REPO / "docs" / "convert.md").read_text()
    assert "131,072" not in docs_text and "1,000,000" in docs_text


# ---------------------------------------------------------------------------------------
# 10. Debris of a killed run is removed by the next run (and only dead runs' debris)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_debris_of_dead_runs_is_removed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    dead = _dead_pid()
    live = os.getppid()  # the process that started pytest: alive, started before us
    tag = writers.DEBRIS_TAG
    dead_dir = out / f".spacy-mtl-convert-{dead}-{tag}-0123456789ab"
    live_dir = out / f".spacy-mtl-convert-{live}-{tag}-0123456789ab"
    other_host = out / f".spacy-mtl-convert-{dead}-00000000-0123456789ab"
    dead_rejects = out / f".a.rejects.csv.{dead}-{tag}-0123456789ab.tmp"
    live_rejects = out / f".a.rejects.csv.{live}-{tag}-0123456789ab.tmp"
    # Our own PID on debris older than this process: an earlier process had our PID.
    reused = out / f".spacy-mtl-convert-{os.getpid()}-{tag}-0123456789ab"
    not_ours = [out / ".spacy-mtl-convert-abc", out / "notes.tmp", out / "a.spacy"]
    for folder in (dead_dir, live_dir, other_host, reused, not_ours[0]):
        (folder / "000" / "all").mkdir(parents=True)
        (folder / "000" / "all" / "000000.spacy").write_bytes(b"x")
    for file in (dead_rejects, live_rejects, not_ours[1], not_ours[2]):
        file.write_text("file,line\n")
    past = time.time() - 10 * 24 * 3600
    os.utime(reused, (past, past))

    src = write(tmp_path / "a.csv", "text,label\nyes,1\nno,0\n")
    summary = convert_files([src], out, ConvertSpec.from_dict(SENTIMENT), on_error="skip")
    assert summary.docs_written == 2
    assert not dead_dir.exists() and not dead_rejects.exists() and not reused.exists()
    assert live_dir.is_dir() and live_rejects.is_file() and other_host.is_dir()
    assert all(p.exists() for p in not_ours)
    leftovers = sorted(p.name for p in out.iterdir() if p.name.startswith("."))
    assert leftovers == sorted(
        [live_dir.name, other_host.name, live_rejects.name, not_ours[0].name]
    )
    assert writers.stale_debris(out) == []


def test_debris_of_a_killed_run_is_cleaned_by_the_next_run(tmp_path: Path) -> None:
    src = write(tmp_path / "a.csv", "text,label\n" + "yes,1\nno,0\n" * 50)
    out = tmp_path / "out"
    # A real run, killed (SIGKILL: no cleanup) while it writes its first doc.
    code = (
        "import os, signal\n"
        "from spacy_mtl.data.convert import ConvertSpec, convert_files, writers\n"
        "def die(self, doc):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "writers.ShardWriter.add = die\n"
        f"convert_files([{str(src)!r}], {str(out)!r}, ConvertSpec.from_dict({SENTIMENT!r}),"
        " on_error='skip')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=300)
    assert proc.returncode == -9, proc.stderr.decode()
    debris = sorted(p.name for p in out.iterdir())
    assert len(debris) == 2 and debris[0].startswith(".a.rejects.csv."), debris
    assert debris[1].startswith(".spacy-mtl-convert-"), debris
    summary = convert_files([src], out, ConvertSpec.from_dict(SENTIMENT), on_error="skip")
    assert summary.docs_written == 100
    assert sorted(p.name for p in out.iterdir()) == ["a.rejects.csv", "a.spacy"]


# ---------------------------------------------------------------------------------------
# 11. A folder given as an input (or a spec, or a labels file) is named a folder


def test_input_folder_is_reported_as_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "data.csv"
    folder.mkdir()
    with pytest.raises(ConvertError, match="is a folder, not a file"):
        convert_files([folder], tmp_path / "out", ConvertSpec.from_dict(SENTIMENT))
    with pytest.raises(ConvertError, match="does not exist"):
        convert_files([tmp_path / "nope.csv"], tmp_path / "out", ConvertSpec.from_dict(SENTIMENT))
    with pytest.raises(SpecError, match="is a folder, not a file"):
        load_spec(folder)
    text = write(tmp_path / "train_text.txt", "good\n")
    (tmp_path / "train_labels.txt").mkdir()
    data = {"labels_file": {"replace": "_text", "with": "_labels"}, **SENTIMENT}
    with pytest.raises(ConvertError, match="is a folder, not a file"):
        convert_files([text], tmp_path / "out", ConvertSpec.from_dict(data))
    assert not (tmp_path / "out").exists()
