"""The `mtl_textcat` component: several label groups, one model, one forward pass.

DOCS: docs/component.md.
"""

import math
import warnings
from collections import Counter
from dataclasses import replace
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Set, Tuple, Union

import numpy
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.vocab import Vocab
from thinc.api import Config, Model, Optimizer, set_dropout_rate
from thinc.types import Floats2d

# Registers the architecture and scorer that the default config names: the entry point of
# the factory must be enough for `spacy train` without --code.
from . import architectures as _architectures  # noqa: F401
from . import scorer as _scorer
from .errors import Errors, ModelLoadError, MTLWarning, SchemaError, format_labels
from .gold import GoldReader, gold_applies, stratum_of
from .loss import LossResult, activate, group_loss
from .schema import GroupSchema, infer_groups, infer_labels, split_key
from .teacher import TEACHER_ATTR, TeacherReader, blend_targets, schedule_value

DEFAULT_MODEL_CONFIG = """
[model]
@architectures = "spacy-mtl.MultiGroupClassifier.v1"
pooling = "mean"
hidden_width = 0
dropout = 0.1

[model.tok2vec]
@architectures = "spacy-transformers.TransformerListener.v1"
grad_factor = 1.0
upstream = "*"

[model.tok2vec.pooling]
@layers = "reduce_mean.v1"
"""
# The model attribute that records what the output columns mean (GroupSchema.fingerprint):
# saved with the weights, checked against `cfg` on load.
FINGERPRINT_ATTR = "mtl_fingerprint"

DEFAULT_MODEL = Config().from_str(DEFAULT_MODEL_CONFIG)["model"]
# The names of spacy-transformers' and spaCy's listener layers (a tok2vec fed by another
# component of the pipeline).
LISTENER_LAYERS = ("transformer-listener", "tok2vec-listener")
# How the group losses are combined (see MultiGroupTextCategorizer.__init__).
WEIGHTINGS = ("fixed", "uncertainty")
# What the component does with gold cats of groups not in its `groups` (see __init__).
UNKNOWN_GROUPS = ("warn", "error", "ignore")

# Only docs that carry teacher logits (doc._.mtl_teacher) are affected: see distill.py.
DEFAULT_DISTILL_CONFIG = """
[distill]
temperature = 1.0

[distill.gold_weight]
@schedules = "spacy-mtl.linear.v1"
start = 0.0
stop = 1.0
steps = 2000
"""
DEFAULT_DISTILL = Config().from_str(DEFAULT_DISTILL_CONFIG)["distill"]

for _name in ("mtl_scores", "mtl_labels", TEACHER_ATTR):
    if not Doc.has_extension(_name):
        Doc.set_extension(_name, default=None)


@Language.factory(
    "mtl_textcat",
    assigns=["doc.cats", "doc._.mtl_scores", "doc._.mtl_labels"],
    default_config={
        "model": DEFAULT_MODEL,
        "groups": {},
        "threshold": 0.5,
        "distill": DEFAULT_DISTILL,
        "lr_scale": 1.0,
        "weighting": "fixed",
        "weighting_lr_scale": 100.0,
        "unknown_groups": "warn",
        "scorer": {"@scorers": "spacy-mtl.mtl_scorer.v1"},
    },
    default_score_weights={"mtl_score": 1.0},
)
def make_mtl_textcat(
    nlp: Language,
    name: str,
    model: Model[List[Doc], Floats2d],
    groups: Dict[str, Dict[str, Any]],
    threshold: float,
    distill: Dict[str, Any],
    lr_scale: float,
    weighting: str,
    weighting_lr_scale: float,
    scorer: Optional[Callable],
    unknown_groups: str = "warn",
) -> "MultiGroupTextCategorizer":
    """Create a `mtl_textcat` component (see MultiGroupTextCategorizer)."""
    return MultiGroupTextCategorizer(
        nlp.vocab,
        model,
        name,
        groups=groups,
        threshold=threshold,
        distill=distill,
        lr_scale=lr_scale,
        weighting=weighting,
        weighting_lr_scale=weighting_lr_scale,
        scorer=scorer,
        unknown_groups=unknown_groups,
    )


