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
"""

from __future__ import annotations

import concurrent.futures
import io
import logging
import os
import re
import threading
import warnings
from typing import Sequence

import jax
import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from mlrelabel import metrics, parallel
from mlrelabel.data.checks import DataError, drop_unreadable
from mlrelabel.data.labels import LabelTable
from mlrelabel.data.sources import Dataset
from mlrelabel.io_utils import atomic_save_npz

__all__ = [
    'IMAGE_EXTENSIONS',
    'EncodedImages',
    'FolderImages',
    'TfdsImages',
    'decode_center_crop',
    'decode_random_resized_crop',
    'list_wnids',
    'folder_split',
    'load_folder',
    'load_tfds',
    'make_synthetic_folder',
    'write_tfds_array_record',
]

IMAGE_EXTENSIONS = ('.jpeg', '.jpg', '.png', '.bmp', '.webp')
_VAL_NUMBER = re.compile(r'ILSVRC2012_val_(\d{8})')


# ------------------------------------------------------------------------------------------ decoding


def _open_rgb(data: bytes | str, draft_size: int | None) -> Image.Image:
    """Decodes a path or encoded bytes to RGB; JPEGs decode at a reduced DCT scale still >= draft_size."""
    img = Image.open(data if isinstance(data, str) else io.BytesIO(data))
    if draft_size is not None:
        img.draft('RGB', (draft_size, draft_size))
    return img.convert('RGB')  # loads the pixels: truncated or corrupt data raises here


def decode_center_crop(data: bytes | str, size: int) -> np.ndarray:
    """Encoded image (path or bytes) → `[size, size, 3]` uint8: shorter side resized to `size` (bilinear,
    aspect kept), then the centre square (the standard ImageNet evaluation crop)."""
    img = _open_rgb(data, size)
    w, h = img.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    left, top = (new_w - size) / 2 / scale, (new_h - size) / 2 / scale
    box = (left, top, left + size / scale, top + size / scale)
    out = img.resize((size, size), Image.Resampling.BILINEAR, box=box, reducing_gap=None)
    return np.asarray(out, dtype=np.uint8)


def random_resized_box(rng: np.random.Generator, width: int, height: int, scale, ratio) -> tuple:
    """The Inception crop (Szegedy et al. 2015; torchvision's RandomResizedCrop): a box of area fraction in
    `scale` and aspect ratio (log-uniform) in `ratio`, 10 tries, else the largest centred box within `ratio`.
    Returns `(left, top, right, bottom)` in pixels."""
    area = width * height
    log_ratio = np.log(ratio)
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = np.exp(rng.uniform(*log_ratio))
        w = int(round(np.sqrt(target * aspect)))
        h = int(round(np.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            left = int(rng.integers(0, width - w + 1))
            top = int(rng.integers(0, height - h + 1))
            return left, top, left + w, top + h
    aspect = width / height
    if aspect < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif aspect > ratio[1]:
        w, h = int(round(height * ratio[1])), height
    else:
        w, h = width, height
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def decode_random_resized_crop(
    data: bytes | str,
    size: int,
    rng: np.random.Generator,
    scale=(0.08, 1.0),
    ratio=(3 / 4, 4 / 3),
    flip: bool = True,
) -> np.ndarray:
    """Encoded image → `[size, size, 3]` uint8 random-resized-crop (+ horizontal flip with probability 1/2)
    of the full image, the standard ImageNet training augmentation done on the host."""
    # Decode at a DCT scale that keeps the smallest crop at >= size pixels.
    img = _open_rgb(data, int(np.ceil(size / np.sqrt(scale[0]))))
    box = random_resized_box(rng, img.size[0], img.size[1], scale, ratio)
    out = img.resize((size, size), Image.Resampling.BILINEAR, box=box, reducing_gap=None)
    if flip and rng.random() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(out, dtype=np.uint8)


# ----------------------------------------------------------------------------------------- readers


class EncodedImages:
    """Lazy reader of encoded images: `reader[indices] -> [B, S, S, 3] uint8` (centre crops, see
    `decode_center_crop`); an int index gives `[S, S, 3]`.

    Rows are decoded in `num_threads` threads (PIL releases the GIL while decoding). A row that fails to
    decode becomes a black image; its index and reason go to `failures` and a warning (once per row).
    Subclasses implement `encoded(i) -> path or bytes` and `subset(indices)`; readers pickle without
    their thread pool, so they can be sent to grain worker processes.
    """

    def __init__(self, num_examples: int, image_size: int, num_threads: int = 0):
        if int(image_size) < 1:
            raise ValueError(f'image_size must be positive, got {image_size}')
        self.num_examples = int(num_examples)
        self.image_size = int(image_size)
        self.num_threads = int(num_threads) or min(8, os.cpu_count() or 1)
        self.failures: dict[int, str] = {}
        self._pool = None
        self._lock = threading.Lock()

    def encoded(self, i: int) -> bytes | str:
        raise NotImplementedError

    def __len__(self) -> int:
        return self.num_examples

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.num_examples, self.image_size, self.image_size, 3)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8)

    def __getstate__(self):
        state = dict(self.__dict__)
        state['_pool'] = None
        state['_lock'] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def record_failure(self, i: int, error: Exception) -> None:
        with self._lock:
            if i in self.failures:
                return
            self.failures[i] = f'{type(error).__name__}: {error}'
        warnings.warn(
            f'{self!r}: row {i} could not be decoded and was replaced by a black image ({self.failures[i]})',
            RuntimeWarning,
            stacklevel=3,
        )

    def load(self, i: int) -> np.ndarray:
        """Row `i` as `[S, S, 3]` uint8 (black on a decode failure, recorded in `failures`)."""
        try:
            return decode_center_crop(self.encoded(i), self.image_size)
        except Exception as e:  # noqa: BLE001 - any decoder failure means the row is unusable
            self.record_failure(i, e)
            return np.zeros((self.image_size, self.image_size, 3), np.uint8)

    def __getitem__(self, indices) -> np.ndarray:
        if isinstance(indices, (int, np.integer)):
            return self.load(int(indices))
        if isinstance(indices, slice):
            indices = range(*indices.indices(len(self)))
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size and (indices.min() < -self.num_examples or indices.max() >= self.num_examples):
            raise IndexError(f'{self!r}: index out of range [0, {self.num_examples})')
        indices = indices % max(self.num_examples, 1)
        if self.num_threads <= 1 or indices.size <= 1:
            rows = [self.load(int(i)) for i in indices]
        else:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(self.num_threads)
            rows = list(self._pool.map(self.load, indices.tolist()))
        out = np.empty((indices.size, self.image_size, self.image_size, 3), np.uint8)
        for b, row in enumerate(rows):
            out[b] = row
        return out


class FolderImages(EncodedImages):
    """Image files, decoded lazily (see `EncodedImages`)."""

    def __init__(self, paths: Sequence[str], image_size: int, num_threads: int = 0):
        super().__init__(len(paths), image_size, num_threads)
        self.paths = [os.fspath(p) for p in paths]

    def encoded(self, i: int) -> str:
        return self.paths[i]

    def subset(self, indices) -> 'FolderImages':
        return FolderImages(
            [self.paths[int(i)] for i in np.asarray(indices).reshape(-1)], self.image_size, self.num_threads
        )

    def __repr__(self) -> str:
        return f'FolderImages({self.num_examples} files, image_size={self.image_size})'


class TfdsImages(EncodedImages):
    """The `image` feature of a TFDS ArrayRecord split, read through `tfds.data_source` (no TensorFlow) and
    decoded lazily (see `EncodedImages`). `rows` selects and orders records (None = all)."""

    def __init__(
        self,
        name: str,
        split: str,
        data_dir: str | None,
        image_size: int,
        rows=None,
        num_threads: int = 0,
        image_key: str = 'image',
    ):
        self.name, self.split, self.data_dir, self.image_key = name, split, data_dir or None, image_key
        self._source = None
        n = len(self.source) if rows is None else len(rows)
        self.rows = None if rows is None else np.asarray(rows, np.int64)
        super().__init__(n, image_size, num_threads)

    @property
    def source(self):
        if self._source is None:
            self._source = open_tfds_source(self.name, self.split, self.data_dir, skip_image=self.image_key)
        return self._source

    def __getstate__(self):
        state = super().__getstate__()
        state['_source'] = None  # reopened in the receiving process
        return state

    def encoded(self, i: int) -> bytes:
        record = self.source[int(i if self.rows is None else self.rows[i])]
        return record[self.image_key]

    def subset(self, indices) -> 'TfdsImages':
        indices = np.asarray(indices, np.int64).reshape(-1)
        rows = indices if self.rows is None else self.rows[indices]
        return TfdsImages(
            self.name, self.split, self.data_dir, self.image_size, rows, self.num_threads, self.image_key
        )

    def __repr__(self) -> str:
        return (
            f'TfdsImages({self.name}/{self.split}, {self.num_examples} records, image_size={self.image_size})'
        )


def open_tfds_source(name: str, split: str, data_dir: str | None, skip_image: str | None = 'image'):
    """`tfds.data_source` of a prepared ArrayRecord split, with `skip_image`'s encoded bytes left undecoded."""
    import tensorflow_datasets as tfds

    decoders = {skip_image: tfds.decode.SkipDecoding()} if skip_image else None
    try:
        return tfds.data_source(name, split=split, data_dir=data_dir, decoders=decoders)
    except Exception as e:  # noqa: BLE001 - re-raised with the fix
        raise SystemExit(
            f'cannot open TFDS dataset {name!r} split {split!r} in data_dir={data_dir or "(TFDS default)"}: {e}\n'
            f'Prepare it once as ArrayRecord, e.g. `tfds build {name} --file_format=array_record '
            f'--manual_dir=DIR` (ImageNet needs the manually downloaded archives), and pass '
            f'--config.data.tfds_data_dir=DIR if it is not in the default TFDS folder.'
        ) from None


# ------------------------------------------------------------------------------------------ folders


def list_wnids(root: str) -> list[str]:
    """The sorted class folders of `root/train` (class index = position)."""
    train = os.path.join(root, 'train')
    if not os.path.isdir(train):
        raise SystemExit(
            f'{train}: not a folder; config.data.root must hold train/<wnid>/*.JPEG (ImageNet layout)'
        )
    wnids = sorted(d for d in os.listdir(train) if os.path.isdir(os.path.join(train, d)))
    if not wnids:
        raise SystemExit(f'{train}: no class folders (train/<wnid>/*.JPEG expected)')
    return wnids


def _images_in(folder: str) -> list[str]:
    return sorted(
        f
        for f in os.listdir(folder)
        if f.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(folder, f))
    )


