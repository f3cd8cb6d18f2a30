"""predict against a hostile probe (issue 29): two runs into one output, resumes with a
changed model or input, hostile JSON, OS errors, memory bombs, CSV injection.

Each case ends in one PredictError naming the file (and line) and the cause, and leaves
nothing under the output's final name that looks complete."""

import bz2
import csv
import errno
import gzip
import json
import lzma
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
import spacy
from conftest import make_examples, make_nlp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spacy.language import Language
from typer.testing import CliRunner

from spacy_mtl.cli import app
from spacy_mtl.workflows.predict import (
    Chunk,
    OutputLock,
    PredictError,
    csv_safe_cell,
    lock_path,
    partial_path,
    predict_file,
    progress_path,
)
from spacy_mtl.workflows.predict import writers as writers_module


@pytest.fixture(scope="module")
def model_dir(saved_pipeline) -> Path:
    return saved_pipeline[2] / "model"


@pytest.fixture(scope="module")
def nlp(model_dir: Path) -> Language:
    return spacy.load(model_dir)


class Interrupt(Exception):
    pass


def _stop_after(n_chunks: int):
    def on_chunk(chunk: Chunk) -> None:
        if chunk.index + 1 == n_chunks:
            raise Interrupt

    return on_chunk


def _csv(path: Path, n: int) -> Path:
    path.write_text("id,text\n" + "".join(f"{i},text number {i}\n" for i in range(n)), "utf8")
    return path


def _interrupted(tmp_path: Path, model: Path, *, chunk_size: int = 4, after: int = 1):
    """A 10-row CSV whose predict run stopped after `after` chunks: (input, output)."""
    src = _csv(tmp_path / "in.csv", 10)
    out = tmp_path / "out.csv"
    with pytest.raises(Interrupt):
        predict_file(model, src, out, chunk_size=chunk_size, on_chunk=_stop_after(after))
    return src, out


def _ids(path: Path) -> List[str]:
    with open(path, encoding="utf8", newline="") as file:
        return [row["id"] for row in csv.DictReader(file)]


def _left(folder: Path, *keep: Path) -> List[str]:
    """What a run left in `folder`, beside the given files."""
    return sorted(p.name for p in folder.iterdir() if p not in keep)


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text
    return text


# -- one run per output ---------------------------------------------------------------------


def test_a_second_run_is_refused_while_the_lock_is_held(tmp_path: Path, model_dir: Path) -> None:
    src = _csv(tmp_path / "in.csv", 10)
    out = tmp_path / "out.csv"
    with OutputLock(out):
        with pytest.raises(PredictError) as info:
            predict_file(model_dir, src, out)
        message = _one_line(info.value)
        assert f"process {os.getpid()} on host {socket.gethostname()}" in message
        assert str(lock_path(out)) in message
        # Refused before anything was written, --force included.
        with pytest.raises(PredictError, match="being written by another predict run"):
            predict_file(model_dir, src, out, overwrite=True)
        assert _left(tmp_path, src) == ["out.csv.lock"]
    assert not lock_path(out).exists()
    predict_file(model_dir, src, out)
    assert _ids(out) == [str(i) for i in range(10)]
    assert not lock_path(out).exists()  # released when the run ends


_HOLD = """
import sys, time
from pathlib import Path
from spacy_mtl.workflows.predict import OutputLock
lock = OutputLock(Path(sys.argv[1]))
lock.acquire()
print("locked", flush=True)
time.sleep(600)
"""


def test_a_live_process_holds_the_lock_and_a_dead_one_is_taken_over(
    tmp_path: Path, model_dir: Path
) -> None:
    """Two real processes: a run is refused while another holds the lock, and takes it over
    once that process is killed (the lock file stays behind, its PID dead)."""
    src = _csv(tmp_path / "in.csv", 12)
    out = tmp_path / "out.csv"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(out)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(PredictError, match=rf"process {holder.pid} on host"):
            predict_file(model_dir, src, out, chunk_size=5)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert json.loads(lock_path(out).read_text())["pid"] == holder.pid  # stale now
    summary = predict_file(model_dir, src, out, chunk_size=5)
    assert summary.rows == 12 and _ids(out) == [str(i) for i in range(12)]
    assert _left(tmp_path, src) == ["out.csv"]


