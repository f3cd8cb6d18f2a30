"""Reliability of `spacy_mtl.data.convert` (issue 29): hostile JSON, OS errors, inputs that
are not files, silent no-ops, patterns that never finish, huge echoes, spec values that
can never match, and the hints of a new-user trial (issue 26).

Each test fails without its fix: a traceback (or `Aborted.`), a hang, a silently wrong
result or a message that sends the user the wrong way.
"""

import bz2
import errno
import gzip
import json
import lzma
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Sequence

import pytest
import spacy
import srsly
from conftest import read_docs, rejects_rows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spacy.language import Language
from spacy.tokens import DocBin
from typer.testing import CliRunner

from spacy_mtl.cli import app
from spacy_mtl.data.convert import (
    ConvertError,
    ConvertSpec,
    ConvertSummary,
    RowError,
    SpecError,
    convert_files,
    readers,
    writers,
)
from spacy_mtl.data.convert.readers import PATTERN_LINE_LIMIT
from spacy_mtl.data.convert.values import ECHO_LIMIT
from spacy_mtl.data.convert.writers import REJECT_CONTENT_LIMIT

REPO = Path(__file__).parents[2]
AB = {"groups": {"g": {"kind": "multiclass", "column": "label", "labels": ["a", "b"]}}}
TAGS = {
    "groups": {
        "tags": {"kind": "multilabel", "column": "tags", "labels": ["x", "y"], "delimiter": ";"}
    }
}


@pytest.fixture(scope="module")
def nlp() -> Language:
    return spacy.blank("en")


def convert(
    inputs: Sequence[Path], out: Path, spec: Dict[str, Any], **kwargs: Any
) -> ConvertSummary:
    return convert_files(inputs, out, ConvertSpec.from_dict(spec), **kwargs)


def leftovers(folder: Path) -> List[str]:
    """Everything convert left in a folder (temporary files included)."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def cli(*args: Any) -> Any:
    return CliRunner().invoke(app, ["convert", *map(str, args)])


def one_clear_line(result: Any, *needles: str) -> None:
    """A failed command: exit code 1, no traceback, the message naming what it must."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    text = " ".join(result.output.split())
    for needle in needles:
        assert needle in text, result.output


# ---------------------------------------------------------------------------------------
# 1. Hostile JSON: a row error each, the other rows kept


