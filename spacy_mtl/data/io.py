"""File formats and compression, shared by `convert` and `predict` (local and distributed).

A data file's format is told by its name: the last suffix after an optional compression
suffix (.gz, .bz2, .xz). Each workflow accepts its own subset of these formats (convert
reads one-text-per-line files, predict reads Parquet) and words its own error when a name
names none of them.
"""

import bz2
import codecs
import contextlib
import csv
import errno
import gzip
import json
import lzma
import math
import os
import re
import stat
import sys
from pathlib import Path
from typing import IO, Any, Callable, Dict, Iterable, List, Optional, Set, Tuple, Union, cast

PathLike = Union[str, Path]

# Data file extension → format name.
EXTENSIONS: Dict[str, str] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".txt": "lines",
}
# Compression suffix → opener. gzip.open, bz2.open and lzma.open take a file name or an
# open binary file, in text or binary mode, with the same arguments.
COMPRESSIONS: Dict[str, Callable[..., Any]] = {
    ".gz": gzip.open,
    ".bz2": bz2.open,
    ".xz": lzma.open,
}
# Cell separators of the delimited formats.
SEPARATORS = {"csv": ",", "tsv": "\t"}
# What a spreadsheet reads as a formula at the start of a cell (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe_cell(cell: str) -> str:
    """`cell` with a "'" before it if a spreadsheet would run it as a formula (it starts
    with one of FORMULA_STARTS): predict's --csv-safe output, convert's rejects file."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def compression(path: PathLike) -> Optional[str]:
    """The compression suffix of a file name (lower case), or None."""
    suffix = Path(str(path)).suffix.lower()
    return suffix if suffix in COMPRESSIONS else None


def strip_compression(name: str) -> str:
    """A file name without its compression suffix, if it has one."""
    suffix = compression(name)
    return name[: -len(suffix)] if suffix is not None else name


def format_from_name(path: PathLike) -> Optional[str]:
    """The format a file's name names (any of EXTENSIONS' values), or None.

    path (Union[str, Path]): The file; only its name is read.
    RETURNS (Optional[str]): e.g. 'csv' for 'data.csv.gz'.
    """
    name = strip_compression(Path(str(path)).name)
    return EXTENSIONS.get(Path(name).suffix.lower())


def base_name(path: Path) -> str:
    """The file name without a compression suffix and a known data extension
    (or .json): 'train.tsv.gz' → 'train'."""
    name = strip_compression(path.name)
    for suffix in (*EXTENSIONS, ".json"):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def decompressed(raw: IO[bytes], path: PathLike) -> IO[bytes]:
    """The bytes of an open file, decompressed when the name has a compression suffix.

    Closing the result does not close `raw`: the caller keeps it, e.g. to read how many
    bytes on disk were consumed (`raw.tell()`) for a progress bar.
    """
    suffix = compression(path)
    if suffix is None:
        return raw
    return cast(IO[bytes], COMPRESSIONS[suffix](raw, "rb"))


def open_text(path: Path, mode: str = "rt") -> IO[str]:
    """A text file, decompressed by its suffix, as UTF-8 (a BOM is dropped).

    newline="": csv handles line ends itself (quoted newlines).
    """
    suffix = compression(path)
    if suffix is not None:
        return cast(IO[str], COMPRESSIONS[suffix](path, mode, encoding="utf-8-sig", newline=""))
    return open(path, mode, encoding="utf-8-sig", newline="")


def csv_reader(
    lines: Iterable[str], fmt: str, *, sep: Optional[str] = None, quoting: bool = True
) -> Any:
    """A `csv.reader` over lines of a CSV or TSV file, with no limit on a cell's size.

    Python's csv refuses cells over 128 KiB by default; a long document is a row to read,
    not an error. That limit is process-wide (csv has no per-reader setting), so it is
    raised here, the one place spacy_mtl makes a csv reader for data files.

    lines (Iterable[str]): Lines with their line ends (a file opened with newline="").
    fmt (str): 'csv' or 'tsv': the default separator.
    sep (Optional[str]): A separator that overrides the format's.
    quoting (bool): Whether double quotes enclose cells (csv.QUOTE_MINIMAL), or are text.
    """
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    return csv.reader(
        lines,
        delimiter=sep or SEPARATORS[fmt],
        quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE,
    )


class LineDecodeError(ValueError):
    """A physical line of a text file is not valid UTF-8.

    path (Path): The file.
    line (int): The physical line (1-based).
    reason (str): What is wrong: the bytes and where they are in the line.
    """

    def __init__(self, path: PathLike, line: int, reason: str) -> None:
        self.path = Path(str(path))
        self.line = line
        self.reason = reason
        super().__init__(f"{path}:{line}: {reason}")


# A line may end in "\n", "\r\n" or a lone "\r" (as in a file opened with newline=""): split
# after a "\r" that is not followed by "\n".
_LONE_CR = re.compile(rb"(?<=\r)(?!\n)")


class TextLines:
    """The physical lines of a UTF-8 text file (decompressed by its suffix), decoded one at a
    time, so that a bad byte is reported at its own line rather than somewhere in a block.

    Iterating gives lines with their line ends, as a file opened with newline="" does (what
    `csv.reader` expects): a line ends at "\\n", "\\r\\n" or a lone "\\r". A UTF-8 BOM at the
    start is dropped.

    errors (str): "strict": a line that is not valid UTF-8 raises `LineDecodeError` (stop
        reading there); "replace": its bad bytes are decoded as U+FFFD and the number of
        the line is added to `replaced`.
    line_no (int): Physical lines read so far (the number of the last line given).
    replaced (List[int]): With errors="replace": the lines where bytes were replaced.
    """

    def __init__(self, path: PathLike, *, errors: str = "strict") -> None:
        self.path = Path(str(path))
        self.errors = errors
        self.line_no = 0
        self.replaced: List[int] = []
        self._raw: IO[bytes] = open(self.path, "rb")  # noqa: SIM115 (closed by close())
        self._file = decompressed(self._raw, self.path)
        self._pending: List[bytes] = []

    def __iter__(self) -> "TextLines":
        return self

    def __next__(self) -> str:
        if not self._pending:
            data = self._file.readline()
            if not data:
                raise StopIteration
            if self.line_no == 0 and data.startswith(codecs.BOM_UTF8):
                data = data[len(codecs.BOM_UTF8) :]
            n_cr = data.count(b"\r")
            if n_cr > 1 or (n_cr == 1 and not data.endswith((b"\r\n", b"\r"))):
                # Lone "\r"s: several physical lines (the last first: popped from the end).
                self._pending = [piece for piece in _LONE_CR.split(data) if piece][::-1]
            else:
                self._pending = [data]
        data = self._pending.pop()
        self.line_no += 1
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as err:
            if self.errors != "replace":
                self._pending = []
                raise LineDecodeError(self.path, self.line_no, _decode_reason(data, err)) from None
            self.replaced.append(self.line_no)
            return data.decode("utf-8", errors="replace")

    def close(self) -> None:
        if self._file is not self._raw:
            self._file.close()
        self._raw.close()


def _decode_reason(data: bytes, err: UnicodeDecodeError) -> str:
    bad = data[err.start : err.end]
    return (
        f"not valid UTF-8: {bad!r} at byte {err.start + 1} of the line ({err.reason}); "
        "re-save the file as UTF-8"
    )


# A lone surrogate ("\udfff" in JSON) is a str that cannot be written as UTF-8.
_SURROGATE = re.compile("[\ud800-\udfff]")
# A JSON escape of a surrogate: only lines with one can decode to a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def may_have_surrogates(json_text: str) -> bool:
    """Whether a line of JSON has a surrogate escape ("\\udfff"), the only way its decoded
    strings can hold a lone surrogate (a cheap test before `replace_surrogates`)."""
    return _SURROGATE_ESCAPE.search(json_text) is not None


def replace_surrogates(value: Any) -> Any:
    """`value` (a str, or lists and dicts of them, keys included) with each lone surrogate
    replaced by U+FFFD, as a decoder replaces a bad byte; other values are returned as
    they are. A valid pair ("\\ud83d\\ude00") is one character after JSON decoding and
    stays."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [replace_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {replace_surrogates(key): replace_surrogates(item) for key, item in value.items()}
    return value


