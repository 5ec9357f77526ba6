"""The label sets a finished run predicts for new images, by the rule its own labels were made with.

A relabel round's `thresholds.json` holds per-class thresholds on the *crop evidence* (`"evidence": "crops"`):
for each class, its crops' log-odds aggregated over the image's crops (`relabel.aggregate`: by default the mean of
the two best crops; `relabel.score.make_score_fn`), compared with `"log_odds"` (null: the class is never
assigned). Predicting with those thresholds on whole-image probabilities would apply them to another quantity,
so a run whose chosen (or requested) round has such a file predicts on the same crop evidence with that round's
model. Every other run (supervised, MILe, ReLabel maps, partial labels, a relabel run whose output is round 0)
predicts on whole-image probabilities: `p > threshold` per class (its per-class `thresholds` in probability
space when saved, else `config.eval.threshold`), and a group-softmax head takes each group's argmax. When no class passes, the set is
the argmax of the evidence: every image gets at least one label, without needing a given label.

Any run's model can also be asked for the crop evidence (`evidence='crops'`): a model trained on single labels
learns each image's main object, and every window of the grid makes some object the main one, so the crops find
the objects its whole-image probabilities rank low (built-in scenes, 3 seeds: softmax cross-entropy's val mAP
0.59 on whole images, 0.77 on crops at 10 epochs, 0.69 and 0.91 at 30; the full-label model's 0.70 / 0.75 and
0.93 / 0.94; docs/compare.md). Runs
without a `relabel` config use the relabel recipe's crops with one naive pass (`crop_settings`). Their sets use
`<workdir>/crop_thresholds.json` when the run has one (`fit_crop_thresholds`, which `mlrelabel-predict` fits and
saves), else the log-odds of `threshold` or `config.eval.threshold`, with a note that it is not calibrated.

`rule(run, round, threshold, evidence)` reads the rule, `apply_rule(scores, rule)` is the pure decision,
`crop_evidence_fn` builds the compiled crop-evidence function (batched like `train.inference.Predictor`) and
`predict_labels` (what `Run.predict_labels` runs) puts them together.
"""

from __future__ import annotations

import json
import os

import numpy as np

EVIDENCE = ('crops', 'image', 'groups')
REQUESTS = (None, 'image', 'crops')  # what a caller may ask for (None: the run's own rule)
CROP_THRESHOLDS = 'crop_thresholds.json'  # per-class crop thresholds fitted for a run whose rounds made none
# Crop evidence ranks well (val mAP) but one probability threshold on it is not calibrated: the two best windows
# of a class are often high on images without it (3,000 photo scenes, threshold 0.5: 4.7-8.4 labels per image
# against 1.85 true). Thresholds fitted as a relabel round fits them (`fit_crop_thresholds`: 1.7 labels per image,
# sample-F1 0.85-0.89 on held-out photos) are what predict uses; without them, it says so.
UNCALIBRATED_CROPS = (
    'one threshold on crop evidence is not calibrated for this run: the scores rank images well, but the sets '
    'hold too many labels at 0.5 (photo scenes: 4.7-8.4 per image against 1.85 true); fit per-class thresholds '
    '(mlrelabel-predict does, on the run\'s validation images) or choose --threshold'
)


