"""Evaluation metrics on gathered predictions (numpy, applied at the edge).

Every function takes numpy or JAX arrays (converted with `np.asarray`) and returns python floats or
numpy arrays. Label sets may be given in any of three forms, here called *label sets*:
  * a multi-hot array `[N, C]` of booleans or 0/1 values,
  * a sequence of N sequences of class indices (ragged; e.g. the ReaL json, `LabelTable.to_lists()`),
  * a `LabelTable`-like object with `offsets [N+1]` and `classes [nnz]` (never densified).
Each docstring names the protocol it follows and what it excludes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    'topk_hits',
    'topk_accuracy',
    'set_accuracy',
    'real_accuracy',
    'predicted_sets',
    'sample_set_metrics',
    'label_quality',
    'mean_average_precision',
]

_SET_METRIC_KEYS = ('precision', 'recall', 'f1', 'jaccard')


# --------------------------------------------------------------------------------------- top-k


def topk_hits(logits, labels, k: int = 1) -> np.ndarray:
    """Whether each label is among the k highest scores: `[N, C]`, `[N]` int -> `[N]` bool.

    Ties are broken towards the lower class index (as `np.argmax` and `jax.lax.top_k` do): the label
    counts as ranked after every class with a strictly higher score and every lower-indexed class with
    an equal score. Per-example so that callers can stream over batches and average at the end.
    """
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    if logits.ndim != 2:
        raise ValueError(f'topk_hits: logits must be [N, C], got shape {logits.shape}')
    n, c = logits.shape
    if labels.shape != (n,):
        raise ValueError(
            f'topk_hits: labels must be [N]={n} to match logits {logits.shape}, got {labels.shape}'
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f'topk_hits: labels must be integer class indices, got dtype {labels.dtype}')
    if not 1 <= int(k) <= c:
        raise ValueError(f'topk_hits: k must be in [1, {c}] (number of classes), got {k}')
    if n and (labels.min() < 0 or labels.max() >= c):
        raise ValueError(
            f'topk_hits: labels must lie in [0, {c}), got range [{labels.min()}, {labels.max()}]'
        )
    label_score = np.take_along_axis(logits, labels[:, None].astype(np.int64), axis=1)
    higher = np.sum(logits > label_score, axis=1)
    tied_before = np.sum((logits == label_score) & (np.arange(c)[None, :] < labels[:, None]), axis=1)
    return (higher + tied_before) < int(k)


def topk_accuracy(logits, labels, k: int = 1) -> float:
    """Top-k accuracy (standard ImageNet protocol): fraction of N examples whose label is in the top k.

    `logits [N, C]`, `labels [N]` int; ties broken as in `topk_hits`. Raises on N = 0.
    """
    hits = topk_hits(logits, labels, k)
    if hits.size == 0:
        raise ValueError('topk_accuracy: no examples (N = 0)')
    return float(hits.mean())


# ------------------------------------------------------------------------------- label set forms


def _as_coo(sets: Any, name: str) -> tuple[np.ndarray, np.ndarray, int, int | None]:
    """Any label-set form -> (rows [nnz] int64, classes [nnz] int64, N, C or None), duplicates kept."""
    if hasattr(sets, 'offsets') and hasattr(sets, 'classes'):
        offsets = np.asarray(sets.offsets, dtype=np.int64)
        classes = np.asarray(sets.classes, dtype=np.int64)
        if (
            offsets.ndim != 1
            or offsets.size == 0
            or offsets[-1] != classes.size
            or np.any(np.diff(offsets) < 0)
        ):
            raise ValueError(
                f'{name}: inconsistent label table (offsets {offsets.shape} end '
                f'{offsets[-1] if offsets.size else None}, classes {classes.shape})'
            )
        n = offsets.size - 1
        rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(offsets))
        num_classes = getattr(sets, 'num_classes', None)
        num_classes = None if num_classes is None else int(num_classes)
    elif not (isinstance(sets, (list, tuple)) or (isinstance(sets, np.ndarray) and sets.dtype == object)):
        dense = np.asarray(sets)  # numpy or JAX multi-hot
        if dense.ndim != 2:
            raise ValueError(f'{name}: a multi-hot array must be [N, C], got shape {dense.shape}')
        if dense.dtype != bool:
            bad = ~np.isin(dense, (0, 1))
            if np.any(bad):
                r, col = np.argwhere(bad)[0]
                raise ValueError(
                    f'{name}: multi-hot entries must be 0/1 or bool, got {dense[r, col]} at row {r}, '
                    f'class {col}'
                )
        rows, classes = np.nonzero(dense)
        n, num_classes = dense.shape
        rows, classes = rows.astype(np.int64), classes.astype(np.int64)
    else:
        lists = list(sets)
        lengths = np.empty(len(lists), dtype=np.int64)
        for i, entry in enumerate(lists):
            try:
                lengths[i] = len(entry)
            except TypeError:
                raise TypeError(f'{name}: entry {i} must be a list of class indices, got {entry!r}') from None
        flat = [c for entry in lists for c in entry]
        classes = np.asarray(flat) if flat else np.zeros(0, np.int64)
        if not np.issubdtype(classes.dtype, np.integer):
            i = next(
                (i for i, e in enumerate(lists) if any(not isinstance(c, (int, np.integer)) for c in e)), 0
            )
            raise ValueError(f'{name}: entry {i} must hold integer class indices, got {lists[i]!r}')
        classes = classes.astype(np.int64)
        n = len(lists)
        rows = np.repeat(np.arange(n, dtype=np.int64), lengths)
        num_classes = None
    if classes.size and classes.min() < 0:
        i = int(rows[np.argmin(classes)])
        raise ValueError(f'{name}: entry {i} holds a negative class index {classes.min()}')
    if num_classes is not None and classes.size and classes.max() >= num_classes:
        i = int(rows[np.argmax(classes)])
        raise ValueError(f'{name}: entry {i} holds class {classes.max()} >= num_classes={num_classes}')
    return rows, classes, n, num_classes


def _as_top1(top1, name: str) -> np.ndarray:
    top1 = np.asarray(top1)
    if top1.ndim == 2:  # scores [N, C]: take the arg-max prediction
        top1 = np.argmax(top1, axis=1)
    if top1.ndim != 1 or not np.issubdtype(top1.dtype, np.integer):
        raise ValueError(
            f'{name}: top1 must be [N] integer predictions or [N, C] scores, got shape {top1.shape} '
            f'dtype {top1.dtype}'
        )
    return top1.astype(np.int64)


def _as_mask(mask, n: int, name: str) -> np.ndarray:
    if mask is None:
        return np.ones(n, dtype=bool)
    mask = np.asarray(mask)
    if mask.shape != (n,):
        raise ValueError(f'{name}: mask must be [N]={n} (nonzero = keep the row), got shape {mask.shape}')
    return mask != 0


# -------------------------------------------------------------------------------- set accuracy


def set_accuracy(top1, sets) -> float:
    """Fraction of images whose top-1 prediction is in their label set; images with an empty set excluded.

    The ReaL protocol (Beyer et al. 2020, "Are we done with ImageNet?") for any label sets, e.g. the
    digit-scenes truth sets. `top1 [N]` int predictions (or `[N, C]` scores, arg-maxed); `sets` in any
    label-set form with N rows. Raises if the lengths differ or every set is empty.
    """
    top1 = _as_top1(top1, 'set_accuracy')
    rows, classes, n, _ = _as_coo(sets, 'set_accuracy: sets')
    if top1.shape[0] != n:
        raise ValueError(
            f'set_accuracy: {top1.shape[0]} predictions but {n} label sets; they must align one '
            f'to one (same images, same order)'
        )
    labeled = np.bincount(rows, minlength=n) > 0
    if not labeled.any():
        raise ValueError(f'set_accuracy: all {n} label sets are empty; nothing to score')
    hit = np.zeros(n, dtype=bool)
    hit[rows[classes == top1[rows]]] = True
    return float(hit[labeled].mean())


def real_accuracy(top1, real) -> float:
    """ReaL accuracy (Beyer et al. 2020, "Are we done with ImageNet?").

    Fraction of ImageNet validation images whose top-1 prediction is in the ReaL label set; the images
    with an empty ReaL set (3,163 of 50,000) are excluded, leaving 46,837. `top1 [N]` int (or `[N, C]`
    scores), `real`: N lists of class indices, as returned by `load_real_labels`, in validation file
    order (ILSVRC2012_val_00000001 first).
    """
    return set_accuracy(top1, real)


# ---------------------------------------------------------------------------------- set metrics


def predicted_sets(probs, threshold: float = 0.5, include_top1: bool = True) -> np.ndarray:
    """Multi-label predictions `[N, C]` bool: {c : probs[c] > threshold}, united with the arg-max class.

    The set-prediction protocol of MILe (Rajeswar et al. 2022, "Multi-label iterated learning") used to
    report ReaL F1: every image predicts at least its top-1 class (if `include_top1`), plus any class
    whose probability strictly exceeds `threshold`.
    """
    probs = np.asarray(probs)
    if probs.ndim != 2:
        raise ValueError(f'predicted_sets: probs must be [N, C], got shape {probs.shape}')
    sets = probs > threshold
    if include_top1 and probs.shape[0] and probs.shape[1]:
        sets[np.arange(probs.shape[0]), np.argmax(probs, axis=1)] = True
    return sets


def _set_counts(pred, truth, name: str):
    """Per-row |P|, |T|, |P ∩ T| (duplicates within a row counted once) for any label-set forms."""
    p_rows, p_cls, n_p, c_p = _as_coo(pred, f'{name}: pred')
    t_rows, t_cls, n_t, c_t = _as_coo(truth, f'{name}: truth')
    if n_p != n_t:
        raise ValueError(f'{name}: pred has {n_p} rows but truth has {n_t}; they must align one to one')
    if c_p is not None and c_t is not None and c_p != c_t:
        raise ValueError(f'{name}: pred has {c_p} classes but truth has {c_t}')
    width = int(max(p_cls.max(initial=-1), t_cls.max(initial=-1))) + 1
    p_keys = np.unique(p_rows * width + p_cls)
    t_keys = np.unique(t_rows * width + t_cls)
    inter = np.intersect1d(p_keys, t_keys, assume_unique=True)
    count = lambda keys: np.bincount(keys // max(width, 1), minlength=n_p)
    return count(p_keys), count(t_keys), count(inter)


def _set_scores(n_pred, n_truth, n_inter, keep, name: str) -> dict:
    if not keep.any():
        raise ValueError(f'{name}: no rows left to score (empty input or mask all zero)')
    n_pred, n_truth, n_inter = (x[keep].astype(np.float64) for x in (n_pred, n_truth, n_inter))
    both_empty = (n_pred == 0) & (n_truth == 0)
    union = n_pred + n_truth - n_inter

    def ratio(num, den):  # 0/0 -> 1 if both sets are empty (perfect agreement), else 0
        return np.where(den > 0, num / np.maximum(den, 1), both_empty.astype(np.float64))

    per_row = {
        'precision': ratio(n_inter, n_pred),
        'recall': ratio(n_inter, n_truth),
        'f1': ratio(2 * n_inter, n_pred + n_truth),
        'jaccard': ratio(n_inter, union),
    }
    return {k: float(v.mean()) for k, v in per_row.items()}


def sample_set_metrics(pred, truth, mask=None) -> dict:
    """Example-based precision, recall, F1 and Jaccard, averaged over rows: `[N, C]`, `[N, C]` -> dict.

    Per row with predicted set P and true set T: precision |P∩T|/|P|, recall |P∩T|/|T|,
    F1 2|P∩T|/(|P|+|T|), Jaccard |P∩T|/|P∪T| (example-based multi-label metrics, Tsoumakas & Katakis
    2007; the "ReaL F1" of MILe is this F1 against ReaL sets). Empty-set convention: an undefined
    ratio (0/0) is 1 when P and T are both empty (perfect agreement) and 0 otherwise — so an empty
    prediction against a non-empty truth scores precision 0, and a non-empty prediction against an
    empty truth scores recall 0. `pred`, `truth`: bool or 0/1 multi-hot `[N, C]` (any label-set form
    is accepted); `mask [N]` (nonzero = keep) excludes rows. Returns python floats under keys
    precision, recall, f1, jaccard.
    """
    n_pred, n_truth, n_inter = _set_counts(pred, truth, 'sample_set_metrics')
    keep = _as_mask(mask, n_pred.shape[0], 'sample_set_metrics')
    return _set_scores(n_pred, n_truth, n_inter, keep, 'sample_set_metrics')


def label_quality(labels, truth, mask=None) -> dict:
    """Score (relabeled) training labels against the hidden truth: `sample_set_metrics` + labels_per_image.

    `labels`, `truth`: any label-set form (multi-hot `[N, C]`, N class-index lists, or a LabelTable,
    which is never densified). Same per-row protocol and empty-set convention as `sample_set_metrics`;
    `labels_per_image` is the mean number of distinct classes in `labels` over the kept rows.
    """
    n_pred, n_truth, n_inter = _set_counts(labels, truth, 'label_quality')
    keep = _as_mask(mask, n_pred.shape[0], 'label_quality')
    scores = _set_scores(n_pred, n_truth, n_inter, keep, 'label_quality')
    scores['labels_per_image'] = float(n_pred[keep].mean())
    return scores


# -------------------------------------------------------------------------------------------- mAP


def _average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    """Non-interpolated AP = sum_n (R_n - R_{n-1}) P_n over distinct score thresholds (as sklearn)."""
    order = np.argsort(-scores, kind='stable')
    scores, positive = scores[order], positive[order]
    last_of_tie = np.r_[np.nonzero(np.diff(scores))[0], scores.size - 1]
    tp = np.cumsum(positive)[last_of_tie]
    fp = (last_of_tie + 1) - tp
    precision = tp / (tp + fp)
    recall = tp / tp[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def mean_average_precision(scores, targets, return_per_class: bool = False):
    """Macro mean over classes of non-interpolated average precision, in [0, 1].

    The multi-label mAP protocol (e.g. VOC / COCO classification, `sklearn.metrics.
    average_precision_score(average='macro')`): per class, AP = sum_n (R_n - R_{n-1}) P_n over the
    distinct score thresholds, examples ranked by score. `scores [N, C]` real; `targets [N, C]` with
    1 = positive, 0 = negative, -1 = unknown (partial labels; that entry is ignored for that class).
    Classes with no positive or no negative among their known entries are skipped (AP undefined).
    Returns the mAP float, or `(mAP, per_class [C] float64 with NaN for skipped classes)` if
    `return_per_class`. Raises if every class is skipped.
    """
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets)
    if scores.ndim != 2 or targets.shape != scores.shape:
        raise ValueError(
            f'mean_average_precision: scores and targets must both be [N, C], got {scores.shape} '
            f'and {targets.shape}'
        )
    if np.isnan(scores).any():
        raise ValueError('mean_average_precision: scores contain NaN')
    targets = targets.astype(np.int64) if targets.dtype == bool else targets
    bad = ~np.isin(targets, (-1, 0, 1))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(
            f'mean_average_precision: targets must be 1, 0 or -1 (ignored), got {targets[r, c]} '
            f'at row {r}, class {c}'
        )
    per_class = np.full(scores.shape[1], np.nan)
    for c in range(scores.shape[1]):
        known = targets[:, c] != -1
        positive = targets[known, c] == 1
        if positive.any() and not positive.all():
            per_class[c] = _average_precision(scores[known, c], positive)
    if np.isnan(per_class).all():
        raise ValueError(
            f'mean_average_precision: none of the {scores.shape[1]} classes has both a positive '
            f'and a negative example; mAP is undefined'
        )
    mean_ap = float(np.nanmean(per_class))
    return (mean_ap, per_class) if return_per_class else mean_ap
