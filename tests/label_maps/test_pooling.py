"""LabelPooling (ReLabel, Yun et al. 2021): top-k scatter, one-cell RoIAlign, softmax targets, flips."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlrelabel.label_maps import pooling as lp

# ----------------------------------------------------------------------------------------------------------
# A straightforward NumPy reference of torchvision's roi_align CPU kernel (output 1x1, spatial_scale 1,
# sampling_ratio -1, aligned=False), sample by sample, with the ReLabel-style shift ``frac * size - offset``.
# ----------------------------------------------------------------------------------------------------------


def _bilinear(v, y, x):
    h, w = v.shape[:2]
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return np.zeros(v.shape[2])
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= h - 1:
        y_high = y_low = h - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= w - 1:
        x_high = x_low = w - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1.0 - ly, 1.0 - lx
    return (
        hy * hx * v[y_low, x_low]
        + hy * lx * v[y_low, x_high]
        + ly * hx * v[y_high, x_low]
        + ly * lx * v[y_high, x_high]
    )


def _reference(v, box, offset):
    h, w = v.shape[:2]
    f32 = np.float32
    y0, x0, y1, x1 = (f32(c) for c in box)
    start_y, end_y = y0 * f32(h) - f32(offset), y1 * f32(h) - f32(offset)
    start_x, end_x = x0 * f32(w) - f32(offset), x1 * f32(w) - f32(offset)
    roi_h, roi_w = max(end_y - start_y, f32(1.0)), max(end_x - start_x, f32(1.0))
    grid_h, grid_w = math.ceil(roi_h), math.ceil(roi_w)
    total = np.zeros(v.shape[2])
    for iy in range(grid_h):
        y = float(start_y) + (iy + 0.5) * float(roi_h) / grid_h
        for ix in range(grid_w):
            x = float(start_x) + (ix + 0.5) * float(roi_w) / grid_w
            total += _bilinear(v, y, x)
    return total / max(grid_h * grid_w, 1)


def _random_boxes(rng, n):
    """Boxes of every kind: random, thinner than one cell, the whole image, touching each border."""
    boxes = []
    for _ in range(n):
        y = np.sort(rng.uniform(0, 1, 2))
        x = np.sort(rng.uniform(0, 1, 2))
        boxes.append([y[0], x[0], y[1], x[1]])
    for _ in range(n // 2):  # smaller than one cell of a 6-cell axis
        c = rng.uniform(0, 0.9, 2)
        s = rng.uniform(0.01, 0.1, 2)
        boxes.append([c[0], c[1], c[0] + s[0], c[1] + s[1]])
    boxes += [[0, 0, 1, 1], [0, 0, 0.3, 0.2], [0.7, 0.8, 1, 1], [0.25, 0, 0.5, 1]]
    return np.asarray(boxes, np.float32)


@pytest.mark.parametrize("shape, offset", [((6, 6), 0.5), ((6, 6), 0.0), ((4, 7), 0.5), ((4, 7), 0.0)])
def test_roi_align_matches_reference(shape, offset):
    rng = np.random.default_rng(0)
    boxes = _random_boxes(rng, 8)
    maps = rng.normal(size=(len(boxes), *shape, 3)).astype(np.float32)
    got = np.asarray(lp.roi_align_average(maps, boxes, offset=offset))
    want = np.stack([_reference(m, b, offset) for m, b in zip(maps, boxes)])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_roi_align_boxes_outside_the_map_match_reference():
    """Samples beyond -1 or the map size contribute zero but still count in the average (torchvision)."""
    rng = np.random.default_rng(1)
    boxes = np.asarray([[-0.3, 0.9, 0.5, 1.2], [0.95, -0.2, 1.1, 0.3]], np.float32)
    maps = rng.normal(size=(2, 6, 6, 2)).astype(np.float32)
    got = np.asarray(lp.roi_align_average(maps, boxes, offset=0.5))
    want = np.stack([_reference(m, b, 0.5) for m, b in zip(maps, boxes)])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert not np.allclose(got, np.asarray(lp.roi_align_average(maps, np.clip(boxes, 0, 1), offset=0.5)))


def test_sub_cell_box_by_hand():
    """4x4 map, box (0.3, 0.3, 0.4, 0.4), offset 0.5: start 0.7, extent 0.4 -> 1, one sample at 1.2,
    so each axis weighs cell 1 by 0.8 and cell 2 by 0.2."""
    v = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    got = float(lp.roi_align_average(v, np.asarray([[0.3, 0.3, 0.4, 0.4]], np.float32))[0, 0])
    w = np.asarray([0, 0.8, 0.2, 0])
    assert got == pytest.approx(float(w @ v[0, :, :, 0] @ w), abs=1e-5)


def test_whole_image_is_the_spatial_mean_with_relabel_offset():
    """With offset 0.5 the whole box spans [-0.5, n - 0.5] per axis: extent n, grid n, samples at
    -0.5 + (i + 0.5) = i, i.e. exactly on every cell once (0 is not clamped away, n - 1 hits the edge rule
    with zero fraction). So the pooled value is exactly the spatial mean, for any (also non-square) map."""
    rng = np.random.default_rng(2)
    maps = rng.normal(size=(2, 5, 7, 4)).astype(np.float32)
    full = np.asarray([[0, 0, 1, 1]] * 2, np.float32)
    got = np.asarray(lp.label_pooling(maps, full))
    mean = maps.mean(axis=(1, 2))
    np.testing.assert_allclose(np.asarray(lp.roi_align_average(maps, full)), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got, np.asarray(jax.nn.softmax(mean, axis=-1)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.sum(axis=-1), 1.0, rtol=1e-6)


def test_whole_image_without_offset_is_not_the_mean():
    """With offset 0 on a 15x15 map the whole box spans [0, 15]: 15 samples at 0.5, ..., 14.5. Samples
    0.5..13.5 split half/half between neighbours, 14.5 is past cell 14 and reads cell 14 alone, so each
    axis weighs cells (0.5, 1, ..., 1, 1.5) / 15: not the mean (the map's right/bottom edge is overweighted)."""
    rng = np.random.default_rng(3)
    maps = rng.normal(size=(1, 15, 15, 2)).astype(np.float32)
    w = np.ones(15)
    w[0], w[-1] = 0.5, 1.5
    w /= 15
    want = np.einsum("i,j,ijc->c", w, w, maps[0])
    got = np.asarray(lp.roi_align_average(maps, np.asarray([[0, 0, 1, 1]], np.float32), offset=0.0))[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(got, maps[0].mean(axis=(0, 1)), atol=1e-3)


def test_topk_to_dense_round_trip():
    rng = np.random.default_rng(4)
    dense = rng.uniform(size=(2, 3, 4, 10)).astype(np.float32)
    order = np.argsort(-dense, axis=-1)[..., :3]  # [B, h, w, k]
    scores = np.take_along_axis(dense, order, axis=-1)
    to_bkhw = lambda a: np.moveaxis(a, -1, 1)
    want = np.zeros_like(dense)
    np.put_along_axis(want, order, scores, axis=-1)
    got_int = np.asarray(lp.topk_to_dense(to_bkhw(scores), to_bkhw(order).astype(np.int32), 10))
    got_float = np.asarray(lp.topk_to_dense(to_bkhw(scores), to_bkhw(order).astype(np.float32), 10))
    np.testing.assert_array_equal(got_int, want)
    np.testing.assert_array_equal(got_float, want)


def test_topk_to_dense_duplicates_overwrite_and_out_of_range_dropped():
    scores = np.asarray([1.0, 2.0, 5.0, 7.0], np.float32).reshape(1, 4, 1, 1)
    ids = np.asarray([3, 3, 9, -1], np.int32).reshape(1, 4, 1, 1)
    got = np.asarray(lp.topk_to_dense(scores, ids, 5))[0, 0, 0]
    np.testing.assert_array_equal(got, [0, 0, 0, 2.0, 0])  # later 3 wins; 9 and -1 are not classes


def test_transpose_boxes_equals_pooling_the_transposed_map():
    rng = np.random.default_rng(5)
    boxes = _random_boxes(rng, 4)
    maps = rng.normal(size=(len(boxes), 6, 6, 3)).astype(np.float32)
    got = np.asarray(lp.label_pooling(maps, boxes, transpose_boxes=True))
    want = np.asarray(lp.label_pooling(np.swapaxes(maps, 1, 2), boxes))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(got, np.asarray(lp.label_pooling(maps, boxes)), atol=1e-3)


def test_flip_boxes_pools_the_mirrored_region():
    """Pooling the flipped map with a box equals pooling the map with the mirrored box: exact for the
    half-pixel convention (offset 0.5), where cell i mirrors to cell w - 1 - i."""
    w = 6
    maps = np.zeros((2, 4, w, 2), np.float32)
    maps[:, :, :2, 0] = 4.0  # class 0 lives on the left
    maps[:, :, 3:, 1] = 2.0  # class 1 on the right
    maps += np.random.default_rng(6).normal(scale=0.1, size=maps.shape).astype(np.float32)
    boxes = np.asarray([[0.1, 0.0, 0.9, 0.35], [0.2, 0.55, 0.8, 1.0]], np.float32)
    flipped = np.asarray([True, True])
    mirrored = np.asarray(lp.flip_boxes(boxes, flipped))
    np.testing.assert_allclose(mirrored, [[0.1, 0.65, 0.9, 1.0], [0.2, 0.0, 0.8, 0.45]], atol=1e-6)
    got = np.asarray(lp.label_pooling(maps, mirrored))
    want = np.asarray(lp.label_pooling(maps[:, :, ::-1], boxes))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # A left box of the flipped image is the right of the map: class 1 wins, and vice versa.
    assert got[0].argmax() == 1 and got[1].argmax() == 0
    np.testing.assert_array_equal(np.asarray(lp.flip_boxes(boxes, np.asarray([False, True])))[0], boxes[0])


def test_label_pooling_jits():
    rng = np.random.default_rng(7)
    maps = rng.normal(size=(3, 5, 5, 4)).astype(np.float32)
    boxes = _random_boxes(rng, 2)[:3]
    eager = np.asarray(lp.label_pooling(maps, boxes, transpose_boxes=True))
    jitted = jax.jit(lambda m, b: lp.label_pooling(m, b, transpose_boxes=True))(jnp.asarray(maps), boxes)
    np.testing.assert_allclose(np.asarray(jitted), eager, rtol=1e-6, atol=1e-7)


def test_errors_name_the_argument():
    maps = np.zeros((2, 3, 3, 4), np.float32)
    with pytest.raises(ValueError, match="label_pooling.roi_align_average: boxes"):
        lp.roi_align_average(maps, np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="num_classes"):
        lp.topk_to_dense(np.zeros((1, 2, 3, 3)), np.zeros((1, 2, 3, 3), np.int32), 0)
    with pytest.raises(ValueError, match="transpose_boxes needs square"):
        lp.label_pooling(
            np.zeros((1, 3, 4, 2), np.float32), np.zeros((1, 4), np.float32), transpose_boxes=True
        )
