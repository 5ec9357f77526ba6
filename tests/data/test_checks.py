"""Data checks (`mlrelabel.data.checks`), for every source: duplicate images, class indices out of range,
empty splits, CSV values outside their groups, train/val overlap; unreadable images skipped, counted and named
the same way everywhere."""

import json
import os
import re

import pytest

from mlrelabel.config import base_config
from mlrelabel.data import checks, formats, imagenet_labels
from mlrelabel.data.label_table import LabelFileError
from mlrelabel.data.labels import read_label_file
from mlrelabel.data.preflight import preflight
from mlrelabel.data.sources import load_image_dataset
from mlrelabel.errors import DataError
from tests.helpers import data_config, write_image, write_images, write_label_json

SKIPPED = r'{where}: skipped 1 of {n} images that could not be read: .*{bad} \('


def _json_config(tmp_path, train, val, batch=2):
    return data_config('json', batch, train_json=str(train), val_json=str(val), num_classes=3)


# ------------------------------------------------------------------------------------------ label files
def test_an_image_listed_twice_names_the_image_and_both_entries(tmp_path):
    entries = write_images(tmp_path, 4)
    path = write_label_json(tmp_path / 'train.json', entries + [('./im1.png', [2])])
    with pytest.raises(
        LabelFileError, match=r"train\.json: entry 4: image '.*im1\.png' is listed twice \(first in entry 1\)"
    ):
        read_label_file(path, 3)
    val = write_label_json(tmp_path / 'val.json', entries)
    with pytest.raises(DataError, match=r'entry 4: .*listed twice'):
        preflight(_json_config(tmp_path, path, val))


def test_folder_val_label_file_with_a_duplicate_line(tmp_path):
    from mlrelabel.data import imagenet

    root = tmp_path / 'inet'
    wnids = imagenet.make_synthetic_folder(str(root), num_classes=2, per_class=2, num_val=1, flat_val=True)
    lines = (root / 'val_labels.txt').read_text().splitlines()
    (root / 'val_labels.txt').write_text('\n'.join(lines + [lines[0]]) + '\n')
    with pytest.raises(DataError, match=r'val_labels\.txt:3: image .* is listed twice \(first on line 1\)'):
        imagenet_labels.folder_split(str(root), 'val', wnids, str(root / 'val_labels.txt'))


# ------------------------------------------------------------------------------------------ attribute CSV
def _csv(tmp_path, rows, header='filename,neck,sleeve'):
    for i, row in enumerate(rows):  # distinct pixels: identical files in train and val would be refused
        write_image(str(tmp_path / 'images' / row.split(',')[0]), 13 * i % 256)
    path = tmp_path / 'attributes.csv'
    path.write_text('\n'.join([header] + rows) + '\n')
    return path


def test_csv_value_that_would_grow_an_undeclared_group_names_row_and_column(tmp_path):
    rows = [f'{i}.png,{i % 7},{i % 5}' for i in range(14)] + ['x.png,67,1']
    path = _csv(tmp_path, rows)
    with pytest.raises(
        formats.FormatError,
        match=r"attributes\.csv:16: neck=67 makes the group 68 classes, but 60 of them never occur",
    ):
        formats.read_attribute_csv(path, 8)
    # Declared groups: the same value is out of range, named by row and column.
    with pytest.raises(
        formats.FormatError, match=r'attributes\.csv:16: unknown neck value 67: the group has 7 classes'
    ):
        formats.read_attribute_csv(path, 8, groups=[('neck', 7), ('sleeve', 5)])
    ds, labels, groups = formats.read_attribute_csv(_csv(tmp_path, rows[:-1]), 8)
    assert groups == [('neck', 7), ('sleeve', 5)] and labels.num_classes == 12


def test_empty_annotation_folder_is_an_error(tmp_path):
    (tmp_path / 'images').mkdir()
    (tmp_path / 'annotations').mkdir()
    (tmp_path / 'annotations' / 'cat.txt').write_text('')
    with pytest.raises(formats.FormatError, match='no im<id>.jpg images'):
        formats.read_annotation_folder(tmp_path, 8)


# ------------------------------------------------------------------------------------------ unreadable images
def _break(path):
    with open(path, 'wb') as f:
        f.write(b'\xff\xd8\xff not really a jpeg')


def _formats_config(source, train_path, **fields):
    return data_config(source, train_path=str(train_path), val_fraction=0.25, image_size=8, **fields)


def _annotation_folder(root):
    for i in range(1, 9):
        write_image(str(root / 'images' / f'im{i}.jpg'), 20 * i)
    (root / 'annotations').mkdir()
    (root / 'annotations' / 'a.txt').write_text('1\n2\n3\n4\n')
    (root / 'annotations' / 'b.txt').write_text('5\n6\n7\n8\n')
    _break(root / 'images' / 'im3.jpg')
    return root, 'im3.jpg', 8