def test_a_lock_of_another_host_is_never_taken_over(tmp_path: Path, model_dir: Path) -> None:
    src = _csv(tmp_path / "in.csv", 3)
    out = tmp_path / "out.csv"
    lock_path(out).write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "t"}))
    with pytest.raises(PredictError, match=r"process 1 on host elsewhere.*delete the lock"):
        predict_file(model_dir, src, out)
    assert lock_path(out).exists() and not out.exists()


def test_the_lock_is_released_when_a_run_fails(tmp_path: Path, model_dir: Path) -> None:
    src, out = _interrupted(tmp_path, model_dir, chunk_size=3, after=2)
    assert not lock_path(out).exists()
    assert _left(tmp_path, src) == ["out.csv.partial", "out.csv.progress.json"]
    assert _ids(partial_path(out)) == [str(i) for i in range(6)]  # the 2 chunks saved
    predict_file(model_dir, src, out, chunk_size=3)
    assert _ids(out) == [str(i) for i in range(10)]


# -- what a resume checks -------------------------------------------------------------------


def test_resume_refuses_a_model_retrained_in_place(tmp_path: Path, model_dir: Path) -> None:
    model = tmp_path / "model-best"
    shutil.copytree(model_dir, model)
    src, out = _interrupted(tmp_path, model)
    # Retrained into the same folder: same name, version, labels; other weights.
    nlp = spacy.load(model)
    optimizer = nlp.resume_training()
    for _ in range(2):
        nlp.update(make_examples(nlp), sgd=optimizer)
    nlp.to_disk(model)
    with pytest.raises(PredictError) as info:
        predict_file(model, src, out, chunk_size=4)
    message = _one_line(info.value)
    assert "files differ" in message and "mtl_textcat/model" in message
    assert "--force" in message
    assert predict_file(model, src, out, chunk_size=4, overwrite=True).rows == 10


