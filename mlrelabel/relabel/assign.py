"""The "Label" stage of the relabel loop: turn aggregated confidences into label sets.

Input everywhere is `conf [N, C]`: per-image, per-class confidence in [0, 1] (crop probabilities
aggregated by `confidence.aggregate_crops`). Rules, from simplest to most adaptive:

  assign_threshold   conf >= t, one global t or one per class.
  assign_topk        the k most confident classes (optionally above a floor).
  GMM (`mixtures`)   per class, a two-component 1-D Gaussian mixture over the confidences of all
                     images; a label is assigned where the high ("present") component is the more
                     probable one (mixture-based split of clean vs. noisy samples as in DivideMix:
                     Li, Socher & Hoi, ICLR 2020). Fitted (sklearn, at the edge) on a bounded sample
                     and stored as plain arrays, so the posterior is pure jnp and can be streamed.
  calibrate_thresholds  per-class thresholds maximising F1 on a labelled validation split.

`uncertainty_filter` drops assignments whose uncertainty (from `confidence.summarize_samples`) is too
high, and `finalize_labels` produces the ragged per-image lists for `LabelTable.from_lists`.
The pure rules (threshold, top-k, posterior, filter) are jnp and jittable; fitting, finalising and
calibration work on host numpy arrays.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mlrelabel.relabel.mixtures import (
    _check_conf,
)

# --------------------------------------------------------------------------------------------
# Threshold and top-k


def assign_threshold(conf: jax.Array, threshold) -> jax.Array:
    """`conf [N, C] >= threshold` -> `[N, C]` bool; `threshold` a scalar or per-class `[C]`."""
    conf = jnp.asarray(conf)
    _check_conf(conf, "assign_threshold")
    threshold = jnp.asarray(threshold, conf.dtype)
    if threshold.ndim > 1 or (threshold.ndim == 1 and threshold.shape[0] != conf.shape[1]):
        raise ValueError(
            f"assign_threshold: threshold must be a scalar or [classes] = [{conf.shape[1]}], "
            f"got shape {threshold.shape}"
        )
    return conf >= threshold


def assign_topk(conf: jax.Array, k: int, min_conf: float = 0.0) -> jax.Array:
    """The `k` most confident classes of each image that also have `conf >= min_conf`: `[N, C]` bool.

    Ties are broken towards the lower class index (`jax.lax.top_k`).
    """
    conf = jnp.asarray(conf)
    _check_conf(conf, "assign_topk")
    num_classes = conf.shape[1]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= num_classes:
        raise ValueError(f"assign_topk: k must be an int in [0, {num_classes}], got {k!r}")
    if k == 0:
        return jnp.zeros(conf.shape, bool)
    _, idx = jax.lax.top_k(conf, int(k))
    chosen = jnp.any(jax.nn.one_hot(idx, num_classes, dtype=jnp.int32) > 0, axis=1)
    return chosen & (conf >= min_conf)


def positive_floor(evidence_heldout, given_heldout, quantile: float) -> np.ndarray:
    """Per-class floors `[C]` float32: the `quantile` of class c's evidence over held-out images given c.

    The given labels of held-out images are known positives the model never trained on. An added label
    should be at least as evident as the weakest of them (the bottom `quantile`): otherwise it is more
    likely a confusion than an object. This matters most where relabeling cannot help (one object per
    image), where a mixture fitted to all images still finds a "high" mode made of confusable images.
    Classes without held-out examples get -inf (no floor).
    """
    evidence_heldout = np.asarray(evidence_heldout, np.float64)
    given_heldout = np.asarray(given_heldout)
    _check_conf(evidence_heldout, "positive_floor")
    if not 0.0 <= float(quantile) < 1.0:
        raise ValueError(f"positive_floor: quantile must lie in [0, 1), got {quantile!r}")
    out = np.full(evidence_heldout.shape[1], -np.inf, np.float32)
    if quantile == 0:
        return out
    for c in range(evidence_heldout.shape[1]):
        values = evidence_heldout[given_heldout == c, c]
        if values.size:
            out[c] = np.quantile(values, float(quantile))
    return out


# --------------------------------------------------------------------------------------------
# Filtering and finalising


def uncertainty_filter(assigned: jax.Array, uncertainty: jax.Array, max_uncertainty: float) -> jax.Array:
    """Keep only assignments whose uncertainty is <= `max_uncertainty`: `[N, C]` bool.

    `uncertainty` is per image `[N]` (e.g. entropy or mutual information) or per class `[N, C]`
    (e.g. std).
    """
    assigned = jnp.asarray(assigned, bool)
    _check_conf(assigned, "uncertainty_filter")
    uncertainty = jnp.asarray(uncertainty)
    if uncertainty.shape == assigned.shape[:1]:
        uncertainty = uncertainty[:, None]
    elif uncertainty.shape != assigned.shape:
        raise ValueError(
            f"uncertainty_filter: uncertainty must have shape [images] = {assigned.shape[:1]} or "
            f"[images, classes] = {assigned.shape}, got {uncertainty.shape}"
        )
    return assigned & (uncertainty <= max_uncertainty)


def finalize_labels(
    assigned,
    given=None,
    keep_given: bool = True,
    conf=None,
    top_k_record: int | None = None,
    max_labels: int | None = None,
) -> tuple[list[list[int]], list[list[float]]]:
    """Assigned `[N, C]` bool -> per-image label lists and scores (for `LabelTable.from_lists`).

    Args:
      assigned: `[N, C]` bool, the assignments of a rule above.
      given: `[N]` int, the current (e.g. original) label of each image, or None; entries < 0 mean
        "no given label".
      keep_given: add the given label to every image's set (default), and never drop it when
        capping to `max_labels`.
      conf: `[N, C]` confidences; labels are ordered by confidence descending (ties: lower class
        first) and scored by it, the given label included. None: class order and score 1.0.
      top_k_record: if set (needs `conf`), an image left with no label at all records its
        `top_k_record` most confident classes instead of an empty set.
      max_labels: if set, keep at most this many labels per image (the given label, when kept,
        plus the most confident others).
    Returns:
      (labels, scores): per image, a list of class ints and a list of float scores, same order.
    """
    assigned = np.array(assigned, dtype=bool)  # copy: given labels are added in place
    _check_conf(assigned, "finalize_labels")
    conf = _check_finalize(assigned, conf, top_k_record, max_labels)
    is_given = _given_mask(assigned, given)
    if keep_given:
        assigned |= is_given
    else:
        is_given = np.zeros_like(assigned)
    if top_k_record is not None:
        empty = np.flatnonzero(~assigned.any(axis=1))
        if empty.size:
            k = int(top_k_record)
            top = np.argsort(-conf[empty], axis=1, kind="stable")[:, :k]
            assigned[empty[:, None], top] = True
    if assigned.shape[0] == 0:
        return [], []
    return _label_lists(assigned, conf, is_given, max_labels)


def _check_finalize(assigned, conf, top_k_record, max_labels):
    """`conf` as float32 (or None) after checking the arguments of `finalize_labels`."""
    num_classes = assigned.shape[1]
    if conf is not None:
        conf = np.asarray(conf, np.float32)
        if conf.shape != assigned.shape:
            raise ValueError(f"finalize_labels: conf shape {conf.shape} != assigned shape {assigned.shape}")
    if max_labels is not None and (isinstance(max_labels, bool) or int(max_labels) < 1):
        raise ValueError(f"finalize_labels: max_labels must be a positive int, got {max_labels!r}")
    if top_k_record is not None:
        if conf is None:
            raise ValueError("finalize_labels: top_k_record needs conf")
        if isinstance(top_k_record, bool) or not 1 <= int(top_k_record) <= num_classes:
            raise ValueError(
                f"finalize_labels: top_k_record must be an int in [1, {num_classes}], got {top_k_record!r}"
            )
    return conf


def _given_mask(assigned, given) -> np.ndarray:
    """`[N, C]` bool: each image's given label (`given [N]` int, < 0: none; None: no image has one), checked."""
    num_images, num_classes = assigned.shape
    is_given = np.zeros_like(assigned)
    if given is None:
        return is_given
    given = np.asarray(given)
    if given.shape != (num_images,) or not np.issubdtype(given.dtype, np.integer):
        raise ValueError(
            f"finalize_labels: given must be int [images] = [{num_images}], got {given.dtype} {given.shape}"
        )
    if np.any(given >= num_classes):
        bad = int(np.argmax(given >= num_classes))
        raise ValueError(
            f"finalize_labels: given[{bad}] = {int(given[bad])} is not a class in [0, {num_classes})"
        )
    rows = np.flatnonzero(given >= 0)
    is_given[rows, given[rows]] = True
    return is_given


