"""Dir mode: the workers write part files, one per block, and count the rows they write."""

from pathlib import Path
from typing import Any, Iterable, List, Tuple

from ...data.io import SEPARATORS
from ..predict import PredictError
from .worker import count_rows

Counts = Tuple[int, int, int]


class PartNames:
    """part-000000.parquet, ...: a write task's index in the name, so that the names sort
    in input order (the job preserves order), and a write that Ray runs again replaces
    its part rather than adding one."""

    def __init__(self, extension: str) -> None:
        self.extension = extension

    def get_filename_for_task(self, write_uuid: str, task_index: int) -> str:
        return f"part-{task_index:06d}.{self.extension}"


def parts_sink(
    output: str,
    fmt: str,
    *,
    text_column: str,
    max_length: int,
    rows_per_file: int,
    overwrite: bool,
    csv_safe: bool = False,
) -> Any:
    """A Ray Data datasink that writes part files in `fmt` ('parquet', 'jsonl', 'csv' or
    'tsv') of at least `rows_per_file` rows (the last: the rest), each by one write task,
    and counts their rows, empty and cut texts (`count_rows`).

    Ray returns the counts of each written part once, to `on_write_complete` on this
    process, however often a task ran: they end up in the datasink's `counts`. A count
    kept by the workers as they predict would count again the rows of a call that Ray
    runs again after its worker died.

    csv_safe (bool): CSV/TSV parts: a cell that a spreadsheet would run as a formula gets
        a "'" before it (as `predict_file(csv_safe=True)` writes it).
    """
    from ray.data import SaveMode
    from ray.data.datasource import BlockBasedFileDatasink

    class PartsDatasink(BlockBasedFileDatasink):
        def __init__(self) -> None:
            super().__init__(
                output,
                filename_provider=PartNames(fmt),
                file_format=fmt,
                min_rows_per_file=rows_per_file,
                mode=SaveMode.OVERWRITE if overwrite else SaveMode.ERROR,
            )
            self.counts: Counts = (0, 0, 0)

        def write(self, blocks: Iterable[Any], ctx: Any) -> Counts:  # type: ignore[override]
            blocks = list(blocks)
            super().write(blocks, ctx)
            rows = [count_rows(_arrow(block), text_column, max_length) for block in blocks]
            return _sum(rows)

        def write_block_to_file(self, block: Any, file: Any) -> None:
            _write_part(block.to_arrow(), fmt, file, csv_safe=csv_safe)

        def on_write_complete(self, write_result: Any) -> None:
            super().on_write_complete(write_result)
            self.counts = _sum([c for c in write_result.write_returns if c is not None])

    import pyarrow.fs as pafs

    sink = PartsDatasink()
    if not overwrite and sink.filesystem.get_file_info(sink.path).type != pafs.FileType.NotFound:
        raise PredictError(f"{output} already exists; use --force to replace it.")
    return sink


def _arrow(block: Any) -> Any:
    from ray.data.block import BlockAccessor

    return BlockAccessor.for_block(block).to_arrow()


def _sum(counts: List[Counts]) -> Counts:
    rows, empty, truncated = (sum(column) for column in zip(*counts)) if counts else (0, 0, 0)
    return rows, empty, truncated


def csv_safe_table(table: Any) -> Any:
    """`table` with a "'" before each string cell that starts with what a spreadsheet runs
    as a formula (`spacy_mtl.data.io.FORMULA_STARTS`); the column names
    too, which are the CSV header."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from ...data.io import FORMULA_STARTS, csv_safe_cell

    pattern = "^[" + "".join("\\" + c if c in "-\\]^" else c for c in FORMULA_STARTS) + "]"
    columns = []
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            quoted = pc.binary_join_element_wise("'", column, "")
            column = pc.if_else(pc.match_substring_regex(column, pattern), quoted, column)
        columns.append(column)
    names = [csv_safe_cell(name) for name in table.column_names]
    return pa.Table.from_arrays(columns, names=names)


def _write_part(table: Any, fmt: str, file: Any, *, csv_safe: bool = False) -> None:
    """One block as a part file, with the columns the worker made for `fmt`."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, file)
    elif fmt == "jsonl":
        # pandas writes 10 significant digits by default; 15 is its most.
        table.to_pandas().to_json(
            file, orient="records", lines=True, double_precision=15, force_ascii=False
        )
    else:
        import pyarrow.csv as pacsv

        options = pacsv.WriteOptions(delimiter=SEPARATORS[fmt], quoting_style="needed")
        pacsv.write_csv(csv_safe_table(table) if csv_safe else table, file, options)


def list_parts(output: str) -> List[str]:
    """The part files of a local output folder (none listed for a URI)."""
    if "://" in output:
        return []
    return sorted(str(p) for p in Path(output).glob("part-*"))
