"""Choosing labels without multi-label truth: held-out statistics of an assignment, and the best round.

Users have one given label per image for train and val, nothing more. Everything here decides from those
alone; multi-label truth (the built-in data's hidden sets, ReaL) may score a run but never reaches a function
of this module (`TRUTH_FREE_METRICS` lists what a round may be chosen on).

- `heldout_stats`: an assignment applied to held-out validation images (scored by the same model as the
  training images) against their given labels: the recall of the given label, labels per image, and the
  positive-unlabeled criterion of Lee & Liu (2003, "Learning with positive and unlabeled examples using
  weighted logistic regression"): `r^2 / P(assigned)` is proportional to precision × recall of a class
  without knowing its negatives, because precision = r π / P(assigned) for class prior π.
- `choose_round`: the round whose selection metric is best, never a round flagged by the guard; round 0
  (the given labels) unless a relabeled round beats it by `min_delta`.
"""

from __future__ import annotations

import numpy as np

# Metrics that need nothing but the given labels (see mlrelabel.evaluate): a round may be chosen on these.
TRUTH_FREE_METRICS = ('val_top1', 'val_top5', 'val_given_map', 'heldout_pu_score', 'heldout_given_recall')


def heldout_stats(assigned: np.ndarray, given: np.ndarray) -> dict:
    """Statistics of an assignment `assigned [M, C]` bool on held-out images with given labels `[M]` int.

    Returns `heldout_given_recall` (share of images whose given label is assigned), `heldout_labels_per_image`,
    `heldout_pu_score` (mean over classes with given examples of `r_c^2 / P_c`, r_c the recall of class c's
    given labels and P_c the share of images assigned c; Lee & Liu 2003) and `heldout_new_per_image` (labels
    other than the given one).
    """
    assigned = np.asarray(assigned, bool)
    given = np.asarray(given)
    has = given >= 0
    a, g = assigned[has], given[has]
    if a.shape[0] == 0:
        raise ValueError('heldout_stats: no held-out image has a given label')
    hit = a[np.arange(a.shape[0]), g]
    rate = a.mean(axis=0)  # P_c
    scores = []
    for c in np.unique(g):
        r = hit[g == c].mean()
        scores.append(r * r / rate[c] if rate[c] > 0 else 0.0)
    per_image = a.sum(axis=1)
    return {
        'heldout_given_recall': float(hit.mean()),
        'heldout_labels_per_image': float(per_image.mean()),
        'heldout_new_per_image': float((per_image - hit).mean()),
        'heldout_pu_score': float(np.mean(scores)),
    }


def choose_round(rows: list[dict], metric: str, min_delta: float = 0.0) -> tuple[int, str]:
    """`(round, reason)`: the best round of `rows` by `metric` (higher is better), without multi-label truth.

    Round 0 holds the given labels. A relabeled round is chosen only when it is not flagged (`row['flags']`)
    and its metric exceeds round 0's by more than `min_delta`; among those, the highest metric wins (the
    earliest on ties). Otherwise the given labels stay, and the reason says so plainly.
    """
    if metric not in TRUTH_FREE_METRICS:
        raise ValueError(
            f'choose_round: {metric!r} is not a truth-free metric; expected one of {TRUTH_FREE_METRICS}'
        )
    if not rows or rows[0]['round'] != 0:
        raise ValueError('choose_round: rows must start with round 0 (the given labels)')
    base = rows[0].get(metric)
    candidates = [
        r for r in rows[1:] if not r.get('flags') and r.get(metric) is not None and base is not None
    ]
    better = [r for r in candidates if r[metric] > base + min_delta]
    if better:
        best = max(better, key=lambda r: (r[metric], -r['round']))
        return best['round'], (
            f'round {best["round"]} has the best {metric} ({best[metric]:.4f}; given labels {base:.4f})'
        )
    flagged = [r['round'] for r in rows[1:] if r.get('flags')]
    why = f'no relabeled round beat the given labels on {metric} by more than {min_delta:g}'
    if flagged:
        why += f' (flagged, never chosen: rounds {flagged})'
    return 0, why
