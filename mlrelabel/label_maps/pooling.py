"""LabelPooling: soft multi-label targets for a training crop from a dense label map.

ReLabel (Yun et al. 2021, "Re-labeling ImageNet: from Single to Multi-Labels, from Global to Localized
Labels") stores, for every training image, the top-k class scores of a strong classifier at every cell of
its final feature map (``[k, h, w]`` scores and class ids, h = w = 15 for ImageNet). During training the
random-resized-crop box is pooled out of that map with a one-cell RoIAlign (He et al. 2017, "Mask R-CNN")
and a softmax over classes turns the pooled scores into the crop's soft target.

Box convention: as in ``crops.py``, a box is ``(y0, x0, y1, x1)`` in image fractions and pixel/cell ``i``
spans ``[i, i + 1]`` (centre ``i + 0.5``).

RoIAlign semantics (torchvision ``roi_align(..., output_size=(1, 1), spatial_scale=1, sampling_ratio=-1,
aligned=False)``, the call in ReLabel's released ``utils/relabel_functions.py``), per axis of size ``n``:
  * ``start = frac0 * n - offset``, ``end = frac1 * n - offset``, ``extent = max(end - start, 1)``;
  * adaptive sampling: ``grid = ceil(extent)`` samples at ``start + (i + 0.5) * extent / grid``;
  * bilinear interpolation where a sample with a coordinate ``< -1`` or ``> n`` contributes 0, a coordinate
    ``<= 0`` is clamped to 0, and one at or beyond cell ``n - 1`` reads cell ``n - 1``;
  * the result is the sum of the interpolated samples divided by the number of samples ``grid_h * grid_w``.

``offset``: the released ReLabel code passes ``box * label_maps.size(3) - 0.5`` (checked against
naver-ai/relabel_imagenet, ``utils/relabel_functions.py::get_relabel``), i.e. ``offset = 0.5``: this converts
the half-pixel box convention to torchvision's cell-index coordinates (cell ``i``'s value sits at ``i``), so
the whole-image box samples exactly the cell centres. It is the default here; ``offset = 0`` reproduces a
plain ``aligned=False`` call without the shift. ReLabel scales both axes by the map width (its maps are
square); here y is scaled by ``h`` and x by ``w``, identical for square maps.

Box order: the released loader builds ``(i/H, j/W, i/H + h/H, j/W + w/W)`` = ``(y0, x0, y1, x1)`` and passes
it to ``roi_align``, which reads ``(x1, y1, x2, y2)``, so the released training pools the transposed box.
``transpose_boxes=True`` reproduces that; the default pools the box as given.

Adaptive sampling makes the sample count data dependent; to stay jittable the samples are laid out on a
static grid of ``n + 1`` per axis (a box inside ``[0, 1]`` needs at most ``ceil(n) = n``; one more absorbs
float round-up) and unused samples are masked out, so the result equals the adaptive computation. Because
bilinear weights and the validity test factor over the two axes, the pooled value is
``sum_ij wy[i] wx[j] map[i, j]`` with per-axis weight vectors, computed without gathers.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["topk_to_dense", "roi_align_average", "label_pooling", "flip_boxes", "RELABEL_OFFSET"]

RELABEL_OFFSET = 0.5
"""The coordinate shift ReLabel's released code applies (``box * size - 0.5``) before ``roi_align``."""


# ----------------------------------------------------------------------------------------------------------
# Argument checks (Python side, before tracing).
# ----------------------------------------------------------------------------------------------------------


def _check_rank(fn: str, name: str, x: Any, rank: int, layout: str) -> None:
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) != rank:
        raise ValueError(f"label_pooling.{fn}: {name} must be {layout}, got shape {shape}")


def _check_boxes(fn: str, maps: Any, boxes: Any) -> None:
    _check_rank(fn, "dense_maps", maps, 4, "[batch, h, w, num_classes]")
    _check_rank(fn, "boxes", boxes, 2, "[batch, 4] (y0, x0, y1, x1)")
    if boxes.shape != (maps.shape[0], 4):
        raise ValueError(
            f"label_pooling.{fn}: boxes must be [batch, 4] = {(maps.shape[0], 4)} to match dense_maps "
            f"{tuple(maps.shape)}, got {tuple(boxes.shape)}"
        )


def _check_offset(fn: str, offset: Any) -> float:
    try:
        value = float(offset)
    except (TypeError, ValueError):
        raise ValueError(f"label_pooling.{fn}: offset must be a number, got {offset!r}") from None
    if not np.isfinite(value):
        raise ValueError(f"label_pooling.{fn}: offset must be finite, got {offset!r}")
    return value


# ----------------------------------------------------------------------------------------------------------
# Top-k maps -> dense maps.
# ----------------------------------------------------------------------------------------------------------


