"""Distillation: teacher logits stored with each doc, blended with gold during training.

A teacher (a trained pipeline with an `mtl_textcat`) writes its raw logits into
`doc._.mtl_teacher` as `{"{group}/{label}": logit}`; the student's `mtl_textcat` trains on

    target = λ·gold + (1 − λ)·activation(teacher_logit / T)   where the doc has gold,
    target = activation(teacher_logit / T)                      where only the teacher has it,
    target = gold                                               where only gold has it,

with λ (the gold weight) from a schedule that rises from 0 to 1 over training by default:
teacher annealing (Clark et al., 2019, "BAM! Born-Again Multi-Task Networks"). The loss is the
same CE / BCE as for gold (torch's soft-target definitions), so a student never needs its own
training loop: it is `spacy train` with a corpus that carries teacher logits.

This module holds what the component needs to train on teacher logits (reading them,
blending them with gold, the gold-weight schedule). Writing a corpus with teacher logits
is a workflow: `spacy_mtl.workflows.distill`.
"""

import itertools
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping, Optional, Tuple

import numpy
from spacy.tokens import Doc
from spacy.util import registry

from .errors import GoldError, doc_start
from .loss import activate
from .schema import GroupSchema

TEACHER_ATTR = "mtl_teacher"


@registry.schedules("spacy-mtl.linear.v1")
def linear_schedule(start: float = 0.0, stop: float = 1.0, steps: int = 1000) -> "LinearSchedule":
    """Values from `start` to `stop` in `steps` equal steps, then `stop` for ever.

    The default gold-weight schedule of teacher annealing: 0 → 1 over the training run (set
    `steps` to `${training.max_steps}`).
    """
    if steps <= 0:
        raise ValueError(f"spacy-mtl.linear.v1: steps must be positive, got {steps}.")
    return LinearSchedule(float(start), float(stop), int(steps))


@dataclass(frozen=True)
class LinearSchedule:
    """A schedule read by update number (`schedule(step)`), so whatever holds it pickles.

    It also iterates like thinc's generator schedules (`next(iter(schedule))`).
    """

    start: float
    stop: float
    steps: int

    def __call__(self, step: int) -> float:
        if step >= self.steps:
            return self.stop
        return self.start + (self.stop - self.start) * step / self.steps

    def __iter__(self) -> Iterator[float]:
        return (self(step) for step in itertools.count())


def schedule_value(schedule: Any, step: int) -> float:
    """The value of a gold-weight schedule at update `step` (0-based).

    schedule (Any): A number (constant) or a callable of the step such as
        `spacy-mtl.linear.v1`. thinc's generator schedules are refused: a generator cannot be
        pickled, and a component that holds one cannot run in `nlp.pipe(n_process=...)`.
    """
    if isinstance(schedule, (int, float)) and not isinstance(schedule, bool):
        return float(schedule)
    if callable(schedule):
        return float(schedule(step))
    raise ValueError(
        "distill.gold_weight must be a number or a schedule called with the update number, "
        f"such as spacy-mtl.linear.v1 (a generator schedule cannot be pickled); got {schedule!r}."
    )


class TeacherReader:
    """Reads `doc._.mtl_teacher` logits against a schema."""

    def __init__(self, schema: GroupSchema) -> None:
        self.schema = schema
        self.columns = {key: i for i, key in enumerate(schema.keys)}
        self.group_of = {
            key: (start, end) for group, start, end in schema.slices() for key in group.keys
        }

    def read_batch(self, docs: Iterable[Doc]) -> Tuple[numpy.ndarray, numpy.ndarray, bool]:
        """(logits, mask, any_teacher) arrays of shape (n_docs, n_labels).

        Keys of groups the student does not have are ignored (a teacher may know more).
        A multiclass group counts as taught only when the teacher gave all of its labels.
        """
        docs = list(docs)
        n = self.schema.n_labels
        logits = numpy.zeros((len(docs), n), dtype="f")
        mask = numpy.zeros((len(docs), n), dtype="f")
        found = False
        for i, doc in enumerate(docs):
            teacher: Optional[Mapping[str, float]] = doc._.get(TEACHER_ATTR)
            if not teacher:
                continue
            for key, value in teacher.items():
                col = self.columns.get(key)
                if col is None:
                    continue
                if not numpy.isfinite(value):
                    raise GoldError(
                        f"Doc {doc_start(doc.text)}: teacher logit for {key!r} is {value!r}; "
                        "teacher logits must be finite numbers."
                    )
                logits[i, col] = value
                mask[i, col] = 1.0
                found = True
        for group, start, end in self.schema.slices():
            if group.is_multiclass:
                complete = numpy.asarray(mask[:, start:end].all(axis=1))
                mask[:, start:end] = complete[:, None]
        return logits, mask, found


def blend_targets(
    schema: GroupSchema,
    truths: numpy.ndarray,
    gold_mask: numpy.ndarray,
    teacher_logits: numpy.ndarray,
    teacher_mask: numpy.ndarray,
    gold_weight: float,
    temperature: float = 1.0,
) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """Targets and mask for the loss: λ·gold + (1 − λ)·teacher where both, else either one.

    gold_weight (float): λ in [0, 1].
    temperature (float): The teacher's logits are divided by this before the activation.
    RETURNS (Tuple[ndarray, ndarray]): (targets, mask), both (n_docs, n_labels).
    """
    if not 0.0 <= gold_weight <= 1.0:
        raise ValueError(f"The gold weight must be in [0, 1], got {gold_weight}.")
    teacher = activate(numpy, schema, teacher_logits, temperature=temperature)
    has_gold = gold_mask > 0
    has_teacher = teacher_mask > 0
    both = gold_weight * truths + (1.0 - gold_weight) * teacher
    targets = numpy.where(has_gold & has_teacher, both, numpy.where(has_gold, truths, teacher))
    mask = (has_gold | has_teacher).astype("f")
    return (targets * mask).astype("f"), mask
