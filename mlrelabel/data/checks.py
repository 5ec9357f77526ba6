"""Data checks shared by every source, run before training: one way to find, skip, count and name unreadable
images, and one set of errors for duplicate images, empty splits and splits smaller than a batch.

- `drop_unreadable(paths, where)` decodes every image once (threads; optionally cached) and returns the rows
  to keep plus a report `{'total', 'kept', 'skipped', 'skipped_files': [{'path', 'reason'}, ...]}`; skipped
  files are named (the first 20) in one RuntimeWarning worded the same for every source.
- `check_unique(paths, where)` raises a `DataError` naming the duplicated image and both of its entries.
- `check_splits(data, config)` raises when a split is empty or the training split is smaller than a batch.

`DataError` is the base of `LabelFileError` and `formats.FormatError`: every message names the file and the
entry or line.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import warnings
from typing import Callable, Sequence

import numpy as np

__all__ = [
    'DataError',
    'MAX_REPORTED',
    'check_splits',
    'check_unique',
    'drop_unreadable',
    'find_unreadable',
]

MAX_REPORTED = 20  # skipped files named in the report and the warning


class DataError(ValueError):
    """A data set that cannot be trained on as given; the message names the file and the entry or line."""


# ------------------------------------------------------------------------------------------ images
def unreadable_reason(path: str) -> str | None:
    """None if `path` decodes as an image, else why not (a small JPEG draft keeps the decode cheap)."""
    from PIL import Image

    if not os.path.exists(path):
        return 'missing file'
    try:
        with Image.open(path) as img:
            img.draft('RGB', (64, 64))
            img.convert('RGB')  # loads the pixels: truncated or corrupt data raises here
    except Exception as e:  # noqa: BLE001 - any decoder failure means the file is unusable
        return f'{type(e).__name__}: {e}'
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
    from mlrelabel.data.label_map_store import order_digest
    from mlrelabel.io_utils import atomic_write_json

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
        'skipped_files': [{'path': paths[i], 'reason': r} for i, r in list(bad.items())[:MAX_REPORTED]],
    }
    return keep, report


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
    """Every split of `data` (`{'train', 'val', ...}` Datasets) has images, and the training split has at
    least one batch (`config.train.batch_size`). `where` names each split's file."""
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