def _val_key(name: str, position: int) -> int:
    """0-based validation number from an ILSVRC2012_val_<8 digits> file name, else `position`."""
    m = _VAL_NUMBER.search(name)
    return int(m.group(1)) - 1 if m else position


def _parse_class(token: str, index: dict, where: str) -> int:
    if token in index:
        return index[token]
    if token.isdigit() and int(token) < len(index):
        return int(token)
    raise SystemExit(
        f'{where}: {token!r} is neither one of the {len(index)} training WNIDs nor a class index'
    )


def _read_val_label_file(path: str, names: list[str], index: dict) -> np.ndarray:
    """Labels for sorted `names` from `path`: `<file name> <wnid|index>` lines or one `<wnid|index>` per line."""
    with open(path) as f:
        lines = [(n + 1, line.split()) for n, line in enumerate(f) if line.strip()]
    if lines and len(lines[0][1]) >= 2:
        by_name, line_of = {}, {}
        for n, parts in lines:
            if len(parts) != 2:
                raise SystemExit(
                    f'{path}:{n}: expected "<file name> <wnid or class index>", got {" ".join(parts)!r}'
                )
            name = os.path.basename(parts[0])
            if name in line_of:
                raise DataError(f'{path}:{n}: image {name!r} is listed twice (first on line {line_of[name]})')
            line_of[name] = n
            by_name[name] = _parse_class(parts[1], index, f'{path}:{n}')
        missing = [x for x in names if x not in by_name]
        if missing:
            raise SystemExit(f'{path}: no label for {len(missing)} validation images (first: {missing[0]})')
        return np.asarray([by_name[x] for x in names], np.int64)
    if len(lines) != len(names):
        raise SystemExit(
            f'{path}: {len(lines)} labels for {len(names)} validation images (one per line, '
            'in sorted file-name order)'
        )
    return np.asarray([_parse_class(p[0], index, f'{path}:{n}') for n, p in lines], np.int64)


