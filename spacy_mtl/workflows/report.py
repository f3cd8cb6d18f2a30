"""Evaluate a pipeline on a DocBin corpus: `metrics.json`, and a Markdown report with plots.

`evaluate_to_dir` runs the pipeline once and writes, under the output folder:
- `metrics.json`: the scores of `nlp.evaluate` (as `spacy evaluate` computes them), top-level
  numbers only, as plain floats, plus `speed` (words per second);
- `report.md`: per group, a summary table (macro F, accuracy or micro F, macro AUC, ECE,
  annotated docs), a per-label table, and links to the PNGs in `plots/`: per-label F1
  bars, a confusion matrix (multiclass), precision-recall curves (multilabel) and a
  reliability diagram.

This module holds the data (`GroupReport`, `group_reports`) and the run; the Markdown and
the plots are rendered by `report_render`, the explanations by `report_explain`. The plots
are drawn by `spacy_mtl.workflows.plots` with matplotlib, an optional dependency
(`pip install spacy-mtl[report]`) imported only when plots are drawn.

DOCS: docs/evaluate.md
"""

import math
from dataclasses import dataclass, field
from pathlib import Path
from timeit import default_timer as timer
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy
import srsly
from spacy.language import Language
from spacy.scorer import Scorer
from spacy.training import Corpus, Example

from ..data.io import cannot_write
from ..schema import GroupSchema, LabelGroup
from ..scorer import roc_auc, score_arrays
from ..tables import Table, number_or_dash
from .calibration import (
    N_BINS,
    ReliabilityBins,
    average_precision,
    calibration_pairs,
    reliability_bins,
)
from .loading import find_component, mtl_component_names
from .plots import require_matplotlib
from .report_explain import (
    EXPLANATIONS_FILE,
    ExplainedCase,
    explain_reports,
    write_explanations_html,
)
from .report_render import render_report, write_plots
from .tune import check_annotated, read_gold

METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"
PLOTS_DIR = "plots"

PathLike = Union[str, Path]


@dataclass
class LabelReport:
    """One label's scores in the report (None where undefined)."""

    label: str
    support: int
    n_annotated: int
    p: float
    r: float
    f: float
    auc: Optional[float]
    ap: Optional[float] = None
    threshold: Optional[float] = None


@dataclass
class GroupReport:
    """One group's scores, and the arrays its plots are drawn from.

    component (str): Name of the mtl_textcat component predicting the group.
    group (LabelGroup): The group (labels, kind, thresholds, temperature).
    n_docs (int): Docs annotated for the group (for at least one label if multilabel).
    macro_f, acc, micro_f, macro_auc, ece: Group scores; acc for multiclass, micro_f for
        multilabel, None where undefined.
    labels (List[LabelReport]): Per-label scores in label order.
    e2e (Dict[str, Any]): A conditional group's end-to-end scores (the scorer's
        mtl_{g}_e2e_* without the prefix: n_docs, macro_f, acc, ...); empty otherwise.
    plots (Dict[str, Path]): {plot kind: PNG path}, filled by `write_plots`.
    explanations (List[ExplainedCase]): Explained test docs, filled by `explain_reports`.
    """

    component: str
    group: LabelGroup
    n_docs: int
    macro_f: Optional[float]
    acc: Optional[float]
    micro_f: Optional[float]
    macro_auc: Optional[float]
    ece: Optional[float]
    labels: List[LabelReport]
    truths: numpy.ndarray = field(repr=False)
    masks: numpy.ndarray = field(repr=False)
    probs: numpy.ndarray = field(repr=False)
    e2e: Dict[str, Any] = field(default_factory=dict)
    plots: Dict[str, Path] = field(default_factory=dict)
    explanations: List[ExplainedCase] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.group.name

    def reliability(self) -> ReliabilityBins:
        conf, outcome = calibration_pairs(
            self.group.is_multiclass, self.probs, self.truths, self.masks
        )
        return reliability_bins(conf, outcome, N_BINS)

    def confusion(self) -> numpy.ndarray:
        """Counts (gold row, predicted column) over annotated docs (multiclass)."""
        rows = self.masks[:, 0] > 0
        k = len(self.group.labels)
        gold = self.truths[rows].argmax(axis=1)
        pred = self.group.decide_matrix(self.probs[rows]).argmax(axis=1)
        matrix = numpy.zeros((k, k), dtype=int)
        numpy.add.at(matrix, (gold, pred), 1)
        return matrix


