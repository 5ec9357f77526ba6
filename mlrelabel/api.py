"""The relabel engine as array-level functions: your model, your scores, our crops and label rule.

Like cleanlab's functions over `pred_probs`, these take numpy arrays and small frozen option objects, never
a config or a dataset, so any model works: a PyTorch network in a lambda, a jitted JAX function, an sklearn
pipeline. One relabel round by hand:

    evidence = mlrelabel.crop_evidence(score_fn, train_images)          # [N, C] float32 log-odds
    held_out = mlrelabel.crop_evidence(score_fn, val_images)            # [M, C]
    result = mlrelabel.assign_labels(evidence, train_given, held_out, val_given)
    result.labels        # per training image its labels (the given one included)
    result.checks        # held-out checks; result.checks['keep_given']: the labels should not be used

Several rounds or models: average their evidence first (`average_evidence`, one vote per model), as the
command does. `assign_labels` is the function the command's rounds call (`mlrelabel.relabel.rule.assign_round`):
on the same evidence both give the same labels.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Sequence

import numpy as np

from mlrelabel.relabel import review as review_rows
from mlrelabel.relabel import rule
from mlrelabel.relabel.evidence import RoundEvidence
from mlrelabel.relabel.rule import AssignOptions

AGGREGATE_CHUNK = 256  # finished images aggregated at a time: memory grows with it, not with the dataset
__all__ = [
    'AssignOptions',
    'Assignment',
    'CropOptions',
    'assign_labels',
    'average_evidence',
    'crop_evidence',
    'window_boxes',
]


@dataclasses.dataclass(frozen=True)
class CropOptions:
    """Which crops of an image are scored, and how their scores become one evidence per class (the defaults
    are the main recipe's `config.relabel.crops` and `config.relabel.aggregate`).

    scales: window sides as fractions of the image's height and width; each scale's square window slides
      with stride `side * (1 - overlap)`, the last window flush with the border (`ops.boxes.grid_boxes`).
    overlap: in [0, 1).
    include_full_image: the whole image is always one of the windows.
    crop_size: S, the side every window is resized to (bilinear, antialiased) before `score_fn`. A network
      that takes any input size scores best at about 0.7 of its training size, as the recipe's windows are
      shown (BENCHMARKS.md: The array-level API with a run's round-0 model).
    aggregate: each class's evidence over an image's windows: 'top<k>' (the mean of its k best windows),
      'max' or 'mean'.
    batch_size: windows per `score_fn` call (the last batch is padded to it, so a jitted scorer compiles once).
    """

    scales: tuple = (1.0, 0.6, 0.45)
    overlap: float = 0.67
    include_full_image: bool = True
    crop_size: int = 224
    aggregate: str = 'top2'
    batch_size: int = 128

    def __post_init__(self):
        from mlrelabel.relabel.confidence import top_k_of

        if isinstance(self.crop_size, bool) or int(self.crop_size) < 1:
            raise ValueError(f'CropOptions.crop_size: expected a positive int, got {self.crop_size!r}')
        if isinstance(self.batch_size, bool) or int(self.batch_size) < 1:
            raise ValueError(f'CropOptions.batch_size: expected a positive int, got {self.batch_size!r}')
        if self.aggregate not in ('max', 'mean') and top_k_of(self.aggregate) is None:
            raise ValueError(
                f"CropOptions.aggregate: expected 'max', 'mean' or 'top<k>' (e.g. 'top2'), got {self.aggregate!r}"
            )
        window_boxes(self)  # checks scales and overlap


def window_boxes(options: CropOptions | None = None) -> np.ndarray:
    """The windows every image is cut into: `[K, 4]` float32 `(y0, x0, y1, x1)` fractions of the image's
    height and width (42 with the defaults, the whole image first)."""
    from mlrelabel.ops.boxes import FULL_BOX, grid_boxes

    options = options or CropOptions()
    try:
        boxes = grid_boxes(tuple(float(s) for s in options.scales), float(options.overlap))
    except (TypeError, ValueError) as e:
        raise ValueError(f'CropOptions.scales / overlap: {e}') from None
    if options.include_full_image and 1.0 not in tuple(float(s) for s in options.scales):
        boxes = np.concatenate([np.asarray([FULL_BOX], np.float32), boxes])
    return boxes


def crop_evidence(
    score_fn: Callable,
    images: Sequence,
    options: CropOptions | None = None,
    *,
    progress: bool = True,
) -> np.ndarray:
    """Each image's evidence per class from its crops: float32 log-odds `[N, C]`.

    Every image is cut into the windows of `window_boxes(options)`, each resized to `crop_size` x `crop_size`
    and scored by `score_fn`; each window's probabilities become log-odds, and each class's evidence is the
    mean of its `options.aggregate` best windows (the relabel recipe's 'top2').

    Args:
      score_fn: any callable from a float32 batch `[B, S, S, 3]` with values in [0, 1] (B =
        `options.batch_size`, S = `options.crop_size`) to class probabilities `[B, C]` (softmax or
        sigmoid outputs). Normalising for the model is the callable's business.
      images: a sequence of N uint8 `[H, W, 3]` arrays of any sizes, a uint8 `[N, H, W, 3]` array, or image
        paths (decoded by `mlrelabel.read_image`, as the tool's own sources are).
      options: the windows and their aggregation (`CropOptions`; None: the defaults).
      progress: show a progress bar with rate and ETA.

    Streams: only `options.batch_size` windows and one image are held at a time, besides the `[N, C]` output.

    Raises:
      ValueError: naming the argument, before any scoring: an image of zero size, not uint8 or without
        3 channels, a missing file; during scoring, naming the batch: `score_fn` returning another shape or
        class count, or probabilities that are not finite or outside [0, 1].
    """
    from mlrelabel import parallel

    options = options or CropOptions()
    _check_images(images)
    boxes = window_boxes(options)
    stream = _CropStream(score_fn, len(boxes), options)
    bar = parallel.progress_bar(len(images), 'crop evidence', 'img') if progress else None
    evidence = []  # [n, C] per chunk of finished images: their windows' scores are dropped once aggregated
    for i in range(len(images)):
        stream.add(_crops_of(_image_at(images, i), boxes, options.crop_size))
        if len(stream.outputs) >= AGGREGATE_CHUNK:
            evidence.append(_aggregate(stream, options.aggregate))
        if bar is not None:
            bar.update(1)
    stream.finish()
    if bar is not None:
        bar.close()
    evidence.append(_aggregate(stream, options.aggregate))
    return np.concatenate(evidence)


class _CropStream:
    """Feeds windows to `score_fn` in full batches of `options.batch_size` (the last one padded) and collects
    each image's `[K, C]` probabilities, checking every batch."""

    def __init__(self, score_fn, crops_per_image: int, options: CropOptions):
        self.score_fn, self.k, self.options = score_fn, crops_per_image, options
        self.pending: list = []
        self.scored: list = []
        self.outputs: list = []
        self.num_classes: int | None = None
        self.batches = 0

    def add(self, crops: np.ndarray) -> None:
        self.pending.extend(crops)
        while len(self.pending) >= self.options.batch_size:
            self._score(self.options.batch_size)

    def finish(self) -> None:
        while self.pending:
            self._score(min(len(self.pending), self.options.batch_size))

    def _score(self, count: int) -> None:
        size = self.options.crop_size
        batch = np.zeros((self.options.batch_size, size, size, 3), np.float32)
        batch[:count] = np.stack(self.pending[:count])
        del self.pending[:count]
        probs = self._checked(self.score_fn(batch))[:count]
        self.scored.extend(probs)
        while len(self.scored) >= self.k:
            self.outputs.append(np.stack(self.scored[: self.k]))
            del self.scored[: self.k]
        self.batches += 1

    def _checked(self, out) -> np.ndarray:
        first = self.batches * self.options.batch_size // self.k
        where = f'score_fn (batch {self.batches}, from image {first} on)'
        try:
            out = np.asarray(out, np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(
                f'{where}: expected class probabilities [B, C], got {type(out).__name__}: {e}'
            ) from None
        want = self.num_classes
        if out.ndim != 2 or out.shape[0] != self.options.batch_size or (want and out.shape[1] != want):
            expected = f'[{self.options.batch_size}, {want or "C"}]'
            raise ValueError(f'{where}: expected probabilities of shape {expected}, got {out.shape}')
        if not np.isfinite(out).all():
            raise ValueError(
                f'{where}: returned {int((~np.isfinite(out)).sum())} non-finite values (NaN or inf)'
            )
        if out.min() < -1e-6 or out.max() > 1 + 1e-6:
            raise ValueError(
                f'{where}: expected probabilities in [0, 1], got values in [{out.min():.4g}, {out.max():.4g}] '
                '(logits? apply softmax or sigmoid first)'
            )
        self.num_classes = out.shape[1]
        return np.clip(out, 0.0, 1.0)


def _aggregate(stream: _CropStream, how: str) -> np.ndarray:
    """`[n, C]` float32 evidence of the images `stream` has finished (their windows' log-odds aggregated by
    `how`), which it then forgets."""
    from mlrelabel.relabel.confidence import aggregate_crops
    from mlrelabel.relabel.evidence import to_log_odds

    if not stream.outputs:
        return np.zeros((0, stream.num_classes or 0), np.float32)
    log_odds = to_log_odds(np.stack(stream.outputs)).astype(np.float32)  # [n, K, C]
    stream.outputs.clear()
    return np.asarray(aggregate_crops(log_odds, how), np.float32)


def _check_images(images) -> None:
    """Every image a uint8 `[H, W, 3]` array of non-zero size or an existing file, before any work."""
    if isinstance(images, (str, os.PathLike)) or not hasattr(images, '__len__'):
        raise ValueError(
            f'images: expected a sequence of uint8 [H, W, 3] arrays or image paths, got {type(images).__name__}'
        )
    for i in range(len(images)):
        item = images[i]
        if isinstance(item, (str, os.PathLike)):
            if not os.path.isfile(item):
                raise ValueError(f'images[{i}]: no such image file: {os.fspath(item)!r}')
            continue
        shape, dtype = np.shape(item), getattr(item, 'dtype', None)
        if dtype != np.uint8 or len(shape) != 3 or shape[-1] != 3 or 0 in shape:
            raise ValueError(
                f'images[{i}]: expected a uint8 [H, W, 3] array with H, W > 0, got {dtype} of shape {shape}'
            )


def _image_at(images, i: int) -> np.ndarray:
    item = images[i]
    if isinstance(item, (str, os.PathLike)):
        from mlrelabel.data.images import read_image

        return read_image(os.fspath(item))
    return np.asarray(item)


def _crops_of(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """`[K, S, S, 3]` float32 in [0, 1]: each box of `image` resized to S x S (bilinear, antialiased)."""
    from PIL import Image

    h, w = image.shape[:2]
    pil = Image.fromarray(image)
    out = np.empty((len(boxes), size, size, 3), np.float32)
    for j, (y0, x0, y1, x1) in enumerate(boxes):
        region = (float(x0) * w, float(y0) * h, float(x1) * w, float(y1) * h)
        out[j] = np.asarray(pil.resize((size, size), Image.Resampling.BILINEAR, box=region), np.float32)
    return out / 255.0


def average_evidence(evidence: Sequence, votes: Sequence[float] | None = None) -> np.ndarray:
    """The mean of several rounds' or models' evidence `[N, C]` (log-odds), as the command averages it: each
    array weighted by its `votes` (the number of models it already averages; default one each)."""
    arrays = [np.asarray(e, np.float64) for e in evidence]
    if not arrays or any(a.ndim != 2 or a.shape != arrays[0].shape for a in arrays):
        raise ValueError(
            f'evidence: expected one or more arrays of one shape [N, C], got shapes {[a.shape for a in arrays]}'
        )
    votes = [1.0] * len(arrays) if votes is None else [float(v) for v in votes]
    if len(votes) != len(arrays) or not all(v > 0 and math.isfinite(v) for v in votes):
        raise ValueError(f'votes: expected {len(arrays)} positive numbers, got {votes!r}')
    rounds = RoundEvidence()
    for array, vote in zip(arrays, votes):
        rounds.add(lambda rows, array=array: array[rows], vote)
    return rounds.dense(np.arange(len(arrays[0])))


@dataclasses.dataclass(frozen=True)
class Assignment:
    """What `assign_labels` decided.

    labels: per training image, its labels (class ids, most evident first; the given label included).
    thresholds: `[C]` float32 log-odds each class's evidence must reach (+inf: the class adds no label);
      None for the 'topk' rule.
    checks: the truth-free checks on the held-out images: `heldout_given_recall`, `heldout_mixture_f1`,
      `heldout_addition_precision` (the additions' estimated precision; absent when nothing was added),
      `flags` (the guard's reasons not to trust the labels) and `keep_given` (True when flagged: keep the
      given labels instead).
    review: the ranked review rows (`review.csv`'s columns): each addition and each suspect given label.
    """

    labels: list
    thresholds: np.ndarray | None
    checks: dict
    review: list


def assign_labels(
    train_evidence,
    train_given,
    val_evidence,
    val_given,
    options: AssignOptions | None = None,
    *,
    class_names: Sequence[str] | None = None,
    paths: Sequence[str] | None = None,
) -> Assignment:
    """Labels for every training image from crop evidence and the given single labels, chosen without any
    multi-label truth (the command's label rule; `AssignOptions` for its settings).

    Args:
      train_evidence: `[N, C]` log-odds of the training images (`crop_evidence`, or an average over rounds).
      train_given: `[N]` int given label of each training image (-1: none).
      val_evidence: `[M, C]` log-odds of held-out images the scoring model never trained on.
      val_given: `[M]` int given labels of the held-out images; they set each class's floor and the checks.
      options: the rule's settings (`AssignOptions`; None: the main recipe's).
      class_names: `[C]` names for the review rows (default '0', '1', ...).
      paths: `[N]` image names for the review rows (default the indices).

    Raises:
      ValueError: naming the argument: arrays of the wrong rank, lengths or class counts that differ,
        non-finite evidence, a given label outside the classes, no held-out image with a given label.
    """
    options = options or AssignOptions()
    train_evidence, train_given = _evidence_and_given('train', train_evidence, train_given)
    val_evidence, val_given = _evidence_and_given('val', val_evidence, val_given)
    names, paths = _check_labels(train_evidence, train_given, val_evidence, val_given, class_names, paths)
    decided = rule.assign_round(
        rule.RoundEvidenceArrays(
            train_dense=lambda rows: train_evidence[rows],
            num_train=len(train_given),
            evidence_val=val_evidence,
            train_given=train_given,
            val_given=val_given,
        ),
        options,
    )
    keys = ('heldout_given_recall', 'heldout_mixture_f1', 'heldout_addition_precision', 'flags')
    checks = {key: decided.info[key] for key in keys if key in decided.info}
    checks['keep_given'] = bool(decided.info['flags'])
    rows = review_rows.candidate_rows(
        decided.labels, train_given, train_evidence, names, paths, decided.thresholds
    )
    return Assignment(decided.labels, decided.thresholds, checks, review_rows.rank_rows(rows, ''))


def _check_labels(
    train_evidence, train_given, val_evidence, val_given, class_names, paths
) -> tuple[list, list]:
    """The class names and image names of `assign_labels` (defaults filled in), after checking that the
    evidence and given labels agree on the classes; raises ValueError naming the argument."""
    num_classes = train_evidence.shape[1]
    if val_evidence.shape[1] != num_classes:
        raise ValueError(
            f'val_evidence: {val_evidence.shape[1]} classes, but train_evidence has {num_classes}'
        )
    for name, given in (('train_given', train_given), ('val_given', val_given)):
        if given.size and (given.min() < -1 or given.max() >= num_classes):
            bad = int(np.flatnonzero((given < -1) | (given >= num_classes))[0])
            raise ValueError(
                f'{name}[{bad}] = {int(given[bad])}: expected a class in [0, {num_classes}) or -1'
            )
    if not (val_given >= 0).any():
        raise ValueError('val_given: no held-out image has a given label (the checks and floors need some)')
    names = list(class_names) if class_names is not None else [str(c) for c in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f'class_names: expected {num_classes} names, got {len(names)}')
    paths = list(paths) if paths is not None else [str(i) for i in range(len(train_given))]
    if len(paths) != len(train_given):
        raise ValueError(f'paths: expected {len(train_given)} names, got {len(paths)}')
    return names, paths


def _evidence_and_given(split: str, evidence, given) -> tuple[np.ndarray, np.ndarray]:
    evidence = np.asarray(evidence, np.float32)
    given = np.asarray(given)
    if evidence.ndim != 2:
        raise ValueError(f'{split}_evidence: expected log-odds [N, C], got shape {evidence.shape}')
    if given.ndim != 1 or not np.issubdtype(given.dtype, np.integer):
        raise ValueError(f'{split}_given: expected int labels [N], got {given.dtype} of shape {given.shape}')
    if len(given) != len(evidence):
        raise ValueError(
            f'{split}_evidence and {split}_given: {len(evidence)} rows of evidence but {len(given)} labels'
        )
    if not np.isfinite(evidence).all():
        raise ValueError(f'{split}_evidence: {int((~np.isfinite(evidence)).sum())} values are not finite')
    return evidence, given.astype(np.int64)
