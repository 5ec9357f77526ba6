"""Pure pieces of multi-label iterated learning (MILe; Rajeswar et al., "Multi-label Iterated Learning for
Image Classification with Label Ambiguity", CVPR 2022).

A generation is an *interactive* phase of `k_t` steps (the teacher learns the given single labels with
sigmoid BCE) followed by an *imitation* phase of `k_s` steps (the student learns the teacher's binarized
multi-label predictions `sigmoid(teacher logits) > rho`); the student then becomes the next teacher. The
two learning bottlenecks of the paper are the hard multi-label targets and the short phases.

Everything here is a pure function of arrays and keys: `phase_of` is the schedule, `pseudo_labels` the
target rule, `make_interactive_step` / `make_imitation_step` the jittable steps (the imitation step
computes the teacher's predictions and updates the student in one function, so the data are read once)
and `start_generation` / `start_imitation` the hand-overs between phases. `methods/mile.py` drives them.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from mlrelabel.train.state import TrainState
from mlrelabel.train.step import StepOptions, make_train_step

INTERACTIVE = 'interactive'
IMITATION = 'imitation'
PHASES = (INTERACTIVE, IMITATION)
STUDENT_INITS = ('persist', 'teacher')


def check_schedule(k_t: int, k_s: int) -> None:
    """Both phases need at least one step (errors name the config fields)."""
    if int(k_t) < 1 or int(k_s) < 1:
        raise ValueError(f'config.mile.k_t={k_t} and config.mile.k_s={k_s}: both phases need >= 1 step')


def check_burn_in(burn_in: int) -> None:
    if int(burn_in) < 0:
        raise ValueError(f'MILe burn-in must be >= 0 steps, got {burn_in}')


def phase_of(step: int, k_t: int, k_s: int, burn_in: int = 0) -> tuple[str, int]:
    """`(phase, step_in_phase)` of global step `step` (0-based). The first `burn_in` steps lengthen generation
    0's interactive phase (the teacher learns the given labels before anyone imitates it); after them steps
    `burn_in + g*(k_t+k_s) + [0, k_t)` are interactive (teacher), the next `k_s` imitation (student)."""
    check_schedule(k_t, k_s)
    check_burn_in(burn_in)
    if step < 0:
        raise ValueError(f'step must be >= 0, got {step}')
    if step < burn_in + k_t:
        return INTERACTIVE, int(step)
    r = (int(step) - burn_in) % (k_t + k_s)
    return (INTERACTIVE, r) if r < k_t else (IMITATION, r - k_t)


def generation_of(step: int, k_t: int, k_s: int, burn_in: int = 0) -> int:
    """0-based generation (teacher/student pair) that global step `step` belongs to."""
    check_schedule(k_t, k_s)
    check_burn_in(burn_in)
    return max(int(step) - burn_in, 0) // (k_t + k_s)


def phase_counts(total_steps: int, k_t: int, k_s: int, burn_in: int = 0) -> tuple[int, int]:
    """`(interactive, imitation)` numbers of steps among global steps `0 .. total_steps - 1`."""
    check_schedule(k_t, k_s)
    check_burn_in(burn_in)
    total = int(total_steps)
    full, rest = divmod(max(total - burn_in, 0), k_t + k_s)
    teacher = min(total, burn_in) + full * k_t + min(rest, k_t)
    return teacher, total - teacher


def global_step_of(count, phase: str, k_t: int, k_s: int, burn_in: int = 0):
    """The global step (0-based) at which a network takes its `count`-th own step (0-based; jittable, also on
    traced ints): the inverse of `phase_counts` for `phase`. Lets both networks follow one learning-rate
    schedule over the whole run instead of two schedules over their own shares of it."""
    check_schedule(k_t, k_s)
    check_burn_in(burn_in)
    count = jnp.asarray(count)
    cycle = k_t + k_s
    if phase == INTERACTIVE:
        first = burn_in + k_t  # generation 0's interactive phase
        m = jnp.maximum(count - first, 0)
        later = burn_in + (m // k_t + 1) * cycle + m % k_t
        return jnp.where(count < first, count, later)
    if phase == IMITATION:
        return burn_in + k_t + (count // k_s) * cycle + count % k_s
    raise ValueError(f'phase must be one of {PHASES}, got {phase!r}')


def burn_in_steps(total_steps: int, fraction: float) -> int:
    """The burn-in of a run of `total_steps` updates: `fraction` of them, rounded down."""
    if not 0.0 <= float(fraction) < 1.0:
        raise ValueError(f'config.mile.burn_in must be in [0, 1), got {fraction}')
    return int(float(fraction) * int(total_steps))


def choose_network(teacher_row: dict, student_row: dict, metric: str) -> str:
    """'teacher' or 'student': the network with the higher validation `metric` (a single-label metric such as
    `val_given_map` or `val_top1`, so the choice needs no multi-label truth); a tie keeps the student."""
    for name, row in (('teacher', teacher_row), ('student', student_row)):
        if metric not in row:
            raise ValueError(
                f'config.mile.select_metric={metric!r}: the {name} has no such metric ({sorted(row)})'
            )
    return 'teacher' if float(teacher_row[metric]) > float(student_row[metric]) else 'student'


def pseudo_labels(
    logits: jax.Array, given: jax.Array, key: jax.Array, *, rho: float, or_given: bool, sample: bool
) -> jax.Array:
    """The teacher's binary multi-label targets `[B, C]` float32 from its logits `[B, C]`.

    The rule works on probabilities `p = sigmoid(logits)`, never on raw logits: `p > rho`, or with `sample`
    a Bernoulli draw with probability `p` (key `key`). With `or_given` the given labels `given [B, C]`
    (multi-hot, > 0 = positive) are always kept.
    """
    probs = jax.nn.sigmoid(logits.astype(jnp.float32))
    if sample:
        positive = jax.random.bernoulli(key, probs)
    else:
        positive = probs > rho
    if or_given:
        positive = positive | (given > 0)
    return positive.astype(jnp.float32)


def make_interactive_step(model, tx, *, mean, std, augment_cfg=None) -> Callable:
    """`step(teacher: TrainState, batch) -> (teacher, metrics)`: sigmoid BCE on the given labels
    (`batch['target'] [B, C]`); exactly `train.step.make_train_step` with the 'sigmoid_bce' loss."""
    options = StepOptions(augment_cfg=augment_cfg)
    return make_train_step(model, tx, loss='sigmoid_bce', mean=mean, std=std, options=options)


@dataclasses.dataclass(frozen=True)
class PseudoLabelRule:
    """How `pseudo_labels` binarizes the teacher's probabilities (`config.mile`).

    Attributes:
      rho: the threshold on probabilities (unused with `sample`).
      or_given: always keep the given labels.
      sample: draw each label from Bernoulli(p) instead of thresholding.
    """

    rho: float
    or_given: bool = False
    sample: bool = False


def make_imitation_step(model, tx, *, mean, std, rule: PseudoLabelRule, augment_cfg=None) -> Callable:
    """`step(teacher_variables, student: TrainState, batch) -> (student, metrics)`.

    One jittable function: the student's augmented view of `batch['image']` goes through the teacher (batch
    norm in inference, no gradient), `pseudo_labels` binarizes its probabilities by `rule`, and the student
    takes one sigmoid-BCE step on them. Both networks see the same crop, and the batch is read once. The
    pseudo-label key is the student's per-step target key, so sampled labels are reproducible by
    `(seed, step)`. Metrics add `pseudo_per_image` (mean positives per image) and `pseudo_has_given` (fraction
    of images whose given label is among the pseudo-labels) to the train step's `loss`, `accuracy`, `grad_norm`.
    """

    def step(teacher_variables, student: TrainState, batch):
        seen = {}

        def transform(images, batch, boxes, flipped, key, step_number):
            del boxes, flipped, step_number
            logits = jax.lax.stop_gradient(model.apply(teacher_variables, images, train=False))
            target = pseudo_labels(
                logits, batch['target'], key, rho=rule.rho, or_given=rule.or_given, sample=rule.sample
            )
            seen['target'] = target  # same trace: read back below for the metrics
            return images, target

        options = StepOptions(augment_cfg=augment_cfg, transform_fn=transform)
        train_step = make_train_step(model, tx, loss='sigmoid_bce', mean=mean, std=std, options=options)
        student, metrics = train_step(student, batch)
        target = seen['target']
        given = batch['target'] > 0
        metrics['pseudo_per_image'] = target.sum(-1).mean()
        metrics['pseudo_has_given'] = (
            (((target > 0) & given).any(-1) | ~given.any(-1)).astype(jnp.float32).mean()
        )
        return student, metrics

    return step


def start_generation(teacher: TrainState, student: TrainState) -> TrainState:
    """The student becomes the teacher: the new teacher takes the student's parameters and batch
    statistics and keeps its own optimizer state, step and key (its learning-rate schedule goes on)."""
    return teacher.replace(params=student.params, batch_stats=student.batch_stats)


def start_imitation(teacher: TrainState, student: TrainState, student_init: str) -> TrainState:
    """The student at the start of an imitation phase.

    'persist': it goes on from its own weights (those of the teacher before the interactive phase), so the
      given labels reach it only through the teacher's binary predictions.
    'teacher': it starts from the teacher's current weights (self-distillation of the teacher).
    """
    if student_init == 'persist':
        return student
    if student_init == 'teacher':
        return student.replace(params=teacher.params, batch_stats=teacher.batch_stats)
    raise ValueError(f'config.mile.student_init={student_init!r}: expected one of {STUDENT_INITS}')
