"""Tune a trained `mtl_textcat` on dev: a temperature per group, then its decision rule.

1. Temperature scaling (Guo et al. 2017): each group's logits are divided by one scalar T
   fit on dev by minimising the group's NLL. It changes probabilities, never the ranking,
   so a multiclass group's decisions stay the same while its confidences become honest.
   A fit that stops at a bound of the search is not saved (the group keeps its temperature,
   1.0 unless tuned before): a small dev set the model gets right with a margin drives T
   to the bound and every score to 0 or 1, which is not calibration.
2. Thresholds: each multilabel label gets the threshold in [floor, ceiling] that maximises
   its F1 on the calibrated dev scores (docs annotated for that label only). A label with no
   positive in dev keeps its threshold.
3. Class offsets: each multiclass group gets per-class offsets b, decision argmax(log p + b),
   that maximise its macro F1 on the calibrated dev scores (a rare class that the argmax
   under-predicts gets a positive offset). A class never gold in dev keeps offset 0. Same
   switch as the thresholds.
Labels without a dev positive and temperatures left at their bound are named in
`TuneResult.warnings()`.
All are written into the component's schema (`set_schema`), so `doc._.mtl_labels`, the
scorer and `nlp.to_disk` use them.

DOCS: docs/evaluate.md
"""

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

import numpy
from spacy.language import Language
from spacy.training import Example
from spacy.util import minibatch

from ..gold import GoldReader
from ..schema import MULTILABEL, GroupSchema, LabelGroup, split_key
from ..scorer import score_arrays
from ..tables import Table, number_or_dash
from .calibration import (
    MAX_TEMPERATURE,
    MIN_TEMPERATURE,
    apply_temperature,
    at_temperature_bound,
    best_class_offsets,
    best_threshold,
    calibration_pairs,
    expected_calibration_error,
    fit_temperature,
    group_nll,
)
from .loading import docs_before, find_component, mtl_component_names

DEFAULT_FLOOR = 0.05
DEFAULT_CEILING = 0.95


@dataclass
class LabelTuneResult:
    """One multilabel label: its threshold and dev F1 before and after tuning."""

    threshold_before: float
    threshold: float
    f1_before: float
    f1_after: float
    n_positive: int
    n_annotated: int
    tuned: bool


@dataclass
class GroupTuneResult:
    """One group's calibration and decision quality on dev, before and after tuning.

    "before" is the component as it was (its temperature and thresholds), "after" the tuned
    one. `temperature_at_bound` is set when the fit ended at (within BOUND_TOLERANCE of) a
    bound of the search (MIN_TEMPERATURE, MAX_TEMPERATURE): the dev set could not pin T
    down, typically because the model separates every dev doc (then T only sharpens). That
    fit, in `temperature_fitted`, is not saved: `temperature` stays `temperature_before`.
    `no_dev_positive` lists the labels with no positive among the annotated dev docs
    (multilabel) or never the gold label of an annotated dev doc (multiclass): their
    thresholds or class offsets are not tuned. NLL and ECE are computed on
    the annotated docs (multiclass) or annotated (doc, label) pairs (multilabel); macro F
    as the scorer computes it.
    """

    group: str
    kind: str
    n_docs: int
    temperature_before: float
    temperature: float
    nll_before: Optional[float]
    nll_after: Optional[float]
    ece_before: Optional[float]
    ece_after: Optional[float]
    macro_f_before: Optional[float]
    macro_f_after: Optional[float]
    labels: Dict[str, LabelTuneResult] = field(default_factory=dict)
    temperature_at_bound: bool = False
    temperature_fitted: Optional[float] = None
    no_dev_positive: List[str] = field(default_factory=list)
    # Multiclass: the class offsets before and after (see LabelGroup.class_offsets).
    class_offsets_before: Dict[str, float] = field(default_factory=dict)
    class_offsets: Dict[str, float] = field(default_factory=dict)


