"""Crop sampling and extraction: the "Crop" stage of the Crop -> Confidence -> Label relabel loop.

CS570 multi-labels ImageNet by classifying many crops of each image and keeping the classes the model is
confident about on some crop. This module makes the crops: pure, jittable functions of arrays and PRNG
keys with static shapes.

Box convention (shared with ReLabel's LabelPooling, Yun et al. 2021, "Re-labeling ImageNet"): a box is
float32 ``(y0, x0, y1, x1)`` in image fractions, ``0 <= y0 < y1 <= 1`` and ``0 <= x0 < x1 <= 1``; the
whole image is ``(0, 0, 1, 1)``. A box covers the continuous pixel interval ``[y0 * H, y1 * H]`` where
pixel ``i`` spans ``[i, i + 1]`` (its centre is ``i + 0.5``: the half-pixel convention), so box
``(4/16, 8/16, 12/16, 16/16)`` of a 16x16 image is exactly pixels ``[4:12, 8:16]``.

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
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "FULL_BOX",
    "random_boxes",
    "fixed_size_boxes",
    "grid_boxes",
    "tile_boxes",
    "full_boxes",
    "proposal_boxes",
    "extract_crops",
    "sample_boxes",
    "SAMPLE_KINDS",
]

FULL_BOX = (0.0, 0.0, 1.0, 1.0)
"""The whole image as a ``(y0, x0, y1, x1)`` box."""

SAMPLE_KINDS = ("random", "fixed", "grid", "full")
"""Kinds accepted by ``sample_boxes`` ('proposals' need dense logits: call ``proposal_boxes``)."""

# Smallest box side, in pixels, that ``extract_crops`` divides by (guards zero-size boxes).
_MIN_EXTENT_PIXELS = 1e-3


# ----------------------------------------------------------------------------------------------------------
# Argument checks (Python side, before tracing).
# ----------------------------------------------------------------------------------------------------------


def _positive_int(fn: str, name: str, value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"crops.{fn}: {name} must be a positive int, got {value!r}")
    return int(value)


def _range_pair(fn: str, name: str, value: Any, upper: float | None = None) -> tuple[float, float]:
    """Validates a ``(low, high)`` pair with ``0 < low <= high (<= upper)`` and returns floats."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"crops.{fn}: {name} must be a pair (low, high) of numbers, got {value!r}") from None
    if not (0.0 < low <= high) or (upper is not None and high > upper):
        bound = f" <= {upper}" if upper is not None else ""
        raise ValueError(f"crops.{fn}: {name} must satisfy 0 < low <= high{bound}, got {value!r}")
    return low, high


