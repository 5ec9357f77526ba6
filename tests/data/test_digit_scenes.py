"""Digit scenes: determinism, disjoint splits, consistency of labels/boxes, difficulty, caching."""

import os
import time

import numpy as np
import pytest
from sklearn.datasets import load_digits

from mlrelabel.data import digit_scenes
from mlrelabel.data.digit_scenes import (
    SPLITS,
    DigitSceneOptions,
    load_or_build_digit_scenes,
    make_digit_scenes,
    split_pool,
)


def _sample_f1_of_visible(arrays):
    """Mean over images of 2|{visible} ∩ T| / (1 + |T|), T = hidden truth set."""
    truth = arrays["truth"].astype(np.float64)
    hit = truth[np.arange(truth.shape[0]), arrays["label"]]
    return float(np.mean(2.0 * hit / (1.0 + truth.sum(axis=1))))


def test_shapes_dtypes_and_padding():
    d = make_digit_scenes("train", 50, DigitSceneOptions(image_size=32, max_digits=3, max_scale=16))
    assert d["image"].shape == (50, 32, 32, 3) and d["image"].dtype == np.uint8
    assert d["label"].shape == (50,) and d["label"].dtype == np.int32
    assert d["truth"].shape == (50, 10) and d["truth"].dtype == np.uint8
    assert d["boxes"].shape == (50, 3, 4) and d["boxes"].dtype == np.float32
    assert d["box_labels"].shape == d["source_ids"].shape == (50, 3)
    k = d["num_digits"]
    assert k.min() >= 1 and k.max() <= 3
    slots = np.arange(3)[None, :]
    filled = slots < k[:, None]
    assert np.all((d["box_labels"] >= 0) == filled) and np.all((d["source_ids"] >= 0) == filled)
    assert np.all(d["boxes"][~filled] == -1)
    b = d["boxes"][filled]
    assert np.all((b >= 0) & (b <= 1))
    assert np.all(b[:, 2] > b[:, 0]) and np.all(b[:, 3] > b[:, 1])
    side = (b[:, 2] - b[:, 0]) * 32
    assert side.min() >= 10 - 1e-4 and side.max() <= 16 + 1e-4


def test_labels_truth_and_sources_agree():
    target = load_digits().target
    d = make_digit_scenes("val", 200)
    filled = d["source_ids"] >= 0
    np.testing.assert_array_equal(d["box_labels"][filled], target[d["source_ids"][filled]])
    for i in range(200):
        present = np.unique(d["box_labels"][i, : d["num_digits"][i]])
        np.testing.assert_array_equal(np.flatnonzero(d["truth"][i]), present)
    rows = np.arange(200)
    assert np.all(d["truth"][rows, d["label"]] == 1)  # the visible label is in the hidden set
    np.testing.assert_array_equal(d["label"], d["box_labels"][rows, d["visible_slot"]])
    # visible='largest': no digit has a strictly larger box than the visible one
    b = d["boxes"]
    area = np.where(b[..., 0] >= 0, (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1]), -1)
    assert np.all(area[rows, d["visible_slot"]] >= area.max(axis=1) - 1e-6)


def test_digits_are_drawn_where_the_boxes_say():
    d = make_digit_scenes("train", 100)
    lum = d["image"].astype(np.float32).max(axis=-1)
    inside = np.zeros(lum.shape, bool)
    for i in range(100):
        for y0, x0, y1, x1 in d["boxes"][i, : d["num_digits"][i]] * 40:
            inside[i, int(round(y0)) : int(round(y1)), int(round(x0)) : int(round(x1))] = True
    # digit strokes are bright, the background dark: the brightest pixels lie inside boxes
    assert np.mean(lum[inside] > 120) > 0.15
    assert np.mean(lum[~inside] > 120) < 0.002


def test_determinism_by_seed():
    a = make_digit_scenes("train", 40, seed=3)
    b = make_digit_scenes("train", 40, seed=3)
    c = make_digit_scenes("train", 40, seed=4)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["image"], c["image"])
    assert not np.array_equal(a["source_ids"], c["source_ids"])


