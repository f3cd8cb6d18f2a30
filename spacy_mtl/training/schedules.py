"""Run-length settings that follow `[training] max_steps`: a learning-rate schedule whose
warm-up is a fraction of the run, and an evaluation frequency given as evaluations per run.

With these, `spacy train config.cfg --training.max_steps 40` shortens the warm-up, the
decay and the evaluation interval with the run, instead of training 40 steps inside a
120-step warm-up and evaluating once:

    [training]
    max_steps = 1200

    [training.eval_frequency]
    @misc = "spacy-mtl.eval_frequency.v1"
    max_steps = ${training.max_steps}
    evals = 2

    [training.optimizer.learn_rate]
    @schedules = "spacy-mtl.warmup_linear.v1"
    warmup_ratio = 0.1
    total_steps = ${training.max_steps}
    initial_rate = 1e-4

DOCS: docs/configs.md
"""

from typing import Iterable

from spacy.util import registry
from thinc.api import registry as thinc_registry
from thinc.schedules import warmup_linear


@thinc_registry.schedules("spacy-mtl.warmup_linear.v1")
def warmup_linear_ratio(
    initial_rate: float, warmup_ratio: float, total_steps: int
) -> Iterable[float]:
    """thinc's `warmup_linear.v1` with the warm-up given as a fraction of `total_steps`.

    The rate rises linearly from 0 over the first round(warmup_ratio · total_steps) steps to
    `initial_rate`, then falls linearly to 0 at `total_steps`: thinc's own generator, so the
    values are thinc's to the last bit.

    initial_rate (float): The peak rate, reached at the end of the warm-up.
    warmup_ratio (float): The warm-up's share of the run, in [0, 1).
    total_steps (int): The run's length; `${training.max_steps}` in our configs.
    RETURNS (Iterable[float]): The rate of each step, from step 0.

    DOCS: docs/configs.md
    """
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps <= 0:
        raise ValueError(
            "spacy-mtl.warmup_linear.v1: total_steps must be a positive number of steps, "
            f"got {total_steps!r}. It follows [training] max_steps; with max_steps = 0 "
            "(no step limit) give total_steps as a number."
        )
    if not 0.0 <= warmup_ratio < 1.0:
        raise ValueError(
            f"spacy-mtl.warmup_linear.v1: warmup_ratio must be in [0, 1), got {warmup_ratio!r} "
            "(the warm-up's share of the run, e.g. 0.1)."
        )
    warmup_steps = warmup_steps_of(warmup_ratio, total_steps)
    return warmup_linear(initial_rate, warmup_steps, total_steps)


def warmup_steps_of(warmup_ratio: float, total_steps: int) -> int:
    """The warm-up steps of `spacy-mtl.warmup_linear.v1`: round(ratio · total), rounding
    half to even as Python does (0.1 · 1200 = 120; 0.1 · 40 = 4)."""
    return round(warmup_ratio * total_steps)


@registry.misc("spacy-mtl.eval_frequency.v1")
def eval_frequency(max_steps: int, evals: int = 2) -> int:
    """`[training] eval_frequency` as evaluations per run: max(1, max_steps // evals).

    spaCy resolves `[training]` before it validates it, so the block arrives in the
    training loop as this int. spaCy also scores the pipeline after the first update.

    max_steps (int): The run's length; `${training.max_steps}` in our configs.
    evals (int): How many times to evaluate over the run (the last at max_steps when
        evals divides max_steps).
    RETURNS (int): Steps between evaluations.

    DOCS: docs/configs.md
    """
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps <= 0:
        raise ValueError(
            "spacy-mtl.eval_frequency.v1: max_steps must be a positive number of steps, "
            f"got {max_steps!r}. It follows [training] max_steps; with max_steps = 0 "
            "(no step limit) set [training] eval_frequency to a number instead of this block."
        )
    if isinstance(evals, bool) or not isinstance(evals, int) or evals <= 0:
        raise ValueError(
            f"spacy-mtl.eval_frequency.v1: evals must be a positive int, got {evals!r}."
        )
    return max(1, max_steps // evals)
