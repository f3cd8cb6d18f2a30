"""Property-based tests (hypothesis) of `spacy_mtl.data.convert`: random files and specs.

Convert: CSV, TSV and JSONL files of good and bad rows mixed (unknown and NaN labels,
empty texts, lone surrogates, quotes, separators and line breaks inside cells, odd Unicode,
blank lines, rows of the wrong shape). An oracle knows, for every row, the physical line it
starts on and either its text, cats and id or that it is bad, and checks that

* rows read = docs written + rows rejected, and rows read is the number of rows written;
* every good row comes out exactly (text, doc.cats, id; read back with DocBin), in order;
* every bad row is in the rejects file on its physical line (and names its file);
* with --on-error fail, the first bad row is the error and nothing is written;
* nothing but a ConvertError escapes, and no temporary file is left behind.

Specs: random mutations of the shipped specs (assets/specs) give a SpecError or a spec
that works (its schema builds, a row parses or is a row error), never another exception.

Settings are derandomized (the same examples every run) and small enough for the fast
suite; the counts are in the report of issue 15.
"""

import contextlib
import csv
import io
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest
import spacy
import srsly
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spacy.language import Language
from spacy.tokens import DocBin

from spacy_mtl.data.convert import (
    ConvertSpec,
    RowError,
    SpecError,
    convert_files,
    load_spec,
)
from spacy_mtl.data.convert import run as run_module
from spacy_mtl.data.convert.exceptions import CellError
from spacy_mtl.data.convert.rows import RowParser

SPECS = Path(__file__).parents[2] / "assets" / "specs"
FUZZ = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SPEC: Dict[str, Any] = {
    "id": "id",
    "missing_values": ["?"],
    "groups": {
        "s": {"kind": "multiclass", "column": "label", "labels": ["neg", "pos"]},
        "t": {"kind": "multilabel", "column": "tags", "delimiter": "|", "labels": ["a", "b", "c"]},
    },
}
COLUMNS = ("text", "label", "tags", "id")
S_LOOKUP = {"neg": "neg", "pos": "pos", "0": "neg", "1": "pos", "0.0": "neg", "1.0": "pos"}
T_LOOKUP = {"a": "a", "b": "b", "c": "c", "0": "a", "1": "b", "2": "c", "2.0": "c"}


@pytest.fixture(scope="module")
def nlp() -> Language:
    return spacy.blank("en")


# ---------------------------------------------------------------------------------------
# The oracle: what a row's cells mean under SPEC

# Lone surrogates that are continuation bytes under surrogateescape (0x80-0xBF): in a
# UTF-8 file they are always invalid bytes, never part of a valid character.
SURROGATES = st.integers(0xDC80, 0xDCBF).map(chr)
SPECIAL = ["\n", "\r", '"', ",", "\t", " ", "\x00", "\u2028", "\x85", "\ufeff", "|"]
PLAIN_TEXT = st.text(
    alphabet=st.one_of(st.characters(blacklist_categories=["Cs"]), st.sampled_from(SPECIAL)),
    max_size=25,
)


def texts(surrogates: bool) -> st.SearchStrategy[str]:
    if not surrogates:
        return PLAIN_TEXT
    with_one = st.tuples(PLAIN_TEXT, SURROGATES, PLAIN_TEXT).map("".join)
    return st.one_of(PLAIN_TEXT, with_one)


def has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, list):
        return any(has_surrogate(v) for v in value)
    return False


LABEL_CELLS = ["neg", "pos", "0", "1", " pos ", "1.0", "", "?", "  ", "maybe", "2", "NaN", "nan"]
TAG_CELLS = ["", "?", "a", "b|c", " a | c ", "0|2", "|", "a|zzz", "3", "NaN", "2.0"]
JSON_LABELS: List[Any] = [
    *LABEL_CELLS,
    0,
    1,
    1.0,
    None,
    float("nan"),
    2,
    True,
    ["pos"],
    ["neg", "pos"],
    [],
    {"x": 1},
]
JSON_TAGS: List[Any] = [*TAG_CELLS, None, [], ["a", " b "], ["c", 0], ["zzz"], [None], 1, 5]


