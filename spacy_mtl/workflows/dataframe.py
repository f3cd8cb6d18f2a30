"""Predicting a pandas DataFrame in Python: one column per label group, the frame's index.

`predict_dataframe` is `predict_file` for a frame already in memory: the same text rules
(`clean_text`: empty, whitespace-only, None and NaN texts get an empty prediction, numbers
are predicted as their string), the same column names (`OutputColumns`), the same decision
rule, and the same `nlp.pipe` stream (`iter_predictions`), so a frame and the file it was
read from get the same labels and scores. pandas is imported only when it is called.

DOCS: docs/predict.md ("From a DataFrame")
"""

from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Sequence, Union

from spacy.language import Language

from .predict.columns import OutputColumns
from .predict.formats import DEFAULT_CHUNK_SIZE, PathLike, PredictError
from .predict.inference import iter_predictions, load_model
from .predict.readers import Chunk, clean_text

if TYPE_CHECKING:
    import pandas as pd


def predict_dataframe(
    nlp: Union[Language, PathLike],
    df: "Union[pd.DataFrame, pd.Series]",
    text: str = "text",
    *,
    scores: bool = False,
    component: Optional[str] = None,
    batch_size: int = 64,
    n_process: int = 1,
    label_sep: Optional[str] = None,
    prefix: str = "",
    sort_by_length: Optional[bool] = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = False,
) -> "pd.DataFrame":
    """Predict the texts of a DataFrame column; return the predictions as a DataFrame.

    The result has the index of `df` (same labels, same order, its name kept) and per label
    group of the component one column `{prefix}{group}`: the label of a multiclass group
    (the most probable one), the list of labels at or above their thresholds of a
    multilabel group (`doc._.mtl_labels`). With `scores`, a float column per label,
    `{prefix}{group}/{label}`, in the schema's order (`doc.cats`). An empty or missing text
    (empty, only whitespace, None, NaN, pd.NA) gets an empty prediction: None, [] and NaN
    scores. Join it to the input with `df.join(result)`.

    Texts run through one `nlp.pipe` stream, read `chunk_size` rows at a time, and only
    the scores are kept (never all the Docs); the rows come back in the frame's order.
    A pipeline whose transformer is an `mtl_transformer` sorts by length inside `nlp.pipe`.

    nlp (Union[Language, str, Path]): A loaded pipeline, a pipeline folder, or the name of
        an installed pipeline package.
    df (Union[pd.DataFrame, pd.Series]): The rows; a Series is the texts themselves.
    text (str): The column with the texts (ignored for a Series).
    scores (bool): Add every label's score.
    component (Optional[str]): The mtl_textcat component; None: the pipeline's only one.
    batch_size (int): Docs per `nlp.pipe` batch.
    n_process (int): Processes for `nlp.pipe` (CPU only).
    label_sep (Optional[str]): Join the labels of a multilabel group into one string with
        this separator (as predict's CSV output does) instead of a list.
    prefix (str): Prepended to the column names (e.g. 'pred_', to join a frame that has
        gold columns of the same names).
    sort_by_length (Optional[bool]): As for `predict_file`: None sorts where it works (an
        `mtl_transformer` sorts in `nlp.pipe`; another pipeline within each chunk, with
        one process); False runs the texts in the frame's order.
    chunk_size (int): Rows handed to the stream at a time.
    progress (bool): Show a progress bar (docs/s).
    RETURNS (pd.DataFrame): The predictions, indexed like `df`.
    RAISES PredictError: No such text column (the message lists the columns), a text
        that is neither a string, a number nor missing (naming its index label), or bad
        options. ComponentError: no such mtl_textcat component, or several to choose from.
    DOCS: docs/predict.md ("From a DataFrame")
    """
    import pandas as pd

    from .loading import find_component
    from .predict.run import _progress_bar, _resolve_sorting

    if batch_size < 1 or chunk_size < 1 or n_process < 1:
        raise PredictError(
            "batch_size, chunk_size and n_process must be at least 1, got "
            f"{batch_size}, {chunk_size} and {n_process}."
        )
    texts = _text_series(df, text, pd)
    if not isinstance(nlp, Language):
        nlp = load_model(nlp)
    found = find_component(nlp, component)
    name = component or next(n for n, proc in nlp.pipeline if proc is found)
    out = OutputColumns(found.schema, scores=scores, prefix=prefix)
    sorting = _resolve_sorting(nlp, name, sort_by_length, n_process)

    n = len(texts)
    values = texts.array  # no copy; iterated a chunk at a time
    index = texts.index
    matrix = _nan_matrix(n, len(out.keys))
    predicted = [False] * n  # False: an empty prediction (an empty or missing text)
    bar = _progress_bar(progress, n, 0)
    try:
        column = None if isinstance(df, pd.Series) else text
        chunks = _chunks(values, index, column, chunk_size, nlp.max_length)
        for chunk, rows in iter_predictions(
            nlp,
            chunks,
            out,
            component=name,
            batch_size=batch_size,
            n_process=n_process,
            sort_by_length=sorting,
            on_doc=bar.update if bar is not None else None,
        ):
            for i, row in enumerate(rows, chunk.start):
                if row is not None:
                    matrix[i] = row
                    predicted[i] = True
    finally:
        if bar is not None:
            bar.close()
    return _frame(out, matrix, predicted, index, label_sep, pd)


