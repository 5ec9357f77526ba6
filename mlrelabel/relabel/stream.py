"""The relabel pass over a dataset: crops → confidence → evidence per image, streamed and resumable.

`score_images` streams `images[rows]` through the jitted score function of `relabel.score` (sharded over the
mesh like training) and keeps a compact record per image: the `record_topk` classes with the highest evidence
and, for those, the evidence (float32 log-odds; never float16, which saturates) and the Monte-Carlo std, plus
the per-image mutual information and entropy. `dense_evidence` turns any chunk of rows back into `[R, C]`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any

import jax
import numpy as np

from mlrelabel import parallel
from mlrelabel.data import pipeline
from mlrelabel.io_utils import atomic_save_npz
from mlrelabel.relabel import score

RECORD_FIELDS = ('classes', 'log_odds', 'std', 'mutual_information', 'entropy')
# A merged record (`merge_records`) also holds 'models': how many models' evidence it averages (absent: one).


def record_models(record: dict) -> int:
    """How many independently trained models a record's evidence averages: its vote in `RoundEvidence`."""
    return int(record.get('models', 1))


def dense_evidence(record: dict, num_classes: int, rows=None, field: str = 'log_odds') -> np.ndarray:
    """`[R, C]` float32 from the compact top-k record.

    Classes outside an image's top-k get that image's lowest recorded value (they scored below it): for
    log-odds evidence that is an upper bound on their true value, and it never creates a positive.
    """
    classes = record['classes'] if rows is None else record['classes'][rows]
    values = record[field] if rows is None else record[field][rows]
    values = values.astype(np.float32)
    fill = values.min(axis=1, keepdims=True) if field == 'log_odds' else np.zeros_like(values[:, :1])
    out = np.broadcast_to(fill, (classes.shape[0], num_classes)).copy()
    np.put_along_axis(out, classes.astype(np.int64), values, axis=1)
    return out


def load_record(path: str) -> dict:
    with np.load(path) as saved:
        return {name: saved[name] for name in saved.files}


def finished_record(path: str, n: int):
    """`(record, first)` saved at `path` once all `n` images were scored (see `score_images`), else None."""
    if not os.path.exists(path):
        return None
    saved = load_record(path)
    if int(saved['done']) != n:
        return None
    first = {'boxes': saved['first_boxes'], 'crop_log_odds': saved['first_crop_log_odds']}
    record = {name: saved[name] for name in RECORD_FIELDS}
    if 'models' in saved:  # only merged records hold it (`merge_records`)
        record['models'] = saved['models']
    return record, first


def save_record(path: str, record: dict, first: dict, done: int) -> None:
    """Writes `record` (its first `done` images scored) and the first batch's crops to `path`, atomically."""
    atomic_save_npz(
        path,
        done=np.asarray(done),
        first_boxes=first['boxes'],
        first_crop_log_odds=first['crop_log_odds'],
        **record,
    )


def evidence_path(workdir: str, k: int, split: str) -> str:
    """Where round k's relabel pass stores its evidence record of `split` ('train' | 'val')."""
    return os.path.join(workdir, f'round_{k}', f'evidence_{split}.npz')


def member_path(workdir: str, k: int, split: str, member: int) -> str:
    """Where model `member` of round k-1 (`relabel.round0_models` > 1) stores its own record of `split`."""
    return os.path.join(workdir, f'round_{k}', 'models', f'evidence_{split}_{member}.npz')