def _group_cats(
    group: str, value: Any, lookup: Dict[str, str], labels: List[str], multiclass: bool
) -> Optional[Dict[str, float]]:
    """doc.cats of one group for a cell value; {} when missing; None when the row is bad."""
    if value is None:
        return {}
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (bool, dict)):
        items: List[Any] = [str(value).lower()] if isinstance(value, bool) else [None]
    elif isinstance(value, list):
        items = list(value)
    else:
        if isinstance(value, str):
            cell = value.strip()
            if cell in ("", "?"):
                return {}
            items = [p.strip() for p in cell.split("|")] if not multiclass else [cell]
            items = [p for p in items if p]
            if not items:
                return {}
        else:
            items = [value]
    found = []
    for item in items:
        if item is None or isinstance(item, (list, dict)):
            return None
        if isinstance(item, float):
            item = str(int(item)) if item.is_integer() else repr(item)
        key = str(item).strip()
        if key not in lookup:
            return None
        found.append(lookup[key])
    found = list(dict.fromkeys(found))
    if multiclass and len(found) != 1:
        return None
    return {f"{group}/{label}": 1.0 if label in found else 0.0 for label in labels}


@dataclass
class Row:
    """One generated row: its cells (None for a raw line) and what convert should do."""

    cells: Optional[Dict[str, Any]]
    raw: Optional[str] = None  # a line written as is (bad by construction)
    line: int = 0  # physical line where it starts, set when the file is written
    reject_line: int = 0  # physical line its error names
    expected: Optional[Tuple[str, Dict[str, float], Optional[str]]] = field(default=None)

    def judge(self) -> None:
        """Fill `expected` (text, cats, id) for a good row; leave None for a bad one."""
        if self.cells is None:
            return
        cells = self.cells
        text, doc_id = cells.get("text"), cells.get("id")
        if not isinstance(text, str) or not text.strip() or has_surrogate(text):
            return
        if has_surrogate(doc_id) or any(has_surrogate(cells.get(c)) for c in ("label", "tags")):
            return
        if any(c not in cells for c in COLUMNS):
            return
        s = _group_cats("s", cells["label"], S_LOOKUP, ["neg", "pos"], True)
        t = _group_cats("t", cells["tags"], T_LOOKUP, ["a", "b", "c"], False)
        if s is None or t is None:
            return
        if doc_id is not None and not isinstance(doc_id, str):
            doc_id = json.dumps(doc_id)
        self.expected = (text, {**s, **t}, doc_id or None)


def mostly(good: st.SearchStrategy[Any], anything: st.SearchStrategy[Any]) -> Any:
    """Good values four times in five: a row is good about half the time. (one_of with a
    strategy listed four times draws it no more often than once.)"""
    return st.integers(0, 4).flatmap(lambda i: anything if i == 0 else good)


def rows_strategy(fmt: str) -> st.SearchStrategy[List[Row]]:
    json_fmt = fmt == "jsonl"
    label = mostly(
        st.sampled_from(["neg", "pos", "0", "1", " pos ", "1.0", "", "?"]),
        st.sampled_from(JSON_LABELS if json_fmt else LABEL_CELLS),
    )
    tags = mostly(
        st.sampled_from(["", "?", "a", "b|c", " a | c ", "0|2", "|", "2.0"]),
        st.sampled_from(JSON_TAGS if json_fmt else TAG_CELLS),
    )
    ids = mostly(st.one_of(st.just(""), st.text("xyz019", min_size=1, max_size=4)), texts(True))
    text = mostly(
        st.tuples(st.sampled_from(["w", " é", "x\n"]), PLAIN_TEXT).map("".join), texts(True)
    )
    cells = st.fixed_dictionaries({"text": text, "label": label, "tags": tags, "id": ids}).map(
        lambda c: Row(cells=c)
    )
    if json_fmt:
        raw = st.sampled_from(["{bad", "[1, 2]", '"text"', "{}", '{"text": "no labels"}'])
    else:
        sep = "," if fmt == "csv" else "\t"
        raw = st.sampled_from([f"x{sep}pos", f"x{sep}pos{sep}a{sep}1{sep}extra", "   "])
    row = mostly(cells, raw.map(lambda r: Row(cells=None, raw=r)))
    return st.lists(row, max_size=12)


