"""The import of ReLabel's published label maps (`mlrelabel.tools.import_relabel_maps`): any loader, the
command on torch files, and a clear message without torch."""

import json
import os
import sys

import numpy as np
import pytest

from mlrelabel.errors import ResourceError
from mlrelabel.label_maps.store import LabelMapStore
from mlrelabel.tools import import_relabel_maps as imp


def _relabel_files(root, paths, save, num_classes=1000):
    """ReLabel's layout: root/<wnid>/<stem>.pt holding [2, 5, 15, 15] (scores, float class ids)."""
    rng = np.random.default_rng(2)
    arrays = []
    for p in paths:
        ids = np.stack([rng.permutation(num_classes)[:5] for _ in range(225)], -1).reshape(5, 15, 15)
        scores = -np.sort(-rng.normal(size=(5, 15, 15)), axis=0)
        arr = np.stack([scores, ids]).astype(np.float32)
        target = imp.map_file(str(root), p)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        save(arr, target)
        arrays.append(arr)
    return np.stack(arrays)


def test_import_converts_relabel_layout_with_any_loader(tmp_path):
    paths = [f'train/n0144{i % 2}764/n0144{i % 2}764_{i}.JPEG' for i in range(5)]

    def save(arr, target):
        with open(target, 'wb') as f:
            np.save(f, arr)

    arrays = _relabel_files(tmp_path / 'maps', paths, save)
    imp.import_maps(str(tmp_path / 'maps'), paths, str(tmp_path / 'store'), shard_size=2, load_fn=np.load)
    scores, classes = LabelMapStore(str(tmp_path / 'store'), expected_order=paths).get(np.arange(5))
    assert scores.shape == (5, 5, 15, 15)
    np.testing.assert_array_equal(classes, arrays[:, 1].astype(int))
    np.testing.assert_allclose(scores, arrays[:, 0], atol=4e-3)
    with pytest.raises(ValueError, match=r'bad\.pt: expected a \[2, k, h, w\] tensor'):
        imp.split_map(np.zeros((5, 15, 15)), 'bad.pt', 1000)
    with pytest.raises(ValueError, match='outside \\[0, 10\\)'):
        imp.split_map(arrays[0], 'x.pt', 10)
    with pytest.raises(FileNotFoundError, match='no label map for image 5'):
        imp.import_maps(
            str(tmp_path / 'maps'),
            paths + ['train/n01440764/absent.JPEG'],
            str(tmp_path / 'other'),
            load_fn=np.load,
        )


def test_import_command_round_trips_torch_files(tmp_path):
    torch = pytest.importorskip('torch')
    paths = [f'n0153{i % 3}000/n0153{i % 3}000_{i}.JPEG' for i in range(7)]
    arrays = _relabel_files(
        tmp_path / 'maps', paths, lambda arr, target: torch.save(torch.from_numpy(arr), target)
    )
    (tmp_path / 'train.json').write_text(
        json.dumps({'data': [{'img_path': p, 'labels': [0]} for p in paths]})
    )
    assert (
        imp.main(
            [
                f'--root={tmp_path / "maps"}',
                f'--order={tmp_path / "train.json"}',
                f'--out={tmp_path / "store"}',
                '--shard_size=3',
            ]
        )
        == 0
    )
    store = LabelMapStore(str(tmp_path / 'store'))
    np.testing.assert_array_equal(store.rows_for([str(tmp_path / p) for p in paths]), np.arange(7))
    scores, classes = store.get(np.arange(7))
    np.testing.assert_array_equal(classes, arrays[:, 1].astype(int))
    np.testing.assert_allclose(scores, arrays[:, 0], atol=4e-3)


def test_import_without_torch_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'torch', None)
    with pytest.raises(ResourceError, match='pip install torch'):
        imp.load_torch_map(str(tmp_path / 'a.pt'))
