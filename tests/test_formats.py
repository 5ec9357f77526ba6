"""Data-set formats: annotation folder, attribute CSV, partial JSON, PartialLabels; malformed files name
the file and the line (or entry)."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from mlrelabel.data import formats
from mlrelabel.data.partial_labels import (
    PartialLabels,
    read_partial_label_file,
    write_partial_label_file,
)
from tests.helpers import write_image




def _folder(root, classes, ids=(1, 2, 3, 4)):
    for i in ids:
        write_image(os.path.join(root, 'images', f'im{i}.jpg'), 10 * i)
    os.makedirs(os.path.join(root, 'annotations'), exist_ok=True)
    for name, text in classes.items():
        with open(os.path.join(root, 'annotations', f'{name}.txt'), 'w') as f:
            f.write(text)


# --------------------------------------------------------------------------- PartialLabels
def test_partial_labels_batch_is_float_with_minus_one_and_compact():
    t = np.array([[1, 0, -1], [-1, -1, 1]])
    labels = PartialLabels(t, ['a', 'b', 'c'])
    assert labels.targets.dtype == np.int8 and len(labels) == 2 and labels.num_classes == 3
    batch = labels.batch(np.array([1, 0]))
    assert batch['target'].dtype == np.float32
    np.testing.assert_array_equal(batch['target'], [[-1, -1, 1], [1, 0, -1]])
    assert labels.positives().to_lists() == [[0], [2]]
    c = labels.counts()
    np.testing.assert_array_equal(c['unknown'], [1, 1, 1])
    assert c['unknown_fraction'] == pytest.approx(0.5)
    assert labels.subset([1]).targets.tolist() == [[-1, -1, 1]]
    with pytest.raises(ValueError, match=r'1, 0 or -1, got 2 at row 0, class 1'):
        PartialLabels(np.array([[1, 2]]))
    with pytest.raises(ValueError, match='class names'):
        PartialLabels(t, ['a'])


def test_partial_json_negatives_unknown_and_targets(tmp_path):
    path = tmp_path / 'train.json'
    data = {
        'data': [
            {'img_path': 'a.jpg', 'labels': [0]},  # CS570: unlisted = negative
            {'img_path': 'b.jpg', 'labels': [1], 'negatives': [3]},  # with negatives: unlisted = unknown
            {'img_path': 'c.jpg', 'labels': [], 'unknown': [2, 3]},  # explicit unknowns, rest negative
            {'img_path': 'd.jpg', 'targets': [-1, 1, 0, -1]},
        ]
    }
    path.write_text(json.dumps(data))
    paths, labels = read_partial_label_file(path)
    assert paths[0] == os.path.join(str(tmp_path), 'a.jpg')
    np.testing.assert_array_equal(
        labels.targets, [[1, 0, 0, 0], [-1, 1, -1, 0], [0, 0, -1, -1], [-1, 1, 0, -1]]
    )
    out = tmp_path / 'round.json'
    write_partial_label_file(out, paths, labels)
    _, back = read_partial_label_file(out, num_classes=4)
    np.testing.assert_array_equal(back.targets, labels.targets)


@pytest.mark.parametrize(
    'entry, message',
    [
        (
            {'img_path': 'x.jpg', 'labels': [0], 'negatives': [0]},
            r'entry 1: class 0 is in both "labels" and "negatives"',
        ),
        ({'img_path': 'x.jpg', 'targets': [1, 2]}, r'entry 1: field "targets"\[1\] = 2 must be 1, 0 or -1'),
        ({'img_path': 'x.jpg', 'targets': [1, 0], 'labels': [0]}, r'entry 1: "targets" cannot be combined'),
        ({'img_path': 'a.jpg', 'labels': [1]}, r"entry 1: duplicate img_path 'a.jpg' \(first in entry 0\)"),
        ({'img_path': 'x.jpg', 'negatives': [1]}, r'entry 1: missing field "labels"'),
        ({'img_path': 'x.jpg', 'labels': ['1']}, r'entry 1: field "labels"\[0\] = .1. is not an integer'),
    ],
)
def test_partial_json_errors_name_file_and_entry(tmp_path, entry, message):
    path = tmp_path / 'bad.json'
    path.write_text(json.dumps({'data': [{'img_path': 'a.jpg', 'labels': [0]}, entry]}))
    with pytest.raises(ValueError, match=f'bad.json: {message}'):
        read_partial_label_file(path, num_classes=2 if 'targets' in entry else None)


def test_partial_json_missing_image_names_entry(tmp_path):
    write_image(str(tmp_path / 'a.jpg'))
    path = tmp_path / 'p.json'
    path.write_text(
        json.dumps({'data': [{'img_path': 'a.jpg', 'labels': [0]}, {'img_path': 'b.jpg', 'labels': [1]}]})
    )
    with pytest.raises(formats.FormatError, match=r'p.json: entry 1: missing image .*b.jpg'):
        formats.read_partial_json(path, 8)


# --------------------------------------------------------------------------- annotation folder
def test_annotation_folder_sorted_classes_and_unlisted_report(tmp_path):
    root = str(tmp_path / 'flickr')
    _folder(root, {'tree': '1\n3\n', 'dog': '2\n\n3\n'})  # image 4 listed nowhere
    with pytest.warns(RuntimeWarning, match='1 images are listed in no class file: im4.jpg'):
        ds, labels, report = formats.read_annotation_folder(root, 8)
    assert labels.class_names == ['dog', 'tree']  # sorted file names, not file-system order
    np.testing.assert_array_equal(labels.targets, [[0, 1], [1, 0], [1, 1], [0, 0]])
    assert report['unlisted'] == 1 and report['unlisted_files'] == ['im4.jpg']
    assert [os.path.basename(p) for p in ds.paths] == ['im1.jpg', 'im2.jpg', 'im3.jpg', 'im4.jpg']
    assert ds.images[np.array([1])].shape == (1, 8, 8, 3)
    assert ds.labels.to_lists() == [[1], [0], [0, 1], []]
    with pytest.warns(RuntimeWarning):
        _, unknown, _ = formats.read_annotation_folder(root, 8, unlisted='unknown')
    np.testing.assert_array_equal(unknown.targets[0], [-1, 1])


@pytest.mark.parametrize(
    'text, message',
    [
        ('1\nabc\n', r'dog.txt:2: expected an image id'),
        ('1\n2\n1\n', r'dog.txt:3: duplicate image id 1 \(first on line 1\)'),
        ('1\n\n9\n', r'dog.txt:3: image id 9: missing image .*im9.jpg'),
    ],
)
def test_annotation_folder_errors_name_file_and_line(tmp_path, text, message):
    root = str(tmp_path / 'f')
    _folder(root, {'dog': text, 'cat': '1 \n'}, ids=(1, 2))
    with pytest.raises(formats.FormatError, match=message):
        formats.read_annotation_folder(root, 8)


# --------------------------------------------------------------------------- attribute CSV
def _csv(tmp_path, rows, header='filename,neck,sleeve_length', images=('a.jpg', 'b.jpg', 'c.jpg')):
    for name in images:
        write_image(str(tmp_path / 'images' / name))
    path = tmp_path / 'attributes.csv'
    path.write_text(header + '\n' + '\n'.join(rows) + '\n')
    return path


def test_attribute_csv_groups_from_data_and_config(tmp_path):
    path = _csv(tmp_path, ['a.jpg,2,#N/A', 'b.jpg,,1', 'c.jpg,0,0'])
    ds, labels, groups = formats.read_attribute_csv(path, 8)
    assert groups == [('neck', 3), ('sleeve_length', 2)]
    assert labels.class_names == ['neck=0', 'neck=1', 'neck=2', 'sleeve_length=0', 'sleeve_length=1']
    np.testing.assert_array_equal(labels.targets, [[0, 0, 1, -1, -1], [-1, -1, -1, 0, 1], [1, 0, 0, 1, 0]])
    assert ds.labels.to_lists() == [[2], [4], [0, 3]]
    # Counts from the config: a 4th neck class that no row uses, and only the listed columns.
    _, labels, groups = formats.read_attribute_csv(path, 8, groups=formats.parse_groups('neck:4'))
    assert groups == [('neck', 4)] and labels.targets.shape == (3, 4)
    assert formats.parse_groups('') is None
    with pytest.raises(ValueError, match="name:count"):
        formats.parse_groups('neck=4')


@pytest.mark.parametrize(
    'rows, groups, message',
    [
        (['a.jpg,1,0', 'b.jpg,x,1'], None, r'attributes.csv:3: neck=.x. is not a class index'),
        (
            ['a.jpg,1,0', 'b.jpg,5,1'],
            'neck:3,sleeve_length:2',
            r'attributes.csv:3: unknown neck value 5: the group has 3',
        ),
        (
            ['a.jpg,1,0', 'a.jpg,0,1'],
            None,
            r"attributes.csv:3: duplicate filename 'a.jpg' \(first on line 2\)",
        ),
        (['a.jpg,1,0', 'zz.jpg,0,1'], None, r'attributes.csv:3: missing image .*zz.jpg'),
        (['a.jpg,1,0', 'b.jpg,0'], None, r'attributes.csv:3: 2 fields, the header has 3'),
        (['a.jpg,1,0', 'b.jpg,-1,1'], None, r'attributes.csv:3: neck=.-1. is not a class index'),
    ],
)
def test_attribute_csv_errors_name_file_and_line(tmp_path, rows, groups, message):
    path = _csv(tmp_path, rows)
    with pytest.raises(formats.FormatError, match=message):
        formats.read_attribute_csv(path, 8, groups=formats.parse_groups(groups or ''))


def test_attribute_csv_header_errors(tmp_path):
    with pytest.raises(formats.FormatError, match=r'attributes.csv:1: the header has no "filename"'):
        formats.read_attribute_csv(_csv(tmp_path, ['a.jpg,1'], header='file,neck'), 8)
    with pytest.raises(formats.FormatError, match=r"attributes.csv: column 'neck' has no known value"):
        formats.read_attribute_csv(_csv(tmp_path, ['a.jpg,#N/A'], header='filename,neck'), 8)


def test_load_partial_splits_holds_out_val_and_reuses_train_groups(tmp_path):
    from mlrelabel.config import base_config

    path = _csv(tmp_path, ['a.jpg,2,0', 'b.jpg,1,1', 'c.jpg,0,#N/A'])
    cfg = base_config('smoke')
    with cfg.unlocked():
        cfg.data.source = 'attribute_csv'
        cfg.data.train_path = str(path)
        cfg.data.val_path = ''
        cfg.data.val_fraction = 0.34
        cfg.data.attribute_groups = ''
    cfg.data.image_size = 8
    splits = formats.load_partial_splits(cfg)
    assert len(splits['train']) == 2 and len(splits['val']) == 1
    assert splits['groups'] == [('neck', 3), ('sleeve_length', 2)]
    assert splits['val_targets'].shape == (1, 5)
    # Same rows, either way round: the split is a seeded partition.
    all_paths = sorted(splits['train'].paths + splits['val'].paths)
    assert [os.path.basename(p) for p in all_paths] == ['a.jpg', 'b.jpg', 'c.jpg']
    with cfg.unlocked():
        cfg.data.val_path = str(path)
    assert formats.load_source(cfg, str(tmp_path))['val'].labels.to_lists() == [[2, 3], [1, 4], [0]]
