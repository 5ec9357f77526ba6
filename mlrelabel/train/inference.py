"""Inference of a trained model outside the training loop: what `mlrelabel.load_run` and predict use.

`restore_latest` reads a checkpoint onto this machine whatever it was trained on, `checkpoint.assert_finite` refuses a
diverged model, `prepare_images` sizes arbitrary images like training images from files, and `Predictor`
computes logits in batches with a function compiled once (per batch-size bucket) and reused across calls.
"""

from __future__ import annotations

import os

import jax
import numpy as np

from mlrelabel.train.step import make_predict_step


class Predictor:
    """One model's logits for batches of images: jitted once, every batch padded to a fixed bucket size
    (`batch_size` for full batches, the next power of two >= 8 for a short last one) so shapes repeat.

    `fn(variables, images uint8 [B, H, W, 3]) -> [B, ...]` replaces the logits (e.g. the relabel rounds' crop
    evidence, `mlrelabel.label_sets`); `model` is then unused."""

    def __init__(self, model, variables, mean, std, batch_size: int, step: int, fn=None):
        self.step = step
        self.batch_size = batch_size
        self.variables = jax.device_put(variables)
        self._fn = jax.jit(
            fn if fn is not None else make_predict_step(model, mean=tuple(mean), std=tuple(std))
        )

    def __call__(self, images: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            size = (
                self.batch_size
                if len(chunk) == self.batch_size
                else min(self.batch_size, max(8, 1 << (len(chunk) - 1).bit_length()))
            )
            padded = np.zeros((size, *chunk.shape[1:]), np.uint8)
            padded[: len(chunk)] = chunk
            out.append(np.asarray(self._fn(self.variables, padded))[: len(chunk)])
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 0), np.float32)


def restore_latest(directory: str) -> tuple[dict, int]:
    """The train-state tree of the latest step in an Orbax directory, as host numpy arrays, and the step."""
    import orbax.checkpoint as ocp

    if not os.path.isdir(directory) or not any(n.isdigit() for n in os.listdir(directory)):
        raise FileNotFoundError(f'{directory}: no checkpoint')
    registry = ocp.handlers.DefaultCheckpointHandlerRegistry()  # lets Orbax read the metadata quietly
    registry.add('state', ocp.args.StandardRestore, ocp.StandardCheckpointHandler)
    registry.add('meta', ocp.args.JsonRestore, ocp.JsonCheckpointHandler)
    manager = ocp.CheckpointManager(os.path.abspath(directory), handler_registry=registry)
    try:
        step = manager.latest_step()
        # Restore onto this machine's first device whatever the run was trained on (GPUs, several hosts).
        device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        abstract = jax.tree.map(
            lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
            manager.item_metadata(step)['state'],
        )
        state = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))
    finally:
        manager.close()
    state = state['state']
    return jax.tree.map(np.asarray, state), int(step)


def prepare_images(images, size: int) -> np.ndarray:
    """`[N, size, size, 3]` uint8 from uint8 `[N, H, W, 3]` (or a list of `[H, W, 3]`), resized and centre-
    cropped like training images read from files (`mlrelabel.data.sources.resize_and_crop`)."""
    from mlrelabel.data.sources import resize_and_crop

    if isinstance(images, (list, tuple)):
        items = [np.asarray(im) for im in images]
    else:
        items = np.asarray(images)
        if items.ndim != 4:
            raise ValueError(f'images: expected uint8 [N, H, W, 3], got shape {items.shape}')
    for i, image in enumerate(items):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f'images[{i}]: expected uint8 [H, W, 3], got {image.dtype} {image.shape}')
    if isinstance(items, np.ndarray) and items.shape[1:3] == (size, size):
        return items
    if not len(items):
        return np.zeros((0, size, size, 3), np.uint8)
    return np.stack([resize_and_crop(im, size) for im in items])