def _label_lists(assigned, conf, is_given, max_labels):
    """Per image the classes of `assigned [N, C]` (N > 0) and their scores, by score descending (ties: lower class
    first); with `max_labels`, the given label first and at most that many."""
    num_images = assigned.shape[0]
    rows, cols = np.nonzero(assigned)
    scores = conf[rows, cols] if conf is not None else np.ones(rows.shape, np.float32)
    if max_labels is not None:
        # Rank inside each image: given first, then by score, then by class; keep the first few.
        order = np.lexsort((cols, -scores, ~is_given[rows, cols], rows))
        rows, cols, scores = rows[order], cols[order], scores[order]
        starts = np.searchsorted(rows, rows, side="left")
        keep = (np.arange(rows.size) - starts) < int(max_labels)
        rows, cols, scores = rows[keep], cols[keep], scores[keep]
    order = np.lexsort((cols, -scores, rows))
    rows, cols, scores = rows[order], cols[order], scores[order]
    splits = np.cumsum(np.bincount(rows, minlength=num_images))[:-1]
    labels = [c.tolist() for c in np.split(cols.astype(np.int64), splits)]
    score_lists = [s.tolist() for s in np.split(scores.astype(np.float32), splits)]
    return labels, score_lists


# --------------------------------------------------------------------------------------------
# Calibration