@dataclass
class TuneResult:
    """What `tune_pipeline` changed and measured.

    component (str): The tuned component's name.
    n_docs (int): Number of dev docs.
    groups (List[GroupTuneResult]): One entry per group, in schema order.
    schema (GroupSchema): The tuned schema (already set on the component).
    floor, ceiling (float): The threshold bounds used.
    """

    component: str
    n_docs: int
    groups: List[GroupTuneResult]
    schema: GroupSchema
    floor: float = DEFAULT_FLOOR
    ceiling: float = DEFAULT_CEILING

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict (the content of tune.json)."""
        return {
            "component": self.component,
            "n_docs": self.n_docs,
            "floor": self.floor,
            "ceiling": self.ceiling,
            "groups": {g.group: _json_ready(asdict(g)) for g in self.groups},
        }

    def table(self) -> Table:
        """One row per group: temperature, NLL, ECE and macro F before -> after."""

        def arrow(before: Optional[float], after: Optional[float], digits: int = 3) -> str:
            return f"{number_or_dash(before, digits)} -> {number_or_dash(after, digits)}"

        rows = []
        for g in self.groups:
            n_tuned = sum(lab.tuned for lab in g.labels.values())
            rows.append(
                (
                    g.group,
                    g.kind,
                    str(g.n_docs),
                    arrow(g.temperature_before, g.temperature, 2),
                    arrow(g.nll_before, g.nll_after),
                    arrow(g.ece_before, g.ece_after),
                    arrow(g.macro_f_before, g.macro_f_after),
                    f"{n_tuned}/{len(g.labels)}"
                    if g.kind == MULTILABEL
                    else _offsets_cell(g.class_offsets),
                )
            )
        header = ("group", "kind", "docs", "temperature", "NLL", "ECE", "macro F", "decision")
        return Table(rows, header=header)

    def warnings(self) -> List[str]:
        """What to look at: temperature fits left at a search bound (not saved) and labels
        with no dev positive (not tuned), one message per group and problem."""
        out = []
        for g in self.groups:
            if g.temperature_at_bound and g.temperature_fitted is not None:
                out.append(
                    f"Group {g.group!r}: the temperature fit ran to a bound of its search "
                    f"(T = {g.temperature_fitted:.3g}, search {MIN_TEMPERATURE:g}-"
                    f"{MAX_TEMPERATURE:g}): its {g.n_docs} dev docs do not pin it down ("
                    + (
                        "the model is right on each with a margin: a small dev set, or dev "
                        "overlaps training"
                        if g.temperature_fitted < 1.0
                        else "the model's scores carry no signal on them"
                    )
                    + f"). Not saved: the temperature stays {g.temperature:g}. Tune on a "
                    "larger dev set, or pass --no-temperature to tune only the decisions."
                )
            if g.no_dev_positive:
                labels = ", ".join(repr(label) for label in g.no_dev_positive)
                if g.kind == MULTILABEL:
                    what = (
                        f"{len(g.no_dev_positive)} of {len(g.labels)} labels have no "
                        f"positive dev doc: {labels}. Their thresholds are not tuned (they "
                        "keep the component's)"
                    )
                else:
                    what = (
                        f"{len(g.no_dev_positive)} labels are the gold label of no dev "
                        f"doc: {labels}. Their class offsets stay 0"
                    )
                out.append(
                    f"Group {g.group!r}: {what}. Add dev docs with these labels (`convert "
                    "--split` stratifies on every label)."
                )
        return out


def check_bounds(floor: float, ceiling: float) -> None:
    """Raise ValueError unless 0 <= floor <= ceiling <= 1 (the tuned thresholds' bounds)."""
    if not 0.0 <= floor <= ceiling <= 1.0:
        raise ValueError(
            f"Thresholds need 0 <= min-threshold <= max-threshold <= 1, got {floor} and {ceiling}."
        )


def tune_pipeline(
    nlp: Language,
    examples: Iterable[Example],
    *,
    component: str = "mtl_textcat",
    floor: float = DEFAULT_FLOOR,
    ceiling: float = DEFAULT_CEILING,
    batch_size: int = 64,
    temperatures: bool = True,
    thresholds: bool = True,
    show_progress: bool = False,
) -> TuneResult:
    """Fit each group's temperature and each multilabel label's threshold on dev examples.

    The component's schema is replaced in place (`set_schema`); save with `nlp.to_disk`.

    nlp (Language): A trained pipeline holding the component.
    examples (Iterable[Example]): Dev examples with gold `doc.cats` ('{group}/{label}' keys).
    component (str): Name of the `mtl_textcat` component to tune.
    floor, ceiling (float): Bounds of the tuned thresholds.
    batch_size (int): Docs per batch through the pipeline.
    temperatures (bool): Whether to fit temperatures (else they are kept).
    thresholds (bool): Whether to tune thresholds (else they are kept).
    show_progress (bool): Show a tqdm progress bar while predicting.
    RETURNS (TuneResult): Before/after NLL, ECE and macro F per group, and the new schema.

    DOCS: docs/evaluate.md
    """
    comp = find_component(nlp, component)
    examples = list(examples)
    if not examples:
        raise ValueError("tune got no dev examples: check the dev corpus path.")
    truths, masks = read_gold(comp.schema, examples)
    others = [
        group.name
        for name in mtl_component_names(nlp)
        if name != component
        for group in find_component(nlp, name).schema.groups
    ]
    check_annotated(comp.schema, examples, masks, what="tune", component=component, others=others)
    logits = collect_logits(
        nlp,
        (eg.reference.text for eg in examples),
        component=component,
        batch_size=batch_size,
        n_docs=len(examples),
        show_progress=show_progress,
    )
    schema, groups = tune_arrays(
        comp.schema,
        logits,
        truths,
        masks,
        floor=floor,
        ceiling=ceiling,
        temperatures=temperatures,
        thresholds=thresholds,
    )
    comp.set_schema(schema)
    return TuneResult(
        component=component,
        n_docs=len(examples),
        groups=groups,
        schema=schema,
        floor=floor,
        ceiling=ceiling,
    )


def tune_arrays(
    schema: GroupSchema,
    logits: numpy.ndarray,
    truths: numpy.ndarray,
    masks: numpy.ndarray,
    *,
    floor: float = DEFAULT_FLOOR,
    ceiling: float = DEFAULT_CEILING,
    temperatures: bool = True,
    thresholds: bool = True,
) -> Tuple[GroupSchema, List[GroupTuneResult]]:
    """The tuning maths on arrays: (tuned schema, per-group results).

    logits, truths, masks (numpy.ndarray): (n_docs, n_labels) in schema order: raw logits,
        gold values and annotation masks (as `GoldReader.read_batch` gives them).
    Other arguments as in `tune_pipeline`.
    """
    check_bounds(floor, ceiling)
    logits = numpy.asarray(logits, dtype="f8")
    if logits.shape != (truths.shape[0], schema.n_labels):
        raise ValueError(
            f"Logits have shape {logits.shape}; expected ({truths.shape[0]}, {schema.n_labels}) "
            "for this schema."
        )
    new_schema = schema
    results = []
    for group, start, end in schema.slices():
        x, y, m = logits[:, start:end], truths[:, start:end], masks[:, start:end]
        mc = group.is_multiclass
        tuned_labels: Set[str] = set()
        at_bound = False
        fitted: Optional[float] = None
        if temperatures:
            fitted = fit_temperature(mc, x, y, m)
            if fitted is not None:
                at_bound = at_temperature_bound(fitted)
                if not at_bound:
                    new_schema = new_schema.replace_group(group.name, temperature=round(fitted, 6))
        no_positive = _labels_without_positive(group, y, m)
        probs_before = apply_temperature(mc, x, group.temperature)
        probs_after = apply_temperature(mc, x, new_schema[group.name].temperature)
        if not mc and thresholds:
            new_thresholds = dict(group.thresholds)
            for j, label in enumerate(group.labels):
                rows = m[:, j] > 0
                choice = best_threshold(
                    probs_after[rows, j],
                    y[rows, j],
                    floor=floor,
                    ceiling=ceiling,
                    default=group.threshold_for(label, schema.threshold),
                )
                if choice is not None:
                    new_thresholds[label] = round(choice.threshold, 6)
                    tuned_labels.add(label)
            new_schema = new_schema.replace_group(group.name, thresholds=new_thresholds)
        if mc and thresholds:
            rows = m[:, 0] > 0
            fitted_offsets = best_class_offsets(
                probs_after[rows],
                y[rows].argmax(axis=1),
                fixed=[label in no_positive for label in group.labels],
            )
            if fitted_offsets is not None:
                offsets = {
                    label: round(value, 6)
                    for label, value in zip(group.labels, fitted_offsets.offsets)
                    if value != 0.0
                }
                new_schema = new_schema.replace_group(group.name, class_offsets=offsets)
        new_group = new_schema[group.name]
        label_results: Dict[str, LabelTuneResult] = {}
        before = _group_scores(schema, group, y, m, probs_before)
        after = _group_scores(new_schema, new_group, y, m, probs_after)
        if not mc:
            for j, label in enumerate(group.labels):
                rows = m[:, j] > 0
                label_results[label] = LabelTuneResult(
                    threshold_before=group.threshold_for(label, schema.threshold),
                    threshold=new_group.threshold_for(label, schema.threshold),
                    f1_before=before["f_per_type"][label]["f"] if before["f_per_type"] else 0.0,
                    f1_after=after["f_per_type"][label]["f"] if after["f_per_type"] else 0.0,
                    n_positive=int((y[rows, j] > 0.5).sum()),
                    n_annotated=int(rows.sum()),
                    tuned=label in tuned_labels,
                )
        conf_b, out_b = calibration_pairs(mc, probs_before, y, m)
        conf_a, out_a = calibration_pairs(mc, probs_after, y, m)
        results.append(
            GroupTuneResult(
                group=group.name,
                kind=group.kind,
                n_docs=int((m > 0).any(axis=1).sum()),
                temperature_before=group.temperature,
                temperature=new_group.temperature,
                nll_before=_finite(group_nll(mc, x, y, m, group.temperature)),
                nll_after=_finite(group_nll(mc, x, y, m, new_group.temperature)),
                ece_before=_finite(expected_calibration_error(conf_b, out_b)),
                ece_after=_finite(expected_calibration_error(conf_a, out_a)),
                macro_f_before=before["macro_f"],
                macro_f_after=after["macro_f"],
                labels=label_results,
                temperature_at_bound=at_bound,
                temperature_fitted=None if fitted is None else round(fitted, 6),
                no_dev_positive=no_positive,
                class_offsets_before=dict(group.class_offsets),
                class_offsets=dict(new_group.class_offsets),
            )
        )
    return new_schema, results


def _labels_without_positive(group: LabelGroup, y: numpy.ndarray, m: numpy.ndarray) -> List[str]:
    """The group's labels with no gold positive among the annotated dev docs, in order."""
    positive = numpy.asarray(((y > 0.5) & (m > 0)).any(axis=0))
    return [label for j, label in enumerate(group.labels) if not positive[j]]


def corpus_groups(examples: Iterable[Example]) -> Dict[str, int]:
    """{group: docs with a gold key of it} over the examples' `doc.cats`, in first-seen
    order ('{group}/{label}' keys; a key without '/' counts as its own group)."""
    found: Dict[str, int] = {}
    for eg in examples:
        groups = {(split_key(key) or (key, ""))[0] for key in eg.reference.cats}
        for group in sorted(groups):
            found[group] = found.get(group, 0) + 1
    return found


def check_annotated(
    schema: GroupSchema,
    examples: Sequence[Example],
    masks: numpy.ndarray,
    *,
    what: str,
    component: str,
    others: Sequence[str] = (),
) -> None:
    """Refuse a corpus with no gold label of the component's groups (nothing to tune or
    score: a wrong corpus, or group names that differ), and one whose groups look
    misspelt: a group of the model with no gold label while the corpus has groups the
    model does not know. The message names both sides.

    examples (Sequence[Example]): The corpus.
    masks (numpy.ndarray): Their annotation masks for `schema` (`read_gold`).
    what (str): 'tune' or 'evaluate', for the message.
    component (str): The component's name, for the message.
    others (Sequence[str]): Groups of the pipeline's other mtl_textcat components: known.
    RAISES ValueError: As above.
    """
    found = corpus_groups(examples)
    mine = [group.name for group in schema.groups]
    missing = [group.name for group, start, end in schema.slices() if not masks[:, start:end].any()]
    unknown = [g for g in found if g not in mine and g not in others]
    if len(missing) < len(mine) and not (missing and unknown):
        return
    if not found:
        corpus = "its docs have no gold doc.cats at all"
    else:
        corpus = "its docs have gold labels of the groups " + ", ".join(
            f"{g!r} ({n:,} docs)" for g, n in found.items()
        )
    nothing = "none of them" if len(missing) == len(mine) else f"not {missing}"
    raise ValueError(
        f"Nothing to {what} for {nothing}: {component!r} predicts the groups {mine}, and of "
        f"the {len(examples):,} docs of this corpus {corpus}. Check the corpus (doc.cats keys "
        "are '{group}/{label}', as `spacy-mtl convert` writes them) and the group names."
    )


def save_tuned(nlp: Language, output_dir: Path, report_path: Path, report: Dict[str, Any]) -> None:
    """Save the tuned pipeline to `output_dir` and its report as JSON, or neither.

    The pipeline is written to a temporary folder beside `output_dir` and renamed into
    place (an earlier folder of that name is replaced), so a failed save (a read-only
    folder, a full disk) leaves no half-written pipeline that looks complete.

    RAISES ValueError: A folder or file cannot be written (names it and the cause).
    """
    import shutil
    import tempfile

    import srsly

    output_dir = Path(output_dir)
    tmp: Optional[Path] = None
    try:
        output_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", dir=output_dir.parent))
        nlp.to_disk(tmp)
        report_path.parent.mkdir(parents=True, exist_ok=True)
        srsly.write_json(report_path, report)
        if output_dir.exists():
            old = tmp.with_name(tmp.name + ".old")
            output_dir.rename(old)
            tmp.rename(output_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(output_dir)
        tmp = None
    except OSError as err:
        where = err.filename if err.filename is not None else output_dir
        raise ValueError(
            f"Cannot save the tuned pipeline to {output_dir}: {where}: {err.strerror or err}."
        ) from err
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _offsets_cell(offsets: Dict[str, float]) -> str:
    """The decision column of a multiclass group: its class offsets, or '-'."""
    return ", ".join(f"{label} {value:+.2f}" for label, value in offsets.items()) or "-"


def read_gold(
    schema: GroupSchema, examples: Iterable[Example]
) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """(truths, masks) of the examples' gold cats for this schema's groups.

    Keys of groups the schema does not know are left out, so a pipeline with several
    mtl_textcat components (or a plain textcat beside) can be read one schema at a time.
    """
    reader = GoldReader(schema)
    rows = []
    for eg in examples:
        cats = eg.reference.cats
        mine = {k: v for k, v in cats.items() if (split_key(k) or ("", ""))[0] in schema}
        rows.append((mine, eg.reference.text))
    return reader.read_batch(rows)


def collect_logits(
    nlp: Language,
    texts: Iterable[str],
    *,
    component: str = "mtl_textcat",
    batch_size: int = 64,
    n_docs: Optional[int] = None,
    show_progress: bool = False,
) -> numpy.ndarray:
    """Raw logits of the component for texts, (n_docs, n_labels), as numpy.

    The components before it (e.g. the transformer its listener reads) run first; the
    component itself and the ones after it do not run.
    """
    comp = find_component(nlp, component)
    docs = docs_before(nlp, component, texts, batch_size=batch_size)
    ops = comp.model.ops
    chunks = []
    progress = None
    if show_progress:
        from tqdm import tqdm

        progress = tqdm(total=n_docs, desc="predict", unit="doc", leave=False)
    for batch in minibatch(docs, size=batch_size):
        chunks.append(ops.to_numpy(comp.predict(batch)))
        if progress is not None:
            progress.update(len(batch))
    if progress is not None:
        progress.close()
    if not chunks:
        return numpy.zeros((0, comp.schema.n_labels), dtype="f")
    return numpy.concatenate(chunks, axis=0)


def _group_scores(
    schema: GroupSchema, group: LabelGroup, y: numpy.ndarray, m: numpy.ndarray, p: numpy.ndarray
) -> Dict[str, Any]:
    """The scorer's metrics of one group (keys without the mtl_{group}_ prefix)."""
    one = GroupSchema(groups=(group,), threshold=schema.threshold)
    scores = score_arrays(one, y, m, p)
    prefix = f"mtl_{group.name}_"
    return {k[len(prefix) :]: v for k, v in scores.items() if k.startswith(prefix)}


def _finite(value: float) -> Optional[float]:
    # nan → None (JSON null); + 0.0 turns a -0.0 into 0.0
    return None if value != value else float(value) + 0.0


def _json_ready(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (numpy.floating, numpy.integer)):
        return value.item()
    return value