def merge_records(records: list, num_classes: int, chunk: int = 65536) -> dict:
    """One record whose evidence is the mean over `records` (several models scoring the same images, one record
    each), and whose 'models' says how many models that mean holds.

    Log-odds, Monte-Carlo std, mutual information and entropy are averaged; each image keeps the top-k classes of
    the mean (k as in the inputs). Classes outside a model's top-k enter the mean at that model's fill value (see
    `dense_evidence`), exactly as a round outside the top-k enters `RoundEvidence`. Rows go `chunk` at a time,
    so nothing of size N × C is held.
    """
    if not records:
        raise ValueError('merge_records: no records to merge')
    if any(record_models(r) != 1 for r in records):
        raise ValueError('merge_records: expected one record per model, got a record that is already a merge')
    n, topk = records[0]['classes'].shape
    out = {name: np.empty_like(records[0][name]) for name in RECORD_FIELDS}
    for start in range(0, n, chunk):
        rows = np.arange(start, min(start + chunk, n))
        mean = {
            field: np.mean([dense_evidence(r, num_classes, rows, field) for r in records], axis=0)
            for field in ('log_odds', 'std')
        }
        # Ties (a class at a record's fill value ties with that record's last class) go to the classes that more
        # records hold: one record merges to itself.
        held = np.zeros((len(rows), num_classes), np.int32)
        for r in records:
            mask = np.zeros_like(held)
            np.put_along_axis(mask, r['classes'][rows].astype(np.int64), 1, axis=1)
            held += mask
        order = np.lexsort((-held, -mean['log_odds']), axis=1)[:, :topk]
        out['classes'][rows] = order
        for field in ('log_odds', 'std'):
            out[field][rows] = np.take_along_axis(mean[field], order, 1)
    for field in ('mutual_information', 'entropy'):
        out[field] = np.mean([r[field] for r in records], axis=0).astype(records[0][field].dtype)
    out['models'] = np.asarray(len(records), np.int32)
    return out


def add_record(evidence, record: dict, num_classes: int) -> None:
    """Appends one round's `record` to a `RoundEvidence`, densified lazily, rows at a time, with one vote per
    model it averages (`record_models`)."""
    evidence.add(lambda rows: dense_evidence(record, num_classes, rows), record_models(record))


@dataclasses.dataclass(frozen=True)
class StreamOptions:
    """How the relabel pass streams a split (`config.relabel` and `config.data`).

    score: how each batch is scored (`score.ScoreOptions`).
    batch_size: images per batch (a multiple of the mesh's data axis).
    record_topk: the evidence kept per image: its top-k classes (0: all).
    save_every_batches: with a record path, progress is saved this often (and at the end).
    """

    score: score.ScoreOptions
    batch_size: int = 64
    record_topk: int = 20
    save_every_batches: int = 50

    @classmethod
    def from_config(cls, config) -> 'StreamOptions':
        rc = config.relabel
        return cls(
            score=score.ScoreOptions.from_config(config),
            batch_size=rc.batch_size,
            record_topk=rc.record_topk,
            save_every_batches=rc.save_every_batches,
        )


@dataclasses.dataclass(frozen=True)
class ScorePass:
    """What one relabel pass scores with: the model and its `head` ('softmax' | 'sigmoid'), the options, the
    device mesh and the key (batch b uses `fold_in(key, b)`)."""

    model: Any
    head: str
    options: StreamOptions
    mesh: Any
    key: Any