def _box_size(fn: str, name: str, value: Any) -> tuple[float, float]:
    """A fractional ``(height, width)`` box size from a number or a pair, each in (0, 1]."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        value = (value, value)
    try:
        height, width = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(
            f"crops.{fn}: {name} must be a number or a (height, width) pair, got {value!r}"
        ) from None
    if not (0.0 < height <= 1.0 and 0.0 < width <= 1.0):
        raise ValueError(f"crops.{fn}: {name} fractions must lie in (0, 1], got {value!r}")
    return height, width


def _output_size(fn: str, value: Any) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value, value)
    try:
        height, width = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(
            f"crops.{fn}: size must be an int or an (height, width) pair, got {value!r}"
        ) from None
    if height < 1 or width < 1:
        raise ValueError(f"crops.{fn}: size must be positive, got {value!r}")
    return height, width


def _check_key(fn: str, key: Any) -> None:
    shape = getattr(key, "shape", None)
    typed = hasattr(key, "dtype") and jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    if shape is None or (typed and shape != ()) or (not typed and shape != (2,)):
        raise ValueError(
            f"crops.{fn}: key must be a single PRNG key (jax.random.key(...) or jax.random.PRNGKey(...)), "
            f"got {type(key).__name__} with shape {shape}"
        )


# ----------------------------------------------------------------------------------------------------------
# Random boxes.
# ----------------------------------------------------------------------------------------------------------


def _place(key: jax.Array, height: jax.Array, width: jax.Array) -> jax.Array:
    """Boxes of the given fractional sizes (each <= 1) at uniform positions inside the image.

    ``height`` and ``width`` are ``[K]``; returns ``[K, 4]``.
    """
    uniform = jax.random.uniform(key, (height.shape[0], 2), dtype=jnp.float32)
    y0 = uniform[:, 0] * (1.0 - height)
    x0 = uniform[:, 1] * (1.0 - width)
    # The minimum keeps rounding from pushing the far edge past the border.
    return jnp.stack([y0, x0, jnp.minimum(y0 + height, 1.0), jnp.minimum(x0 + width, 1.0)], axis=-1)


def _random_boxes_one(
    key: jax.Array, num_crops: int, scale: tuple[float, float], ratio: tuple[float, float]
) -> jax.Array:
    """``[num_crops, 4]`` random-resized-crop boxes for one image."""
    area_key, ratio_key, place_key = jax.random.split(key, 3)
    area = jax.random.uniform(area_key, (num_crops,), jnp.float32, scale[0], scale[1])
    log_ratio = jax.random.uniform(
        ratio_key, (num_crops,), jnp.float32, math.log(ratio[0]), math.log(ratio[1])
    )
    aspect = jnp.exp(log_ratio)  # width / height, in image fractions
    width = jnp.minimum(jnp.sqrt(area * aspect), 1.0)
    height = jnp.minimum(jnp.sqrt(area / aspect), 1.0)
    return _place(place_key, height, width)


@functools.partial(jax.jit, static_argnames=("num_images", "num_crops", "scale", "ratio"))
def _random_boxes(key, num_images, num_crops, scale, ratio):
    keys = jax.random.split(key, num_images)
    return jax.vmap(lambda k: _random_boxes_one(k, num_crops, scale, ratio))(keys)


def random_boxes(
    key: jax.Array,
    num_images: int,
    num_crops: int,
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3 / 4, 4 / 3),
) -> jax.Array:
    """Random-resized-crop boxes ``[num_images, num_crops, 4]`` float32.

    Per crop: area fraction ``a ~ U(scale)``, aspect ratio ``r = width / height`` log-uniform in ``ratio``
    (measured in image fractions, i.e. pixel aspect for square images), so ``width = sqrt(a r)`` and
    ``height = sqrt(a / r)``. Instead of the Inception crop's rejection loop (not jittable) each side is
    clipped to 1 and the box placed uniformly so it lies inside the image. Clipping only shrinks the box:
    the area never exceeds ``scale[1]``, and it is at least ``scale[0]`` whenever the sampled box fits.
    Image ``i`` uses ``jax.random.split(key, num_images)[i]`` (sampling is vmapped over images).
    """
    _check_key("random_boxes", key)
    num_images = _positive_int("random_boxes", "num_images", num_images)
    num_crops = _positive_int("random_boxes", "num_crops", num_crops)
    scale = _range_pair("random_boxes", "scale", scale)
    ratio = _range_pair("random_boxes", "ratio", ratio)
    return _random_boxes(key, num_images=num_images, num_crops=num_crops, scale=scale, ratio=ratio)


@functools.partial(jax.jit, static_argnames=("num_images", "num_crops", "size"))
def _fixed_size_boxes(key, num_images, num_crops, size):
    height = jnp.full((num_crops,), size[0], jnp.float32)
    width = jnp.full((num_crops,), size[1], jnp.float32)
    keys = jax.random.split(key, num_images)
    return jax.vmap(lambda k: _place(k, height, width))(keys)


def fixed_size_boxes(
    key: jax.Array, num_images: int, num_crops: int, size: float | Sequence[float] = (0.5, 0.5)
) -> jax.Array:
    """Boxes of fixed fractional ``size = (height, width)`` (or one number for both) at uniform random
    positions inside the image: ``[num_images, num_crops, 4]`` float32."""
    _check_key("fixed_size_boxes", key)
    num_images = _positive_int("fixed_size_boxes", "num_images", num_images)
    num_crops = _positive_int("fixed_size_boxes", "num_crops", num_crops)
    size = _box_size("fixed_size_boxes", "size", size)
    return _fixed_size_boxes(key, num_images=num_images, num_crops=num_crops, size=size)


# ----------------------------------------------------------------------------------------------------------
# Deterministic boxes.
# ----------------------------------------------------------------------------------------------------------


def _window_starts(side: float, overlap: float) -> list[float]:
    """Start offsets of windows of fractional ``side`` covering [0, 1]; the last one is flush with 1."""
    if side >= 1.0:
        return [0.0]
    stride = side * (1.0 - overlap)
    # Tolerance so that e.g. (1 - 0.5) / 0.25 does not round up to an extra, duplicate window.
    count = int(math.ceil((1.0 - side) / stride - 1e-9)) + 1
    starts = [min(i * stride, 1.0 - side) for i in range(count)]
    return sorted(set(round(s, 12) for s in starts))


def grid_boxes(scales: Sequence[float] = (1.0, 0.5), overlap: float = 0.5) -> np.ndarray:
    """A multi-scale sliding-window grid: ``[K, 4]`` float32 NumPy array (a constant; no key needed).

    For each scale ``s`` (in the given order) a square window of fractional side ``s`` moves with stride
    ``s * (1 - overlap)`` along both axes, rows then columns, the last window flush with the border, so the
    windows of every scale cover the whole image. Scale 1.0 contributes the full image. With the defaults
    ``K = 1 + 3 * 3 = 10``.
    """
    try:
        scales = [float(s) for s in scales]
    except (TypeError, ValueError):
        raise ValueError(f"crops.grid_boxes: scales must be a sequence of numbers, got {scales!r}") from None
    if not scales or any(not (0.0 < s <= 1.0) for s in scales):
        raise ValueError(f"crops.grid_boxes: scales must be a non-empty sequence in (0, 1], got {scales!r}")
    if not (0.0 <= float(overlap) < 1.0):
        raise ValueError(f"crops.grid_boxes: overlap must lie in [0, 1), got {overlap!r}")
    boxes = []
    for side in scales:
        starts = _window_starts(side, float(overlap))
        for y0 in starts:
            for x0 in starts:
                boxes.append((y0, x0, min(y0 + side, 1.0), min(x0 + side, 1.0)))
    return np.asarray(boxes, dtype=np.float32)


def tile_boxes(boxes: jax.Array | np.ndarray, num_images: int) -> jax.Array:
    """The same ``[K, 4]`` boxes for every image: ``[num_images, K, 4]`` float32."""
    num_images = _positive_int("tile_boxes", "num_images", num_images)
    boxes = jnp.asarray(boxes, jnp.float32)
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"crops.tile_boxes: boxes must be [K, 4] (y0, x0, y1, x1), got shape {boxes.shape}")
    return jnp.broadcast_to(boxes[None], (num_images,) + boxes.shape)


def full_boxes(num_images: int, num_crops: int = 1) -> jax.Array:
    """The whole image ``(0, 0, 1, 1)`` repeated: ``[num_images, num_crops, 4]`` float32."""
    num_crops = _positive_int("full_boxes", "num_crops", num_crops)
    return tile_boxes(np.tile(np.asarray([FULL_BOX], np.float32), (num_crops, 1)), num_images)


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
    num_images = dense_logits.shape[0]
    if exclude_class is None:
        exclude = jnp.full((num_images,), -1, jnp.int32)
    else:
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
        exclude = jnp.broadcast_to(exclude.astype(jnp.int32), (num_images,))
    return _proposal_boxes(
        dense_logits,
        exclude,
        num_boxes=num_boxes,
        box_size=box_size,
        window=window,
        normalize=bool(normalize),
    )


# ----------------------------------------------------------------------------------------------------------
# Crop extraction.
# ----------------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------------
# Config-driven dispatcher.
# ----------------------------------------------------------------------------------------------------------


def sample_boxes(
    key: jax.Array,
    kind: str,
    num_images: int,
    num_crops: int | None = None,
    *,
    include_full_image: bool = False,
    **params: Any,
) -> jax.Array:
    """Boxes ``[num_images, K, 4]`` of a configured ``kind``, for use from configs.

    Kinds (``params`` go to the named function):
      * ``'random'``: ``random_boxes(key, num_images, num_crops, scale=..., ratio=...)``.
      * ``'fixed'``:  ``fixed_size_boxes(key, num_images, num_crops, size=...)``.
      * ``'grid'``:   ``grid_boxes(scales=..., overlap=...)`` for every image (key unused); ``num_crops``
        may be None (all windows) or must equal the window count.
      * ``'full'``:   the whole image, ``num_crops`` times (default 1; key unused).
    Proposals need the model's dense logits, so they are not a kind here: call ``proposal_boxes``.

    ``include_full_image=True`` replaces the first crop of every image by the full image: crops near
    object scale plus the full image were measured to beat many tiny crops.
    """
    if kind in ("random", "fixed"):
        if num_crops is None:
            raise ValueError(f"crops.sample_boxes: kind {kind!r} needs num_crops")
        fn = random_boxes if kind == "random" else fixed_size_boxes
        try:
            boxes = fn(key, num_images, num_crops, **params)
        except TypeError as error:
            raise TypeError(
                f"crops.sample_boxes: bad parameters {sorted(params)} for kind {kind!r}: {error}"
            ) from None
    elif kind == "grid":
        try:
            grid = grid_boxes(**params)
        except TypeError as error:
            raise TypeError(
                f"crops.sample_boxes: bad parameters {sorted(params)} for kind 'grid': {error}"
            ) from None
        if num_crops is not None and num_crops != grid.shape[0]:
            raise ValueError(
                f"crops.sample_boxes: kind 'grid' with {params or 'default parameters'} gives {grid.shape[0]} "
                f"windows, but num_crops = {num_crops}; set num_crops to {grid.shape[0]} or None"
            )
        boxes = tile_boxes(grid, num_images)
    elif kind == "full":
        if params:
            raise TypeError(f"crops.sample_boxes: kind 'full' takes no parameters, got {sorted(params)}")
        boxes = full_boxes(
            _positive_int("sample_boxes", "num_images", num_images), 1 if num_crops is None else num_crops
        )
    elif kind == "proposals":
        raise ValueError(
            "crops.sample_boxes: kind 'proposals' needs the model's dense logits; "
            "call crops.proposal_boxes(dense_logits, num_boxes, ...) instead"
        )
    else:
        raise ValueError(f"crops.sample_boxes: kind must be one of {SAMPLE_KINDS}, got {kind!r}")
    if include_full_image:
        boxes = boxes.at[:, 0].set(jnp.asarray(FULL_BOX, jnp.float32))
    return boxes
