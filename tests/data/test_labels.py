"""CS570 label files (`mlrelabel.data.labels`): round trips, relative paths, scores, malformed files named by
file, entry and field, class names and class lists shared by the splits."""

import json
import os

import pytest

from mlrelabel.data.label_table import LabelFileError, LabelTable
from mlrelabel.data.labels import read_label_file, read_labels, write_label_file
from mlrelabel.data.preflight import preflight
from mlrelabel.data.sources import load_image_dataset
from mlrelabel.errors import DataError
from tests.helpers import data_config, write_image, write_photo


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
    return data_config('json', 4, train_json=train, val_json=val, image_size=8, num_classes=0)


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

    c = _json_config(_json_split(tmp_path, 'train', ['a', 'b', 'c']), _json_split(tmp_path, 'val', None))
    c.data.num_classes = 5
    with pytest.raises(
        DataError, match=r'train.json \("classes"\): 3 class names, but 5 classes were asked for'
    ):
        preflight(c)


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


LISTS = [[3, 1], [0], [], [4, 2, 3], [1]]


SCORES = [[0.9, 0.25], [1.0], [], [0.5, 0.125, 0.75], [0.3]]


def test_label_file_round_trip(tmp_path):
    paths = [str(tmp_path / f"img{i}.png") for i in range(len(LISTS))]
    table = LabelTable.from_lists(LISTS, 5, scores=SCORES)
    out = tmp_path / "sub" / "labels.json"
    write_label_file(out, paths, table)
    doc = json.loads(out.read_text())
    assert doc["classes"] == ["0", "1", "2", "3", "4"]  # str(i) without names
    assert doc["data"][3] == {
        "img_path": paths[3],
        "labels": [4, 2, 3],
        "names": ["4", "2", "3"],
        "scores": [0.5, 0.125, 0.75],
    }
    read_paths, read_table = read_label_file(out, num_classes=5)
    assert read_paths == paths and read_table.equals(table)

    plain = LabelTable.from_lists(LISTS, 5)
    write_label_file(out, paths, plain)
    assert "scores" not in json.loads(out.read_text())["data"][0]
    _, again = read_label_file(out)  # num_classes = the length of the "classes" list
    assert again.equals(plain)
    assert sorted(os.listdir(out.parent)) == ["labels.json"]  # no temp files left behind


def test_scores_are_rounded_to_six_digits(tmp_path):
    table = LabelTable.from_lists([[0, 1]], 2, scores=[[1 / 3, 0.123456789]])
    write_label_file(tmp_path / "l.json", ["a.png"], table)
    assert json.loads((tmp_path / "l.json").read_text())["data"][0]["scores"] == [0.333333, 0.123457]


def test_relative_paths_resolve_against_root_or_file_dir(tmp_path):
    f = tmp_path / "d" / "labels.json"
    f.parent.mkdir()
    f.write_text(
        json.dumps(
            {"data": [{"img_path": "a/x.jpg", "labels": [1]}, {"img_path": "/abs/y.jpg", "labels": [0]}]}
        )
    )
    paths, table = read_label_file(f)
    assert paths == [os.path.join(str(f.parent), "a/x.jpg"), "/abs/y.jpg"]
    assert table.num_classes == 2
    paths, _ = read_label_file(f, root="/data/imagenet")
    assert paths == ["/data/imagenet/a/x.jpg", "/abs/y.jpg"]


def test_entries_without_scores_get_score_one_when_others_have_scores(tmp_path):
    f = tmp_path / "l.json"
    f.write_text(
        json.dumps(
            {
                "data": [
                    {"img_path": "a", "labels": [1, 0], "scores": [0.5, 0.25]},
                    {"img_path": "b", "labels": [2]},
                ]
            }
        )
    )
    _, table = read_label_file(f, num_classes=3)
    assert table.scores_to_lists() == [[0.5, 0.25], [1.0]]


GOOD = {"img_path": "ok.jpg", "labels": [1]}


@pytest.mark.parametrize(
    "entry, match",
    [
        ("not an object", r"entry 1: expected an object"),
        ({"labels": [1]}, r'entry 1: missing field "img_path"'),
        ({"img_path": 3, "labels": [1]}, r'entry 1: field "img_path" must be a non-empty string'),
        ({"img_path": "x.jpg"}, r'entry 1: missing field "labels"'),
        ({"img_path": "x.jpg", "labels": 2}, r'entry 1: field "labels" must be a list'),
        (
            {"img_path": "x.jpg", "labels": [0, True]},
            r'entry 1: field "labels"\[1\] = True is not an integer',
        ),
        ({"img_path": "x.jpg", "labels": [1.5]}, r'entry 1: field "labels"\[0\] = 1.5 is not an integer'),
        ({"img_path": "x.jpg", "labels": ["2"]}, r'entry 1: field "labels"\[0\] = \'2\' is not an integer'),
        (
            {"img_path": "x.jpg", "labels": [0, 10]},
            r'entry 1: field "labels"\[1\] = 10 is out of range \[0, 10\)',
        ),
        ({"img_path": "x.jpg", "labels": [-1]}, r'entry 1: field "labels"\[0\] = -1 is out of range'),
        (
            {"img_path": "x.jpg", "labels": [1, 2], "scores": [0.5]},
            r'entry 1: field "scores" has 1 values for 2 labels',
        ),
        (
            {"img_path": "x.jpg", "labels": [1], "scores": ["high"]},
            r'entry 1: field "scores"\[0\] = \'high\' is not a finite number',
        ),
        ({"img_path": "x.jpg", "labels": [1], "scores": 0.5}, r'entry 1: field "scores" must be a list'),
    ],
)
def test_malformed_entries_name_file_entry_and_field(tmp_path, entry, match):
    f = tmp_path / "broken_labels.json"
    f.write_text(json.dumps({"data": [GOOD, entry, GOOD]}))
    with pytest.raises(LabelFileError, match=match) as info:
        read_label_file(f, num_classes=10)
    assert str(f) in str(info.value)