def score_images(scorer: ScorePass, variables, images, rows, *, record_path=None, desc=None):
    """Evidence record of `images[rows]` (see the module docstring) scored by `scorer` with `variables`, and the
    first batch's crops.

    Returns `(record, first)`: `record` maps RECORD_FIELDS to arrays over `len(rows)` images; `first` holds the
    first batch's `boxes [b, K, 4]` and per-crop evidence `crop_log_odds [b, K, C]` (for the examples figure).
    With `record_path`, progress is saved every `save_every_batches` batches and at the end, and a
    restarted pass resumes from there (batch b always uses key `fold_in(key, b)`, so results are identical).
    """
    opts, mesh = scorer.options, scorer.mesh
    n, bs = len(rows), opts.batch_size
    parallel.check_batch_size(bs, mesh, 'config.relabel.batch_size')
    finished = finished_record(record_path, n) if record_path else None
    if finished:
        return finished
    fn = _jitted_score_fn(scorer.model, scorer.head, opts.score, mesh)
    num_classes = scorer.model.num_classes
    topk = min(opts.record_topk or num_classes, num_classes)
    record = _empty_record(n, topk, num_classes)
    done, first = _resume(record_path, record)
    num_batches = -(-n // bs)
    start_batch = done // bs
    fetch = lambda idx: {'image': np.asarray(images[rows[idx]])}  # noqa: E731
    bar = parallel.progress_bar(n, desc, 'img', initial=done) if desc else None

    def consume(b, out, valid):
        """Copies batch b's outputs into the record (and saves progress); runs while batch b + 1 computes."""
        nonlocal first, done
        out = jax.device_get(out) if jax.process_count() == 1 else _allgather(out)
        _store_batch(record, out, slice(b * bs, b * bs + valid), topk)
        if first is None:
            first = {
                'boxes': np.asarray(out['boxes'])[:valid],
                'crop_log_odds': np.asarray(out['crop_log_odds'], np.float32)[:valid],
            }
        done = b * bs + valid
        if bar is not None:
            bar.update(valid)
        last = b + 1 == num_batches
        if record_path and parallel.is_main_process() and ((b + 1) % opts.save_every_batches == 0 or last):
            save_record(record_path, record, first, done)

    pending = None  # one batch in flight: the device scores batch b while the host stores batch b - 1
    for b, (batch, valid) in enumerate(pipeline.eval_batches(n, bs, fetch, start=start_batch * bs)):
        b += start_batch
        out = fn(variables, parallel.host_to_global(batch['image'], mesh), jax.random.fold_in(scorer.key, b))
        if pending is not None:
            consume(*pending)
        pending = (b, out, valid)
    if pending is not None:
        consume(*pending)
    if bar is not None:
        bar.close()
    return record, first


def _empty_record(n: int, topk: int, num_classes: int) -> dict:
    """A record of `n` images with `topk` classes each, all zeros."""
    return {
        'classes': np.zeros((n, topk), np.int16 if num_classes < 2**15 else np.int32),
        'log_odds': np.zeros((n, topk), np.float32),
        'std': np.zeros((n, topk), np.float32),
        'mutual_information': np.zeros(n, np.float32),
        'entropy': np.zeros(n, np.float32),
    }


def _resume(record_path, record: dict):
    """`(done, first)` of a partly saved pass at `record_path`, its rows copied into `record`; `(0, None)`
    without one."""
    if not (record_path and os.path.exists(record_path)):
        return 0, None
    saved = load_record(record_path)
    done = int(saved['done'])
    for name in record:
        record[name][:done] = saved[name][:done]
    return done, {'boxes': saved['first_boxes'], 'crop_log_odds': saved['first_crop_log_odds']}


def _store_batch(record: dict, out: dict, sl: slice, topk: int) -> None:
    """Writes one batch's score outputs (host arrays, padded past the `sl` rows) into `record[sl]`."""
    valid = sl.stop - sl.start
    evidence = np.asarray(out['log_odds'], np.float32)[:valid]
    order = np.argsort(-evidence, axis=1, kind='stable')[:, :topk]
    record['classes'][sl] = order
    record['log_odds'][sl] = np.take_along_axis(evidence, order, 1)
    record['std'][sl] = np.take_along_axis(np.asarray(out['std'])[:valid], order, 1)
    record['mutual_information'][sl] = np.asarray(out['mutual_information'])[:valid]
    record['entropy'][sl] = np.asarray(out['entropy'])[:valid]


@functools.lru_cache(maxsize=8)
def _jitted_score_fn(model, head: str, options: score.ScoreOptions, mesh):
    """The jitted score function, built once per model, head, score options and mesh: the rounds, splits and
    the review reuse it instead of tracing it again."""
    score_fn = score.make_score_fn(model, head, options)
    rep, dat = parallel.replicated(mesh), parallel.data_sharding(mesh)
    return jax.jit(score_fn, in_shardings=(rep, dat, rep), out_shardings=dat)


def _allgather(tree):
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree, tiled=True)