def fit_crop_thresholds(evidence, given, rc) -> tuple[np.ndarray, dict]:
    """Per-class thresholds `[C]` on crop evidence (log-odds; +inf: never), fitted as a relabel round fits them
    (`relabel.rule.thresholds_from_config`, 'gmm'): a two-component mixture per class on `evidence [N, C]`,
    posterior >= `rc.gmm_min_posterior`, and at least the `rc.positive_floor` quantile of the evidence of the
    images given that class (`given [N]` int, -1: none). Only single labels are read: no multi-label truth."""
    from mlrelabel.relabel import mixtures as relabel_mixtures
    from mlrelabel.relabel.rule import gmm_thresholds

    evidence = np.asarray(evidence, np.float32)
    mixtures = relabel_mixtures.fit_class_gmms(
        evidence,
        relabel_mixtures.GmmOptions(
            max_samples=rc.gmm_max_samples, seed=0, space='log_odds', min_separation=rc.gmm_min_separation
        ),
    )
    thresholds, _, _ = gmm_thresholds(mixtures, evidence, given, rc)
    details = {
        'rule': (
            f'per-class Gaussian mixture on crop log-odds, posterior >= {rc.gmm_min_posterior:g}, and at least the '
            f'{rc.positive_floor:g} quantile of the evidence of images given the class'
        ),
        'images': int(len(evidence)),
        'rejected': {str(c): why for c, why in enumerate(mixtures.reasons) if why},
    }
    return thresholds.astype(np.float64), details


def read_crop_thresholds(run) -> tuple[np.ndarray | None, str]:
    """`(log-odds [C] or None, path)` of `<workdir>/crop_thresholds.json` (`fit_crop_thresholds`, saved by
    predict); None without the file or when it was fitted for another model than the run's chosen one."""
    path = os.path.join(run.workdir, CROP_THRESHOLDS)
    if not os.path.exists(path):
        return None, path
    doc = _read(path)
    if (doc.get('checkpoint'), doc.get('step')) != (run.manifest.get('checkpoint'), run.step()):
        return None, path  # stale: the run has trained on or chosen another round since
    from mlrelabel.relabel.rule import thresholds_from_json

    values = thresholds_from_json(doc.get('log_odds') or [])
    _check_length(values, run.num_classes, path)
    return values, path


def crop_settings(config):
    """The crop-evidence settings of a run: its `config.relabel`, or for runs without one (supervised, MILe,
    ReLabel maps, partial labels) the relabel recipe's crops, aggregation and a single naive pass."""
    if 'relabel' in config:
        return config.relabel
    from mlrelabel.config import relabel_config

    return relabel_config('', confidence='naive').relabel


