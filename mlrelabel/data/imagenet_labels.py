"""ImageNet labels: sorted-WNID class order, folder listings, flat validation label files, ReaL sets.

Part of the ImageNet sources (`mlrelabel.data.imagenet`).
"""

from __future__ import annotations

import os
import re

import numpy as np

from mlrelabel.data import reference_labels
from mlrelabel.data.imagenet_readers import IMAGE_EXTENSIONS
from mlrelabel.data.label_table import LabelTable
from mlrelabel.errors import ConfigError, DataError

_VAL_NUMBER = re.compile(r'ILSVRC2012_val_(\d{8})')


# ------------------------------------------------------------------------------------------ folders


def list_wnids(root: str) -> list[str]:
    """The sorted class folders of `root/train` (class index = position)."""
    train = os.path.join(root, 'train')
    if not os.path.isdir(train):
        raise DataError(
            f'{train}: not a folder; config.data.root must hold train/<wnid>/*.JPEG (ImageNet layout)'
        )
    wnids = sorted(d for d in os.listdir(train) if os.path.isdir(os.path.join(train, d)))
    if not wnids:
        raise DataError(f'{train}: no class folders (train/<wnid>/*.JPEG expected)')
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
    raise DataError(f'{where}: {token!r} is neither one of the {len(index)} training WNIDs nor a class index')


def _read_val_label_file(path: str, names: list[str], index: dict) -> np.ndarray:
    """Labels for sorted `names` from `path`: `<file name> <wnid|index>` lines or one `<wnid|index>` per line."""
    with open(path) as f:
        lines = [(n + 1, line.split()) for n, line in enumerate(f) if line.strip()]
    if lines and len(lines[0][1]) >= 2:
        by_name, line_of = {}, {}
        for n, parts in lines:
            if len(parts) != 2:
                raise DataError(
                    f'{path}:{n}: expected "<file name> <wnid or class index>", got {" ".join(parts)!r}'
                )
            name = os.path.basename(parts[0])
            if name in line_of:
                raise DataError(f'{path}:{n}: image {name!r} is listed twice (first on line {line_of[name]})')
            line_of[name] = n
            by_name[name] = _parse_class(parts[1], index, f'{path}:{n}')
        missing = [x for x in names if x not in by_name]
        if missing:
            raise DataError(f'{path}: no label for {len(missing)} validation images (first: {missing[0]})')
        return np.asarray([by_name[x] for x in names], np.int64)
    if len(lines) != len(names):
        raise DataError(
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
    original = reference_labels.load_tfds_imagenet_validation_labels()
    index = {w: i for i, w in enumerate(wnids)}
    out = np.empty(len(names), np.int64)
    for j, name in enumerate(names):
        m = _VAL_NUMBER.search(name)
        if not m:
            raise DataError(
                f'{folder}/{name}: flat val folders need ILSVRC2012_val_<8 digits> names or '
                '--config.data.val_labels=FILE'
            )
        wnid = all_wnids[original[int(m.group(1)) - 1]]
        if wnid not in index:
            raise DataError(f'{folder}/{name}: its ImageNet class {wnid} has no train/{wnid} folder')
        out[j] = index[wnid]
    return out


def folder_split(
    root: str, split: str, wnids: list[str], val_labels: str = ''
) -> tuple[list[str], np.ndarray]:
    """`(paths, labels [N])` of `root/<split>`: per-class subfolders, or (val) a flat folder labelled by
    `val_labels` or TFDS's validation_labels.txt. Paths are sorted by class then file name (flat: file name)."""
    folder = os.path.join(root, split)
    if not os.path.isdir(folder):
        raise DataError(f'{folder}: missing (ImageNet layout: {split}/<wnid>/*.JPEG)')
    index = {w: i for i, w in enumerate(wnids)}
    subdirs = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
    if subdirs:
        unknown = [d for d in subdirs if d not in index]
        if unknown:
            raise DataError(f'{folder}/{unknown[0]}: class folder not among the train/ WNIDs')
        paths, labels = [], []
        for d in subdirs:
            files = _images_in(os.path.join(folder, d))
            paths += [os.path.join(folder, d, f) for f in files]
            labels += [index[d]] * len(files)
        return paths, np.asarray(labels, np.int64)
    names = _images_in(folder)
    if not names:
        raise DataError(f'{folder}: no images')
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
    real = reference_labels.load_real_labels(path)
    for i, entry in enumerate(real):
        if any(c >= num_classes for c in entry):
            raise DataError(f'{path}: entry {i} has a class >= num_classes={num_classes}')
    return real


def _real_truth(
    real: list[list[int]], names: list[str], num_classes: int, path: str, positions
) -> LabelTable:
    """ReaL sets for validation files `names`, matched by ILSVRC2012_val number, else by `positions`: each
    file's row in the split's full sorted listing (before subsampling or dropping unreadable files)."""
    rows = [_val_key(os.path.basename(x), int(j)) for j, x in zip(positions, names)]
    if max(rows, default=-1) >= len(real):
        raise DataError(
            f'{path}: {len(real)} entries, but validation image {names[int(np.argmax(rows))]} '
            f'needs entry {max(rows)}'
        )
    return LabelTable.from_lists([real[r] for r in rows], num_classes)


def _num_classes(config, found: int, where: str) -> int:
    want = int(config.data.num_classes)
    if want and want != found:
        raise ConfigError(
            f'config.data.num_classes={want} but {where} has {found} classes; pass '
            f'--config.data.num_classes={found}'
        )
    return found
