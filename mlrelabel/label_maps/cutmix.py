"""CutMix on device: paste a box of a partner image into each image and mix the targets by area.

CutMix (Yun et al. 2019, "CutMix: Regularization Strategy to Train Strong Classifiers with Localizable
Features"): draw ``lam ~ Beta(alpha, alpha)``, cut a box of area ratio ``1 - lam`` (sides
``sqrt(1 - lam)`` of the image's) centred uniformly at random, clip it to the image, paste the partner
image there, and mix the targets with the kept area fraction recomputed from the clipped box. ReLabel
(Yun et al. 2021) trains with CutMix on top of its LabelPooling targets. Unlike the reference
implementation (one ``lam`` per batch) every image draws its own ``lam`` and box here.

Boxes are ``(y0, x0, y1, x1)`` image fractions (the ``crops.py`` convention). The pixel mask of a box is
rounding-defined: edge ``e = floor(frac * size + 0.5)`` and pixel ``i`` is pasted iff ``e0 <= i < e1``.
``cutmix_boxes(..., image_size=(H, W))`` snaps the box edges to that pixel grid so the returned ``lam`` is
exactly the kept pixel fraction of the mask ``apply_cutmix`` uses; ``kept_fraction`` gives that fraction
for any boxes.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["cutmix_boxes", "cutmix_mask", "kept_fraction", "apply_cutmix", "cutmix_targets"]


def _positive_int(fn: str, name: str, value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"cutmix.{fn}: {name} must be a positive int, got {value!r}")
    return int(value)


def _image_size(fn: str, value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        height, width = value
    except (TypeError, ValueError):
        raise ValueError(f"cutmix.{fn}: image_size must be (height, width) or None, got {value!r}") from None
    return _positive_int(fn, "image_size[0]", height), _positive_int(fn, "image_size[1]", width)


def _edges(frac: jax.Array, size: int) -> jax.Array:
    """Pixel edge index of a box side: ``floor(frac * size + 0.5)`` clipped to ``[0, size]``."""
    return jnp.clip(jnp.floor(frac.astype(jnp.float32) * size + 0.5), 0, size).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("batch", "lam_alpha", "image_size"))
def _cutmix_boxes(key, batch, lam_alpha, image_size):
    k_lam, k_centre = jax.random.split(key)
    lam = jax.random.beta(k_lam, lam_alpha, lam_alpha, (batch,), jnp.float32)
    side = jnp.sqrt(1.0 - lam)
    centre = jax.random.uniform(k_centre, (batch, 2), jnp.float32)
    low = jnp.clip(centre - side[:, None] / 2, 0.0, 1.0)
    high = jnp.clip(centre + side[:, None] / 2, 0.0, 1.0)
    if image_size is not None:
        # Snap each side to its pixel edge (the same rounding as ``cutmix_mask``); ``k / n * n`` rounds back
        # to ``k`` in float32, so the mask of the snapped box has exactly these edges.
        sizes = jnp.asarray(image_size, jnp.float32)
        low_px = jnp.floor(low * sizes + 0.5)
        high_px = jnp.floor(high * sizes + 0.5)
        low, high = low_px / sizes, high_px / sizes
        lam = 1.0 - (high_px - low_px).prod(axis=1) / (image_size[0] * image_size[1])
    else:
        lam = 1.0 - (high - low).prod(axis=1)
    boxes = jnp.concatenate([low, high], axis=1)
    return boxes, lam


def cutmix_boxes(
    key: jax.Array, batch: int, lam_alpha: float = 1.0, image_size: tuple[int, int] | None = None
) -> tuple[jax.Array, jax.Array]:
    """Samples one CutMix box per image (Yun et al. 2019).

    Args:
      key: PRNG key.
      batch: number of images B.
      lam_alpha: the Beta(alpha, alpha) parameter of ``lam`` (1.0: uniform, as in the paper's ImageNet runs).
      image_size: ``(H, W)`` to snap the box to the pixel grid, so ``lam`` equals the kept pixel fraction of
        ``cutmix_mask`` exactly; None keeps continuous boxes and the continuous area.
    Returns:
      ``(boxes [B, 4] (y0, x0, y1, x1) in [0, 1] of the pasted region, lam [B] kept area fraction)``.
    """
    batch = _positive_int("cutmix_boxes", "batch", batch)
    size = _image_size("cutmix_boxes", image_size)
    try:
        alpha = float(lam_alpha)
    except (TypeError, ValueError):
        raise ValueError(
            f"cutmix.cutmix_boxes: lam_alpha must be a positive number, got {lam_alpha!r}"
        ) from None
    if not (np.isfinite(alpha) and alpha > 0):
        raise ValueError(f"cutmix.cutmix_boxes: lam_alpha must be a positive number, got {lam_alpha!r}")
    return _cutmix_boxes(key, batch, alpha, size)


@functools.partial(jax.jit, static_argnames=("height", "width"))
def _cutmix_mask(boxes, height, width):
    y0, x0, y1, x1 = (boxes[:, i] for i in range(4))
    rows = jnp.arange(height)[None, :]
    cols = jnp.arange(width)[None, :]
    in_rows = (rows >= _edges(y0, height)[:, None]) & (rows < _edges(y1, height)[:, None])
    in_cols = (cols >= _edges(x0, width)[:, None]) & (cols < _edges(x1, width)[:, None])
    return in_rows[:, :, None] & in_cols[:, None, :]


def _check_boxes(fn: str, boxes: Any) -> jax.Array:
    shape = getattr(boxes, "shape", None)
    if shape is None or len(shape) != 2 or shape[1] != 4:
        raise ValueError(f"cutmix.{fn}: boxes must be [batch, 4] (y0, x0, y1, x1), got shape {shape}")
    return jnp.asarray(boxes, jnp.float32)


def cutmix_mask(boxes: jax.Array, height: int, width: int) -> jax.Array:
    """`[batch, 4]` boxes -> `[batch, height, width]` bool, True on pasted pixels (rounding rule above)."""
    boxes = _check_boxes("cutmix_mask", boxes)
    return _cutmix_mask(
        boxes, _positive_int("cutmix_mask", "height", height), _positive_int("cutmix_mask", "width", width)
    )


def kept_fraction(boxes: jax.Array, height: int, width: int) -> jax.Array:
    """`[batch]` float32 fraction of pixels NOT pasted by ``cutmix_mask(boxes, height, width)``."""
    boxes = _check_boxes("kept_fraction", boxes)
    height = _positive_int("kept_fraction", "height", height)
    width = _positive_int("kept_fraction", "width", width)
    rows = _edges(boxes[:, 2], height) - _edges(boxes[:, 0], height)
    cols = _edges(boxes[:, 3], width) - _edges(boxes[:, 1], width)
    return 1.0 - (jnp.maximum(rows, 0) * jnp.maximum(cols, 0)).astype(jnp.float32) / (height * width)


@jax.jit
def _apply_cutmix(images, perm, boxes):
    mask = _cutmix_mask(boxes, images.shape[1], images.shape[2])
    return jnp.where(mask[..., None], images[perm], images)


def apply_cutmix(images: jax.Array, perm: jax.Array, boxes: jax.Array) -> jax.Array:
    """Pastes ``images[perm]`` inside each box.

    Args:
      images: `[batch, H, W, C]` any dtype (kept).
      perm: `[batch]` int partner index per image (e.g. ``jax.random.permutation(key, batch)``).
      boxes: `[batch, 4]` pasted regions, e.g. from ``cutmix_boxes``.
    Returns:
      `[batch, H, W, C]` mixed images.
    """
    shape = getattr(images, "shape", None)
    if shape is None or len(shape) != 4:
        raise ValueError(f"cutmix.apply_cutmix: images must be [batch, H, W, C], got shape {shape}")
    boxes = _check_boxes("apply_cutmix", boxes)
    if boxes.shape[0] != shape[0] or getattr(perm, "shape", None) != (shape[0],):
        raise ValueError(
            f"cutmix.apply_cutmix: perm must be [{shape[0]}] and boxes [{shape[0]}, 4] to match images {shape}, "
            f"got {getattr(perm, 'shape', None)} and {tuple(boxes.shape)}"
        )
    return _apply_cutmix(jnp.asarray(images), jnp.asarray(perm, jnp.int32), boxes)


@jax.jit
def _cutmix_targets(kept, pasted, lam):
    lam = lam[:, None]
    return lam * kept + (1.0 - lam) * pasted


def cutmix_targets(target_kept: jax.Array, target_pasted: jax.Array, lam: jax.Array) -> jax.Array:
    """`lam * kept + (1 - lam) * pasted` per row: `[batch, C]`, `[batch, C]`, `[batch]` -> `[batch, C]`."""
    kept_shape = getattr(target_kept, "shape", None)
    if (
        kept_shape is None
        or len(kept_shape) != 2
        or getattr(target_pasted, "shape", None) != kept_shape
        or getattr(lam, "shape", None) != (kept_shape[0],)
    ):
        raise ValueError(
            f"cutmix.cutmix_targets: expected target_kept [batch, C], target_pasted of the same shape and lam "
            f"[batch], got {kept_shape}, {getattr(target_pasted, 'shape', None)}, {getattr(lam, 'shape', None)}"
        )
    kept = jnp.asarray(target_kept, jnp.float32)
    return _cutmix_targets(kept, jnp.asarray(target_pasted, jnp.float32), jnp.asarray(lam, jnp.float32))
