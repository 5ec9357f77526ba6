"""Data-driven defaults: what a run does not set is read from the data before any work starts.

Fields left at their 'auto' values are resolved here, printed, and stored in the run's `config.json`:

- `data.num_classes` (0): the class list of the label file (`"classes"`), else the largest label + 1 over the
  train and validation files; folder sources count their class folders.
- `data.image_size` (0): the median shorter side of a seeded sample of training images, capped at
  `data.max_image_size` (0 = by the number of training images: 64 px under 5,000 images, 112 px under 50,000,
  else 224; a network trained from scratch on a few thousand photos learns their objects better, and a CPU
  affords more epochs, at low resolution) and rounded down to a multiple of 8 (at least 32).
- `data.mean`, `data.std` (empty): per-channel statistics of that sample at the chosen size.
- `model.name` ('auto'): a small ResNet (`resnet_tiny`, small stem) below 96 px, else ResNet-18 with the
  ImageNet stem, as wide as the data can feed: width 16 under 5,000 training images, 32 under 50,000, else 64
  (torchvision's). Small datasets do not need, and a CPU cannot afford, the full network. The small network
  reads a user's images at width 24 (`SMALL_NET_WIDTH`; its preset, 16, stays for the built-in digit scenes,
  where 24 gained +0.002, within seed noise): on denser scenes of smaller objects the reader's capacity limits
  the labels (label F1 +0.011 to +0.018 in 3 seeds; benchmarks/history/label-quality.md, "A wider reader for your own small images").

- `train.epochs`, `relabel.epochs`: raised so that round 0 takes at least `train.min_steps` steps and each
  later round at least `relabel.min_steps` (small datasets need more epochs than large ones for the same
  training); `relabel.fresh_epochs` (0: as round 0) is set so that a fresh round takes at least
  `relabel.fresh_min_steps` steps and `train.epochs` as given (large datasets: as round 0).
- `relabel.round0_models` (0): three for photos (a median side of at least 96 px) up to `ENSEMBLE_MAX_IMAGES`
  training images, else one. A network trained from scratch on a few thousand photos errs from run to run, and
  the mean of three such models' crop evidence made better labels (3,000 photo scenes: round 1 +0.009 in both
  seeds measured on 0.6-1 training crops; on small ones +0.016 and +0.005-0.008, seeds 1 and 0, and the whole
  runs' outputs +0.008 on each seed; benchmarks/history/label-quality.md, "Three models in round 0 for photos" and "Three round-0
  models with the small training crops"); on small digit images the gain was within the seed noise, and on large
  sets each round 0 is hours.
  `relabel.round0_models_min_top1` may still keep it to one.
- `train.augment.scale` (empty; the relabel recipe's): for photos, random-resized crops from the area of the
  smallest window the rounds score (`smallest_window_area`: 0.45² of the image with the default grid) up to the
  whole image; else 0.6-1 (`LARGE_CROPS`). The rounds' models score windows enlarged to their input; trained on
  crops of 0.6-1 of the area they never meet such a view, and read strokes of a larger object as another class.
  On 3,000 photo scenes, whole runs with one round-0 model and small crops against three round-0 models and
  0.6-1: label F1 0.933 against 0.918 (seed 0) and 0.928 against 0.929 (seed 1), for a third of round 0's time;
  on the digit scenes (40 px) +0.004 in each of 2 seeds, within the noise: they keep 0.6-1 (benchmarks/history/label-quality.md).

The built-in digit scenes resolve to their generator's own size and statistics. Nothing here trains.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from mlrelabel.data.errors import ImageDecodeError
from mlrelabel.data.images import open_image
from mlrelabel.data.labels import read_label_file

SAMPLE = 128  # images measured for size and statistics
SMALL_IMAGE = 96  # below this side the small-stem network is chosen
ENSEMBLE_MAX_IMAGES = 20000  # relabel.round0_models auto: photo sets this small train three round-0 models
# train.augment.scale auto below SMALL_IMAGE: random-resized crops of 0.6-1 of the image area
LARGE_CROPS = (0.6, 1.0)
SMALL_NET_WIDTH = 24  # stem channels of that network on a user's images (the preset's 16: the built-in data)
DIGIT_DEFAULTS = {'image_size': 40, 'num_classes': 10, 'mean': (0.1, 0.1, 0.1), 'std': (0.25, 0.25, 0.25)}
IMAGENET_STATS = {'mean': (0.485, 0.456, 0.406), 'std': (0.229, 0.224, 0.225)}


def label_file_classes(path: str) -> list[str] | None:
    """The class names of a label file (its `"classes"` list, else a classes.txt beside it), or None."""
    import json

    from mlrelabel.data.labels import class_names_of

    with open(path, encoding='utf-8') as f:
        doc = json.load(f)
    return class_names_of(doc, path)[0]


def _auto_max_size(num_images: int) -> int:
    return 64 if num_images < 5000 else 112 if num_images < 50000 else 224


def _auto_width(num_images: int, small_net: bool) -> int:
    """Stem channels for a user's images: `SMALL_NET_WIDTH` for the small network, else by the number of images."""
    if small_net:
        return SMALL_NET_WIDTH
    return 16 if num_images < 5000 else 32 if num_images < 50000 else 64


