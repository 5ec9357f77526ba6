"""Batch augmentations (`mlrelabel.ops.augment`): mixup blends each example with its neighbour, zoom-out
shrinks each image onto a mean canvas."""

import numpy as np
import pytest


def test_mixup_blends_each_example_with_its_neighbour_and_keeps_it_the_larger_part():
    import jax
    import jax.numpy as jnp

    from mlrelabel.ops import augment

    images = jax.random.normal(jax.random.key(0), (4, 3, 3, 3))
    targets = jax.nn.one_hot(jnp.array([0, 1, 2, 3]), 5)
    weights = []
    for seed in range(8):
        mixed, mixed_targets = augment.mixup(jax.random.key(seed), images, targets, 0.4)
        lam = float(mixed_targets[1, 1])
        weights.append(lam)
        assert 0.5 <= lam <= 1.0
        # Example i is blended with example i - 1 (cyclically), images and targets alike.
        np.testing.assert_allclose(mixed[1], lam * images[1] + (1 - lam) * images[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(mixed[0], lam * images[0] + (1 - lam) * images[3], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(mixed_targets[1, 0], 1 - lam, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(mixed_targets.sum(-1), 1.0, rtol=1e-6)
    assert len(set(weights)) == 8  # a new weight per key
    again, _ = augment.mixup(jax.random.key(7), images, targets, 0.4)
    np.testing.assert_array_equal(again, mixed)


def test_zoom_out_shrinks_each_image_onto_a_mean_canvas_keeping_what_it_shows():
    import jax
    import jax.numpy as jnp

    from mlrelabel.ops import augment

    # Normalised images whose every pixel is 1 (mean colour = 0): a zoom by side z leaves about z^2 of the
    # canvas at 1 and the rest at 0.
    images = jnp.ones((64, 16, 16, 3), jnp.float32)
    out = augment.zoom_out(jax.random.key(0), images, 0.5, prob=1.0)
    area = np.asarray(out[..., 0].mean((1, 2)))
    assert out.shape == images.shape and area.min() >= 0.2 and area.max() <= 1.0 + 1e-5
    # A new side per image (whole pixels here: the canvas's edge pixels take the image's nearest value).
    assert (area < 0.999).mean() > 0.8 and len(np.unique(np.round(area, 3))) >= 5
    assert float(out.min()) >= -1e-6 and float(out.max()) <= 1.0 + 1e-5
    # Untouched images (prob 0) and a side of 1 return the input.
    np.testing.assert_allclose(augment.zoom_out(jax.random.key(1), images, 0.5, prob=0.0), images, atol=1e-6)
    np.testing.assert_allclose(augment.zoom_out(jax.random.key(1), images, 1.0, prob=1.0), images, atol=1e-5)
    # About half the images are zoomed at prob 0.5; the same key gives the same batch.
    half = augment.zoom_out(jax.random.key(2), images, 0.5, prob=0.5)
    zoomed = float((np.asarray(half[..., 0].mean((1, 2))) < 0.999).mean())
    assert 0.25 <= zoomed <= 0.75
    np.testing.assert_array_equal(half, augment.zoom_out(jax.random.key(2), images, 0.5, prob=0.5))
    # A photo-sized image: a bright object stays whole and shrinks by z^2 in area, z in [0.4, 1).
    photo = jnp.zeros((1, 224, 224, 3)).at[:, 100:124, 100:124].set(2.0)
    mass = 24 * 24 * 2.0
    for seed in range(4):
        small = augment.zoom_out(jax.random.key(seed), photo, 0.4, prob=1.0)[0, ..., 0]
        assert 0.16 * mass * 0.98 < float(small.sum()) < mass * 1.01
    with pytest.raises(ValueError, match='min_side'):
        augment.zoom_out(jax.random.key(0), images, 0.0)
