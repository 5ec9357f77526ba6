"""ImageNet's published label files, read without any download: the ReaL sets (Beyer et al. 2020) and the
original validation labels that tensorflow-datasets ships. Re-exported by `mlrelabel.eval.metrics`.
"""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np


def load_real_labels(path) -> list[list[int]]:
    """Read the ReaL labels json (Beyer et al. 2020; github.com/google-research/reassessed-imagenet).

    The file is a list of 50,000 lists of ImageNet class indices in validation file order
    (ILSVRC2012_val_00000001 first); an empty list means the raters found no valid label.
    """
    path = os.fspath(path)
    with open(path) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f'{path}: not valid JSON ({e})') from None
    if not isinstance(data, list):
        raise ValueError(f'{path}: expected a top-level list of label lists, got {type(data).__name__}')
    out = []
    for i, entry in enumerate(data):
        if not isinstance(entry, list) or not all(
            isinstance(c, int) and not isinstance(c, bool) and 0 <= c for c in entry
        ):
            raise ValueError(
                f'{path}: entry {i} must be a list of non-negative integer class indices, got {entry!r}'
            )
        out.append(list(entry))
    return out


def _read_lines(path: str) -> list[str]:
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def load_tfds_imagenet_validation_labels() -> np.ndarray:
    """Original ImageNet (ILSVRC2012) validation labels `[50000]` int32, in validation file order.

    Read from the files that tensorflow_datasets ships (no network, no download):
    `datasets/imagenet2012/validation_labels.txt` (one WNID per image, ILSVRC2012_val_00000001 first)
    and `labels.txt` (the 1000 WNIDs in sorted order; line index = class index, the standard order
    used by TFDS, torchvision and the ReaL labels).
    """
    spec = importlib.util.find_spec('tensorflow_datasets')
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            'load_tfds_imagenet_validation_labels needs the tensorflow_datasets package installed'
        )
    folder = os.path.join(list(spec.submodule_search_locations)[0], 'datasets', 'imagenet2012')
    labels_path = os.path.join(folder, 'labels.txt')
    val_path = os.path.join(folder, 'validation_labels.txt')
    for p in (labels_path, val_path):
        if not os.path.isfile(p):
            raise FileNotFoundError(f'{p}: missing from the installed tensorflow_datasets package')
    wnids = _read_lines(labels_path)
    if len(wnids) != 1000 or wnids != sorted(wnids) or len(set(wnids)) != 1000:
        raise ValueError(
            f'{labels_path}: expected 1000 distinct WNIDs in sorted order, got {len(wnids)} lines'
        )
    index = {w: i for i, w in enumerate(wnids)}
    val = _read_lines(val_path)
    if len(val) != 50000:
        raise ValueError(f'{val_path}: expected 50000 lines (one WNID per validation image), got {len(val)}')
    out = np.empty(len(val), dtype=np.int32)
    for i, w in enumerate(val):
        if w not in index:
            raise ValueError(f'{val_path}:{i + 1}: WNID {w!r} is not in {labels_path}')
        out[i] = index[w]
    return out
