"""Sharded on-disk storage of top-k label maps (ReLabel) that scales to ImageNet's 1.28M images.

Layout of a store directory::

    index.json                  format, version, num_images, shard_size, k, height, width, num_classes,
                                dtypes, order_sha256, complete shards [{'shard', 'start', 'count'}], meta
    order.json                  the image order: one id (path) per image, row i of the maps is order[i]
    shard_00000.scores.npy      [count, k, h, w] float16 top-k scores (logits) of images start..start+count-1
    shard_00000.classes.npy     [count, k, h, w] int16 class ids (int32 when num_classes > 32767)

At k = 5, 15 × 15 an image costs 5·225·(2 + 2) = 4.5 KB, 5.8 GB for ImageNet (ReLabel's release: 12 GB of
fp32 ``.pt`` files, one per image).

Writing is atomic shard by shard: each ``.npy`` is written to a temporary file and renamed
(``io_utils``), and only then is the shard recorded as complete in ``index.json`` (also atomic). A kill
at any point leaves a valid store whose complete shards are kept; reopening the writer with the same
order and shape resumes with the missing shards. Reading memory-maps the shard files on first use, so
only the rows of a batch are ever read.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mlrelabel.io_utils import atomic_write_bytes, atomic_write_json, order_digest

__all__ = ['FORMAT', 'MapShape', 'LabelMapWriter', 'LabelMapStore', 'LabelMapSource']

FORMAT = 'mlrelabel-label-maps'
VERSION = 1
INDEX = 'index.json'
ORDER = 'order.json'


def _shard_files(directory: str, shard: int) -> tuple[str, str]:
    stem = os.path.join(directory, f'shard_{shard:05d}')
    return stem + '.scores.npy', stem + '.classes.npy'


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def _read_json(path: str) -> dict | list:
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f'{path}:{e.lineno}: not valid JSON ({e.msg})') from None


def _first_difference(a: Sequence[str], b: Sequence[str]) -> str:
    if len(a) != len(b):
        return f'{len(a)} images stored, {len(b)} expected'
    for i, (x, y) in enumerate(zip(a, b)):
        if str(x) != str(y):
            return f'image {i} is {x!r} in the store, {y!r} expected'
    return 'orders differ'


def _short_id(name: str) -> str:
    """`<parent folder>/<stem>` of an image path (the key of ReLabel's `<wnid>/<stem>.pt` files)."""
    parts = name.replace('\\', '/').rstrip('/').split('/')
    return '/'.join(parts[-2:-1] + [os.path.splitext(parts[-1])[0]])


def _class_dtype(num_classes: int) -> np.dtype:
    return np.dtype(np.int16 if num_classes <= np.iinfo(np.int16).max else np.int32)


@dataclass(frozen=True)
class MapShape:
    """The shape of one image's label map: `[k, height, width]` top-k scores over `num_classes` classes."""

    k: int
    height: int
    width: int
    num_classes: int

    def __post_init__(self):
        if min(self.k, self.height, self.width, self.num_classes) < 1:
            raise ValueError(
                f'MapShape: k, height, width and num_classes must be positive, got '
                f'{self.k}, {self.height}, {self.width}, {self.num_classes}'
            )


_INDEX_FIELDS = (
    'format',
    'version',
    'num_images',
    'shard_size',
    'k',
    'height',
    'width',
    'num_classes',
    'score_dtype',
    'class_dtype',
)


class LabelMapWriter:
    """Writes a store shard by shard; reopening with the same order and shapes resumes it.

    Args:
      directory: the store directory (created).
      order: one id per image (e.g. its path); row i of the maps belongs to `order[i]`.
      shape: the map shape and class count (`MapShape`).
      shard_size: images per shard file.
      meta: free-form JSON recorded in the index (e.g. the teacher that produced the maps).
    Raises:
      ValueError: the directory holds a store with another order, shape or shard size.
    """

    def __init__(
        self,
        directory: str,
        order: Sequence[str],
        shape: MapShape,
        shard_size: int = 4096,
        meta: dict | None = None,
    ):
        if shard_size < 1:
            raise ValueError(f'LabelMapWriter: shard_size must be positive, got {shard_size}')
        self.directory = directory
        self.order = [str(x) for x in order]
        self.num_images = len(self.order)
        self.shard_size = int(shard_size)
        self.shape = (int(shape.k), int(shape.height), int(shape.width))
        self.num_classes = int(shape.num_classes)
        self.class_dtype = _class_dtype(self.num_classes)
        self.index = self._new_index(meta)
        path = os.path.join(directory, INDEX)
        if os.path.exists(path):
            self._resume(path, meta)
        else:
            os.makedirs(directory, exist_ok=True)
            atomic_write_json(os.path.join(directory, ORDER), self.order, indent=None)
            atomic_write_json(path, self.index)

    def _new_index(self, meta: dict | None) -> dict:
        """The index of this store with no shard written yet."""
        return {
            'format': FORMAT,
            'version': VERSION,
            'num_images': self.num_images,
            'shard_size': self.shard_size,
            'k': self.shape[0],
            'height': self.shape[1],
            'width': self.shape[2],
            'num_classes': self.num_classes,
            'score_dtype': 'float16',
            'class_dtype': self.class_dtype.name,
            'order_sha256': order_digest(self.order),
            'shards': [],
            'meta': meta or {},
        }

    def _resume(self, path: str, meta: dict | None) -> None:
        """Keeps the complete shards of the store at `path`; raises ValueError if it is another store."""
        old = _read_json(path)
        diff = [
            f'{f}: {old.get(f)!r} stored, {self.index[f]!r} now'
            for f in _INDEX_FIELDS
            if old.get(f) != self.index[f]
        ]
        if old.get('order_sha256') != self.index['order_sha256']:
            stored = _read_json(os.path.join(self.directory, ORDER))
            diff.append(f'image order: {_first_difference(stored, self.order)}')
        if diff:
            raise ValueError(
                f'{path}: holds another label-map store ({"; ".join(diff)}); choose a new directory or delete it'
            )
        self.index['shards'] = [
            s
            for s in old['shards']
            if all(os.path.exists(p) for p in _shard_files(self.directory, s['shard']))
        ]
        self.index['meta'] = old.get('meta', {}) if meta is None else meta

    @property
    def num_shards(self) -> int:
        return -(-self.num_images // self.shard_size)

    def shard_range(self, shard: int) -> tuple[int, int]:
        """`(start, stop)` image rows of `shard`."""
        start = shard * self.shard_size
        return start, min(start + self.shard_size, self.num_images)

    def missing_shards(self) -> list[int]:
        done = {s['shard'] for s in self.index['shards']}
        return [s for s in range(self.num_shards) if s not in done]

    def num_done(self) -> int:
        return sum(s['count'] for s in self.index['shards'])

    def complete(self) -> bool:
        return not self.missing_shards()

    def write_shard(self, shard: int, scores: np.ndarray, classes: np.ndarray) -> None:
        """Writes shard `shard`'s `[count, k, h, w]` scores and class ids, then records it in the index."""
        start, stop = self.shard_range(shard)
        want = (stop - start, *self.shape)
        scores, classes = np.asarray(scores), np.asarray(classes)
        if scores.shape != want or classes.shape != want:
            raise ValueError(
                f'LabelMapWriter.write_shard({shard}): expected scores and classes of shape {want}, '
                f'got {scores.shape} and {classes.shape}'
            )
        if classes.size and (classes.min() < 0 or classes.max() >= self.num_classes):
            raise ValueError(
                f'LabelMapWriter.write_shard({shard}): class ids outside [0, {self.num_classes}): '
                f'{classes.min()}..{classes.max()}'
            )
        score_path, class_path = _shard_files(self.directory, shard)
        atomic_write_bytes(score_path, _npy_bytes(scores.astype(np.float16)))
        atomic_write_bytes(class_path, _npy_bytes(classes.astype(self.class_dtype)))
        shards = [s for s in self.index['shards'] if s['shard'] != shard]
        shards.append({'shard': shard, 'start': start, 'count': stop - start})
        self.index['shards'] = sorted(shards, key=lambda s: s['shard'])
        atomic_write_json(os.path.join(self.directory, INDEX), self.index)


class LabelMapStore:
    """Read side of a complete store: lazy, memory-mapped rows.

    Args:
      directory: the store.
      expected_order: the dataset's image ids; when given, the store's order must match it exactly.
    Raises:
      FileNotFoundError: no store there. ValueError: incomplete store, another order, a bad index.
    """

    def __init__(self, directory: str, expected_order: Sequence[str] | None = None):
        path = os.path.join(directory, INDEX)
        if not os.path.exists(path):
            raise FileNotFoundError(
                f'{path}: no label-map store (write one with LabelMapWriter or '
                f'python -m mlrelabel.tools.import_relabel_maps)'
            )
        index = _read_json(path)
        if index.get('format') != FORMAT or index.get('version') != VERSION:
            raise ValueError(
                f'{path}: format {index.get("format")!r} version {index.get("version")!r}, expected '
                f'{FORMAT!r} version {VERSION}'
            )
        self.directory = directory
        self.index = index
        self.num_images = int(index['num_images'])
        self.shard_size = int(index['shard_size'])
        self.k, self.height, self.width = int(index['k']), int(index['height']), int(index['width'])
        self.num_classes = int(index['num_classes'])
        num_shards = -(-self.num_images // self.shard_size)
        done = {s['shard'] for s in index['shards']}
        missing = [s for s in range(num_shards) if s not in done]
        if missing:
            raise ValueError(
                f'{path}: incomplete store, {len(missing)} of {num_shards} shards missing (first: '
                f'{missing[0]}); rerun the command that writes it to resume'
            )
        if expected_order is not None:
            expected = [str(x) for x in expected_order]
            if order_digest(expected) != index['order_sha256']:
                stored = self.order()
                raise ValueError(
                    f'{path}: the label maps belong to another image order '
                    f'({_first_difference(stored, expected)})'
                )
        self._shards: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return self.num_images

    @property
    def shape(self) -> tuple[int, int, int]:
        """`(k, height, width)` of one image's map."""
        return self.k, self.height, self.width

    def order(self) -> list[str]:
        """The stored image ids (row i ↔ order[i]); read from disk on each call."""
        return _read_json(os.path.join(self.directory, ORDER))

    def rows_for(self, ids: Sequence[str]) -> np.ndarray:
        """Store rows `[N]` int64 of the images `ids` (a dataset's paths, any order or subset).

        Matches whole ids first; ids not found are matched by their last two path parts without the
        extension (`<class folder>/<stem>`, so a store imported with another image root still applies).
        Raises ValueError naming the first id without a map.
        """
        ids = [str(x) for x in ids]
        if order_digest(ids) == self.index['order_sha256']:
            return np.arange(len(ids), dtype=np.int64)
        stored = self.order()
        exact = {name: i for i, name in enumerate(stored)}
        short = None
        rows = np.empty(len(ids), np.int64)
        for j, name in enumerate(ids):
            row = exact.get(name)
            if row is None:
                if short is None:
                    short = {}
                    for i, x in enumerate(stored):
                        if short.setdefault(_short_id(x), i) != i:
                            raise ValueError(
                                f'{self.directory}: stored ids {stored[short[_short_id(x)]]!r} and {x!r} share '
                                f'the short id {_short_id(x)!r}; give the exact ids'
                            )
                row = short.get(_short_id(name))
            if row is None:
                raise ValueError(
                    f'{self.directory}: no label map for image {j} ({name!r}); the store holds '
                    f'{len(stored)} images, e.g. {stored[0]!r}'
                )
            rows[j] = row
        return rows

    def _shard(self, shard: int) -> tuple[np.ndarray, np.ndarray]:
        if shard not in self._shards:
            score_path, class_path = _shard_files(self.directory, shard)
            scores = np.load(score_path, mmap_mode='r', allow_pickle=False)
            classes = np.load(class_path, mmap_mode='r', allow_pickle=False)
            start = shard * self.shard_size
            want = (min(self.shard_size, self.num_images - start), self.k, self.height, self.width)
            if scores.shape != want or classes.shape != want:
                raise ValueError(
                    f'{score_path}: shard shape {scores.shape} / {classes.shape}, index says {want}'
                )
            self._shards[shard] = (scores, classes)
        return self._shards[shard]

    def get(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """`(scores [B, k, h, w] float32, classes [B, k, h, w] int32)` of image rows `indices` ([B] ints)."""
        indices = np.asarray(indices, np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= self.num_images):
            raise IndexError(
                f'{self.directory}: rows {indices.min()}..{indices.max()} outside [0, {self.num_images})'
            )
        scores = np.empty((len(indices), self.k, self.height, self.width), np.float32)
        classes = np.empty((len(indices), self.k, self.height, self.width), np.int32)
        shard_of, row_of = np.divmod(indices, self.shard_size)
        for shard in np.unique(shard_of):
            sel = np.flatnonzero(shard_of == shard)
            s, c = self._shard(int(shard))
            scores[sel] = s[row_of[sel]]
            classes[sel] = c[row_of[sel]]
        return scores, classes


class LabelMapSource:
    """A label source for `loop.fit(..., labels=...)`: `batch(indices)` → `map_scores`, `map_classes`.

    The train step's `transform_fn` turns them into per-crop targets (LabelPooling). `rows` maps dataset
    rows to store rows (`LabelMapStore.rows_for(dataset.paths)`); None = the same order.
    """

    def __init__(self, store: LabelMapStore, rows: np.ndarray | None = None):
        self.store = store
        self.rows = None if rows is None else np.asarray(rows, np.int64)
        self.num_classes = store.num_classes

    def __len__(self) -> int:
        return len(self.store) if self.rows is None else len(self.rows)

    def batch(self, indices) -> dict:
        """`{'map_scores': [B, k, h, w] float32, 'map_classes': [B, k, h, w] int32}` of dataset rows `indices`."""
        indices = np.asarray(indices, np.int64)
        scores, classes = self.store.get(indices if self.rows is None else self.rows[indices])
        return {'map_scores': scores, 'map_classes': classes}
