"""Data checks before training, for every source: duplicate images, class indices out of range, empty splits,
CSV values outside their groups; unreadable images skipped, counted and named the same way everywhere."""

import json

import pytest

from mlrelabel import validation
from mlrelabel.config import base_config
from mlrelabel.data.label_table import LabelFileError
from mlrelabel.data.preflight import preflight
from mlrelabel.errors import DataError
from tests.helpers import write_image


def _label_file(path, entries):
    path.write_text(json.dumps({'data': [{'img_path': p, 'labels': labels} for p, labels in entries]}))
    return path


def _json_config(tmp_path, train, val, batch=2):
    c = base_config('smoke')
    c.data.source = 'json'
    c.data.train_json, c.data.val_json = str(train), str(val)
    c.data.num_classes = 3
    c.train.batch_size = batch
    return c


def _images(tmp_path, n, start=0):
    for i in range(start, start + n):
        write_image(str(tmp_path / f'im{i}.png'), 20 * i)
    return [(f'im{i}.png', [i % 3]) for i in range(start, start + n)]


def test_preflight_refuses_empty_small_and_out_of_range_files_before_the_workdir(tmp_path):
    from mlrelabel import main

    entries = _images(tmp_path, 4)
    train = _label_file(tmp_path / 'train.json', entries)
    empty = _label_file(tmp_path / 'val.json', [])
    config = _json_config(tmp_path, train, empty)
    with pytest.raises(DataError, match=r'val\.json \(config\.data\.val_json\): lists no images'):
        preflight(config)
    with pytest.raises(DataError, match=r'val\.json'):
        main.run(config, str(tmp_path / 'run'))
    assert not (tmp_path / 'run').exists()  # nothing claimed: the corrected command can use this workdir
    val = _label_file(tmp_path / 'val2.json', _images(tmp_path, 4, start=4))
    small = _json_config(tmp_path, train, val, batch=8)
    with pytest.raises(
        DataError, match=r'train\.json \(config\.data\.train_json\): 4 training images, fewer than one batch'
    ):
        preflight(small)
    bad = _label_file(tmp_path / 'bad.json', entries[:3] + [('im3.png', [7])])
    with pytest.raises(
        LabelFileError, match=r'bad\.json: entry 3: field "labels"\[0\] = 7 is out of range \[0, 3\)'
    ):
        preflight(_json_config(tmp_path, bad, val))
    preflight(_json_config(tmp_path, train, val))  # the corrected files pass


def _config(train, val, **data):
    c = base_config('smoke')
    c.data.source = 'json'
    c.data.train_json, c.data.val_json = str(train), str(val)
    c.data.num_classes = 2
    c.train.batch_size = 2
    for k, v in data.items():
        c.data[k] = v
    return c


def test_preflight_refuses_overlap_before_the_workdir_unless_allowed(splits, tmp_path):
    from mlrelabel import main

    config = _config(*splits)
    validation.validate_config(config)
    with pytest.raises(DataError, match=r'train\.json and .*val\.json: 2 images are in both'):
        preflight(config)
    with pytest.raises(DataError, match='in both train and val'):
        main.run(config, str(tmp_path / 'run'))
    assert not (tmp_path / 'run').exists()
    allowed = _config(*splits, allow_overlap=True)
    validation.validate_config(allowed)
    preflight(allowed)  # the load warns instead (checks.check_splits)
    assert 'data.allow_overlap' in validation.SCHEMA
