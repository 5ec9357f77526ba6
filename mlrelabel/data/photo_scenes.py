"""Photo scenes: JPEG photos with pasted objects, one given label each and the hidden full sets kept aside.

The built-in digit scenes are 40 px toys; users' images are photos of 96–500 px. This generator makes data of
that kind from what ships with scikit-learn (no download): backgrounds are random crops of its sample
photographs (`load_sample_images`), objects are its handwritten digits (`load_digits`), upsampled, coloured and
alpha-blended at several sizes. It writes what a user would have:

  <out>/images/<split>_<i>.jpg        square JPEGs, side drawn from `image_sizes`
  <out>/train.json, <out>/val.json    label files with ONE given label per image (the largest object, or a
                                      random one) and the class names (`"classes"`)
  <out>/train_truth.json, val_truth.json   every object present: scores a run, never given to it

  python -m mlrelabel.data.photo_scenes --out=DIR [--num_train=1000 --num_val=300 --seed=0 ...]

Source digits are disjoint between the splits. Everything is a pure function of the arguments and the seed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
from absl import app, flags
from PIL import Image

from mlrelabel.io_utils import atomic_write_bytes, atomic_write_json

CLASS_NAMES = ('zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine')


@dataclass(frozen=True)
class PhotoSceneOptions:
    """How photo scenes look and are stored; each (low, high) pair is an inclusive range.

    Fields:
      image_sizes: image side in pixels, drawn per image.
      objects: number of pasted digits per image.
      object_scale: digit side as a fraction of the image side, drawn per digit.
      opacity: alpha of a pasted digit, drawn per digit.
      visible: which object gives the label: 'largest' or 'random'.
      quality: JPEG quality of the written images.
    """

    image_sizes: tuple[int, int] = (96, 224)
    objects: tuple[int, int] = (1, 3)
    object_scale: tuple[float, float] = (0.25, 0.5)
    opacity: tuple[float, float] = (0.75, 1.0)
    visible: str = 'largest'
    quality: int = 90

    def __post_init__(self):
        if self.visible not in ('largest', 'random'):
            raise ValueError(
                f"make_photo_scenes: visible must be 'largest' or 'random', got {self.visible!r}"
            )


def _backgrounds() -> list[np.ndarray]:
    from sklearn.datasets import load_sample_images

    return [np.asarray(img, np.uint8) for img in load_sample_images().images]


def _digit_pool(split: str, seed: int):
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    cut = int(0.7 * len(order))
    rows = order[:cut] if split == 'train' else order[cut:]
    return digits.images[rows] / 16.0, digits.target[rows].astype(np.int64)


def _place(rng, side: int, sizes: list[int], max_overlap: float) -> list[tuple[int, int]]:
    """Top-left corners for squares of `sizes` inside `side`, each overlapping earlier ones by at most
    `max_overlap` of its own area (a few tries each, then accepted anyway)."""
    corners, boxes = [], []
    for s in sizes:
        for _ in range(20):
            y, x = rng.integers(0, side - s + 1, 2)
            ok = all(
                max(0, min(y + s, b[0] + b[2]) - max(y, b[0]))
                * max(0, min(x + s, b[1] + b[2]) - max(x, b[1]))
                <= max_overlap * s * s
                for b in boxes
            )
            if ok:
                break
        corners.append((int(y), int(x)))
        boxes.append((int(y), int(x), s))
    return corners


def compose(rng, sources, side: int, num_objects: int, options: PhotoSceneOptions, max_overlap=0.15):
    """One photo scene from `sources` = (backgrounds, digit pool): `(image [side, side, 3] uint8, classes, sizes)`."""
    backgrounds, pool = sources
    object_scale, opacity = options.object_scale, options.opacity
    bg = backgrounds[rng.integers(len(backgrounds))]
    crop = int(rng.uniform(0.35, 1.0) * min(bg.shape[:2]))
    y0 = rng.integers(0, bg.shape[0] - crop + 1)
    x0 = rng.integers(0, bg.shape[1] - crop + 1)
    image = Image.fromarray(bg[y0 : y0 + crop, x0 : x0 + crop]).resize(
        (side, side), Image.Resampling.BILINEAR
    )
    canvas = np.asarray(image, np.float32)
    images, labels = pool
    picks = rng.integers(0, len(labels), num_objects)
    sizes = sorted((int(rng.uniform(*object_scale) * side) for _ in range(num_objects)), reverse=True)
    corners = _place(rng, side, sizes, max_overlap)
    for pick, size, (y, x) in zip(picks, sizes, corners):
        glyph = Image.fromarray((images[pick] * 255).astype(np.uint8)).resize(
            (size, size), Image.Resampling.BICUBIC
        )
        alpha = np.clip(np.asarray(glyph, np.float32) / 255.0, 0, 1)[..., None] * rng.uniform(*opacity)
        colour = rng.uniform(0, 255, 3)
        if np.abs(colour - canvas[y : y + size, x : x + size].mean((0, 1))).max() < 90:
            colour = 255.0 - colour  # keep the object visible against its background
        canvas[y : y + size, x : x + size] = canvas[y : y + size, x : x + size] * (1 - alpha) + colour * alpha
    return np.clip(canvas, 0, 255).astype(np.uint8), labels[picks], np.asarray(sizes)


def make_photo_scenes(
    out_dir: str,
    num_train: int = 1000,
    num_val: int = 300,
    options: PhotoSceneOptions = PhotoSceneOptions(),
    seed: int = 0,
) -> dict:
    """Writes the dataset (see the module docstring); returns `{split: {'labels', 'truth'}}` file paths."""
    image_sizes, objects, visible = options.image_sizes, options.objects, options.visible
    os.makedirs(os.path.join(out_dir, 'images'), exist_ok=True)
    backgrounds = _backgrounds()
    out = {}
    for s, (split, n) in enumerate((('train', num_train), ('val', num_val))):
        rng = np.random.default_rng([seed, s])
        pool = _digit_pool(split, seed)
        given, truth = [], []
        for i in range(n):
            side = int(rng.integers(image_sizes[0], image_sizes[1] + 1))
            num = int(rng.integers(objects[0], objects[1] + 1))
            image, classes, sizes = compose(rng, (backgrounds, pool), side, num, options)
            name = f'images/{split}_{i:05d}.jpg'
            buffer = _jpeg(image, options.quality)
            atomic_write_bytes(os.path.join(out_dir, name), buffer)
            shown = int(classes[0] if visible == 'largest' else classes[rng.integers(len(classes))])
            given.append({'img_path': name, 'labels': [shown]})
            truth.append({'img_path': name, 'labels': sorted(set(int(c) for c in classes))})
        paths = {}
        for kind, entries in (('labels', given), ('truth', truth)):
            path = os.path.join(out_dir, f'{split}.json' if kind == 'labels' else f'{split}_truth.json')
            atomic_write_json(path, {'classes': list(CLASS_NAMES), 'data': entries}, indent=None)
            paths[kind] = path
        out[split] = paths
    return out


def _jpeg(image: np.ndarray, quality: int) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format='JPEG', quality=quality)
    return buffer.getvalue()


def _main(argv):
    del argv
    f = flags.FLAGS
    paths = make_photo_scenes(
        f.out,
        f.num_train,
        f.num_val,
        PhotoSceneOptions(
            image_sizes=(f.min_size, f.max_size),
            objects=(f.min_objects, f.max_objects),
            object_scale=(f.min_scale, f.max_scale),
            opacity=(f.min_opacity, f.max_opacity),
            visible=f.visible,
        ),
        seed=f.seed,
    )
    print(json.dumps(paths, indent=2))


if __name__ == '__main__':
    flags.DEFINE_string('out', None, 'Output folder.', required=True)
    flags.DEFINE_integer('num_train', 1000, 'Training images.')
    flags.DEFINE_integer('num_val', 300, 'Validation images.')
    flags.DEFINE_integer('min_size', 96, 'Smallest image side (px).')
    flags.DEFINE_integer('max_size', 224, 'Largest image side (px).')
    flags.DEFINE_integer('min_objects', 1, 'Fewest objects per image.')
    flags.DEFINE_integer('max_objects', 3, 'Most objects per image.')
    flags.DEFINE_float('min_scale', 0.25, 'Smallest object side, a fraction of the image side.')
    flags.DEFINE_float('max_scale', 0.5, 'Largest object side, a fraction of the image side.')
    flags.DEFINE_float('min_opacity', 0.75, 'Least object opacity.')
    flags.DEFINE_float('max_opacity', 1.0, 'Most object opacity.')
    flags.DEFINE_enum('visible', 'largest', ['largest', 'random'], 'Which object is the given label.')
    flags.DEFINE_integer('seed', 0, 'Seed.')
    app.run(_main)
