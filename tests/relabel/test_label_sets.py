"""Which rule a finished run predicts label sets with (`mlrelabel.relabel.label_sets.rule`) and the pure decision
(`apply_rule`), on hand-made thresholds files and scores."""

import json
import types

import ml_collections
import numpy as np
import pytest

from mlrelabel.relabel import label_sets
from mlrelabel.relabel.evidence import to_log_odds


def _run(tmp_path, chosen=2, exclusive=True, groups=()):
    """A stand-in for `mlrelabel.run.Run` with what `rule` reads: 4 classes, rounds 0-2, chosen round `chosen`."""
    config = ml_collections.ConfigDict(
        {'eval': {'threshold': 0.4}, 'relabel': {'exclusive_groups': exclusive, 'topk': 2}, 'seed': 0}
    )
    heads = {None: 'softmax', 0: 'softmax', 1: 'sigmoid', 2: 'sigmoid'}  # None: a run without rounds
    manifest = {'thresholds': 'thresholds.json' if chosen else None}

    def round_info(r=None):
        r = chosen if r is None else r
        return {'round': r, 'checkpoint': f'round_{r}/checkpoints', 'head': heads[r]}

    return types.SimpleNamespace(
        workdir=str(tmp_path),
        manifest=manifest,
        config=config,
        num_classes=4,
        chosen_round=chosen,
        round_info=round_info,
        groups=list(groups),
    )


def _doc(path, log_odds, **extra):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({'evidence': 'crops', 'space': 'probability', 'log_odds': log_odds, **extra}))


def test_relabel_rounds_use_their_own_crop_thresholds(tmp_path):
    run = _run(tmp_path, groups=[('a', 0, 2), ('b', 2, 4)])
    _doc(tmp_path / 'thresholds.json', [0.0, None, 1.0, 2.0])
    _doc(tmp_path / 'round_1' / 'thresholds.json', [5.0, 5.0, 5.0, 5.0])
    r = label_sets.rule(run)
    assert r['evidence'] == 'crops' and r['space'] == 'log_odds' and r['groups'] == [[0, 2], [2, 4]]
    np.testing.assert_array_equal(r['thresholds'], [0.0, np.inf, 1.0, 2.0])  # null: never
    assert label_sets.rule(run, round=2)['source'] == str(tmp_path / 'thresholds.json')  # the chosen round
    np.testing.assert_array_equal(label_sets.rule(run, round=1)['thresholds'], [5.0] * 4)
    # --threshold: one probability, compared on the same (log-odds) evidence.
    np.testing.assert_allclose(label_sets.rule(run, threshold=0.9)['thresholds'], [to_log_odds(0.9)] * 4)
    # Round 0 wrote no thresholds: whole-image probabilities against config.eval.threshold.
    r0 = label_sets.rule(run, round=0)
    assert r0['evidence'] == 'image' and r0['source'] == 'config.eval.threshold=0.4'
    np.testing.assert_array_equal(r0['thresholds'], [0.4] * 4)
    assert not label_sets.rule(_run(tmp_path, exclusive=False, groups=[('a', 0, 2)]))['groups']


def test_other_rules_probability_thresholds_topk_and_length_check(tmp_path):
    run = _run(tmp_path)
    (tmp_path / 'thresholds.json').write_text(
        json.dumps({'thresholds': [0.1, 0.2, 0.3, 0.4], 'space': 'probability'})
    )
    r = label_sets.rule(run)
    assert r['evidence'] == 'image' and r['thresholds'].tolist() == [0.1, 0.2, 0.3, 0.4]
    _doc(tmp_path / 'thresholds.json', None, assign='topk')
    assert label_sets.rule(run)['topk'] == 2
    _doc(tmp_path / 'thresholds.json', [0.0, 0.0])
    with pytest.raises(ValueError, match='2 thresholds for 4 classes'):
        label_sets.rule(run)


def test_apply_rule_by_hand():
    crops = {'evidence': 'crops', 'thresholds': np.array([0.0, np.inf, 1.0, 2.0]), 'topk': None, 'groups': []}
    scores = np.array([[0.0, 9.0, 0.5, 3.0], [-1.0, 9.0, 0.5, 1.0]])
    assert label_sets.apply_rule(scores, crops) == [[0, 3], [1]]  # >= per class; nothing passes: the argmax
    grouped = dict(crops, groups=[[0, 2], [2, 4]])
    scores = np.array([[0.0, 0.0, 1.5, 3.0]])  # both values of group b pass: the one with more evidence stays
    assert label_sets.apply_rule(scores, grouped) == [[0, 3]]
    image = {'evidence': 'image', 'thresholds': np.array([0.5, 0.5, 0.5, 0.5]), 'topk': None}
    assert label_sets.apply_rule(np.array([[0.5, 0.7, 0.2, 0.9]]), image) == [[1, 3]]  # strictly above
    topk = {'evidence': 'crops', 'thresholds': None, 'topk': 2}
    assert label_sets.apply_rule(np.array([[0.1, 0.7, 0.2, 0.9]]), topk) == [[1, 3]]
    heads = {'evidence': 'groups', 'thresholds': None, 'topk': None}
    assert label_sets.apply_rule(np.array([[0.1, 0.7, 0.9, 0.2]]), heads, [('a', 0, 2), ('b', 2, 4)]) == [
        [1, 2]
    ]


