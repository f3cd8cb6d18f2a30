"""A console table as data: the summaries build them, the CLI prints them.

Keeping the rows in the library lets a notebook or a test read what the command line shows
without parsing its output.
"""

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple


@dataclass(frozen=True)
class Table:
    """Rows of strings for `wasabi.msg.table`.

    rows (Sequence[Tuple[str, ...]]): The cells, formatted.
    header (Optional[Tuple[str, ...]]): Column names; None for a key-value table.
    aligns (Optional[Tuple[str, ...]]): 'l' or 'r' per column.
    title (Optional[str]): A line printed above the table.
    max_col (int): Widest column before wasabi wraps it.
    """

    rows: Sequence[Tuple[str, ...]]
    header: Optional[Tuple[str, ...]] = None
    aligns: Optional[Tuple[str, ...]] = None
    title: Optional[str] = None
    max_col: int = 30


def number_or_dash(value: Optional[float], digits: int = 3) -> str:
    """A score for a table cell: '-' where there is none (e.g. no annotated doc)."""
    return "-" if value is None else f"{value:.{digits}f}"
