"""predict and distill-labels on bad input (issue 15): invalid characters, bad bytes at
their physical line, resuming into a damaged output, unknown output suffixes."""

import csv
import gzip
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
from typer.testing import CliRunner

import spacy_mtl
from spacy_mtl.cli import app
from spacy_mtl.data.io import LineDecodeError, TextLines, replace_surrogates
from spacy_mtl.workflows.predict import (
    Chunk,
    PredictError,
    partial_path,
    parts_dir,
    predict_file,
    progress_path,
)


@pytest.fixture(scope="module")
def model_dir(saved_pipeline) -> Path:
    return saved_pipeline[2] / "model"


def _read_csv(path: Path) -> List[Dict[str, str]]:
    with open(path, encoding="utf8", newline="") as file:
        return list(csv.DictReader(file))


def _read_jsonl(path: Path) -> List[Dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf8").splitlines()]


class Interrupt(Exception):
    pass


def _stop_after(n_chunks: int):
    def on_chunk(chunk: Chunk) -> None:
        if chunk.index + 1 == n_chunks:
            raise Interrupt

    return on_chunk


# -- the line reader ----------------------------------------------------------------------


def test_text_lines_numbers_physical_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes(b"\xef\xbb\xbfa\r\nb\rc\r\r\nd\n\xffe\rf\x80\n")
    lines = TextLines(path, errors="replace")
    got = [(line, lines.line_no) for line in lines]
    # Line ends as a file opened with newline="" gives them (csv's input).
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as file:
        assert [line for line, _ in got] == file.readlines()
    assert [n for _, n in got] == [1, 2, 3, 4, 5, 6, 7]
    assert lines.replaced == [6, 7]
    with pytest.raises(LineDecodeError, match=r"t.txt:6: not valid UTF-8: b'\\xff' at byte 1"):
        list(TextLines(path))


def test_replace_surrogates_keeps_pairs() -> None:
    value = json.loads('{"k\\udfff": ["a\\ud800b", 3, "\\ud83d\\ude00"]}')
    assert replace_surrogates(value) == {"k\ufffd": ["a\ufffdb", 3, "\U0001f600"]}


# -- invalid characters: replaced, reported at their line, every row written ---------------


def test_lone_surrogates_are_replaced_and_reported(tmp_path: Path, model_dir: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(
        '{"text": "i love this", "id": "1", "tags": []}\n'
        '{"text": "hi \\udfff there", "id": "2"}\n'
        "\n"
        '{"text": "ok", "id": "\\ud800", "tags": ["\\udc00"]}\n'
        '{"text": "fine \\ud83d\\ude00", "id": "4"}\n',
        encoding="utf8",
    )
    for fmt in ("jsonl", "csv", "parquet"):
        out = tmp_path / f"out.{fmt}"
        summary = predict_file(model_dir, src, out, chunk_size=2)
        assert summary.rows == 4
        assert summary.replaced == 2
        assert summary.replaced_at == [f"{src}:2", f"{src}:4"]
    rows = _read_jsonl(tmp_path / "out.jsonl")
    assert [r["id"] for r in rows] == ["1", "2", "\ufffd", "4"]
    assert rows[1]["text"] == "hi \ufffd there" and rows[2]["tags"] == ["\ufffd"]
    assert rows[3]["text"] == "fine \U0001f600"  # a valid pair is one character
    assert [r["id"] for r in _read_csv(tmp_path / "out.csv")] == ["1", "2", "\ufffd", "4"]


def test_surrogates_after_a_resume_are_counted_once(tmp_path: Path, model_dir: Path) -> None:
    src = tmp_path / "in.jsonl"
    lines = [
        f'{{"text": "row {i} \\udfff"}}' if i in (1, 4) else f'{{"text": "row {i}"}}'
        for i in range(6)
    ]
    src.write_text("\n".join(lines) + "\n", encoding="utf8")
    out = tmp_path / "out.jsonl"
    with pytest.raises(Interrupt):
        predict_file(model_dir, src, out, chunk_size=2, on_chunk=_stop_after(1))
    summary = predict_file(model_dir, src, out, chunk_size=2)
    assert summary.resumed_rows == 2 and summary.rows == 6
    assert summary.replaced == 2 and summary.replaced_at == [f"{src}:2", f"{src}:5"]
    assert [r["text"] for r in _read_jsonl(out)][4] == "row 4 \ufffd"


def _csv_with_bad_byte(path: Path, bad_line: int, n_lines: int) -> Path:
    """A CSV with LF line ends, quoted multi-line cells, and 0xff on physical line
    `bad_line`."""
    out = ["text,id"]
    row = 0
    while len(out) < n_lines:
        if row % 37 == 5 and len(out) + 3 < bad_line:
            out += [f'"three\n lines\n {row}",{row}']  # one row, three physical lines
        else:
            out.append(f"row {row},{row}")
        row += 1
    lines = "\n".join(out).split("\n")
    data = [line.encode("utf8") for line in lines]
    data[bad_line - 1] = data[bad_line - 1].replace(b"row", b"r\xffow", 1)
    path.write_bytes(b"\n".join(data) + b"\n")
    return path


def test_bad_bytes_are_reported_at_their_physical_line(tmp_path: Path, model_dir: Path) -> None:
    src = _csv_with_bad_byte(tmp_path / "in.csv", 3032, 3100)
    assert b"\xff" in src.read_bytes().split(b"\n")[3031]
    out = tmp_path / "out.csv"
    summary = predict_file(model_dir, src, out, chunk_size=1000)
    assert summary.replaced_at == [f"{src}:3032"]
    with open(src, encoding="utf8", errors="replace", newline="") as file:
        expected = list(csv.DictReader(file))
    rows = _read_csv(out)
    assert [r["text"] for r in rows] == [r["text"] for r in expected]
    assert sum("\ufffd" in r["text"] for r in rows) == 1
    # The same, gzip-compressed.
    gz = tmp_path / "in.csv.gz"
    gz.write_bytes(gzip.compress(src.read_bytes()))
    summary = predict_file(model_dir, gz, tmp_path / "gz.csv", chunk_size=1000)
    assert summary.replaced_at == [f"{gz}:3032"]


def test_bad_byte_in_jsonl_and_after_the_header(tmp_path: Path, model_dir: Path) -> None:
    src = tmp_path / "in.jsonl"
    lines = [f'{{"text": "row {i}"}}'.encode() for i in range(3050)]
    lines[2999] = b'{"text": "bad \xff here"}'
    src.write_bytes(b"\n".join(lines) + b"\n")
    summary = predict_file(model_dir, src, tmp_path / "out.jsonl", chunk_size=1000)
    assert summary.rows == 3050 and summary.replaced_at == [f"{src}:3000"]
    # A bad byte on line 3 is line 3, not the header.
    small = tmp_path / "small.csv"
    small.write_bytes(b"text,id\nfine,1\nbad\xff,2\n")
    summary = predict_file(model_dir, small, tmp_path / "small.out.csv")
    assert summary.replaced_at == [f"{small}:3"]
    assert [r["text"] for r in _read_csv(tmp_path / "small.out.csv")] == ["fine", "bad\ufffd"]


def test_unreadable_rows_name_their_first_line(tmp_path: Path, model_dir: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text('text,id\n"two\nlines",1\n"split\nrow",here,2\n', encoding="utf8")
    with pytest.raises(PredictError, match=r"in.csv:4: the row has 3 fields"):
        predict_file(model_dir, src, tmp_path / "out.csv")


def test_cli_reports_replaced_lines(tmp_path: Path, model_dir: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "ok"}\n{"text": "\\udfff"}\n', encoding="utf8")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["predict", str(model_dir), str(src), str(out)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "replaced with U+FFFD" in text and f"{src}:2" in text
    assert len(_read_jsonl(out)) == 2


# -- resuming into an output that is not what the earlier run wrote ------------------------


def _interrupted(tmp_path: Path, model_dir: Path, fmt: str, rows: int = 30) -> tuple:
    src = tmp_path / "in.csv"
    src.write_text("text\n" + "".join(f"text number {i}\n" for i in range(rows)), encoding="utf8")
    out = tmp_path / f"out.{fmt}"
    with pytest.raises(Interrupt):
        predict_file(model_dir, src, out, chunk_size=4, on_chunk=_stop_after(5))
    return src, out


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_resume_refuses_an_output_cut_short(tmp_path: Path, model_dir: Path, fmt: str) -> None:
    src, final = _interrupted(tmp_path, model_dir, fmt)
    out = partial_path(final)
    data = out.read_bytes()
    out.write_bytes(data[: len(data) // 2])  # e.g. a truncated copy put back
    with pytest.raises(PredictError, match=r"cut short or replaced.*--force"):
        predict_file(model_dir, src, final, chunk_size=4)
    assert out.read_bytes() == data[: len(data) // 2]  # untouched: no NUL padding
    assert b"\x00" not in out.read_bytes()
    # Same size, other bytes: refused too.
    out.write_bytes(data.replace(b"number 1", b"NUMBER 1"))
    with pytest.raises(PredictError, match=r"replaced or edited.*--force"):
        predict_file(model_dir, src, final, chunk_size=4)
    out.write_bytes(data)
    summary = predict_file(model_dir, src, final, chunk_size=4)
    assert summary.resumed_rows == 20 and summary.rows == 30
    assert not out.exists()
    got = _read_csv(final) if fmt == "csv" else _read_jsonl(final)
    assert [r["text"] for r in got] == [f"text number {i}" for i in range(30)]


def test_resume_refuses_missing_parquet_parts(tmp_path: Path, model_dir: Path) -> None:
    pytest.importorskip("pyarrow")
    src, out = _interrupted(tmp_path, model_dir, "parquet")
    (parts_dir(out) / "part-000002.parquet").unlink()
    with pytest.raises(PredictError, match=r"part-000002.parquet.*--force"):
        predict_file(model_dir, src, out, chunk_size=4)
    assert progress_path(out).exists()  # still resumable once the part is back
    summary = predict_file(model_dir, src, out, chunk_size=4, overwrite=True)
    assert summary.rows == 30


def test_cli_resume_after_truncation_exits_1(tmp_path: Path, model_dir: Path) -> None:
    src, out = _interrupted(tmp_path, model_dir, "csv")
    partial = partial_path(out)
    partial.write_bytes(partial.read_bytes()[:50])
    result = CliRunner().invoke(
        app, ["predict", str(model_dir), str(src), str(out), "--chunk-size", "4"]
    )
    assert result.exit_code == 1
    assert "cut short" in " ".join(result.output.split())
    assert len(partial.read_bytes()) == 50 and not out.exists()


# -- --force and a live run ----------------------------------------------------------------

_HOLD_LOCK = """
import sys, time
from pathlib import Path
from spacy_mtl.workflows.predict import OutputLock
OutputLock(Path(sys.argv[1])).acquire()
print("locked", flush=True)
time.sleep(600)
"""


def _snapshot(folder: Path) -> Dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_force_refuses_an_output_a_live_run_holds(tmp_path: Path, model_dir: Path) -> None:
    """--force is for stale outputs: while another live process holds OUTPUT.lock (its
    partial output and progress file on disk), `predict --force` is refused naming that
    process, and deletes or overwrites none of its files; once it is gone, --force
    starts over."""
    src, out = _interrupted(tmp_path, model_dir, "csv")
    assert partial_path(out).exists() and progress_path(out).exists()
    env = {**os.environ, "PYTHONPATH": str(Path(spacy_mtl.__file__).parents[1])}
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(out)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        before = _snapshot(tmp_path)
        assert f"{out.name}.lock" in before
        with pytest.raises(
            PredictError, match=rf"being written by another .*process {holder.pid} "
        ):
            predict_file(model_dir, src, out, chunk_size=4, overwrite=True)
        result = CliRunner().invoke(
            app, ["predict", str(model_dir), str(src), str(out), "--force", "--chunk-size", "4"]
        )
        assert result.exit_code == 1, result.output
        assert f"process {holder.pid} on host" in " ".join(result.output.split())
        assert _snapshot(tmp_path) == before  # the live run's files, byte for byte
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # Its process is gone: the lock is stale, and --force replaces the unfinished output.
    summary = predict_file(model_dir, src, out, chunk_size=4, overwrite=True)
    assert summary.resumed_rows == 0 and summary.rows == 30
    assert [r["text"] for r in _read_csv(out)] == [f"text number {i}" for i in range(30)]
    assert not partial_path(out).exists() and not progress_path(out).exists()


# -- output names -------------------------------------------------------------------------


def test_unknown_output_suffix_is_refused(tmp_path: Path, model_dir: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("text\ni love it\n", encoding="utf8")
    for name in ("out.xlsx", "out.json", "out.txt"):
        with pytest.raises(
            PredictError, match=rf"{name}: predict does not write .*--output-format"
        ):
            predict_file(model_dir, src, tmp_path / name)
        assert not (tmp_path / name).exists()
    result = CliRunner().invoke(
        app, ["predict", str(model_dir), str(src), str(tmp_path / "o.xlsx")]
    )
    assert result.exit_code == 1 and "does not write '.xlsx'" in " ".join(result.output.split())
    # Said explicitly, or no suffix at all (the input's format): written.
    predict_file(model_dir, src, tmp_path / "out.xlsx", output_format="csv")
    assert _read_csv(tmp_path / "out.xlsx")[0]["text"] == "i love it"
    predict_file(model_dir, src, tmp_path / "plain")
    assert _read_csv(tmp_path / "plain")[0]["text"] == "i love it"


def test_jsonl_nan_is_a_missing_value(tmp_path: Path, model_dir: Path) -> None:
    """NaN is not JSON (Python's json writes it): read as null, an id column with a NaN
    keeps its integers, in every output format. Before, the Parquet output refused the
    run (an id past 2**53 in a float column) or wrote the ids as floats."""
    pq = pytest.importorskip("pyarrow.parquet")
    src = tmp_path / "in.jsonl"
    big = 1234567890123456789
    lines = [f'{{"id": {big}, "text": "i love it"}}', '{"id": NaN, "text": NaN}', '{"id": 3}']
    src.write_text("\n".join(lines) + "\n", encoding="utf8")
    summary = predict_file(model_dir, src, tmp_path / "out.parquet")
    table = pq.read_table(str(tmp_path / "out.parquet"))
    assert str(table.schema.field("id").type) == "int64"
    assert table.column("id").to_pylist() == [big, None, 3]
    assert table.column("text").to_pylist() == ["i love it", None, None]
    assert summary.empty == 2
    predict_file(model_dir, src, tmp_path / "out.csv")
    assert [row["id"] for row in _read_csv(tmp_path / "out.csv")] == [str(big), "", "3"]
    predict_file(model_dir, src, tmp_path / "out.jsonl")
    assert [row["id"] for row in _read_jsonl(tmp_path / "out.jsonl")] == [big, None, 3]
    # Infinity is a number (not a missing value), predicted as its string.
    src.write_text('{"id": 1, "text": Infinity}\n', encoding="utf8")
    predict_file(model_dir, src, tmp_path / "inf.jsonl")
    assert _read_jsonl(tmp_path / "inf.jsonl")[0]["sentiment"] is not None


# -- distill-labels: the same handling -----------------------------------------------------


@pytest.mark.parametrize(
    "name,content,expected",
    [
        ("n.jsonl", b'{"text": null}\n', "n.jsonl:1: field 'text' must be a string"),
        ("l.jsonl", b'{"text": "a"}\n{"text": ["x"]}\n', "l.jsonl:2: field 'text' must be"),
        ("k.jsonl", b'{"text": "a"}\n\n{"body": "b"}\n', "k.jsonl:3: no 'text' field"),
        ("j.jsonl", b'{"text": "a"}\n{"text": \n', "j.jsonl:2: invalid JSON"),
        ("a.jsonl", b'["a"]\n', "a.jsonl:1: expected a JSON object"),
        ("c.spacy", b"garbage", "c.spacy: not a readable .spacy file"),
        ("t.csv", b"text\nhello\n", "t.csv: the corpus must be a .spacy file"),
    ],
)
def test_cli_distill_bad_corpus_is_one_clear_error(
    tmp_path: Path, model_dir: Path, name: str, content: bytes, expected: str
) -> None:
    corpus = tmp_path / name
    corpus.write_bytes(content)
    out = tmp_path / "d.spacy"
    args = ["distill-labels", str(model_dir), str(corpus), str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert expected in " ".join(result.output.split())
    assert not out.exists()


def test_cli_distill_replaces_bad_characters_with_their_line(
    tmp_path: Path, model_dir: Path
) -> None:
    from spacy.tokens import DocBin

    txt = tmp_path / "raw.txt"
    txt.write_bytes(b"i love it\r\nbad \xff byte\nok\n")
    jsonl = tmp_path / "raw.jsonl"
    jsonl.write_text('{"text": "a"}\n{"text": "b \\udfff"}\n{"text": 7}\n', encoding="utf8")
    for corpus, line, texts in (
        (txt, 2, ["i love it", "bad \ufffd byte", "ok"]),
        (jsonl, 2, ["a", "b \ufffd", "7"]),
    ):
        out = tmp_path / f"{corpus.name}.spacy"
        args = ["distill-labels", str(model_dir), str(corpus), str(out)]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert f"{corpus}:{line}: characters that are not valid UTF-8" in " ".join(
            result.output.split()
        )
        import spacy

        docs = list(DocBin().from_disk(out).get_docs(spacy.blank("en").vocab))
        assert [d.text for d in docs] == texts
