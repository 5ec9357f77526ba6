"""Crop sampling and extraction: the "Crop" stage of the Crop -> Confidence -> Label relabel loop.

CS570 multi-labels ImageNet by classifying many crops of each image and keeping the classes the model is
confident about on some crop. The samplers and the extraction are pure array ops in `mlrelabel.ops.boxes` and
`mlrelabel.ops.crops` (shared with training), re-exported here; this module adds the proposals from the
model's own class maps.

Boxes are ``(y0, x0, y1, x1)`` image fractions with the half-pixel convention (``mlrelabel.ops.boxes``).

Samplers:
  * ``random_boxes``      random-resized-crop boxes (Szegedy et al. 2015, "Going deeper with
                          convolutions"; the Inception crop used by torchvision), without rejection loops.
  * ``fixed_size_boxes``  boxes of one fractional size at uniform random positions.
  * ``grid_boxes``        a deterministic multi-scale sliding-window grid (``tile_boxes`` repeats it).
  * ``proposal_boxes``    boxes around peaks of the model's own class activation maps (Zhou et al. 2016,
                          "Learning deep features for discriminative localization"), standing in for the
                          region-proposal network of CS570 so no external detector is needed.
  * ``sample_boxes``      config-driven dispatcher over 'random' | 'fixed' | 'grid' | 'full'.
``extract_crops`` cuts every box out of its image and resizes it to a fixed size in one compiled call.

Every public function validates its static arguments in Python (raising errors that name the function and
argument) and then calls a ``jax.jit``-compiled core with the shape-determining arguments marked static,
so the public functions are the jitted entry points; they also work inside an outer ``jax.jit``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mlrelabel.ops.boxes import (
    _box_size,
    _positive_int,
)

__all__ = ['proposal_boxes']


# ----------------------------------------------------------------------------------------------------------
# Proposals from class activation maps.
# ----------------------------------------------------------------------------------------------------------


def _proposals_one(dense, exclude, num_boxes, box_size, window, normalize):
    """Top peaks of one image's ``[h, w, C]`` class maps: (boxes ``[K, 4]``, classes ``[K]``)."""
    h, w, num_classes = dense.shape
    dense = dense.astype(jnp.float32)
    if normalize:
        low = jnp.min(dense, axis=(0, 1), keepdims=True)
        high = jnp.max(dense, axis=(0, 1), keepdims=True)
        dense = (dense - low) / jnp.maximum(high - low, 1e-12)
    dense = jnp.where(jnp.arange(num_classes) == exclude, -jnp.inf, dense)
    score = jnp.max(dense, axis=-1)  # [h, w]
    peak_class = jnp.argmax(dense, axis=-1).astype(jnp.int32)  # [h, w]
    # Non-maximum suppression on the grid: a peak equals the maximum of its window (borders padded -inf).
    pooled = jax.lax.reduce_window(score, -jnp.inf, jax.lax.max, (window, window), (1, 1), "SAME")
    is_peak = score >= pooled
    flat_score = score.reshape(-1)
    # Peaks first, each group by decreasing score; a stable sort breaks ties in row-major order.
    order = jnp.lexsort((-flat_score, (~is_peak).reshape(-1).astype(jnp.int32)))
    # Fewer than K cells: cycle through them so the shape stays static.
    chosen = order[np.arange(num_boxes) % (h * w)]
    row, col = chosen // w, chosen % w
    centre_y = (row.astype(jnp.float32) + 0.5) / h
    centre_x = (col.astype(jnp.float32) + 0.5) / w
    box_h, box_w = box_size
    y0 = jnp.clip(centre_y - box_h / 2, 0.0, 1.0 - box_h)
    x0 = jnp.clip(centre_x - box_w / 2, 0.0, 1.0 - box_w)
    boxes = jnp.stack([y0, x0, jnp.minimum(y0 + box_h, 1.0), jnp.minimum(x0 + box_w, 1.0)], axis=-1)
    return boxes, peak_class.reshape(-1)[chosen]