def write_rows(path: Path, fmt: str, rows: List[Row], blank: List[bool], encoding: str) -> None:
    """Write the rows (with a blank line after those flagged) and note their lines."""
    buf = io.StringIO()
    if fmt == "jsonl":
        for row, gap in zip(rows, blank):
            row.line = buf.getvalue().count("\n") + 1
            row.reject_line = row.line
            if row.raw is not None:
                buf.write(row.raw + "\n")
            else:
                data = dict(row.cells or {})
                ascii_only = has_surrogate(list(data.values())) or row.line % 2 == 0
                buf.write(json.dumps(data, ensure_ascii=ascii_only) + "\n")
            if gap:
                buf.write("\n" if row.line % 3 else "  \t\n")  # blank or whitespace: no row
        path.write_bytes(buf.getvalue().encode("utf-8"))
        return
    writer = csv.writer(buf, delimiter="," if fmt == "csv" else "\t")
    writer.writerow(COLUMNS)
    for row, gap in zip(rows, blank):
        before = buf.getvalue()
        row.line = before.count("\n") + 1
        if row.raw is not None:
            buf.write(row.raw + "\r\n")
        else:
            assert row.cells is not None
            writer.writerow([row.cells[c] for c in COLUMNS])
        written = buf.getvalue()[len(before) :]
        row.reject_line = row.line
        if encoding == "utf-8":
            # A lone surrogate becomes an invalid byte: the error names its own line.
            bad = [i for i, c in enumerate(written) if 0xD800 <= ord(c) <= 0xDFFF]
            if bad:
                row.reject_line = row.line + written[: bad[0]].count("\n")
        if gap:
            buf.write("\r\n")  # a blank line: not a row
    errors = "surrogateescape" if encoding == "utf-8" else "strict"
    path.write_bytes(buf.getvalue().encode(encoding, errors=errors))


def no_backslash(rows: List[Row]) -> bool:
    """raw_unicode_escape reads a backslash-u in the text as an escape: keep them out."""
    return not any("\\" in str(row.cells) for row in rows if row.cells is not None)


def check_convert(
    tmp_path: Path,
    nlp: Language,
    fmt: str,
    rows: List[Row],
    blank: List[bool],
    encoding: str,
    split: bool,
    on_error: str,
) -> None:
    folder = tmp_path / "fuzz"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    src = folder / f"data.{fmt}"
    write_rows(src, fmt, rows, blank, encoding)
    for row in rows:
        row.judge()
    spec = ConvertSpec.from_dict({**SPEC, "encoding": encoding})
    out = folder / "out"
    bad = [row for row in rows if row.expected is None]
    good = [row.expected for row in rows if row.expected is not None]
    fractions = "train=0.5,dev=0.5" if split else None
    if on_error == "fail" and bad:
        with pytest.raises(RowError) as info:
            convert_files([src], out, spec, split=fractions)
        assert (info.value.path, info.value.line) == (src, bad[0].reject_line)
        assert not out.exists()
        return
    summary = convert_files([src], out, spec, split=fractions, on_error=on_error)
    corpus = summary.corpora[0]
    assert corpus.rows_read == len(rows)
    assert (corpus.docs_written, corpus.rows_rejected) == (len(good), len(bad))
    docs = []
    for paths in corpus.files.values():
        for path in paths:
            docs.extend(DocBin(store_user_data=True).from_disk(path).get_docs(nlp.vocab))
    found = [(d.text, d.cats, d.user_data.get("id")) for d in docs]
    if split:
        assert sorted(map(repr, found)) == sorted(map(repr, good))
    else:
        assert found == good
    if summary.rejects is not None:
        with summary.rejects.open(newline="", encoding="utf-8") as f:
            rejected = list(csv.DictReader(f))
        assert [int(r["line"]) for r in rejected] == [row.reject_line for row in bad]
        assert {r["file"] for r in rejected} <= {str(src)}
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "debris left"


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl"])
def test_fuzz_convert_mixed_rows(
    tmp_path: Path, nlp: Language, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One blank English pipeline for every example (spacy.blank is what convert calls,
    # and it costs more than converting a dozen rows).
    monkeypatch.setattr(run_module, "_blank", lambda lang: nlp)
    counts = {"examples": 0, "rows": 0, "bad": 0}

    @FUZZ
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        rows = data.draw(rows_strategy(fmt), label="rows")
        blank = data.draw(st.lists(st.booleans(), min_size=len(rows), max_size=len(rows)))
        encoding = "utf-8"
        if fmt != "jsonl" and no_backslash(rows):
            encoding = data.draw(st.sampled_from(["utf-8", "raw_unicode_escape"]))
        split = data.draw(st.booleans(), label="split")
        on_error = data.draw(st.sampled_from(["skip", "skip", "fail"]), label="on_error")
        check_convert(tmp_path, nlp, fmt, rows, blank, encoding, split, on_error)
        counts["examples"] += 1
        counts["rows"] += len(rows)
        counts["bad"] += sum(row.expected is None for row in rows)

    run()
    assert counts["examples"] >= 20 and counts["bad"] > 10 and counts["rows"] > counts["bad"]


# ---------------------------------------------------------------------------------------
# Specs: mutations of the shipped specs


VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-3, 3),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=6),
        st.sampled_from(
            ["multiclass", "multilabel", "label", "text", "csv", "lines", "negative", "utf-8"]
        ),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.text(max_size=5), st.integers(0, 3)), inner, max_size=3),
    ),
    max_leaves=6,
)
KEYS = st.sampled_from(
    ["format", "text", "id", "columns", "header", "sep", "quoting", "encoding", "pattern",
     "labels_file", "labels_column", "missing_values", "groups", "kind", "column", "labels",
     "delimiter", "empty", "from", "mapping", "", "x\udfff"]
)  # fmt: skip


