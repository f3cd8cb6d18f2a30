"""Property-based fuzzing of predict (issue 15): CSV, TSV and JSONL inputs mixing valid
rows with empty and whitespace texts, missing cells and keys, embedded newlines, quotes
and delimiters, bytes that are not UTF-8, lone surrogates, and rows that cannot be read.

Whatever the input: no exception but PredictError; every row is in the output exactly
once, in order, unless the run stops at an unreadable row, which the error names by its
physical line; every replaced character is reported at its line."""

import csv
import io
import json
import tempfile
from pathlib import Path
from typing import Any, List, Optional, Tuple

import pytest
import spacy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spacy.language import Language

from spacy_mtl.workflows.predict import PredictError, predict_file

BAD = "BADBYTE"  # replaced by a byte that is not UTF-8 once encoded

KINDS = ["plain", "empty", "blank", "missing", "multiline", "bad_byte", "surrogate", "broken"]
PIECES = ["a", "b", " ", ",", ";", "\t", '"', "'", "é", "😀", "love", "sad", "\\", "null"]
text_parts = st.lists(st.sampled_from(PIECES), max_size=8).map("".join)
rows_strategy = st.lists(st.tuples(st.sampled_from(KINDS), text_parts), min_size=0, max_size=14)


@pytest.fixture(scope="module")
def nlp(saved_pipeline) -> Language:
    return spacy.load(saved_pipeline[2] / "model")


def _text(kind: str, part: str) -> Optional[str]:
    return {
        "plain": f"i love {part}",
        "empty": "",
        "blank": "   ",
        "missing": None,
        "multiline": f'he said "{part}",\nthen\r\nleft',
        "bad_byte": f"{BAD}{part}",
        "surrogate": f"x\udfff{part}",
        "broken": "",
    }[kind]


def _build(fmt: str, rows: List[Tuple[str, str]]) -> Tuple[bytes, List[Any], List[int], Any]:
    """The file's bytes, the expected ids in order (None: a blank CSV line), the lines with
    replaced characters, and the line of the first unreadable row (None if none)."""
    sep = "\t" if fmt == "tsv" else ","
    out = io.StringIO()
    line = 1
    ids: List[Any] = []
    replaced: List[int] = []
    broken: Optional[int] = None
    if fmt != "jsonl":
        out.write(f"id{sep}text\n")
        line = 2
    writer = csv.writer(out, delimiter=sep, lineterminator="\n")
    for i, (kind, part) in enumerate(rows):
        if fmt != "jsonl" and kind == "surrogate":
            kind = "bad_byte"  # a CSV file cannot hold one
        text = _text(kind, part)
        start = line
        if kind == "broken":
            broken = start if broken is None else broken
            if fmt == "jsonl":
                out.write(f'{{"id": "{i}", "text": \n')
            else:
                writer.writerow([str(i), "a", "one cell too many"])
        elif fmt == "jsonl":
            record: dict = {"id": str(i)}
            if kind == "blank" and i % 2:
                out.write("\n")  # a blank line is no record in JSONL
                line += 1
                start = line
            if text is not None:
                record["text"] = text
            out.write(json.dumps(record, ensure_ascii=True) + "\n")
        elif kind == "missing":
            writer.writerow([str(i)])  # a short row: the text is missing
        elif kind == "blank" and i % 2:
            out.write("\n")  # a blank line is a row with nothing in it
        else:
            writer.writerow([str(i), text])
        line = start + 1 + (text or "").count("\n") * (fmt != "jsonl" and kind != "missing")
        if kind in ("blank",) and i % 2 and fmt != "jsonl":
            ids.append(None)
        elif kind != "broken":
            ids.append(str(i))
        if kind in ("bad_byte", "surrogate") and broken is None:
            replaced.append(start)
    data = out.getvalue().encode("utf8").replace(BAD.encode(), b"\xff")
    return data, ids, replaced, broken


@settings(
    max_examples=45,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(fmt=st.sampled_from(["csv", "tsv", "jsonl"]), rows=rows_strategy, chunk=st.integers(1, 5))
def test_predict_fuzz(tmp_path: Path, nlp: Language, fmt: str, rows, chunk: int) -> None:
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    src = folder / f"in.{fmt}"
    data, ids, replaced, broken = _build(fmt, rows)
    src.write_bytes(data)
    out = folder / "out.jsonl"
    try:
        summary = predict_file(nlp, src, out, chunk_size=chunk)
    except PredictError as err:
        if "has the text column" in str(err):
            # JSONL's guard against a misspelt --text-column: no record of the first
            # chunk has the key (and none is unreadable before it).
            first = rows[:chunk]
            assert fmt == "jsonl" and all(kind in ("missing", "broken") for kind, _ in first)
            assert "broken" not in [kind for kind, _ in first]
            return
        assert broken is not None, f"unexpected error: {err}"
        assert f"{src}:{broken}:" in str(err)
        return
    assert broken is None, "an unreadable row was not reported"
    written = [json.loads(line) for line in out.read_text(encoding="utf8").splitlines()]
    assert [row.get("id") for row in written] == ids
    assert summary.rows == len(ids)
    assert summary.replaced_at == [f"{src}:{n}" for n in replaced][:10]
    assert summary.replaced == len(replaced)
    for row in written:
        assert ("sentiment" in row) and ("emotion" in row)
        text = row.get("text")
        if text is None or not str(text).strip():
            assert row["sentiment"] is None and row["emotion"] == []
        else:
            assert row["sentiment"] in ("negative", "neutral", "positive")
