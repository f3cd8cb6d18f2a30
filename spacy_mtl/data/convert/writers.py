"""Writing convert's outputs: DocBin shards, the rejects CSV, and the final file names."""

import csv
import os
import re
import secrets
from pathlib import Path
from typing import List, Sequence

import srsly
from spacy.tokens import Doc, DocBin

from ...errors import Errors
from .exceptions import ConvertError, RowError

REJECT_FIELDS = ("file", "line", "column", "reason", "content")


class ShardWriter:
    """Writes docs as DocBins of at most `shard_size` docs into a (temporary) folder."""

    def __init__(self, folder: Path, shard_size: int, store_user_data: bool) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.shard_size = shard_size
        self.store_user_data = store_user_data
        # srsly.msgpack_dumps, which DocBin.add calls per doc for user_data, builds a new
        # Packer each time and that scans the installed entry points: ~0.3 ms a doc, more
        # than tokenizing. One packer per writer gives the same bytes (use_bin_type, as
        # srsly does), appended to DocBin.user_data the way DocBin.add would.
        self._packer = srsly.msgpack.Packer(use_bin_type=True) if store_user_data else None
        self.paths: List[Path] = []
        self.n_docs = 0
        self._bin = self._new_bin()

    def _new_bin(self) -> DocBin:
        # ORTH (and spaces) only: the docs come from the tokenizer alone, so other token
        # attributes would be zeros that cost space and time.
        return DocBin(attrs=["ORTH"], store_user_data=False)

    def add(self, doc: Doc) -> None:
        self._bin.add(doc)
        if self._packer is not None:
            self._bin.user_data.append(self._packer.pack(doc.user_data))
        self.n_docs += 1
        if len(self._bin) >= self.shard_size:
            self._flush()

    def _flush(self) -> None:
        path = self.folder / f"{len(self.paths):06d}.spacy"
        self._bin.store_user_data = self.store_user_data
        try:
            self._bin.to_disk(path)
        except ValueError as err:
            raise ConvertError(Errors.E228.format(path=path, n=len(self._bin))) from err
        self.paths.append(path)
        self._bin = self._new_bin()

    def close(self) -> List[Path]:
        # An empty corpus still gets one (empty) file, so a stale one is replaced.
        if len(self._bin) or not self.paths:
            self._flush()
        return self.paths


class Rejects:
    """The rejects CSV, written to a temporary file and renamed into place at the end."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Not mkstemp: its files are private (0600); this one should get the umask's mode
        # like any file the user writes.
        self.tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        self._file = open(self.tmp, "x", encoding="utf-8", newline="")  # noqa: SIM115
        self._writer = csv.writer(self._file)
        self._writer.writerow(REJECT_FIELDS)

    def write(self, error: RowError, content: str) -> None:
        column = error.column if error.column is not None else ""
        self._writer.writerow([str(error.path), error.line, column, error.reason, content])

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def commit(self) -> None:
        self.close()
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        self.close()
        self.tmp.unlink(missing_ok=True)


def final_paths(folder: Path, name: str, n: int) -> List[Path]:
    if n == 1:
        return [folder / f"{name}.spacy"]
    # Zero-padded to a fixed width: spaCy's Corpus reads files in sorted order, and that
    # must be input order.
    width = max(3, len(str(n - 1)))
    return [folder / f"{name}-{i:0{width}d}.spacy" for i in range(n)]


def stale_outputs(folder: Path, name: str, keep: Sequence[Path]) -> List[Path]:
    """Earlier outputs of `name` in `folder` that this run does not overwrite."""
    if not folder.is_dir():
        return []
    pattern = re.compile(rf"^{re.escape(name)}(-\d{{3,}})?\.spacy$")
    keep_names = {p.name for p in keep}
    return sorted(p for p in folder.iterdir() if pattern.match(p.name) and p.name not in keep_names)