@dataclass
class EvaluateResult:
    """What `evaluate_to_dir` measured and wrote (no paths when it wrote nothing)."""

    metrics: Dict[str, float]
    scores: Dict[str, Any]
    groups: List[GroupReport]
    metrics_path: Optional[Path]
    report_path: Optional[Path]
    plot_paths: List[Path]
    explanations_path: Optional[Path] = None

    def table(self) -> Table:
        """One row per group: docs, macro F, accuracy or micro F, macro AUC, ECE."""
        rows = [
            (
                g.name,
                g.group.kind,
                str(g.n_docs),
                number_or_dash(g.macro_f),
                number_or_dash(g.acc if g.group.is_multiclass else g.micro_f),
                number_or_dash(g.macro_auc),
                number_or_dash(g.ece),
            )
            for g in self.groups
        ]
        header = ("group", "kind", "docs", "macro F", "acc/micro F", "macro AUC", "ECE")
        return Table(rows, header=header)


# -- running ----------------------------------------------------------------------------


def check_corpus_path(path: PathLike) -> Path:
    """The path of a corpus: a .spacy file or a folder holding one; FileNotFoundError
    naming the path otherwise."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Corpus not found: {path} (expected a .spacy file or a folder).")
    if path.is_dir() and not any(path.rglob("*.spacy")):
        raise FileNotFoundError(f"No .spacy file in the folder {path}.")
    return path


def load_corpus(nlp: Language, path: PathLike) -> List[Example]:
    """Examples from a .spacy file or a folder of them (as spaCy's Corpus reads them).

    Raises FileNotFoundError naming the path when it does not exist or holds no .spacy
    file, and ValueError when it holds no doc.
    """
    path = check_corpus_path(path)
    examples = list(Corpus(path)(nlp))
    if not examples:
        raise ValueError(f"The corpus {path} holds no docs.")
    return examples


def predict_examples(
    nlp: Language,
    examples: Iterable[Example],
    *,
    batch_size: int = 64,
    show_progress: bool = False,
) -> Tuple[List[Example], Dict[str, Any]]:
    """Run the pipeline over the examples' texts and score them, as `nlp.evaluate` does.

    Returns (the examples with their predicted docs, the scores dict with `speed` in words
    per second). `nlp.evaluate` keeps its predictions to itself; the report needs them, so
    this repeats its steps (tokenizer timed with the pipeline) on copies of the examples.
    show_progress (bool): A tqdm bar of the docs predicted (on stderr, off when it is not a
        terminal).
    """
    examples = [Example(nlp.make_doc(eg.reference.text), eg.reference) for eg in examples]
    progress = None
    if show_progress:
        from tqdm import tqdm

        progress = tqdm(total=len(examples), desc="evaluate", unit="doc", leave=False, disable=None)
    start = timer()
    for eg in examples:
        nlp.make_doc(eg.reference.text)  # timed, as nlp.evaluate times the tokenizer
    docs = nlp.pipe((eg.predicted for eg in examples), batch_size=batch_size)
    for eg, doc in zip(examples, docs):
        eg.predicted = doc
        if progress is not None:
            progress.update(1)
    elapsed = timer() - start
    if progress is not None:
        progress.close()
    scores = Scorer(nlp=nlp).score(examples)
    n_words = sum(len(eg.predicted) for eg in examples)
    scores["speed"] = n_words / elapsed if elapsed > 0 else 0.0
    return examples, scores


def _check_gold(nlp: Language, examples: Sequence[Example], components: Sequence[str]) -> None:
    """Refuse a corpus with nothing to score for the components (no gold doc.cats of
    their groups, or groups that look misspelt): scores of nothing would look like a
    result. See `tune.check_annotated`."""
    for name in components:
        schema = find_component(nlp, name).schema
        others = [
            group.name
            for other in mtl_component_names(nlp)
            if other != name
            for group in find_component(nlp, other).schema.groups
        ]
        _, masks = read_gold(schema, examples)
        check_annotated(schema, examples, masks, what="evaluate", component=name, others=others)


def metrics_dict(scores: Dict[str, Any]) -> Dict[str, float]:
    """The top-level numeric scores as plain floats (nested per-label dicts and None left out)."""
    out: Dict[str, float] = {}
    for key, value in scores.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, numpy.number)):
            continue
        value = float(value)
        if math.isfinite(value):
            out[key] = value
    return out


def group_reports(
    nlp: Language, examples: Sequence[Example], components: Optional[Sequence[str]] = None
) -> List[GroupReport]:
    """Per-group report data from examples whose predicted docs hold the pipeline's cats."""
    reports = []
    for name in mtl_component_names(nlp, components):
        schema: GroupSchema = find_component(nlp, name).schema
        truths, masks = read_gold(schema, examples)
        cats = numpy.asarray(
            [[float(eg.predicted.cats.get(key, 0.0)) for key in schema.keys] for eg in examples],
            dtype="f8",
        ).reshape((len(examples), schema.n_labels))
        probs = schema.scores_from_cats(cats)
        scores = score_arrays(schema, truths, masks, probs)
        for group, start, end in schema.slices():
            reports.append(
                _group_report(
                    name,
                    schema,
                    group,
                    scores,
                    truths[:, start:end],
                    masks[:, start:end],
                    probs[:, start:end],
                )
            )
    return reports


def _group_report(
    component: str,
    schema: GroupSchema,
    group: LabelGroup,
    scores: Dict[str, Any],
    y: numpy.ndarray,
    m: numpy.ndarray,
    p: numpy.ndarray,
) -> GroupReport:
    prefix = f"mtl_{group.name}_"
    per_type = scores[prefix + "f_per_type"] or {}
    mc = group.is_multiclass
    annotated = m > 0
    labels = []
    for j, label in enumerate(group.labels):
        rows = annotated[:, 0] if mc else annotated[:, j]
        gold = y[rows, j] > 0.5
        prf = per_type.get(label, {"p": 0.0, "r": 0.0, "f": 0.0})
        labels.append(
            LabelReport(
                label=label,
                support=int(gold.sum()),
                n_annotated=int(rows.sum()),
                p=prf["p"],
                r=prf["r"],
                f=prf["f"],
                auc=roc_auc(gold, p[rows, j]),
                ap=None if mc else average_precision(p[rows, j], gold),
                threshold=None if mc else group.threshold_for(label, schema.threshold),
            )
        )
    conf, outcome = calibration_pairs(mc, p, y, m)
    ece = reliability_bins(conf, outcome).ece if len(conf) else None
    if mc:
        aucs = [lab.auc for lab in labels if lab.auc is not None]
        macro_auc = sum(aucs) / len(aucs) if aucs else None
    else:
        macro_auc = scores[prefix + "macro_auc"]
    return GroupReport(
        component=component,
        group=group,
        n_docs=int(annotated.any(axis=1).sum()),
        macro_f=scores[prefix + "macro_f"],
        acc=scores.get(prefix + "acc"),
        micro_f=scores.get(prefix + "micro_f"),
        macro_auc=macro_auc,
        ece=ece,
        labels=labels,
        truths=y,
        masks=m,
        probs=p,
        e2e={
            key[len(prefix + "e2e_") :]: value
            for key, value in scores.items()
            if key.startswith(prefix + "e2e_")
        },
    )


def evaluate_to_dir(
    nlp: Language,
    examples: Iterable[Example],
    output_dir: Optional[PathLike],
    *,
    components: Optional[Sequence[str]] = None,
    batch_size: int = 64,
    plots: bool = True,
    model_name: str = "",
    data_name: str = "",
    show_progress: bool = False,
    explain: int = 3,
) -> EvaluateResult:
    """Evaluate the pipeline and write metrics.json, report.md and plots/ under output_dir.

    nlp (Language): The trained pipeline.
    examples (Iterable[Example]): Gold examples (e.g. from `load_corpus`).
    output_dir (Optional[PathLike]): Folder to write to (created if needed); None writes
        nothing (`spacy-mtl evaluate` without --output) and draws no plots.
    components (Optional[Sequence[str]]): mtl_textcat components to report on; all by default.
    batch_size (int): Docs per batch through the pipeline.
    plots (bool): Draw the PNG plots (needs matplotlib).
    model_name, data_name (str): Shown in the report's heading.
    show_progress (bool): A progress bar while the pipeline runs.
    explain (int): Per group, explain this many of the most confidently right and of the
        most confidently wrong docs in the report (occlusion; 0: none). Only with output_dir.
    RETURNS (EvaluateResult): The metrics, group reports and the paths written.

    DOCS: docs/evaluate.md
    """
    examples = list(examples)
    if not examples:
        raise ValueError("evaluate got no examples: check the corpus path.")
    components = mtl_component_names(nlp, components)
    _check_gold(nlp, examples, components)
    plots = plots and output_dir is not None
    if plots:
        require_matplotlib()  # fail before the (slow) prediction, not after it
    if output_dir is not None:
        problem = cannot_write(output_dir, folder=True)
        if problem is not None:  # before the prediction, not after it
            raise ValueError(f"Cannot write the evaluation to {output_dir}: {problem}.")
    predicted, scores = predict_examples(
        nlp, examples, batch_size=batch_size, show_progress=show_progress
    )
    reports = group_reports(nlp, predicted, components)
    metrics = metrics_dict(scores)
    if output_dir is None:
        return EvaluateResult(metrics, scores, reports, None, None, [])
    output_dir = Path(output_dir)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        metrics_path = output_dir / METRICS_FILE
        srsly.write_json(metrics_path, metrics)
        plot_paths: List[Path] = []
        if plots:
            plot_dir = output_dir / PLOTS_DIR
            plot_dir.mkdir(exist_ok=True)
            prefix_component = len(components) > 1
            for report in reports:
                plot_paths.extend(write_plots(report, plot_dir, prefix_component=prefix_component))
        explanations_path = None
        if explain > 0 and explain_reports(
            nlp, reports, predicted, k=explain, batch_size=batch_size
        ):
            name = model_name or _model_name(nlp)
            explanations_path = write_explanations_html(
                reports, output_dir / EXPLANATIONS_FILE, f"Explanations: {name}"
            )
        report_path = output_dir / REPORT_FILE
        text = render_report(
            reports,
            metrics,
            n_docs=len(predicted),
            n_words=sum(len(eg.predicted) for eg in predicted),
            model_name=model_name or _model_name(nlp),
            data_name=data_name,
            base=output_dir,
        )
        report_path.write_text(text, encoding="utf8")
    except OSError as err:  # a full disk, a folder made read-only meanwhile
        where = err.filename if err.filename is not None else output_dir
        raise ValueError(
            f"Cannot write the evaluation to {output_dir}: {where}: {err.strerror or err}."
        ) from err
    return EvaluateResult(
        metrics=metrics,
        scores=scores,
        groups=reports,
        metrics_path=metrics_path,
        report_path=report_path,
        plot_paths=plot_paths,
        explanations_path=explanations_path,
    )


def write_performance(model_dir: PathLike, metrics: Dict[str, float], *, data_name: str) -> Path:
    """Put evaluate's scores into the pipeline folder's meta.json as `performance`, as
    `spacy train` does with its dev scores, so `spacy package` and a Hugging Face Hub card
    show them. The training-time dev scores are replaced (they describe the same model on
    other data); `meta["spacy_mtl"]["performance_data"]` says which data the scores are from.

    model_dir (PathLike): A pipeline folder (not an installed package: its meta is not ours
        to edit).
    metrics (Dict[str, float]): What `evaluate_to_dir` wrote to metrics.json.
    data_name (str): The corpus scored (a path), recorded with the scores.
    RETURNS (Path): The meta.json written.
    """
    meta_path = Path(model_dir) / "meta.json"
    if not meta_path.is_file():
        raise FileNotFoundError(
            f"{meta_path} does not exist: --write-meta needs a pipeline folder, not a package "
            "name (evaluate the folder the package was built from)."
        )
    meta = srsly.read_json(meta_path)
    meta.update(performance_of(metrics, data_name=data_name))
    srsly.write_json(meta_path, meta)
    return meta_path


def performance_of(metrics: Dict[str, float], *, data_name: str) -> Dict[str, Any]:
    """The meta.json keys that carry evaluate's scores: `performance` (what `spacy train`
    writes there: every score, `speed` last) and `spacy_mtl.performance_data`."""
    performance = {key: value for key, value in metrics.items() if key != "speed"}
    performance["speed"] = metrics.get("speed", 0.0)
    return {"performance": performance, "spacy_mtl": {"performance_data": data_name}}


def _model_name(nlp: Language) -> str:
    meta = nlp.meta
    return f"{meta.get('lang', '')}_{meta.get('name', 'pipeline')}-{meta.get('version', '')}"


__all__ = [
    "EvaluateResult",
    "GroupReport",
    "LabelReport",
    "check_corpus_path",
    "evaluate_to_dir",
    "group_reports",
    "load_corpus",
    "metrics_dict",
    "predict_examples",
    "render_report",
    "write_plots",
]