@functools.partial(jax.jit, static_argnames=("num_boxes", "box_size", "window", "normalize"))
def _proposal_boxes(dense_logits, exclude, num_boxes, box_size, window, normalize):
    fn = functools.partial(
        _proposals_one, num_boxes=num_boxes, box_size=box_size, window=window, normalize=normalize
    )
    return jax.vmap(fn)(dense_logits, exclude)


def _excluded_classes(exclude_class, num_images: int) -> jax.Array:
    """`[num_images]` int32: `proposal_boxes`' `exclude_class` per image (-1: none), checked."""
    if exclude_class is None:
        return jnp.full((num_images,), -1, jnp.int32)
    exclude = jnp.asarray(exclude_class)
    if (
        not jnp.issubdtype(exclude.dtype, jnp.integer)
        or exclude.ndim > 1
        or (exclude.ndim == 1 and exclude.shape[0] != num_images)
    ):
        raise ValueError(
            f"crops.proposal_boxes: exclude_class must be None, an int or an int array [{num_images}], "
            f"got dtype {exclude.dtype} shape {exclude.shape}"
        )
    return jnp.broadcast_to(exclude.astype(jnp.int32), (num_images,))


def proposal_boxes(
    dense_logits: jax.Array,
    num_boxes: int,
    box_size: float | Sequence[float] = 0.5,
    exclude_class: int | jax.Array | None = None,
    *,
    window: int = 3,
    normalize: bool = False,
) -> tuple[jax.Array, jax.Array]:
    """Region proposals from the model's own class activation maps (CAM, Zhou et al. 2016).

    Replaces CS570's region-proposal network, so no external detector is needed.

    Args:
      dense_logits: ``[N, h, w, C]`` classifier applied per location before pooling
        (``model.apply(variables, images, dense=True)``).
      num_boxes: K, boxes per image.
      box_size: fractional box side, or ``(height, width)``, each in (0, 1].
      exclude_class: None, one class index, or ``[N]`` indices (negative = none) whose map is ignored,
        e.g. each image's current label when looking for further objects.
      window: non-maximum-suppression window (odd side, in grid cells).
      normalize: score with per-class min-max normalised maps (each class's own strongest cell scores 1,
        whatever its logit scale) instead of the raw logits (the default: softmax-free logits, so a
        location's score is the evidence for its best class and weakly activated classes do not produce
        spurious peaks).

    Each cell scores the max over classes of its (possibly normalised) logit. A cell is a peak when it
    equals the maximum of its ``window x window`` neighbourhood; the K highest peaks are taken, then, if
    there are fewer than K, the remaining cells by decreasing score (and if K exceeds ``h * w`` the ranking
    repeats). Each box is centred on its cell centre ``((i + 0.5) / h, (j + 0.5) / w)`` and shifted to lie
    inside the image.

    Returns:
      ``(boxes [N, K, 4] float32, peak_classes [N, K] int32)``: the class achieving each peak's score.
    """
    dense_logits = jnp.asarray(dense_logits)
    if dense_logits.ndim != 4:
        raise ValueError(
            f"crops.proposal_boxes: dense_logits must be [N, h, w, C], got shape {dense_logits.shape}"
        )
    num_boxes = _positive_int("proposal_boxes", "num_boxes", num_boxes)
    box_size = _box_size("proposal_boxes", "box_size", box_size)
    window = _positive_int("proposal_boxes", "window", window)
    if window % 2 == 0:
        raise ValueError(f"crops.proposal_boxes: window must be odd so it centres on a cell, got {window}")
    return _proposal_boxes(
        dense_logits,
        _excluded_classes(exclude_class, dense_logits.shape[0]),
        num_boxes=num_boxes,
        box_size=box_size,
        window=window,
        normalize=bool(normalize),
    )
