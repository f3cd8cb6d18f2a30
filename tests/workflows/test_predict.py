"""`spacy-mtl predict` / predict_file: formats, order, empty texts, resume, CLI."""

import csv
import gzip
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import pytest
import spacy
from conftest import GROUPS, make_examples, make_nlp
from spacy.language import Language
from typer.testing import CliRunner

from spacy_mtl.cli import app
from spacy_mtl.workflows.predict import (
    Chunk,
    OutputColumns,
    PredictError,
    partial_path,
    parts_dir,
    predict_file,
    progress_path,
)

TRICKY = [
    "i love this movie",
    "",  # empty
    "NA",  # pandas would read this as NaN
    "null",
    'he said "hi, there"\nand left, sad',  # quotes, comma, newline
    "   ",  # whitespace only: empty
    "what a great fun day " * 400,  # long: 8,400 characters
    "a sad sad day 😢",
    "i hate this awful film\r\nreally",
]


def _train(nlp: Language, steps: int = 8) -> Language:
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(steps):
        nlp.update(examples, sgd=optimizer)
    return nlp


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small trained Tok2Vec pipeline (sentiment multiclass, emotion multilabel)."""
    path = tmp_path_factory.mktemp("predict_model") / "model"
    _train(make_nlp(GROUPS)).to_disk(path)
    return path


@pytest.fixture(scope="module")
def nlp(model_dir: Path) -> Language:
    return spacy.load(model_dir)


def _expected(nlp: Language, texts: Sequence[Optional[str]]) -> List[Optional[Any]]:
    """Labels and scores straight from the component (doc._), None for an empty text."""
    out: List[Optional[Any]] = []
    for text in texts:
        if text is None or not text.strip():
            out.append(None)
        else:
            doc = nlp(text)
            out.append((doc._.mtl_labels, doc._.mtl_scores))
    return out


def _write_csv(path: Path, rows: List[List[str]], delimiter: str = ",") -> Path:
    with open(path, "w", encoding="utf8", newline="") as file:
        csv.writer(file, delimiter=delimiter).writerows(rows)
    return path


def _read_csv(path: Path, delimiter: str = ",") -> List[Dict[str, str]]:
    with open(path, encoding="utf8", newline="") as file:
        return list(csv.DictReader(file, delimiter=delimiter))


def _read_jsonl(path: Path) -> List[Dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf8").splitlines()]


def _read_parquet(path: Path) -> List[Dict[str, Any]]:
    pq = pytest.importorskip("pyarrow.parquet")
    return pq.read_table(str(path)).to_pylist()


def _tricky_csv(path: Path) -> Path:
    rows = [["id", "text", "code"]]
    rows += [[str(i), text, "007" if i % 2 else "NA"] for i, text in enumerate(TRICKY)]
    return _write_csv(path, rows)


def test_csv_keeps_rows_order_and_cells(tmp_path: Path, model_dir: Path, nlp: Language) -> None:
    src = _tricky_csv(tmp_path / "in.csv")
    out = tmp_path / "out.csv"
    summary = predict_file(model_dir, src, out, scores=True, chunk_size=4)
    rows = _read_csv(out)
    assert len(rows) == summary.rows == len(TRICKY)
    assert summary.empty == 2 and summary.truncated == 0 and summary.chunks == 3
    assert list(rows[0]) == [
        "id",
        "text",
        "code",
        "sentiment",
        "emotion",
        "sentiment/negative",
        "sentiment/neutral",
        "sentiment/positive",
        "emotion/anger",
        "emotion/joy",
        "emotion/sadness",
    ]
    for i, (row, text, expected) in enumerate(zip(rows, TRICKY, _expected(nlp, TRICKY))):
        # Cells come back exactly: quotes, commas, newlines, "NA" and "007" included.
        assert (row["id"], row["text"], row["code"]) == (str(i), text, "007" if i % 2 else "NA")
        if expected is None:
            assert row["sentiment"] == row["emotion"] == row["emotion/joy"] == ""
            continue
        labels, scores = expected
        assert row["sentiment"] == labels["sentiment"]
        assert row["emotion"] == "|".join(labels["emotion"])
        for group, by_label in scores.items():
            for label, score in by_label.items():
                assert float(row[f"{group}/{label}"]) == score
    # The text "NA" was predicted as the text "NA", not skipped as a missing value.
    assert rows[2]["sentiment"] != ""
    assert not progress_path(out).exists()


def test_labels_only_by_default(tmp_path: Path, model_dir: Path, nlp: Language) -> None:
    src = _tricky_csv(tmp_path / "in.csv")
    predict_file(model_dir, src, tmp_path / "out.csv")
    rows = _read_csv(tmp_path / "out.csv")
    assert list(rows[0]) == ["id", "text", "code", "sentiment", "emotion"]
    assert [r["sentiment"] for r in rows] == [
        "" if e is None else e[0]["sentiment"] for e in _expected(nlp, TRICKY)
    ]


@pytest.mark.parametrize(
    "in_fmt,out_fmt",
    [
        ("csv", "tsv"),
        ("tsv", "jsonl"),
        ("jsonl", "parquet"),
        ("parquet", "csv"),
        ("parquet", "jsonl"),
        ("csv", "parquet"),
        ("jsonl", "jsonl"),
    ],
)
def test_format_round_trips(
    tmp_path: Path, model_dir: Path, nlp: Language, in_fmt: str, out_fmt: str
) -> None:
    records = [{"id": str(i), "text": text} for i, text in enumerate(TRICKY)]
    src = _write_input(tmp_path / f"in.{in_fmt}", in_fmt, records)
    out = tmp_path / f"out.{out_fmt}"
    summary = predict_file(model_dir, src, out, scores=True, chunk_size=3)
    assert (summary.input_format, summary.output_format) == (in_fmt, out_fmt)
    rows = _read_output(out, out_fmt)
    assert [row["id"] for row in rows] == [r["id"] for r in records]
    assert [row["text"] for row in rows] == TRICKY
    for row, expected in zip(rows, _expected(nlp, TRICKY)):
        if out_fmt in ("csv", "tsv"):
            emotion = row["emotion"].split("|") if row["emotion"] else []
        else:
            emotion = row["emotion"]
        if expected is None:
            assert row["sentiment"] in (None, "") and emotion == []
            assert (
                (row["scores"] is None) if out_fmt == "jsonl" else row["emotion/joy"] in ("", None)
            )
            continue
        labels, scores = expected
        assert row["sentiment"] == labels["sentiment"] and emotion == labels["emotion"]
        if out_fmt == "jsonl":
            assert row["scores"] == scores
        else:
            assert float(row["sentiment/positive"]) == scores["sentiment"]["positive"]
    assert not parts_dir(out).exists() and not progress_path(out).exists()


def _write_input(path: Path, fmt: str, records: List[Dict[str, Any]]) -> Path:
    if fmt in ("csv", "tsv"):
        rows = [list(records[0]), *[list(r.values()) for r in records]]
        return _write_csv(path, rows, "\t" if fmt == "tsv" else ",")
    if fmt == "jsonl":
        lines = [json.dumps(r, ensure_ascii=False) for r in records]
        path.write_text("\n".join(lines) + "\n", encoding="utf8")
        return path
    pa = pytest.importorskip("pyarrow")
    pytest.importorskip("pyarrow.parquet").write_table(pa.Table.from_pylist(records), str(path))
    return path


def _read_output(path: Path, fmt: str) -> List[Dict[str, Any]]:
    if fmt in ("csv", "tsv"):
        return _read_csv(path, "\t" if fmt == "tsv" else ",")
    if fmt == "jsonl":
        return _read_jsonl(path)
    return _read_parquet(path)


def test_jsonl_missing_null_and_number_texts(tmp_path: Path, model_dir: Path) -> None:
    src = tmp_path / "in.jsonl"
    lines = [
        {"id": 1, "text": "i love this movie", "meta": {"a": [1, 2]}},
        {"id": 2},  # no text key: missing
        {"id": 3, "text": None},
        {"id": 4, "text": float("nan")},
        {"id": 5, "text": 42},  # a number is predicted as its string
        {"id": 6, "text": "bad", "extra": True},
    ]
    src.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n", encoding="utf8")
    summary = predict_file(model_dir, src, tmp_path / "out.jsonl")
    rows = _read_jsonl(tmp_path / "out.jsonl")
    assert [r["id"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert summary.empty == 3
    assert rows[0]["meta"] == {"a": [1, 2]} and rows[5]["extra"] is True
    assert rows[1]["sentiment"] is None and rows[1]["emotion"] == []
    assert rows[3]["text"] is None  # NaN is not JSON: written as null
    assert rows[4]["sentiment"] in GROUPS["sentiment"]["labels"]


def test_parquet_nulls_and_types_kept(tmp_path: Path, model_dir: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table(
        {
            "n": pa.array([1, 2, None, 4], type=pa.int64()),
            "text": pa.array(["i love it", None, "", "so sad"], type=pa.string()),
        }
    )
    pq.write_table(table, str(tmp_path / "in.parquet"))
    summary = predict_file(model_dir, tmp_path / "in.parquet", tmp_path / "out.parquet")
    result = pq.read_table(str(tmp_path / "out.parquet"))
    assert result.schema.field("n").type == pa.int64()
    assert result.schema.field("emotion").type == pa.list_(pa.string())
    assert result.column("n").to_pylist() == [1, 2, None, 4]
    assert result.column("sentiment").to_pylist()[1:3] == [None, None]
    assert summary.empty == 2 and summary.rows == 4


def test_thresholds_decide_like_the_component(tmp_path: Path, model_dir: Path) -> None:
    nlp = spacy.load(model_dir)
    component = nlp.get_pipe("mtl_textcat")
    # A per-label threshold below and above the scores: the output must follow it.
    schema = component.schema.replace_group("emotion", thresholds={"joy": 0.01, "anger": 0.99})
    component.set_schema(schema)
    texts = [text for text in TRICKY if text.strip()]
    src = _write_csv(tmp_path / "in.csv", [["text"], *[[t] for t in texts]])
    predict_file(nlp, src, tmp_path / "out.jsonl")
    rows = _read_jsonl(tmp_path / "out.jsonl")
    for row, doc in zip(rows, nlp.pipe(texts)):
        assert row["emotion"] == doc._.mtl_labels["emotion"]
        assert "joy" in row["emotion"] and "anger" not in row["emotion"]


def test_decide_matches_set_annotations(nlp: Language) -> None:
    out = OutputColumns(nlp.get_pipe("mtl_textcat").schema)
    texts = [text for text in TRICKY if text.strip()] + ["ok", "the", "meh"]
    for doc in nlp.pipe(texts):
        labels = out.decide(out.scores_of(doc.cats))
        assert labels == [doc._.mtl_labels["sentiment"], doc._.mtl_labels["emotion"]]


def test_long_texts_are_cut_not_dropped(tmp_path: Path, model_dir: Path) -> None:
    nlp = spacy.load(model_dir)
    nlp.max_length = 50
    texts = ["short one", "x " * 100, "another short one"]
    src = _write_csv(tmp_path / "in.csv", [["text"], *[[t] for t in texts]])
    summary = predict_file(nlp, src, tmp_path / "out.csv", scores=True)
    rows = _read_csv(tmp_path / "out.csv")
    assert [r["text"] for r in rows] == texts  # the cell is written whole
    assert summary.truncated == 1 and summary.empty == 0
    cut = nlp(texts[1][:50])
    assert float(rows[1]["emotion/joy"]) == cut.cats["emotion/joy"]


def test_text_longer_than_the_csv_cell_limit(tmp_path: Path, model_dir: Path) -> None:
    # Python's csv module refuses cells over 128 KiB unless told otherwise.
    long = "what a great fun day " * 12_000  # 252,000 characters
    src = _write_csv(tmp_path / "in.csv", [["text"], ["ok"], [long], ["so sad"]])
    summary = predict_file(model_dir, src, tmp_path / "out.csv")
    rows = _read_csv(tmp_path / "out.csv")
    assert [len(r["text"]) for r in rows] == [2, len(long), 6]
    assert summary.truncated == 0 and all(r["sentiment"] for r in rows)


def test_headerless_tsv_with_columns_and_no_quoting(tmp_path: Path, model_dir: Path) -> None:
    # A GoEmotions-like file: no header, and a quote that is just a character.
    src = tmp_path / "in.tsv"
    src.write_text('"quoted" start\t1\ta\nplain\t2\tb\n', encoding="utf8")
    predict_file(
        model_dir, src, tmp_path / "out.csv", columns=["text", "label", "id"], quoting=False
    )
    rows = _read_csv(tmp_path / "out.csv")
    assert [r["text"] for r in rows] == ['"quoted" start', "plain"]
    assert [r["id"] for r in rows] == ["a", "b"]


def test_gzip_input(tmp_path: Path, model_dir: Path) -> None:
    src = tmp_path / "in.csv.gz"
    with gzip.open(src, "wt", encoding="utf8", newline="") as file:
        csv.writer(file).writerows([["text"], ["i love this movie"], ["so sad"]])
    summary = predict_file(model_dir, src, tmp_path / "out.csv")
    assert summary.input_format == "csv" and summary.output_format == "csv"
    assert len(_read_csv(tmp_path / "out.csv")) == 2


def test_empty_input_writes_header(tmp_path: Path, model_dir: Path) -> None:
    src = _write_csv(tmp_path / "in.csv", [["id", "text"]])
    summary = predict_file(model_dir, src, tmp_path / "out.csv")
    assert summary.rows == 0
    assert (tmp_path / "out.csv").read_text() == "id,text,sentiment,emotion\n"


@pytest.mark.parametrize("name,content", [("in.csv", "id,text\n"), ("in.jsonl", "\n")])
def test_cli_warns_about_an_input_without_rows(
    tmp_path: Path, model_dir: Path, name: str, content: str
) -> None:
    src = tmp_path / name
    src.write_text(content, encoding="utf8")
    out = tmp_path / f"out{src.suffix}"
    result = CliRunner().invoke(app, ["predict", str(model_dir), str(src), str(out)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"No rows were read from {src}" in text
    assert out.exists()  # the empty output, as before
    full = tmp_path / "full.csv"
    full.write_text("text\nhello\n", encoding="utf8")
    result = CliRunner().invoke(
        app, ["predict", str(model_dir), str(full), str(tmp_path / "f.csv")]
    )
    assert result.exit_code == 0 and "No rows" not in result.output


# -- resume -------------------------------------------------------------------------------


class Interrupt(Exception):
    pass


def _stop_after(n_chunks: int) -> Any:
    def on_chunk(chunk: Chunk) -> None:
        if chunk.index + 1 == n_chunks:
            raise Interrupt(f"stopped after chunk {chunk.index}")

    return on_chunk


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_resume_after_interruption(tmp_path: Path, model_dir: Path, fmt: str) -> None:
    texts = [f"{TRICKY[i % len(TRICKY)]} {i}" for i in range(20)]
    src = _write_csv(
        tmp_path / "in.csv", [["id", "text"], *[[str(i), t] for i, t in enumerate(texts)]]
    )
    clean = tmp_path / f"clean.{fmt}"
    predict_file(model_dir, src, clean, scores=True, chunk_size=3)

    out = tmp_path / f"out.{fmt}"
    with pytest.raises(Interrupt):
        predict_file(model_dir, src, out, scores=True, chunk_size=3, on_chunk=_stop_after(3))
    progress = json.loads(progress_path(out).read_text())
    assert progress["rows_done"] == 9 and progress["chunks_done"] == 3
    # A chunk that was being written when the run died: half a row after the last commit.
    if fmt == "parquet":
        (parts_dir(out) / "part-000003.parquet").write_bytes(b"PAR1 half a file")
    else:
        assert not out.exists()  # under its final name only once complete
        with open(partial_path(out), "a", encoding="utf8") as file:
            file.write('9,"what a great fun day 9')
    with pytest.raises(PredictError, match="scores"):
        predict_file(model_dir, src, out, scores=False, chunk_size=3)  # other settings
    summary = predict_file(model_dir, src, out, scores=True, chunk_size=3)
    assert summary.resumed_rows == 9 and summary.rows_this_run == 11 and summary.rows == 20
    assert not progress_path(out).exists() and not parts_dir(out).exists()
    if fmt == "parquet":
        assert _read_parquet(out) == _read_parquet(clean)
    else:
        assert out.read_bytes() == clean.read_bytes()


def test_resume_when_the_pipeline_fails_mid_chunk(tmp_path: Path, model_dir: Path) -> None:
    texts = [f"text number {i}" for i in range(10)]
    src = _write_csv(tmp_path / "in.csv", [["text"], *[[t] for t in texts]])
    nlp = spacy.load(model_dir)

    @Language.component("fail_on_seven")
    def fail_on_seven(doc: Any) -> Any:
        if doc.text == "text number 7":
            raise RuntimeError("the machine went away")
        return doc

    nlp.add_pipe("fail_on_seven", first=True)
    with pytest.raises(RuntimeError, match="went away"):
        predict_file(nlp, src, tmp_path / "out.csv", chunk_size=4, batch_size=2)
    assert json.loads(progress_path(tmp_path / "out.csv").read_text())["rows_done"] == 4
    nlp.remove_pipe("fail_on_seven")
    summary = predict_file(nlp, src, tmp_path / "out.csv", chunk_size=4)
    assert summary.resumed_rows == 4
    assert [r["text"] for r in _read_csv(tmp_path / "out.csv")] == texts


def test_changed_input_is_not_resumed(tmp_path: Path, model_dir: Path) -> None:
    src = _write_csv(tmp_path / "in.csv", [["text"], *[[f"t {i}"] for i in range(6)]])
    out = tmp_path / "out.csv"
    with pytest.raises(Interrupt):
        predict_file(model_dir, src, out, chunk_size=2, on_chunk=_stop_after(1))
    _write_csv(src, [["text"], *[[f"other {i}"] for i in range(7)]])
    with pytest.raises(PredictError, match="changed"):
        predict_file(model_dir, src, out, chunk_size=2)
    summary = predict_file(model_dir, src, out, chunk_size=2, overwrite=True)
    assert summary.resumed_rows == 0 and summary.rows == 7


# -- errors -------------------------------------------------------------------------------


def test_existing_output_needs_overwrite(tmp_path: Path, model_dir: Path) -> None:
    src = _tricky_csv(tmp_path / "in.csv")
    (tmp_path / "out.csv").write_text("precious\n")
    with pytest.raises(PredictError, match=r"already exists.*--force"):
        predict_file(model_dir, src, tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_text() == "precious\n"
    predict_file(model_dir, src, tmp_path / "out.csv", overwrite=True)
    assert len(_read_csv(tmp_path / "out.csv")) == len(TRICKY)


def test_column_clash_needs_prefix(tmp_path: Path, model_dir: Path) -> None:
    src = _write_csv(tmp_path / "in.csv", [["text", "sentiment"], ["i love it", "positive"]])
    with pytest.raises(PredictError, match=r"\['sentiment'\].*--prefix"):
        predict_file(model_dir, src, tmp_path / "out.csv")
    predict_file(model_dir, src, tmp_path / "out.csv", prefix="pred_", overwrite=True)
    row = _read_csv(tmp_path / "out.csv")[0]
    assert row["sentiment"] == "positive" and row["pred_sentiment"] in (
        "negative",
        "neutral",
        "positive",
    )


def test_clear_errors(tmp_path: Path, model_dir: Path) -> None:
    src = _write_csv(tmp_path / "in.csv", [["id", "body"], ["1", "hello"]])
    with pytest.raises(PredictError, match=r"no column 'text'.*\['id', 'body'\]"):
        predict_file(model_dir, src, tmp_path / "a.csv")
    with pytest.raises(PredictError, match="no component 'nope'"):
        predict_file(model_dir, src, tmp_path / "b.csv", text_column="body", component="nope")
    (tmp_path / "in.txt").write_text("text\nhello\n", encoding="utf8")
    with pytest.raises(PredictError, match=r"in\.txt: cannot tell the input format"):
        predict_file(model_dir, tmp_path / "in.txt", tmp_path / "c.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text('text\n"fine"\nnot,fine\n', encoding="utf8")
    with pytest.raises(PredictError, match=r"bad.csv:3: the row has 2 fields"):
        predict_file(model_dir, bad, tmp_path / "d.csv")
    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_text('{"text": "ok"}\n{"text": ["a list"]}\n', encoding="utf8")
    with pytest.raises(PredictError, match=r"bad.jsonl:2: column 'text': the text must be a str"):
        predict_file(model_dir, jsonl, tmp_path / "e.jsonl")
    # Failures before the first chunk was saved leave nothing to resume.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bad.csv",
        "bad.jsonl",
        "in.csv",
        "in.txt",
    ]


def test_typo_in_jsonl_text_column_can_be_fixed(tmp_path: Path, model_dir: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"body": "i love it"}\n{"body": "so sad"}\n', encoding="utf8")
    with pytest.raises(PredictError, match=r"no row among the first 2 has the text column"):
        predict_file(model_dir, src, tmp_path / "out.jsonl")
    assert not progress_path(tmp_path / "out.jsonl").exists()
    summary = predict_file(model_dir, src, tmp_path / "out.jsonl", text_column="body")
    assert summary.rows == 2 and summary.empty == 0


# -- n_process ----------------------------------------------------------------------------


def test_n_process_2_gives_the_same_output(tmp_path: Path, model_dir: Path) -> None:
    texts = [f"{TRICKY[i % len(TRICKY)]} {i}" for i in range(40)]
    src = _write_csv(tmp_path / "in.csv", [["text"], *[[t] for t in texts]])
    predict_file(model_dir, src, tmp_path / "one.csv", scores=True, chunk_size=7, batch_size=4)
    predict_file(
        model_dir, src, tmp_path / "two.csv", scores=True, chunk_size=7, batch_size=4, n_process=2
    )
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "two.csv").read_bytes()


def test_n_process_2_transformer(
    tmp_path: Path, tiny_bert: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """transformer + mtl_textcat with 2 processes: the same output as one. The pipeline has
    run torch on several threads here (training), which hangs forked workers unless
    predict_file runs them single-threaded."""
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    nlp = _train(make_nlp(GROUPS, bert=tiny_bert), steps=2)
    texts = ["i love this movie", "", "so sad", "the food was ok", "what a great fun day"] * 3
    src = _write_csv(tmp_path / "in.csv", [["text"], *[[t] for t in texts]])
    kwargs: Dict[str, Any] = {"scores": True, "chunk_size": 4, "batch_size": 2}
    predict_file(nlp, src, tmp_path / "one.jsonl", **kwargs)
    predict_file(nlp, src, tmp_path / "two.jsonl", n_process=2, **kwargs)
    one, two = _read_jsonl(tmp_path / "one.jsonl"), _read_jsonl(tmp_path / "two.jsonl")
    assert len(two) == len(texts)
    for a, b in zip(one, two):
        assert (b["sentiment"], b["emotion"]) == (a["sentiment"], a["emotion"])
        if a["scores"] is None:
            assert b["scores"] is None
        else:
            for group, scores in a["scores"].items():
                assert b["scores"][group] == pytest.approx(scores)


def test_n_process_2_keeps_doc_extensions(tiny_bert: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Docs from worker processes come back as bytes: doc.cats and the doc._.mtl_*
    extensions (in doc.user_data) survive it."""
    torch = pytest.importorskip("torch")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    nlp = _train(make_nlp(GROUPS, bert=tiny_bert), steps=2)
    texts = ["i love this movie", "so sad", "the food was ok", "what a great fun day"] * 2
    one = list(nlp.pipe(texts, batch_size=2))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see test_n_process_2_transformer
    try:
        two = list(nlp.pipe(texts, batch_size=2, n_process=2))
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(one, two):
        assert b._.mtl_labels == a._.mtl_labels
        for group, scores in a._.mtl_scores.items():
            assert b._.mtl_scores[group] == pytest.approx(scores)
        assert b.cats == pytest.approx(a.cats)