def _tfds_val_labels(names: list[str], wnids: list[str], folder: str) -> np.ndarray:
    """Labels of ILSVRC2012_val_* files from TFDS's shipped validation_labels.txt, in our WNID order."""
    import importlib.util

    spec = importlib.util.find_spec('tensorflow_datasets')
    labels_txt = os.path.join(
        list(spec.submodule_search_locations)[0], 'datasets', 'imagenet2012', 'labels.txt'
    )
    with open(labels_txt) as f:
        all_wnids = [w.strip() for w in f if w.strip()]
    original = metrics.load_tfds_imagenet_validation_labels()
    index = {w: i for i, w in enumerate(wnids)}
    out = np.empty(len(names), np.int64)
    for j, name in enumerate(names):
        m = _VAL_NUMBER.search(name)
        if not m:
            raise SystemExit(
                f'{folder}/{name}: flat val folders need ILSVRC2012_val_<8 digits> names or '
                '--config.data.val_labels=FILE'
            )
        wnid = all_wnids[original[int(m.group(1)) - 1]]
        if wnid not in index:
            raise SystemExit(f'{folder}/{name}: its ImageNet class {wnid} has no train/{wnid} folder')
        out[j] = index[wnid]
    return out


def folder_split(
    root: str, split: str, wnids: list[str], val_labels: str = ''
) -> tuple[list[str], np.ndarray]:
    """`(paths, labels [N])` of `root/<split>`: per-class subfolders, or (val) a flat folder labelled by
    `val_labels` or TFDS's validation_labels.txt. Paths are sorted by class then file name (flat: file name)."""
    folder = os.path.join(root, split)
    if not os.path.isdir(folder):
        raise SystemExit(f'{folder}: missing (ImageNet layout: {split}/<wnid>/*.JPEG)')
    index = {w: i for i, w in enumerate(wnids)}
    subdirs = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
    if subdirs:
        unknown = [d for d in subdirs if d not in index]
        if unknown:
            raise SystemExit(f'{folder}/{unknown[0]}: class folder not among the train/ WNIDs')
        paths, labels = [], []
        for d in subdirs:
            files = _images_in(os.path.join(folder, d))
            paths += [os.path.join(folder, d, f) for f in files]
            labels += [index[d]] * len(files)
        return paths, np.asarray(labels, np.int64)
    names = _images_in(folder)
    if not names:
        raise SystemExit(f'{folder}: no images')
    if val_labels:
        labels = _read_val_label_file(val_labels, names, index)
    else:
        labels = _tfds_val_labels(names, wnids, folder)
    return [os.path.join(folder, x) for x in names], labels


