"""Per-group scores, computed only on the docs annotated for each group.

Keys (all plain Python floats, or None where nothing was annotated):
- multiclass group g: mtl_{g}_acc, mtl_{g}_macro_p, mtl_{g}_macro_r, mtl_{g}_macro_f,
  mtl_{g}_f_per_type ({label: {p, r, f}});
- multilabel group g: mtl_{g}_micro_p/_r/_f and mtl_{g}_macro_p/_r/_f at the group's
  thresholds, mtl_{g}_macro_auc, mtl_{g}_f_per_type, mtl_{g}_auc_per_type ({label: auc});
- mtl_score: the groups' macro F averaged with the groups' loss weights.

A conditional group (`parent`) is scored as above on its conditional scores, on the docs
annotated for it (where its gold condition holds), and also end to end:
mtl_{g}_e2e_macro_p/_r/_f, mtl_{g}_e2e_f_per_type (and mtl_{g}_e2e_acc for a multiclass
group) over the docs annotated for it plus those whose gold says a condition above it does
not hold (gold: no label); a label predicted where the predicted conditions block the group
counts as not predicted. mtl_{g}_e2e_n_docs is the number of docs in that count.
"""

from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import numpy
from spacy.training import Example
from spacy.util import registry

from .gold import GoldReader, gold_applies
from .schema import DEFAULT_THRESHOLD, GroupSchema, LabelGroup


@registry.scorers("spacy-mtl.mtl_scorer.v1")
def make_mtl_scorer() -> Callable[..., Dict[str, Any]]:
    """The `mtl_textcat` scorer (registered as spacy-mtl.mtl_scorer.v1)."""
    return score_mtl


def score_mtl(
    examples: Iterable[Example],
    *,
    groups: Dict[str, Dict[str, Any]],
    threshold: float = DEFAULT_THRESHOLD,
    unknown_groups: str = "warn",
    **kwargs: Any,
) -> Dict[str, Any]:
    """Score predicted doc.cats against gold doc.cats, group by group.

    examples (Iterable[Example]): Predicted docs with gold references.
    groups (Dict[str, Dict[str, Any]]): The component's groups config (its cfg["groups"]).
    threshold (float): Default multilabel threshold.
    unknown_groups (str): The component's setting: gold cats of a group not in `groups`
        are left out of the scores, unless it is "error" (GoldError). The component warns
        about them when it reads its training data; scoring does not warn again.
    **kwargs: Other component settings (`labels`, ...), ignored: TrainablePipe.score passes
        the whole cfg.
    RETURNS (Dict[str, Any]): The scores, see the module docstring.
    """
    schema = GroupSchema.from_config(groups, threshold=threshold)
    skip = "error" if unknown_groups == "error" else "skip"
    truths, masks, scores = gold_and_scores(examples, schema, unknown_groups=skip)
    return score_arrays(schema, truths, masks, scores)


def gold_and_scores(
    examples: Iterable[Example], schema: GroupSchema, *, unknown_groups: str = "error"
) -> Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
    """(truths, masks, predicted scores) arrays, (n_docs, n_labels), in schema order.

    unknown_groups (str): "error" or "skip", for gold cats of groups the schema lacks
        (see GoldReader).
    """
    reader = GoldReader(schema, unknown_groups=unknown_groups)
    keys = schema.keys
    gold_rows: List[Tuple[Dict[str, float], str]] = []
    score_rows: List[List[float]] = []
    for eg in examples:
        gold_rows.append((eg.reference.cats, eg.reference.text))
        predicted = eg.predicted.cats
        try:
            score_rows.append([float(predicted[key]) for key in keys])
        except KeyError as err:
            raise ValueError(
                f"The predicted doc {eg.predicted.text[:40]!r} has no score for {err.args[0]!r}: "
                "run the mtl_textcat component before scoring."
            ) from None
    truths, masks = reader.read_batch(gold_rows)
    scores = numpy.asarray(score_rows, dtype="f8").reshape((len(score_rows), schema.n_labels))
    return truths, masks, schema.scores_from_cats(scores).astype("f")


def score_arrays(
    schema: GroupSchema, truths: numpy.ndarray, masks: numpy.ndarray, scores: numpy.ndarray
) -> Dict[str, Any]:
    """Scores from (truths, masks, predicted scores) arrays (see gold_and_scores)."""
    results: Dict[str, Any] = {}
    weighted: List[Tuple[float, float]] = []
    for group, start, end in schema.slices():
        y, m, s = truths[:, start:end], masks[:, start:end], scores[:, start:end]
        if group.is_multiclass:
            group_scores = _score_multiclass(group, y, m[:, 0] > 0, s)
        else:
            group_scores = _score_multilabel(group, y, m > 0, s, schema.threshold)
        results.update({f"mtl_{group.name}_{name}": v for name, v in group_scores.items()})
        macro_f = group_scores["macro_f"]
        if macro_f is not None:
            weighted.append((group.weight, macro_f))
    if schema.is_conditional:
        results.update(_score_end_to_end(schema, truths, masks, scores))
    total_weight = sum(w for w, _ in weighted)
    if not weighted:
        results["mtl_score"] = None
    elif total_weight > 0:
        results["mtl_score"] = sum(w * f for w, f in weighted) / total_weight
    else:
        results["mtl_score"] = sum(f for _, f in weighted) / len(weighted)
    return results


def _prf(tp: float, fp: float, fn: float) -> Dict[str, float]:
    tp, fp, fn = float(tp), float(fp), float(fn)  # numpy floats must not leak into JSON
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"p": p, "r": r, "f": f}


