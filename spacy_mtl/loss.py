"""Masked, weighted cross-entropy and binary cross-entropy on logits (numpy or cupy).

The definitions are torch's, with `reduction="mean"` over what is annotated:
- multiclass: `cross_entropy(logits_g, y, weight=class_weights)` over the docs annotated for
  the group: Σ_i w[y_i]·(−log softmax(x_i)[y_i]) / Σ_i w[y_i] (without class weights, the
  plain mean over annotated docs, as torch's `ignore_index` does);
- multilabel: `binary_cross_entropy_with_logits(x, y, pos_weight=pw)` per annotated
  (doc, label) pair, −[pw·y·log σ(x) + (1−y)·log(1−σ(x))], reduced by the group's
  `reduction`: "doc" sums each doc's pairs and averages over the annotated docs (a per-doc
  negative log-likelihood, on the scale of a multiclass group's cross-entropy); "pair"
  averages over the annotated pairs (torch's `reduction="mean"`), which gives a K-label group
  ~1/K of the per-label signal.
The total is Σ_g weight_g·L_g. A group with nothing annotated in the batch contributes 0 and
no gradient (torch would return NaN for an empty mean).

Uncertainty weighting (Kendall, Gal & Cipolla 2018, eq. 10 for classification) learns a
log-variance s_g = log σ_g² per group: the total is Σ_g exp(−s_g)·weight_g·L_g + s_g/2 over
the groups annotated in the batch. At its optimum exp(−s_g) = 1 / (2·weight_g·L_g): a group
whose loss is small (an easy or nearly learnt one) is weighted up, a large one down.
"""

import math
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

from .schema import GroupSchema


@dataclass
class LossResult:
    total: float
    per_group: Dict[str, float]
    d_logits: Any  # Floats2d on the ops' device
    # With uncertainty weighting: d total / d s_g, one per group (0 for a group with nothing
    # annotated in the batch, which says nothing about its variance).
    d_log_vars: Optional[Any] = None


def softplus(xp: Any, x: Any) -> Any:
    """log(1 + exp(x)) without overflow."""
    return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))


def log_softmax(xp: Any, x: Any) -> Any:
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))


def sigmoid(xp: Any, x: Any) -> Any:
    # exp(-|x|) never overflows; the two branches are the same function.
    z = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))


def softmax(xp: Any, x: Any) -> Any:
    return xp.exp(log_softmax(xp, x))


def multiclass_loss(
    xp: Any, logits: Any, truths: Any, annotated: Any, class_weights: Any = None
) -> Tuple[float, Any]:
    """Cross-entropy of one multiclass group and its gradient on the logits.

    logits, truths (n, k): truths one-hot on annotated rows.
    annotated (n,): 1.0 where the doc is annotated for the group.
    class_weights (k,) or None.
    """
    log_p = log_softmax(xp, logits)
    # Weight of each doc: w[y_i] (1.0 without class weights), 0 where not annotated.
    doc_weight = annotated if class_weights is None else (truths * class_weights).sum(axis=1)
    doc_weight = doc_weight * annotated
    denom = float(doc_weight.sum())
    if denom == 0.0:
        return 0.0, xp.zeros_like(logits)
    nll = -(truths * log_p).sum(axis=1)
    loss = float((doc_weight * nll).sum()) / denom
    d_logits = (xp.exp(log_p) - truths) * (doc_weight / denom)[:, None]
    return loss, d_logits.astype(logits.dtype)


def multilabel_loss(
    xp: Any,
    logits: Any,
    truths: Any,
    mask: Any,
    pos_weight: Any = None,
    reduction: str = "doc",
) -> Tuple[float, Any]:
    """Binary cross-entropy with logits of one multilabel group and its gradient.

    logits, truths, mask (n, k): mask 1.0 on annotated (doc, label) pairs.
    pos_weight (k,) or None.
    reduction (str): "doc" (the summed BCE of each annotated doc, averaged over those docs)
        or "pair" (the mean over annotated pairs).
    """
    if reduction == "doc":
        n_annotated = float((mask.sum(axis=1) > 0).sum())
    elif reduction == "pair":
        n_annotated = float(mask.sum())
    else:
        raise ValueError(f"reduction must be 'doc' or 'pair', got {reduction!r}.")
    if n_annotated == 0.0:
        return 0.0, xp.zeros_like(logits)
    pw = 1.0 if pos_weight is None else pos_weight
    # log σ(x) = −softplus(−x); log(1 − σ(x)) = −softplus(x)
    losses = pw * truths * softplus(xp, -logits) + (1.0 - truths) * softplus(xp, logits)
    loss = float((losses * mask).sum()) / n_annotated
    probs = sigmoid(xp, logits)
    d_logits = (probs * (pw * truths + 1.0 - truths) - pw * truths) * mask / n_annotated
    return loss, d_logits.astype(logits.dtype)


