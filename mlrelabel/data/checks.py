"""Data checks shared by every source, run before training: one way to find, skip, count and name unreadable
images, and one set of errors for duplicate images, train/val overlap, empty splits and splits smaller than a
batch.

- `drop_unreadable(paths, where)` decodes every image once (`mlrelabel.data.images`, threads; optionally cached)
  and returns the rows to keep plus a report `{'total', 'kept', 'skipped', 'skipped_files': [{'path', 'reason'},
  ...]}` (every skipped file); the first 20 are named in one RuntimeWarning worded the same for every source.
- `write_skipped(data, workdir)` lists every skipped image of a run in `<workdir>/skipped.json`
  (`{'count', 'by_split', 'files': [{'path', 'split', 'reason'}]}`); `skipped_count(workdir)` reads the count.
- `check_unique(paths, where)` raises a `DataError` naming the duplicated image and both of its entries.
- `check_overlap(train, val, where)` raises a `DataError` when images are in both splits: the same path, or
  files with identical bytes (only files of equal size are hashed, so the check stays cheap); with
  `data.allow_overlap=True` it warns instead. Sources with user label files are checked (json, annotation
  folders, attribute CSVs, partial JSON); ImageNet's folder and TFDS splits are taken as published.
- `check_splits(data, config)` raises when a split is empty, the training split is smaller than a batch, or
  (as above) train and val overlap.

`mlrelabel.errors.DataError` is the base of `LabelFileError` and `formats.FormatError`: every message names
the file and the entry or line.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import warnings
from typing import Callable, Sequence

import numpy as np

from mlrelabel.errors import DataError

__all__ = [
    'MAX_REPORTED',
    'check_overlap',
    'check_splits',
    'check_unique',
    'drop_unreadable',
    'find_unreadable',
    'skipped_count',
    'write_skipped',
]

MAX_REPORTED = 20  # skipped files named in the report and the warning


# ------------------------------------------------------------------------------------------ images
def unreadable_reason(path: str) -> str | None:
    """None if `path` decodes as an image (`mlrelabel.data.images`), else why not (a small JPEG draft keeps the
    decode cheap)."""
    from mlrelabel.data.images import open_image

    if not os.path.exists(path):
        return 'missing file'
    try:
        open_image(path, draft=64)
    except Exception as e:  # noqa: BLE001 - any decoder failure means the file is unusable
        return str(e).removeprefix(f'{path}: ')
    return None


def find_unreadable(
    paths: Sequence[str],
    *,
    cache: str | None = None,
    write_cache: bool = True,
    num_workers: int | None = None,
    progress: bool = True,
) -> dict[int, str]:
    """`{row: reason}` for the files of `paths` that do not decode. With `cache` (a JSON file), the result is
    stored keyed by the whole path list and reused while that list is unchanged. `progress`: a progress bar
    for lists of 5,000 files or more."""
    from mlrelabel.io_utils import atomic_write_json, order_digest

    fingerprint = order_digest(paths) if cache else None
    if cache and os.path.exists(cache):
        with open(cache) as f:
            saved = json.load(f)
        if saved.get('fingerprint') == fingerprint:
            return {int(k): v for k, v in saved['bad'].items()}
    workers = num_workers or min(16, 2 * (os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:  # PIL releases the GIL
        from tqdm.auto import tqdm

        reasons = list(
            tqdm(
                pool.map(unreadable_reason, list(paths), chunksize=64),
                total=len(paths),
                desc='verify images',
                unit='img',
                disable=not progress or len(paths) < 5000,
                leave=False,
            )
        )
    bad = {i: r for i, r in enumerate(reasons) if r is not None}
    if cache and write_cache:
        atomic_write_json(cache, {'fingerprint': fingerprint, 'bad': {str(k): v for k, v in bad.items()}})
    return bad


def drop_unreadable(
    paths: Sequence[str],
    where: str,
    *,
    cache: str | None = None,
    write_cache: bool = True,
    num_workers: int | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, dict]:
    """`(keep [n] int64 rows, report)` for `paths` of the split read from `where`; warns naming the skipped
    files and raises `DataError` when none can be read."""
    total = len(paths)
    bad = {}
    if total:
        bad = find_unreadable(
            paths, cache=cache, write_cache=write_cache, num_workers=num_workers, progress=progress
        )
    listed = '; '.join(f'{paths[i]} ({r})' for i, r in list(bad.items())[:MAX_REPORTED])
    more = f'; and {len(bad) - MAX_REPORTED} more' if len(bad) > MAX_REPORTED else ''
    if bad:
        warnings.warn(
            f'{where}: skipped {len(bad)} of {total} images that could not be read: {listed}{more}',
            RuntimeWarning,
            stacklevel=3,
        )
    if bad and len(bad) == total:
        raise DataError(f'{where}: none of the {total} images could be read (first: {listed}{more})')
    keep = np.setdiff1d(np.arange(total, dtype=np.int64), np.fromiter(bad, np.int64, len(bad)))
    report = {
        'total': total,
        'kept': total - len(bad),
        'skipped': len(bad),
        'skipped_files': [{'path': paths[i], 'reason': r} for i, r in bad.items()],
    }
    return keep, report


SKIPPED_JSON = 'skipped.json'


def write_skipped(data: dict, workdir: str) -> dict:
    """Writes `<workdir>/skipped.json`: every image the sources of `data` (`{'train', 'val', ...}` Datasets)
    left out as unreadable, `{'count', 'by_split': {split: n}, 'files': [{'path', 'split', 'reason'}]}`
    (count 0 too: the file says the check ran). The main process writes it; returns the record."""
    from mlrelabel import parallel
    from mlrelabel.io_utils import atomic_write_json

    files = [
        {'path': f['path'], 'split': split, 'reason': f['reason']}
        for split, ds in data.items()
        for f in (getattr(ds, 'skipped', None) or [])
    ]
    by_split = {split: sum(f['split'] == split for f in files) for split in data}
    record = {'count': len(files), 'by_split': by_split, 'files': files}
    if parallel.is_main_process():
        atomic_write_json(os.path.join(workdir, SKIPPED_JSON), record)
    return record


def skipped_count(workdir: str) -> int | None:
    """The number of images `<workdir>/skipped.json` lists as left out, or None when the run wrote none."""
    path = os.path.join(workdir, SKIPPED_JSON)
    if not os.path.exists(path):
        return None
    with open(path, encoding='utf-8') as f:
        return int(json.load(f)['count'])


# ------------------------------------------------------------------------------------------ entries
def check_unique(
    paths: Sequence[str],
    where: str,
    entry: Callable[[int], str] = lambda i: f'entry {i}',
    error: type[DataError] = DataError,
) -> None:
    """Raises `error` at the first image listed twice (compared as normalised paths), naming it and both
    entries (`entry(i)` words row i, e.g. 'entry 3' or 'line 7')."""
    first: dict[str, int] = {}
    for i, p in enumerate(paths):
        key = os.path.normpath(p)
        if key in first:
            raise error(
                f'{where}: {entry(i)}: image {key!r} is listed twice (first in {entry(first[key])}); '
                'each image may appear once per split'
            )
        first[key] = i


def check_splits(data: dict, config, where: dict | None = None) -> None:
    """Every split of `data` (`{'train', 'val', ...}` Datasets) has images, the training split has at least
    one batch (`config.train.batch_size`) and, for user label files, no image is in both train and val
    (`check_overlap`; `config.data.allow_overlap`). `where` names each split's file."""
    where = where or {}
    for split, ds in data.items():
        if ds is not None and hasattr(ds, '__len__') and len(ds) == 0:
            raise DataError(f'{where.get(split, split)}: the {split} split has no images')
    train, batch = data.get('train'), config.train.batch_size
    if train is not None and len(train) < batch:
        raise DataError(
            f'{where.get("train", "train")}: {len(train)} training images, fewer than one batch '
            f'(config.train.batch_size={batch})'
        )
    val = data.get('val')
    if config.data.source in OVERLAP_SOURCES and train is not None and val is not None:
        if train.paths is not None and val.paths is not None:
            names = (where.get('train', 'train'), where.get('val', 'val'))
            check_overlap(train.paths, val.paths, names, allow=config.data.allow_overlap)


