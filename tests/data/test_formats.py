"""Data-set formats: annotation folder, attribute CSV, partial JSON, each naming its classes (and groups);
malformed files name the file and the line (or entry)."""

import json
import os

import numpy as np
import pytest

from mlrelabel.data import formats
from mlrelabel.data.partial_labels import (
    read_partial_label_file,
    write_partial_label_file,
)
from tests.helpers import write_image


def test_annotation_and_attribute_sources_name_their_classes_and_groups(tmp_path, capsys):
    from mlrelabel.config import base_config
    from mlrelabel.methods import common

    root = tmp_path / 'flickr'
    for i in range(1, 9):
        write_image(str(root / 'images' / f'im{i}.jpg'), 20 * i)
    (root / 'annotations').mkdir()
    (root / 'annotations' / 'tree.txt').write_text('1\n2\n3\n4\n')
    (root / 'annotations' / 'dog.txt').write_text('5\n6\n7\n8\n3\n')
    c = base_config('smoke')
    with c.unlocked():
        c.data.source = 'annotation_folder'
        c.data.train_path = str(root)
    c.data.image_size = 8
    c.data.num_classes = 0
    c.train.batch_size = 4
    c.data.val_fraction = 0.25
    data = common.load_datasets(c, str(tmp_path / 'work'))
    assert data['train'].class_names == data['val'].class_names == ['dog', 'tree']
    assert c.data.num_classes == 2  # data-driven: from the annotation files
    assert 'mlrelabel: classes (sorted names): 0=dog, 1=tree\n' in capsys.readouterr().err
    c.data.num_classes = 3
    with pytest.raises(
        formats.FormatError, match=r'flickr: 2 classes \(dog, tree\), but config.data.num_classes=3'
    ):
        formats.load_partial_splits(c, verify_images=False)

    for name in ('a.jpg', 'b.jpg', 'c.jpg'):
        write_image(str(tmp_path / 'images' / name))
    (tmp_path / 'attrs.csv').write_text('filename,neck,sleeve\na.jpg,2,0\nb.jpg,1,1\nc.jpg,0,#N/A\n')
    ds, _, groups = formats.read_attribute_csv(tmp_path / 'attrs.csv', 8)
    assert ds.class_names == ['neck=0', 'neck=1', 'neck=2', 'sleeve=0', 'sleeve=1']
    assert ds.groups == groups == [('neck', 3), ('sleeve', 2)] and ds.group_bounds == [[0, 3], [3, 5]]


def test_partial_json_names_from_its_class_list(tmp_path):
    from mlrelabel.data.partial_labels import read_partial_label_file, write_partial_label_file

    write_image(str(tmp_path / 'a.jpg'))
    doc = {'classes': ['cat', 'dog', 'owl'], 'data': [{'img_path': 'a.jpg', 'labels': [1], 'names': ['dog']}]}
    (tmp_path / 'p.json').write_text(json.dumps(doc))
    ds, labels = formats.read_partial_json(tmp_path / 'p.json', 8)
    assert ds.class_names == labels.class_names == ['cat', 'dog', 'owl'] and ds.num_classes == 3
    write_partial_label_file(tmp_path / 'out.json', ds.paths, labels)
    assert json.loads((tmp_path / 'out.json').read_text())['classes'] == ['cat', 'dog', 'owl']
    assert read_partial_label_file(tmp_path / 'out.json')[1].class_names == ['cat', 'dog', 'owl']
    doc['data'][0]['names'] = ['cat']
    (tmp_path / 'p.json').write_text(json.dumps(doc))
    with pytest.raises(
        formats.FormatError, match=r"entry 0: field \"names\"\[0\] = 'cat', but class 1 is 'dog'"
    ):
        formats.read_partial_json(tmp_path / 'p.json', 8)


def _folder(root, classes, ids=(1, 2, 3, 4)):
    for i in ids:
        write_image(os.path.join(root, 'images', f'im{i}.jpg'), 10 * i)
    os.makedirs(os.path.join(root, 'annotations'), exist_ok=True)
    for name, text in classes.items():
        with open(os.path.join(root, 'annotations', f'{name}.txt'), 'w') as f:
            f.write(text)


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
