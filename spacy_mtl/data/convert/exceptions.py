"""Convert's exceptions: a stop (ConvertError, SpecError) or one bad row (RowError)."""

from pathlib import Path
from typing import Any, Optional, Tuple

from ...errors import Errors


class ConvertError(ValueError):
    """Converting cannot go on: a bad spec, input, option or file (not skippable)."""


class SpecError(ConvertError):
    """The convert spec is not valid."""


class RowError(ConvertError):
    """One input row is bad. `--on-error skip` writes it to the rejects file.

    path (Path): The file the bad cell came from.
    line (int): Physical line (1-based) where the row starts, or the bad line itself.
    column (Optional[str]): The column at fault, if one is.
    reason (str): What is wrong.
    index (Optional[Tuple[Any]]): A DataFrame row (`convert_dataframe`): its index label,
        as a 1-tuple (a label may be None). The message names the row by it.
    """

    def __init__(
        self,
        path: Path,
        line: int,
        column: Optional[str],
        reason: str,
        *,
        index: Optional[Tuple[Any]] = None,
    ) -> None:
        self.path = path
        self.line = line
        self.column = column
        self.reason = reason
        self.index = index
        if index is not None:
            if column is None:
                text = Errors.E291.format(row=index[0], reason=reason)
            else:
                text = Errors.E290.format(row=index[0], column=column, reason=reason)
        elif column is None:
            text = Errors.E241.format(file=path, line=line, reason=reason)
        else:
            text = Errors.E240.format(file=path, line=line, column=column, reason=reason)
        super().__init__(text)


class CellError(Exception):
    """A bad cell found while parsing a row; becomes a RowError with the row's place."""

    def __init__(self, column: Optional[str], reason: str) -> None:
        super().__init__(reason)
        self.column = column
        self.reason = reason
