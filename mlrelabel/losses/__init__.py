"""Classification losses: pure, jittable JAX functions returning per-example losses `[batch]`.

Callers reduce (e.g. average with the batch `mask`). Logits are upcast to float32 so that bf16 compute
still gives float32 losses. The single-positive losses (`single_positive_loss`, a scalar per batch: Cole et
al. 2021, Zhou et al. 2022, Kim et al. 2022) live in `mlrelabel.losses.single_positive` and are re-exported here.
"""

from __future__ import annotations

import types
from typing import Callable

import jax
import jax.numpy as jnp
import optax

from mlrelabel.losses.single_positive import KINDS as SINGLE_POSITIVE_KINDS
from mlrelabel.losses.single_positive import single_positive_loss

__all__ = [
    'softmax_cross_entropy',
    'sigmoid_binary_cross_entropy',
    'soft_target_cross_entropy',
    'LOSSES',
    'get_loss',
    'single_positive_loss',
    'SINGLE_POSITIVE_KINDS',
]


def _check_shapes(fn: str, logits, targets) -> None:
    if logits.ndim != 2 or targets.shape != logits.shape:
        raise ValueError(
            f'{fn}: logits and targets must both be [batch, classes], got {logits.shape} and {targets.shape}'
        )


def softmax_cross_entropy(logits, targets, label_smoothing=0.0):
    """Softmax cross-entropy against a target distribution: `[B, C]`, `[B, C]` -> `[B]`.

    `targets` may be one-hot, multi-hot or a (soft) distribution, non-negative; each row is
    normalised to sum to 1 (a multi-hot row becomes uniform over its positives), and a row summing
    to 0 (no label, e.g. padding) gives loss 0 and zero gradient. `label_smoothing` ε mixes the
    normalised target with the uniform distribution, (1-ε)·t + ε/C (Szegedy et al. 2016,
    "Rethinking the Inception architecture"); it may be a python float in [0, 1] or a traced scalar.
    """
    _check_shapes('softmax_cross_entropy', logits, targets)
    if isinstance(label_smoothing, (int, float)) and not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f'softmax_cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}')
    logits = logits.astype(jnp.float32)
    targets = targets.astype(jnp.float32)
    total = jnp.sum(targets, axis=-1, keepdims=True)
    has_label = total > 0
    dist = targets / jnp.where(has_label, total, 1.0)
    dist = (1.0 - label_smoothing) * dist + label_smoothing / logits.shape[-1]
    loss = -jnp.sum(dist * jax.nn.log_softmax(logits, axis=-1), axis=-1)
    return jnp.where(has_label[:, 0], loss, 0.0)


def sigmoid_binary_cross_entropy(logits, targets, mask=None):
    """Independent per-class sigmoid BCE summed over classes: `[B, C]`, `[B, C]` in [0, 1] -> `[B]`.

    Numerically stable for any logits (optax.sigmoid_binary_cross_entropy, log-sigmoid form). `mask`,
    broadcastable to `[B, C]` (e.g. `[B, C]` or `[B, 1]`), weights each entry; 0 ignores it — e.g.
    `mask = targets >= 0` for partial labels marked -1 (pass `jnp.maximum(targets, 0)` as targets).
    The multi-label training loss of e.g. MILe (Rajeswar et al. 2022) and the sigmoid models of Beyer et al. 2020.
    """
    _check_shapes('sigmoid_binary_cross_entropy', logits, targets)
    logits = logits.astype(jnp.float32)
    per_entry = optax.sigmoid_binary_cross_entropy(logits, targets.astype(jnp.float32))
    if mask is not None:
        mask = jnp.asarray(mask)
        if mask.ndim != 2:
            raise ValueError(
                f'sigmoid_binary_cross_entropy: mask must be 2-D, broadcastable to {logits.shape} '
                f'([B, C] or [B, 1]), got shape {mask.shape}'
            )
        mask = jnp.broadcast_to(mask, logits.shape).astype(jnp.float32)
        # where (not only a product) so that masked entries with inf/nan targets cannot leak NaNs.
        per_entry = jnp.where(mask != 0, per_entry * mask, 0.0)
    return jnp.sum(per_entry, axis=-1)


def soft_target_cross_entropy(logits, soft_targets):
    """Cross-entropy against soft targets `[B, C]` (rows are distributions) -> `[B]`; no smoothing.

    The ReLabel loss (Yun et al. 2021, "Re-labeling ImageNet"): the target is the softmax of the
    label-map scores pooled over the random crop's box. Alias of `softmax_cross_entropy(…, 0.0)`.
    """
    return softmax_cross_entropy(logits, soft_targets, label_smoothing=0.0)


LOSSES: types.MappingProxyType[str, Callable] = types.MappingProxyType(
    {
        'softmax_ce': softmax_cross_entropy,
        'sigmoid_bce': sigmoid_binary_cross_entropy,
        'soft_ce': soft_target_cross_entropy,
    }
)


def get_loss(name: str) -> Callable:
    """The loss function registered under `name` ('softmax_ce', 'sigmoid_bce' or 'soft_ce')."""
    if name not in LOSSES:
        more = f' (single-positive kinds {SINGLE_POSITIVE_KINDS} go through single_positive_loss)'
        raise ValueError(f'Unknown loss {name!r}; expected one of {sorted(LOSSES)}{more}')
    return LOSSES[name]
