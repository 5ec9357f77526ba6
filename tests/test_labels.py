"""LabelTable, CS570 label files and atomic writes."""

import json
import os

import numpy as np
import pytest

from mlrelabel import io_utils
from mlrelabel.data.label_table import LabelFileError, LabelTable
from mlrelabel.data.labels import read_label_file, write_label_file

LISTS = [[3, 1], [0], [], [4, 2, 3], [1]]
SCORES = [[0.9, 0.25], [1.0], [], [0.5, 0.125, 0.75], [0.3]]


def _dense_reference(lists, num_classes):
    out = np.zeros((len(lists), num_classes), np.float32)
    for i, row in enumerate(lists):
        out[i, row] = 1.0
    return out


def test_from_lists_round_trip_and_accessors():
    table = LabelTable.from_lists(LISTS, 5, scores=SCORES)
    assert len(table) == 5 and table.num_classes == 5
    assert table.offsets.dtype == np.int64 and table.classes.dtype == np.int32
    assert table.scores.dtype == np.float32
    assert table.to_lists() == LISTS
    np.testing.assert_array_equal(table.num_labels(), [2, 1, 0, 3, 1])
    np.testing.assert_array_equal(table.labels_of(3), [4, 2, 3])
    np.testing.assert_allclose(table.scores_of(0), [0.9, 0.25])
    np.testing.assert_array_equal(table.labels_of(-1), [1])
    assert table.labels_of(2).shape == (0,)
    with pytest.raises(IndexError):
        table.labels_of(5)
    assert LabelTable.from_lists(LISTS, 5).scores_of(0) is None


def test_from_lists_dedups_keeping_first_occurrence_and_its_score():
    table = LabelTable.from_lists(
        [[2, 0, 2, 1, 0], [3, 3]], 4, scores=[[0.1, 0.2, 0.3, 0.4, 0.5], [0.6, 0.7]]
    )
    assert table.to_lists() == [[2, 0, 1], [3]]
    np.testing.assert_allclose(table.scores, [0.1, 0.2, 0.4, 0.6])


def test_dense_matches_reference_for_any_index_order():
    table = LabelTable.from_lists(LISTS, 5)
    idx = np.array([3, 0, 2, 3, 4])
    np.testing.assert_array_equal(table.dense(idx), _dense_reference(LISTS, 5)[idx])
    assert table.dense(idx).dtype == np.float32
    np.testing.assert_array_equal(table.dense(), _dense_reference(LISTS, 5))
    assert table.dense(np.zeros((0,), np.int32)).shape == (0, 5)


def test_from_dense_and_from_single_round_trips():
    table = LabelTable.from_lists([[0, 3], [], [1, 2, 4]], 5)  # ascending rows: from_dense order
    again = LabelTable.from_dense(table.dense())
    assert again.equals(table)
    scores = np.arange(15, dtype=np.float32).reshape(3, 5)
    with_scores = LabelTable.from_dense(table.dense(), scores=scores)
    np.testing.assert_array_equal(with_scores.scores, [0, 3, 11, 12, 14])
    single = LabelTable.from_single(np.array([4, 0, 2]), 5)
    assert single.to_lists() == [[4], [0], [2]]
    with pytest.raises(LabelFileError, match="entry 1"):
        LabelTable.from_single(np.array([4, 5, 2]), 5)


def test_subset_and_replace_rows():
    table = LabelTable.from_lists(LISTS, 5, scores=SCORES)
    sub = table.subset([4, 3, 3])
    assert sub.to_lists() == [[1], [4, 2, 3], [4, 2, 3]]
    np.testing.assert_allclose(sub.scores, [0.3, 0.5, 0.125, 0.75, 0.5, 0.125, 0.75])

    new = LabelTable.from_lists([[0, 1, 2], [4]], 5)  # no scores: they count as 1.0
    out = table.replace_rows([3, 1], new)
    assert out.to_lists() == [[3, 1], [4], [], [0, 1, 2], [1]]  # row 3 <- new row 0, row 1 <- new row 1
    np.testing.assert_allclose(out.scores, [0.9, 0.25, 1.0, 1.0, 1.0, 1.0, 0.3])
    assert table.to_lists() == LISTS  # the original is untouched
    plain = LabelTable.from_lists(LISTS, 5).replace_rows([2], LabelTable.from_lists([[2]], 5))
    assert plain.scores is None and plain.to_lists()[2] == [2]
    with pytest.raises(ValueError, match="unique"):
        table.replace_rows([1, 1], new)
    with pytest.raises(ValueError, match="rows"):
        table.replace_rows([1], new)


def test_equals():
    a = LabelTable.from_lists(LISTS, 5, scores=SCORES)
    assert a.equals(LabelTable.from_lists(LISTS, 5, scores=SCORES))
    assert not a.equals(LabelTable.from_lists(LISTS, 5))
    assert a.equals(LabelTable.from_lists(LISTS, 5), check_scores=False)
    assert not a.equals(LabelTable.from_lists(LISTS, 6, scores=SCORES))
    assert not a.equals(LabelTable.from_lists([[3, 1], [0], [], [4, 3, 2], [1]], 5))


@pytest.mark.parametrize(
    "lists, match",
    [
        ([[1], [0], [True]], r"entry 2: label True .* not an integer"),
        ([[1], [0], [1.5]], r"entry 2: label 1.5 .* not an integer"),
        ([[1], [0], ["3"]], r"entry 2: label '3' .* not an integer"),
        ([[1], [0], [0, 7]], r"entry 2: label 7 is out of range \[0, 5\)"),
        ([[1], [0], [-1]], r"entry 2: label -1 is out of range"),
        ([[1], [0], 3], r"entry 2: labels must be a list"),
    ],
)
def test_from_lists_rejects_bad_entries(lists, match):
    with pytest.raises(LabelFileError, match=match):
        LabelTable.from_lists(lists, 5)


def test_from_lists_rejects_bad_scores():
    with pytest.raises(LabelFileError, match="entry 1: 1 scores for 2 labels"):
        LabelTable.from_lists([[0], [1, 2]], 3, scores=[[1.0], [0.5]])
    with pytest.raises(LabelFileError, match="entry 1: score 'x'"):
        LabelTable.from_lists([[0], [1, 2]], 3, scores=[[1.0], [0.5, "x"]])


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


def test_atomic_write_leaves_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "out" / "metrics.json"
    io_utils.atomic_write_json(target, {"round": 1})
    assert json.loads(target.read_text()) == {"round": 1}

    def failing_fsync(fd):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(io_utils.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="simulated"):
        io_utils.atomic_write_text(target, '{"round": 2, "partial": tr')
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"round": 1}
    assert os.listdir(target.parent) == ["metrics.json"]

    with pytest.raises(TypeError):  # unserialisable: fails before touching the file
        io_utils.atomic_write_json(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"round": 1}
    assert os.listdir(target.parent) == ["metrics.json"]


def test_atomic_write_bytes_and_npz(tmp_path):
    io_utils.atomic_write_bytes(tmp_path / "a" / "b" / "blob.bin", b"\x00\x01")
    assert (tmp_path / "a" / "b" / "blob.bin").read_bytes() == b"\x00\x01"
    target = tmp_path / "arrays.cache"  # no .npz suffix is added
    io_utils.atomic_save_npz(target, x=np.arange(6).reshape(2, 3), y=np.ones(2, np.uint8))
    with np.load(target) as f:
        np.testing.assert_array_equal(f["x"], np.arange(6).reshape(2, 3))
        assert f["y"].dtype == np.uint8
    assert sorted(os.listdir(tmp_path)) == ["a", "arrays.cache"]


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