def test_hostile_jsonl_rows_are_row_errors(tmp_path: Path, nlp: Language) -> None:
    lines = [
        '{"text": "ok", "label": "a"}',
        '{"text": "deep", "label": ' + "[" * 1000 + "]" * 1000 + "}",
        '{"text": "big", "label": 1' + "0" * 5000 + "}",
        '{"text": "dup", "label": "a", "label": "b"}',
        '{"text": "ok2", "label": "b"}',
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = convert([src], tmp_path / "out", AB, on_error="skip")
    assert (summary.rows_read, summary.docs_written, summary.rows_rejected) == (5, 2, 3)
    docs = read_docs(nlp, summary.files)
    assert [d.text for d in docs] == ["ok", "ok2"]
    rows = rejects_rows(summary.rejects)
    assert [r["line"] for r in rows] == ["2", "3", "4"]
    assert "nested" in rows[0]["reason"]
    assert "4,300 digits" in rows[1]["reason"] and "set_int_max_str_digits" not in rows[1]["reason"]
    assert "'label' appears twice" in rows[2]["reason"]
    # fail mode: the duplicate key stops the run at its line instead of changing the label
    src.write_text(lines[3] + "\n", encoding="utf-8")
    with pytest.raises(RowError, match=r"in\.jsonl:1: key 'label' appears twice"):
        convert([src], tmp_path / "out2", AB)


def test_a_number_too_large_for_a_float_is_a_row_error(tmp_path: Path, nlp: Language) -> None:
    """json reads 1e400 as inf: the id became "Infinity", a label "a float", silently or
    with a message that hid the cause."""
    lines = [
        '{"text": "ok", "label": "a", "id": "1"}',
        '{"text": "big label", "label": 1e400, "id": "2"}',
        '{"text": 1e400, "label": "a", "id": "3"}',
        '{"text": "big id", "label": "b", "id": -2e999}',
        '{"text": "nested", "label": "b", "id": "5", "meta": {"x": [1.5e309]}}',
        '{"text": "ok2", "label": "b", "id": "6"}',
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = convert([src], tmp_path / "out", {**AB, "id": "id"}, on_error="skip")
    assert (summary.rows_read, summary.docs_written, summary.rows_rejected) == (6, 2, 4)
    assert [d.text for d in read_docs(nlp, summary.files)] == ["ok", "ok2"]
    rows = rejects_rows(summary.rejects)
    assert [(r["line"], r["column"]) for r in rows] == [
        ("2", "label"),
        ("3", "text"),
        ("4", "id"),
        ("5", "meta"),
    ]
    assert all("too large for a float" in r["reason"] for r in rows)
    assert "-2e999" in rows[2]["reason"]
    with pytest.raises(RowError, match=r"in\.jsonl:2: column 'label': the number 1e400 is too"):
        convert([src], tmp_path / "out2", {**AB, "id": "id"})


def test_duplicate_key_in_a_joined_jsonl_file_names_that_file(tmp_path: Path) -> None:
    (tmp_path / "main.csv").write_text("id,text\n1,hello\n", encoding="utf-8")
    (tmp_path / "main.labels.jsonl").write_text(
        '{"id": "1", "label": "a", "label": "b"}\n', encoding="utf-8"
    )
    spec = {
        "id": "id",
        "join": [{"path": "{stem}.labels.jsonl", "key": "id", "columns": ["id", "label"]}],
        **AB,
    }
    with pytest.raises(ConvertError, match=r"main\.labels\.jsonl:1: key 'label' appears twice"):
        convert([tmp_path / "main.csv"], tmp_path / "out", spec)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.one_of(
            st.builds(
                lambda d: '{"text": "t", "label": ' + "[" * d + "]" * d + "}", st.integers(1, 3000)
            ),
            st.builds(lambda n: '{"text": "t", "label": 1' + "0" * n + "}", st.integers(1, 9000)),
            st.builds(
                lambda k: '{"text": "t", ' + '"label": "a", ' * k + '"x": 1}', st.integers(1, 4)
            ),
            st.sampled_from(['{"text": "t", "label": "a"}', '{"text": "t", "label": [""]}', "[1]"]),
            st.text(max_size=20).map(lambda t: json.dumps({"text": t or "t", "label": "b"})),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_fuzz_hostile_jsonl_never_aborts_skip_mode(tmp_path: Path, lines: List[str]) -> None:
    """Whatever the lines, skip mode ends with a summary that accounts for every row."""
    src = tmp_path / "fuzz.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = convert([src], tmp_path / "fuzz-out", AB, on_error="skip")
    assert summary.rows_read == len(lines) == summary.docs_written + summary.rows_rejected
    rows = rejects_rows(summary.rejects)
    assert len(rows) == summary.rows_rejected
    assert all(len(r["reason"]) < 1000 for r in rows)


# ---------------------------------------------------------------------------------------
# 1b. An empty list of label names means one thing in JSONL and CSV


def test_empty_label_names_mean_an_empty_cell_in_both_formats(
    tmp_path: Path, nlp: Language
) -> None:
    """`[""]` (what "".split(";") gives) and the CSV cell ";;" are both an empty cell:
    missing, or "annotated, no label" with `empty: negative`; `[]` stays "no label"."""
    (tmp_path / "a.jsonl").write_text(
        '{"text": "one", "tags": [""]}\n{"text": "two", "tags": ["", " "]}\n'
        '{"text": "three", "tags": []}\n',
        encoding="utf-8",
    )
    (tmp_path / "b.csv").write_text('text,tags\none,;;\ntwo," ; "\nthree,x\n', encoding="utf-8")
    for empty, expected in (("missing", {}), ("negative", {"tags/x": 0.0, "tags/y": 0.0})):
        spec = json.loads(json.dumps(TAGS))
        spec["groups"]["tags"]["empty"] = empty
        summary = convert([tmp_path / "a.jsonl", tmp_path / "b.csv"], tmp_path / empty, spec)
        docs = {f"{d.text}@{i}": d.cats for i, d in enumerate(read_docs(nlp, summary.files))}
        assert docs["one@0"] == docs["two@1"] == expected
        assert docs["one@3"] == docs["two@4"] == expected
        assert docs["three@2"] == {"tags/x": 0.0, "tags/y": 0.0}  # [] is explicit


# ---------------------------------------------------------------------------------------
# 2. OS errors: one line naming the file and the cause, nothing left behind


def test_read_only_output_folder_is_one_line(tmp_path: Path, monkeypatch) -> None:
    src = tmp_path / "in.csv"
    src.write_text("text,label\nhi,a\n", encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    real_mkdir = Path.mkdir

    def mkdir(self: Path, *args: Any, **kwargs: Any) -> None:
        if out in self.parents:  # the folder is read-only (root ignores chmod: simulate)
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(AB), encoding="utf-8")
    result = cli(src, out, "--spec", spec)
    one_clear_line(result, f"{out}: cannot write", "Permission denied")
    assert leftovers(out) == []


def test_read_only_rejects_file_is_one_line(tmp_path: Path, monkeypatch) -> None:
    src = tmp_path / "in.csv"
    src.write_text("text,label\nhi,a\n", encoding="utf-8")
    real_open = open

    def fake_open(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if "x" in mode:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(writers, "open", fake_open, raising=False)
    rejects = tmp_path / "ro" / "rejects.csv"
    with pytest.raises(
        ConvertError, match=r"rejects\.csv: cannot write the rejects file: Permission"
    ):
        convert([src], tmp_path / "out", AB, on_error="skip", rejects=rejects)
    assert leftovers(tmp_path / "out") == []


def test_full_disk_leaves_no_temporary_or_final_files(tmp_path: Path, monkeypatch) -> None:
    """ENOSPC while writing a shard, and again when the rejects file is flushed during the
    clean-up: one error naming the file and the cause; no temporary file survives."""
    src = tmp_path / "in.csv"
    src.write_text("text,label\nhi,a\nbad,zzz\n", encoding="utf-8")
    out = tmp_path / "out"

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(DocBin, "to_disk", full)
    monkeypatch.setattr(writers.Rejects, "close", full)  # a flush on a full disk
    with pytest.raises(ConvertError, match=r"cannot write a corpus shard.*No space left on device"):
        convert([src], out, AB, on_error="skip")
    assert leftovers(out) == []


def test_split_folder_taken_by_a_file_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("text,label\n" + "".join(f"t{i},a\n" for i in range(10)), encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    (out / "dev").write_text("not a folder", encoding="utf-8")
    with pytest.raises(ConvertError, match=r"out/dev: cannot write .*it is a file"):
        convert([src], out, AB, split="train=0.5,dev=0.5")
    assert leftovers(out) == ["dev"]  # no train/ written


def test_corpus_file_name_taken_by_a_folder(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("text,label\nhi,a\n", encoding="utf-8")
    (tmp_path / "out" / "in.spacy").mkdir(parents=True)
    with pytest.raises(ConvertError, match=r"in\.spacy: cannot write the corpus file: a folder"):
        convert([src], tmp_path / "out", AB)


@pytest.mark.parametrize(
    "suffix,opener", [(".gz", gzip.compress), (".xz", lzma.compress), (".bz2", bz2.compress)]
)
def test_truncated_archive_is_one_line(tmp_path: Path, suffix: str, opener: Any) -> None:
    data = opener(("text,label\n" + "hello world,a\n" * 2000).encode())
    src = tmp_path / f"in.csv{suffix}"
    src.write_bytes(data[: len(data) // 2])
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(AB), encoding="utf-8")
    result = cli(src, tmp_path / "out", "--spec", spec)
    one_clear_line(result, f"{src}: cannot read the file")
    assert "Aborted" not in result.output
    assert "truncated" in result.output or "not a valid" in result.output
    assert leftovers(tmp_path / "out") == []


def test_gz_that_is_not_gzip_is_one_line(tmp_path: Path) -> None:
    src = tmp_path / "in.csv.gz"
    src.write_text("text,label\nhi,a\n", encoding="utf-8")
    with pytest.raises(
        ConvertError, match=r"in\.csv\.gz: cannot read the file: it is not a valid \.gz"
    ):
        convert([src], tmp_path / "out", AB)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and symbolic links")
def test_inputs_that_are_not_files_say_what_they_are(tmp_path: Path) -> None:
    loop = tmp_path / "loop.csv"
    loop.symlink_to(loop)
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    dangling = tmp_path / "dangling.csv"
    dangling.symlink_to(tmp_path / "gone.csv")
    cases = [
        (loop, "a symbolic link loop"),
        (fifo, "a FIFO (named pipe)"),
        (dangling, "a symbolic link to"),
    ]
    if Path("/dev/zero").exists():
        cases.append((Path("/dev/zero"), "a character device"))
    for path, kind in cases:
        with pytest.raises(ConvertError) as info:
            convert([path], tmp_path / "out", AB)
        assert kind in str(info.value) and "does not exist." not in str(info.value)
        assert str(info.value).startswith(str(path))
    # A joined file that is a FIFO is not "missing" either.
    (tmp_path / "in.csv").write_text("id,text\n1,x\n", encoding="utf-8")
    os.mkfifo(tmp_path / "in.labels.csv")
    spec = {"id": "id", "join": [{"path": "{stem}.labels.csv", "key": "id"}], **AB}
    with pytest.raises(ConvertError, match=r"in\.labels\.csv: the input is a FIFO"):
        convert([tmp_path / "in.csv"], tmp_path / "out", spec)


# ---------------------------------------------------------------------------------------
# 4. Silent no-ops: an empty input is named


def test_empty_input_is_warned_about(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    header = tmp_path / "header.csv"
    header.write_text("text,label\n\n", encoding="utf-8")
    summary = convert([empty, header], tmp_path / "out", AB)
    assert summary.docs_written == 0
    assert any("empty.csv: no rows (the file is empty: 0 bytes)" in w for w in summary.warnings)
    assert any(
        "header.csv: no rows (only blank lines or a header row)" in w for w in summary.warnings
    )
    assert summary.corpora[0].input_rows == {empty: 0}


# ---------------------------------------------------------------------------------------
# 5. Inferred labels compare values as explicit labels do


def test_inferred_labels_merge_whole_floats(tmp_path: Path, nlp: Language) -> None:
    src = tmp_path / "in.csv"
    src.write_text("text,label\na,1\nb,1.0\nc,2\n", encoding="utf-8")
    spec = {"groups": {"g": {"kind": "multiclass", "column": "label"}}}
    summary = convert([src], tmp_path / "out", spec)
    assert summary.inferred_labels == {"g": ["1", "2"]}
    cats = [d.cats for d in read_docs(nlp, summary.files)]
    assert cats[0] == cats[1] == {"g/1": 1.0, "g/2": 0.0}


def test_inferred_labels_one_number_two_spellings_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("text,label\na,1\nb,01\nc,2\n", encoding="utf-8")
    spec = {"groups": {"g": {"kind": "multiclass", "column": "label"}}}
    with pytest.raises(ConvertError, match=r"Group 'g': the inferred label values \['01', '1'\]"):
        convert([src], tmp_path / "out", spec)


# ---------------------------------------------------------------------------------------
# 6. A pattern that would backtrack for ever


def test_catastrophic_pattern_is_refused_without_hanging(tmp_path: Path) -> None:
    """`(\\w+\\s?)+` on one 40-character line that does not match: hours of backtracking
    before the fix, a spec error now (run in a subprocess with a timeout)."""
    (tmp_path / "in.txt").write_text("a" * 39 + "!\n", encoding="utf-8")
    spec = tmp_path / "spec.yml"
    spec.write_text(
        "pattern: '^(?P<text>(\\w+\\s?)+)$'\n"
        "groups:\n  g: {kind: multiclass, column: text, labels: [a]}\n",
        encoding="utf-8",
    )
    cmd = [sys.executable, "-m", "spacy_mtl", "convert", "in.txt", "out", "--spec", "spec.yml"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "variable repeat inside a repeated group" in " ".join(done.stdout.split())
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    "pattern", [r"(a+)+", r"(a|aa)+", r"(a{1,3})+", r"(.*a){12}", r"((a+){2})+", r"(x(a?)b)*"]
)
def test_pattern_shapes_refused(pattern: str) -> None:
    with pytest.raises(SpecError, match="exponential time"):
        spec_of({"pattern": f"(?P<text>{pattern})", **AB})


@pytest.mark.parametrize(
    "pattern",
    [r"^(?P<label>[0-4]) (?P<text>.*)$", r"^(?P<label>\S+)\t(?P<text>.*)$", r"(?P<text>(\d{3},)+)"],
)
def test_pattern_shapes_accepted(pattern: str) -> None:
    assert spec_of({"pattern": pattern, **AB}).pattern == pattern


def test_long_line_is_not_matched_against_the_pattern(tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    src.write_text("a ok\n" + "b " + "x" * PATTERN_LINE_LIMIT + "\n", encoding="utf-8")
    spec = {"pattern": r"^(?P<label>\w) (?P<text>.*)$", **AB}
    summary = convert([src], tmp_path / "out", spec, on_error="skip")
    assert (summary.docs_written, summary.rows_rejected) == (1, 1)
    assert "characters long; `pattern` is applied" in rejects_rows(summary.rejects)[0]["reason"]


def test_a_pattern_that_backtracks_is_stopped_per_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`[^,]*[^;]*[^:]*!` passes check_pattern (no repeated group) but backtracks as n**3
    on a line without '!': seconds at 2,500 characters, hours at 10,000. Such a line is
    now a row error after PATTERN_CPU_SECONDS, and the other lines are converted."""
    monkeypatch.setattr(readers, "PATTERN_CPU_SECONDS", 0.2)
    before = signal.getsignal(signal.SIGVTALRM)
    src = tmp_path / "in.txt"
    src.write_text("a fine!\n" + "b " + "x" * 2500 + "\nb also fine!\n", encoding="utf-8")
    spec = {"pattern": r"(?P<label>\w) (?P<text>[^,]*[^;]*[^:]*!)", **AB}
    summary = convert([src], tmp_path / "out", spec, on_error="skip")
    assert (summary.rows_read, summary.docs_written, summary.rows_rejected) == (3, 2, 1)
    row = rejects_rows(summary.rejects)[0]
    assert row["line"] == "2"
    assert "was stopped after 0.2 s of CPU time on this line" in row["reason"]
    assert signal.getsignal(signal.SIGVTALRM) == before  # the handler is put back


def spec_of(data: Dict[str, Any]) -> ConvertSpec:
    return ConvertSpec.from_dict(data)


# ---------------------------------------------------------------------------------------
# 7. A huge bad cell is not echoed whole


def test_rejects_cells_that_a_spreadsheet_would_run_are_quoted(tmp_path: Path) -> None:
    """The rejects file is opened in a spreadsheet: a row '=HYPERLINK(...)' was copied
    verbatim and ran as a formula there (CSV injection)."""
    src = tmp_path / "in.csv"
    rows = ['=HYPERLINK("http://x"),zz', "+1,zz", "-2,zz", "@SUM(A1),zz", "a=b,zz"]
    src.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    summary = convert([src], tmp_path / "out", AB, on_error="skip")
    got = rejects_rows(summary.rejects)
    assert [r["content"] for r in got] == [
        '\'=HYPERLINK("http://x"),zz',
        "'+1,zz",
        "'-2,zz",
        "'@SUM(A1),zz",
        "a=b,zz",
    ]
    assert [r["line"] for r in got] == ["2", "3", "4", "5", "6"]
    assert all(r["reason"].startswith("unknown label value 'zz'") for r in got)


def test_huge_bad_cell_is_capped_in_message_and_rejects(tmp_path: Path) -> None:
    big = "z" * 3_000_000
    src = tmp_path / "in.csv"
    src.write_text(f"text,label\nhi,{big}\nok,a\n", encoding="utf-8")
    summary = convert([src], tmp_path / "out", AB, on_error="skip")
    assert summary.docs_written == 1
    message = summary.corpora[0].first_rejects[0]
    assert len(message) < ECHO_LIMIT + 500 and "(3,000,000 characters)" in message
    row = rejects_rows(summary.rejects)[0]
    assert len(row["reason"]) < ECHO_LIMIT + 500
    assert row["content"].startswith("hi," + "z" * 100)
    assert REJECT_CONTENT_LIMIT < len(row["content"]) < REJECT_CONTENT_LIMIT + 200
    assert f"the whole row is at {src}:2" in row["content"]
    with pytest.raises(RowError) as info:
        convert([src], tmp_path / "out2", AB)
    assert len(str(info.value)) < ECHO_LIMIT + 500


# ---------------------------------------------------------------------------------------
# 8. Spec values that can never work


@pytest.mark.parametrize("sep", ['"', "\n", "\r"])
def test_separator_quote_or_line_break_is_refused(sep: str) -> None:
    with pytest.raises(SpecError, match="`sep` must be one character other than"):
        spec_of({"sep": sep, **AB})
    with pytest.raises(SpecError, match="`sep` of join 1 must be one character other than"):
        spec_of({"join": [{"path": "x.csv", "key": "id", "sep": sep}], **AB})


@pytest.mark.parametrize(
    "group,why",
    [
        ({"labels": ["pos ", "neg"]}, "'pos ' has surrounding whitespace"),
        ({"labels": {" 1": "pos", "0": "neg"}}, "' 1' has surrounding whitespace"),
        (
            {"kind": "multilabel", "labels": ["a,b", "c"], "delimiter": ","},
            "'a,b' holds the group's delimiter",
        ),
    ],
)
def test_labels_no_cell_can_match_are_refused(group: Dict[str, Any], why: str) -> None:
    block = {"kind": "multiclass", "column": "label", **group}
    with pytest.raises(SpecError, match=f"group 'g': label value {why}"):
        spec_of({"groups": {"g": block}})


def test_missing_value_with_whitespace_is_refused() -> None:
    with pytest.raises(SpecError, match="missing_values"):
        spec_of({"missing_values": [" NA"], **AB})


# ---------------------------------------------------------------------------------------
# Hints from the new-user trial (issue 26)


def test_unmatched_join_rows_are_counted(tmp_path: Path) -> None:
    """A joined file read with `header: true` that has none loses its first row: the
    summary counts the input rows it left unmatched."""
    (tmp_path / "in.csv").write_text("id,text\n1,one\n2,two\n3,three\n", encoding="utf-8")
    (tmp_path / "in.labels.csv").write_text("1,a\n2,b\n3,a\n", encoding="utf-8")
    spec = {
        "id": "id",
        "join": [
            {"path": "{stem}.labels.csv", "key": "id", "columns": ["id", "label"], "header": True}
        ],
        **AB,
    }
    summary = convert([tmp_path / "in.csv"], tmp_path / "out", spec)
    assert summary.corpora[0].join_unmatched == {tmp_path / "in.labels.csv": 1}
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    result = cli(tmp_path / "in.csv", tmp_path / "out", "--spec", spec_path)
    assert result.exit_code == 0, result.output
    assert "1 input rows matched no row of it" in " ".join(result.output.split())


def test_header_read_as_data_is_named(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("id,text\n1,one\n", encoding="utf-8")
    (tmp_path / "in.labels.csv").write_text("id,label\n1,a\n", encoding="utf-8")
    spec = {
        "id": "id",
        "join": [{"path": "{stem}.labels.csv", "key": "id", "columns": ["id", "label"]}],
        **AB,
    }
    with pytest.raises(ConvertError, match=r"labels\.csv:1: line 1 looks like a header row"):
        convert([tmp_path / "in.csv"], tmp_path / "out", spec)
    # The input itself: `columns` without `header: true` over a file with a header.
    (tmp_path / "main.csv").write_text("text,label\nhi,a\n", encoding="utf-8")
    with pytest.raises(
        RowError, match=r"main\.csv:1: line 1 looks like a header row.*header: true"
    ):
        convert([tmp_path / "main.csv"], tmp_path / "out", {"columns": ["text", "label"], **AB})


def test_encoding_hints(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not an encoding Python knows") as info:
        spec_of({"encoding": "utf-9", **AB})
    assert "re-encode" not in str(info.value)
    with pytest.raises(SpecError, match="not ASCII-compatible"):
        spec_of({"encoding": "utf-16", **AB})
    src = tmp_path / "in.csv"
    src.write_bytes(b"text,label\ncaf\xe9,a\nhi,NULL\n")
    summary = convert([src], tmp_path / "out", AB, on_error="skip")
    reasons = [r["reason"] for r in rejects_rows(summary.rejects)]
    assert "`encoding:`" in reasons[0]
    assert "unknown label value 'NULL'" in reasons[1] and "`missing_values:`" in reasons[1]


def test_specs_in_assets_still_load() -> None:
    from spacy_mtl.data.convert import load_spec

    specs = sorted((REPO / "assets" / "specs").glob("*.yml"))
    assert specs
    for path in specs:
        load_spec(path)
    assert srsly.read_yaml(REPO / "assets" / "specs" / "sst5.yml")["pattern"]
