"""Helpers shared by the tests (fixtures live in conftest.py): the repository root, tree comparison and
small image files written to disk."""

import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def leaves_close(a, b, atol=1e-6, rtol=1e-5):
    import jax

    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    return all(np.allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=rtol) for x, y in zip(la, lb))


def write_image(path, value=0, size=8):
    """A flat `size` x `size` RGB image of grey level `value` (the format follows the file name)."""
    from PIL import Image

    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)


def write_photo(path, seed):
    """A 96-160 px photo-like JPEG (smooth gradients plus noise), distinct per seed."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    h, w = rng.integers(96, 160, size=2)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    image = np.stack([y, x, (x + y) / 2], -1) * rng.uniform(100, 255, 3) + rng.normal(0, 8, (h, w, 3))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path, quality=90)
