"""Divergence: a non-finite loss or parameter stops training within a few steps, naming the phase and step.

The jitted step computes one boolean, `all_finite(loss, params, batch_stats)` (an `isfinite` reduction on
device, far cheaper than the step), next to its metrics. `FiniteWatch` reads those flags on the host: at
every metrics fetch the loop already does, before every checkpoint (so a non-finite state is never saved and
checkpoint rotation never deletes the last finite one), and every `CHECK_EVERY` steps in between, where it
reads the flags of all but the step just dispatched (the device stays busy with that one meanwhile).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from mlrelabel.errors import TrainingDiverged

__all__ = [
    'FiniteWatch',
    'all_finite',
    'describe_checkpoint',
    'remedy',
    'with_finite_flag',
]

CHECK_EVERY = 4  # steps between flag reads when no metrics are fetched


def all_finite(tree: Any) -> jax.Array:
    """`[]` bool: every floating-point leaf of `tree` is finite (jittable)."""
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
    if not leaves:
        return jnp.asarray(True)
    return jnp.stack([jnp.isfinite(x).all() for x in leaves]).all()


def with_finite_flag(step_fn: Callable, *state_of: Callable[[Any], Any]) -> Callable:
    """Wraps a pure `step(*args) -> (new, metrics)` so that `metrics['finite']` says whether the loss and the
    new state's parameters and batch statistics are finite. `state_of` picks the checked trees from `new`
    (default: `new.params` and `new.batch_stats`)."""
    pick = state_of or (lambda new: (new.params, new.batch_stats),)

    def step(*args):
        new, metrics = step_fn(*args)
        flag = all_finite([metrics['loss']] + [p(new) for p in pick])
        return new, {**metrics, 'finite': flag}

    return step


def describe_checkpoint(ckpt, directory: str) -> str:
    """Where the last (finite) checkpoint of `ckpt` (a `Checkpointer`) is, in words."""
    step = ckpt.latest_step()
    if step is None:
        return 'no checkpoint had been saved yet'
    return f'the last finite checkpoint, step {step} in {directory}, is kept'


def remedy(cfg) -> str:
    """What to change after a divergence (the optimiser fields, with their current values)."""
    o = cfg.optim
    clip = o.grad_clip
    clip_text = f'tighten config.optim.grad_clip (now {clip:g})' if clip else 'set config.optim.grad_clip=1.0'
    return (
        f'Lower config.optim.learning_rate (now {o.learning_rate:g}) or {clip_text}, and start again in a new '
        '--workdir (this one holds the diverged config; its checkpoints are kept).'
    )


class FiniteWatch:
    """Host side of the check: feed it each step's `metrics['finite']` with `add`, then call `check`."""

    def __init__(
        self,
        desc: str,
        first_step: int,
        describe_checkpoint: Callable[[], str],
        hint: str = '',
        on_stop: Callable[[], Any] | None = None,
    ):
        self.desc, self.hint, self.on_stop = desc, hint, on_stop
        self.describe_checkpoint = describe_checkpoint
        self._flags: list = []  # device scalars of the steps not yet checked
        self._next = first_step + 1  # the step number of self._flags[0]

    def add(self, flag) -> None:
        self._flags.append(flag)

    def check(self, lag: int = 0) -> None:
        """Reads the pending flags except the newest `lag` ones (waiting for their steps to finish) and raises
        `TrainingDiverged` at the first non-finite one."""
        flags = self._flags[: max(len(self._flags) - lag, 0)]
        if not flags:
            return
        for i, ok in enumerate(jax.device_get(flags)):
            if not bool(ok):
                if self.on_stop is not None:
                    self.on_stop()  # e.g. close the progress bar before the error is printed
                raise TrainingDiverged(self.desc, self._next + i, self.describe_checkpoint(), self.hint)
        del self._flags[: len(flags)]
        self._next += len(flags)

    def step_done(self, step: int) -> None:
        """Call after dispatching each step: every `CHECK_EVERY` steps the flags of all but the step just
        dispatched are read. Waiting for step s-1 while step s is queued keeps the device busy."""
        if step % CHECK_EVERY == 0:
            self.check(lag=1)
