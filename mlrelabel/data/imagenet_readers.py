"""ImageNet images as lazy readers: JPEG decoding (centre crop, random-resized crop) over a folder or TFDS.

Part of the ImageNet sources (`mlrelabel.data.imagenet`); a decode failure at read time never stops a run:
the reader returns a black image for that row, records it in `reader.failures` and warns once per image.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
import warnings
from typing import Sequence

import numpy as np
from PIL import Image

from mlrelabel.data.images import index_array, open_image
from mlrelabel.errors import DataError

IMAGE_EXTENSIONS = ('.jpeg', '.jpg', '.png', '.bmp', '.webp')


# ------------------------------------------------------------------------------------------ decoding


def _open_rgb(data: bytes | str, draft_size: int | None) -> Image.Image:
    """Decodes a path or encoded bytes to RGB as every source does (`mlrelabel.data.images`); JPEGs decode at a
    reduced DCT scale still >= draft_size."""
    return open_image(data, draft=draft_size)


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
        indices = index_array(indices, len(self))
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

    image_key = 'image'  # the record feature holding the encoded image

    def __init__(
        self, name: str, split: str, data_dir: str | None, image_size: int, rows=None, num_threads: int = 0
    ):
        self.name, self.split, self.data_dir = name, split, data_dir or None
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
        return TfdsImages(self.name, self.split, self.data_dir, self.image_size, rows, self.num_threads)

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
        raise DataError(
            f'cannot open TFDS dataset {name!r} split {split!r} in data_dir={data_dir or "(TFDS default)"}: {e}\n'
            f'Prepare it once as ArrayRecord, e.g. `tfds build {name} --file_format=array_record '
            f'--manual_dir=DIR` (ImageNet needs the manually downloaded archives), and pass '
            f'--config.data.tfds_data_dir=DIR if it is not in the default TFDS folder.'
        ) from None