def test_sort_by_length_gives_the_same_rows(
    tmp_path: Path, tiny_bert: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sorted is the default; --no-sort-by-length gives the same rows in the same order."""
    nlp = _train(make_nlp(GROUPS, bert=tiny_bert), steps=2)
    texts = [TRICKY[(i * 5) % len(TRICKY)][: 10 + 37 * i] for i in range(12)]
    src = _write_csv(tmp_path / "in.csv", [["text"], *[[t] for t in texts]])
    kwargs: Dict[str, Any] = {"scores": True, "chunk_size": 5, "batch_size": 3}
    predict_file(nlp, src, tmp_path / "plain.jsonl", sort_by_length=False, **kwargs)
    calls = _count_sorted_runs(monkeypatch)
    predict_file(nlp, src, tmp_path / "sorted.jsonl", **kwargs)
    assert len(calls) == 3  # the default sorted each of the 3 chunks (iter_by_length)
    plain, ordered = _read_jsonl(tmp_path / "plain.jsonl"), _read_jsonl(tmp_path / "sorted.jsonl")
    assert [r["text"] for r in ordered] == texts
    for a, b in zip(plain, ordered):
        assert (b["sentiment"], b["emotion"]) == (a["sentiment"], a["emotion"])
        for group, scores in (a["scores"] or {}).items():
            assert b["scores"][group] == pytest.approx(scores, abs=1e-5)
    with pytest.raises(PredictError, match="one process"):
        predict_file(nlp, src, tmp_path / "x.csv", sort_by_length=True, n_process=2)
    assert not (tmp_path / "x.csv").exists()


def _count_sorted_runs(monkeypatch: pytest.MonkeyPatch) -> List[int]:
    """Record the number of texts of each spacy_mtl.trf.batching.iter_by_length call."""
    import spacy_mtl.trf.batching as batching

    calls: List[int] = []
    real = batching.iter_by_length

    def spy(nlp: Language, texts: Any, **kwargs: Any) -> Any:
        texts = list(texts)
        calls.append(len(texts))
        return real(nlp, texts, **kwargs)

    monkeypatch.setattr(batching, "iter_by_length", spy)
    return calls


def test_sorting_transformer_sorts_in_nlp_pipe(
    tmp_path: Path, tiny_bert: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an mtl_transformer, predict leaves the sorting to nlp.pipe (and so allows
    n_process > 1); --no-sort-by-length turns the transformer's sorting off for the run."""
    from spacy_mtl.trf.transformer import SortedTransformer

    nlp = spacy.blank("en")
    nlp.add_pipe("mtl_transformer", name="transformer", config={"model": {"name": str(tiny_bert)}})
    nlp.add_pipe("mtl_textcat", config={"groups": GROUPS})
    nlp.initialize(lambda: make_examples(nlp))
    transformer = nlp.get_pipe("transformer")
    assert isinstance(transformer, SortedTransformer)
    texts = [TRICKY[(i * 3) % len(TRICKY)][: 5 + 29 * i] for i in range(9)]
    src = _write_csv(tmp_path / "in.csv", [["text"], *[[t] for t in texts]])
    kwargs: Dict[str, Any] = {"scores": True, "chunk_size": 4, "batch_size": 2}
    calls = _count_sorted_runs(monkeypatch)
    seen: List[bool] = []
    real_pipe = transformer.pipe

    def spy(stream: Any, **kw: Any) -> Any:
        seen.append(transformer.cfg["sort_by_length"])
        return real_pipe(stream, **kw)

    transformer.pipe = spy  # type: ignore[method-assign]
    predict_file(nlp, src, tmp_path / "sorted.jsonl", **kwargs)
    predict_file(nlp, src, tmp_path / "plain.jsonl", sort_by_length=False, **kwargs)
    assert calls == [] and seen == [True, False]
    assert transformer.cfg["sort_by_length"] is True  # restored after the unsorted run
    plain, ordered = _read_jsonl(tmp_path / "plain.jsonl"), _read_jsonl(tmp_path / "sorted.jsonl")
    assert [r["text"] for r in ordered] == texts
    for a, b in zip(plain, ordered):
        for group, scores in (a["scores"] or {}).items():
            assert b["scores"][group] == pytest.approx(scores, abs=1e-5)


# -- CLI ----------------------------------------------------------------------------------


def test_cli_predict(tmp_path: Path, model_dir: Path) -> None:
    src = _tricky_csv(tmp_path / "in.csv")
    out = tmp_path / "out.jsonl"
    args = ["predict", str(model_dir), str(src), str(out), "--scores", "--chunk-size", "4"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"rows written {len(TRICKY)}" in text
    assert "empty or missing text (empty prediction) 2" in text
    rows = _read_jsonl(out)
    assert len(rows) == len(TRICKY) and rows[0]["scores"] is not None
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 1
    assert "--force" in " ".join(again.output.split())


def test_cli_predict_headerless_tsv(tmp_path: Path, model_dir: Path) -> None:
    src = tmp_path / "in.tsv"
    src.write_text("i love it\t1\nso sad\t2\n", encoding="utf8")
    out = tmp_path / "out.csv"
    args = ["predict", str(model_dir), str(src), str(out), "--columns", "text,label"]
    args += ["--output-format", "csv"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert [r["label"] for r in _read_csv(out)] == ["1", "2"]
