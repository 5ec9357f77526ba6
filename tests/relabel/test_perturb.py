"""Test-time perturbations (`mlrelabel.relabel.perturb`): pure functions of the key, each image its own draw,
each component doing what its magnitude says, bad settings refused."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlrelabel.relabel import perturb

_perturb = jax.jit(perturb.perturb, static_argnames="cfg")


_OFF = dict(flip=0.0, scale=0.0, shift=0.0, brightness=0.0, contrast=0.0, noise=0.0)


def test_perturb_is_pure_and_random():
    images = jax.random.normal(jax.random.key(0), (3, 8, 8, 3))
    cfg = perturb.PerturbationConfig()
    a = _perturb(jax.random.key(1), images, cfg=cfg)
    assert a.shape == images.shape and a.dtype == jnp.float32
    np.testing.assert_array_equal(a, _perturb(jax.random.key(1), images, cfg=cfg))
    assert float(jnp.max(jnp.abs(a - _perturb(jax.random.key(2), images, cfg=cfg)))) > 1e-3
    assert float(jnp.max(jnp.abs(a - images))) > 1e-3
    # Each image gets its own draw: the same image repeated is perturbed differently.
    same = jnp.broadcast_to(images[:1], images.shape)
    b = _perturb(jax.random.key(1), same, cfg=cfg)
    assert float(jnp.max(jnp.abs(b[0] - b[1]))) > 1e-3


def test_perturb_components():
    images = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
    off = _OFF
    flipped = _perturb(jax.random.key(1), images, cfg=perturb.PerturbationConfig(**{**off, "flip": 1.0}))
    np.testing.assert_array_equal(flipped, images[:, :, ::-1])
    # Contrast is applied around the per-image mean, so the mean is kept.
    contrast = _perturb(jax.random.key(1), images, cfg=perturb.PerturbationConfig(**{**off, "contrast": 0.5}))
    np.testing.assert_allclose(contrast.mean(axis=(1, 2, 3)), images.mean(axis=(1, 2, 3)), atol=1e-5)
    # Brightness adds one constant per image.
    bright = _perturb(jax.random.key(1), images, cfg=perturb.PerturbationConfig(**{**off, "brightness": 0.3}))
    bright = bright - images
    assert float(jnp.max(jnp.abs(bright - bright[:, :1, :1, :1]))) < 1e-5
    assert float(jnp.max(jnp.abs(bright))) <= 0.3 + 1e-6
    with pytest.raises(ValueError, match="unknown field"):
        perturb.perturb(jax.random.key(1), images, {"rotate": 0.1})
    with pytest.raises(ValueError, match="flip"):
        perturb.PerturbationConfig(flip=1.5)
