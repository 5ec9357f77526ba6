"""Choosing labels without multi-label truth: held-out statistics of an assignment, and the best round.

Users have one given label per image for train and val, nothing more. Everything here decides from those
alone; multi-label truth (the built-in data's hidden sets, ReaL) may score a run but never reaches a function
of this module (`TRUTH_FREE_METRICS` lists what a round may be chosen on).

- `heldout_stats`: an assignment applied to held-out validation images (scored by the same model as the
  training images) against their given labels: the recall of the given label, labels per image, and the
  positive-unlabeled criterion of Lee & Liu (2003, "Learning with positive and unlabeled examples using
  weighted logistic regression"): `r^2 / P(assigned)` is proportional to precision × recall of a class
  without knowing its negatives, because precision = r π / P(assigned) for class prior π.
- `heldout_mixture_f1`: the F1 an assignment of held-out images should have if the per-class mixtures fitted to
  the training evidence are right: each held-out image's posterior of the high component stands in for the
  unknown truth (the given label counts as certain). Unlike the PU score it does not assume that the given
  label is a random one of an image's objects; when it is the most salient one (ImageNet, the built-in digit
  scenes), the PU score falls with every correct label added, and on digit scenes of another composition it
  chose round 1 (label F1 0.770) over round 3 (0.837), while this estimate rose with the labels' F1 in every
  round (benchmarks/history/label-quality.md).
- `gate`: round 1's model against a control trained the same way on the given labels: do the labels help?
- `addition_precision`: how many of an assignment's additions on held-out images look like objects, judged
  against the evidence of the images given the same class.
- `guard`: flags a round whose labels cannot be trusted (evidence that misses the given labels held out,
  additions that look like errors, or more labels on training images than held-out images get).
- `stop_reason` and `choose_round`: when to stop, and the round whose labels become the output; never a
  flagged round, and the given labels when no relabeled round passes.
- `underfit_note`: says when a round's model ended under-trained (its training loss hardly left its first
  epoch's level); round 0's model scores round 1's crops, so the run tells the user to train it longer.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# A round whose last epoch's mean training loss is above this fraction of its first epoch's is under-trained.
# Round 0 on 3,000 photo scenes whose loss stayed at chance for half its epochs ended at 0.54 (validation top-1
# 0.46); the same data and seed leaving chance in time ended at 0.24 (0.72); rounds 0 of the digit compositions
# end at 0.12-0.21 (BENCHMARKS.md).
UNDERFIT_RATIO = 0.4

# Metrics that need nothing but the given labels (see mlrelabel.eval.evaluate): a round may be chosen on these.
TRUTH_FREE_METRICS = (
    'val_top1', 'val_top5', 'val_given_map', 'heldout_pu_score', 'heldout_given_recall', 'heldout_mixture_f1',
)  # fmt: skip


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


def addition_precision(
    assigned: np.ndarray, evidence: np.ndarray, given: np.ndarray, quantile: float = 0.25
) -> dict:
    """Do a rule's additions on held-out images look like objects, or like its errors? From given labels only.

    `assigned [M, C]` bool, `evidence [M, C]` (what the rule thresholded) and the given labels `[M]` (-1: none)
    of held-out images. The known positives of class c are the held-out images given c. An added label of c
    that marks an object recognised as well as those reaches their lower `quantile` (of evidence) with
    probability `1 - quantile`; a wrong one (a confusion with the object the image holds, clutter) sits just
    above the threshold, below almost every known positive. Hence the estimate precision ≈ (share of additions
    that reach their class's `quantile`) / (1 - quantile), capped at 1. The lower quartile rather than the
    median because added objects are often smaller than the given one and score lower. Meaningful while the
    rule's own floor (`relabel.positive_floor`, 0.05) lies below `quantile`. Measured (benchmarks/history/label-quality.md): on
    one-object digit images, where every addition is wrong, 5-14 % of them reached the quartile (estimate
    0.07-0.19); on multi-object scenes of two compositions 61-84 % (0.81-1.0).

    Returns `heldout_additions_judged` (additions of classes with known positives held out; the others cannot
    be judged) and, when there are any, `heldout_additions_like_positives` (the share that reach the quantile)
    and `heldout_addition_precision`.
    """
    assigned = np.asarray(assigned, bool)
    evidence = np.asarray(evidence, np.float32)
    given = np.asarray(given)
    if assigned.shape != evidence.shape or given.shape != (assigned.shape[0],):
        raise ValueError(
            f'addition_precision: assigned {assigned.shape}, evidence {evidence.shape} and given {given.shape} '
            'must be [M, C], [M, C] and [M]'
        )
    if not 0 <= quantile < 1:
        raise ValueError(f'addition_precision: quantile must lie in [0, 1), got {quantile!r}')
    added = assigned.copy()
    rows = np.flatnonzero(given >= 0)
    added[rows, given[rows]] = False
    reached, judged = 0, 0
    for c in np.unique(given[rows]):
        mask = added[:, c]
        if mask.any():
            reference = np.quantile(evidence[given == c, c], quantile)
            reached += int((evidence[mask, c] >= reference).sum())
            judged += int(mask.sum())
    out = {'heldout_additions_judged': judged}
    if judged:
        share = reached / judged
        out.update(
            heldout_additions_like_positives=share,
            heldout_addition_precision=min(1.0, share / (1.0 - quantile)),
        )
    return out


def heldout_mixture_f1(
    assigned: np.ndarray, posterior: np.ndarray, given: np.ndarray, valid: np.ndarray
) -> dict:
    """`{'heldout_mixture_f1'}`: the expected F1 of an assignment `assigned [M, C]` bool of held-out images
    under the mixtures' posterior `posterior [M, C]` (the probability that class c is in image m), with the
    given labels `[M]` (-1: none) certain and assigned. Only classes whose mixture is usable (`valid [C]`)
    count; without any the estimate is absent (the round cannot be chosen on it).

    Expected true positives TP = sum of the posterior over assigned entries; expected positives P = sum of the
    posterior over all entries; F1 = 2 TP / (|assigned| + P), summed over images and classes (micro).
    """
    assigned = np.array(assigned, bool)
    posterior = np.array(posterior, np.float64)
    given = np.asarray(given)
    valid = np.asarray(valid, bool)
    if assigned.shape != posterior.shape or assigned.shape[1] != valid.shape[0]:
        raise ValueError(
            f'heldout_mixture_f1: assigned {assigned.shape}, posterior {posterior.shape} and valid {valid.shape} '
            'must be [M, C], [M, C] and [C]'
        )
    rows = np.flatnonzero(given >= 0)
    posterior[rows, given[rows]] = 1.0
    assigned[rows, given[rows]] = True
    if not valid.any():
        return {}
    a, q = assigned[:, valid], posterior[:, valid]
    denominator = a.sum() + q.sum()
    return {'heldout_mixture_f1': float(2.0 * (q * a).sum() / denominator) if denominator else 0.0}


def gate(row: dict, metric: str, min_delta: float) -> str | None:
    """Why round 1's labels do not help (None: they do).

    Round 1 is trained twice from round 0's weights with the same data order and keys: once on the new labels,
    once on the given labels (the control, `row['control']`). The new labels help only if their model beats
    the control on the truth-free `metric` of the validation set by more than `min_delta`; longer training
    alone, which lifts every later round, cannot pass this test.
    """
    control = row.get('control') or {}
    if metric not in row or metric not in control:
        return None
    if row[metric] > control[metric] + min_delta:
        return None
    return (
        f'the model trained on the new labels is not better than the same training on the given labels '
        f'({metric} {row[metric]:.4f} vs {control[metric]:.4f})'
    )


def guard(
    labels_per_image: float,
    stats: dict,
    min_recall: float = 0.5,
    max_excess: float = 0.5,
    min_addition_precision: float = 0.5,
) -> list[str]:
    """Reasons a round's labels must not become the output, from statistics that need no truth.

    - the held-out assignment finds the given label on fewer than `min_recall` of the validation images: the
      evidence does not recognise the classes reliably, so its extra labels cannot be trusted either;
    - the estimated precision of the held-out additions (`addition_precision`) is below
      `min_addition_precision`: the additions look like the rule's errors, as on images that hold one object.
      0.5 is where an added label stops paying in sample-F1: on an image whose given label is right, a correct
      addition to a two-object image gains what a wrong one on a one-object image loses (1/3);
    - the training images get more than `max_excess` labels per image more than held-out images under the same
      rule (`heldout_labels_per_image`, a data-driven estimate of the positives per image): the surplus comes
      from the model remembering its training images, not from what is in them.
    """
    flags = []
    recall = stats['heldout_given_recall']
    if recall < min_recall:
        flags.append(f'the evidence finds the given label on only {recall:.0%} of held-out images')
    precision = stats.get('heldout_addition_precision')
    if precision is not None and precision < min_addition_precision:
        flags.append(
            f'its additions look like errors, not objects: only {stats["heldout_additions_like_positives"]:.0%} '
            'of those on held-out images reach the lower quartile of the evidence of the images given the class '
            f'(estimated precision {precision:.2f} < {min_addition_precision:g})'
        )
    bound = stats['heldout_labels_per_image'] + max_excess
    if labels_per_image > bound:
        flags.append(
            f'{labels_per_image:.2f} labels per image on training images vs '
            f'{stats["heldout_labels_per_image"]:.2f} held out'
        )
    return flags


def stop_reason(
    rows: list[dict],
    metric: str,
    patience: int,
    stable_fraction: float,
    num_images: int,
    tolerance: float = 0.0,
    from_round: int = 0,
) -> str | None:
    """Why the rounds should stop after the last row (None: go on): a flag, stable labels, or `patience` rounds
    whose `metric` stayed more than `tolerance` (relative) below the best before them.

    `from_round` > 0 (`relabel.stop_from_round`): the metric stops the rounds only from that round on, and round
    1 is no reference for the best: its metric comes from round 0's models alone and is on another scale than
    later rounds' (`choose_round`'s `round1_margin`). Replayed on 34 recorded runs, stopping from round 4 at
    the first round that does not beat rounds 2.. (patience 1, tolerance 0) gave the same output labels'
    F1 on average, worst -0.002, with 4.9 rounds instead of 5.6 (BENCHMARKS.md: Main job time)."""
    last = rows[-1]
    if last['round'] == 0:
        return None
    if last.get('flags'):
        return f'round {last["round"]} was flagged: {"; ".join(last["flags"])}'
    if last['round'] >= 2 and last.get('images_changed', num_images) <= stable_fraction * num_images:
        return f'the labels are stable ({last["images_changed"]} images changed in round {last["round"]})'
    if last['round'] < from_round:
        return None
    first = 2 if from_round else 1  # the first round whose metric counts
    values = [r.get(metric) if r['round'] >= first and not r.get('flags') else None for r in rows]
    if len(values) > patience + 1:
        before = [v for v in values[:-patience] if v is not None]
        recent = [v for v in values[-patience:] if v is not None]
        top = max(before) if before else None
        if before and all(v <= top - tolerance * abs(top) for v in recent):
            return f'{metric} stayed below its best for {patience} round(s)'
    return None


def choose_round(
    rows: list[dict], metric: str, tolerance: float = 0.0, round1_margin: float = 0.0
) -> tuple[int, str]:
    """`(round, reason)`: the round whose labels become the output, without multi-label truth.

    Round 0 holds the given labels. Flagged rounds (`row['flags']`: the guard, or round 1 failing the control
    comparison of `gate`) are never chosen. Among the other relabeled rounds, the latest whose `metric` is within
    `tolerance` (relative) of the best wins; 0 (the default recipe's `relabel.choose_tolerance`) takes the best.
    A tolerance suits a noisy metric whose later rounds are better (the PU score on digit scenes: a round 2 %
    below the best held labels 0.007 F1 better); with the held-out mixture F1 it gave away the best round on photo
    scenes whose later rounds add too many labels (benchmarks/history/label-quality.md). Without any, the given labels stay, and the
    reason says so.

    Round 1's `metric` is measured on evidence from round 0's models alone (softmax, trained on the given labels);
    later rounds' on evidence that includes models trained on relabeled data, and the two are not on one scale.
    With `round1_margin` > 0, round 1 is chosen over a later unflagged round only when its `metric` leads the
    best of them by more than that fraction: in 34 recorded runs round 1 led by 0.7 % and 1.1 %, both times with
    worse labels than a later round's (-0.008 and -0.028 F1); the one run whose round 1 made the best labels
    beat round 2 by 0.001 F1 (benchmarks/history/label-quality.md: "Round 1 needs a clear lead").
    """
    if metric not in TRUTH_FREE_METRICS:
        raise ValueError(
            f'choose_round: {metric!r} is not a truth-free metric; expected one of {TRUTH_FREE_METRICS}'
        )
    if not 0 <= tolerance < 1:
        raise ValueError(f'choose_round: tolerance must be in [0, 1), got {tolerance!r}')
    if not 0 <= round1_margin < 1:
        raise ValueError(f'choose_round: round1_margin must be in [0, 1), got {round1_margin!r}')
    if not rows or rows[0]['round'] != 0:
        raise ValueError('choose_round: rows must start with round 0 (the given labels)')
    candidates = [r for r in rows[1:] if not r.get('flags') and r.get(metric) is not None]
    note = ''
    later = [r for r in candidates if r['round'] >= 2]
    if round1_margin > 0 and later and candidates[0]['round'] == 1:
        first, top_later = candidates[0], max(r[metric] for r in later)
        if first[metric] > top_later and first[metric] <= top_later + round1_margin * abs(top_later):
            candidates = later
            note = (
                f' (round 1, {first[metric]:.4f}, led by less than {round1_margin:.0%}: its evidence came from '
                'the models trained on the given labels alone)'
            )
    if candidates:
        top = max(r[metric] for r in candidates)
        near = [r for r in candidates if r[metric] >= top - tolerance * abs(top)]
        best = max(near, key=lambda r: r['round'])
        if best[metric] >= top:
            return best['round'], (
                f'round {best["round"]} has the best {metric} of the relabeled rounds ({top:.4f}){note}'
            )
        return best['round'], (
            f'round {best["round"]} is the latest relabeled round whose {metric} ({best[metric]:.4f}) is within '
            f'{tolerance:.0%} of the best ({top:.4f}){note}'
        )
    flagged = [f'round {r["round"]}: {"; ".join(r["flags"])}' for r in rows[1:] if r.get('flags')]
    return 0, 'no relabeled round passed the checks' + (f' ({" | ".join(flagged)})' if flagged else '')


@dataclasses.dataclass(frozen=True)
class ChooseOptions:
    """How the output round is chosen (`choose_round`; the defaults are `config.relabel`'s).

    metric: the truth-free metric compared (one of TRUTH_FREE_METRICS).
    tolerance: the latest round within this fraction of the best wins (`relabel.choose_tolerance`).
    round1_margin: round 1 wins over a later round only with this lead (fraction).
    """

    metric: str = 'heldout_mixture_f1'
    tolerance: float = 0.0
    round1_margin: float = 0.02

    @classmethod
    def from_config(cls, config) -> 'ChooseOptions':
        rc = config.relabel
        return cls(metric=rc.metric, tolerance=rc.choose_tolerance, round1_margin=rc.round1_margin)


def choose_configured_round(rows: list[dict], options: ChooseOptions) -> tuple[int, str]:
    """`choose_round` with `options` (`ChooseOptions.from_config(config)`)."""
    return choose_round(rows, options.metric, options.tolerance, options.round1_margin)


def underfit_note(history: list[dict], max_ratio: float = UNDERFIT_RATIO) -> str | None:
    """A note when a training phase ended under-trained, else None: the mean training loss of its last epoch is
    still above `max_ratio` of its first epoch's (`history`: one row per epoch with `train_loss`; the first epoch
    sits near chance whatever the loss). With blended targets (mixup) the loss cannot fall below the targets'
    entropy, `train_loss_floor`: the excess over it is compared. Reads only the training loss: no labels, no
    truth."""
    losses = [
        float(h['train_loss']) - float(h.get('train_loss_floor', 0.0))
        for h in history
        if h.get('train_loss') is not None
    ]
    if len(losses) < 2 or losses[0] <= 0:
        return None
    ratio = losses[-1] / losses[0]
    if ratio <= max_ratio:
        return None
    what = 'the training loss' + (' above its floor' if any('train_loss_floor' in h for h in history) else '')
    return (
        f'{what} fell only from {losses[0]:.2f} to {losses[-1]:.2f} in {len(losses)} epochs '
        f'({ratio:.0%} of its first epoch): the model is under-trained'
    )


def chance_note(top1: float | None, given: np.ndarray, num_classes: int) -> str | None:
    """A note when a model's validation top-1 on the given labels `given [M]` (-1: none) is within noise of
    chance, else None. Chance is the share of the most frequent given class (always guessing it); noise is two
    binomial standard deviations of an accuracy at that rate on M images. Reads only the given labels."""
    given = np.asarray(given)
    given = given[given >= 0]
    if top1 is None or not given.size:
        return None
    chance = float(np.bincount(given, minlength=num_classes).max() / given.size)
    noise = 2.0 * float(np.sqrt(chance * (1.0 - chance) / given.size))
    if top1 > chance + noise:
        return None
    return (
        f'round 0\'s model learnt nothing usable: its validation top-1 ({top1:.3f}) is within noise of chance '
        f'({chance:.3f} ± {noise:.3f} on {given.size} images), so its crop evidence cannot find missing labels. '
        'Remedies: more images per class; a model you already have as round 0 '
        '(--config.relabel.round0_checkpoint=PATH, e.g. torchvision:resnet50 with --config.model.name=resnet50) '
        'or pretrained weights (--config.model.pretrained=torchvision:resnet50); or more training steps '
        '(--config.train.min_steps)'
    )
