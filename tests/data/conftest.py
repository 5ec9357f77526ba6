"""Fixtures of the data tests."""

import json
import shutil

import pytest

from tests.helpers import write_photo


def _names_file(path, names):
    path.write_text(json.dumps({'data': [{'img_path': n, 'labels': [i % 2]} for i, n in enumerate(names)]}))
    return path


@pytest.fixture
def splits(tmp_path):
    """train: imgs/t0..t3.jpg; val: imgs/t1.jpg again (same path), imgs/copy.jpg (t2's bytes), imgs/v0.jpg."""
    for i in range(4):
        write_photo(str(tmp_path / 'imgs' / f't{i}.jpg'), i)
    shutil.copy(tmp_path / 'imgs' / 't2.jpg', tmp_path / 'imgs' / 'copy.jpg')
    write_photo(str(tmp_path / 'imgs' / 'v0.jpg'), 10)
    train = _names_file(tmp_path / 'train.json', [f'imgs/t{i}.jpg' for i in range(4)])
    val = _names_file(tmp_path / 'val.json', ['./imgs/t1.jpg', 'imgs/copy.jpg', 'imgs/v0.jpg'])
    return train, val