def test_splits_use_disjoint_source_digits():
    pools = {s: split_pool(s) for s in SPLITS}
    assert [len(pools[s]) for s in SPLITS] == [1078, 359, 360]
    assert len(np.unique(np.concatenate(list(pools.values())))) == 1797
    used = {}
    for s in SPLITS:
        for layout in ("scenes", "grid"):
            ids = make_digit_scenes(s, 150, DigitSceneOptions(layout=layout), seed=0)["source_ids"]
            ids = ids[ids >= 0]
            assert np.isin(ids, pools[s]).all(), f"{s}/{layout} drew digits outside its pool"
            used.setdefault(s, set()).update(ids.tolist())
    assert (
        not used["train"] & used["val"]
        and not used["train"] & used["test"]
        and not used["val"] & used["test"]
    )
    # the pools do not depend on the scene seed
    ids = make_digit_scenes("test", 100, seed=99)["source_ids"]
    assert np.isin(ids[ids >= 0], pools["test"]).all()


def test_visible_labels_alone_score_sample_f1_between_half_and_three_quarters():
    start = time.perf_counter()
    d = make_digit_scenes("train", 3000)
    seconds = time.perf_counter() - start
    f1 = _sample_f1_of_visible(d)
    print(f"3000 scenes at 40 px in {seconds:.2f} s; visible-label sample-F1 = {f1:.3f}")
    assert 0.5 <= f1 <= 0.75
    assert seconds < 30  # a few seconds normally; loose for a busy shared machine
    random_vis = make_digit_scenes("train", 500, DigitSceneOptions(visible="random"))
    same_layout = make_digit_scenes("train", 500)
    np.testing.assert_array_equal(random_vis["image"], same_layout["image"])  # only the label rule differs
    assert np.all(random_vis["truth"][np.arange(500), random_vis["label"]] == 1)
    assert not np.array_equal(random_vis["label"], same_layout["label"])


def test_grid_layout():
    d = make_digit_scenes("test", 400, DigitSceneOptions(image_size=30, layout="grid"), seed=1)
    assert d["boxes"].shape == (400, 9, 4) and np.all(d["num_digits"] == 9)
    assert np.all(d["source_ids"] >= 0)
    np.testing.assert_allclose(d["boxes"][0, 4], [10 / 30, 10 / 30, 20 / 30, 20 / 30], atol=1e-6)
    np.testing.assert_allclose(d["boxes"][0, 0], [0, 0, 10 / 30, 10 / 30], atol=1e-6)
    centre_share = np.mean(d["visible_slot"] == 4)
    assert 0.5 < centre_share < 0.7
    others = d["visible_slot"][d["visible_slot"] != 4]
    assert set(others.tolist()) == {0, 1, 2, 3, 5, 6, 7, 8}
    rows = np.arange(400)
    assert np.all(d["truth"][rows, d["label"]] == 1)
    assert np.all(d["truth"].sum(axis=1) == [len(set(r)) for r in d["box_labels"].tolist()])


def test_invalid_arguments():
    with pytest.raises(ValueError, match="split"):
        make_digit_scenes("training", 2)
    with pytest.raises(ValueError, match="visible"):
        DigitSceneOptions(visible="biggest")
    with pytest.raises(ValueError, match="max_scale"):
        DigitSceneOptions(image_size=16, max_scale=20)
    with pytest.raises(ValueError, match="min_digits"):
        DigitSceneOptions(min_digits=3, max_digits=2)


def test_cache_reload_identical_and_keyed_by_arguments(tmp_path, monkeypatch):
    first = load_or_build_digit_scenes(tmp_path, "val", num_images=30, seed=5)
    files = os.listdir(tmp_path)
    assert len(files) == 1 and files[0].startswith("digit_scenes_val_") and files[0].endswith(".npz")

    def no_build(*args, **kwargs):
        raise AssertionError("should have been read from the cache")

    monkeypatch.setattr(digit_scenes, "_make_scenes", no_build)
    again = load_or_build_digit_scenes(tmp_path, "val", num_images=30, seed=5)
    assert again.keys() == first.keys()
    for key in first:
        np.testing.assert_array_equal(again[key], first[key])
        assert again[key].dtype == first[key].dtype
    # the default value spelled out gives the same key
    load_or_build_digit_scenes(tmp_path, "val", num_images=30, seed=5, image_size=40)
    monkeypatch.undo()

    load_or_build_digit_scenes(tmp_path, "val", num_images=30, seed=6)
    assert len(os.listdir(tmp_path)) == 2
    # a damaged cache file is rebuilt, not trusted
    path = tmp_path / files[0]
    path.write_bytes(b"not a zip")
    rebuilt = load_or_build_digit_scenes(tmp_path, "val", num_images=30, seed=5)
    np.testing.assert_array_equal(rebuilt["image"], first["image"])
    assert not any(name.endswith(".tmp") for name in os.listdir(tmp_path))
