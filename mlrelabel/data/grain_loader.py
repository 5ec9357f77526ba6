"""Training batches through a grain pipeline with JPEG decoding in worker processes (the ImageNet path).

    range(start_step, end_step)                 MapDataset of global step numbers
      .map(ReadBatch)                           step → this process's rows of global batch `step`
                                                (`IndexSampler.global_indices`: global shuffle by seed,
                                                 rows = ShardByJaxProcess shard) → decode (+ host augment)
      .to_iter_dataset().mp_prefetch(W)         W worker processes, each building whole batches
    main process: targets from the label source, failure count, then `parallel.host_to_global`.

Batch `s` is exactly `pipeline.train_batches`' batch `s` (same indices, same rows per process), so the
data position is still the train step: a resumed run rebuilds the pipeline from its checkpointed step and
continues with the next unseen batch. No grain iterator state needs saving; grain's own state for this
pipeline would be `{'next_index': step - start_step}`, which the step already determines.

With `host_augment` (`{'scale', 'ratio', 'flip'}`) workers take an Inception random-resized-crop (+ flip)
of the *full* decoded image at `image_size`, seeded by `(seed, step, global row)`, so augmentations are
also reproducible on resume and independent of the process count; the on-device augmentation should then
be off (`--config.train.augment.enabled=False`). Without it, workers produce the centre crops of
`EncodedImages` and augmentation stays on device (`train/augment.py`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator

import grain
import numpy as np
from absl import flags

from mlrelabel.data import imagenet_readers
from mlrelabel.data.pipeline import IndexSampler

__all__ = ['LoaderOptions', 'ReadBatch', 'GrainBatches', 'worker_batches', 'process_rows']

DEFAULT_THREADS = 16  # grain's default ReadOptions.num_threads


@dataclass(frozen=True)
class LoaderOptions:
    """How the grain loader reads and decodes.

    Fields:
      num_workers: grain worker processes (0 = threads of the main process).
      threads: batches each process builds at once (0 = `DEFAULT_THREADS`).
      prefetch: batches each process reads ahead of those (at least 1).
      host_augment: `{'scale', 'ratio', 'flip'}` for a random-resized-crop in the workers, or None.
      seed: seeds the host augmentation with `(seed, step, global row)`.
    """

    num_workers: int = 0
    threads: int = 0
    prefetch: int = 2
    host_augment: dict | None = None
    seed: int = 0


def process_rows(global_batch: int) -> slice:
    """This process's rows of a global batch: grain's `ShardByJaxProcess` shard (contiguous, equal), the
    same rows as `parallel.process_slice`."""
    shard = grain.sharding.ShardByJaxProcess()
    if global_batch % shard.shard_count:
        raise ValueError(f'global batch {global_batch} does not split over {shard.shard_count} processes')
    local = global_batch // shard.shard_count
    return slice(shard.shard_index * local, (shard.shard_index + 1) * local)


class ReadBatch:
    """Picklable grain map: global step → `{'image' [b, S, S, 3] uint8, 'index' [b] int32, 'ok' [b] bool}`.

    `ok` is False where a row failed to decode (its image is black). Runs in worker processes.
    """

    def __init__(
        self,
        images,
        sampler: IndexSampler,
        rows: slice,
        image_size: int,
        host_augment: dict | None = None,
        seed: int = 0,
    ):
        self.images, self.sampler, self.rows = images, sampler, rows
        self.image_size, self.host_augment, self.seed = int(image_size), host_augment, int(seed)
        if host_augment is not None and not isinstance(images, imagenet_readers.EncodedImages):
            raise TypeError('host_augment needs encoded images (FolderImages / TfdsImages)')

    def _augmented(self, step: int, row: int, index: int) -> tuple[np.ndarray, bool]:
        a = self.host_augment
        rng = np.random.default_rng([self.seed, step, row])
        try:
            image = imagenet_readers.decode_random_resized_crop(
                self.images.encoded(index),
                self.image_size,
                rng,
                tuple(a['scale']),
                tuple(a['ratio']),
                bool(a['flip']),
            )
            return image, True
        except Exception as e:  # noqa: BLE001 - counted, never fatal
            self.images.record_failure(index, e)
            return np.zeros((self.image_size, self.image_size, 3), np.uint8), False

    def __call__(self, step) -> dict:
        step = int(step)
        indices = self.sampler.global_indices(step)[self.rows]
        if self.host_augment is not None:
            pairs = [self._augmented(step, self.rows.start + r, int(i)) for r, i in enumerate(indices)]
            image = np.stack([p[0] for p in pairs])
            ok = np.asarray([p[1] for p in pairs])
        else:
            before = set(getattr(self.images, 'failures', ()))
            image = np.asarray(self.images[indices])
            failed = set(getattr(self.images, 'failures', ())) - before
            ok = np.asarray([int(i) not in failed for i in indices])
        return {'image': image, 'index': indices.astype(np.int32), 'ok': ok}


class GrainBatches:
    """Iterator over this process's batches `start_step .. end_step - 1` (see the module doc).

    Yields dicts with `image`, `index` and the label source's arrays (`target [b, C]` for a LabelTable), as
    `pipeline.train_batches`. `failed` lists the dataset rows that could not be decoded so far.
    """

    def __init__(
        self, dataset, sampler: IndexSampler, start_step: int, end_step: int, labels=None, options=None
    ):
        if not flags.FLAGS.is_parsed():  # grain reads its options from absl flags (parsed under main.py)
            flags.FLAGS.mark_as_parsed()
        options = LoaderOptions() if options is None else options
        self.labels = dataset.labels if labels is None else labels
        images = dataset.images
        image_size = images.shape[1]
        rows = process_rows(sampler.batch_size)
        read = ReadBatch(images, sampler, rows, image_size, options.host_augment, options.seed)
        # Each process (every worker, or the main process without workers) builds `threads` batches at once
        # (PIL releases the GIL while decoding) and reads at most `buffer_size` batches ahead of them: grain's
        # default read-ahead of 500 batches per process would fill the host's memory with a fast loader.
        threads, buffer_size = options.threads or DEFAULT_THREADS, max(1, options.prefetch)
        num_workers = options.num_workers
        read_options = grain.ReadOptions(num_threads=threads, prefetch_buffer_size=threads + buffer_size)
        ds = grain.MapDataset.range(start_step, end_step).map(read).to_iter_dataset(read_options)
        if num_workers > 0:
            ds = ds.mp_prefetch(
                grain.MultiprocessingOptions(num_workers=num_workers, per_worker_buffer_size=buffer_size)
            )
        else:
            ds = grain.experimental.ThreadPrefetchIterDataset(ds, prefetch_buffer_size=buffer_size)
        self._iter = iter(ds)
        self.failed: list[int] = []

    def __iter__(self) -> Iterator[dict]:
        return self

    def __next__(self) -> dict:
        batch = next(self._iter)
        ok = batch.pop('ok')
        if not ok.all():
            bad = batch['index'][~ok].tolist()
            self.failed += bad
            logging.warning(
                '%d images could not be decoded (rows %s); black images stand in (%d so far)',
                len(bad),
                bad[:10],
                len(self.failed),
            )
        table = self.labels
        idx = batch['index'].astype(np.int64)
        batch.update(table.batch(idx) if hasattr(table, 'batch') else {'target': table.dense(idx)})
        return batch


def worker_batches(
    dataset, sampler: IndexSampler, start_step: int, end_step: int, labels=None, options=LoaderOptions()
) -> GrainBatches:
    """`pipeline.train_batches` with decoding in grain worker processes or threads (see `LoaderOptions`)."""
    return GrainBatches(dataset, sampler, start_step, end_step, labels, options)
