"""Crop boxes: pure, jittable samplers of ``(y0, x0, y1, x1)`` boxes in image fractions.

Shared by training (random-resized-crop), the relabel loop's crops and ReLabel's LabelPooling.

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
  * ``sample_boxes``      config-driven dispatcher over 'random' | 'fixed' | 'grid' | 'full'.
Boxes around peaks of the model's class maps live in ``mlrelabel.relabel.crops.proposal_boxes``.

Every public function validates its static arguments in Python (raising errors that name the function and
argument) and then calls a ``jax.jit``-compiled core with the shape-determining arguments marked static.
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
    "sample_boxes",
    "SAMPLE_KINDS",
]

FULL_BOX = (0.0, 0.0, 1.0, 1.0)
"""The whole image as a ``(y0, x0, y1, x1)`` box."""

SAMPLE_KINDS = ("random", "fixed", "grid", "full")
"""Kinds accepted by ``sample_boxes`` ('proposals' need dense logits: call ``relabel.crops.proposal_boxes``)."""


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


def _pair(value: Any, scalar: tuple[type, ...], cast, error: str) -> tuple[Any, Any]:
    """``(cast(h), cast(w))`` from a pair, or from one ``scalar`` value used twice; ValueError ``error``."""
    if isinstance(value, scalar) and not isinstance(value, bool):
        value = (value, value)
    try:
        height, width = (cast(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{error}, got {value!r}") from None
    return height, width


def _box_size(fn: str, name: str, value: Any) -> tuple[float, float]:
    """A fractional ``(height, width)`` box size from a number or a pair, each in (0, 1]."""
    numbers = (int, float, np.integer, np.floating)
    height, width = _pair(
        value, numbers, float, f"crops.{fn}: {name} must be a number or a (height, width) pair"
    )
    if not (0.0 < height <= 1.0 and 0.0 < width <= 1.0):
        raise ValueError(f"crops.{fn}: {name} fractions must lie in (0, 1], got {value!r}")
    return height, width


def _output_size(fn: str, value: Any) -> tuple[int, int]:
    height, width = _pair(
        value, (int, np.integer), int, f"crops.{fn}: size must be an int or an (height, width) pair"
    )
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
# Config-driven dispatcher.
# ----------------------------------------------------------------------------------------------------------


def _call_kind(kind: str, params: dict, build):
    """`build()`, with a TypeError from wrong `params` for `kind` reworded to name them."""
    try:
        return build()
    except TypeError as error:
        raise TypeError(
            f"crops.sample_boxes: bad parameters {sorted(params)} for kind {kind!r}: {error}"
        ) from None


def _grid_kind(num_images: int, num_crops: int | None, params: dict) -> jax.Array:
    """`sample_boxes`' kind 'grid': the same window grid for every image; checks `num_crops` against it."""
    grid = _call_kind("grid", params, lambda: grid_boxes(**params))
    if num_crops is not None and num_crops != grid.shape[0]:
        raise ValueError(
            f"crops.sample_boxes: kind 'grid' with {params or 'default parameters'} gives {grid.shape[0]} "
            f"windows, but num_crops = {num_crops}; set num_crops to {grid.shape[0]} or None"
        )
    return tile_boxes(grid, num_images)


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
        boxes = _call_kind(kind, params, lambda: fn(key, num_images, num_crops, **params))
    elif kind == "grid":
        boxes = _grid_kind(num_images, num_crops, params)
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