def test_malformed_documents(tmp_path):
    f = tmp_path / "bad.json"
    f.write_text('{"data": [\n  {"img_path": "a", "labels": [1],}\n]}')
    with pytest.raises(LabelFileError, match=r"bad\.json: invalid JSON at line 2, column \d+") as info:
        read_label_file(f)
    assert isinstance(info.value, ValueError)
    f.write_text(json.dumps({"images": []}))
    with pytest.raises(LabelFileError, match=r'bad\.json: expected a JSON object with a "data" list'):
        read_label_file(f)
    f.write_text(json.dumps({"data": {"img_path": "a"}}))
    with pytest.raises(LabelFileError, match=r'bad\.json: "data" must be a list'):
        read_label_file(f)
    f.write_text(json.dumps({"data": [{"img_path": "a", "labels": []}]}))
    with pytest.raises(LabelFileError, match="cannot infer num_classes"):
        read_label_file(f)


# ---------------------------------------------------------------------- class names
def test_class_names_written_beside_indices_and_read_back(tmp_path):
    from mlrelabel.data.labels import read_labels

    names = ["cat", "dog", "sea snake"]
    table = LabelTable.from_lists([[2, 0], [], [1]], 3)
    out = tmp_path / "labels.json"
    write_label_file(out, ["a.png", "b.png", "c.png"], table, names)
    doc = json.loads(out.read_text())
    assert doc["classes"] == names
    assert doc["data"][0] == {"img_path": "a.png", "labels": [2, 0], "names": ["sea snake", "cat"]}
    assert doc["data"][1]["names"] == []
    paths, back, back_names = read_labels(out)
    assert back.equals(table) and back_names == names and back.num_classes == 3
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        write_label_file(out, ["a.png", "b.png", "c.png"], table, names[:2])


def test_class_list_sets_the_class_count_and_must_agree(tmp_path):
    from mlrelabel.data.labels import read_labels

    f = tmp_path / "l.json"
    # Four named classes, only two used: C = 4, not the largest label + 1.
    f.write_text(json.dumps({"classes": ["a", "b", "c", "d"], "data": [{"img_path": "x", "labels": [1]}]}))
    _, table, names = read_labels(f)
    assert table.num_classes == 4 and names == ["a", "b", "c", "d"]
    with pytest.raises(
        LabelFileError, match=r'l.json \("classes"\): 4 class names, but 6 classes were asked for'
    ):
        read_labels(f, num_classes=6)
    f.write_text(json.dumps({"classes": ["a", "b"], "data": [{"img_path": "x", "labels": [3]}]}))
    with pytest.raises(LabelFileError, match=r'entry 0: field "labels"\[0\] = 3 is out of range \[0, 2\)'):
        read_labels(f)
    f.write_text(json.dumps({"classes": ["a", "a"], "data": []}))
    with pytest.raises(LabelFileError, match=r"class 1: name 'a' is already class 0"):
        read_labels(f)


def test_entry_names_must_match_the_class_list(tmp_path):
    f = tmp_path / "l.json"
    entry = {"img_path": "x", "labels": [0, 1], "names": ["a", "c"]}
    f.write_text(json.dumps({"classes": ["a", "b", "c"], "data": [entry]}))
    with pytest.raises(LabelFileError, match=r"entry 0: field \"names\"\[1\] = 'c', but class 1 is 'b'"):
        read_label_file(f)
    f.write_text(json.dumps({"data": [dict(entry, names=["a", "b"])]}))
    with pytest.raises(LabelFileError, match='entry 0: field "names" needs the class list'):
        read_label_file(f)
    f.write_text(json.dumps({"classes": ["a", "b", "c"], "data": [dict(entry, names=["a"])]}))
    with pytest.raises(LabelFileError, match='must be a list of 2 class names'):
        read_label_file(f)


def test_classes_txt_beside_the_label_file(tmp_path):
    from mlrelabel.data.labels import read_labels

    f = tmp_path / "train.json"
    f.write_text(json.dumps({"data": [{"img_path": "x", "labels": [2], "names": ["bird"]}]}))
    (tmp_path / "classes.txt").write_text("cat\n\ndog\nbird\n")  # blank lines are ignored
    _, table, names = read_labels(f)
    assert names == ["cat", "dog", "bird"] and table.num_classes == 3
    # A file whose own list disagrees with classes.txt is refused, naming both.
    f.write_text(json.dumps({"classes": ["cat", "bird", "dog"], "data": []}))
    with pytest.raises(LabelFileError, match=r'train.json: "classes" \(3 names\) differs from .*classes.txt'):
        read_labels(f)
    (tmp_path / "classes.txt").write_text("cat\ndog\ncat\n")
    with pytest.raises(LabelFileError, match=r"classes.txt:3: class name 'cat' repeats line 1"):
        read_labels(tmp_path / "train.json")
