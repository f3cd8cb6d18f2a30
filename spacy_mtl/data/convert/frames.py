"""A pandas DataFrame as an input of convert: its rows as records, its index labels as
their places.

`convert_dataframe` runs `convert_files` with a `FrameInput` in place of a file: the spec's
groups, `text`, `id` and `missing_values` read the frame's columns with the very parsers
that read files (`rows`), and splits, `on_error`, the rejects file, the summary and the
written shards are the file converter's. A record's cells are the frame's values as Python
scalars, with a missing value (None, NaN, pd.NA, NaT) read as the empty cell that
`DataFrame.to_csv` writes for it: the same frame as a CSV gives the same docs. pandas
itself is never imported here: the frame is read through its own methods.

DOCS: docs/convert.md ("From a DataFrame")
"""

import itertools
import json
import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Mapping, Optional, Tuple, Union

from ...errors import Errors
from ..io import PathLike
from .exceptions import ConvertError, SpecError
from .joins import open_input
from .readers import Record
from .spec import ConvertSpec, load_spec

if TYPE_CHECKING:
    import pandas as pd

    from .summary import ConvertSummary

# What errors and the rejects file give as a frame row's file.
FRAME_PATH = Path("<DataFrame>")
# Spec keys that read other files or cut lines: they have no meaning for a DataFrame.
_FILE_ONLY = {
    "join": (
        "it adds columns from other files",
        "merge those columns into the frame first, e.g. with DataFrame.merge",
    ),
    "pattern": (
        "it cuts the lines of a text file into columns",
        "cut the column into columns first, e.g. with Series.str.extract",
    ),
    "labels_file": (
        "it pairs a file of texts with a file of labels",
        "put the texts and the labels in two columns of the frame",
    ),
}


@dataclass(frozen=True)
class FrameInput:
    """A DataFrame in the place of an input file (see `convert_dataframe`).

    frame (pd.DataFrame): The rows; its columns are the spec's columns.
    """

    frame: Any

    def __len__(self) -> int:
        return len(self.frame)


# An input of `convert_files`: a file, or a DataFrame.
Input = Union[Path, FrameInput]


def convert_dataframe(
    df: "pd.DataFrame",
    spec: Union[ConvertSpec, Mapping[str, Any], PathLike],
    output_dir: PathLike,
    *,
    name: str = "data",
    split: Union[str, Mapping[str, float], None] = None,
    seed: int = 0,
    on_error: str = "fail",
    rejects: Optional[PathLike] = None,
    limit: Optional[int] = None,
    lang: str = "en",
    shard_size: Optional[int] = None,
    chunk_size: Optional[int] = None,
    progress: bool = False,
) -> "ConvertSummary":
    """Convert the rows of a DataFrame to a .spacy corpus, as `convert_files` converts a
    file (same spec, checks, splits, on_error, rejects file, summary and output).

    The spec's `text`, `id`, `groups` and `missing_values` are read from the frame's
    columns (named as strings: a column 0 is "0"); the settings that say how to read a
    file (`format`, `columns`, `header`, `sep`, `quoting`, `encoding`) do not apply and are
    ignored, and a spec with `join`, `pattern` or `labels_file` is refused. Cells are the
    frame's values: strings, numbers, booleans and lists as in JSONL; a missing value
    (None, NaN, pd.NA, NaT) is an empty cell, as `DataFrame.to_csv` writes it, so it marks
    a missing label (or a negative one with `empty: negative`). A bad row's error names its
    index label and column ("row 'r17', column 'sentiment': ..."); in the rejects file its
    `file` is `<DataFrame>` and its `line` the index label.

    df (pd.DataFrame): The rows to convert.
    spec (Union[ConvertSpec, Mapping[str, Any], str, Path]): The spec, its content as a
        dict (`ConvertSpec.from_dict`), or the path of a spec file.
    output_dir (Union[str, Path]): Folder for the corpus (created if needed).
    name (str): The corpus name: OUTPUT_DIR/<name>.spacy (with `split`:
        OUTPUT_DIR/<split>/<name>.spacy).
    split, seed, on_error, rejects, lang, shard_size, chunk_size, progress: As for
        `convert_files`.
    limit (Optional[int]): Convert at most this many rows (the first ones).
    RETURNS (ConvertSummary): Rows read and rejected, docs and label counts per split,
        files written.
    DOCS: docs/convert.md ("From a DataFrame")
    """
    from .run import DEFAULT_CHUNK_SIZE, DEFAULT_SHARD_SIZE, convert_files

    if not _is_frame(df):
        raise ConvertError(Errors.E295.format(kind=type(df).__name__))
    if isinstance(spec, Mapping):
        spec = ConvertSpec.from_dict(spec)
    elif not isinstance(spec, ConvertSpec):
        spec = load_spec(spec)
    check_frame_spec(spec)
    return convert_files(
        [FrameInput(df)],
        output_dir,
        spec,
        split=split,
        seed=seed,
        on_error=on_error,
        rejects=rejects,
        limit=limit,
        lang=lang,
        name=name,
        shard_size=DEFAULT_SHARD_SIZE if shard_size is None else shard_size,
        chunk_size=DEFAULT_CHUNK_SIZE if chunk_size is None else chunk_size,
        progress=progress,
    )