def _training_paths(config) -> tuple[list[str], int | None]:
    """`(image paths of the training split, number of classes or None)` without decoding any image."""
    d = config.data
    if d.source == 'json':
        paths, table = read_label_file(d.train_json, None, root=d.root or None)
        classes = label_file_classes(d.train_json)
        largest = table.classes.max() if len(table.classes) else -1
        if d.val_json:
            largest = max(largest, read_label_file(d.val_json, None, root=d.root or None)[1].classes.max())
        return paths, len(classes) if classes else int(largest) + 1
    if d.source == 'folder' and d.root and os.path.isdir(os.path.join(d.root, 'train')):
        train = os.path.join(d.root, 'train')
        names = sorted(n for n in os.listdir(train) if os.path.isdir(os.path.join(train, n)))
        paths = [os.path.join(train, n, f) for n in names for f in sorted(os.listdir(os.path.join(train, n)))]
        return paths, len(names)
    if d.source in ('annotation_folder', 'attribute_csv', 'partial_json') and d.train_path:
        from mlrelabel.data import formats

        paths, names = formats.training_files(config)
        return paths, len(names)
    return [], None


def image_statistics(paths: list[str], seed: int, max_size: int) -> dict:
    """Median shorter side and per-channel mean/std (of [0, 1] pixels) of a seeded sample of images."""
    rng = np.random.default_rng(seed)
    sample = [paths[i] for i in rng.permutation(len(paths))[:SAMPLE]]
    sides, readable = [], []
    for path in sample:
        try:
            with Image.open(path) as img:
                sides.append(min(img.size))
                readable.append(path)
        except OSError:
            continue  # unreadable images are counted by the data checks; they do not vote here
    if not sides:
        raise ValueError(
            f'none of the {len(sample)} sampled training images could be opened (e.g. {sample[:1]})'
        )
    size = int(min(np.median(sides), max_size)) // 8 * 8
    size = max(32, size)
    pixels = []
    for path in readable[:64]:
        try:
            img = open_image(path)
        except ImageDecodeError:
            continue  # as above: the data checks count it
        pixels.append(np.asarray(img.resize((size, size)), np.float64).reshape(-1, 3) / 255.0)
    allpix = np.concatenate(pixels)
    return {
        'median_side': float(np.median(sides)),
        'image_size': size,
        'mean': tuple(round(float(v), 4) for v in allpix.mean(0)),
        'std': tuple(round(float(max(v, 1e-3)), 4) for v in allpix.std(0)),
    }


def _auto_model(m, image_size: int, num_images: int | None) -> str:
    """Sets `model.name` 'auto' (and its stem, and the width for a user's images) from the image size."""
    small_net = image_size < SMALL_IMAGE
    if small_net:
        m.name, m.small_stem, m.stem_stride = 'resnet_tiny', True, 2 if image_size >= 32 else 1
    else:
        m.name, m.small_stem, m.stem_stride = 'resnet18', False, 0
    if not m.width and num_images:  # a user's images (the built-in data: the preset)
        m.width = _auto_width(num_images, small_net)
    return (
        f'model.name={m.name} (width={m.width or "preset"}, small_stem={m.small_stem}, '
        f'stem_stride={m.stem_stride}; {image_size} px images)'
    )


def resolve_data_defaults(config) -> list[str]:
    """Fills the 'auto' fields of `config` in place (see the module docstring); returns one note per field set."""
    d, m = config.data, config.model
    notes = []
    needs_models = 'relabel' in config and config.relabel.round0_models == 0
    needs_scale = 'relabel' in config and not tuple(config.train.augment.scale)
    needs = {
        'image_size': not d.image_size,
        'num_classes': not d.num_classes,
        'stats': not tuple(d.mean) or not tuple(d.std),
    }
    if d.source == 'digit_scenes':
        found = dict(DIGIT_DEFAULTS)
        origin = 'the built-in digit scenes'
    elif d.source == 'tfds':
        found = {'image_size': 224, 'num_classes': 1000, **IMAGENET_STATS}
        origin = 'ImageNet (TFDS)'
    elif any(needs.values()) or m.name == 'auto' or needs_models or needs_scale:
        paths, num_classes = _training_paths(config)
        found = {'num_classes': num_classes} if num_classes else {}
        measure = needs['image_size'] or needs['stats'] or m.name == 'auto' or needs_models or needs_scale
        if paths and measure:
            stats = image_statistics(paths, config.seed, d.max_image_size or _auto_max_size(len(paths)))
            found.update(stats, num_images=len(paths))
        origin = f'a sample of {min(SAMPLE, len(paths))} training images' if paths else 'the data source'
    else:
        found, origin = {}, ''
    if needs['num_classes'] and found.get('num_classes'):
        d.num_classes = int(found['num_classes'])
        notes.append(f'data.num_classes={d.num_classes} (from the labels)')
    if needs['image_size'] and found.get('image_size'):
        d.image_size = int(found['image_size'])
        extra = f", median side {found['median_side']:.0f} px" if 'median_side' in found else ''
        notes.append(f'data.image_size={d.image_size} (from {origin}{extra})')
    source = origin or 'the data source'
    if needs['stats'] and m.pretrained:  # torchvision weights expect ImageNet's normalisation
        found.update(IMAGENET_STATS)
        origin = 'ImageNet, for the weights of model.pretrained'
    if needs['stats'] and 'mean' in found:
        d.mean, d.std = tuple(found['mean']), tuple(found['std'])
        notes.append(f'data.mean={d.mean}, data.std={d.std} (from {origin})')
    num_images = found.get('num_images') or (d.num_train if d.source == 'digit_scenes' else 0)
    notes += _raise_epochs(config, num_images)
    if m.name == 'auto' and d.image_size:
        notes.append(_auto_model(m, d.image_size, found.get('num_images')))
    side = found.get('median_side') or found.get('image_size') or d.image_size
    if needs_models:
        notes.append(_round0_models(config.relabel, side, num_images, source))
    if needs_scale:
        notes.append(_train_crop_scale(config, side))
    return notes