def group_loss(
    xp: Any,
    schema: GroupSchema,
    logits: Any,
    truths: Any,
    mask: Any,
    log_vars: Optional[Sequence[float]] = None,
) -> LossResult:
    """Σ_g weight_g · L_g over the schema's groups, with the gradient on all logits.

    log_vars (Optional[Sequence[float]]): s_g per group, in schema order, for uncertainty
        weighting: the total is then Σ_g exp(−s_g)·weight_g·L_g + s_g/2 over the groups
        annotated in the batch, and `d_log_vars` holds its gradient with respect to s.
    """
    d_logits = xp.zeros_like(logits)
    per_group: Dict[str, float] = {}
    total = 0.0
    slices = schema.slices()
    if log_vars is not None and len(log_vars) != len(slices):
        raise ValueError(f"log_vars has {len(log_vars)} values for {len(slices)} groups.")
    d_log_vars = None if log_vars is None else [0.0] * len(slices)
    for g, (group, start, end) in enumerate(slices):
        x = logits[:, start:end]
        y = truths[:, start:end]
        m = mask[:, start:end]
        if group.is_multiclass:
            weights = group.label_weights("class_weights")
            cw = None if weights is None else xp.asarray(weights, dtype=logits.dtype)
            loss, d_x = multiclass_loss(xp, x, y, m[:, 0], cw)
        else:
            weights = group.label_weights("pos_weight")
            pw = None if weights is None else xp.asarray(weights, dtype=logits.dtype)
            loss, d_x = multilabel_loss(xp, x, y, m, pw, group.reduction)
        per_group[group.name] = loss
        scale = group.weight
        if log_vars is not None and d_log_vars is not None and bool(m.any()):
            precision = math.exp(-float(log_vars[g]))
            scale = precision * group.weight
            total += 0.5 * float(log_vars[g])
            d_log_vars[g] = 0.5 - scale * loss
        total += scale * loss
        d_logits[:, start:end] = scale * d_x
    return LossResult(total=total, per_group=per_group, d_logits=d_logits, d_log_vars=d_log_vars)


def activate_group(xp: Any, is_multiclass: bool, logits: Any, temperature: float = 1.0) -> Any:
    """One group's probabilities: softmax(x / T) (multiclass) or sigmoid(x / T) (multilabel).

    The one activation of spacy_mtl: calibration calls it for a group; `activate` (the
    component, distillation) for all groups at once.
    """
    x = logits if temperature == 1.0 else logits / temperature
    return softmax(xp, x) if is_multiclass else sigmoid(xp, x)


def activate(
    xp: Any, schema: GroupSchema, logits: Any, *, temperature: Optional[float] = None
) -> Any:
    """Per-group probabilities of (n_docs, n_labels) logits (see `activate_group`).

    temperature (Optional[float]): None divides each group's logits by the group's own
        temperature (prediction); a number is used for every group (a teacher's logits in
        distillation).
    """
    # `activate_group` in fewer calls: every multilabel column in one call (the sigmoid is
    # elementwise), each multiclass group in its own (schema.activation_layout, made once per
    # schema); the temperatures divide all columns at once first.
    layout = schema.activation_layout
    x = logits
    if temperature is not None:
        x = logits if temperature == 1.0 else logits / temperature
    elif layout.temperatures is not None:
        x = logits / xp.asarray(layout.temperatures, dtype=logits.dtype)
    scores = xp.empty_like(logits)
    if layout.sigmoid_columns is not None:
        columns = layout.sigmoid_columns
        scores[:, columns] = activate_group(xp, False, x[:, columns])
    for start, end in layout.softmax_slices:
        scores[:, start:end] = activate_group(xp, True, x[:, start:end])
    return scores
