"""The label rule of a relabel round: per-class thresholds on the crop evidence (log-odds), applied to every
training image, with the truth-free checks that decide whether the round may become the output.

`assign_round` is the one place that turns a round's evidence into labels: the command's rounds
(`methods.relabel`) and the array-level `mlrelabel.assign_labels` both call it, so the same evidence gives
the same labels. Its settings are an `AssignOptions` (frozen; `AssignOptions.from_config(config)` reads
`config.relabel`). Rules: 'gmm' (per-class two-component mixtures on log-odds, raised to a positive floor from
the held-out images given each class; the default), 'threshold' (one global probability), 'topk';
'calibrated' (multi-label validation labels) is the command's alone (`calibrated_thresholds`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from mlrelabel.errors import ConfigError
from mlrelabel.relabel import assign, select
from mlrelabel.relabel import groups as relabel_groups
from mlrelabel.relabel import mixtures as relabel_mixtures
from mlrelabel.relabel.evidence import to_log_odds, to_probability

RULES = ('gmm', 'threshold', 'topk')
CHUNK = 8192  # training images densified at a time: memory grows with the chunk, not the dataset


@dataclasses.dataclass(frozen=True)
class AssignOptions:
    """How a round's evidence becomes labels (the defaults are the main recipe's `config.relabel` fields).

    rule: 'gmm' | 'threshold' | 'topk'.
    gmm_min_posterior: 'gmm': posterior of the high component needed for a label.
    gmm_max_samples: 'gmm': training images sampled (seeded by `seed`) for each class's mixture.
    gmm_min_separation: 'gmm': a class whose two modes overlap more (Ashman's D below this) adds no label.
    positive_floor: 'gmm': an added label needs at least this quantile of the evidence of the held-out
      images given its class (0: no floor).
    threshold: 'threshold': one probability for every class.
    topk, min_conf: 'topk': the k most evident classes, each at least `min_conf` (probability).
    keep_given: the given label is always kept.
    max_labels: at most this many labels per image (0: no cap).
    seed: seeds the mixtures' sample and fit.
    min_recall, max_excess, min_addition_precision: the guard (`select.guard`): below/above these, the
      labels are flagged and the given labels should be kept.
    """

    rule: str = 'gmm'
    gmm_min_posterior: float = 0.9
    gmm_max_samples: int = 20000
    gmm_min_separation: float = 1.0
    positive_floor: float = 0.05
    threshold: float = 0.5
    topk: int = 2
    min_conf: float = 0.0
    keep_given: bool = True
    max_labels: int = 0
    seed: int = 0
    min_recall: float = 0.5
    max_excess: float = 0.5
    min_addition_precision: float = 0.5

    def __post_init__(self):
        if self.rule not in RULES:
            raise ValueError(f'AssignOptions.rule: expected one of {RULES}, got {self.rule!r}')
        if not 0.0 < self.gmm_min_posterior < 1.0:
            raise ValueError(
                f'AssignOptions.gmm_min_posterior: expected a value in (0, 1), got {self.gmm_min_posterior!r}'
            )
        if not 0.0 <= self.positive_floor < 1.0:
            raise ValueError(
                f'AssignOptions.positive_floor: expected a value in [0, 1), got {self.positive_floor!r}'
            )
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(
                f'AssignOptions.threshold: expected a probability in (0, 1), got {self.threshold!r}'
            )
        if int(self.gmm_max_samples) < 2 or int(self.topk) < 1 or int(self.max_labels) < 0:
            raise ValueError(
                'AssignOptions: gmm_max_samples must be >= 2, topk >= 1 and max_labels >= 0, got '
                f'{self.gmm_max_samples!r}, {self.topk!r}, {self.max_labels!r}'
            )

    @classmethod
    def from_config(cls, config) -> 'AssignOptions':
        """The options of a run's `config.relabel` (and `config.seed`); 'calibrated' is not among them."""
        rc = config.relabel
        rule = 'threshold' if rc.assign == 'calibrated' else rc.assign  # its thresholds come from elsewhere
        names = [f.name for f in dataclasses.fields(cls) if f.name not in ('rule', 'seed')]
        guard = ('min_recall', 'max_excess', 'min_addition_precision')
        values = {n: rc[n] for n in names if n not in guard}
        return cls(rule=rule, seed=int(config.seed), **values)


@dataclasses.dataclass(frozen=True)
class RoundLabels:
    """What `assign_round` decided: per training image its labels and their scores (probabilities, given label
    included), the per-class `thresholds [C]` (log-odds; +inf: never; None: top-k), what they came from
    (`details`), and the held-out checks with the guard's `flags` (`info`)."""

    labels: list
    scores: list
    thresholds: np.ndarray | None
    details: dict
    info: dict


def fit_mixtures(train_dense: Callable, num_train: int, options: AssignOptions):
    """Per-class two-component mixtures fitted to a seeded sample of the training images' evidence;
    `train_dense(rows) -> [len(rows), C]` log-odds."""
    rng = np.random.default_rng([options.seed, 1])
    sample = np.sort(rng.permutation(num_train)[: options.gmm_max_samples])
    return relabel_mixtures.fit_class_gmms(
        train_dense(sample),
        relabel_mixtures.GmmOptions(
            max_samples=options.gmm_max_samples,
            seed=options.seed,
            space='log_odds',
            min_separation=options.gmm_min_separation,
        ),
    )


def gmm_thresholds(mixtures, evidence_given, given, options) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """'gmm' thresholds `[C]` (log-odds): each class's mixture threshold at posterior `gmm_min_posterior`, raised
    to the `positive_floor` quantile of the evidence of the images given that class (`evidence_given [N, C]`,
    `given [N]`, -1: none). Returns `(thresholds, mixture part, floor part)`."""
    mixture = relabel_mixtures.mixture_thresholds(mixtures, options.gmm_min_posterior)
    floor = assign.positive_floor(evidence_given, np.asarray(given), options.positive_floor)
    return np.maximum(mixture, floor), mixture, floor


def rule_thresholds(evidence_val, val_given, mixtures, options: AssignOptions):
    """Per-class thresholds `[C]` on the evidence (log-odds; +inf = never; None: top-k) and what they came from.
    `evidence_val [M, C]`, `val_given [M]`: the held-out images (the positive floor reads them)."""
    num_classes = evidence_val.shape[1]
    if options.rule == 'threshold':
        return np.full(num_classes, to_log_odds(options.threshold), np.float32), {'rule': 'global threshold'}
    if options.rule == 'topk':
        return None, {'rule': f'top-{options.topk}'}
    thresholds, mixture, floor = gmm_thresholds(mixtures, evidence_val, val_given, options)
    details = {
        'rule': (
            f'per-class Gaussian mixture on log-odds, posterior >= {options.gmm_min_posterior:g}, and at least '
            f'the {options.positive_floor:g} quantile of the evidence of held-out images given the class'
        ),
        'mixture_log_odds': _finite_or_none(mixture),
        'floor_log_odds': _finite_or_none(floor),
        'means': np.asarray(mixtures.means).tolist(),
        'variances': np.asarray(mixtures.variances).tolist(),
        'weights': np.asarray(mixtures.weights).tolist(),
        'rejected': {str(c): why for c, why in enumerate(mixtures.reasons) if why},
    }
    return thresholds, details


def calibrated_thresholds(evidence_val, val_labels, seed: int):
    """'calibrated': thresholds tuned on a seeded half of multi-label validation labels (`val_labels`, a
    LabelTable); raises ConfigError when they hold one label per image."""
    if val_labels.num_labels().max() <= 1:
        raise ConfigError(
            [
                "config.relabel.assign='calibrated' tunes thresholds on multi-label validation labels, but the "
                "validation labels hold one label per image; use 'gmm' (the default)"
            ]
        )
    half = np.sort(np.random.default_rng([seed, 17]).permutation(len(evidence_val))[: len(evidence_val) // 2])
    t = assign.calibrate_thresholds(evidence_val[half], val_labels.dense(half))
    return t, {'rule': 'calibrated on half of the validation labels', 'calibration_rows': int(half.size)}


def threshold_evidence(ev: np.ndarray, thresholds, options: AssignOptions) -> np.ndarray:
    """`[R, C]` bool: the evidence `ev [R, C]` at or above each class's threshold (top-k when None)."""
    if thresholds is None:
        floor = float(to_log_odds(options.min_conf)) if options.min_conf else -np.inf
        return np.asarray(assign.assign_topk(ev, options.topk, floor))
    return ev >= thresholds[None, :]


def heldout_checks(evidence_val: np.ndarray, thresholds, mixtures, given_val, options: AssignOptions) -> dict:
    """The truth-free statistics of a round's rule on the held-out images (what `select.guard` and the round
    choice read): `select.heldout_stats`, `select.addition_precision` and `select.heldout_mixture_f1`."""
    assigned = threshold_evidence(evidence_val, thresholds, options)
    info = select.heldout_stats(assigned, given_val)
    info.update(select.addition_precision(assigned, evidence_val, given_val))
    posterior = relabel_mixtures.gmm_posterior(mixtures, evidence_val, monotone=True)
    info.update(select.heldout_mixture_f1(assigned, posterior, given_val, mixtures.valid))
    return info


@dataclasses.dataclass(frozen=True)
class RoundEvidenceArrays:
    """One round's evidence: `train_dense(rows) -> [len(rows), C]` log-odds of training images (so large
    datasets densify a chunk at a time), `num_train`, the held-out `evidence_val [M, C]`, the given labels
    `train_given [N]` and `val_given [M]` (-1: none), and optionally `fixed_thresholds` (from elsewhere,
    e.g. 'calibrated') and exclusive attribute groups `group_bounds` with `given_dense(rows) -> [R, C]`."""

    train_dense: Callable
    num_train: int
    evidence_val: np.ndarray
    train_given: np.ndarray
    val_given: np.ndarray
    fixed_thresholds: tuple | None = None
    group_bounds: tuple = ()
    given_dense: Callable | None = None


def assign_round(evidence: RoundEvidenceArrays, options: AssignOptions) -> RoundLabels:
    """Labels of every training image from one round's evidence (see `RoundEvidenceArrays`), the rule's
    thresholds and the held-out checks with the guard's flags."""
    mixtures = fit_mixtures(evidence.train_dense, evidence.num_train, options)
    if evidence.fixed_thresholds is not None:
        thresholds, details = evidence.fixed_thresholds
    else:
        thresholds, details = rule_thresholds(evidence.evidence_val, evidence.val_given, mixtures, options)
    info = heldout_checks(evidence.evidence_val, thresholds, mixtures, evidence.val_given, options)
    lists, scores = [], []
    for start in range(0, evidence.num_train, CHUNK):
        rows = np.arange(start, min(start + CHUNK, evidence.num_train))
        ev = evidence.train_dense(rows)
        assigned = threshold_evidence(ev, thresholds, options)
        if evidence.group_bounds:  # one value per attribute group (the given one first)
            given_here = evidence.given_dense(rows) > 0 if options.keep_given else np.full(len(rows), -1)
            assigned = relabel_groups.enforce_groups(assigned, ev, evidence.group_bounds, given_here)
        chunk_lists, chunk_scores = assign.finalize_labels(
            assigned,
            evidence.train_given[rows],
            keep_given=options.keep_given,
            conf=to_probability(ev).astype(np.float32),
            max_labels=options.max_labels or None,
        )
        lists += chunk_lists
        scores += chunk_scores
    per_image = float(np.mean([len(x) for x in lists])) if lists else 0.0
    info['flags'] = select.guard(
        per_image, info, options.min_recall, options.max_excess, options.min_addition_precision
    )
    return RoundLabels(lists, scores, thresholds, details, info)


def thresholds_json(thresholds, details, class_names, assign_name: str) -> dict:
    """thresholds.json: the per-class thresholds behind a round's labels, on the crop evidence of `relabel`
    (each crop's log-odds aggregated over the image's crops by `relabel.aggregate`, averaged over rounds).
    `log_odds` is exact (null: the class adds no label); `thresholds` gives the same as probabilities (1.0:
    never)."""
    doc = {
        'rule': details.get('rule'),
        'assign': assign_name,
        'space': 'probability',
        'evidence': 'crops',
        'classes': list(class_names),
    }
    if thresholds is not None:
        doc['log_odds'] = _finite_or_none(thresholds)
        doc['thresholds'] = [float(to_probability(t)) if np.isfinite(t) else 1.0 for t in thresholds]
    doc['details'] = {key: v for key, v in details.items() if key != 'rule'}
    return doc


def thresholds_from_json(values) -> np.ndarray:
    """`[C]` float64 log-odds from a thresholds file's `log_odds` list (null: +inf, the class adds no label): the
    inverse of `thresholds_json`."""
    return np.asarray([np.inf if v is None else float(v) for v in values], np.float64)


def _finite_or_none(values) -> list:
    return [float(t) if np.isfinite(t) else None for t in values]
