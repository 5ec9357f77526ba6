"""Pure train and predict steps. `loop.fit` jits them over the device mesh."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from mlrelabel import losses
from mlrelabel.train import augment
from mlrelabel.train.state import TrainState


def make_train_step(
    model, tx: optax.GradientTransformation, *, loss: str, mean, std, label_smoothing=0.0, augment_cfg=None
) -> Callable:
    """Returns `train_step(state, batch) -> (state, metrics)`.

    `batch`: `image [B, H, W, 3]` uint8, `target [B, C]` float (one-hot, multi-hot or soft). The per-step key
    is `fold_in(state.key, state.step)`; with `augment_cfg` (`scale`, `ratio`, `flip`) images get a
    random-resized-crop and flip. Batch norm uses the statistics of the (global) batch.
    """
    loss_fn = losses.get_loss(loss)

    def train_step(state: TrainState, batch):
        key = jax.random.fold_in(state.key, state.step)
        k_aug, k_drop = jax.random.split(key)
        images = augment.normalize(batch['image'], mean, std)
        if augment_cfg is not None:
            images, _, _ = augment.random_resized_crop_flip(
                k_aug, images, augment_cfg['scale'], augment_cfg['ratio'], augment_cfg['flip']
            )
        target = batch['target']

        def objective(params):
            logits, updates = model.apply(
                {'params': params, 'batch_stats': state.batch_stats},
                images,
                train=True,
                mutable=['batch_stats'],
                rngs={'dropout': k_drop},
            )
            if loss == 'softmax_ce':
                per_example = loss_fn(logits, target, label_smoothing=label_smoothing)
            else:
                per_example = loss_fn(logits, target)
            return per_example.mean(), (logits, updates['batch_stats'])

        (value, (logits, batch_stats)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        top1_in_target = jnp.take_along_axis(target, jnp.argmax(logits, -1)[:, None], axis=1)[:, 0] > 0
        metrics = {'loss': value, 'accuracy': top1_in_target.mean(), 'grad_norm': optax.global_norm(grads)}
        new_state = state.replace(
            step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state
        )
        return new_state, metrics

    return train_step


def make_predict_step(model, *, mean, std, dense: bool = False) -> Callable:
    """Returns `predict_step(variables, images [B, H, W, 3] uint8) -> logits [B, C]` (or `[B, h, w, C]`)."""

    def predict_step(variables, images):
        return model.apply(variables, augment.normalize(images, mean, std), train=False, dense=dense)

    return predict_step
