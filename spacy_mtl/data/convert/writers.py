"""Writing convert's outputs: DocBin shards, the rejects CSV, and the final file names."""

import contextlib
import csv
import hashlib
import os
import re
import secrets
import shutil
import socket
from pathlib import Path
from typing import List, Optional, Sequence

import srsly
from spacy.tokens import Doc, DocBin

from ...errors import Errors
from ..io import csv_safe_cell
from .exceptions import ConvertError, RowError

REJECT_FIELDS = ("file", "line", "column", "reason", "content")
# The most of a rejected row's text that the rejects file keeps (a 50 MB cell is not copied
# whole; `file` and `line` point at the full row).
REJECT_CONTENT_LIMIT = 10_000

# A run's temporary files (its folder of shards, its rejects file until the end) carry
# its PID and a tag of its host, so that a later run can tell the debris of a killed run
# (no such process on this host any more) from the files of a run still going.
DEBRIS_TAG = hashlib.blake2b(
    socket.gethostname().encode("utf-8", "surrogateescape"), digest_size=4
).hexdigest()
TEMP_DIR_PREFIX = ".spacy-mtl-convert-"
_OWNER = r"(?P<pid>\d{1,10})-(?P<host>[0-9a-f]{8})-[0-9a-f]{12}"
_DEBRIS_DIR = re.compile(rf"^{re.escape(TEMP_DIR_PREFIX)}{_OWNER}$")
_DEBRIS_FILE = re.compile(rf"^\..+\.{_OWNER}\.tmp$")
# Seconds of slack between a process's start time (/proc, 1/100 s and a whole-second boot
# time) and the time its files were made.
_CLOCK_SLACK = 5.0


def _run_token() -> str:
    return f"{os.getpid()}-{DEBRIS_TAG}-{secrets.token_hex(6)}"


def write_error(path: Path, what: str, err: OSError) -> ConvertError:
    """The one-line error for an OSError while writing `path` (e.g. a read-only folder,
    a full disk)."""
    cause = err.strerror or str(err) or type(err).__name__
    if err.filename is not None and Path(str(err.filename)) != path:
        cause = f"{cause} ({err.filename})"
    return ConvertError(Errors.E267.format(path=path, what=what, cause=cause))


def make_temp_dir(folder: Path) -> Path:
    """A new private folder in `folder` for this run's files, named for this process."""
    path = folder / f"{TEMP_DIR_PREFIX}{_run_token()}"
    try:
        path.mkdir(mode=0o700)
    except OSError as err:
        raise write_error(folder, "into the output folder", err) from err
    return path


def stale_debris(folder: Path) -> List[Path]:
    """Temporary files and folders in `folder` left by convert runs that were killed.

    Only names convert makes (`.spacy-mtl-convert-<pid>-<host>-<random>/`,
    `.<rejects>.<pid>-<host>-<random>.tmp`), of this host, whose process is gone, or
    whose PID now belongs to a process started after they were made. Anything else (a
    live run's files, another machine's, names from older versions) is left alone.
    """
    try:
        entries = list(folder.iterdir()) if folder.is_dir() else []
    except OSError:  # unreadable: this run fails (or not) on its own writes
        return []
    found: List[Path] = []
    for path in entries:
        match = _DEBRIS_DIR.match(path.name) or _DEBRIS_FILE.match(path.name)
        if match is None or match["host"] != DEBRIS_TAG:
            continue
        try:
            info = path.lstat()
        except OSError:
            continue
        is_dir = match.re is _DEBRIS_DIR
        if path.is_symlink() or path.is_dir() != is_dir:
            continue
        if _owner_gone(int(match["pid"]), info.st_mtime):
            found.append(path)
    return sorted(found)


def remove_stale_debris(folder: Path) -> List[Path]:
    """Remove `stale_debris(folder)`; return what was removed (errors are ignored)."""
    removed = []
    for path in stale_debris(folder):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        if not path.exists():
            removed.append(path)
    return removed


