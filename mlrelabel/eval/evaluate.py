"""The shared evaluation protocol: every method reports the same metrics from a model's logits.

- `top1`, `top5`: against the visible single label (the first label of each row), standard ImageNet protocol.
- `real_accuracy`: top-1 in the full label set (ReaL protocol, Beyer et al. 2020; empty sets excluded).
- `precision`, `recall`, `f1`, `jaccard`: example-based set metrics of the predicted set
  `argmax ∪ {p > threshold}` (the ReaL-F1 / MILe protocol) against the full label sets.
- `map`: macro mean average precision of the class probabilities against the full label sets.
- `given_map`: the same against the given labels alone; with `top1`/`top5` the metrics a run may decide on
  (thresholds, rounds, stopping), since they need nothing but the labels users have.
The full label sets are the dataset's hidden truth when known (digit scenes), else its own label sets
(multi-label validation files such as ReaL).
"""

from __future__ import annotations

import jax
import numpy as np

from mlrelabel.eval import metrics


def head_of(loss: str) -> str:
    """The link the loss trains: probabilities are `softmax` for (soft) cross-entropy, else `sigmoid`."""
    return 'softmax' if loss in ('softmax_ce', 'soft_ce') else 'sigmoid'


def probabilities(logits: np.ndarray, head: str) -> np.ndarray:
    """Class probabilities `[N, C]` from logits with the head's own link (never threshold raw logits)."""
    logits = np.asarray(logits, np.float32)
    if head == 'softmax':
        return np.asarray(jax.nn.softmax(logits, axis=-1))
    if head == 'sigmoid':
        return np.asarray(jax.nn.sigmoid(logits))
    raise ValueError(f"head={head!r}: expected 'softmax' or 'sigmoid'")


def first_labels(table) -> np.ndarray:
    """`[N]` the first (visible) class of each row of a LabelTable; -1 for empty rows."""
    lengths = np.diff(table.offsets)
    first = np.full(len(table), -1, np.int64)
    first[lengths > 0] = table.classes[table.offsets[:-1][lengths > 0]]
    return first


def evaluate_logits(logits: np.ndarray, dataset, head: str, threshold: float = 0.5, prefix: str = '') -> dict:
    """All metrics of the protocol above for `logits [N, C]` on `dataset` (labels and optional truth)."""
    probs = probabilities(logits, head)
    n, c = probs.shape
    truth = dataset.truth if dataset.truth is not None else dataset.labels
    visible = first_labels(dataset.labels)
    has = visible >= 0
    out = {'top1': metrics.topk_accuracy(probs[has], visible[has], 1)}
    if c >= 5:
        out['top5'] = metrics.topk_accuracy(probs[has], visible[has], 5)
    out['real_accuracy'] = metrics.set_accuracy(probs.argmax(-1), truth)
    out.update(metrics.sample_set_metrics(metrics.predicted_sets(probs, threshold, include_top1=True), truth))
    out['map'] = metrics.mean_average_precision(probs, truth.dense(np.arange(n)))
    # Against the given labels only (what users have): the truth-free metrics a run may decide on.
    out['given_map'] = metrics.mean_average_precision(probs, dataset.labels.dense(np.arange(n)))
    out['loss'] = _given_loss(probs, visible, dataset.labels.dense(np.arange(n)), head)
    return {prefix + k: float(v) for k, v in out.items()}


def _given_loss(probs: np.ndarray, visible: np.ndarray, given: np.ndarray, head: str) -> float:
    """The head's loss on the given labels (validation curves): cross-entropy of the first given label for a
    softmax head, mean binary cross-entropy over every class for a sigmoid head."""
    p = np.clip(probs.astype(np.float64), 1e-7, 1 - 1e-7)
    if head == 'softmax':
        has = visible >= 0
        return float(-np.mean(np.log(p[has, visible[has]]))) if has.any() else float('nan')
    y = np.asarray(given, np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
