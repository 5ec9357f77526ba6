"""Pure on-device preprocessing: normalisation, random-resized-crop, horizontal flip, zoom-out and mixup.

Augmentation runs inside the jitted train step from a PRNG key, so it is reproducible, sharded with the
batch and free of host work. The crop's box is returned (ReLabel's LabelPooling needs it).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from mlrelabel.ops.boxes import random_boxes
from mlrelabel.ops.crops import extract_crops


def normalize(images: jax.Array, mean: Sequence[float], std: Sequence[float]) -> jax.Array:
    """`[B, H, W, 3]` uint8 (0..255) → float32 `(x / 255 - mean) / std` per channel."""
    if len(mean) != images.shape[-1] or len(std) != images.shape[-1]:
        raise ValueError(
            f'normalize: data.mean and data.std need one value per channel ({images.shape[-1]}), got '
            f'{tuple(mean)} and {tuple(std)}; empty means "measure them": call '
            'mlrelabel.data.inspect.resolve_data_defaults(config) first'
        )
    x = images.astype(jnp.float32) / 255.0
    return (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


def random_resized_crop_flip(
    key: jax.Array, images: jax.Array, scale=(0.35, 1.0), ratio=(3 / 4, 4 / 3), flip: bool = True
):
    """Random-resized-crop (Szegedy et al., 2015) back to the input size, then a random horizontal flip.

    Args:
      images: `[B, H, W, C]` float.
    Returns:
      `(images [B, H, W, C], boxes [B, 4] (y0, x0, y1, x1) fractions of the source image, flipped [B] bool)`.
    """
    k_box, k_flip = jax.random.split(key)
    batch, height = images.shape[0], images.shape[1]
    boxes = random_boxes(k_box, batch, 1, scale=tuple(scale), ratio=tuple(ratio))
    out = extract_crops(images, boxes, height)[:, 0]
    if images.shape[2] != height:
        raise ValueError(f'square images expected, got {images.shape}')
    flipped = jax.random.bernoulli(k_flip, 0.5, (batch,)) if flip else jnp.zeros((batch,), bool)
    out = jnp.where(flipped[:, None, None, None], out[:, :, ::-1], out)
    return out, boxes[:, 0], flipped


def zoom_out(key: jax.Array, images: jax.Array, min_side: float, prob: float = 0.5) -> jax.Array:
    """Zoom-out ("expand", Liu et al., SSD, ECCV 2016): shrink an image onto a canvas of its own size.

    Each image, with probability `prob`, is scaled by a side factor `z ~ U(min_side, 1)` and placed at a
    uniform position; the rest of the canvas is 0, the dataset's mean colour once `normalize` has run.
    Every object stays in the picture, so the image's labels stay true; its objects are seen smaller. A
    model trained on single labels (the largest object) otherwise meets its classes only at the sizes they
    have when they are the main object, and ranks the same class low when it is small in a whole image.

    Args:
      images: `[B, H, W, C]` float, normalised.
    Returns:
      `[B, H, W, C]` float32: the zoomed-out images (the others unchanged).
    """
    if not 0.0 < min_side <= 1.0:
        raise ValueError(f'zoom_out: min_side must be in (0, 1], got {min_side}')
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f'zoom_out: prob must be in [0, 1], got {prob}')
    batch, height, width, channels = images.shape
    k_side, k_apply, k_y, k_x = jax.random.split(key, 4)
    side = jax.random.uniform(k_side, (batch,), jnp.float32, min_side, 1.0)
    side = jnp.where(jax.random.bernoulli(k_apply, prob, (batch,)), side, 1.0)
    shift_y = jax.random.uniform(k_y, (batch,)) * (1.0 - side) * height
    shift_x = jax.random.uniform(k_x, (batch,)) * (1.0 - side) * width

    def one(image, z, dy, dx):
        return jax.image.scale_and_translate(
            image.astype(jnp.float32),
            (height, width, channels),
            (0, 1),
            jnp.stack([z, z]),
            jnp.stack([dy, dx]),
            'linear',
            antialias=True,
        )

    return jax.vmap(one)(images, side, shift_y, shift_x)


def mixup(key: jax.Array, images: jax.Array, targets: jax.Array, alpha: float):
    """mixup (Zhang, Cisse, Dauphin & Lopez-Paz, ICLR 2018): each example blended with its neighbour.

    `images [B, H, W, 3]` float, `targets [B, C]`; example i is blended with example i - 1 (cyclically) with
    one weight lam ~ Beta(alpha, alpha) per batch, kept >= 0.5 so that the example stays the larger part.
    Returns the blended images and targets `lam t_i + (1 - lam) t_(i-1)`. A regulariser for training from
    scratch on a few thousand images, where the network otherwise memorises backgrounds.
    """
    lam = jax.random.beta(key, alpha, alpha)
    lam = jnp.maximum(lam, 1.0 - lam)
    mixed = lam * images + (1.0 - lam) * jnp.roll(images, 1, axis=0)
    return mixed.astype(images.dtype), lam * targets + (1.0 - lam) * jnp.roll(targets, 1, axis=0)