def mutate(data: Any, draw: Callable[..., Any]) -> Any:
    """`data` with one random change somewhere in its tree."""
    if isinstance(data, (dict, list)) and data and draw(st.integers(0, 3)) > 0:
        keys = list(data) if isinstance(data, dict) else list(range(len(data)))
        key = draw(st.sampled_from(keys))
        copy = dict(data) if isinstance(data, dict) else list(data)
        copy[key] = mutate(copy[key], draw)
        return copy
    op = draw(st.sampled_from(["replace", "delete", "add", "wrap", "stringify", "rename"]))
    if op == "replace":
        return draw(VALUES)
    if op == "wrap":
        return [data]
    if op == "stringify":
        return ",".join(map(str, data)) if isinstance(data, (list, dict)) else str(data)
    if isinstance(data, dict):
        copy = dict(data)
        if op == "delete" and copy:
            del copy[draw(st.sampled_from(list(copy)))]
        elif op == "rename" and copy:
            old = draw(st.sampled_from(list(copy)))
            copy[draw(KEYS)] = copy.pop(old)
        else:
            copy[draw(KEYS)] = draw(VALUES)
        return copy
    if isinstance(data, list) and data and op == "delete":
        return data[1:]
    return draw(VALUES)


def spec_works(spec: ConvertSpec) -> None:
    """A spec that loaded must be usable: schema, a parser, a row (parsed or a row error),
    doc.cats keys that can be stored (UTF-8)."""
    if spec.groups and spec.is_complete:
        assert spec.schema() is not None
    for name in [spec.text, *spec.input_columns, *spec.missing_values]:
        name.encode("utf-8")
    for group in spec.groups:
        for label in group.labels:
            f"{group.name}/{label}".encode()
    if not spec.is_complete:
        try:
            spec = spec.with_labels({g.name: ["x", "y"] for g in spec.groups if not g.labels})
        except SpecError:
            return  # what convert reports once labels are inferred
    parser = RowParser(spec)
    for value in ("1", "x", "", "NaN"):
        with contextlib.suppress(CellError):
            parser.parse({column: value for column in [spec.text, *spec.input_columns]})


def test_fuzz_spec_mutations() -> None:
    specs = {p.name: srsly.read_yaml(p) for p in sorted(SPECS.glob("*.yml"))}
    assert len(specs) >= 10
    outcome = {"ok": 0, "SpecError": 0}

    @settings(FUZZ, max_examples=300)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(specs)), label="spec")
        mutated: Any = specs[name]
        for _ in range(data.draw(st.integers(1, 3))):
            mutated = mutate(mutated, data.draw)
        try:
            spec = ConvertSpec.from_dict(mutated, source=name)
        except SpecError:
            outcome["SpecError"] += 1
            return
        spec_works(spec)
        outcome["ok"] += 1

    run()
    assert outcome["ok"] > 20 and outcome["SpecError"] > 100, outcome


def test_fuzz_spec_files_mangled(tmp_path: Path) -> None:
    """Character edits of the spec files (YAML, and as JSON): SpecError or a working spec."""
    texts = {p.name: p.read_text() for p in sorted(SPECS.glob("*.yml"))}
    for p in sorted(SPECS.glob("*.yml")):
        texts[p.stem + ".json"] = json.dumps(srsly.read_yaml(p), indent=1)
    outcome = {"ok": 0, "SpecError": 0}

    @settings(FUZZ, max_examples=200)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(texts)), label="file")
        text = texts[name]
        for _ in range(data.draw(st.integers(1, 4))):
            at = data.draw(st.integers(0, len(text)))
            cut = data.draw(st.integers(0, 8))
            insert = data.draw(
                st.one_of(st.text(max_size=4), st.sampled_from(list(':-[]{},"\n#&*!|>%@`\\')))
            )
            text = text[:at] + insert + text[at + cut :]
        path = tmp_path / name
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            spec = load_spec(path)
        except SpecError:
            outcome["SpecError"] += 1
            return
        spec_works(spec)
        outcome["ok"] += 1

    run()
    assert outcome["ok"] > 20 and outcome["SpecError"] > 20, outcome
