"""Input and output formats of `predict`, its constants, and the package's error.

FORMATS are recognised from the file name (.csv, .tsv/.tab, .jsonl/.ndjson, .parquet/.pq,
text formats optionally followed by .gz, .bz2 or .xz) unless given. Extensions,
compression and the csv reader are shared with `convert`: see `spacy_mtl.data.io`.
"""

from pathlib import Path
from typing import Any, Optional

from ...data.io import EXTENSIONS, PathLike, compression, format_from_name

FORMATS = ("csv", "tsv", "jsonl", "parquet")
DEFAULT_CHUNK_SIZE = 10_000
DEFAULT_LABEL_SEP = "|"
PROGRESS_SUFFIX = ".progress.json"
PARTS_SUFFIX = ".parts"
# CSV/TSV/JSONL output is written under OUTPUT.partial and renamed to OUTPUT when it is
# complete: a file under the final name is always a whole output.
PARTIAL_SUFFIX = ".partial"
LOCK_SUFFIX = ".lock"
# 2: the model's files, the digest of the input rows done, the .partial output.
PROGRESS_VERSION = 2
# The most bytes one line (JSONL) or one row (CSV/TSV, quoted newlines included) may
# have: a file without line ends (or an unclosed quote) fails at that size rather than
# being read whole into memory.
DEFAULT_MAX_RECORD_BYTES = 10_000_000
# JSON nested deeper than this is refused (Python's parser and writer recurse per level).
MAX_JSON_DEPTH = 200
# Characters of a cell, key or list an error message quotes.
ECHO_CHARS = 200
PARQUET_EXTRA = 'Parquet needs pyarrow: pip install "spacy-mtl[parquet]" (or pyarrow).'


class PredictError(ValueError):
    """The input, the output or the options of a prediction run are not usable.

    Each message names the file, line or row, and column at fault, and what to do.
    """


def shorten(text: str, limit: int = ECHO_CHARS) -> str:
    """`text` cut to `limit` characters and "…": a hostile cell or key of megabytes is
    named, not copied, in an error message (pass `repr(value)` for a value)."""
    return text if len(text) <= limit else text[:limit] + "…"


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
    named = format_from_name(path)
    if named is not None and named in FORMATS:
        return named
    raise PredictError(
        f"{path}: cannot tell the {what} format from the file name; give it with "
        f"--{'format' if what == 'input' else 'output-format'} ({'|'.join(FORMATS)})."
    )


def suffix_format(path: PathLike) -> Optional[str]:
    """The format named by the last suffix of a file name (a compressed name names none),
    if predict reads or writes it."""
    fmt = EXTENSIONS.get(Path(str(path)).suffix.lower())
    return fmt if fmt in FORMATS else None


def resolve_output_format(path: Path, given: Optional[str], input_format: str) -> str:
    if compression(path) is not None:
        raise PredictError(
            f"{path}: compressed output is not supported (a resumed run truncates and "
            "appends); write it plain and compress it afterwards."
        )
    if given is None and suffix_format(path) is None:
        if path.suffix:
            # out.xlsx, out.json: writing CSV (the input's format) under that name would
            # give a file that is not what its name says.
            raise PredictError(
                f"{path}: predict does not write {path.suffix!r} files; name the output "
                f".csv, .tsv, .jsonl or .parquet, or give --output-format "
                f"({'|'.join(FORMATS)})."
            )
        return input_format
    return file_format(path, given, what="output")


def import_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise PredictError(PARQUET_EXTRA) from None
    return pq