class DuplicateKey(ValueError):
    """A key given twice in one JSON object (`unique_keys`); `key` is that key."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def unique_keys(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    """`object_pairs_hook` of a JSON decoder: the object as a dict, or `DuplicateKey` for a
    key given twice (a plain JSON reader keeps the last value and drops the first)."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: Set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return out


class FloatOverflow(ValueError):
    """A JSON number too large for a float (1e400): Python's json reads it as infinity,
    and the row would silently hold inf. `literal` is the number as written."""

    def __init__(self, literal: str) -> None:
        super().__init__(literal)
        self.literal = literal


def parse_json_float(literal: str) -> float:
    """`parse_float` of a JSON decoder: a number as float, `FloatOverflow` when it is too
    large for one (the literals Infinity and NaN go to `parse_constant`, not here)."""
    value = float(literal)
    if math.isinf(value):
        raise FloatOverflow(literal)
    return value


class _Overflowed:
    """Stands for a number too large for a float while `overflowing_key` looks for it."""


def _mark_overflow(literal: str) -> Any:
    value = float(literal)
    return _Overflowed() if math.isinf(value) else value


def overflowing_key(json_text: str) -> Optional[str]:
    """The top-level key of a JSON object whose value holds (at any depth) a number too
    large for a float, for the error that `parse_json_float` started; None when there is
    none to name (not an object, or the text does not parse to the end)."""
    try:
        value = json.loads(json_text, parse_float=_mark_overflow)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    for key, item in value.items():
        stack = [item]
        while stack:
            item = stack.pop()
            if isinstance(item, _Overflowed):
                return key
            if isinstance(item, dict):
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
    return None


