"""Reading the input as a Ray Dataset: files, folders, globs or object-store URIs."""

import io
import os
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

from ...data.io import SEPARATORS, csv_reader
from ..predict import PredictError, file_format
from ..predict.readers import check_input_file
from .cluster import import_ray


def as_list(inputs: Union[str, Path, Sequence[Union[str, Path]]]) -> List[str]:
    """One input or several, as a list of strings."""
    if isinstance(inputs, (str, Path)):
        return [str(inputs)]
    return [str(path) for path in inputs]


def check_inputs(paths: Sequence[str]) -> None:
    """Raise a PredictError for a local input that is missing, a loop of symbolic links,
    a named pipe or a device, as `predict` does (`check_input_file`). A folder is an input
    here (its files are read); URIs and globs that name no file are left to the reader."""
    for path in paths:
        if "://" in path or os.path.isdir(path):
            continue
        if any(char in path for char in "*?[") and not os.path.lexists(path):
            continue
        check_input_file(Path(path))


def _first_file(path: str, fmt: str) -> Tuple[Any, str]:
    """(filesystem, path) of the first file of `fmt` at a path, folder or URI."""
    import pyarrow.fs as pafs

    filesystem, inner = pafs.FileSystem.from_uri(path) if "://" in path else (None, path)
    if filesystem is None:
        filesystem = pafs.LocalFileSystem()
        inner = str(Path(path).resolve())
    info = filesystem.get_file_info(inner)
    if info.type == pafs.FileType.NotFound:
        raise PredictError(f"{path}: no such file or folder.")
    if info.type == pafs.FileType.Directory:
        found = sorted(
            entry.path
            for entry in filesystem.get_file_info(pafs.FileSelector(inner, recursive=True))
            if entry.type == pafs.FileType.File and _is_format(entry.path, fmt)
        )
        if not found:
            raise PredictError(f"{path}: the folder has no {fmt} files.")
        inner = found[0]
    return filesystem, inner


def _is_format(path: str, fmt: str) -> bool:
    try:
        return file_format(path) == fmt
    except PredictError:
        return False


def csv_header(path: str, fmt: str, *, quoting: bool = True) -> List[str]:
    """The header row of the first CSV/TSV file at a path, folder or URI."""
    filesystem, inner = _first_file(path, fmt)
    with filesystem.open_input_stream(inner, compression="detect") as stream:
        head = stream.read(1 << 20).decode("utf-8-sig", errors="replace")
    reader = csv_reader(io.StringIO(head, newline=""), fmt, quoting=quoting)
    return next(reader, [])


def read_dataset(
    inputs: Union[str, Path, Sequence[Union[str, Path]]],
    fmt: str,
    *,
    text_column: str,
    columns: Optional[Sequence[str]] = None,
    quoting: bool = True,
) -> Any:
    """The input as a Ray Dataset; CSV/TSV cells are read as exact strings (no type or NA
    detection, as in `predict_file`: a text "NA" stays the text "NA")."""
    ray = import_ray()
    paths = as_list(inputs)
    if fmt == "parquet":
        return ray.data.read_parquet(paths)
    if fmt == "jsonl":
        try:
            return ray.data.read_json(paths, lines=True, file_extensions=None)
        except TypeError:  # Ray before `lines`: its JSON reader reads JSON lines
            return ray.data.read_json(paths, file_extensions=None)
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = list(columns) if columns is not None else csv_header(paths[0], fmt, quoting=quoting)
    if text_column not in names:
        raise PredictError(
            f"{paths[0]}: no column {text_column!r}; the columns are {names}. Set "
            "--text-column (or --columns for files without a header)."
        )
    return ray.data.read_csv(
        paths,
        file_extensions=None,
        read_options=pacsv.ReadOptions(column_names=list(columns)) if columns else None,
        parse_options=pacsv.ParseOptions(
            delimiter=SEPARATORS[fmt],
            quote_char='"' if quoting else False,
            newlines_in_values=True,
        ),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in names},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