def smallest_window_area(crops) -> float:
    """The area, as a fraction of the image, of the smallest crop `relabel.crops` scores (1 for whole images)."""
    kind = crops.kind
    if kind == 'grid':
        return float(min(crops.grid_scales)) ** 2
    if kind == 'random':
        return float(crops.scale[0])
    if kind == 'fixed':
        return float(crops.size[0]) * float(crops.size[1])
    if kind == 'proposals':
        return float(crops.proposal_box_size) ** 2
    return 1.0


def _train_crop_scale(config, side: float) -> str:
    """Sets an empty `train.augment.scale` (auto, relabel runs): for photos (median side >= `SMALL_IMAGE`) crops
    from the smallest scored window's area up to the whole image, else `LARGE_CROPS`; returns the note."""
    a = config.train.augment
    if side and side >= SMALL_IMAGE:
        low = min(LARGE_CROPS[0], max(0.05, round(smallest_window_area(config.relabel.crops), 2)))
        a.scale = (low, 1.0)
        why = f'photos of median side {side:.0f} px: as small as the smallest window the rounds score'
    else:
        a.scale = LARGE_CROPS
        why = f'images of side {side:.0f} px, under {SMALL_IMAGE}' if side else 'no images measured'
    return f'train.augment.scale={tuple(a.scale)} ({why})'


def _round0_models(r, side: float, count: int, origin: str) -> str:
    """Sets `relabel.round0_models` left at 0 (auto): 3 for photos (median side >= `SMALL_IMAGE`) up to
    `ENSEMBLE_MAX_IMAGES` training images, else 1; returns the note that says why."""
    photos = side >= SMALL_IMAGE and 0 < count <= ENSEMBLE_MAX_IMAGES
    r.round0_models = 3 if photos else 1
    if photos:
        why = (
            f"{count} training photos of median side {side:.0f} px: three models score round 1's crops; "
            "--config.relabel.round0_models=1 for a third of round 0's time"
        )
    elif not count:
        why = f'{origin}: one model'
    elif side >= SMALL_IMAGE:
        why = f'{count} training images, over {ENSEMBLE_MAX_IMAGES}: one model'
    else:
        why = f'images of side {side:.0f} px, under {SMALL_IMAGE}: one model'
    return f'relabel.round0_models={r.round0_models} ({why})'


def _raise_epochs(config, num_images: int) -> list[str]:
    """Raises `train.epochs` to reach `train.min_steps` steps (round 0) and `relabel.epochs` to reach
    `relabel.min_steps` steps per relabel round; sets `relabel.fresh_epochs` (when 0) to at least
    `relabel.fresh_min_steps` steps per fresh round, never fewer than `train.epochs` before round 0's raise."""
    steps_per_epoch = max(1, num_images // config.train.batch_size)

    def epochs_for(steps: int) -> int:
        return int(-(-steps // steps_per_epoch))

    notes = []
    base_epochs = int(config.train.epochs)  # before round 0's raise: the floor of a fresh round too
    min_steps = config.train.min_steps
    if min_steps and num_images and config.train.epochs < epochs_for(min_steps):
        config.train.epochs = epochs_for(min_steps)
        notes.append(
            f'train.epochs={config.train.epochs} (at least train.min_steps={min_steps} steps of {num_images} images)'
        )
    if 'relabel' not in config or not num_images:
        return notes
    r = config.relabel
    round_steps = r.min_steps
    if round_steps and r.epochs and r.epochs < epochs_for(round_steps):
        r.epochs = epochs_for(round_steps)
        notes.append(
            f'relabel.epochs={r.epochs} (at least relabel.min_steps={round_steps} steps per relabel round)'
        )
    fresh_steps = r.fresh_min_steps
    if fresh_steps and not r.fresh_epochs:
        r.fresh_epochs = max(base_epochs, epochs_for(fresh_steps))
        notes.append(
            f'relabel.fresh_epochs={r.fresh_epochs} (relabel.fresh_min_steps={fresh_steps} steps per fresh round)'
        )
    return notes