def same_file(a: PathLike, b: PathLike) -> bool:
    """Whether two paths name one file: the same path once symbolic links and `..` are
    resolved, or the same file on disk (a hard link, or a link `resolve` cannot follow).

    A path that does not exist is the same as another only by its resolved name.
    """
    try:
        if Path(a).resolve() == Path(b).resolve():
            return True
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        pass
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # one does not exist / cannot be read
        return False


def input_clash(output: PathLike, inputs: Iterable[PathLike]) -> Optional[Path]:
    """The input that `output` is, or links to (symbolic or hard link); None if none.

    Every command that writes a file a user names (an output, a rejects file) checks it
    with this before it opens anything, so an input is never replaced by its own output.

    output (Union[str, Path]): A path the command will write (or replace).
    inputs (Iterable[Union[str, Path]]): Every file the command reads.
    RETURNS (Optional[Path]): The first input `output` names, or None.
    """
    for path in inputs:
        if same_file(output, path):
            return Path(path)
    return None


def not_a_file(path: PathLike) -> Optional[str]:
    """What `path` is when it is not a regular file one can read (following links), in
    words for an error message ("does not exist", "a folder", "a FIFO (named pipe)", ...);
    None for a regular file.

    Reading a FIFO or a device such as /dev/zero would block or never end, and a command
    that reads its input twice cannot read them at all; a symbolic link loop is not a
    missing file either.
    """
    path = Path(str(path))
    try:
        info = os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "a symbolic link loop (the link leads back to itself)"
        if path.is_symlink():
            return f"a symbolic link to {os.readlink(path)!r}, which does not exist"
        if err.errno == errno.ENOENT:
            return "does not exist"
        return f"cannot be read ({err.strerror or err})"
    except ValueError as err:  # an embedded NUL byte in the name
        return f"is not a usable file name ({err})"
    mode = info.st_mode
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def cannot_write(path: PathLike, *, folder: bool) -> Optional[str]:
    """Why `path` cannot be written (made, or replaced), in words; None if it can.

    Checked before a slow run, so that a read-only folder, a file where a folder goes or
    a folder where a file goes stops a command at once rather than after the work. The
    test writes a file (and removes it) in the nearest folder that exists, which is the
    only sure test: the permission bits do not tell a root user or a read-only mount.

    path (Union[str, Path]): The output: a file, or a folder (created with its parents).
    folder (bool): Whether the output is a folder.
    RETURNS (Optional[str]): e.g. "/data is a file, not a folder"; None when writable.
    """
    import tempfile

    path = Path(str(path))
    if path.exists() and path.is_dir() != folder:
        kinds = ("a file", "a folder") if folder else ("a folder", "a file")
        return f"{path} is {kinds[0]}, not {kinds[1]}"
    probe_in = path if folder and path.is_dir() else path.parent
    while not probe_in.exists():
        if probe_in.is_symlink():
            return f"{probe_in} is a symbolic link to a place that does not exist"
        probe_in = probe_in.parent
    if not probe_in.is_dir():
        return f"{probe_in} is a file, where a folder of {path} goes"
    try:
        fd, probe = tempfile.mkstemp(prefix=".spacy-mtl-write-test-", dir=probe_in)
    except OSError as err:
        return f"cannot write into {probe_in}: {err.strerror or err}"
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return None


class RecordTooLong(ValueError):
    """A line or a row of a text file is longer than the reader's limit (`RecordBudget`)."""


class RecordBudget:
    """A cap on the bytes one record of a `TextLines` may read: a file without line ends
    (or a quote that is never closed) fails at the cap instead of being read whole into
    memory.

    It sits between the `TextLines` and its (decompressed) file, and counts the bytes of
    the lines read since `start_record` was last called: a line, for one-record-per-line
    formats; all the lines of a CSV row (quoted newlines). Past `max_bytes`,
    `RecordTooLong` is raised from the read, before the rest of the line is read.

    lines (TextLines): The lines to cap (from now on).
    max_bytes (int): The most bytes of one record, line ends included.
    """

    def __init__(self, lines: TextLines, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.consumed = 0
        self._start = 0
        self._file = lines._file
        lines._file = cast(IO[bytes], self)

    def start_record(self) -> None:
        """The lines read from now on are a new record."""
        self._start = self.consumed

    def readline(self, size: int = -1) -> bytes:
        room = self.max_bytes - (self.consumed - self._start)
        data = self._file.readline(max(room, 0) + 1)
        self.consumed += len(data)
        if self.consumed - self._start > self.max_bytes:
            raise RecordTooLong(f"longer than {self.max_bytes:,} bytes")
        return data

    def close(self) -> None:
        self._file.close()
