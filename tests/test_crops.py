"""Tests for mlrelabel.relabel.crops (box samplers, CAM proposals, crop extraction)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlrelabel.ops import boxes as ops_boxes
from mlrelabel.ops import crops as ops_crops
from mlrelabel.relabel import crops


def _check_valid(boxes):
    boxes = np.asarray(boxes)
    assert boxes.dtype == np.float32
    assert np.all(boxes >= 0.0) and np.all(boxes <= 1.0)
    assert np.all(boxes[..., 0] < boxes[..., 2]) and np.all(boxes[..., 1] < boxes[..., 3])


def _areas(boxes):
    boxes = np.asarray(boxes, np.float64)
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


# ---------------------------------------------------------------------------------------------- random


def test_random_boxes_default_range_valid_and_bounded():
    boxes = ops_boxes.random_boxes(jax.random.key(0), 3, 64)
    assert boxes.shape == (3, 64, 4)
    _check_valid(boxes)
    areas = _areas(boxes)
    assert areas.max() <= 1.0 + 1e-6
    # A side is clipped only when area > 3/4, and then the box keeps area >= 3/4: never below scale[0].
    assert areas.min() >= 0.08 - 1e-6


def test_random_boxes_area_and_ratio_when_boxes_fit():
    # Longest side sqrt(0.4 * 2) < 1: no clipping, so area and width/height must land exactly in range.
    boxes = np.asarray(ops_boxes.random_boxes(jax.random.key(1), 3, 200, scale=(0.1, 0.4), ratio=(1.0, 2.0)))
    _check_valid(boxes)
    areas = _areas(boxes)
    assert areas.min() >= 0.1 - 1e-5 and areas.max() <= 0.4 + 1e-5
    aspect = (boxes[..., 3] - boxes[..., 1]) / (boxes[..., 2] - boxes[..., 0])
    assert aspect.min() >= 1.0 - 1e-4 and aspect.max() <= 2.0 + 1e-4
    # The ranges are actually explored, not collapsed to one value; log-uniform ratio: median near sqrt(2).
    assert areas.max() - areas.min() > 0.25 and aspect.max() / aspect.min() > 1.8
    assert abs(np.median(aspect) - np.sqrt(2)) < 0.1


def test_random_boxes_deterministic_by_key_and_keys_differ():
    # Shapes shared with other tests keep the number of compilations small.
    a = ops_boxes.random_boxes(jax.random.key(7), 3, 64)
    b = ops_boxes.random_boxes(jax.random.key(7), 3, 64)
    c = ops_boxes.random_boxes(jax.random.key(8), 3, 64)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.allclose(np.asarray(a), np.asarray(c))
    # Different images get different boxes (per-image keys).
    assert not np.allclose(np.asarray(a[0]), np.asarray(a[1]))
    # Legacy uint32 keys work too.
    _check_valid(ops_boxes.random_boxes(jax.random.PRNGKey(0), 3, 64))


def test_random_boxes_vmap_and_jit():
    keys = jax.random.split(jax.random.key(2), 2)
    boxes = jax.jit(jax.vmap(lambda k: ops_boxes.random_boxes(k, 3, 64)))(keys)
    assert boxes.shape == (2, 3, 64, 4)
    _check_valid(boxes)
    np.testing.assert_allclose(
        np.asarray(boxes[1]), np.asarray(ops_boxes.random_boxes(keys[1], 3, 64)), atol=1e-7
    )


def test_random_boxes_rejects_bad_arguments():
    with pytest.raises(ValueError, match="scale"):
        ops_boxes.random_boxes(jax.random.key(0), 2, 3, scale=(0.5, 0.1))
    with pytest.raises(ValueError, match="num_crops"):
        ops_boxes.random_boxes(jax.random.key(0), 2, 0)
    with pytest.raises(ValueError, match="key"):
        ops_boxes.random_boxes(jax.random.split(jax.random.key(0), 2), 2, 3)


def test_fixed_size_boxes():
    boxes = np.asarray(ops_boxes.fixed_size_boxes(jax.random.key(3), 4, 16, size=(0.25, 0.5)))
    assert boxes.shape == (4, 16, 4)
    _check_valid(boxes)
    np.testing.assert_allclose(boxes[..., 2] - boxes[..., 0], 0.25, atol=1e-6)
    np.testing.assert_allclose(boxes[..., 3] - boxes[..., 1], 0.5, atol=1e-6)
    assert np.unique(boxes[..., 0]).size > 1  # positions vary
    with pytest.raises(ValueError, match="size"):
        ops_boxes.fixed_size_boxes(jax.random.key(3), 1, 1, size=1.5)


# ------------------------------------------------------------------------------------------------ grid


def _covered(boxes, resolution=64):
    centres = (np.arange(resolution) + 0.5) / resolution
    yy, xx = np.meshgrid(centres, centres, indexing="ij")
    covered = np.zeros_like(yy, dtype=bool)
    for y0, x0, y1, x1 in np.asarray(boxes):
        covered |= (yy >= y0) & (yy <= y1) & (xx >= x0) & (xx <= x1)
    return covered


def test_grid_boxes_default_count_full_image_and_coverage():
    grid = ops_boxes.grid_boxes()
    assert grid.shape == (10, 4)  # full image + 3x3 windows of side 0.5, stride 0.25
    _check_valid(grid)
    np.testing.assert_array_equal(grid[0], ops_boxes.FULL_BOX)
    np.testing.assert_allclose(np.unique(grid[1:, 0]), [0.0, 0.25, 0.5], atol=1e-7)
    assert _covered(grid[1:]).all()


@pytest.mark.parametrize("side, overlap, per_axis", [(0.5, 0.0, 2), (0.3, 0.5, 6), (0.4, 0.25, 3)])
def test_grid_boxes_single_scale_count_flush_and_coverage(side, overlap, per_axis):
    grid = ops_boxes.grid_boxes(scales=(side,), overlap=overlap)
    assert grid.shape == (per_axis**2, 4)
    _check_valid(grid)
    np.testing.assert_allclose(grid[..., 2] - grid[..., 0], side, atol=1e-6)
    assert np.isclose(grid[:, 2].max(), 1.0) and np.isclose(grid[:, 3].max(), 1.0)  # last window flush
    assert _covered(grid).all()
    stride = np.diff(np.unique(grid[:, 1]))
    assert np.all(stride <= side * (1 - overlap) + 1e-6)


def test_tile_boxes_and_full_boxes():
    tiled = ops_boxes.tile_boxes(ops_boxes.grid_boxes(), 3)
    assert tiled.shape == (3, 10, 4)
    np.testing.assert_array_equal(np.asarray(tiled[2]), ops_boxes.grid_boxes())
    full = ops_boxes.full_boxes(2, 3)
    assert full.shape == (2, 3, 4)
    np.testing.assert_array_equal(np.asarray(full), np.broadcast_to(ops_boxes.FULL_BOX, (2, 3, 4)))
    with pytest.raises(ValueError, match="overlap"):
        ops_boxes.grid_boxes(overlap=1.0)


# ------------------------------------------------------------------------------------------- proposals


def _two_spot_map():
    rng = np.random.default_rng(0)
    dense = rng.uniform(-0.1, 0.1, size=(2, 8, 8, 5)).astype(np.float32)
    dense[0, 1, 1, 2] = 5.0
    dense[0, 1, 2, 2] = 4.5  # shoulders of the first spot: not peaks, though above the second spot
    dense[0, 2, 1, 2] = 4.0
    dense[0, 6, 5, 4] = 3.0
    dense[1, 3, 4, 0] = 4.0
    dense[1, 7, 0, 1] = 6.0
    return dense


def test_proposals_centre_on_hot_spots_with_classes():
    boxes, classes = crops.proposal_boxes(_two_spot_map(), num_boxes=2, box_size=0.25)
    boxes, classes = np.asarray(boxes), np.asarray(classes)
    assert boxes.shape == (2, 2, 4) and classes.shape == (2, 2) and classes.dtype == np.int32
    _check_valid(boxes)
    centres = np.stack([(boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2], -1)
    cell = lambda i, j: [(i + 0.5) / 8, (j + 0.5) / 8]
    np.testing.assert_allclose(centres[0], [cell(1, 1), cell(6, 5)], atol=1e-6)
    np.testing.assert_array_equal(classes[0], [2, 4])
    # Image 1: the stronger spot first; the corner box is shifted inside, so it contains the centre.
    np.testing.assert_array_equal(classes[1], [1, 0])
    np.testing.assert_allclose(boxes[1, 0], [0.75, 0.0, 1.0, 0.25], atol=1e-6)
    np.testing.assert_allclose(centres[1, 1], cell(3, 4), atol=1e-6)


def test_proposals_exclude_class_and_box_shift():
    dense = _two_spot_map()
    boxes, classes = crops.proposal_boxes(dense, num_boxes=1, box_size=0.5, exclude_class=np.array([2, -1]))
    np.testing.assert_array_equal(np.asarray(classes)[:, 0], [4, 1])
    centre_6_5 = [6.5 / 8, 5.5 / 8]
    np.testing.assert_allclose(
        np.asarray(boxes)[0, 0], [0.5, centre_6_5[1] - 0.25, 1.0, centre_6_5[1] + 0.25], atol=1e-6
    )
    with pytest.raises(ValueError, match="exclude_class"):
        crops.proposal_boxes(dense, 1, exclude_class=np.array([1, 2, 3]))


def test_proposals_fill_when_few_peaks():
    # Increasing scores in row-major order (one 3x3 peak at the last cell, 15) plus a peak of 20 at (0, 0)
    # whose neighbour (0, 1) = 19 is not a peak: peaks first, then the remaining cells by score.
    dense = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    dense[0, 0, 0, 0], dense[0, 0, 1, 0] = 20.0, 19.0
    boxes, classes = crops.proposal_boxes(dense, num_boxes=4, box_size=0.25)
    starts = np.round(np.asarray(boxes)[0, :, :2] * 4).astype(int)
    np.testing.assert_array_equal(starts, [[0, 0], [3, 3], [0, 1], [3, 2]])
    np.testing.assert_array_equal(np.asarray(classes), 0)
    # More boxes than cells: the ranking repeats, shapes stay static.
    small = np.array([[[[1.0], [4.0]], [[2.0], [3.0]]]], np.float32)
    boxes, _ = crops.proposal_boxes(small, num_boxes=6, box_size=0.5)
    starts = np.round(np.asarray(boxes)[0, :, :2] * 2).astype(int)
    np.testing.assert_array_equal(starts, [[0, 1], [1, 1], [1, 0], [0, 0], [0, 1], [1, 1]])


def test_proposals_under_jit():
    dense = _two_spot_map()
    fn = jax.jit(lambda d: crops.proposal_boxes(d, num_boxes=2, box_size=0.25))
    boxes, classes = fn(dense)
    ref_boxes, ref_classes = crops.proposal_boxes(dense, num_boxes=2, box_size=0.25)
    np.testing.assert_allclose(np.asarray(boxes), np.asarray(ref_boxes))
    np.testing.assert_array_equal(np.asarray(classes), np.asarray(ref_classes))


# ------------------------------------------------------------------------------------------ extraction


def _image(n=2, size=16, channels=3):
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, size=(n, size, size, channels), dtype=np.uint8)


@pytest.mark.parametrize("antialias", [True, False])
def test_extract_full_box_and_aligned_box_are_exact(antialias):
    images = _image()
    boxes = np.array([[ops_boxes.FULL_BOX, [4 / 16, 8 / 16, 12 / 16, 1.0]]] * 2, np.float32)
    full = ops_crops.extract_crops(images, boxes[:, :1], 16, antialias=antialias)
    assert full.shape == (2, 1, 16, 16, 3) and full.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(full)[:, 0], images, atol=1e-3)
    part = ops_crops.extract_crops(images, boxes, 8, antialias=antialias)
    assert part.shape == (2, 2, 8, 8, 3)
    np.testing.assert_allclose(np.asarray(part)[:, 1], images[:, 4:12, 8:16], atol=1e-3)


def _bilinear_reference(image, top, left, extent, out):
    """Classic half-pixel bilinear resize (edge-clamped) of image[top:top+extent, left:left+extent]."""
    scale = extent / out
    coords = (np.arange(out) + 0.5) * scale - 0.5
    lo = np.floor(coords).astype(int)
    frac = coords - lo

    def axis_weights(offset, size):
        weights = np.zeros((out, size))
        for o in range(out):
            for index, weight in ((lo[o], 1 - frac[o]), (lo[o] + 1, frac[o])):
                weights[o, np.clip(offset + index, 0, size - 1)] += weight
        return weights

    wy, wx = axis_weights(top, image.shape[0]), axis_weights(left, image.shape[1])
    return np.einsum("oh,pw,hwc->opc", wy, wx, image.astype(np.float64))


def test_extract_upsampling_matches_numpy_bilinear():
    images = _image(n=1)
    # Pixels [2:6, 3:7] upsampled 2x, and a border box [12:16, 0:4] (exercises edge handling).
    boxes = np.array([[[2 / 16, 3 / 16, 6 / 16, 7 / 16], [12 / 16, 0.0, 1.0, 4 / 16]]], np.float32)
    out = np.asarray(ops_crops.extract_crops(images, boxes, 8))
    np.testing.assert_allclose(out[0, 0], _bilinear_reference(images[0], 2, 3, 4, 8), atol=1e-3)
    np.testing.assert_allclose(out[0, 1], _bilinear_reference(images[0], 12, 0, 4, 8), atol=1e-3)


def test_extract_downsampling_with_and_without_antialias():
    image = _image(n=1, size=8, channels=1).astype(np.float64)
    boxes = np.array([[ops_boxes.FULL_BOX]], np.float32)
    plain = np.asarray(ops_crops.extract_crops(image.astype(np.float32), boxes, 4, antialias=False))[0, 0]
    # Without antialias, halving samples exactly between pixel pairs: the 2x2 block mean.
    block_mean = image[0].reshape(4, 2, 4, 2, 1).mean(axis=(1, 3))
    np.testing.assert_allclose(plain, block_mean, atol=1e-3)
    # With antialias the triangle kernel is twice as wide: taps (1, 3, 3, 1) / 8, renormalised at borders.
    taps = np.zeros((4, 8))
    for o in range(4):
        for i in range(8):
            taps[o, i] = max(0.0, 1 - abs(2 * o + 0.5 - i) / 2)
    taps /= taps.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(taps[1, 1:5], [1 / 8, 3 / 8, 3 / 8, 1 / 8])
    smooth = np.asarray(ops_crops.extract_crops(image.astype(np.float32), boxes, 4, antialias=True))[0, 0]
    np.testing.assert_allclose(smooth, np.einsum("oh,pw,hwc->opc", taps, taps, image[0]), atol=1e-3)


def test_extract_random_crops_stay_in_value_range_under_jit():
    images = _image()

    @jax.jit
    def crop(key, images):
        boxes = ops_boxes.sample_boxes(key, "random", images.shape[0], 4, include_full_image=True)
        return ops_crops.extract_crops(images, boxes, 6)

    out = np.asarray(crop(jax.random.key(4), images))
    assert out.shape == (2, 4, 6, 6, 3) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 255.0
    with pytest.raises(ValueError, match="boxes"):
        ops_crops.extract_crops(images, np.zeros((3, 1, 4), np.float32), 4)


# ------------------------------------------------------------------------------------------ dispatcher


def test_sample_boxes_dispatch():
    key = jax.random.key(5)
    params = dict(scale=(0.1, 0.4), ratio=(1.0, 2.0))  # as in test_random_boxes_area_and_ratio_when_boxes_fit
    random = ops_boxes.sample_boxes(key, "random", 3, 200, include_full_image=True, **params)
    assert random.shape == (3, 200, 4)
    np.testing.assert_array_equal(np.asarray(random[:, 0]), np.broadcast_to(ops_boxes.FULL_BOX, (3, 4)))
    direct = np.asarray(ops_boxes.random_boxes(key, 3, 200, **params))
    np.testing.assert_array_equal(np.asarray(random[:, 1:]), direct[:, 1:])
    fixed = ops_boxes.sample_boxes(key, "fixed", 2, 3, size=0.5)
    np.testing.assert_allclose(_areas(fixed), 0.25, atol=1e-6)
    grid = ops_boxes.sample_boxes(key, "grid", 2, scales=(0.5,), overlap=0.0)
    np.testing.assert_array_equal(np.asarray(grid[1]), ops_boxes.grid_boxes((0.5,), 0.0))
    assert ops_boxes.sample_boxes(key, "full", 3).shape == (3, 1, 4)
    with pytest.raises(ValueError, match="num_crops"):
        ops_boxes.sample_boxes(key, "grid", 2, 5)
    with pytest.raises(ValueError, match="proposal_boxes"):
        ops_boxes.sample_boxes(key, "proposals", 2, 5)
    with pytest.raises(ValueError, match="kind"):
        ops_boxes.sample_boxes(key, "sliding", 2, 5)
    with pytest.raises(TypeError, match="random"):
        ops_boxes.sample_boxes(key, "random", 2, 5, size=0.3)