def _owner_gone(pid: int, made: float) -> bool:
    """Whether the process that made a file at time `made` has ended (this host)."""
    if os.name != "posix" or pid <= 0:
        return False  # os.kill(pid, 0) is no probe on Windows; pid 0 is a process group
    if pid != os.getpid():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except (OSError, OverflowError):
            pass  # PermissionError: alive, another user's
    started = _process_start(pid)
    # A process started after the file was made did not make it: its PID was reused.
    return started is not None and started > made + _CLOCK_SLACK


def _process_start(pid: int) -> Optional[float]:
    """A process's start time (seconds since the epoch) from Linux's /proc, else None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        # Fields after the command name (in parentheses, may hold spaces) start at the
        # 3rd; the start time since boot, in clock ticks, is the 22nd.
        ticks = int(stat[stat.rindex(")") + 2 :].split()[19])
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


class ShardWriter:
    """Writes docs as DocBins of at most `shard_size` docs into a (temporary) folder."""

    def __init__(self, folder: Path, shard_size: int, store_user_data: bool) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise write_error(folder, "a temporary folder", err) from err
        self.folder = folder
        self.shard_size = shard_size
        self.store_user_data = store_user_data
        # srsly.msgpack_dumps, which DocBin.add calls per doc for user_data, builds a new
        # Packer each time and that scans the installed entry points, which costs more than
        # tokenizing (docs/performance.md, section "convert: one msgpack packer per
        # writer"). One packer per writer gives the same bytes (use_bin_type, as srsly
        # does), appended to DocBin.user_data the way DocBin.add would.
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
        except OSError as err:  # a full disk, a quota
            raise write_error(path, "a corpus shard (temporary file)", err) from err
        self.paths.append(path)
        self._bin = self._new_bin()

    def close(self) -> List[Path]:
        # An empty corpus still gets one (empty) file, so a stale one is replaced.
        if len(self._bin) or not self.paths:
            self._flush()
        return self.paths


class Rejects:
    """The rejects CSV, written to a temporary file and renamed into place at the end. A
    cell that a spreadsheet would run as a formula gets a "'" before it (`csv_safe_cell`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Not mkstemp: its files are private (0600); this one should get the umask's mode
        # like any file the user writes.
        self.tmp = path.with_name(f".{path.name}.{_run_token()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # backslashreplace: a lone surrogate (a rejected row's content, a file name)
            # has no UTF-8 form; it is written as its escape, \udfff.
            self._file = open(  # noqa: SIM115
                self.tmp, "x", encoding="utf-8", errors="backslashreplace", newline=""
            )
            self._writer = csv.writer(self._file)
            self._writer.writerow(REJECT_FIELDS)
        except OSError as err:
            raise write_error(path, "the rejects file", err) from err

    def write(self, error: RowError, content: str) -> None:
        column = error.column if error.column is not None else ""
        # A DataFrame row's place is its index label.
        line = error.line if error.index is None else error.index[0]
        if len(content) > REJECT_CONTENT_LIMIT:
            where = f"{error.path}:{line}" if error.index is None else f"row {line!r}"
            content = (
                f"{content[:REJECT_CONTENT_LIMIT]}… [cut: {len(content):,} characters in "
                f"all; the whole row is at {where}]"
            )
        # The rejects are for reading in a spreadsheet, where a cell that starts with =,
        # +, -, @, a tab or a carriage return would run as a formula (CSV injection).
        cells = [str(error.path), line, column, error.reason, content]
        try:
            self._writer.writerow(
                [csv_safe_cell(cell) if isinstance(cell, str) else cell for cell in cells]
            )
        except OSError as err:
            raise write_error(self.path, "the rejects file", err) from err

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def commit(self) -> None:
        try:
            self.close()
            os.replace(self.tmp, self.path)
        except OSError as err:
            raise write_error(self.path, "the rejects file", err) from err

    def discard(self) -> None:
        """Remove the temporary file. Never raises: it runs while another error is on
        its way up (closing flushes, and that fails again on a full disk)."""
        with contextlib.suppress(OSError):
            self.close()
        with contextlib.suppress(OSError):
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