def _topk_to_dense_one(scores: jax.Array, indices: jax.Array, num_classes: int) -> jax.Array:
    """`[k, h, w]` scores and class ids -> `[h, w, C]`; a later duplicate id at a cell overwrites earlier."""
    k, h, w = scores.shape
    ids = indices
    if jnp.issubdtype(ids.dtype, jnp.floating):
        ids = jnp.round(ids)
    ids = ids.astype(jnp.int32)
    # Overwrite semantics (torch scatter_ on CPU): drop an entry if a later k' at the same cell has its id.
    same = ids[:, None] == ids[None, :]  # [k, k', h, w]
    later = jnp.triu(jnp.ones((k, k), bool), 1)[:, :, None, None]
    keep = ~jnp.any(same & later, axis=1)
    keep &= (ids >= 0) & (ids < num_classes)
    values = jnp.where(keep, scores, 0).astype(scores.dtype)
    rows = jnp.broadcast_to(jnp.arange(h)[None, :, None], (k, h, w))
    cols = jnp.broadcast_to(jnp.arange(w)[None, None, :], (k, h, w))
    safe_ids = jnp.clip(ids, 0, num_classes - 1)
    dense = jnp.zeros((h, w, num_classes), scores.dtype)
    return dense.at[rows, cols, safe_ids].add(values, mode="drop")


@functools.partial(jax.jit, static_argnames=("num_classes",))
def _topk_to_dense(scores, indices, num_classes):
    return jax.vmap(_topk_to_dense_one, in_axes=(0, 0, None))(scores, indices, num_classes)


def topk_to_dense(scores: jax.Array, indices: jax.Array, num_classes: int) -> jax.Array:
    """Scatters stored top-k label maps into dense maps (ReLabel's ``get_labelmaps``).

    Args:
      scores: `[batch, k, h, w]` float top-k class scores per cell.
      indices: `[batch, k, h, w]` class ids, int or float (ReLabel stores them as floats; rounded here).
      num_classes: C.
    Returns:
      `[batch, h, w, C]` with the scores at their class ids and zeros elsewhere. If a cell lists the same id
      twice the later entry along k overwrites the earlier (torch ``scatter_`` on CPU); ids outside
      ``[0, C)`` are dropped. ReLabel's maps come from ``topk`` so their ids are distinct anyway.
    """
    _check_rank("topk_to_dense", "scores", scores, 4, "[batch, k, h, w]")
    if getattr(indices, "shape", None) != scores.shape:
        raise ValueError(
            f"label_pooling.topk_to_dense: indices must have the shape of scores {tuple(scores.shape)}, "
            f"got {getattr(indices, 'shape', None)}"
        )
    if (
        isinstance(num_classes, (bool, np.bool_))
        or not isinstance(num_classes, (int, np.integer))
        or num_classes < 1
    ):
        raise ValueError(
            f"label_pooling.topk_to_dense: num_classes must be a positive int, got {num_classes!r}"
        )
    scores = jnp.asarray(scores)
    if not jnp.issubdtype(scores.dtype, jnp.floating):
        scores = scores.astype(jnp.float32)
    return _topk_to_dense(scores, jnp.asarray(indices), int(num_classes))


# ----------------------------------------------------------------------------------------------------------
# RoIAlign with one output cell.
# ----------------------------------------------------------------------------------------------------------


def _axis_weights(frac0: jax.Array, frac1: jax.Array, size: int, offset: float) -> jax.Array:
    """Per-axis RoIAlign weights `[size]` for one box side: the pooled value is `sum_ij wy[i] wx[j] v[i, j]`.

    Follows torchvision's ``roi_align`` CPU kernel with ``pooled = 1``, ``spatial_scale = 1``,
    ``sampling_ratio = -1``, ``aligned = False`` (see the module docstring); includes the `1 / grid` of the
    final average, which factors into `1 / grid_h * 1 / grid_w`.
    """
    frac0 = frac0.astype(jnp.float32)
    frac1 = frac1.astype(jnp.float32)
    start = frac0 * size - offset
    end = frac1 * size - offset
    extent = jnp.maximum(end - start, 1.0)
    max_grid = size + 1
    grid = jnp.clip(jnp.ceil(extent), 1, max_grid)
    steps = jnp.arange(max_grid, dtype=jnp.float32)
    used = steps < grid
    pos = start + (steps + 0.5) * extent / grid  # [max_grid]
    inside = (pos >= -1.0) & (pos <= size)
    pos = jnp.maximum(pos, 0.0)
    low = jnp.floor(pos).astype(jnp.int32)
    at_edge = low >= size - 1
    low = jnp.where(at_edge, size - 1, low)
    high = jnp.where(at_edge, size - 1, low + 1)
    pos = jnp.where(at_edge, low.astype(jnp.float32), pos)
    frac = pos - low
    cells = jnp.arange(size)
    weights = (1.0 - frac)[:, None] * (cells[None, :] == low[:, None]) + frac[:, None] * (
        cells[None, :] == high[:, None]
    )  # [max_grid, size]
    weights = jnp.where((used & inside)[:, None], weights, 0.0)
    return weights.sum(axis=0) / grid


