"""Digit scenes: a small built-in multi-label dataset with single visible labels.

Each image is composed from real handwritten digits, scikit-learn's bundled `load_digits()` (1797
8x8 digits; no download). An image holds several digits but carries one *visible* label, like an
ImageNet photo with several objects and one annotated class; the *hidden* truth is the set of all
digit classes present. This is the setting of ReLabel (Yun et al., "Re-labeling ImageNet: from
Single to Multi-Labels, from Global to Localized Labels", CVPR 2021): a relabeler should recover the
hidden sets, which can be measured here exactly.

Two layouts:
  * 'scenes' (default): 1..4 digits of random size, position and colour on a dark noisy background,
    limited overlap, max blending. Visible label: the largest digit ('largest') or a random one
    ('random').
  * 'grid': the multi-label MNIST protocol of MILe (Rajeswar et al., "Multi-label Iterated Learning
    for Image Classification with Label Ambiguity", CVPR 2022): a 3x3 grid of digits filling the
    image; the visible label is the centre digit with probability 0.6, otherwise one of the other
    eight uniformly.

Source digits are disjoint between splits: a fixed permutation (independent of `seed`) divides the
1797 digits 60% / 20% / 20% into 'train' / 'val' / 'test' pools and each split draws only from its
own pool. Everything is a deterministic function of the arguments.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import asdict, dataclass

import numpy as np

from mlrelabel.io_utils import atomic_save_npz

__all__ = [
    "SPLITS",
    "NUM_CLASSES",
    "DigitSceneOptions",
    "split_pool",
    "make_digit_scenes",
    "load_or_build_digit_scenes",
]

SPLITS = ("train", "val", "test")
NUM_CLASSES = 10
_SPLIT_FRACTIONS = (0.6, 0.2, 0.2)
_POOL_SEED = 1234  # fixed: the split of source digits never depends on the scene seed
_GRID_CELLS = 3
_GRID_CENTRE_PROB = 0.6
# Bump when the generator changes so that cached npz files are rebuilt.
_GENERATOR_VERSION = 1

# Scene look: overlap limits and colours (fractions of full intensity).
_MAX_IOU = 0.3  # reject a placement whose IoU with a placed digit exceeds this ...
_MAX_COVER = 0.5  # ... or that covers more than this fraction of the smaller digit's box
_PLACEMENT_TRIES = 12  # a digit that cannot be placed within this many tries is left out
_BACKGROUND_MAX = 0.2  # per-image background colour, each channel uniform in [0, this]
_NOISE_STD = 0.06  # per-pixel Gaussian noise over the whole image
_MIN_ASPECT = 0.75  # digit width = height * uniform(_MIN_ASPECT, 1): square-ish


@dataclass(frozen=True)
class DigitSceneOptions:
    """How digit scenes look (everything but split, count and seed); validated on construction.

    Fields:
      image_size: side S of the square images in pixels.
      min_digits, max_digits: 'scenes' draws uniform(min_digits..max_digits) digits per image.
      min_scale, max_scale: 'scenes' digit height in pixels, uniform(min_scale..max_scale).
      visible: 'largest' (class of the largest digit, first on ties) or 'random' (uniform digit).
      layout: 'scenes' or 'grid' ('grid' ignores the digit counts, scales and `visible`).
    """

    image_size: int = 40
    min_digits: int = 1
    max_digits: int = 4
    min_scale: int = 10
    max_scale: int = 20
    visible: str = "largest"
    layout: str = "scenes"

    def __post_init__(self):
        if self.layout not in ("scenes", "grid"):
            raise ValueError(f"layout must be 'scenes' or 'grid', got {self.layout!r}")
        if self.visible not in ("largest", "random"):
            raise ValueError(f"visible must be 'largest' or 'random', got {self.visible!r}")
        if self.layout == "grid":
            if self.image_size < 2 * _GRID_CELLS:
                raise ValueError(
                    f"layout 'grid' needs image_size >= {2 * _GRID_CELLS}, got {self.image_size}"
                )
            return
        if not 1 <= self.min_digits <= self.max_digits:
            raise ValueError(f"need 1 <= min_digits <= max_digits, got {self.min_digits}, {self.max_digits}")
        if not 2 <= self.min_scale <= self.max_scale <= self.image_size:
            raise ValueError(
                "need 2 <= min_scale <= max_scale <= image_size, got "
                f"{self.min_scale}, {self.max_scale}, {self.image_size}"
            )


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 sklearn digits as ([1797, 8, 8] float32 intensities in [0, 1], [1797] int32 classes)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    return images, digits.target.astype(np.int32)


def split_pool(split: str, num_digits: int = 1797) -> np.ndarray:
    """Sorted indices into `load_digits()` that `split` may draw from (disjoint across splits)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    perm = np.random.default_rng(_POOL_SEED).permutation(num_digits)
    n_train = int(_SPLIT_FRACTIONS[0] * num_digits)
    n_val = int(_SPLIT_FRACTIONS[1] * num_digits)
    bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, num_digits)}
    lo, hi = bounds[split]
    return np.sort(perm[lo:hi])


