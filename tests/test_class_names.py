"""Class names end to end: every source gives its Dataset names (label-file lists, classes.txt, sorted annotation
files, attribute columns, partial JSON), the splits must agree, the run names its classes once, captions show
names beside ids."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from mlrelabel import report
from mlrelabel.data import formats
from mlrelabel.data.label_table import LabelTable
from mlrelabel.data.sources import Dataset
from mlrelabel.errors import DataError
from tests.helpers import write_image




def test_dataset_names_default_check_and_travel_with_subsets():
    images = np.zeros((3, 4, 4, 3), np.uint8)
    labels = LabelTable.from_single(np.array([0, 1, 2]), 3)
    assert Dataset(images=images, labels=labels).class_names == ['0', '1', '2']
    with pytest.raises(ValueError, match='2 class names for 3 classes'):
        Dataset(images=images, labels=labels, name='x', class_names=['a', 'b'])
    ds = Dataset(images=images, labels=labels, class_names=['a', 'b', 'c'], groups=[('g', 2), ('h', 1)])
    assert ds.groups == [('g', 2), ('h', 1)] and ds.group_bounds == [[0, 2], [2, 3]]
    sub = ds.subset([2, 0])
    assert sub.class_names == ['a', 'b', 'c'] and sub.groups == ds.groups
    assert ds.with_labels(LabelTable.from_single(np.array([1, 1, 1]), 3)).class_names == ['a', 'b', 'c']
    with pytest.raises(ValueError, match='do not cover the 3 classes'):
        Dataset(images=images, labels=labels, groups=[('g', 2)])
    assert Dataset(images=images, labels=labels).group_bounds == []


def _json_split(root, split, classes, n=4):
    entries = []
    for i in range(n):
        write_image(
            str(root / split / f'{i}.png'), 40 * i + (0 if split == 'train' else 7)
        )  # no train/val overlap
        entries.append({'img_path': f'{split}/{i}.png', 'labels': [i % 3]})
    doc = {'data': entries} if classes is None else {'classes': classes, 'data': entries}
    (root / f'{split}.json').write_text(json.dumps(doc))
    return str(root / f'{split}.json')


def _json_config(train, val):
    from mlrelabel.config import base_config

    c = base_config('smoke')
    c.data.source = 'json'
    c.data.train_json, c.data.val_json = train, val
    c.data.image_size = 8
    c.data.num_classes = 0
    c.train.batch_size = 4
    return c


def test_label_file_names_are_shared_by_the_splits_and_announced(tmp_path, capsys):
    from mlrelabel.methods import common

    names = ['cat', 'dog', 'bird', 'fish']
    c = _json_config(_json_split(tmp_path, 'train', names), _json_split(tmp_path, 'val', None))
    data = common.load_datasets(c, str(tmp_path / 'work'))
    assert c.data.num_classes == 4  # from the class list, not the largest label + 1
    assert data['train'].class_names == data['val'].class_names == names
    assert 'mlrelabel: classes (the label files): 0=cat, 1=dog, 2=bird, 3=fish\n' in capsys.readouterr().err
    # Two different lists would give one id two meanings: refused, naming both files.
    c = _json_config(
        _json_split(tmp_path / 'b', 'train', names),
        _json_split(tmp_path / 'b', 'val', ['cat', 'dog', 'owl', 'fish']),
    )
    with pytest.raises(DataError, match=r"val.json: class 2 is 'owl', but .*train.json calls it 'bird'"):
        common.load_datasets(c, str(tmp_path / 'work2'))


def test_a_class_list_that_disagrees_with_num_classes_names_the_file(tmp_path):
    from mlrelabel.data.preflight import preflight

    c = _json_config(_json_split(tmp_path, 'train', ['a', 'b', 'c']), _json_split(tmp_path, 'val', None))
    c.data.num_classes = 5
    with pytest.raises(
        DataError, match=r'train.json \("classes"\): 3 class names, but 5 classes were asked for'
    ):
        preflight(c)


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


def test_captions_show_names_beside_ids_shortened():
    names = ['0', 'golden retriever puppy', 'cat']
    assert report.label_text([2, 0, 1], names) == '[2 cat, 0, 1 golden retrie…]'
    assert report.label_text([1, 0]) == '[1, 0]'
    assert report.class_text(1, names, max_chars=6) == '1 golde…'
    assert report._wrap('a b c d e f', 5) == 'a b c\nd e f'
