"""Inference of a trained model: `predict` over a dataset's images (validation, label hooks, priors; its jitted
pass is built once per model and mesh), and what `mlrelabel.load_run` and predict use outside a run.

`restore_latest` reads a checkpoint onto this machine whatever it was trained on, `checkpoint.assert_finite` refuses a
diverged model, `prepare_images` sizes arbitrary images like training images from files, and `Predictor`
computes logits in batches with a function compiled once (per batch-size bucket) and reused across calls.
"""

from __future__ import annotations

import functools
import os

import jax
import numpy as np
from jax.experimental import multihost_utils
from tqdm.auto import tqdm

from mlrelabel import parallel
from mlrelabel.data import pipeline
from mlrelabel.train.step import make_predict_step


class Predictor:
    """Outputs of `fn(variables, images uint8 [B, H, W, 3]) -> [B, ...]` for batches of images: jitted once,
    every batch padded to a fixed bucket size (`batch_size` for full batches, the next power of two >= 8 for
    a short last one) so shapes repeat. `step`: the checkpoint step of `variables`. `Predictor.of_model` gives
    a model's logits; other `fn`s replace them (e.g. the relabel rounds' crop evidence, `mlrelabel.relabel.label_sets`)."""

    def __init__(self, fn, variables, batch_size: int, step: int):
        self.step = step
        self.batch_size = batch_size
        self.variables = jax.device_put(variables)
        self._fn = jax.jit(fn)

    @classmethod
    def of_model(cls, model, variables, mean, std, batch_size: int, step: int) -> Predictor:
        """The `Predictor` of `model`'s logits on images normalised by `mean`, `std`."""
        return cls(make_predict_step(model, mean=tuple(mean), std=tuple(std)), variables, batch_size, step)

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
    """`[N, size, size, 3]` uint8 from uint8 `[N, H, W, 3]` (or a list of `[H, W, 3]` arrays or image paths; float
    images in [0, 1] are scaled to uint8 first), resized and centre-
    cropped like training images read from files (`mlrelabel.data.sources.resize_and_crop`)."""
    from mlrelabel.data.sources import resize_and_crop

    if isinstance(images, (str, os.PathLike)):
        raise ValueError(
            f'images: expected a sequence of images or image paths, got the single path {images!r}'
        )
    if isinstance(images, (list, tuple)):
        items = [_read_if_path(im) for im in images]
    else:
        items = np.asarray(images)
        if items.ndim != 4:
            raise ValueError(f'images: expected uint8 [N, H, W, 3], got shape {items.shape}')
    if isinstance(items, np.ndarray) and np.issubdtype(items.dtype, np.floating):
        items = _float_to_uint8(items, 'images')
    else:
        items = [
            _float_to_uint8(im, f'images[{i}]') if np.issubdtype(im.dtype, np.floating) else im
            for i, im in enumerate(items)
        ]
    for i, image in enumerate(items):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f'images[{i}]: expected uint8 [H, W, 3], got {image.dtype} {image.shape}')
    if isinstance(items, np.ndarray) and items.shape[1:3] == (size, size):
        return items
    if not len(items):
        return np.zeros((0, size, size, 3), np.uint8)
    return np.stack([resize_and_crop(im, size) for im in items])


def _read_if_path(item) -> np.ndarray:
    """An image array as given, or the file at a path decoded by `mlrelabel.read_image`."""
    if isinstance(item, (str, os.PathLike)):
        from mlrelabel.data.images import read_image

        return read_image(os.fspath(item))
    return np.asarray(item)


def _float_to_uint8(images: np.ndarray, name: str) -> np.ndarray:
    """Float images with values in [0, 1] (e.g. `mlrelabel.crop_evidence`'s crops) as uint8."""
    if images.size and (not np.isfinite(images).all() or images.min() < 0 or images.max() > 1):
        raise ValueError(f'{name}: float images must hold values in [0, 1]; got a value outside')
    return np.round(images * 255.0).astype(np.uint8)


@functools.lru_cache(maxsize=8)
def _predict_fn(model, mean: tuple, std: tuple, mesh):
    """The jitted forward pass, built once per model, normalisation and mesh: every evaluation, label hook
    and prediction of a run reuses it instead of tracing it again."""
    rep, dat = parallel.replicated(mesh), parallel.data_sharding(mesh)
    step = make_predict_step(model, mean=mean, std=std)
    return jax.jit(step, in_shardings=(rep, dat), out_shardings=dat)


def batched_outputs(fn, variables, images, rows: range, batch_size: int, mesh):
    """Yields `fn(variables, images[rows] as uint8 [B, H, W, 3])` batch by batch, as numpy pytrees without the
    padding of the last batch: the one batched inference stream of evaluation, label hooks and label maps.

    `fn` is jitted with the batch sharded over `mesh` (`in_shardings=(replicated, data)`); with several
    processes each batch's outputs are gathered from all of them."""
    offset, count = rows.start, len(rows)
    batches = pipeline.eval_batches(
        count, batch_size, lambda idx: {'image': np.asarray(images[offset + idx])}
    )
    for batch, valid in batches:
        out = fn(variables, parallel.host_to_global(batch['image'], mesh))
        if jax.process_count() > 1:
            out = multihost_utils.process_allgather(out, tiled=True)
        yield jax.tree.map(lambda a, valid=valid: np.asarray(a)[:valid], out)


def predict(model, variables, images, num_examples: int, cfg, *, mesh, desc: str | None = None) -> np.ndarray:
    """Logits `[N, C]` for `images[0..N-1]` (uint8, indexable by index arrays); `desc` shows a progress bar."""
    batch_size = cfg.eval.batch_size
    parallel.check_batch_size(batch_size, mesh, 'config.eval.batch_size')
    fn = _predict_fn(model, tuple(cfg.data.mean), tuple(cfg.data.std), mesh)
    outputs = batched_outputs(fn, variables, images, range(num_examples), batch_size, mesh)
    disable = desc is None or not parallel.is_main_process()
    total = -(-num_examples // batch_size)
    return np.concatenate(list(tqdm(outputs, total=total, desc=desc, disable=disable, leave=False)), axis=0)
