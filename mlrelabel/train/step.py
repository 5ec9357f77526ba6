"""Pure train and predict steps. `loop.fit` jits them over the device mesh.

`make_train_step` builds `train_step(state, batch) -> (state, metrics)`. `batch`: `image [B, H, W, 3]` uint8,
`target [B, C]` float (one-hot, multi-hot or soft). The per-step key is `fold_in(state.key, state.step)`,
split into augmentation, dropout and target keys. Batch norm uses the statistics of the (global) batch.
With `StepOptions.augment_cfg` images get a random-resized-crop and flip, then a zoom-out
(`augment.zoom_out`; the `boxes` handed to `transform_fn` still describe the crop before it); with `mixup`
> 0 (Beta(mixup, mixup)) images and targets are then blended with the example before them in the batch
(`augment.mixup`), also when the crops are made on the host.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import optax

from mlrelabel import losses, parallel
from mlrelabel.losses import single_positive
from mlrelabel.ops import augment
from mlrelabel.train import divergence
from mlrelabel.train.state import TrainState

FULL_BOX = (0.0, 0.0, 1.0, 1.0)


# Named losses that read blended (mixup) targets; single-positive and partial-label losses do not.
SOFT_TARGET_LOSSES = ('softmax_ce', 'sigmoid_bce', 'soft_ce')


@dataclasses.dataclass(frozen=True)
class StepOptions:
    """What a train step does beyond normalising and stepping on the named loss (every default is off).

    Attributes:
      label_smoothing: of the 'softmax_ce' loss.
      augment_cfg: on-device augmentation, a dict with `scale`, `ratio`, `flip` and optional `zoom_out`,
        `zoom_out_prob` (`loop.augment_config`); None: none.
      mixup: Beta(mixup, mixup) blending of images and targets (only `SOFT_TARGET_LOSSES`); 0: none.
      transform_fn: `(images, batch, boxes [B, 4], flipped [B], key, step) -> (images, target [B, C])`, run on
        device after augmentation: it may mix images (CutMix) and build targets (LabelPooling of a label map
        over the crop's box). `images` are normalised; `boxes` are the crops' `(y0, x0, y1, x1)` in
        source-image fractions (the whole image without augmentation); `step` is the global step.
      loss_fn: `(logits [B, C], target [B, C], batch) -> [B]`, replacing the named loss (e.g. partial labels).
      loss_hparams: `config.train.single_positive` for the single-positive kinds (`single_positive.KINDS`);
        `ll_cp` adds its label corrections `corrections [B, C]` to the metrics.
      steps_per_epoch, num_epochs: the epoch `step // steps_per_epoch` drives single-positive schedules.
    """

    label_smoothing: float = 0.0
    augment_cfg: dict | None = None
    mixup: float = 0.0
    transform_fn: Callable | None = None
    loss_fn: Callable | None = None
    loss_hparams: dict | None = None
    steps_per_epoch: int = 1
    num_epochs: int = 1


def make_train_step(
    model, tx: optax.GradientTransformation, *, loss: str, mean, std, options=None
) -> Callable:
    """Returns `train_step(state, batch) -> (state, metrics)` (module docstring) for the named `loss`, with
    `options` (`StepOptions`, default: plain) for augmentation, mixup and the extension points."""
    o = StepOptions() if options is None else options
    if o.mixup > 0 and (loss not in SOFT_TARGET_LOSSES or o.loss_fn is not None):
        raise ValueError(
            f'config.train.augment.mixup={o.mixup} blends targets, which the loss {loss!r} cannot read (single '
            'positive or partial labels mark entries as observed / unknown); set it to 0 for this loss'
        )
    loss_value = _make_loss_value(loss, o)

    def train_step(state: TrainState, batch):
        key = jax.random.fold_in(state.key, state.step)
        k_aug, k_drop, k_target = jax.random.split(key, 3)
        images, target = _step_inputs(batch, (k_aug, k_target), state.step, (mean, std), o)

        def objective(params):
            logits, updates = model.apply(
                {'params': params, 'batch_stats': state.batch_stats},
                images,
                train=True,
                mutable=['batch_stats'],
                rngs={'dropout': k_drop},
            )
            value, aux = loss_value(logits, target, batch, state.step)
            return value, (logits, updates['batch_stats'], aux)

        (value, (logits, batch_stats, aux)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {
            'loss': value,
            'accuracy': _top1_in_target(loss, logits, target).mean(),
            'grad_norm': optax.tree.norm(grads),
            **aux,
        }
        if o.mixup > 0:
            metrics['loss_floor'] = loss_floor(loss, target)
        new_state = state.replace(
            step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state
        )
        return new_state, metrics

    return train_step


def _make_loss_value(loss: str, o: StepOptions) -> Callable:
    """`loss_value(logits, target, batch, step) -> (mean loss, aux metrics)`: `o.loss_fn`, a single-positive
    kind's step loss, or the named loss."""
    named_loss = None if loss in single_positive.KINDS else losses.get_loss(loss)
    if o.loss_fn is not None:
        return lambda logits, target, batch, step: (o.loss_fn(logits, target, batch).mean(), {})
    if loss in single_positive.KINDS:
        step_loss = single_positive.make_step_loss(
            loss, dict(o.loss_hparams or {}), o.steps_per_epoch, o.num_epochs
        )
        return lambda logits, target, batch, step: step_loss(logits, target, step)
    if loss == 'softmax_ce':
        return lambda logits, target, batch, step: (
            named_loss(logits, target, label_smoothing=o.label_smoothing).mean(),
            {},
        )
    return lambda logits, target, batch, step: (named_loss(logits, target).mean(), {})


def _step_inputs(batch, keys: tuple, step, mean_std: tuple, o: StepOptions) -> tuple:
    """`(images, target)` of one step: normalised, augmented, transformed and mixed as `o` says;
    `keys` = (augmentation key, target key)."""
    k_aug, k_target = keys
    images = augment.normalize(batch['image'], *mean_std)
    batch_size = images.shape[0]
    boxes = jnp.tile(jnp.asarray([FULL_BOX], jnp.float32), (batch_size, 1))
    flipped = jnp.zeros((batch_size,), bool)
    a = o.augment_cfg
    if a is not None:
        images, boxes, flipped = augment.random_resized_crop_flip(
            k_aug, images, a['scale'], a['ratio'], a['flip']
        )
        if a['zoom_out'] > 0:
            images = augment.zoom_out(jax.random.fold_in(k_aug, 1), images, a['zoom_out'], a['zoom_out_prob'])
    if o.transform_fn is None:
        target = batch['target']
    else:
        images, target = o.transform_fn(images, batch, boxes, flipped, k_target, step)
    if o.mixup > 0:
        images, target = augment.mixup(jax.random.fold_in(k_target, 1), images, target, o.mixup)
    return images, target


def _top1_in_target(loss: str, logits, target):
    """Whether the top-1 class is among the (positive) targets, per example; for soft targets (every class
    has some mass) whether it is the target's own top class."""
    if loss == 'soft_ce':
        return jnp.argmax(logits, -1) == jnp.argmax(target, -1)
    return jnp.take_along_axis(target, jnp.argmax(logits, -1)[:, None], axis=1)[:, 0] > 0


def loss_floor(loss: str, target: jax.Array) -> jax.Array:
    """The least mean loss any logits reach on soft `target [B, C]`: its entropy under the loss's own model.

    'softmax_ce' and 'soft_ce': H(p) of each row normalised to sum 1, as those losses normalise it (logits
    log p); 'sigmoid_bce': the binary entropies summed over classes (logits logit t), as the losses reduce;
    other losses 0. Blended (mixup) targets keep the training loss above 0; its excess over this floor says
    how far training has come (`relabel.select.underfit_note`). Label smoothing is left out (a lower bound).
    """
    target = target.astype(jnp.float32)
    if loss in ('softmax_ce', 'soft_ce'):
        total = target.sum(-1, keepdims=True)
        p = jnp.where(total > 0, target / jnp.where(total > 0, total, 1.0), 0.0)
        return -(p * jnp.log(jnp.clip(p, 1e-7, 1.0))).sum(-1).mean()
    t = jnp.clip(target, 1e-7, 1.0 - 1e-7)
    if loss == 'sigmoid_bce':
        return -(t * jnp.log(t) + (1.0 - t) * jnp.log1p(-t)).sum(-1).mean()
    return jnp.zeros((), jnp.float32)


def make_predict_step(model, *, mean, std, dense: bool = False) -> Callable:
    """Returns `predict_step(variables, images [B, H, W, 3] uint8) -> logits [B, C]` (or `[B, h, w, C]`)."""

    def predict_step(variables, images):
        return model.apply(variables, augment.normalize(images, mean, std), train=False, dense=dense)

    return predict_step


def jit_train_step(step: Callable, mesh, replicated_args: int = 1, donate: int = 0) -> Callable:
    """`step(*replicated, batch) -> (state, metrics)` with a finite flag in its metrics
    (`divergence.with_finite_flag`), jitted with the batch sharded over `mesh`, every other argument and the
    outputs replicated, and argument `donate` (the state it replaces) donated."""
    rep, dat = parallel.replicated(mesh), parallel.data_sharding(mesh)
    return jax.jit(
        divergence.with_finite_flag(step),
        in_shardings=(rep,) * replicated_args + (dat,),
        out_shardings=(rep, rep),
        donate_argnums=(donate,),
    )
