"""Pure train and predict steps. `loop.fit` jits them over the device mesh."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from mlrelabel import losses, parallel, single_positive
from mlrelabel.ops import augment
from mlrelabel.train import divergence
from mlrelabel.train.state import TrainState

FULL_BOX = (0.0, 0.0, 1.0, 1.0)


# Named losses that read blended (mixup) targets; single-positive and partial-label losses do not.
SOFT_TARGET_LOSSES = ('softmax_ce', 'sigmoid_bce', 'soft_ce')


def make_train_step(
    model,
    tx: optax.GradientTransformation,
    *,
    loss: str,
    mean,
    std,
    label_smoothing=0.0,
    augment_cfg=None,
    mixup: float = 0.0,
    transform_fn: Callable | None = None,
    loss_fn: Callable | None = None,
    loss_hparams: dict | None = None,
    steps_per_epoch: int = 1,
    num_epochs: int = 1,
) -> Callable:
    """Returns `train_step(state, batch) -> (state, metrics)`.

    `batch`: `image [B, H, W, 3]` uint8, `target [B, C]` float (one-hot, multi-hot or soft). The per-step key
    is `fold_in(state.key, state.step)`; with `augment_cfg` (`scale`, `ratio`, `flip`, optional `zoom_out`,
    `zoom_out_prob`) images get a random-resized-crop and flip, then a zoom-out (`augment.zoom_out`; the
    `boxes` below still describe the crop before it); with `mixup` > 0 (Beta(mixup, mixup)) images and
    targets are then blended with the example before them in the batch (`augment.mixup`), also when the crops
    are made on the host.
    Batch norm uses the statistics of the (global) batch.

    Extension points for methods whose targets or losses are not a plain `[B, C]` table:
      `transform_fn(images, batch, boxes [B, 4], flipped [B], key, step) -> (images, target [B, C])` runs on
        device after augmentation: it may mix images (CutMix) and build targets (LabelPooling of a label map
        over the crop's box). `images` are normalised `[B, H, W, 3]`; `boxes` are the crops'
        `(y0, x0, y1, x1)` in source-image fractions (the whole image without augmentation); `step` is the
        global step (e.g. to switch CutMix off for the last epochs).
      `loss_fn(logits [B, C], target [B, C], batch) -> [B]` replaces the named loss (e.g. partial labels).

    Single-positive kinds (`single_positive.KINDS`, e.g. 'an', 'll_ct') take `loss_hparams`
    (`config.train.single_positive`); the epoch `step // steps_per_epoch` drives their schedules, and
    `ll_cp` adds its label corrections `corrections [B, C]` to the metrics (popped by `loop.fit`).
    """
    if mixup > 0 and (loss not in SOFT_TARGET_LOSSES or loss_fn is not None):
        raise ValueError(
            f'config.train.augment.mixup={mixup} blends targets, which the loss {loss!r} cannot read (single '
            'positive or partial labels mark entries as observed / unknown); set it to 0 for this loss'
        )
    step_loss = None
    if loss in single_positive.KINDS and loss_fn is None:
        step_loss = single_positive.make_step_loss(
            loss, dict(loss_hparams or {}), steps_per_epoch, num_epochs
        )
    named_loss = None if loss in single_positive.KINDS else losses.get_loss(loss)

    def train_step(state: TrainState, batch):
        key = jax.random.fold_in(state.key, state.step)
        k_aug, k_drop, k_target = jax.random.split(key, 3)
        images = augment.normalize(batch['image'], mean, std)
        batch_size = images.shape[0]
        boxes = jnp.tile(jnp.asarray([FULL_BOX], jnp.float32), (batch_size, 1))
        flipped = jnp.zeros((batch_size,), bool)
        if augment_cfg is not None:
            images, boxes, flipped = augment.random_resized_crop_flip(
                k_aug, images, augment_cfg['scale'], augment_cfg['ratio'], augment_cfg['flip']
            )
            if augment_cfg['zoom_out'] > 0:
                images = augment.zoom_out(
                    jax.random.fold_in(k_aug, 1),
                    images,
                    augment_cfg['zoom_out'],
                    augment_cfg['zoom_out_prob'],
                )
        if transform_fn is None:
            target = batch['target']
        else:
            images, target = transform_fn(images, batch, boxes, flipped, k_target, state.step)
        if mixup > 0:
            images, target = augment.mixup(jax.random.fold_in(k_target, 1), images, target, mixup)

        def objective(params):
            logits, updates = model.apply(
                {'params': params, 'batch_stats': state.batch_stats},
                images,
                train=True,
                mutable=['batch_stats'],
                rngs={'dropout': k_drop},
            )
            aux = {}
            if loss_fn is not None:
                value = loss_fn(logits, target, batch).mean()
            elif step_loss is not None:
                value, aux = step_loss(logits, target, state.step)
            elif loss == 'softmax_ce':
                value = named_loss(logits, target, label_smoothing=label_smoothing).mean()
            else:
                value = named_loss(logits, target).mean()
            return value, (logits, updates['batch_stats'], aux)

        (value, (logits, batch_stats, aux)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        # Whether the top-1 class is among the (positive) targets, per example; for soft targets (every class
        # has some mass) whether it is the target's own top class.
        if loss == 'soft_ce':
            top1_in_target = jnp.argmax(logits, -1) == jnp.argmax(target, -1)
        else:
            top1_in_target = jnp.take_along_axis(target, jnp.argmax(logits, -1)[:, None], axis=1)[:, 0] > 0
        metrics = {
            'loss': value,
            'accuracy': top1_in_target.mean(),
            'grad_norm': optax.tree.norm(grads),
            **aux,
        }
        if mixup > 0:
            metrics['loss_floor'] = loss_floor(loss, target)
        new_state = state.replace(
            step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state
        )
        return new_state, metrics

    return train_step


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
