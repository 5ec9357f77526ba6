"""Batches from a `Dataset`: a grain index sampler (global shuffle by seed, reshuffled each epoch) plus
host-side gathering of images and dense targets, prefetched on a background thread.

Batch `s` of a run is a pure function of `(seed, s)`, so a resumed run continues with the next unseen
batch: the data position is the train step itself. Every process gathers only its own rows of each global
batch (`parallel.process_slice`).
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterator

import grain
import numpy as np

from mlrelabel import parallel


class IndexSampler:
    """Global batches of example indices: epoch `e` is a grain shuffle (by `seed`) of `range(n)`.

    Each epoch drops its last partial batch (`steps_per_epoch = n // batch_size`), so epochs never straddle.
    """

    def __init__(self, num_examples: int, batch_size: int, seed: int, shuffle: bool = True):
        if batch_size > num_examples:
            raise ValueError(f'batch_size={batch_size} exceeds the {num_examples} training examples')
        self.num_examples = num_examples
        self.batch_size = batch_size
        ds = grain.MapDataset.range(num_examples)
        if shuffle:
            ds = ds.shuffle(seed=seed)
        self._order = ds.repeat()
        self.steps_per_epoch = num_examples // batch_size

    def global_indices(self, step: int) -> np.ndarray:
        """`[batch_size]` int64 example indices of global batch `step`."""
        epoch, within = divmod(step, self.steps_per_epoch)
        start = epoch * self.num_examples + within * self.batch_size
        return np.fromiter(
            (self._order[i] for i in range(start, start + self.batch_size)), np.int64, self.batch_size
        )


def gather(dataset, indices: np.ndarray, labels=None) -> dict:
    """Host batch for `indices`: `image` uint8, `index` int32 and the label source's arrays.

    A label source is a `LabelTable` (→ `target [B, C]` multi-hot float32) or any object with
    `batch(indices) -> dict of arrays` (e.g. label maps), whose arrays join the batch.
    """
    table = dataset.labels if labels is None else labels
    out = {'image': np.asarray(dataset.images[indices]), 'index': indices.astype(np.int32)}
    out.update(table.batch(indices) if hasattr(table, 'batch') else {'target': table.dense(indices)})
    return out


def train_batches(
    dataset, sampler: IndexSampler, start_step: int, end_step: int, prefetch: int = 2, labels=None
) -> Iterator[dict]:
    """Yields this process's share of global batches `start_step .. end_step - 1`; targets come from
    `labels` (a label source, default `dataset.labels`)."""
    rows = parallel.process_slice(sampler.batch_size)
    return _prefetch(
        (gather(dataset, sampler.global_indices(s)[rows], labels) for s in range(start_step, end_step)),
        prefetch,
    )


def eval_batches(
    num_examples: int,
    batch_size: int,
    fetch: Callable[[np.ndarray], dict],
    prefetch: int = 2,
    start: int = 0,
) -> Iterator[tuple[dict, int]]:
    """Sequential batches covering `range(start, num_examples)`; the last is padded by repeating row 0.

    Yields `(batch, num_valid)` where `batch` holds this process's rows and `mask [B]` (1 = real row).
    `fetch(indices)` builds the host batch. `start` (a multiple of `batch_size`) resumes a pass.
    """
    rows = parallel.process_slice(batch_size)
    first = start

    def make():
        for start in range(first, num_examples, batch_size):
            idx = np.arange(start, start + batch_size)
            valid = idx < num_examples
            idx = np.where(valid, idx, 0)[rows]
            batch = fetch(idx)
            batch['mask'] = valid[rows].astype(np.float32)
            yield batch, int(valid.sum())

    return _prefetch(make(), prefetch)


def _prefetch(iterator: Iterator, size: int) -> Iterator:
    """Runs `iterator` on a daemon thread, `size` items ahead; re-raises its errors in the consumer."""
    if size <= 0:
        yield from iterator
        return
    q: queue.Queue = queue.Queue(maxsize=size)
    done = object()
    stop = threading.Event()

    def work():
        try:
            for item in iterator:
                if stop.is_set():
                    return
                q.put(item)
            q.put(done)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            q.put(e)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