def _read(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def thresholds_doc(run, round: int | None = None) -> tuple[dict | None, str | None]:
    """`(thresholds.json of the round, its path)`: the run's own file for its chosen round (None), else
    `round_<K>/thresholds.json` when that round wrote one; `(None, None)` without."""
    chosen = run.chosen_round
    if round is None or (chosen is not None and int(round) == int(chosen)):
        name = run.manifest.get('thresholds')
        path = os.path.join(run.workdir, name) if name else None
    else:
        path = os.path.join(run.workdir, f'round_{int(round)}', 'thresholds.json')
    if not path or not os.path.exists(path):
        return None, None
    return _read(path), path


def rule(run, round: int | None = None, threshold: float | None = None, evidence: str | None = None) -> dict:
    """How `run` turns images into label sets with `round`'s model (None: the chosen round).

    `evidence`: None follows the run (crop evidence where the round saved crop thresholds, else whole images);
    'image' or 'crops' asks for that evidence whatever the run saved, thresholded at one probability
    (`threshold`, else `config.eval.threshold`) unless the round's own thresholds are on that evidence.
    Returns `{'evidence': 'crops' | 'image' | 'groups', 'space': 'log_odds' | 'probability', 'thresholds': [C]
    float64 (+inf: never) or None, 'topk': k or None, 'source': where the thresholds come from[, 'note': a warning
    for the user]}`. A global
    probability `threshold` replaces the per-class ones, on the same evidence (log-odds of it for crops).
    """
    if evidence not in REQUESTS:
        raise ValueError(f"evidence={evidence!r}: expected 'image', 'crops' or None (the run's own rule)")
    info = run.round_info(round)
    if info['head'] == 'group_softmax':
        if evidence == 'crops':
            raise ValueError(
                f'{run.workdir}: a group-softmax head predicts each group\'s argmax, not crop evidence'
            )
        return {
            'evidence': 'groups',
            'space': 'probability',
            'thresholds': None,
            'topk': None,
            'source': 'argmax',
        }
    doc, path = thresholds_doc(run, round)
    own_crops = doc is not None and doc.get('evidence') == 'crops'
    if evidence == 'crops' and not own_crops:  # an image run asked for crops
        return _asked_crop_rule(run, round, threshold)
    if own_crops and evidence != 'image':
        return _own_crop_rule(run, doc, path, threshold)
    return _image_rule(run, None if own_crops else doc, path, threshold)


def _asked_crop_rule(run, round: int | None, threshold: float | None) -> dict:
    """`rule` on crop evidence for a run whose round saved none: the crop thresholds fitted afterwards
    (`fit_crop_thresholds`, chosen round only), else one probability on the crop evidence."""
    from mlrelabel.relabel.evidence import to_log_odds

    fitted, fitted_path = read_crop_thresholds(run) if round is None else (None, '')
    if fitted is not None and threshold is None:
        return {
            'evidence': 'crops',
            'space': 'log_odds',
            'thresholds': fitted,
            'topk': None,
            'source': fitted_path,
        }
    t = float(threshold if threshold is not None else run.config.eval.threshold)
    source = f'--threshold={t:g}' if threshold is not None else f'config.eval.threshold={t:g}'
    return {
        'evidence': 'crops',
        'space': 'log_odds',
        'thresholds': np.full(run.num_classes, float(to_log_odds(t))),
        'topk': None,
        'source': f'{source} on crop evidence',
        **({'note': UNCALIBRATED_CROPS} if threshold is None else {}),  # a threshold the user chose: theirs
    }


def _own_crop_rule(run, doc: dict, path: str, threshold: float | None) -> dict:
    """`rule` of a relabel round on its crop evidence: its thresholds.json (`doc` at `path`: per-class log-odds,
    or a top-k), or one probability `threshold`."""
    from mlrelabel.relabel.evidence import to_log_odds

    c = run.num_classes
    if threshold is not None:
        values, source = np.full(c, float(to_log_odds(threshold))), f'--threshold={threshold:g}'
    elif doc.get('log_odds') is not None:
        from mlrelabel.relabel.rule import thresholds_from_json

        values = thresholds_from_json(doc['log_odds'])
        source = path
    else:  # a top-k round: the same k on the crop evidence
        k = int(run.config.relabel.topk)
        return {'evidence': 'crops', 'space': 'log_odds', 'thresholds': None, 'topk': k, 'source': path}
    _check_length(values, c, path)
    exclusive = bool(run.config.relabel.exclusive_groups)
    return {
        'evidence': 'crops',
        'space': 'log_odds',
        'thresholds': values,
        'topk': None,
        'source': source,
        'groups': [[a, b] for _, a, b in run.groups] if exclusive else [],
    }


def _image_rule(run, doc: dict | None, path: str, threshold: float | None) -> dict:
    """`rule` on whole images: one probability `threshold`, the per-class probabilities of `doc` (at `path`;
    None: none on whole images), or `config.eval.threshold`."""
    c = run.num_classes
    if threshold is not None:
        values, source = np.full(c, float(threshold)), f'--threshold={threshold:g}'
    elif (
        doc is not None
        and doc.get('thresholds') is not None
        and doc.get('space', 'probability') == 'probability'
    ):
        values, source = np.asarray(doc['thresholds'], np.float64), path
    else:
        t = float(run.config.eval.threshold)
        values, source = np.full(c, t), f'config.eval.threshold={t:g}'
    _check_length(values, c, source)
    return {'evidence': 'image', 'space': 'probability', 'thresholds': values, 'topk': None, 'source': source}


def _check_length(values: np.ndarray, num_classes: int, where) -> None:
    if values.shape != (num_classes,):
        raise ValueError(
            f'{where}: {values.shape[0] if values.ndim else 0} thresholds for {num_classes} classes'
        )


def apply_rule(scores: np.ndarray, rule: dict, groups=()) -> list[list[int]]:
    """Label sets from `scores [N, C]` (the rule's evidence: log-odds for crops, probabilities for images).

    Crops: `log_odds >= threshold` (as the relabel round assigned them), at most one value per attribute group
    when the rule has `groups` (`[[start, stop]]`, `relabel.exclusive_groups`). Images: `p > threshold`. Top-k:
    the k highest. A group-softmax head (`groups` = `[(name, start, stop)]`): each group's argmax. Nothing
    passing: the argmax.
    """
    scores = np.asarray(scores)
    if rule['evidence'] == 'groups':
        return [[a + int(row[a:b].argmax()) for _, a, b in groups] for row in scores]
    if rule['topk']:
        k = min(int(rule['topk']), scores.shape[1])
        order = np.argsort(-scores, axis=1, kind='stable')[:, :k]
        return [sorted(int(c) for c in row) for row in order]
    t = np.asarray(rule['thresholds'])[None, :]
    passed = scores >= t if rule['evidence'] == 'crops' else scores > t
    if rule.get('groups'):  # exclusive attribute groups, as the relabel rounds kept them
        from mlrelabel.relabel.groups import enforce_groups

        passed = enforce_groups(passed, scores, rule['groups'], np.full(len(scores), -1))
    out = []
    for row, ok in zip(scores, passed):
        ids = np.flatnonzero(ok)
        out.append([int(c) for c in ids] if ids.size else [int(row.argmax())])
    return out


def predict_labels(
    run, images, round=None, threshold=None, evidence=None
) -> tuple[list[list[int]], np.ndarray]:
    """`(label sets, scores [N, C] float32)` for uint8 images (`Run.predict_labels`): the rule's evidence as
    probabilities (crop evidence for relabel rounds or when asked for, else whole-image probabilities) and the
    sets it gives."""
    from mlrelabel.relabel.evidence import to_probability

    r = rule(run, round, threshold, evidence)
    if r['evidence'] != 'crops':
        probs = run.predict(images, round)
        return apply_rule(probs, r, run.groups), probs
    log_odds = crop_scores(run, images, round)
    return apply_rule(log_odds, r), to_probability(log_odds).astype(np.float32)


def crop_scores(run, images, round=None) -> np.ndarray:
    """Crop evidence `log_odds [N, C]` float32 of `round`'s model (None: the chosen one) for uint8 images of any
    size (resized and centre-cropped like training images), with the run's crop settings (`crop_settings`)."""
    from mlrelabel.train import inference

    info = run.round_info(round)
    images = inference.prepare_images(images, run.image_size)
    if not len(images):
        return np.zeros((0, run.num_classes), np.float32)
    key = ('crops', info['checkpoint'])  # compiled once per round, beside the round's logits function
    if key not in run._models:
        model = run._model(info['checkpoint'])
        run._models[key] = crop_evidence_fn(run, info['head'], model.variables, model.step)
    return run._models[key](images)


def crop_evidence_fn(run, head: str, variables, step: int):
    """`images uint8 [N, S, S, 3] -> log_odds [N, C]` float32: the crop evidence of the relabel rounds
    (`relabel.score.make_score_fn` with the run's `crop_settings`), compiled once per batch bucket.

    Monte-Carlo samples (MC dropout, perturbations) use one fixed key derived from the run's seed, so the same
    images in the same order give the same evidence."""
    import jax

    from mlrelabel.relabel.score import ScoreOptions, make_score_fn
    from mlrelabel.train.inference import Predictor

    m = run.manifest
    rc = crop_settings(run.config)
    options = ScoreOptions.from_relabel(rc, mean=m['mean'], std=m['std'], image_size=run.image_size)
    score = make_score_fn(run._build_model(), head, options)
    key = jax.random.PRNGKey(int(run.config.seed))
    batch = int(rc.batch_size or run.batch_size)
    return Predictor(lambda v, x: score(v, x, key)['log_odds'], variables, batch, step)
