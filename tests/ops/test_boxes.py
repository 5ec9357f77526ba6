"""Box samplers (`mlrelabel.ops.boxes`): random boxes (range, area and ratio, determinism, vmap/jit, errors),
fixed-size, grid, tile and full boxes, and the dispatch by kind."""

import jax
import numpy as np
import pytest

from mlrelabel.ops import boxes as ops_boxes


def _check_valid(boxes):
    boxes = np.asarray(boxes)
    assert boxes.dtype == np.float32
    assert np.all(boxes >= 0.0) and np.all(boxes <= 1.0)
    assert np.all(boxes[..., 0] < boxes[..., 2]) and np.all(boxes[..., 1] < boxes[..., 3])


def _areas(boxes):
    boxes = np.asarray(boxes, np.float64)
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


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
