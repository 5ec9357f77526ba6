"""optax optimizers and learning-rate schedules built from `config.optim`."""

from __future__ import annotations

import jax
import optax


def make_schedule(
    kind: str, peak: float, warmup_epochs: float, steps_per_epoch: int, num_epochs: float
) -> optax.Schedule:
    """Linear warm-up from 0 over `warmup_epochs`, then `cosine` decay to 0 or a `constant` rate."""
    total = max(1, int(round(steps_per_epoch * num_epochs)))
    warmup = min(total - 1, int(round(warmup_epochs * steps_per_epoch)))
    if kind == 'cosine':
        if warmup > 0:
            return optax.warmup_cosine_decay_schedule(0.0, peak, warmup, total, end_value=0.0)
        return optax.cosine_decay_schedule(peak, total)
    if kind == 'constant':
        if warmup > 0:
            return optax.join_schedules(
                [optax.linear_schedule(0.0, peak, warmup), optax.constant_schedule(peak)], [warmup]
            )
        return optax.constant_schedule(peak)
    raise ValueError(f"config.optim.schedule={kind!r}: expected 'cosine' or 'constant'")


def decay_mask(params):
    """Weight decay on kernels only: biases and batch-norm scales/offsets (1-D leaves) are not decayed."""
    return jax.tree.map(lambda p: p.ndim > 1, params)


def make_optimizer(cfg, steps_per_epoch: int, num_epochs: float, batch_size: int, step_map=None):
    """Returns `(tx, schedule)` from `config.optim`: `name` in {'sgd', 'adamw'}.

    The peak rate is `learning_rate * batch_size / lr_base_batch` when `lr_base_batch` > 0 (the linear
    scaling rule of Goyal et al., 2017), else `learning_rate`. With `step_map(count) -> step`, the optimizer's
    own update count is mapped to a step of the schedule first (MILe: a network's steps to the run's).
    """
    peak = cfg.learning_rate * (batch_size / cfg.lr_base_batch if cfg.lr_base_batch else 1.0)
    schedule = make_schedule(cfg.schedule, peak, cfg.warmup_epochs, steps_per_epoch, num_epochs)
    if step_map is not None:
        base = schedule
        schedule = lambda count: base(step_map(count))  # noqa: E731
    mask = None if cfg.decay_norm_and_bias else decay_mask
    if cfg.name == 'sgd':
        tx = optax.chain(
            optax.add_decayed_weights(cfg.weight_decay, mask=mask),
            optax.sgd(schedule, momentum=cfg.momentum or None, nesterov=cfg.nesterov),
        )
    elif cfg.name == 'adamw':
        tx = optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, weight_decay=cfg.weight_decay, mask=mask)
    else:
        raise ValueError(f"config.optim.name={cfg.name!r}: expected 'sgd' or 'adamw'")
    if cfg.grad_clip:
        tx = optax.chain(optax.clip_by_global_norm(cfg.grad_clip), tx)
    return tx, schedule