def _roi_align_one(dense: jax.Array, box: jax.Array, offset: float) -> jax.Array:
    h, w, _ = dense.shape
    wy = _axis_weights(box[0], box[2], h, offset)
    wx = _axis_weights(box[1], box[3], w, offset)
    return jnp.einsum("i,j,ijc->c", wy, wx, dense.astype(jnp.float32), precision=jax.lax.Precision.HIGHEST)


def _transpose(boxes: jax.Array) -> jax.Array:
    return boxes[:, jnp.array([1, 0, 3, 2])]


@functools.partial(jax.jit, static_argnames=("offset", "transpose_boxes"))
def _roi_align_average(dense, boxes, offset, transpose_boxes):
    if transpose_boxes:
        boxes = _transpose(boxes)
    return jax.vmap(_roi_align_one, in_axes=(0, 0, None))(dense, boxes, offset)


def roi_align_average(
    dense: jax.Array, boxes: jax.Array, offset: float = RELABEL_OFFSET, transpose_boxes: bool = False
) -> jax.Array:
    """Average of a dense map over a box by one-cell RoIAlign (torchvision semantics, see module docstring).

    Args:
      dense: `[batch, h, w, C]` float maps.
      boxes: `[batch, 4]` ``(y0, x0, y1, x1)`` fractions of the map (of the image it was computed from).
      offset: subtracted from the scaled coordinates ``frac * size``; 0.5 (default) is ReLabel's released
        ``box * size - 0.5``, 0 a bare ``aligned=False`` call.
      transpose_boxes: pool ``(x0, y0, x1, y1)`` instead, as ReLabel's released training does.
    Returns:
      `[batch, C]` float32 pooled scores.
    """
    _check_boxes("roi_align_average", dense, boxes)
    offset = _check_offset("roi_align_average", offset)
    if transpose_boxes and dense.shape[1] != dense.shape[2]:
        raise ValueError(
            f"label_pooling.roi_align_average: transpose_boxes needs square maps, got h, w = {dense.shape[1:3]}"
        )
    return _roi_align_average(
        jnp.asarray(dense), jnp.asarray(boxes, jnp.float32), offset, bool(transpose_boxes)
    )


def label_pooling(
    dense_maps: jax.Array, boxes: jax.Array, transpose_boxes: bool = False, offset: float = RELABEL_OFFSET
) -> jax.Array:
    """ReLabel's LabelPooling: softmax over classes of the RoIAlign average of the label map over the box.

    Args:
      dense_maps: `[batch, h, w, C]` label maps (e.g. from ``topk_to_dense``).
      boxes: `[batch, 4]` ``(y0, x0, y1, x1)`` in ``[0, 1]``: the training crop in the source image.
      transpose_boxes: swap x and y of the box, reproducing ReLabel's released training code.
      offset: see ``roi_align_average`` (default 0.5 = ReLabel's released code).
    Returns:
      `[batch, C]` float32 soft targets (rows sum to 1).
    """
    pooled = roi_align_average(dense_maps, boxes, offset=offset, transpose_boxes=transpose_boxes)
    return jax.nn.softmax(pooled, axis=-1)


# ----------------------------------------------------------------------------------------------------------
# Horizontal flips.
# ----------------------------------------------------------------------------------------------------------


@jax.jit
def _flip_boxes(boxes, flipped):
    y0, x0, y1, x1 = (boxes[:, i] for i in range(4))
    mirrored = jnp.stack([y0, 1.0 - x1, y1, 1.0 - x0], axis=1)
    return jnp.where(flipped[:, None], mirrored, boxes)


def flip_boxes(boxes: jax.Array, flipped: jax.Array) -> jax.Array:
    """Mirrors boxes left/right where ``flipped``: ``(y0, x0, y1, x1) -> (y0, 1 - x1, y1, 1 - x0)``.

    Use it when a box is expressed in the coordinates of a horizontally flipped image while the label map
    belongs to the unflipped image: pooling the mirrored box on the map equals pooling the box on the
    flipped map. Do NOT apply it to boxes from ``ops.augment.random_resized_crop_flip``: those are
    already in source-image coordinates (the flip happens after the crop), and a flipped crop covers the
    same source region, so its label is the pooled label of the unmirrored box.

    Args:
      boxes: `[batch, 4]` ``(y0, x0, y1, x1)`` fractions.
      flipped: `[batch]` bool.
    Returns:
      `[batch, 4]` boxes.
    """
    _check_rank("flip_boxes", "boxes", boxes, 2, "[batch, 4] (y0, x0, y1, x1)")
    if boxes.shape[1] != 4 or getattr(flipped, "shape", None) != (boxes.shape[0],):
        raise ValueError(
            f"label_pooling.flip_boxes: expected boxes [batch, 4] and flipped [batch], got "
            f"{tuple(boxes.shape)} and {getattr(flipped, 'shape', None)}"
        )
    return _flip_boxes(jnp.asarray(boxes, jnp.float32), jnp.asarray(flipped, bool))