def check_frame_spec(spec: ConvertSpec) -> None:
    """Refuse a spec with settings that read other files or cut lines (see _FILE_ONLY)."""
    given = {
        "join": bool(spec.join),
        "pattern": spec.pattern is not None,
        "labels_file": spec.labels_file is not None or spec.labels_file_replace is not None,
    }
    for key, (why, fix) in _FILE_ONLY.items():
        if given[key]:
            raise SpecError(Errors.E293.format(spec=spec.source, key=key, why=why, fix=fix))


def _is_frame(value: Any) -> bool:
    # Not isinstance(value, pd.DataFrame): that would import pandas into every convert run.
    return any(
        cls.__name__ == "DataFrame" and cls.__module__.split(".")[0] == "pandas"
        for cls in type(value).__mro__
    )


@contextmanager
def open_source(
    source: Input, spec: ConvertSpec, *, limit: Optional[int] = None
) -> Iterator[Tuple[Any, Iterator[Record]]]:
    """An input's reader (with `position`, for progress) and its records (at most `limit`):
    `joins.open_input` for a file, a `FrameReader` for a DataFrame."""
    if not isinstance(source, FrameInput):
        with open_input(source, spec, limit=limit) as opened:
            yield opened
        return
    check_frame_spec(spec)
    reader = FrameReader(source, spec)
    records: Iterator[Record] = iter(reader)
    if limit is not None:
        records = itertools.islice(records, limit)
    yield reader, records


def input_size(source: Input) -> int:
    """How far `position` goes for this input: bytes of a file, rows of a frame."""
    if isinstance(source, FrameInput):
        return len(source)
    return source.stat().st_size


class FrameReader:
    """The records of a DataFrame: the spec's columns of each row, in the frame's order.

    position (int): Rows read so far (progress, as a file reader's bytes).
    """

    def __init__(self, source: FrameInput, spec: ConvertSpec) -> None:
        self.frame = source.frame
        self.spec = spec
        self.position = 0
        by_name: Dict[str, List[Any]] = {}
        for column in self.frame.columns:
            by_name.setdefault(str(column), []).append(column)
        shown = list(by_name)
        self.columns: List[Tuple[str, Any]] = []
        for name in spec.input_columns:
            found = by_name.get(name)
            if not found:
                raise ConvertError(Errors.E292.format(column=name, spec=spec.source, columns=shown))
            if len(found) > 1:
                raise ConvertError(Errors.E294.format(n=len(found), column=name))
            self.columns.append((name, found[0]))

    def __iter__(self) -> Iterator[Record]:
        names = [name for name, _ in self.columns]
        # Column by column (no copy of the frame, no dtype cast of the row), zipped to rows.
        series = [self.frame[column] for _, column in self.columns]
        rows = zip(self.frame.index, *series)
        for position, (label, *values) in enumerate(rows, 1):
            self.position = position
            cells = {name: cell_value(value) for name, value in zip(names, values)}
            yield Record(FRAME_PATH, position, cells, _raw(cells), index=(label,))


def cell_value(value: Any) -> Any:
    """A frame's cell as convert's parsers read it: Python scalars and lists, with a
    missing value (None, NaN, pd.NA, NaT) as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if hasattr(value, "tolist") and not isinstance(value, (list, tuple, dict)):
        value = value.tolist()  # a numpy scalar (a Python one), or an array (a list)
        if value is None:  # numpy's NaT
            return ""
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, float) and math.isnan(value):
        return ""
    if type(value).__name__ in ("NAType", "NaTType"):
        return ""
    return value


def _raw(cells: Mapping[str, Any]) -> str:
    """The row for the rejects file: its cells as a JSON object."""
    return json.dumps(cells, ensure_ascii=False, default=str)
