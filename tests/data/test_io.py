"""`spacy_mtl.data.io`: format names, compression and the csv reader shared by convert and
predict."""

import bz2
import gzip
import lzma
import os
from pathlib import Path
from typing import Callable, Optional

import pytest

from spacy_mtl.data.io import (
    base_name,
    compression,
    csv_reader,
    decompressed,
    format_from_name,
    input_clash,
    open_text,
    same_file,
    strip_compression,
)


@pytest.mark.parametrize(
    "name,fmt",
    [
        ("a.csv", "csv"),
        ("a.TSV", "tsv"),
        ("a.tab.gz", "tsv"),
        ("dir.v2/a.jsonl.bz2", "jsonl"),
        ("a.ndjson.XZ", "jsonl"),
        ("a.pq", "parquet"),
        ("a.txt", "lines"),
        ("a.csv.zip", None),
        ("a.gz", None),
        (".csv", None),
        ("a", None),
    ],
)
def test_format_from_name(name: str, fmt: Optional[str]) -> None:
    assert format_from_name(name) == fmt


def test_compression_and_names() -> None:
    assert compression("a.csv.GZ") == ".gz"
    assert compression("a.csv") is None
    assert strip_compression("a.csv.xz") == "a.csv"
    assert strip_compression("a.csv") == "a.csv"
    assert base_name(Path("train.tsv.gz")) == "train"
    assert base_name(Path("spec.json")) == "spec"
    assert base_name(Path("notes.md")) == "notes.md"
    # A name that is only an extension keeps it: it would be empty otherwise.
    assert base_name(Path(".csv")) == ".csv"


@pytest.mark.parametrize(
    "suffix,compress",
    [("", lambda b: b), (".gz", gzip.compress), (".bz2", bz2.compress), (".xz", lzma.compress)],
)
def test_decompressed_and_open_text(
    tmp_path: Path, suffix: str, compress: Callable[[bytes], bytes]
) -> None:
    path = tmp_path / f"a.csv{suffix}"
    path.write_bytes(compress("\ufeffa,b\r\né,2\n".encode()))
    with open(path, "rb") as raw:
        stream = decompressed(raw, path)
        assert stream.read() == "\ufeffa,b\r\né,2\n".encode()
        assert (stream is raw) == (suffix == "")
        stream.close()
        # A decompressor leaves the caller's file open: it reads the bytes consumed on
        # disk from it.
        assert raw.closed == (suffix == "")
    with open_text(path) as file:
        # The BOM is dropped; line ends are kept for csv.
        assert file.read() == "a,b\r\né,2\n"


def test_csv_reader_reads_cells_over_the_default_limit() -> None:
    big = "x" * 200_000  # Python's csv refuses cells over 128 KiB by default
    rows = list(csv_reader([f'"{big}"\tb\n'], "tsv"))
    assert rows == [[big, "b"]]
    assert list(csv_reader(['"a;b";c\n'], "csv", sep=";", quoting=False)) == [['"a', 'b"', "c"]]


def test_same_file_and_input_clash(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("text\nx\n")
    (tmp_path / "sym.csv").symlink_to(src)
    os.link(src, tmp_path / "hard.csv")
    (tmp_path / "sub").mkdir()
    assert same_file(src, tmp_path / "sub" / ".." / "in.csv")
    assert same_file(tmp_path / "sym.csv", src) and same_file(tmp_path / "hard.csv", src)
    assert not same_file(tmp_path / "other.csv", src)  # does not exist
    assert not same_file(tmp_path / "sub", src)
    assert input_clash(tmp_path / "hard.csv", [tmp_path / "a.csv", src]) == src
    assert input_clash(tmp_path / "out.csv", [src]) is None
