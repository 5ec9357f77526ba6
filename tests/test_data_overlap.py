"""Train/val overlap (same path or identical bytes) refused unless `data.allow_overlap`; label files the run
writes keep relative `img_path`s as the user wrote them, readable from anywhere through `"root"`."""

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from mlrelabel import validation
from mlrelabel.config import base_config
from mlrelabel.data import checks
from mlrelabel.data.labels import read_label_file, read_labels, write_label_file
from mlrelabel.data.preflight import preflight
from mlrelabel.data.sources import load_image_dataset
from mlrelabel.errors import DataError
from tests.helpers import write_photo


def _config(train, val, **data):
    c = base_config('smoke')
    c.data.source = 'json'
    c.data.train_json, c.data.val_json = str(train), str(val)
    c.data.num_classes = 2
    c.train.batch_size = 2
    for k, v in data.items():
        c.data[k] = v
    return c


def test_overlap_by_path_and_content_is_counted_and_named(splits):
    train, val = (read_label_file(p)[0] for p in splits)
    found = checks.find_overlap(train, val)
    assert sorted((os.path.basename(t), os.path.basename(v), how) for t, v, how in found) == [
        ('t1.jpg', 't1.jpg', 'same path'),
        ('t2.jpg', 'copy.jpg', 'same content'),
    ]
    with pytest.raises(
        DataError, match=r'2 images are in both train and val \(1 by path, 1 by content\)'
    ) as e:
        checks.check_overlap(train, val, ('train.json', 'val.json'))
    assert 'copy.jpg (same content)' in str(e.value) and 'allow_overlap=True' in str(e.value)
    with pytest.warns(RuntimeWarning, match='2 images are in both'):
        assert len(checks.check_overlap(train, val, allow=True)) == 2
    assert checks.find_overlap(train, val[2:]) == []


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


def test_check_splits_warns_when_overlap_is_allowed(splits):
    datasets = {s: load_image_dataset(p, 32)[0] for s, p in zip(('train', 'val'), splits)}
    with pytest.raises(DataError, match='2 images are in both'):
        checks.check_splits(datasets, _config(*splits))
    with pytest.warns(RuntimeWarning, match='kept: config.data.allow_overlap=True'):
        checks.check_splits(datasets, _config(*splits, allow_overlap=True))
    folder = _config(*splits)
    folder.data.source = 'folder'  # published ImageNet splits are taken as they are
    checks.check_splits(datasets, folder)


def test_written_label_files_keep_relative_paths_as_written(splits, tmp_path):
    train_file, _ = splits
    absolute = str(tmp_path.parent / f'{tmp_path.name}_elsewhere' / 't3.jpg')
    write_photo(absolute, 3)
    doc = json.loads(train_file.read_text())
    doc['data'][3]['img_path'] = absolute  # an absolute entry outside the label file's folder stays absolute
    train_file.write_text(json.dumps(doc))
    ds, _ = load_image_dataset(train_file, 32)
    assert ds.root == str(tmp_path)
    assert ds.label_paths() == ['imgs/t0.jpg', 'imgs/t1.jpg', 'imgs/t2.jpg', absolute]
    assert ds.subset([1, 0]).label_paths() == ['imgs/t1.jpg', 'imgs/t0.jpg']
    out = tmp_path / 'run' / 'labels.json'
    write_label_file(out, ds.label_paths(), ds.labels, ds.class_names, ds.root, left_out=0)
    written = json.loads(out.read_text())
    assert [e['img_path'] for e in written['data']] == ds.label_paths()
    assert written['root'] == str(tmp_path) and written['left_out'] == 0
    paths, table, _ = read_labels(out)  # readable from its new folder: relative paths join "root"
    assert paths == ds.paths and table.to_lists() == ds.labels.to_lists()
    assert read_label_file(out, root='')[0] == ds.label_paths()  # load_run reads them as written
    moved = tmp_path / 'run' / 'rel.json'
    moved.write_text(json.dumps({**written, 'root': '..'}))  # a relative root: from the file
    assert [os.path.normpath(p) for p in read_labels(moved)[0]] == ds.paths