def _subsample(n: int, limit: int, seed: int) -> np.ndarray:
    """Sorted rows of a seeded subset of `limit` of `n` rows (all rows when limit is 0 or >= n)."""
    if not limit or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


def _read_real(path: str, num_classes: int) -> list[list[int]]:
    real = metrics.load_real_labels(path)
    for i, entry in enumerate(real):
        if any(c >= num_classes for c in entry):
            raise SystemExit(f'{path}: entry {i} has a class >= num_classes={num_classes}')
    return real


def _real_truth(
    real: list[list[int]], names: list[str], num_classes: int, path: str, positions
) -> LabelTable:
    """ReaL sets for validation files `names`, matched by ILSVRC2012_val number, else by `positions`: each
    file's row in the split's full sorted listing (before subsampling or dropping unreadable files)."""
    rows = [_val_key(os.path.basename(x), int(j)) for j, x in zip(positions, names)]
    if max(rows, default=-1) >= len(real):
        raise SystemExit(
            f'{path}: {len(real)} entries, but validation image {names[int(np.argmax(rows))]} '
            f'needs entry {max(rows)}'
        )
    return LabelTable.from_lists([real[r] for r in rows], num_classes)


def _num_classes(config, found: int, where: str) -> int:
    want = int(config.data.num_classes)
    if want and want != found:
        raise SystemExit(
            f'config.data.num_classes={want} but {where} has {found} classes; pass '
            f'--config.data.num_classes={found}'
        )
    return found


