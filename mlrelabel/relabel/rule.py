"""The configured label rule of a relabel round: per-class thresholds on the crop evidence (log-odds) from
`relabel.assign` ('gmm': per-class mixtures and the held-out positive floor; 'threshold'; 'topk'; 'calibrated'),
applying them, and the `thresholds.json` that records them.

`evidence` is `{'train', 'val'}` of `RoundEvidence`-like objects (`dense(rows) -> [len(rows), C]` log-odds).
"""

from __future__ import annotations

import numpy as np

from mlrelabel import evaluate
from mlrelabel.relabel import assign, select
from mlrelabel.relabel.evidence import to_log_odds, to_probability


def fit_mixtures(evidence, num_train: int, config):
    """Per-class two-component mixtures fitted to (a seeded sample of) the training images' evidence."""
    rc = config.relabel
    sample = np.sort(np.random.default_rng([config.seed, 1]).permutation(num_train)[: rc.gmm_max_samples])
    return assign.fit_class_gmms(
        evidence['train'].dense(sample),
        max_samples=rc.gmm_max_samples,
        seed=config.seed,
        space='log_odds',
        min_separation=rc.gmm_min_separation,
    )


def thresholds_from_config(evidence_val: np.ndarray, mixtures, val, config):
    """Per-class thresholds `[C]` on the evidence (log-odds; +inf = never) and what they came from.

    `evidence_val [len(val), C]`: the validation images' evidence (the positive floor and 'calibrated' read it;
    the caller scores the held-out assignment on the same array). 'gmm' uses `mixtures` (`fit_mixtures`,
    fitted once per round: the held-out mixture F1 reads them too)."""
    rc = config.relabel
    num_classes = val.num_classes
    if rc.assign == 'threshold':
        return np.full(num_classes, to_log_odds(rc.threshold), np.float32), {'rule': 'global threshold'}
    if rc.assign == 'topk':
        return None, {'rule': f'top-{rc.topk}'}
    if rc.assign == 'calibrated':
        # Multi-label validation labels given by the user: tune on one seeded half, report on the other.
        if val.labels.num_labels().max() <= 1:
            raise SystemExit(
                "config.relabel.assign='calibrated' tunes thresholds on multi-label validation labels, but the "
                "validation labels hold one label per image; use 'gmm' (the default)"
            )
        half = np.random.default_rng([config.seed, 17]).permutation(len(val))[: len(val) // 2]
        half.sort()
        t = assign.calibrate_thresholds(evidence_val[half], val.labels.dense(half))
        return t, {'rule': 'calibrated on half of the validation labels', 'calibration_rows': int(half.size)}
    thresholds, mixture, floor = gmm_thresholds(mixtures, evidence_val, evaluate.first_labels(val.labels), rc)
    details = {
        'rule': (
            f'per-class Gaussian mixture on log-odds, posterior >= {rc.gmm_min_posterior:g}, and at least the '
            f'{rc.positive_floor:g} quantile of the evidence of held-out images given the class'
        ),
        'mixture_log_odds': [float(t) if np.isfinite(t) else None for t in mixture],
        'floor_log_odds': [float(t) if np.isfinite(t) else None for t in floor],
        'means': np.asarray(mixtures.means).tolist(),
        'variances': np.asarray(mixtures.variances).tolist(),
        'weights': np.asarray(mixtures.weights).tolist(),
        'rejected': {str(c): why for c, why in enumerate(mixtures.reasons) if why},
    }
    return thresholds, details


def gmm_thresholds(mixtures, evidence_given, given, rc) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """'gmm' thresholds `[C]` (log-odds): each class's mixture threshold at posterior `rc.gmm_min_posterior`,
    raised to the `rc.positive_floor` quantile of the evidence of the images given that class (`evidence_given
    [N, C]`, `given [N]`, -1: none). Returns `(thresholds, mixture part, floor part)`."""
    mixture = assign.mixture_thresholds(mixtures, rc.gmm_min_posterior)
    floor = assign.positive_floor(evidence_given, np.asarray(given), rc.positive_floor)
    return np.maximum(mixture, floor), mixture, floor


def apply_rule(ev: np.ndarray, thresholds, rc) -> np.ndarray:
    if thresholds is None:  # top-k
        return np.asarray(
            assign.assign_topk(ev, rc.topk, float(to_log_odds(rc.min_conf)) if rc.min_conf else -np.inf)
        )
    return ev >= thresholds[None, :]


def heldout_checks(evidence_val: np.ndarray, thresholds, mixtures, given_val, rc) -> dict:
    """The truth-free statistics of a round's rule on the held-out images (what `select.guard` and the round choice
    read): `evidence_val [M, C]` log-odds, the rule's `thresholds` (`thresholds_from_config`), the round's
    `mixtures` (`fit_mixtures`) and the given labels `given_val [M]` (-1: none). `select.heldout_stats`,
    `select.addition_precision` and `select.heldout_mixture_f1` in one dict."""
    assigned = apply_rule(evidence_val, thresholds, rc)
    info = select.heldout_stats(assigned, given_val)
    info.update(select.addition_precision(assigned, evidence_val, given_val))
    posterior = assign.gmm_posterior(mixtures, evidence_val, monotone=True)
    info.update(select.heldout_mixture_f1(assigned, posterior, given_val, mixtures.valid))
    return info


def thresholds_doc(thresholds, details, train, rc) -> dict:
    """thresholds.json: the per-class thresholds behind a round's labels, on the crop evidence of `relabel`
    (each crop's log-odds aggregated over the image's crops by `relabel.aggregate`, averaged over rounds).
    `log_odds` is exact (null: the class adds no label); `thresholds` gives the same as probabilities (1.0:
    never)."""
    names = getattr(train, 'class_names', None) or [str(c) for c in range(train.num_classes)]
    doc = {
        'rule': details.get('rule'),
        'assign': rc.assign,
        'space': 'probability',
        'evidence': 'crops',
        'classes': list(names),
    }
    if thresholds is not None:
        doc['log_odds'] = [float(t) if np.isfinite(t) else None for t in thresholds]
        doc['thresholds'] = [float(to_probability(t)) if np.isfinite(t) else 1.0 for t in thresholds]
    doc['details'] = {key: v for key, v in details.items() if key != 'rule'}
    return doc
