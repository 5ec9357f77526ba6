"""Datasets (`mlrelabel.data.sources`): class names that travel with subsets, lazy image files, label-file
datasets with broken images, digit-scenes datasets."""

import json
import os
import warnings

import numpy as np
import pytest
from PIL import Image

from mlrelabel.data.label_table import LabelTable
from mlrelabel.data.sources import (
    Dataset,
    ImageFiles,
    digit_scenes_dataset,
    load_image_dataset,
    with_noisy_labels,
)


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


# Far-apart colours so that each image's colour identifies its row even after JPEG compression.
COLOURS = [
    (230, 20, 20),
    (20, 230, 20),
    (20, 20, 230),
    (230, 230, 20),
    (20, 230, 230),
    (230, 20, 230),
    (240, 240, 240),
]


def _write_images(tmp_path):
    """Seven images (row i: colour i, labels [i, (i+1) % 7]), row 2 a corrupt JPEG, row 4 a missing file,
    row 5 a truncated JPEG. Returns the label file path."""
    entries = []
    for i, colour in enumerate(COLOURS):
        name = f"img{i}.jpg" if i % 2 == 0 else f"sub/img{i}.png"
        path = tmp_path / name
        path.parent.mkdir(exist_ok=True)
        size = (24 + 4 * i, 20)
        if i == 2:
            path.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" * 10)
        elif i == 4:
            pass  # listed in the label file, never written
        elif i == 5:
            noisy = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
            full = tmp_path / "full5.jpg"
            Image.fromarray(noisy).save(full, format="JPEG", quality=95)
            path = path.with_suffix(".jpg")
            name = str(path.relative_to(tmp_path))
            path.write_bytes(full.read_bytes()[: len(full.read_bytes()) // 2])
            full.unlink()
        else:
            Image.new("RGB", size, colour).save(path)
        entries.append({"img_path": name, "labels": [i, (i + 1) % 7]})
    label_file = tmp_path / "train_labels.json"
    label_file.write_text(json.dumps({"data": entries}))
    return label_file


def test_unreadable_images_are_skipped_counted_and_labels_stay_aligned(tmp_path):
    label_file = _write_images(tmp_path)
    with pytest.warns(RuntimeWarning, match=r"skipped 3 of 7 images") as record:
        dataset, report = load_image_dataset(label_file, image_size=16, num_classes=7)
    message = str(record[0].message)
    for bad in ("img2.jpg", "img4.jpg", "img5.jpg"):
        assert bad in message
    assert "missing file" in message
    assert report["total"] == 7 and report["skipped"] == 3 and report["kept"] == 4
    assert [os.path.basename(f["path"]) for f in report["skipped_files"]] == [
        "img2.jpg",
        "img4.jpg",
        "img5.jpg",
    ]
    assert all(f["reason"] for f in report["skipped_files"])
    json.dumps(report)  # the report can go straight into a JSON file

    assert len(dataset) == 4 and dataset.num_classes == 7 and dataset.name == "train_labels"
    assert dataset.truth is None
    kept_rows = [0, 1, 3, 6]
    assert [os.path.basename(p) for p in dataset.paths] == [
        f"img{i}.{'jpg' if i % 2 == 0 else 'png'}" for i in kept_rows
    ]
    assert dataset.labels.to_lists() == [[i, (i + 1) % 7] for i in kept_rows]
    images = dataset.images[np.arange(4)]
    assert images.shape == (4, 16, 16, 3) and images.dtype == np.uint8
    for b, row in enumerate(kept_rows):
        mean_colour = images[b].reshape(-1, 3).mean(axis=0)
        nearest = int(np.argmin(np.abs(np.array(COLOURS) - mean_colour).sum(axis=1)))
        assert nearest == row, f"dataset row {b} shows the image of file row {nearest}, expected {row}"


def test_without_check_rows_are_kept_and_reading_a_bad_file_names_it(tmp_path):
    label_file = _write_images(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dataset, report = load_image_dataset(label_file, image_size=8, check=False)
    assert report == {"total": 7, "kept": 7, "skipped": 0, "skipped_files": []}
    assert len(dataset) == 7 and dataset.num_classes == 7  # inferred: max label 6 + 1
    assert dataset.images[1].shape == (8, 8, 3)
    with pytest.raises(OSError, match=r"img2\.jpg.*row 2"):
        dataset.images[[0, 2]]


def test_no_readable_images_is_an_error(tmp_path):
    (tmp_path / "l.json").write_text(json.dumps({"data": [{"img_path": "gone.jpg", "labels": [0]}]}))
    with pytest.raises(ValueError, match="none of the 1 images"), pytest.warns(RuntimeWarning):
        load_image_dataset(tmp_path / "l.json", image_size=8)


def test_image_files_resize_shorter_side_then_centre_crop(tmp_path):
    # 60x20 (w x h) image: red | green | blue thirds. Shorter side -> 10 gives 30x10; the centre
    # 10 columns are the green third.
    array = np.zeros((20, 60, 3), np.uint8)
    array[:, :20, 0] = 255
    array[:, 20:40, 1] = 255
    array[:, 40:, 2] = 255
    Image.fromarray(array).save(tmp_path / "wide.png")
    Image.fromarray(array.transpose(1, 0, 2)).save(tmp_path / "tall.png")  # 20x60, thirds stacked
    Image.new("L", (5, 7), 128).save(tmp_path / "gray_small.png")  # grayscale, upscaled
    reader = ImageFiles([str(tmp_path / n) for n in ("wide.png", "tall.png", "gray_small.png")], 10)
    assert len(reader) == 3 and reader.shape == (3, 10, 10, 3)
    out = reader[np.array([0, 1, 2])]
    assert out.shape == (3, 10, 10, 3) and out.dtype == np.uint8
    for b in (0, 1):
        centre = out[b, 2:8, 2:8].reshape(-1, 3)
        assert np.all(centre[:, 1] > 200) and np.all(centre[:, [0, 2]] < 60)
    assert np.all(out[2] == 128)
    np.testing.assert_array_equal(reader[1], out[1])
    np.testing.assert_array_equal(reader[1:3], out[1:3])
    np.testing.assert_array_equal(reader.subset([2, 0])[np.arange(2)], out[[2, 0]])


def test_dataset_alignment_checks_and_with_labels():
    images = np.zeros((3, 4, 4, 3), np.uint8)
    labels = LabelTable.from_single(np.array([0, 1, 2]), 3)
    ds = Dataset(images=images, labels=labels, name="tiny")
    assert len(ds) == 3 and ds.num_classes == 3 and ds.truth is None
    new = LabelTable.from_lists([[0, 1], [1], [2, 0]], 3)
    ds2 = ds.with_labels(new)
    assert ds2.labels.equals(new) and ds.labels.equals(labels) and ds2.images is images
    with pytest.raises(ValueError, match="rows"):
        ds.with_labels(LabelTable.from_single(np.array([0, 1]), 3))
    with pytest.raises(ValueError, match="classes"):
        ds.with_labels(LabelTable.from_single(np.array([0, 1, 2]), 4))
    with pytest.raises(ValueError, match="images has 2 rows"):
        Dataset(images=images[:2], labels=labels)
    with pytest.raises(ValueError, match="truth has 2 rows"):
        Dataset(images=images, labels=labels, truth=LabelTable.from_single(np.array([0, 1]), 3))


def test_noisy_given_labels_are_wrong_exactly_where_the_truth_says(tmp_path):
    ds = digit_scenes_dataset("train", tmp_path, num_images=200, seed=0)
    noisy = with_noisy_labels(ds, 0.1, seed=3)
    given = [row[0] for row in noisy.labels.to_lists()]
    wrong = [g not in t for g, t in zip(given, ds.truth.to_lists())]
    changed = [a != b for a, b in zip(noisy.labels.to_lists(), ds.labels.to_lists())]
    assert sum(wrong) == 20 and wrong == changed  # 10%, each one a class absent from its image
    assert noisy.truth.equals(ds.truth) and np.all(noisy.labels.num_labels() == 1)
    again = with_noisy_labels(ds, 0.1, seed=3)
    assert again.labels.equals(noisy.labels)  # seeded
    assert not with_noisy_labels(ds, 0.1, seed=4).labels.equals(noisy.labels)
    assert with_noisy_labels(ds, 0.0).labels.equals(ds.labels)
    with pytest.raises(ValueError, match="fraction must lie in"):
        with_noisy_labels(ds, 1.0)


def test_digit_scenes_dataset(tmp_path):
    ds = digit_scenes_dataset("val", tmp_path, num_images=25, seed=2)
    assert len(ds) == 25 and ds.num_classes == 10 and ds.name == "digit_scenes_val"
    assert ds.images.shape == (25, 40, 40, 3) and ds.images.dtype == np.uint8
    assert np.all(ds.labels.num_labels() == 1)
    assert ds.boxes.shape == (25, 4, 4) and ds.paths is None
    truth = ds.truth.dense()
    labels = ds.labels.dense()
    assert np.all(truth[labels == 1] == 1)  # the visible label is one of the hidden ones
    assert truth.sum() > labels.sum()  # and there is more to find
    again = digit_scenes_dataset("val", tmp_path, num_images=25, seed=2)  # from the cache
    np.testing.assert_array_equal(again.images, ds.images)
    assert again.truth.equals(ds.truth) and again.labels.equals(ds.labels)
    sub = ds.subset([3, 1])
    np.testing.assert_array_equal(sub.images, ds.images[[3, 1]])
    assert sub.truth.to_lists() == [ds.truth.to_lists()[3], ds.truth.to_lists()[1]]
    np.testing.assert_array_equal(sub.boxes, ds.boxes[[3, 1]])