def make_synthetic_folder(
    root: str,
    num_classes: int = 4,
    per_class: int = 8,
    num_val: int = 2,
    size: tuple[int, int] = (40, 48),
    seed: int = 0,
    flat_val: bool = False,
) -> list[str]:
    """Writes a tiny ImageNet-layout folder of generated JPEGs: each class a distinct colour pattern with
    noise, `per_class` training and `num_val` validation images per class. Returns the WNIDs (sorted).
    With `flat_val`, val/ is flat (ILSVRC2012_val_<n>.JPEG) with a `val_labels.txt` beside it."""
    rng = np.random.default_rng(seed)
    wnids = [f'n{10000000 + 1111 * c:08d}' for c in range(num_classes)]
    h, w = size
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
        if not d.get('synthetic', False):
            raise SystemExit(
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
    real = _read_real(d.real_json, num_classes) if d.get('real_json', '') else None
    out = {}
    for i, (split, limit) in enumerate((('train', d.num_train), ('val', d.num_val))):
        paths, labels = folder_split(root, split, wnids, d.get('val_labels', ''))
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
        )
    return out


# --------------------------------------------------------------------------------------------- TFDS


def tfds_metadata(
    name: str,
    split: str,
    data_dir: str | None,
    fields: Sequence[str],
    cache: str | None,
    image_key: str = 'image',
) -> dict:
    """Per-record `fields` of a TFDS split as arrays (ragged sequences as lists), read once (threads, progress
    bar) and cached in the npz `cache`. Reading touches every record, images included (ArrayRecord stores
    whole examples), so at ImageNet scale the first run spends minutes here and later runs none."""
    if cache and os.path.exists(cache):
        with np.load(cache, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
        if all(f in out or f + '__offsets' in out for f in fields):
            return _unpack_ragged(out, fields)
    source = open_tfds_source(name, split, data_dir, skip_image=image_key)
    n = len(source)
    chunks = [range(s, min(s + 1024, n)) for s in range(0, n, 1024)]

    def read(chunk):
        records = (
            source.__getitems__(list(chunk))
            if hasattr(source, '__getitems__')
            else [source[i] for i in chunk]
        )
        return [{f: r[f] for f in fields} for r in records]

    rows = []
    with concurrent.futures.ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        for part in tqdm(
            pool.map(read, chunks),
            total=len(chunks),
            desc=f'{name}/{split} labels',
            leave=False,
            disable=len(chunks) < 8 or not parallel.is_main_process(),
        ):
            rows += part
    packed = {}
    for f in fields:
        values = [r[f] for r in rows]
        if values and isinstance(values[0], (bytes, str)):
            packed[f] = np.asarray([v.decode() if isinstance(v, bytes) else v for v in values], dtype=np.str_)
        elif values and np.ndim(values[0]) == 1:
            lengths = [len(v) for v in values]
            packed[f + '__offsets'] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
            packed[f + '__values'] = np.concatenate(
                [np.asarray(v, np.int64) for v in values] + [np.zeros(0, np.int64)]
            )
        else:
            packed[f] = np.asarray(values)
    if cache and parallel.is_main_process():
        atomic_save_npz(cache, **packed)
    return _unpack_ragged(packed, fields)


def _unpack_ragged(packed: dict, fields) -> dict:
    out = {}
    for f in fields:
        if f + '__offsets' in packed:
            o, v = packed[f + '__offsets'], packed[f + '__values']
            out[f] = [v[o[i] : o[i + 1]].tolist() for i in range(len(o) - 1)]
        else:
            out[f] = packed[f]
    return out


def _tfds_has(name: str, data_dir: str | None) -> bool:
    import tensorflow_datasets as tfds

    try:
        return 'validation' in tfds.builder(name, data_dir=data_dir).info.splits
    except Exception:  # noqa: BLE001 - absent or unprepared
        return False


def load_tfds(config, workdir: str) -> dict:
    """`{'train', 'val'}` Datasets from TFDS ArrayRecord splits `train` and `validation` of `data.tfds_name`
    (default imagenet2012). Val truth = ReaL sets from `data.real_json` or a prepared `imagenet2012_real`.

    Config fields: `data.tfds_name`, `data.tfds_data_dir` ('' = TFDS default), `data.image_size`,
    `data.num_classes` (0 = the dataset's), `data.num_train`/`data.num_val` (> 0: a seeded subset),
    `data.real_json`.
    """
    import tensorflow_datasets as tfds

    d = config.data
    name = d.get('tfds_name', 'imagenet2012')
    data_dir = d.get('tfds_data_dir', '') or None
    label_feature = tfds.builder(name, data_dir=data_dir).info.features['label']
    num_classes = _num_classes(config, label_feature.num_classes, f'TFDS {name}')
    class_names = list(getattr(label_feature, 'names', None) or []) or None
    cache_dir = os.path.join(workdir, 'data')
    out = {}
    for i, (split, tfds_split, limit) in enumerate(
        (('train', 'train', d.num_train), ('val', 'validation', d.num_val))
    ):
        meta = tfds_metadata(
            name,
            tfds_split,
            data_dir,
            ('label', 'file_name'),
            os.path.join(cache_dir, f'tfds_{name}_{tfds_split}_meta.npz'),
        )
        keep = _subsample(len(meta['label']), limit, d.seed + i)
        names = [str(x) for x in meta['file_name'][keep]]
        truth = None
        if split == 'val':
            if d.get('real_json', ''):
                truth = _real_truth(
                    _read_real(d.real_json, num_classes), names, num_classes, d.real_json, keep
                )
            elif _tfds_has('imagenet2012_real', data_dir):
                real = tfds_metadata(
                    'imagenet2012_real',
                    'validation',
                    data_dir,
                    ('real_label', 'file_name'),
                    os.path.join(cache_dir, 'tfds_imagenet2012_real_validation_meta.npz'),
                )
                by_name = {str(f): r for f, r in zip(real['file_name'], real['real_label'])}
                missing = [x for x in names if x not in by_name]
                if missing:
                    raise SystemExit(
                        f'imagenet2012_real has no entry for {len(missing)} validation images '
                        f'(first: {missing[0]})'
                    )
                truth = LabelTable.from_lists([by_name[x] for x in names], num_classes)
        out[split] = Dataset(
            images=TfdsImages(name, tfds_split, data_dir, d.image_size, rows=keep),
            labels=LabelTable.from_single(meta['label'][keep].astype(np.int64), num_classes),
            truth=truth,
            paths=names,
            name=f'{name}_{split}',
            class_names=class_names,  # TFDS's label names (WNIDs for imagenet2012)
        )
    return out


def write_tfds_array_record(data_dir: str, name: str, splits: dict[str, list[dict]]) -> str:
    """Writes a TFDS dataset `name` (a registered builder, e.g. imagenet2012) in its ArrayRecord layout
    without TensorFlow: `splits[split]` = list of examples, each a dict feature → bytes, str, int, bool or
    list of ints (encoded images as bytes). For tests, benchmarks and converting small folders.
    Returns the version directory."""
    import tensorflow_datasets as tfds
    from array_record.python.array_record_module import ArrayRecordWriter
    from tensorflow_datasets.proto import tf_example_pb2
    from tensorflow_datasets.proto import tf_feature_pb2 as fpb

    builder = tfds.builder(name, data_dir=data_dir)
    os.makedirs(builder.data_dir, exist_ok=True)

    def feature(value):
        if isinstance(value, str):
            value = value.encode()
        if isinstance(value, bytes):
            return fpb.Feature(bytes_list=fpb.BytesList(value=[value]))
        if isinstance(value, (bool, np.bool_)):
            return fpb.Feature(int64_list=fpb.Int64List(value=[int(value)]))
        if isinstance(value, (int, np.integer)):
            return fpb.Feature(int64_list=fpb.Int64List(value=[int(value)]))
        return fpb.Feature(int64_list=fpb.Int64List(value=[int(v) for v in value]))

    infos = []
    for split, examples in splits.items():
        template = tfds.core.ShardedFileTemplate(
            data_dir=builder.data_dir, dataset_name=name, split=split, filetype_suffix='array_record'
        )
        writer = ArrayRecordWriter(
            os.fspath(template.sharded_filepath(shard_index=0, num_shards=1)), 'group_size:1'
        )
        for ex in examples:
            proto = tf_example_pb2.Example(
                features=fpb.Features(feature={k: feature(v) for k, v in ex.items()})
            )
            writer.write(proto.SerializeToString())
        writer.close()
        infos.append(
            tfds.core.SplitInfo(
                name=split, shard_lengths=[len(examples)], num_bytes=0, filename_template=template
            )
        )
    builder.info.set_splits(tfds.core.SplitDict(infos))
    builder.info.as_proto.file_format = 'array_record'
    builder.info.write_to_directory(builder.data_dir)
    return os.fspath(builder.data_dir)
