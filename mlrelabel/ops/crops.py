"""Crop extraction: cut every box out of its image and resize it, in one compiled call.

Boxes follow ``mlrelabel.ops.boxes`` (``(y0, x0, y1, x1)`` fractions, half-pixel convention).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from mlrelabel.ops.boxes import _output_size

__all__ = ["extract_crops"]

# Smallest box side, in pixels, that ``extract_crops`` divides by (guards zero-size boxes).
_MIN_EXTENT_PIXELS = 1e-3


def _crop_one(image, box, out_size, method, antialias):
    """Resamples the ``box`` of one ``[H, W, C]`` float32 image to ``[out_h, out_w, C]``."""
    height, width, channels = image.shape
    y0, x0, y1, x1 = box[0], box[1], box[2], box[3]
    extent_y = jnp.maximum((y1 - y0) * height, _MIN_EXTENT_PIXELS)
    extent_x = jnp.maximum((x1 - x0) * width, _MIN_EXTENT_PIXELS)
    # scale_and_translate maps input coordinate u (pixel i spans [i, i + 1]) to output s * u + t; the box
    # edges [y0 * H, y1 * H] go to [0, out_h].
    scale = jnp.stack([out_size[0] / extent_y, out_size[1] / extent_x])
    translation = jnp.stack([-y0 * height, -x0 * width]) * scale
    return jax.image.scale_and_translate(
        image,
        (out_size[0], out_size[1], channels),
        (0, 1),
        scale,
        translation,
        method=method,
        antialias=antialias,
    )


@functools.partial(jax.jit, static_argnames=("size", "method", "antialias"))
def _extract_crops(images, boxes, size, method, antialias):
    images = images.astype(jnp.float32)
    fn = functools.partial(_crop_one, out_size=size, method=method, antialias=antialias)
    per_image = jax.vmap(fn, in_axes=(None, 0))  # over crops of one image
    return jax.vmap(per_image, in_axes=(0, 0))(images, boxes.astype(jnp.float32))


def extract_crops(
    images: jax.Array,
    boxes: jax.Array,
    size: int | Sequence[int],
    *,
    method: str = "linear",
    antialias: bool = True,
) -> jax.Array:
    """Crops every box of every image and resizes it, in one compiled call.

    Args:
      images: ``[N, H, W, C]`` uint8 or float.
      boxes: ``[N, K, 4]`` ``(y0, x0, y1, x1)`` fractions.
      size: output side, or ``(height, width)``.
      method: ``jax.image`` resize method; ``'linear'`` is bilinear.
      antialias: widen the kernel when downscaling (a low-pass filter) so small crops of large images do
        not alias; it has no effect at scale >= 1.

    Returns:
      ``[N, K, size, size, C]`` float32 in the input's value range (0..255 for uint8 input).

    Half-pixel convention (``jax.image.scale_and_translate``): pixel ``i`` spans ``[i, i + 1]``; output
    pixel ``o`` of a crop samples the input at continuous coordinate ``y0 * H + (o + 0.5) * (y1 - y0) * H /
    size``, i.e. at index ``... - 0.5``. An integer-aligned box at unit scale therefore returns its pixels
    exactly. Input pixels outside the image get no weight (the kernel is renormalised over the valid ones,
    which near a border acts like edge clamping). Boxes thinner than 1e-3 pixel are treated as that thin.
    """
    images = jnp.asarray(images)
    boxes = jnp.asarray(boxes)
    if images.ndim != 4:
        raise ValueError(f"crops.extract_crops: images must be [N, H, W, C], got shape {images.shape}")
    if boxes.ndim != 3 or boxes.shape[-1] != 4 or boxes.shape[0] != images.shape[0]:
        raise ValueError(
            f"crops.extract_crops: boxes must be [N, K, 4] with N = {images.shape[0]} (images), "
            f"got shape {boxes.shape}"
        )
    if not (jnp.issubdtype(images.dtype, jnp.integer) or jnp.issubdtype(images.dtype, jnp.floating)):
        raise ValueError(f"crops.extract_crops: images must be uint8 or float, got dtype {images.dtype}")
    size = _output_size("extract_crops", size)
    return _extract_crops(images, boxes, size=size, method=str(method), antialias=bool(antialias))