def _candidate_thresholds(values: np.ndarray, max_candidates: int = 512) -> np.ndarray:
    """Midpoints between consecutive distinct scores (at most `max_candidates`, by quantile), uncapped."""
    u = np.unique(values[np.isfinite(values)])
    if u.size > max_candidates + 1:
        u = np.unique(np.quantile(u, np.linspace(0.0, 1.0, max_candidates + 1)))
    if u.size < 2:
        return u.astype(np.float64)
    return (u[:-1] + u[1:]) / 2.0


def calibrate_thresholds(
    conf_val,
    truth_val,
    grid: Sequence[float] | np.ndarray | None = None,
) -> np.ndarray:
    """Per-class thresholds `[C]` float32 maximising each class's F1 on a multi-label split.

    Needs multi-label truth, so it is never a default: use it only when the user has multi-label validation
    labels, and report on data it was not tuned on. Per class, the candidate whose `conf_val >= t` best
    matches `truth_val` (`[M, C]` multi-hot) is taken; among equally good candidates, the middle of the
    first run of best ones (for separable classes: the middle of the gap). Candidates are, by default, the
    midpoints between consecutive distinct scores of the class (any scale: probabilities or uncapped
    log-odds), or the given `grid`. Classes without positives (or with F1 = 0 everywhere) fall back to the
    threshold that maximises micro-F1 over all classes.
    """
    conf_val = np.asarray(conf_val, np.float64)
    truth_val = np.asarray(truth_val) > 0.5
    _check_conf(conf_val, "calibrate_thresholds")
    if truth_val.shape != conf_val.shape:
        raise ValueError(
            f"calibrate_thresholds: truth_val shape {truth_val.shape} != conf_val shape {conf_val.shape}"
        )
    if grid is not None:
        grid = np.sort(np.asarray(grid, np.float64))
        if grid.ndim != 1 or grid.size == 0:
            raise ValueError(f"calibrate_thresholds: grid must be a non-empty 1-D sequence, got {grid.shape}")

    def counts(scores, truth, candidates):  # tp, fp for `scores >= t`, every t of `candidates`
        order = np.argsort(-scores, kind="stable")
        s, t = scores[order], truth[order]
        above = np.searchsorted(-s, -candidates, side="right")  # number of scores >= candidate
        tp = np.concatenate([[0], np.cumsum(t)])[above]
        return tp, above - tp

    num_classes = conf_val.shape[1]
    pooled = conf_val.reshape(-1)
    pooled_truth = truth_val.reshape(-1)
    global_grid = grid if grid is not None else _candidate_thresholds(pooled)
    tp, fp = counts(pooled, pooled_truth, global_grid)
    micro = 2 * tp / np.maximum(tp + fp + pooled_truth.sum(), 1)
    global_threshold = global_grid[_middle_of_first_best_run(micro)] if global_grid.size else 0.5

    thresholds = np.full(num_classes, global_threshold, np.float32)
    for c in range(num_classes):
        positives = truth_val[:, c].sum()
        candidates = grid if grid is not None else _candidate_thresholds(conf_val[:, c])
        if positives == 0 or candidates.size == 0:
            continue
        tp, fp = counts(conf_val[:, c], truth_val[:, c], candidates)
        f1 = 2 * tp / np.maximum(tp + fp + positives, 1)
        if f1.max() > 0:
            thresholds[c] = candidates[_middle_of_first_best_run(f1)]
    return thresholds


def _middle_of_first_best_run(values: np.ndarray) -> int:
    """Index in the middle of the first contiguous run of maximal values of a 1-D array."""
    best = np.isclose(values, values.max(), rtol=0, atol=1e-12)
    start = int(np.argmax(best))
    stop = start
    while stop + 1 < best.size and best[stop + 1]:
        stop += 1
    return (start + stop) // 2
