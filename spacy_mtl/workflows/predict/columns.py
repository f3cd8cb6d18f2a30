"""The columns `predict` adds to each row: labels decided from the scores, and the scores."""

from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ...schema import GroupSchema
from .formats import DEFAULT_LABEL_SEP, PredictError

# Scores of one row in the component's label order; None for an empty or missing text.
Scores = Optional[List[float]]
Label = Union[None, str, List[str]]


class OutputColumns:
    """The columns prediction adds to each row, from a component's schema.

    Per group a label column `{prefix}{group}`: the label (multiclass: the most probable
    one) or the labels at or above their thresholds (multilabel; a list, or in CSV/TSV one
    cell joined with `label_sep`). With `scores`, each label's score: flat columns
    `{prefix}{group}/{label}` in CSV/TSV/Parquet, a nested object
    `{prefix}scores: {group: {label: score}}` in JSONL. An empty or missing text gets an
    empty prediction: no label (None / [] / empty cells) and no scores (None).
    A conditional group's label cell is empty where its condition is not met; its scores
    are doc.cats' joint ones. The decision rule is the component's own (see
    `MultiGroupTextCategorizer.set_annotations`) applied to doc.cats, which survives
    `nlp.pipe(n_process>1)` in every spaCy version.
    """

    def __init__(
        self,
        schema: GroupSchema,
        *,
        scores: bool = False,
        prefix: str = "",
        label_sep: str = DEFAULT_LABEL_SEP,
    ) -> None:
        self.schema = schema
        self.scores = scores
        self.prefix = prefix
        self.label_sep = label_sep
        self.keys = list(schema.keys)
        self._slices = schema.slices()

    @property
    def label_columns(self) -> List[str]:
        return [f"{self.prefix}{group.name}" for group in self.schema]

    @property
    def score_columns(self) -> List[str]:
        return [f"{self.prefix}{key}" for key in self.keys]

    @property
    def nested_scores_column(self) -> str:
        return f"{self.prefix}scores"

    def names(self, fmt: str) -> List[str]:
        """The added column names for output format `fmt`, in order."""
        if not self.scores:
            return self.label_columns
        if fmt == "jsonl":
            return [*self.label_columns, self.nested_scores_column]
        return [*self.label_columns, *self.score_columns]

    def check_collisions(self, columns: Iterable[str], fmt: str, where: str) -> None:
        """Raise if an input column has the name of an added column."""
        taken = sorted(set(columns) & set(self.names(fmt)))
        if taken:
            raise PredictError(
                f"{where}: the input already has column(s) {taken}, which predict would add; "
                "give a --prefix for the predicted columns, e.g. --prefix pred_."
            )

    def check_label_sep(self) -> None:
        """Raise if a label of a multilabel group holds `label_sep`: the group's CSV/TSV
        cell, its labels joined with it, could not be split back into those labels."""
        for group in self.schema:
            if group.is_multiclass:
                continue
            for label in group.labels:
                if self.label_sep in label:
                    raise PredictError(
                        f"Group {group.name!r}: label {label!r} contains the label separator "
                        f"{self.label_sep!r}, so its CSV/TSV cells could not be split back "
                        "into labels; pass another --label-sep (label_sep) that no label of "
                        "the group contains, or write JSONL or Parquet (lists of labels)."
                    )

    def scores_of(self, cats: Mapping[str, float]) -> List[float]:
        """A doc's scores in the component's label order, read from doc.cats."""
        try:
            return [float(cats[key]) for key in self.keys]
        except KeyError as err:
            raise PredictError(
                f"A predicted doc has no score for {err.args[0]!r} in doc.cats: was the "
                "component disabled, or is the model not the one the schema describes?"
            ) from None

    def decide(self, row: Sequence[float]) -> List[Label]:
        """Per group, the decided label (multiclass) or labels (multilabel): the schema's
        one decision rule, as the component applies it. `row` is read from doc.cats, so a
        conditional group's scores there are joint ones: they are made conditional first,
        and the group's decision is None where its condition is not met."""
        scores = self.schema.scores_from_cats([row])[0].tolist()
        return list(self.schema.decide(scores).values())

    def labels(self, row: Scores) -> List[Label]:
        """Per group, the decided label(s); None / [] for an empty prediction."""
        if row is None:
            return [None if g.is_multiclass else [] for g in self.schema]
        return list(self.decide(row))

    def tabular(self, row: Scores) -> List[str]:
        """The added CSV/TSV cells of one row."""
        cells = []
        for label in self.labels(row):
            if isinstance(label, list):
                cells.append(self.label_sep.join(label))
            else:
                cells.append("" if label is None else label)
        if self.scores:
            cells.extend([""] * len(self.keys) if row is None else [repr(v) for v in row])
        return cells

    def fields(self, row: Scores, *, nested: bool) -> Dict[str, Any]:
        """The added fields of one row: labels as strings and lists; scores flat
        (Parquet) or nested under `{prefix}scores` (JSONL)."""
        out: Dict[str, Any] = dict(zip(self.label_columns, self.labels(row)))
        if not self.scores:
            return out
        if nested:
            if row is None:
                out[self.nested_scores_column] = None
            else:
                out[self.nested_scores_column] = {
                    group.name: dict(zip(group.labels, row[start:end]))
                    for group, start, end in self._slices
                }
        else:
            values: Sequence[Optional[float]] = [None] * len(self.keys) if row is None else row
            out.update(zip(self.score_columns, values))
        return out

    def arrow_columns(
        self, rows: Sequence[Scores], *, joined: bool = False
    ) -> List[Tuple[str, Any]]:
        """The added columns of a batch as pyarrow arrays (Parquet layout: flat scores).

        joined (bool): Multilabel labels as one `label_sep`-joined string (for CSV) instead
            of a list of strings.
        """
        import pyarrow as pa

        decided = [self.labels(row) for row in rows]
        columns: List[Tuple[str, Any]] = []
        for i, (group, name) in enumerate(zip(self.schema, self.label_columns)):
            values = [labels[i] for labels in decided]
            if group.is_multiclass:
                columns.append((name, pa.array(values, type=pa.string())))
            elif joined:
                cells = [self.label_sep.join(v) if isinstance(v, list) else "" for v in values]
                columns.append((name, pa.array(cells, type=pa.string())))
            else:
                columns.append((name, pa.array(values, type=pa.list_(pa.string()))))
        if self.scores:
            for j, name in enumerate(self.score_columns):
                floats = [None if row is None else row[j] for row in rows]
                columns.append((name, pa.array(floats, type=pa.float64())))
        return columns

    def nested_scores_array(self, rows: Sequence[Scores]) -> Any:
        """The JSONL `{prefix}scores` column as a pyarrow struct array (for Ray's writer)."""
        import pyarrow as pa

        group_types = [
            pa.field(g.name, pa.struct([pa.field(label, pa.float64()) for label in g.labels]))
            for g in self.schema
        ]
        values = [self.fields(row, nested=True)[self.nested_scores_column] for row in rows]
        return pa.array(values, type=pa.struct(group_types))