def _attribute_csv(root):
    path = _csv(root, [f'{i}.png,{i % 3},{i % 2}' for i in range(8)], header='filename,neck,sleeve')
    _break(root / 'images' / '3.png')
    return path, '3.png', 8


def _partial_json(root):
    entries = []
    for i in range(8):
        write_image(str(root / f'p{i}.png'), 20 * i)
        entries.append({'img_path': f'p{i}.png', 'labels': [i % 3], 'negatives': [(i + 1) % 3]})
    (root / 'partial.json').write_text(json.dumps({'data': entries}))
    _break(root / 'p3.png')
    return root / 'partial.json', 'p3.png', 8


@pytest.mark.parametrize(
    'source,make',
    [
        ('annotation_folder', _annotation_folder),
        ('attribute_csv', _attribute_csv),
        ('partial_json', _partial_json),
    ],
)
def test_format_sources_skip_count_and_name_unreadable_images(source, make, tmp_path):
    path, bad, n = make(tmp_path)
    config = _formats_config(source, path)
    preflight(config)  # reads the annotations only: the broken image is found later
    with pytest.warns(
        RuntimeWarning, match=SKIPPED.format(where=re.escape(str(path)), n=n, bad=re.escape(bad))
    ):
        splits = formats.load_partial_splits(config)
    assert len(splits['train']) + len(splits['val']) == n - 1
    kept = splits['train'].paths + splits['val'].paths
    assert not any(p.endswith(bad) for p in kept)
    for ds in (splits['train'], splits['val']):  # labels stay aligned with the kept images
        assert len(ds.labels) == len(ds.paths) == len(ds.images)


def test_json_and_folder_sources_word_skipped_images_the_same_way(tmp_path):
    from mlrelabel.data import imagenet
    from mlrelabel.data.sources import load_image_dataset

    entries = write_images(tmp_path, 5)
    _break(tmp_path / 'im2.png')
    path = write_label_json(tmp_path / 'train.json', entries)
    with pytest.warns(RuntimeWarning, match=SKIPPED.format(where=re.escape(str(path)), n=5, bad='im2.png')):
        ds, report = load_image_dataset(path, 8, num_classes=3)
    assert report['skipped'] == 1 and report['kept'] == 4 == len(ds)
    assert report['skipped_files'][0]['path'].endswith('im2.png') and report['skipped_files'][0]['reason']

    root = tmp_path / 'inet'
    imagenet.make_synthetic_folder(str(root), num_classes=2, per_class=3, num_val=1)
    victim = sorted((root / 'train').rglob('*.JPEG'))[1]
    _break(victim)
    c = base_config('smoke')
    with c.unlocked():
        c.data.source, c.data.root, c.data.num_classes, c.data.num_val, c.data.image_size = (
            'folder',
            str(root),
            0,
            0,
            8,
        )
        c.train.batch_size = 2
    with pytest.warns(
        RuntimeWarning, match=SKIPPED.format(where=re.escape(f'{root}/train'), n=6, bad=victim.name)
    ):
        data = imagenet.load_folder(c, str(tmp_path / 'work'))
    assert len(data['train']) == 5


def test_no_readable_image_and_empty_splits_are_errors(tmp_path):
    with (
        pytest.raises(DataError, match=r'x\.json: none of the 2 images could be read'),
        pytest.warns(RuntimeWarning),
    ):
        checks.drop_unreadable([str(tmp_path / 'a.png'), str(tmp_path / 'b.png')], 'x.json')
    c = base_config('smoke')
    with pytest.raises(DataError, match=r'val\.json: the val split has no images'):
        checks.check_splits({'train': list(range(40)), 'val': []}, c, {'val': 'val.json'})
    with pytest.raises(
        DataError,
        match=r'train\.json: 8 training images, fewer than one batch \(config\.train\.batch_size=32\)',
    ):
        checks.check_splits({'train': list(range(8)), 'val': [1]}, c, {'train': 'train.json'})


def _config(train, val, **data):
    return data_config('json', train_json=str(train), val_json=str(val), num_classes=2, **data)


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


def test_check_splits_warns_when_overlap_is_allowed(splits):
    datasets = {s: load_image_dataset(p, 32)[0] for s, p in zip(('train', 'val'), splits)}
    with pytest.raises(DataError, match='2 images are in both'):
        checks.check_splits(datasets, _config(*splits))
    with pytest.warns(RuntimeWarning, match='kept: config.data.allow_overlap=True'):
        checks.check_splits(datasets, _config(*splits, allow_overlap=True))
    folder = _config(*splits)
    folder.data.source = 'folder'  # published ImageNet splits are taken as they are
    checks.check_splits(datasets, folder)