class MultiGroupTextCategorizer(TrainablePipe):
    """Predicts several label groups, multiclass (softmax) and multilabel (sigmoid), at once.

    Gold and predictions live in `doc.cats` under '{group}/{label}' keys; predictions also
    in `doc._.mtl_scores` ({group: {label: score}}) and `doc._.mtl_labels` ({group: label}
    for multiclass, {group: [labels at or above threshold]} for multilabel).
    The schema (groups, labels, weights, thresholds) lives in `self.cfg`, so it is saved and
    loaded with the component.
    """

    def __init__(
        self,
        vocab: Vocab,
        model: Model[List[Doc], Floats2d],
        name: str = "mtl_textcat",
        *,
        groups: Dict[str, Dict[str, Any]],
        threshold: float = 0.5,
        distill: Optional[Dict[str, Any]] = None,
        lr_scale: float = 1.0,
        weighting: str = "fixed",
        weighting_lr_scale: float = 100.0,
        scorer: Optional[Callable] = _scorer.score_mtl,
        unknown_groups: str = "warn",
    ) -> None:
        """Initialize the component.

        vocab (Vocab): The shared vocabulary.
        model (Model[List[Doc], Floats2d]): Maps docs to logits of every label, in schema
            order (e.g. `spacy-mtl.MultiGroupClassifier.v1`).
        name (str): The component's name; the key of its loss in `losses`.
        groups (Dict[str, Dict[str, Any]]): {group: {kind, labels, weight, threshold,
            class_weights, pos_weight, temperature}}; labels may be [] to infer them.
        threshold (float): Default decision threshold of multilabel groups.
        distill (Optional[Dict[str, Any]]): For docs with teacher logits in
            `doc._.mtl_teacher`: `gold_weight`, a number or a schedule called with the
            update number (`spacy-mtl.linear.v1`), λ in target = λ·gold + (1 − λ)·teacher;
            `temperature`, which divides the teacher's logits. Docs without teacher logits
            train on gold alone.
        lr_scale (float): Multiplies the optimizer's learning rate for this component's own
            weights. With a transformer listener those are the pooling heads only (the
            transformer component updates the encoder at the base rate), so a fresh head can
            learn faster than a fine-tuning rate of 2e-5..1e-4 allows.
        weighting (str): "fixed": the loss is Σ_g weight_g·L_g. "uncertainty": a learned
            log-variance s_g per group (Kendall et al. 2018) turns it into
            Σ_g exp(−s_g)·weight_g·L_g + s_g/2; the learned s_g are saved in
            `cfg["log_vars"]` and `group_loss_weights` gives exp(−s_g)·weight_g.
        weighting_lr_scale (float): Learning-rate factor of the log-variances (Adam moves
            each by about the learning rate per update, so at a fine-tuning rate they need a
            large factor to reach their optimum within a run).
        scorer (Optional[Callable]): Scoring function, `spacy-mtl.mtl_scorer.v1` by default.
        unknown_groups (str): Gold cats of a group not in `groups` (a corpus converted with
            more groups than this component trains): "warn" skips them with one warning
            per group (at initialize, with the number of docs, or when first met in
            training), "ignore" skips them silently, "error" raises GoldError. An unknown
            label of a known group is always an error.
        """
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        self._rehearsal_model = None
        distill = distill or {}
        # λ is read by update number, so the component holds no generator and pickles.
        gold_weight = distill.get("gold_weight")
        self.gold_weight_schedule: Any = 1.0 if gold_weight is None else gold_weight
        schedule_value(self.gold_weight_schedule, 0)  # a bad schedule fails here, not mid-run
        self.n_updates = 0
        self.distill_temperature = float(distill.get("temperature", 1.0))
        self.gold_weight = 1.0  # λ of the latest update (1.0 until an update draws one)
        if lr_scale <= 0:
            raise ValueError(f"lr_scale must be positive, got {lr_scale}.")
        self.lr_scale = float(lr_scale)
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}.")
        if weighting_lr_scale <= 0:
            raise ValueError(f"weighting_lr_scale must be positive, got {weighting_lr_scale}.")
        self.weighting_lr_scale = float(weighting_lr_scale)
        self._d_log_vars: Optional[numpy.ndarray] = None
        if unknown_groups not in UNKNOWN_GROUPS:
            raise ValueError(
                Errors.E112.format(name=name, modes=UNKNOWN_GROUPS, value=unknown_groups)
            )
        self.unknown_groups = unknown_groups
        # Unknown groups already warned about: one warning per group per run, not per doc.
        self._warned_groups: Set[str] = set()
        # Docs trained on per data set (the logger's last column; not saved).
        self.docs_seen: Counter = Counter()
        # No groups: `initialize` infers them from the training examples (what
        # `spacy init config -p mtl_textcat` writes).
        schema = GroupSchema.from_config(groups, threshold=threshold, allow_empty=True)
        self.cfg: Dict[str, Any] = {
            "groups": schema.to_config(),
            "threshold": schema.threshold,
            "weighting": weighting,
        }
        if weighting == "uncertainty":
            self.cfg["log_vars"] = {name: 0.0 for name in schema.names}
        self._set_schema(schema)

    # -- schema -------------------------------------------------------------------------

    @property
    def schema(self) -> GroupSchema:
        """The component's label groups (read-only; see `set_schema`)."""
        return self._schema

    def _set_schema(self, schema: GroupSchema) -> None:
        self._schema = schema
        # (group, first column, end column, doc.cats keys) of each group, for set_annotations.
        self._layout = [(g, start, end, g.keys) for g, start, end in schema.slices()]
        self._gold = GoldReader(
            schema, unknown_groups="error" if self.unknown_groups == "error" else "skip"
        )
        self._teacher = TeacherReader(schema)
        self.cfg["groups"] = schema.to_config()
        self.cfg["threshold"] = schema.threshold

    def set_schema(self, schema: GroupSchema) -> None:
        """Replace the schema, keeping the label layout (e.g. new thresholds or temperatures).

        Adding, removing or reordering labels after the model is initialized is an error:
        the model's output columns would no longer match.
        """
        if self._model_width() is not None and schema.keys != self.schema.keys:
            raise SchemaError(
                "set_schema cannot change labels or their order after the model is "
                f"initialized (was {self.schema.keys}, got {schema.keys})."
            )
        self._set_schema(schema)

    def _model_width(self) -> Optional[int]:
        output = self.model.get_ref("output_layer") if self.model.has_ref("output_layer") else None
        if output is not None and output.has_dim("nO"):
            return output.get_dim("nO")
        return None

    @property
    def weighting(self) -> str:
        """ "fixed" or "uncertainty" (see __init__)."""
        return str(self.cfg.get("weighting", "fixed"))

    @property
    def log_vars(self) -> Optional[List[float]]:
        """The learned log-variances s_g in schema order (uncertainty weighting), else None."""
        if self.weighting != "uncertainty":
            return None
        saved = self.cfg.get("log_vars") or {}
        return [float(saved.get(name, 0.0)) for name in self.schema.names]

    @property
    def group_loss_weights(self) -> Dict[str, float]:
        """Each group's effective loss weight: weight_g, times exp(−s_g) when learned."""
        log_vars = self.log_vars or [0.0] * len(self.schema)
        return {group.name: group.weight * math.exp(-s) for group, s in zip(self.schema, log_vars)}

    @property
    def labels(self) -> Tuple[str, ...]:
        """All doc.cats keys ('{group}/{label}') the component predicts, in output order."""
        return tuple(self.schema.keys)

    @property
    def label_data(self) -> Dict[str, List[str]]:
        """{group: [labels]}: what `spacy init labels` saves and `initialize(labels=)` takes."""
        return {group.name: list(group.labels) for group in self.schema}

    def add_label(self, label: str) -> int:
        """Add a '{group}/{label}' key before initialize. Returns 1 if added, 0 if known."""
        parts = split_key(label)
        if parts is None or parts[0] not in self.schema:
            raise SchemaError(
                f"add_label takes a '{{group}}/{{label}}' key of a configured group "
                f"(groups: {self.schema.names}), got {label!r}."
            )
        group, name = parts
        if name in self.schema[group].labels:
            return 0
        if self._model_width() is not None:
            raise SchemaError(
                Errors.E107.format(n_model=self._model_width(), n_schema=self.schema.n_labels + 1)
            )
        labels = (*self.schema[group].labels, name)
        self._set_schema(self.schema.replace_group(group, labels=labels))
        self.vocab.strings.add(label)
        return 1

    # -- prediction ---------------------------------------------------------------------

    def predict(self, docs: Iterable[Doc]) -> Floats2d:
        """The model's output for a batch of docs: raw logits, shape (n_docs, n_labels).

        As in spaCy's own components, `get_loss(examples, predict(docs))` is the loss of
        these docs, and `set_annotations` turns the logits into scores (`scores_of`).
        Empty docs get the logits of a zero pooled vector, the same in any batch.
        """
        docs = list(docs)
        ops = self.model.ops
        filled = [i for i, doc in enumerate(docs) if len(doc)]
        if len(filled) == len(docs):
            return self._predict_filled(docs)
        # Empty docs skip the encoder (a transformer gives them no output at all) and
        # score as a zero pooled vector, independent of the rest of the batch.
        logits = ops.alloc2f(len(docs), self.schema.n_labels)
        if filled:
            logits[ops.xp.asarray(filled)] = self._predict_filled([docs[i] for i in filled])
        empty = [i for i, doc in enumerate(docs) if not len(doc)]
        width = self.model.get_ref("pooling").get_dim("nO")
        logits[ops.xp.asarray(empty)] = self.model.get_ref("head").predict(ops.alloc2f(1, width))
        return logits

    def _predict_filled(self, docs: List[Doc]) -> Floats2d:
        return self.model.predict(docs)

    def scores_of(self, logits: Floats2d) -> Floats2d:
        """Per-group probabilities of `predict`'s logits, shape (n_docs, n_labels).

        Each group's logits are divided by its temperature, then softmax (multiclass) or
        sigmoid (multilabel).
        """
        return activate(self.model.ops.xp, self.schema, logits)

    def set_annotations(self, docs: Iterable[Doc], logits: Floats2d) -> None:
        """Write the scores of `predict`'s logits to doc.cats, doc._.mtl_scores and
        doc._.mtl_labels (the groups' decisions: `GroupSchema.decide_batch`).

        A conditional group (`parent`) gets P(label | condition) in doc._.mtl_scores, the
        joint P(label and condition) in doc.cats, and None in doc._.mtl_labels where the
        decisions above it do not meet its condition.
        """
        schema = self.schema
        probs = self.model.ops.to_numpy(self.scores_of(logits))
        rows = probs.tolist()
        cat_rows = schema.joint_scores(probs).tolist() if schema.is_conditional else rows
        # The doc.cats keys are made once per schema (_set_schema), not per doc and label.
        layout = self._layout
        decided = schema.decide_batch(probs)
        chosen = [picks.tolist() for picks, _ in decided]
        applies = [None if holds is None else holds.tolist() for _, holds in decided]
        for i, (doc, row, cat_row) in enumerate(zip(docs, rows, cat_rows)):
            cats = doc.cats
            by_group: Dict[str, Dict[str, float]] = {}
            labels_of: Dict[str, Union[str, List[str], None]] = {}
            for (group, start, end, keys), picks, holds in zip(layout, chosen, applies):
                values = row[start:end]
                cats.update(zip(keys, cat_row[start:end]))
                by_group[group.name] = dict(zip(group.labels, values))
                if holds is not None and not holds[i]:
                    labels_of[group.name] = None
                    continue
                labels = [label for label, keep in zip(group.labels, picks[i]) if keep]
                labels_of[group.name] = labels[0] if group.is_multiclass else labels
            doc._.mtl_scores = by_group
            doc._.mtl_labels = labels_of

    # -- training -----------------------------------------------------------------------

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Optimizer] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """Learn from a batch of examples: one forward and backward pass for all groups.

        losses[name] gets the weighted total; losses[f"{name}:{group}"] each group's loss.
        """
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, "MultiGroupTextCategorizer.update")
        # Gold is checked before begin_update: an error must not leave the listener's
        # stored transformer output half used.
        self.gold_weight = schedule_value(self.gold_weight_schedule, self.n_updates)
        self.n_updates += 1
        truths, mask = self._targets(examples)
        self.docs_seen.update(stratum_of(eg) for eg in examples)
        if not any(len(eg.predicted) for eg in examples):
            # The transformer skips a batch of empty docs: nothing to listen to.
            return losses
        set_dropout_rate(self.model, drop)
        logits, backprop = self.model.begin_update([eg.predicted for eg in examples])
        result = self._loss(logits, truths, mask)
        backprop(result.d_logits)
        if result.d_log_vars is not None:
            d_log_vars = numpy.asarray(result.d_log_vars, dtype="f")
            if self._d_log_vars is None:
                self._d_log_vars = d_log_vars
            else:
                self._d_log_vars += d_log_vars
        if sgd is not None:
            self.finish_update(sgd)
        self._add_losses(losses, result)
        return losses

    def get_loss(self, examples: Iterable[Example], scores: Floats2d) -> Tuple[float, Floats2d]:
        """Weighted loss and its gradient, for `scores` = the model's logits."""
        examples = list(examples)
        validate_examples(examples, "MultiGroupTextCategorizer.get_loss")
        truths, mask = self._targets(examples)
        result = self._loss(scores, truths, mask)
        return result.total, result.d_logits

    def get_group_losses(self, examples: Iterable[Example], scores: Floats2d) -> LossResult:
        """Like get_loss, with each group's unweighted loss in `per_group`."""
        truths, mask = self._targets(list(examples))
        return self._loss(scores, truths, mask)

    def _loss(self, logits: Floats2d, truths: Floats2d, mask: Floats2d) -> LossResult:
        ops = self.model.ops
        truths_, mask_ = ops.asarray(truths), ops.asarray(mask)
        return group_loss(ops.xp, self.schema, logits, truths_, mask_, self.log_vars)

    def _add_losses(self, losses: Dict[str, float], result: LossResult) -> None:
        losses[self.name] += result.total
        for group, value in result.per_group.items():
            key = f"{self.name}:{group}"
            losses[key] = losses.get(key, 0.0) + value

    def _targets(self, examples: List[Example]) -> Tuple[Floats2d, Floats2d]:
        """Loss targets and mask: the gold, blended with teacher logits where docs have them."""
        truths, mask = self._examples_to_truth(examples)
        logits, taught, found = self._teacher.read_batch(eg.reference for eg in examples)
        if not found:
            return truths, mask
        targets, blended = blend_targets(
            self.schema,
            truths,  # type: ignore[arg-type]
            mask,  # type: ignore[arg-type]
            logits,
            taught,
            self.gold_weight,
            self.distill_temperature,
        )
        if self.schema.is_conditional:
            # No teacher targets for a conditional group where the gold says a condition
            # above it fails: the group does not apply there.
            state = gold_applies(self.schema, truths, mask)  # type: ignore[arg-type]
            for group, start, end in self.schema.slices():
                if group.name in state:
                    blended[state[group.name] == 0, start:end] = 0.0
        return targets, blended  # type: ignore[return-value]

    def _examples_to_truth(self, examples: List[Example]) -> Tuple[Floats2d, Floats2d]:
        pairs = ((eg.reference.cats, eg.reference.text) for eg in examples)
        truths, mask = self._gold.read_batch(pairs)
        if not self._warned_groups.issuperset(self._gold.unknown_docs):
            self._warn_unknown_groups("first met in training; docs read so far")
        return truths, mask  # type: ignore[return-value]

    def _warn_unknown_groups(self, where: str) -> None:
        """One MTLWarning for the unknown groups read and not yet warned about."""
        counts = self._gold.unknown_docs
        new = [group for group in counts if group not in self._warned_groups]
        if not new:
            return
        self._warned_groups.update(new)
        if self.unknown_groups != "warn":
            return
        groups = ", ".join(f"{group!r} ({counts[group]:,} docs)" for group in sorted(new))
        message = Errors.W010.format(name=self.name, n=len(new), where=where, groups=groups)
        warnings.warn(message, MTLWarning, stacklevel=3)

    def score(self, examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
        """Score a batch of examples (the scorer skips the gold of groups not in `groups`
        unless `unknown_groups` is "error")."""
        kwargs.setdefault("unknown_groups", self.unknown_groups)
        return super().score(examples, **kwargs)

    def rehearse(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Optimizer] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """Rehearsal: pull the logits toward those of the model before training resumed."""
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        if self._rehearsal_model is None:
            return losses
        docs = [eg.predicted for eg in examples]
        if not any(len(doc) for doc in docs):
            return losses
        set_dropout_rate(self.model, drop)
        logits, backprop = self.model.begin_update(docs)
        target = self._rehearsal_model.predict(docs)
        gradient = logits - target
        backprop(gradient)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += float((gradient**2).sum())
        return losses

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[Dict[str, List[str]]] = None,
    ) -> None:
        """Infer missing labels, check the gold, and initialize the model.

        A component configured without groups infers them, their kinds and labels from the
        examples' doc.cats (`schema.infer_groups`) and warns with what it inferred.

        get_examples (Callable[[], Iterable[Example]]): The training examples.
        nlp (Optional[Language]): The pipeline; it may hold only one mtl_textcat.
        labels (Optional[Dict[str, List[str]]]): {group: [labels]} as written by
            `spacy init labels` (this component's `label_data`); fills the groups that have
            no labels in the config. Without it, those labels are read from the examples.
        """
        validate_get_examples(get_examples, "MultiGroupTextCategorizer.initialize")
        if nlp is not None:
            names = [n for n, pipe in nlp.pipeline if isinstance(pipe, MultiGroupTextCategorizer)]
            if len(names) > 1:
                # Gold of the other component's groups would be an error here, and both
                # would score under the same keys: one component holds every group.
                raise SchemaError(Errors.E110.format(names=names))
            self._check_listener_served(nlp)
        schema = self.schema
        if not schema.groups:
            schema = self._infer_groups(get_examples, labels)
        elif labels is not None:
            if not isinstance(labels, dict):
                raise SchemaError(Errors.E108.format(value=labels))
            schema = schema.with_labels(labels)
        elif not schema.is_complete:
            keys = (key for eg in get_examples() for key in eg.reference.cats)
            if self.unknown_groups != "error":
                keys = (key for key in keys if _known_or_malformed(key, schema))
            schema = schema.with_labels(infer_labels(keys, schema))
        schema.check_complete()
        self._set_schema(schema)
        for key in self.labels:
            self.vocab.strings.add(key)
        # Check every example's gold now rather than mid-training, and warn about groups
        # that nothing teaches.
        n_annotated = {group.name: 0 for group in schema}
        slices = schema.slices()
        n_read = 0
        for eg in get_examples():
            n_read += 1
            _, mask = self._gold.read(eg.reference.cats, eg.reference.text)
            _, taught, _ = self._teacher.read_batch([eg.reference])
            mask = numpy.maximum(mask, taught[0])
            for group, start, end in slices:
                if mask[start:end].any():
                    n_annotated[group.name] += 1
        self._warned_groups = set()  # a new run: its unknown groups are warned about anew
        self._warn_unknown_groups(f"at initialize, of {n_read:,} docs")
        for group_name, count in n_annotated.items():
            if count == 0:
                warnings.warn(Errors.W001.format(group=group_name), MTLWarning, stacklevel=2)
        sample = [eg.reference for eg in islice(get_examples(), 10)]
        if not sample:
            raise ValueError(f"initialize of {self.name!r} got no examples.")
        self._set_output_width(schema.n_labels)
        self.model.initialize(X=sample)

    def _check_listener_served(self, nlp: Language) -> None:
        """Refuse a listener that no component before this one feeds (e.g. the default
        model in a config from `spacy init config -p mtl_textcat`, which has no transformer):
        spaCy would fail later on an unset dimension of the listener."""
        listens = [n.name for n in self.model.walk() if n.name in LISTENER_LAYERS]
        served = any(self.name in getattr(pipe, "listener_map", {}) for _, pipe in nlp.components)
        if listens and not served:
            raise ValueError(Errors.E111.format(name=self.name, listener=listens[0]))

    def _infer_groups(
        self,
        get_examples: Callable[[], Iterable[Example]],
        labels: Optional[Dict[str, List[str]]],
    ) -> GroupSchema:
        """The schema of a component configured without groups: groups and kinds from the
        examples' doc.cats (`infer_groups`), labels from `labels` where it names them."""
        inferred = infer_groups(eg.reference.cats for eg in get_examples())
        if not inferred:
            raise SchemaError(Errors.E016.format(name=self.name))
        if labels is not None:
            if not isinstance(labels, dict):
                raise SchemaError(Errors.E108.format(value=labels))
            inferred = tuple(
                replace(g, labels=tuple(labels[g.name])) if g.name in labels else g
                for g in inferred
            )
        groups = "; ".join(
            f"{g.name} ({g.kind}, {len(g.labels)} labels: {format_labels(g.labels)})"
            for g in inferred
        )
        warnings.warn(
            Errors.W002.format(name=self.name, n=len(inferred), groups=groups),
            MTLWarning,
            stacklevel=3,
        )
        return replace(self.schema, groups=inferred)

    def _set_output_width(self, n_labels: int) -> None:
        output = self.model.get_ref("output_layer")
        width = self._model_width()
        if width is not None and width != n_labels:
            raise SchemaError(Errors.E107.format(n_model=width, n_schema=n_labels))
        if width is None:
            output.set_dim("nO", n_labels)
            if self.model.has_dim("nO") is None:  # a dim, not yet set
                self.model.set_dim("nO", n_labels)
        self.model.attrs[FINGERPRINT_ATTR] = self.schema.fingerprint()

    def finish_update(self, sgd: Optimizer) -> None:
        """Update this component's weights, at `lr_scale` times the optimizer's rate."""
        scaled = sgd if self.lr_scale == 1.0 else _ScaledOptimizer(sgd, self.lr_scale)
        self.model.finish_update(scaled)  # type: ignore[arg-type]
        if self._d_log_vars is not None and self.log_vars is not None:
            log_vars = numpy.asarray(self.log_vars, dtype="f")
            log_vars, _ = sgd(
                (self.model.id, "mtl_log_vars"),
                log_vars,  # type: ignore[arg-type]
                self._d_log_vars,  # type: ignore[arg-type]
                lr_scale=self.weighting_lr_scale,
            )
            self.cfg["log_vars"] = {
                name: float(value) for name, value in zip(self.schema.names, log_vars)
            }
            self._d_log_vars = None

    # -- serialization ------------------------------------------------------------------

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()):
        result = super().from_bytes(bytes_data, exclude=exclude)
        self._load_schema_from_cfg()
        self._check_fingerprint()
        return result

    def from_disk(self, path: Any, *, exclude: Iterable[str] = tuple()):
        path = Path(path)
        result = super().from_disk(path, exclude=exclude)
        try:
            self._load_schema_from_cfg()
            self._check_fingerprint()
        except (SchemaError, ValueError) as err:
            raise ModelLoadError(path.parent, f"{path.name}/cfg", str(err)) from err
        return result

    def _check_fingerprint(self) -> None:
        """Refuse weights whose output columns are not the ones the loaded schema names."""
        expected = self.schema.fingerprint()
        saved = self.model.attrs.get(FINGERPRINT_ATTR)
        if saved is None:
            # Saved before fingerprints existed: the output width is all there is to check.
            width = self._model_width()
            if width is not None and width != expected["n_labels"]:
                raise SchemaError(
                    Errors.E301.format(
                        diff=f"{width} outputs in the weights, {expected['n_labels']} labels in cfg"
                    )
                )
            return
        if _plain(saved) != _plain(expected):
            raise SchemaError(
                Errors.E301.format(diff=f"weights {_describe(saved)}; cfg {_describe(expected)}")
            )

    def _load_schema_from_cfg(self) -> None:
        # srsly's JSON reader can return a float one ulp off what was written (0.6 comes back
        # as 0.6000000000000001); 15 significant digits give the written value back.
        groups = _round_floats(self.cfg["groups"])
        threshold = _round_floats(self.cfg["threshold"])
        self._set_schema(GroupSchema.from_config(groups, threshold=threshold, allow_empty=True))


class _ScaledOptimizer:
    """An optimizer seen through a learning-rate factor (thinc's `lr_scale` argument)."""

    def __init__(self, optimizer: Optimizer, scale: float) -> None:
        self._optimizer = optimizer
        self._scale = scale

    def __call__(self, key: Any, weights: Any, gradient: Any, *, lr_scale: float = 1.0) -> Any:
        return self._optimizer(key, weights, gradient, lr_scale=lr_scale * self._scale)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._optimizer, name)


def _known_or_malformed(key: str, schema: GroupSchema) -> bool:
    # A key without '/' is kept so that infer_labels names it in its error.
    parts = split_key(key)
    return parts is None or parts[0] in schema


def _plain(value: Any) -> Any:
    """Lists for tuples, recursively (msgpack gives lists back)."""
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return value


def _describe(fingerprint: Mapping[str, Any]) -> str:
    groups = "; ".join(
        f"{name} ({kind}: {', '.join(labels)})" for name, kind, labels in fingerprint["groups"]
    )
    return f"{fingerprint['n_labels']} outputs: {groups}"


def _round_floats(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.15g}")
    if isinstance(value, dict):
        return {key: _round_floats(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_round_floats(item) for item in value]
    return value
