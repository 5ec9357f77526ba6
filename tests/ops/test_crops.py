"""Crop extraction (`mlrelabel.ops.crops`): exact for whole and aligned boxes, bilinear up-sampling as
numpy's, anti-aliased down-sampling, random crops in range under jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlrelabel.ops import boxes as ops_boxes
from mlrelabel.ops import crops as ops_crops


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
