"""CutMix (Yun et al. 2019): box sampling, pixel-exact lam, pasting and target mixing."""

import jax
import numpy as np
import pytest

from mlrelabel.label_maps import cutmix


def test_lam_is_the_kept_pixel_fraction():
    height, width = 9, 13
    boxes, lam = cutmix.cutmix_boxes(jax.random.key(0), 64, 1.0, image_size=(height, width))
    mask = np.asarray(cutmix.cutmix_mask(boxes, height, width))
    kept = (~mask).sum(axis=(1, 2))
    np.testing.assert_array_equal(np.rint(np.asarray(lam) * height * width).astype(int), kept)
    np.testing.assert_allclose(np.asarray(lam), kept / (height * width), atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(cutmix.kept_fraction(boxes, height, width)), np.asarray(lam), atol=1e-6
    )
    # Snapped edges are whole pixels.
    b = np.asarray(boxes) * np.asarray([height, width, height, width])
    np.testing.assert_allclose(b, np.rint(b), atol=1e-4)
    assert 0 < kept.min() and (kept < height * width).any()


def test_boxes_in_unit_square_and_lam_is_the_clipped_area():
    boxes, lam = cutmix.cutmix_boxes(jax.random.key(1), 4096, 1.0)
    boxes, lam = np.asarray(boxes), np.asarray(lam)
    assert boxes.shape == (4096, 4) and lam.shape == (4096,)
    assert (boxes >= 0).all() and (boxes <= 1).all()
    assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    np.testing.assert_allclose(lam, 1 - area, atol=1e-6)
    # lam ~ U(0, 1) = Beta(1, 1) gives side s = sqrt(v), v ~ U(0, 1); a side of length s with a uniform centre
    # clipped to [0, 1] keeps s - s^2 / 4 on average, so E[1 - lam] = E[(s - s^2/4)^2]
    # = E[v - v^1.5 / 2 + v^2 / 16] = 1/2 - 1/5 + 1/48.
    assert lam.mean() == pytest.approx(1 - (0.5 - 0.2 + 1 / 48), abs=0.02)


def test_deterministic_by_key():
    a = cutmix.cutmix_boxes(jax.random.key(3), 8, 0.5)
    b = cutmix.cutmix_boxes(jax.random.key(3), 8, 0.5)
    c = cutmix.cutmix_boxes(jax.random.key(4), 8, 0.5)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert not np.array_equal(np.asarray(a[0]), np.asarray(c[0]))


def test_apply_cutmix_pastes_the_partner_inside_the_box():
    images = np.broadcast_to(np.arange(1, 4, dtype=np.uint8)[:, None, None, None] * 50, (3, 4, 6, 2)).copy()
    perm = np.asarray([2, 0, 1])
    # Image 0: rows 1..2, cols 3..5; image 1: nothing pasted; image 2: everything.
    boxes = np.asarray([[0.25, 0.5, 0.75, 1.0], [0.5, 0.5, 0.5, 0.9], [0, 0, 1, 1]], np.float32)
    out = np.asarray(cutmix.apply_cutmix(images, perm, boxes))
    assert out.dtype == np.uint8
    want = images.copy()
    want[0, 1:3, 3:6] = images[2, 1:3, 3:6]
    want[2] = images[1]
    np.testing.assert_array_equal(out, want)
    np.testing.assert_allclose(np.asarray(cutmix.kept_fraction(boxes, 4, 6)), [1 - 6 / 24, 1.0, 0.0])


def test_cutmix_targets_mix_by_lam():
    kept = np.asarray([[1, 0, 0], [0, 0.5, 0.5]], np.float32)
    pasted = np.asarray([[0, 0, 1], [1, 0, 0]], np.float32)
    got = np.asarray(cutmix.cutmix_targets(kept, pasted, np.asarray([0.75, 0.2], np.float32)))
    np.testing.assert_allclose(got, [[0.75, 0, 0.25], [0.8, 0.1, 0.1]], atol=1e-6)


def test_errors():
    with pytest.raises(ValueError, match="lam_alpha"):
        cutmix.cutmix_boxes(jax.random.key(0), 4, 0.0)
    with pytest.raises(ValueError, match="image_size"):
        cutmix.cutmix_boxes(jax.random.key(0), 4, 1.0, image_size=(8,))
    with pytest.raises(ValueError, match="cutmix.apply_cutmix: perm"):
        cutmix.apply_cutmix(np.zeros((2, 4, 4, 3)), np.zeros(3, np.int32), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="cutmix_targets"):
        cutmix.cutmix_targets(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros(3))