def _macro(per_type: Dict[str, Dict[str, float]]) -> Dict[str, float]:
    n = len(per_type)
    return {f"macro_{k}": sum(prf[k] for prf in per_type.values()) / n for k in ("p", "r", "f")}


def _none_scores(names: Iterable[str]) -> Dict[str, Any]:
    return dict.fromkeys(names)


def _score_multiclass(
    group: LabelGroup, y: numpy.ndarray, annotated: numpy.ndarray, s: numpy.ndarray
) -> Dict[str, Any]:
    names = ["acc", "macro_p", "macro_r", "macro_f", "f_per_type"]
    if not annotated.any():
        return _none_scores(names)
    gold = y[annotated].argmax(axis=1)
    pred = group.decide_matrix(s[annotated]).argmax(axis=1)
    per_type = {}
    for j, label in enumerate(group.labels):
        tp = float(((pred == j) & (gold == j)).sum())
        fp = float(((pred == j) & (gold != j)).sum())
        fn = float(((pred != j) & (gold == j)).sum())
        per_type[label] = _prf(tp, fp, fn)
    return {"acc": float((gold == pred).mean()), **_macro(per_type), "f_per_type": per_type}


def _score_multilabel(
    group: LabelGroup,
    y: numpy.ndarray,
    annotated: numpy.ndarray,
    s: numpy.ndarray,
    default_threshold: float,
) -> Dict[str, Any]:
    names = ["micro_p", "micro_r", "micro_f", "macro_p", "macro_r", "macro_f", "macro_auc"]
    names += ["f_per_type", "auc_per_type"]
    if not annotated.any():
        return _none_scores(names)
    pred = group.decide_matrix(s, default_threshold)
    gold = y > 0.5
    tp = ((pred & gold) & annotated).sum(axis=0).astype(float)
    fp = ((pred & ~gold) & annotated).sum(axis=0).astype(float)
    fn = ((~pred & gold) & annotated).sum(axis=0).astype(float)
    per_type = {}
    per_auc: Dict[str, Optional[float]] = {}
    for j, label in enumerate(group.labels):
        per_type[label] = _prf(tp[j], fp[j], fn[j])
        per_auc[label] = roc_auc(gold[annotated[:, j], j], s[annotated[:, j], j])
    micro = _prf(float(tp.sum()), float(fp.sum()), float(fn.sum()))
    aucs = [a for a in per_auc.values() if a is not None]
    return {
        "micro_p": micro["p"],
        "micro_r": micro["r"],
        "micro_f": micro["f"],
        **_macro(per_type),
        "macro_auc": sum(aucs) / len(aucs) if aucs else None,
        "f_per_type": per_type,
        "auc_per_type": per_auc,
    }


def _score_end_to_end(
    schema: GroupSchema, truths: numpy.ndarray, masks: numpy.ndarray, scores: numpy.ndarray
) -> Dict[str, Any]:
    """The e2e scores of the conditional groups (see the module docstring)."""
    results: Dict[str, Any] = {}
    state = gold_applies(schema, truths, masks)
    decided = schema.decide_batch(scores)
    for (group, start, end), (chosen, applies) in zip(schema.slices(), decided):
        if applies is None:
            continue
        prefix = f"mtl_{group.name}_e2e_"
        rows = state[group.name] >= 0
        names = ["macro_p", "macro_r", "macro_f", "f_per_type"]
        names += ["acc"] if group.is_multiclass else []
        results[prefix + "n_docs"] = int(rows.sum())
        if not rows.any():
            results.update({prefix + name: None for name in names})
            continue
        applies_gold = (state[group.name] == 1)[rows]
        # Which (doc, label) pairs count: all of a doc known not to apply (gold: no label);
        # the annotated ones of a doc that applies.
        counted = numpy.where(applies_gold[:, None], masks[rows, start:end] > 0, True)
        gold = (truths[rows, start:end] > 0.5) & applies_gold[:, None]
        pred = chosen[rows] & applies[rows][:, None]
        tp = (pred & gold & counted).sum(axis=0)
        fp = (pred & ~gold & counted).sum(axis=0)
        fn = (~pred & gold & counted).sum(axis=0)
        per_type = {label: _prf(tp[j], fp[j], fn[j]) for j, label in enumerate(group.labels)}
        results.update({prefix + k: v for k, v in _macro(per_type).items()})
        results[prefix + "f_per_type"] = per_type
        if group.is_multiclass:
            # Right: the gold label decided, or no label where the group does not apply.
            right = numpy.where(applies_gold, (pred == gold).all(axis=1), ~pred.any(axis=1))
            results[prefix + "acc"] = float(right.mean())
    return results


def roc_auc(gold: numpy.ndarray, scores: numpy.ndarray) -> Optional[float]:
    """Area under the ROC curve (ties count half); None unless both classes are present.

    The Mann-Whitney form: the chance that a random positive outscores a random negative.
    """
    gold = numpy.asarray(gold, dtype=bool)
    n_pos = int(gold.sum())
    n_neg = int(gold.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = _average_ranks(numpy.asarray(scores, dtype="f8"))
    return float((ranks[gold].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(values: numpy.ndarray) -> numpy.ndarray:
    """1-based ranks, tied values sharing their average rank."""
    order = numpy.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # Start of each run of equal values, and the average rank of the run.
    starts = numpy.flatnonzero(numpy.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = numpy.r_[starts[1:], len(values)]
    run_rank = (starts + 1 + ends) / 2.0
    ranks = numpy.empty(len(values), dtype="f8")
    ranks[order] = numpy.repeat(run_rank, ends - starts)
    return ranks