def test_asked_evidence_overrides_the_runs_own_rule(tmp_path):
    run = _run(tmp_path)
    _doc(tmp_path / 'thresholds.json', [0.0, None, 1.0, 2.0], thresholds=[0.5, 1.0, 0.73, 0.88])
    # A relabel round asked for whole images: its thresholds are on crop evidence, so config.eval.threshold.
    r = label_sets.rule(run, evidence='image')
    assert r['evidence'] == 'image' and r['source'] == 'config.eval.threshold=0.4'
    np.testing.assert_array_equal(r['thresholds'], [0.4] * 4)
    own, asked = label_sets.rule(run), label_sets.rule(run, evidence='crops')  # its own crop thresholds
    assert asked['source'] == own['source'] == str(tmp_path / 'thresholds.json')
    np.testing.assert_array_equal(asked['thresholds'], own['thresholds'])
    # An image run (no thresholds file) asked for crops: one threshold, the log-odds of the probability.
    plain = _run(tmp_path / 'plain', chosen=None)
    r = label_sets.rule(plain, round=0, evidence='crops')
    assert r['evidence'] == 'crops' and r['space'] == 'log_odds' and 'crop evidence' in r['source']
    np.testing.assert_allclose(r['thresholds'], [to_log_odds(0.4)] * 4)
    assert r['note'] == label_sets.UNCALIBRATED_CROPS  # the default threshold on crops over-predicts: said
    r = label_sets.rule(plain, round=0, threshold=0.8, evidence='crops')
    np.testing.assert_allclose(r['thresholds'], [to_log_odds(0.8)] * 4)
    assert r['source'] == '--threshold=0.8 on crop evidence' and 'note' not in r
    assert 'note' not in label_sets.rule(run)  # a relabel round's own crop thresholds are fitted
    with pytest.raises(ValueError, match="evidence='pixels'"):
        label_sets.rule(run, evidence='pixels')


def test_crop_settings_are_the_runs_own_or_the_relabel_recipes_naive_grid():
    from mlrelabel.config import base_config, relabel_config

    own = relabel_config('smoke')
    assert label_sets.crop_settings(own) is own.relabel
    settings = label_sets.crop_settings(base_config())
    assert settings.confidence == 'naive' and settings.num_samples == 1
    assert settings.crops.to_dict() == relabel_config().relabel.crops.to_dict()
    assert settings.aggregate == relabel_config().relabel.aggregate


def test_fit_crop_thresholds_separates_a_bimodal_class_and_respects_the_floor():
    from mlrelabel.config import relabel_config

    rng = np.random.default_rng(0)
    n = 400
    present = rng.random((n, 3)) < 0.3
    evidence = np.where(present, rng.normal(4.0, 0.7, (n, 3)), rng.normal(-4.0, 0.7, (n, 3))).astype(
        np.float32
    )
    evidence[:, 2] = rng.normal(0.0, 1.0, n)  # one mode only: the mixture adds nothing for class 2
    given = np.where(present[:, 0], 0, np.where(present[:, 1], 1, -1))
    rc = relabel_config().relabel
    t, details = label_sets.fit_crop_thresholds(evidence, given, rc)
    assert t.shape == (3,) and details['images'] == n and '0.9' in details['rule']
    assert -2.0 < t[0] < 4.0 and -2.0 < t[1] < 4.0  # between the modes, below the positives' mode
    assert t[0] >= np.quantile(evidence[given == 0, 0], rc.positive_floor) - 1e-5  # never below the floor
    assert np.isinf(t[2]) and '2' in details['rejected']
    sets = label_sets.apply_rule(evidence, {'evidence': 'crops', 'thresholds': t, 'topk': None})
    found = np.array([[c in row for c in range(2)] for row in sets])
    assert (found == present[:, :2]).mean() > 0.95


def test_an_image_run_with_fitted_crop_thresholds_uses_them(tmp_path):
    plain = _run(tmp_path, chosen=None)
    plain.manifest['checkpoint'], plain.step = 'checkpoints', lambda: 40
    model = {'checkpoint': 'checkpoints', 'step': 40}
    (tmp_path / label_sets.CROP_THRESHOLDS).write_text(
        json.dumps({'log_odds': [1.0, None, 2.0, 3.0], **model})
    )
    r = label_sets.rule(plain, evidence='crops')
    assert r['source'] == str(tmp_path / label_sets.CROP_THRESHOLDS) and 'note' not in r
    np.testing.assert_array_equal(r['thresholds'], [1.0, np.inf, 2.0, 3.0])
    np.testing.assert_allclose(
        label_sets.rule(plain, threshold=0.8, evidence='crops')['thresholds'], [to_log_odds(0.8)] * 4
    )
    assert label_sets.rule(plain)['evidence'] == 'image'  # asked for nothing: whole images, as before
    plain.step = lambda: (
        80
    )  # trained on since: the file belongs to another model, so one threshold and a note
    assert label_sets.rule(plain, evidence='crops')['note'] == label_sets.UNCALIBRATED_CROPS
    plain.step = lambda: 40
    (tmp_path / label_sets.CROP_THRESHOLDS).write_text(json.dumps({'log_odds': [1.0], **model}))
    with pytest.raises(ValueError, match='1 thresholds for 4 classes'):
        label_sets.rule(plain, evidence='crops')
