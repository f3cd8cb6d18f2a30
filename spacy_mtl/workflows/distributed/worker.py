"""The Ray Data actor that loads the pipeline once and predicts batches of rows."""

from typing import Any, List, Optional, Sequence, Tuple

from ...data.io import SEPARATORS
from ..predict import (
    DEFAULT_LABEL_SEP,
    OutputColumns,
    PredictError,
    Scores,
    clean_text,
    components_after,
    get_schema,
    load_model,
)

# Rows per call of a worker; the pipeline batches them by `batch_size` inside the call.
DEFAULT_ROWS_PER_CALL = 1024
# Output layouts of the workers: formatted for Ray's writer of a format, or "raw" (every
# score as a flat column, formatted on the driver by predict's writers).
_LAYOUTS = ("raw", "csv", "tsv", "jsonl", "parquet")


class MTLPredictor:
    """A Ray Data callable class: one instance per actor, so the pipeline is loaded once
    per worker, not per batch. Takes a pyarrow batch, returns it with predictions added.

    model (str): Pipeline folder (visible to every worker) or installed package name.
    text_column (str): The column with the texts.
    layout (str): 'parquet', 'jsonl', 'csv'/'tsv' (the columns `predict_file` writes for
        that format) or 'raw' (flat score columns, null for an empty text).
    component, scores, prefix, label_sep, batch_size: As in `predict_file`.
    use_gpu (bool): Load on the GPU Ray assigned to this actor.
    threads (Optional[int]): torch threads (the CPUs Ray reserved for this actor); None
        leaves torch as it is.
    code (Optional[str]): Python file imported before the pipeline loads (`--code`: its
        registered functions exist in this worker's process too).
    """

    def __init__(
        self,
        model: str,
        *,
        text_column: str,
        layout: str,
        component: str = "mtl_textcat",
        scores: bool = False,
        prefix: str = "",
        label_sep: str = DEFAULT_LABEL_SEP,
        batch_size: int = 64,
        use_gpu: bool = False,
        threads: Optional[int] = None,
        code: Optional[str] = None,
    ) -> None:
        if layout not in _LAYOUTS:
            raise PredictError(f"Unknown layout {layout!r}; use one of {list(_LAYOUTS)}.")
        if code is not None:
            from spacy.util import import_file

            import_file("python_code", code)
        if not use_gpu and threads is not None:
            import torch

            torch.set_num_threads(max(1, threads))
        # Ray sets CUDA_VISIBLE_DEVICES to the actor's GPU, so it is device 0 here.
        self.nlp = load_model(model, 0 if use_gpu else -1)
        self.schema = get_schema(self.nlp, component)
        self.disable = components_after(self.nlp, component)
        self.text_column = text_column
        self.layout = layout
        self.batch_size = batch_size
        self.out = OutputColumns(
            self.schema, scores=scores or layout == "raw", prefix=prefix, label_sep=label_sep
        )

    def predict(self, values: Sequence[Any]) -> Tuple[List[Scores], int, int]:
        """Scores of each cell's text (None: empty or missing), and the counts of empty
        and truncated texts."""
        texts, truncated = texts_of(values, self.nlp.max_length, self.text_column)
        filled = [text for text in texts if text is not None]
        docs = iter(self.nlp.pipe(filled, batch_size=self.batch_size, disable=self.disable))
        scores: List[Scores] = [
            None if text is None else self.out.scores_of(next(docs).cats) for text in texts
        ]
        return scores, len(texts) - len(filled), truncated

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        if self.text_column not in batch.column_names:
            raise PredictError(
                f"The input has no column {self.text_column!r}; its columns are "
                f"{batch.column_names}. Set --text-column."
            )
        taken = sorted(set(batch.column_names) & set(self._added_names()))
        if taken:
            raise PredictError(
                f"The input already has column(s) {taken}, which predict would add; give a "
                "--prefix for the predicted columns, e.g. --prefix pred_."
            )
        scores, _, _ = self.predict(batch.column(self.text_column).to_pylist())
        if self.layout == "jsonl":
            for name, array in self.out.arrow_columns(scores)[: len(self.out.label_columns)]:
                batch = batch.append_column(name, array)
            if self.out.scores:
                batch = batch.append_column(
                    self.out.nested_scores_column, self.out.nested_scores_array(scores)
                )
        else:
            joined = self.layout in SEPARATORS
            for name, array in self.out.arrow_columns(scores, joined=joined):
                if self.layout == "raw" and name in self.out.label_columns:
                    continue  # the driver decides the labels from the scores
                batch = batch.append_column(name, array)
        assert isinstance(batch, pa.Table)
        return batch

    def _added_names(self) -> List[str]:
        if self.layout == "raw":
            return self.out.score_columns
        return self.out.names(self.layout)


def texts_of(
    values: Sequence[Any], max_length: int, column: str
) -> Tuple[List[Optional[str]], int]:
    """The texts to predict from a column's cells (None: empty or missing), cut to
    `max_length` characters, and how many were cut."""
    texts: List[Optional[str]] = []
    truncated = 0
    for value in values:
        text = clean_text(value, f"column {column!r}")
        if text is not None and len(text) > max_length:
            text = text[:max_length]
            truncated += 1
        texts.append(text)
    return texts, truncated


def count_rows(block: Any, column: str, max_length: int) -> Tuple[int, int, int]:
    """Rows, empty or missing texts and texts cut to `max_length` in a predicted block
    (a pyarrow table): counted from the rows that are written, so that each is counted
    once, however often Ray ran the call that predicted it."""
    texts, truncated = texts_of(block.column(column).to_pylist(), max_length, column)
    return len(texts), sum(text is None for text in texts), truncated