def _text_series(df: Any, text: str, pd: Any) -> Any:
    """The column of texts, checked."""
    if isinstance(df, pd.Series):
        return df
    if not isinstance(df, pd.DataFrame):
        raise PredictError(
            f"predict_dataframe takes a pandas DataFrame (or Series), got {type(df).__name__}."
        )
    columns = list(df.columns)
    found = sum(1 for column in columns if column == text)
    if found == 0:
        raise PredictError(
            f"The DataFrame has no column {text!r}; the columns are {columns}. Set `text` "
            "to the column with the texts."
        )
    if found > 1:
        raise PredictError(
            f"The DataFrame has {found} columns named {text!r}; rename them so that the "
            "texts are in one."
        )
    return df[text]


def _chunks(
    values: Sequence[Any],
    index: Any,
    column: Optional[str],
    chunk_size: int,
    max_length: int,
) -> Iterator[Chunk]:
    """The frame's texts as predict's chunks; each text cleaned by predict's rule, its
    errors naming the row by its index label."""
    for number, start in enumerate(range(0, len(values), chunk_size)):
        texts: List[Optional[str]] = []
        truncated = 0
        for offset, value in enumerate(values[start : start + chunk_size]):
            where = f"row {index[start + offset]!r}"
            if column is not None:
                where += f", column {column!r}"
            cleaned = clean_text(_scalar(value), where)
            if cleaned is not None and len(cleaned) > max_length:
                # As predict does: the text is predicted on its first max_length characters.
                cleaned = cleaned[:max_length]
                truncated += 1
            texts.append(cleaned)
        yield Chunk(number, start, [], texts, truncated)


def _scalar(value: Any) -> Any:
    """A cell as the Python value `clean_text` knows: numpy scalars become Python ones,
    pandas' missing values (pd.NA, NaT) None."""
    item = getattr(value, "item", None)
    if item is not None and getattr(value, "shape", None) == ():
        value = item()  # numpy scalar; np.datetime64("NaT").item() is None
    if value is not None and type(value).__name__ in ("NAType", "NaTType"):
        return None
    return value


def _nan_matrix(rows: int, columns: int) -> Any:
    import numpy

    return numpy.full((rows, columns), numpy.nan, dtype="float64")


def _frame(
    out: OutputColumns,
    matrix: Any,
    predicted: Sequence[bool],
    index: Any,
    label_sep: Optional[str],
    pd: Any,
) -> "pd.DataFrame":
    """The label (and score) columns from the score matrix (its rows that were not
    predicted are NaN: empty predictions)."""
    columns: Dict[str, Any] = {}
    decided = [out.labels(matrix[i].tolist() if done else None) for i, done in enumerate(predicted)]
    for g, (group, name) in enumerate(zip(out.schema, out.label_columns)):
        labels = [row[g] for row in decided]
        if label_sep is not None and not group.is_multiclass:
            labels = [label_sep.join(v) if isinstance(v, list) else "" for v in labels]
        columns[name] = pd.Series(labels, index=index, dtype=object)
    if out.scores:
        for j, name in enumerate(out.score_columns):
            columns[name] = pd.Series(matrix[:, j], index=index, dtype="float64")
    result = pd.DataFrame(columns, index=index)
    # Columns in predict's order even when there are no rows.
    return result.reindex(columns=out.label_columns + (out.score_columns if out.scores else []))