def _bilinear_matrix(out_size: int, in_size: int) -> np.ndarray:
    """[out_size, in_size] weights of 1-d bilinear resampling (half-pixel centres, edge clamped)."""
    centres = (np.arange(out_size, dtype=np.float64) + 0.5) * in_size / out_size - 0.5
    centres = np.clip(centres, 0.0, in_size - 1)
    lo = np.floor(centres).astype(np.int64)
    hi = np.minimum(lo + 1, in_size - 1)
    frac = centres - lo
    m = np.zeros((out_size, in_size), np.float64)
    rows = np.arange(out_size)
    np.add.at(m, (rows, lo), 1.0 - frac)
    np.add.at(m, (rows, hi), frac)
    return m.astype(np.float32)


def _resize_all(glyphs: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of `glyphs` [P, h, w] to [P, height, width] as two matrix products."""
    rows = _bilinear_matrix(height, glyphs.shape[1])
    cols = _bilinear_matrix(width, glyphs.shape[2])
    return np.matmul(np.matmul(rows, glyphs), cols.T)


def _random_colours(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Bright random colours `shape + (3,)` in [0, 1]: random hue-ish mix, brightest channel 0.6..1."""
    mix = rng.uniform(0.1, 1.0, size=shape + (3,))
    mix /= mix.max(axis=-1, keepdims=True)
    return (mix * rng.uniform(0.6, 1.0, size=shape + (1,))).astype(np.float32)


def _finish(canvas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Max-blends `canvas` [N, S, S, 3] over dark backgrounds, adds pixel noise, returns uint8."""
    n = canvas.shape[0]
    background = rng.uniform(0.0, _BACKGROUND_MAX, size=(n, 1, 1, 3)).astype(np.float32)
    image = np.maximum(canvas, background)
    image += _NOISE_STD * rng.standard_normal(size=image.shape, dtype=np.float32)
    image *= 255.0
    np.clip(image, 0.0, 255.0, out=image)
    return np.rint(image).astype(np.uint8)


def _overlap_ok(box: tuple[int, int, int, int], placed: list[tuple[int, int, int, int]]) -> bool:
    """True when pixel box (y0, x0, y1, x1) overlaps every placed box little enough."""
    y0, x0, y1, x1 = box
    area = (y1 - y0) * (x1 - x0)
    for py0, px0, py1, px1 in placed:
        inter = max(0, min(y1, py1) - max(y0, py0)) * max(0, min(x1, px1) - max(x0, px0))
        if inter == 0:
            continue
        parea = (py1 - py0) * (px1 - px0)
        if inter / (area + parea - inter) > _MAX_IOU or inter / min(area, parea) > _MAX_COVER:
            return False
    return True


def _make_scenes(rng, source, num_images, options: DigitSceneOptions):
    """The 'scenes' layout from `source` = (pool, glyphs, classes); see `make_digit_scenes`.

    All random draws are made up front as arrays (for `max_digits` digits and every placement try);
    the Python loop only checks overlaps and pastes digits, one slice operation per digit.
    """
    pool, glyphs, classes = source
    n, d, t, size = num_images, options.max_digits, _PLACEMENT_TRIES, options.image_size
    wanted = rng.integers(options.min_digits, d + 1, size=n)
    src = rng.integers(len(pool), size=(n, d))
    heights = rng.integers(options.min_scale, options.max_scale + 1, size=(n, d))
    widths = np.maximum(2, np.rint(heights * rng.uniform(_MIN_ASPECT, 1.0, size=(n, d)))).astype(np.int64)
    colours = _random_colours(rng, (n, d))
    # Positions per try: uniform over the valid top-left corners of each digit's box.
    ys = np.floor(rng.uniform(size=(n, d, t)) * (size - heights + 1)[..., None]).astype(np.int64)
    xs = np.floor(rng.uniform(size=(n, d, t)) * (size - widths + 1)[..., None]).astype(np.int64)
    pick = rng.uniform(size=n)  # for visible='random'

    canvas = np.zeros((n, size, size, 3), np.float32)
    boxes = np.full((n, d, 4), -1.0, np.float32)
    box_labels = np.full((n, d), -1, np.int32)
    source_ids = np.full((n, d), -1, np.int32)
    num_digits = np.zeros((n,), np.int32)
    visible_slot = np.zeros((n,), np.int32)
    matrices: dict[int, np.ndarray] = {}  # output size -> [size, 8] bilinear weights

    def weights(m: int) -> np.ndarray:
        if m not in matrices:
            matrices[m] = _bilinear_matrix(m, glyphs.shape[1])
        return matrices[m]

    for i in range(n):
        placed: list[tuple[int, int, int, int]] = []
        for j in range(int(wanted[i])):
            h, w = int(heights[i, j]), int(widths[i, j])
            box = None
            for k in range(t):
                candidate = (int(ys[i, j, k]), int(xs[i, j, k]), int(ys[i, j, k]) + h, int(xs[i, j, k]) + w)
                if _overlap_ok(candidate, placed):
                    box = candidate
                    break
            if box is None:
                continue  # too crowded: leave this digit out (truth only lists drawn digits)
            glyph = weights(h) @ glyphs[src[i, j]] @ weights(w).T  # bilinear resize to [h, w]
            y0, x0, y1, x1 = box
            region = canvas[i, y0:y1, x0:x1]
            np.maximum(region, glyph[:, :, None] * colours[i, j], out=region)
            slot = len(placed)
            placed.append(box)
            boxes[i, slot] = (y0 / size, x0 / size, y1 / size, x1 / size)
            box_labels[i, slot] = classes[src[i, j]]
            source_ids[i, slot] = pool[src[i, j]]
        num_digits[i] = len(placed)
        if options.visible == "largest":
            areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in placed]
            visible_slot[i] = int(np.argmax(areas))  # argmax: first of ties
        else:
            visible_slot[i] = min(int(pick[i] * len(placed)), len(placed) - 1)
    image = _finish(canvas, rng)
    return image, boxes, box_labels, source_ids, num_digits, visible_slot


def _make_grid(rng, source, num_images, size):
    """The 'grid' layout (MILe multi-label MNIST) from `source` = (pool, glyphs, classes)."""
    pool, glyphs, classes = source
    g = _GRID_CELLS
    cell = size // g
    margin = (size - g * cell) // 2
    slots = g * g
    src = rng.integers(len(pool), size=(num_images, slots))
    colours = _random_colours(rng, (num_images, slots))
    tiles = _resize_all(glyphs, cell, cell)[src][..., None] * colours[:, :, None, None, :]  # [N, 9, c, c, 3]
    tiles = tiles.reshape(num_images, g, g, cell, cell, 3).transpose(0, 1, 3, 2, 4, 5)
    canvas = np.zeros((num_images, size, size, 3), np.float32)
    canvas[:, margin : margin + g * cell, margin : margin + g * cell] = tiles.reshape(
        num_images, g * cell, g * cell, 3
    )
    centre = slots // 2
    others = np.array([s for s in range(slots) if s != centre])
    use_centre = rng.uniform(size=num_images) < _GRID_CENTRE_PROB
    visible_slot = np.where(use_centre, centre, others[rng.integers(len(others), size=num_images)]).astype(
        np.int32
    )

    r, c = np.divmod(np.arange(slots), g)
    y0 = (margin + r * cell) / size
    x0 = (margin + c * cell) / size
    cell_boxes = np.stack([y0, x0, y0 + cell / size, x0 + cell / size], axis=-1).astype(np.float32)
    boxes = np.broadcast_to(cell_boxes, (num_images, slots, 4)).copy()
    box_labels = classes[src].astype(np.int32)
    source_ids = pool[src].astype(np.int32)
    num_digits = np.full((num_images,), slots, np.int32)
    image = _finish(canvas, rng)
    return image, boxes, box_labels, source_ids, num_digits, visible_slot


def make_digit_scenes(
    split: str, num_images: int, options: DigitSceneOptions = DigitSceneOptions(), seed: int = 0
) -> dict[str, np.ndarray]:
    """Composes `num_images` digit images for `split`, deterministically from the arguments.

    'scenes' layout: each image gets uniform(min_digits..max_digits) digits, each resized bilinearly
    to height uniform(min_scale..max_scale) px and width 0.75..1 of that, at a random position; a
    placement overlapping a placed digit too much (IoU > 0.3, or covering > 50% of the smaller box)
    is redrawn, and after 12 failed tries the digit is left out, so `num_digits` can be below the
    draw. 'grid' layout: a 3x3 grid of (image_size // 3)-px cells, always 9 digit slots.

    Args:
      split: 'train', 'val' or 'test'; selects the disjoint pool of source digits.
      options: the look of the scenes (`DigitSceneOptions`).

    Returns:
      A dict of numpy arrays (D = max_digits, or 9 for 'grid'):
        image [N, S, S, 3] uint8; label [N] int32 visible label; truth [N, 10] uint8 multi-hot of all
        digit classes present; boxes [N, D, 4] float32 (y0, x0, y1, x1) fractions of the image, -1
        padded; box_labels [N, D] int32 and source_ids [N, D] int32 (index into `load_digits()`),
        -1 padded; num_digits [N] int32; visible_slot [N] int32 (which digit gives the label).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not isinstance(options, DigitSceneOptions):
        raise ValueError(f"options must be a DigitSceneOptions, got {type(options).__name__}")
    if int(num_images) < 0:
        raise ValueError(f"num_images must be >= 0, got {num_images}")
    num_images = int(num_images)
    all_glyphs, all_classes = _load_digits()
    pool = split_pool(split, len(all_glyphs)).astype(np.int32)
    source = (pool, all_glyphs[pool], all_classes[pool])
    rng = np.random.default_rng([int(seed), SPLITS.index(split), 0 if options.layout == "scenes" else 1])
    if options.layout == "scenes":
        made = _make_scenes(rng, source, num_images, options)
    else:
        made = _make_grid(rng, source, num_images, options.image_size)
    return _scene_arrays(*made)


def _scene_arrays(image, boxes, box_labels, source_ids, num_digits, visible_slot) -> dict[str, np.ndarray]:
    """The result dict of `make_digit_scenes`, adding the visible `label` and multi-hot `truth`."""
    num_images = image.shape[0]
    rows = np.arange(num_images)
    label = box_labels[rows, visible_slot].astype(np.int32)
    truth = np.zeros((num_images, NUM_CLASSES), np.uint8)
    present = box_labels >= 0
    truth[np.nonzero(present)[0], box_labels[present]] = 1
    return {
        "image": image,
        "label": label,
        "truth": truth,
        "boxes": boxes,
        "box_labels": box_labels,
        "source_ids": source_ids,
        "num_digits": num_digits,
        "visible_slot": visible_slot,
    }


def _split_kwargs(kwargs: dict) -> tuple[int, DigitSceneOptions, int]:
    """(num_images, options, seed) from flat keyword arguments (the config's `data` fields)."""
    rest = dict(kwargs)
    num_images = rest.pop("num_images")
    seed = rest.pop("seed", 0)
    return num_images, DigitSceneOptions(**rest), seed


def _cache_key(split: str, kwargs: dict) -> str:
    """Hash of all generator arguments (defaults filled in) and the generator version."""
    num_images, options, seed = _split_kwargs(kwargs)
    spec = dict(asdict(options), split=split, num_images=num_images, seed=seed, version=_GENERATOR_VERSION)
    text = json.dumps(spec, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_or_build_digit_scenes(
    cache_dir: str | os.PathLike | None, split: str, **kwargs
) -> dict[str, np.ndarray]:
    """`make_digit_scenes` cached as `<cache_dir>/digit_scenes_<split>_<hash>.npz`.

    `kwargs`: `num_images`, optional `seed` and any `DigitSceneOptions` field. The hash covers every
    argument (defaults included), so changing one builds a new file. The file is written atomically;
    an unreadable cache file is rebuilt. `cache_dir=None` disables caching.
    """
    if cache_dir is None:
        return make_digit_scenes(split, *_split_kwargs(kwargs))
    key = _cache_key(split, kwargs)
    path = os.path.join(os.fspath(cache_dir), f"digit_scenes_{split}_{key}.npz")
    if os.path.exists(path):
        try:
            with np.load(path, allow_pickle=False) as f:
                return {name: f[name] for name in f.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError):
            pass  # damaged cache (e.g. disk trouble): rebuild below and overwrite it
    arrays = make_digit_scenes(split, *_split_kwargs(kwargs))
    atomic_save_npz(path, **arrays)
    return arrays