def test_resume_accepts_the_model_spelled_another_way(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, out = _interrupted(tmp_path, model_dir)
    monkeypatch.chdir(model_dir.parent)
    summary = predict_file(Path("..") / model_dir.parent.name / "model", src, out, chunk_size=4)
    assert summary.resumed_rows == 4 and _ids(out) == [str(i) for i in range(10)]


def test_resume_refuses_an_input_edited_with_its_size_and_mtime_kept(
    tmp_path: Path, model_dir: Path
) -> None:
    src, out = _interrupted(tmp_path, model_dir)
    before = src.stat()
    src.write_bytes(src.read_bytes().replace(b"number 2", b"NUMBER 2"))
    os.utime(src, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (src.stat().st_size, src.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    with pytest.raises(PredictError, match=r"in.csv: its first 4 rows are not those.*--force"):
        predict_file(model_dir, src, out, chunk_size=4)
    assert progress_path(out).exists()  # untouched: the original input can be put back
    # An edit after the rows done is no reason to refuse (those rows are predicted now).
    src.write_bytes(src.read_bytes().replace(b"NUMBER 2", b"number 2").replace(b"r 8", b"R 8"))
    os.utime(src, ns=(before.st_atime_ns, before.st_mtime_ns))
    summary = predict_file(model_dir, src, out, chunk_size=3)  # another chunk size
    assert summary.resumed_rows == 4 and _ids(out) == [str(i) for i in range(10)]


def test_resume_refuses_a_progress_file_of_an_earlier_version(
    tmp_path: Path, model_dir: Path
) -> None:
    src, out = _interrupted(tmp_path, model_dir)
    progress = json.loads(progress_path(out).read_text())
    progress_path(out).write_text(json.dumps({**progress, "version": 1}))
    with pytest.raises(PredictError, match=r"earlier version of spacy-mtl.*--force"):
        predict_file(model_dir, src, out, chunk_size=4)


def test_empty_label_sep_is_refused(tmp_path: Path, model_dir: Path) -> None:
    src = _csv(tmp_path / "in.csv", 2)
    with pytest.raises(PredictError, match="must not be empty"):
        predict_file(model_dir, src, tmp_path / "out.csv", label_sep="")
    result = CliRunner().invoke(
        app, ["predict", str(model_dir), str(src), str(tmp_path / "o.csv"), "--label-sep", ""]
    )
    assert result.exit_code == 1 and "must not be empty" in result.output
    assert _left(tmp_path, src) == []


def test_a_label_that_contains_label_sep_is_refused(tmp_path: Path) -> None:
    """A multilabel label 'anger|rage' made the cell 'joy|anger|rage' read as 3 labels."""
    groups = {"emotion": {"kind": "multilabel", "labels": ["joy", "anger|rage"]}}
    nlp = make_nlp(groups)
    cats = {"emotion/joy": 1.0, "emotion/anger|rage": 0.0}
    examples = make_examples(nlp, [("so happy", cats)])
    nlp.initialize(lambda: examples)
    src = _csv(tmp_path / "in.csv", 2)
    with pytest.raises(PredictError) as info:
        predict_file(nlp, src, tmp_path / "out.csv")
    message = _one_line(info.value)
    assert "Group 'emotion': label 'anger|rage' contains the label separator '|'" in message
    assert "another --label-sep" in message
    assert _left(tmp_path, src) == []
    # Another separator, or an output of lists, is fine.
    assert predict_file(nlp, src, tmp_path / "out.csv", label_sep=";").rows == 2
    assert predict_file(nlp, src, tmp_path / "out.jsonl").rows == 2


# -- hostile JSON ---------------------------------------------------------------------------

HOSTILE_JSON = [
    ("deep arrays", '{"text": "a", "x": ' + "[" * 1000 + "]" * 1000 + "}", "nests arrays"),
    ("deep objects", '{"text": "a", "x": ' + '{"k": ' * 300 + "1" + "}" * 301, "nests arrays"),
    ("5,000 digits", '{"text": "a", "n": ' + "9" * 5000 + "}", "4300 digits"),
    ("duplicate key", '{"text": "a", "id": 1, "id": 2}', "key 'id' appears more than once"),
    ("nested duplicate", '{"text": "a", "m": {"k": 1, "k": 2}}', "key 'k' appears more"),
    ("duplicate text", '{"text": "a", "text": "b"}', "key 'text' appears more than once"),
    # json reads these as inf: predicted as the text "inf", written back as Infinity.
    ("overflowing text", '{"text": 1e400}', "key 'text': the number 1e400 is too large"),
    ("overflowing id", '{"text": "a", "id": -2e999}', "key 'id': the number -2e999 is too"),
    ("overflowing nested", '{"text": "a", "m": [[1e309]]}', "key 'm': the number 1e309 is"),
]


@pytest.mark.parametrize("what,line,expected", HOSTILE_JSON, ids=[h[0] for h in HOSTILE_JSON])
def test_hostile_json_is_one_clear_error(
    tmp_path: Path, nlp: Language, what: str, line: str, expected: str
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "fine"}\n' + line + "\n", encoding="utf8")
    out = tmp_path / "out.jsonl"
    with pytest.raises(PredictError) as info:
        predict_file(nlp, src, out)
    message = _one_line(info.value)
    assert message.startswith(f"{src}:2: ") and expected in message
    assert len(message) < 600
    assert _left(tmp_path, src) == []


def test_json_nested_within_the_limit_is_written_back(tmp_path: Path, nlp: Language) -> None:
    src = tmp_path / "in.jsonl"
    nested = "[" * 150 + "]" * 150
    src.write_text('{"text": "a", "x": ' + nested + "}\n", encoding="utf8")
    predict_file(nlp, src, tmp_path / "out.jsonl")
    assert json.loads((tmp_path / "out.jsonl").read_text())["x"] == json.loads(nested)


_GOOD = st.fixed_dictionaries(
    {"text": st.text(max_size=12)},
    optional={"id": st.integers(-(10**20), 10**20), "tags": st.lists(st.text(max_size=3))},
).map(json.dumps)
_BAD_SET = {h[1] for h in HOSTILE_JSON} | {'{"text": ', "[1, 2]", '{"text": [1]}'}
_BAD = st.sampled_from(sorted(_BAD_SET))


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(lines=st.lists(st.one_of(_GOOD, _GOOD, _BAD), min_size=1, max_size=8))
def test_fuzz_hostile_jsonl(nlp: Language, lines: List[str]) -> None:
    """Valid rows mixed with hostile ones: every row once and in order, or one
    PredictError naming the first hostile line; never another exception."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        src = Path(folder) / "in.jsonl"
        src.write_text("\n".join(lines) + "\n", encoding="utf8")
        out = Path(folder) / "out.jsonl"
        bad = [i for i, line in enumerate(lines, 1) if line in _BAD_SET]
        try:
            summary = predict_file(nlp, src, out, chunk_size=3)
        except PredictError as err:
            assert bad, err
            assert str(err).startswith(f"{src}:{bad[0]}: "), err
            assert "\n" not in str(err) and len(str(err)) < 600
            assert not out.exists()
            return
        assert not bad
        # split("\n"): str.splitlines would also split at U+0085 and U+2028 in a text.
        rows = [json.loads(line) for line in out.read_text(encoding="utf8").split("\n")[:-1]]
        assert summary.rows == len(lines)
        assert [r["text"] for r in rows] == [json.loads(line)["text"] for line in lines]


# -- OS errors ------------------------------------------------------------------------------

_DATA = b"text\n" + b"hello world\n" * 20_000
COMPRESSED = [(".gz", gzip.compress), (".xz", lzma.compress), (".bz2", bz2.compress)]


@pytest.mark.parametrize("suffix,compress", COMPRESSED, ids=[c[0] for c in COMPRESSED])
def test_truncated_or_damaged_compressed_input(
    tmp_path: Path, nlp: Language, model_dir: Path, suffix: str, compress: Any
) -> None:
    data = compress(_DATA)
    src = tmp_path / f"in.csv{suffix}"
    src.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out.csv"
    with pytest.raises(PredictError) as info:
        predict_file(nlp, src, out, chunk_size=1000)
    message = _one_line(info.value)
    assert message.startswith(f"{src}:") and "compressed file is cut short" in message
    assert not out.exists()  # never a final name that looks complete
    # The command: one line and exit 1, not click's "Aborted!" for an EOFError.
    result = CliRunner().invoke(app, ["predict", str(model_dir), str(src), str(out), "-F"])
    assert result.exit_code == 1 and "Aborted" not in result.output
    assert "cut short" in " ".join(result.output.split())
    src.write_bytes(b"not compressed data at all\n" * 10)
    with pytest.raises(PredictError, match=rf"in.csv{suffix}:1: .*compressed data is damaged"):
        predict_file(nlp, src, out, overwrite=True)


def test_inputs_that_are_not_regular_files(tmp_path: Path, nlp: Language) -> None:
    out = tmp_path / "out.jsonl"
    (tmp_path / "a.jsonl").symlink_to(tmp_path / "b.jsonl")
    (tmp_path / "b.jsonl").symlink_to(tmp_path / "a.jsonl")
    with pytest.raises(PredictError, match=r"a.jsonl: a loop of symbolic links"):
        predict_file(nlp, tmp_path / "a.jsonl", out)
    os.mkfifo(tmp_path / "fifo.jsonl")
    with pytest.raises(PredictError, match=r"fifo.jsonl: a named pipe \(FIFO\), not a regular"):
        predict_file(nlp, tmp_path / "fifo.jsonl", out)  # would block forever if opened
    with pytest.raises(PredictError, match=r"/dev/zero: a character device"):
        predict_file(nlp, "/dev/zero", out, input_format="jsonl")
    with pytest.raises(PredictError, match=r"a folder, not a regular file"):
        predict_file(nlp, tmp_path, out, input_format="jsonl")
    with pytest.raises(PredictError, match=r"missing.jsonl: the input file does not exist"):
        predict_file(nlp, tmp_path / "missing.jsonl", out)
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "a"}\n', encoding="utf8")
    with pytest.raises(PredictError, match=r"a.jsonl: a loop of symbolic links"):
        predict_file(nlp, src, tmp_path / "a.jsonl")  # as the output
    assert not out.exists()


def test_what_the_input_is_is_said_before_its_format_is_guessed(
    tmp_path: Path, nlp: Language
) -> None:
    """Without --format, each of these was "cannot tell the input format from the file
    name", which sent the user to --format for a folder or a missing file."""
    out = tmp_path / "out.jsonl"
    (tmp_path / "loop").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    for path, expected in [
        (tmp_path / "loop", "a loop of symbolic links"),
        (tmp_path / "fifo", r"a named pipe \(FIFO\), not a regular file"),
        (Path("/dev/zero"), "a character device, not a regular file"),
        (tmp_path / "folder", "a folder, not a regular file"),
        (tmp_path / "data", "the input file does not exist"),
    ]:
        with pytest.raises(PredictError, match=rf"^{path}: {expected}"):
            predict_file(nlp, path, out)
    assert not out.exists()


def test_an_output_folder_that_cannot_be_written(
    tmp_path: Path, nlp: Language, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _csv(tmp_path / "in.csv", 3)
    out = tmp_path / "ro" / "out.csv"
    real_open = os.open

    def read_only(path: Any, flags: int, *args: Any) -> int:
        if str(path).startswith(str(out.parent)) and flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(PredictError) as info:
        predict_file(nlp, src, out)
    message = _one_line(info.value)
    assert "out.csv.lock: cannot create the lock file" in message
    assert "Permission denied" in message


@pytest.mark.parametrize("fail_at", [1, 3])
def test_a_full_disk_is_one_line_and_leaves_a_resumable_partial_output(
    tmp_path: Path, nlp: Language, monkeypatch: pytest.MonkeyPatch, fail_at: int
) -> None:
    src = _csv(tmp_path / "in.csv", 20)
    out = tmp_path / "out.csv"
    clean = tmp_path / "clean.csv"
    predict_file(nlp, src, clean, chunk_size=4)
    commit = writers_module.TextWriter.commit
    calls = []

    def full_disk(self: Any) -> int:
        calls.append(1)
        if len(calls) == fail_at:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.partial))
        return commit(self)

    monkeypatch.setattr(writers_module.TextWriter, "commit", full_disk)
    with pytest.raises(PredictError) as info:
        predict_file(nlp, src, out, chunk_size=4)
    message = _one_line(info.value)
    assert "out.csv.partial: cannot write the output (No space left on device)" in message
    assert not out.exists() and not lock_path(out).exists()
    monkeypatch.setattr(writers_module.TextWriter, "commit", commit)
    if fail_at == 1:
        # Nothing saved: nothing left to resume.
        assert _left(tmp_path, src, clean) == []
        assert "free some space and run again" in message
    else:
        assert "continue after the 8 rows saved" in message
        assert _left(tmp_path, src, clean) == ["out.csv.partial", "out.csv.progress.json"]
    summary = predict_file(nlp, src, out, chunk_size=4)
    assert summary.resumed_rows == (fail_at - 1) * 4
    assert out.read_bytes() == clean.read_bytes()


# -- memory bombs ---------------------------------------------------------------------------


def test_a_line_without_an_end_is_capped(tmp_path: Path, nlp: Language) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"text": "fine"}\n{"text": "' + b"a" * 5000)
    with pytest.raises(PredictError) as info:
        predict_file(nlp, src, tmp_path / "out.jsonl", max_record_bytes=1000)
    message = _one_line(info.value)
    assert message.startswith(f"{src}:2: the line is longer than 1,000 bytes")
    assert "aaaa" not in message
    # Within the limit (the default is 10 MB): read.
    small = tmp_path / "small.jsonl"
    small.write_bytes(b'{"text": "' + b"a" * 900 + b'"}\n')
    assert predict_file(nlp, small, tmp_path / "s.jsonl", max_record_bytes=1000).rows == 1


def test_an_unclosed_quote_is_capped_at_the_row_it_starts(tmp_path: Path, nlp: Language) -> None:
    src = tmp_path / "in.csv"
    src.write_text('id,text\n1,fine\n2,"never closed\n' + "more text\n" * 500, encoding="utf8")
    with pytest.raises(PredictError) as info:
        predict_file(nlp, src, tmp_path / "out.csv", max_record_bytes=1000)
    message = _one_line(info.value)
    assert message.startswith(f"{src}:3: the row (its lines from there on) is longer")
    assert "--no-quoting" in message


def test_a_huge_bad_cell_is_not_echoed_whole(tmp_path: Path, nlp: Language) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": ["' + "x" * 1_000_000 + '"]}\n', encoding="utf8")
    with pytest.raises(PredictError) as info:
        predict_file(nlp, src, tmp_path / "out.jsonl")
    message = _one_line(info.value)
    assert "the text must be a string, got list" in message
    assert len(message) < 600 and message.endswith("….")


# -- CSV injection --------------------------------------------------------------------------


def test_csv_safe_neutralises_formulas(tmp_path: Path, nlp: Language) -> None:
    src = tmp_path / "in.jsonl"
    rows = [
        {"text": "=1+1", "a": '=HYPERLINK("http://x")', "b": "+1", "c": "-2", "d": "@SUM(A1)"},
        {"text": "fine", "a": "\tq", "b": "\rq", "c": "a=b", "d": "1-2"},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf8")
    plain, safe = tmp_path / "plain.csv", tmp_path / "safe.csv"
    predict_file(nlp, src, plain)
    predict_file(nlp, src, safe, csv_safe=True)
    with open(plain, encoding="utf8", newline="") as file:
        assert [{k: r[k] for k in "abcd"} for r in csv.DictReader(file)] == [
            {k: r[k] for k in "abcd"} for r in rows
        ]  # by default: verbatim
    with open(safe, encoding="utf8", newline="") as file:
        got = list(csv.DictReader(file))
    assert [r["text"] for r in got] == ["'=1+1", "fine"]
    assert [got[0][k] for k in "abcd"] == ['\'=HYPERLINK("http://x")', "'+1", "'-2", "'@SUM(A1)"]
    assert [got[1][k] for k in "abcd"] == ["'\tq", "'\rq", "a=b", "1-2"]
    assert csv_safe_cell("-") == "'-" and csv_safe_cell("") == ""
    # A setting of the output: a resume with the other value is refused.
    out = tmp_path / "r.csv"
    with pytest.raises(Interrupt):
        predict_file(nlp, src, out, chunk_size=1, csv_safe=True, on_chunk=_stop_after(1))
    with pytest.raises(PredictError, match="csv_safe"):
        predict_file(nlp, src, out, chunk_size=1)


def test_cli_csv_safe(tmp_path: Path, model_dir: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("text,f\nhi,\"=cmd|' /C calc'!A0\"\n", encoding="utf8")
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(app, ["predict", str(model_dir), str(src), str(out), "--csv-safe"])
    assert result.exit_code == 0, result.output
    rows: List[Dict[str, str]] = list(csv.DictReader(out.open(encoding="utf8", newline="")))
    assert rows[0]["f"] == "'=cmd|' /C calc'!A0"


def test_a_lone_carriage_return_in_a_cell_is_quoted(tmp_path: Path, nlp: Language) -> None:
    """Python's csv writer quotes for its line terminator ("\\n") only: a cell with a lone
    "\\r" was written bare, and every CSV reader split the row there (a silent extra row)."""
    src = tmp_path / "in.jsonl"
    rows = [{"text": "one\rtwo", "id": "a\rb"}, {"text": "plain", "id": "c"}]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf8")
    for fmt in ("csv", "tsv"):
        out = tmp_path / f"out.{fmt}"
        predict_file(nlp, src, out)
        with open(out, encoding="utf8", newline="") as file:
            got = list(csv.DictReader(file, delimiter="," if fmt == "csv" else "\t"))
        assert [(r["text"], r["id"]) for r in got] == [("one\rtwo", "a\rb"), ("plain", "c")]
