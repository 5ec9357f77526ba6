"""ImageNet sources: an ImageNet-layout folder and TFDS ArrayRecord datasets, as `Dataset`s of lazy readers.

Class index = position of the WNID in sorted order everywhere (the order of TFDS's `labels.txt`,
torchvision's `ImageFolder` and the ReaL labels).

Folder layout (`--config.data.source=folder --config.data.root=DIR`):
```
DIR/train/<wnid>/*.JPEG                       training images; the class set = the sorted WNID folders
DIR/val/<wnid>/*.JPEG                         validation, labelled by folder, or
DIR/val/*.JPEG                                flat validation, labelled by `data.val_labels` (a text file:
                                              `<file name> <wnid|index>` per line, or one `<wnid|index>` per
                                              line in sorted file-name order) or, without one, by TFDS's
                                              `validation_labels.txt` (files named ILSVRC2012_val_<8 digits>)
```
TFDS (`--config.data.source=tfds`): `tfds.data_source(data.tfds_name)` splits `train` and `validation`,
prepared by the user as ArrayRecord (`tfds build imagenet2012 --file_format=array_record`); reading needs
no TensorFlow. The per-record labels and file names are read once and cached under `<workdir>/data/`.

Validation images get ReaL label sets (Beyer et al. 2020) as `Dataset.truth` when `data.real_json` names the
ReaL json, or (TFDS) when `imagenet2012_real` is prepared in the same data directory; entries are matched by
the ILSVRC2012_val number in the file name, else by sorted file-name order.

Corrupt images: the folder source pre-verifies every file once (`data.check_images`, threads, cached in
`<workdir>/data/`) and drops unreadable ones with their labels, counted in the returned report and a
warning. Any decode failure that still happens at read time (a TFDS record, a file damaged later) never
stops a run: the reader returns a black image for that row, records the index and reason in
`reader.failures` and warns once per image.

The pieces: `imagenet_readers` (decoding, lazy readers), `imagenet_labels` (class order, validation labels,
ReaL sets), `imagenet_tfds` (TFDS); this module loads the folder source and re-exports them.
"""

from __future__ import annotations

import logging
import os

import jax
import numpy as np
from PIL import Image

from mlrelabel import parallel
from mlrelabel.data.checks import drop_unreadable
from mlrelabel.data.imagenet_labels import (
    _num_classes,
    _read_real,
    _real_truth,
    _subsample,
    folder_split,
    list_wnids,
)
from mlrelabel.data.imagenet_readers import (
    FolderImages,
)
from mlrelabel.data.label_table import LabelTable
from mlrelabel.data.sources import Dataset
from mlrelabel.errors import ConfigError

__all__ = ['load_folder', 'make_synthetic_folder']


_SYNTHETIC_SIZE = (40, 48)  # (height, width) of the images `make_synthetic_folder` writes


def make_synthetic_folder(
    root: str,
    num_classes: int = 4,
    per_class: int = 8,
    num_val: int = 2,
    seed: int = 0,
    flat_val: bool = False,
) -> list[str]:
    """Writes a tiny ImageNet-layout folder of generated JPEGs: each class a distinct colour pattern with
    noise, `per_class` training and `num_val` validation images per class, 40 x 48 px (`_SYNTHETIC_SIZE`).
    Returns the WNIDs (sorted).
    With `flat_val`, val/ is flat (ILSVRC2012_val_<n>.JPEG) with a `val_labels.txt` beside it."""
    rng = np.random.default_rng(seed)
    wnids = [f'n{10000000 + 1111 * c:08d}' for c in range(num_classes)]
    h, w = _SYNTHETIC_SIZE
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    lines, n_val = [], 0
    for c, wnid in enumerate(wnids):
        colour = np.array([(c * 97) % 256, (c * 57 + 80) % 256, (c * 151 + 160) % 256], np.float32)
        pattern = np.sin((c + 1) * 6.0 * (xx if c % 2 else yy))[..., None]
        for split, count in (('train', per_class), ('val', num_val)):
            for k in range(count):
                img = colour * (0.6 + 0.4 * pattern) + rng.normal(0, 20, (h, w, 3))
                img = np.clip(img, 0, 255).astype(np.uint8)
                if split == 'val' and flat_val:
                    n_val += 1
                    name = f'ILSVRC2012_val_{n_val:08d}.JPEG'
                    path = os.path.join(root, 'val', name)
                    lines.append(f'{name} {wnid}')
                else:
                    path = os.path.join(root, split, wnid, f'{wnid}_{k}.JPEG')
                os.makedirs(os.path.dirname(path), exist_ok=True)
                Image.fromarray(img).save(path, quality=90)
    if flat_val:
        with open(os.path.join(root, 'val_labels.txt'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
    return wnids


def load_folder(config, workdir: str) -> dict:
    """`{'train', 'val'}` Datasets from the ImageNet-layout folder `config.data.root` (see the module doc).

    Config fields: `data.root`, `data.image_size`, `data.num_classes` (0 = as found), `data.check_images`,
    `data.num_train`/`data.num_val` (> 0: a seeded subset of that many images), and optionally
    `data.val_labels` (flat val label file), `data.real_json` (ReaL sets for val), `data.synthetic`
    (with an empty root: generate a tiny folder under `<workdir>/data/`, for smoke runs).
    """
    d = config.data
    root = d.root
    if not root:
        if not d.synthetic:
            raise ConfigError(
                'config.data.source=folder needs --config.data.root=DIR (an ImageNet-layout folder: '
                'train/<wnid>/*.JPEG and val/)'
            )
        root = os.path.join(workdir, 'data', 'synthetic_imagenet')
        if not os.path.isdir(os.path.join(root, 'train')) and parallel.is_main_process():
            make_synthetic_folder(root, seed=d.seed)
        if jax.process_count() > 1:  # the other processes wait for process 0's folder
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices('synthetic_imagenet')
    wnids = list_wnids(root)
    num_classes = _num_classes(config, len(wnids), os.path.join(root, 'train'))
    cache_dir = os.path.join(workdir, 'data')
    real = _read_real(d.real_json, num_classes) if d.real_json else None
    out = {}
    for i, (split, limit) in enumerate((('train', d.num_train), ('val', d.num_val))):
        paths, labels = folder_split(root, split, wnids, d.val_labels)
        keep = _subsample(len(paths), limit, d.seed + i)
        paths, labels, positions = [paths[k] for k in keep], labels[keep], np.asarray(keep)
        if d.check_images:
            keep, report = drop_unreadable(
                paths,
                f'{root}/{split}',
                cache=os.path.join(cache_dir, f'folder_{split}_verified.json'),
                write_cache=parallel.is_main_process(),
                progress=parallel.is_main_process(),
            )
            paths, labels, positions = [paths[k] for k in keep], labels[keep], positions[keep]
            logging.info('%s/%s: %d images, %d skipped', root, split, len(paths), report['skipped'])
        truth = (
            _real_truth(real, paths, num_classes, d.real_json, positions) if split == 'val' and real else None
        )
        out[split] = Dataset(
            images=FolderImages(paths, d.image_size),
            labels=LabelTable.from_single(labels, num_classes),
            truth=truth,
            paths=paths,
            name=f'imagenet_folder_{split}',
            class_names=wnids,  # the sorted folder names are the class ids' order
            skipped=report['skipped_files'] if d.check_images else None,
        )
    return out
