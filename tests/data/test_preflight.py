"""The preflight (`mlrelabel.data.preflight`): empty, too small, out-of-range and overlapping label files are
refused before the work directory is claimed, so the corrected command can use it."""

import pytest

from mlrelabel import validation
from mlrelabel.data.label_table import LabelFileError
from mlrelabel.data.preflight import preflight
from mlrelabel.errors import DataError
from tests.helpers import data_config, write_images, write_label_json


def _json_config(tmp_path, train, val, batch=2):
    return data_config('json', batch, train_json=str(train), val_json=str(val), num_classes=3)


def test_preflight_refuses_empty_small_and_out_of_range_files_before_the_workdir(tmp_path):
    from mlrelabel import main

    entries = write_images(tmp_path, 4)
    train = write_label_json(tmp_path / 'train.json', entries)
    empty = write_label_json(tmp_path / 'val.json', [])
    config = _json_config(tmp_path, train, empty)
    with pytest.raises(DataError, match=r'val\.json \(config\.data\.val_json\): lists no images'):
        preflight(config)
    with pytest.raises(DataError, match=r'val\.json'):
        main.run(config, str(tmp_path / 'run'))
    assert not (tmp_path / 'run').exists()  # nothing claimed: the corrected command can use this workdir
    val = write_label_json(tmp_path / 'val2.json', write_images(tmp_path, 4, start=4))
    small = _json_config(tmp_path, train, val, batch=8)
    with pytest.raises(
        DataError, match=r'train\.json \(config\.data\.train_json\): 4 training images, fewer than one batch'
    ):
        preflight(small)
    bad = write_label_json(tmp_path / 'bad.json', entries[:3] + [('im3.png', [7])])
    with pytest.raises(
        LabelFileError, match=r'bad\.json: entry 3: field "labels"\[0\] = 7 is out of range \[0, 3\)'
    ):
        preflight(_json_config(tmp_path, bad, val))
    preflight(_json_config(tmp_path, train, val))  # the corrected files pass


def _config(train, val, **data):
    return data_config('json', train_json=str(train), val_json=str(val), num_classes=2, **data)


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
