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


def write_label_json(path, entries):
    """A CS570 label file at `path` (a pathlib.Path) listing `entries`, pairs (img_path, labels)."""
    import json

    path.write_text(json.dumps({'data': [{'img_path': p, 'labels': labels} for p, labels in entries]}))
    return path


def write_images(folder, n, start=0):
    """Images im{start}.png .. in `folder`, each its own grey level; returns their entries (name, [i % 3])."""
    for i in range(start, start + n):
        write_image(str(folder / f'im{i}.png'), 20 * i)
    return [(f'im{i}.png', [i % 3]) for i in range(start, start + n)]


def data_config(source, batch_size=2, **data):
    """The smoke recipe reading `source`, with the given `data.*` fields and training batch size."""
    from mlrelabel.config import base_config

    c = base_config('smoke')
    with c.unlocked():
        c.data.source = source
        c.train.batch_size = batch_size
        for k, v in data.items():
            c.data[k] = v
    return c


def load_module(path, name=None):
    """The Python file at `path` (relative to the repository root) imported as a module."""
    import importlib.util

    name = name or os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def recipe(name, variant=''):
    """configs/<name> (a file name such as 'mile.py') built for `variant`, as its file defines it."""
    return load_module(os.path.join('configs', name)).get_config(variant)
