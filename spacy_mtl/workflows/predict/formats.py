"""Input and output formats of `predict`: names, compression, and the package's error.

FORMATS are recognised from the file name (.csv, .tsv/.tab, .jsonl/.ndjson, .parquet/.pq,
text formats optionally followed by .gz, .bz2 or .xz) unless given.
"""

import bz2
import gzip
import lzma
from pathlib import Path
from typing import IO, Any, Callable, Dict, Optional, Union

PathLike = Union[str, Path]

FORMATS = ("csv", "tsv", "jsonl", "parquet")
DEFAULT_CHUNK_SIZE = 10_000
DEFAULT_LABEL_SEP = "|"
PROGRESS_SUFFIX = ".progress.json"
PARTS_SUFFIX = ".parts"
PROGRESS_VERSION = 1

SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
COMPRESSED: Dict[str, Callable[..., IO[str]]] = {
    ".gz": gzip.open,
    ".bz2": bz2.open,
    ".xz": lzma.open,
}
SEPARATORS = {"csv": ",", "tsv": "\t"}
PARQUET_EXTRA = 'Parquet needs pyarrow: pip install "spacy-mtl[parquet]" (or pyarrow).'


class PredictError(ValueError):
    """The input, the output or the options of a prediction run are not usable.

    Each message names the file, line or row, and column at fault, and what to do.
    """


def file_format(path: PathLike, given: Optional[str] = None, *, what: str = "input") -> str:
    """The format of a file: `given` if set, else from the name (.csv, .tsv/.tab,
    .jsonl/.ndjson, .parquet/.pq, each optionally followed by .gz, .bz2 or .xz).

    path (PathLike): The file.
    given (Optional[str]): A format named by the user; checked.
    what (str): 'input' or 'output', for the error message.
    RETURNS (str): One of FORMATS.
    """
    if given is not None:
        fmt = given.lower()
        if fmt not in FORMATS:
            raise PredictError(f"Unknown {what} format {given!r}; use one of {list(FORMATS)}.")
        return fmt
    suffixes = [s.lower() for s in Path(str(path)).suffixes]
    if suffixes and suffixes[-1] in COMPRESSED:
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in SUFFIXES:
        return SUFFIXES[suffixes[-1]]
    raise PredictError(
        f"{path}: cannot tell the {what} format from the file name; give it with "
        f"--{'format' if what == 'input' else 'output-format'} ({'|'.join(FORMATS)})."
    )


def resolve_output_format(path: Path, given: Optional[str], input_format: str) -> str:
    if path.suffix.lower() in COMPRESSED:
        raise PredictError(
            f"{path}: compressed output is not supported (a resumed run truncates and "
            "appends); write it plain and compress it afterwards."
        )
    if given is None and path.suffix.lower() not in SUFFIXES:
        return input_format
    return file_format(path, given, what="output")


def open_text(path: Path, mode: str = "rt") -> IO[str]:
    opener = COMPRESSED.get(path.suffix.lower())
    # newline="": csv handles line ends itself (quoted newlines); utf-8-sig drops a BOM.
    if opener is not None:
        return opener(path, mode, encoding="utf-8-sig", newline="")
    return open(path, mode, encoding="utf-8-sig", newline="")


def import_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise PredictError(PARQUET_EXTRA) from None
    return pq