# Sources whose splits come from the user's label files (ImageNet's published splits are not checked).
OVERLAP_SOURCES = ('json', 'annotation_folder', 'attribute_csv', 'partial_json')
HASH_CHUNK = 1 << 20


def find_overlap(train: Sequence[str], val: Sequence[str]) -> list[tuple[str, str, str]]:
    """`[(train path, val path, 'same path' | 'same content')]`: images in both lists, by normalised path, or
    by identical file bytes (files of equal size are hashed; missing files are left to the readability check)."""
    found, in_train = [], {os.path.normpath(p): p for p in train}
    for p in val:
        if os.path.normpath(p) in in_train:
            found.append((in_train[os.path.normpath(p)], p, 'same path'))
    same = {v for _, v, _ in found}
    by_size: dict[int, list[tuple[int, str]]] = {}
    for side, paths in ((0, train), (1, (p for p in val if p not in same))):
        for p in paths:
            try:
                by_size.setdefault(os.path.getsize(p), []).append((side, p))
            except OSError:
                continue
    for group in by_size.values():
        if len({side for side, _ in group}) < 2:
            continue  # sizes differ from every file of the other split: nothing to hash
        first: dict[str, str] = {}
        for side, p in group:
            digest = _file_digest(p)
            if side == 0:
                first.setdefault(digest, p)
            elif digest in first:
                found.append((first[digest], p, 'same content'))
    return found


def _file_digest(path: str) -> str:
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    try:
        with open(path, 'rb') as f:
            while chunk := f.read(HASH_CHUNK):
                h.update(chunk)
    except OSError:
        return f'unreadable:{path}'
    return h.hexdigest()


def check_overlap(
    train: Sequence[str], val: Sequence[str], where=('train', 'val'), allow: bool = False
) -> list:
    """Raises `DataError` (a RuntimeWarning with `allow`) when images are in both `train` and `val` paths
    (`find_overlap`), with their count and the first examples; returns the overlap. `where`: the two splits'
    files, for the message."""
    found = find_overlap(train, val)
    if not found:
        return found
    listed = '; '.join(f'{t} = {v} ({how})' for t, v, how in found[:5])
    more = f'; and {len(found) - 5} more' if len(found) > 5 else ''
    counts = ', '.join(
        f'{n} by {how.split()[1]}'
        for how in ('same path', 'same content')
        if (n := sum(h == how for *_, h in found))
    )
    text = (
        f'{where[0]} and {where[1]}: {len(found)} images are in both train and val ({counts}): {listed}{more}'
    )
    if allow:
        warnings.warn(f'{text} (kept: config.data.allow_overlap=True)', RuntimeWarning, stacklevel=3)
        return found
    raise DataError(
        f'{text}. Validation on training images overstates how good the model and its labels are: remove them '
        'from one split, or set --config.data.allow_overlap=True to keep them.'
    )
