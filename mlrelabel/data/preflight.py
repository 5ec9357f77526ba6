"""Checks before any work: read the label files a config names (no image is decoded) so that their mistakes
stop the run before its work directory is claimed; `main` calls `preflight` right after validating the config.
"""

from __future__ import annotations

from mlrelabel.data.checks import check_overlap, check_splits
from mlrelabel.errors import DataError

__all__ = ['preflight']


def preflight(config) -> None:
    """Reads the label files `config.data` names (nothing is decoded or written) and raises `DataError` on
    duplicates, class indices out of range, empty files, a training file smaller than one batch or images in
    both train and val (`checks.check_overlap`; with `data.allow_overlap` the load warns), so the
    mistake stops the run before its work directory is claimed. Sources without user label files (digit
    scenes, folder, tfds) are checked when they load."""
    d = config.data
    if d.source == 'json':
        from mlrelabel.data.labels import read_label_file

        paths_of = {}
        for split, field in (('train', 'train_json'), ('val', 'val_json')):
            path = d[field]
            paths_of[split], _ = read_label_file(path, num_classes=d.num_classes, root=d.root or None)
            _check_count(len(paths_of[split]), split, f'{path} (config.data.{field})', config)
        if not d.allow_overlap:
            check_overlap(paths_of['train'], paths_of['val'], (d.train_json, d.val_json))
    elif d.source in ('annotation_folder', 'attribute_csv', 'partial_json'):
        from mlrelabel.data import formats

        splits = formats.load_partial_splits(config, verify_images=False)
        check_splits({'train': splits['train'], 'val': splits['val']}, config, formats.split_files(config))


def _check_count(n: int, split: str, where: str, config) -> None:
    if n == 0:
        raise DataError(f'{where}: lists no images (the {split} split would be empty)')
    if split == 'train' and n < config.train.batch_size:
        raise DataError(
            f'{where}: {n} training images, fewer than one batch (config.train.batch_size={config.train.batch_size})'
        )
