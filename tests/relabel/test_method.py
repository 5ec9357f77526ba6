"""The relabel method end to end (`mlrelabel.relabel.method`): the better round, the guard, no multi-label
truth, fresh rounds, round-0 models, single-positive losses, your own attribute CSV with exclusive groups and
the predictions of its rounds."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.helpers import ROOT
from tests.relabel.helpers import engine_config

COLOURS = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200]])


NAMES = ['colour=0', 'colour=1', 'colour=2', 'size=0', 'size=1']


GROUPS = [[0, 3], [3, 5]]


def _picture(c, s, i=0):
    img = np.full((16, 16, 3), 90, np.uint8)
    img[15, 15] = i  # one pixel tells the files apart (identical train and val images are refused)
    w = 12 if s else 6
    img[:w, :w] = COLOURS[c]
    return img


def _cli(*args, cwd):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, '-m', *args], cwd=cwd, env=env, capture_output=True, text=True)


@pytest.fixture(scope='module')
def csv_run(tmp_path_factory):
    """A finished relabel smoke run on a 48-image attribute CSV (groups colour:3, size:2; some cells unknown)."""
    root = tmp_path_factory.mktemp('own')
    (root / 'images').mkdir()
    rng = np.random.default_rng(0)
    rows, given = ['filename,colour,size'], {}
    for i in range(48):
        c, s = i % 3, (i // 3) % 2
        Image.fromarray(_picture(c, s, i)).save(root / 'images' / f'{i}.png')
        colour = str(c) if rng.random() > 0.2 or i < 6 else '#N/A'
        size = str(s) if rng.random() > 0.2 or i < 6 else ''
        rows.append(f'{i}.png,{colour},{size}')
        given[f'{i}.png'] = ([int(colour)] if colour != '#N/A' else []) + ([3 + int(size)] if size else [])
    (root / 'attrs.csv').write_text('\n'.join(rows) + '\n')
    work = str(root / 'run')
    flags = [
        '--config=mc_dropout:smoke',
        '--config.data.source=attribute_csv',
        f'--config.data.train_path={root / "attrs.csv"}',
        '--config.data.val_fraction=0.25',
        '--config.data.image_size=16',
        '--config.train.batch_size=12',
        '--config.train.epochs=1',
        '--config.eval.batch_size=16',
        '--config.relabel.num_samples=2',
        '--config.relabel.crops.crop_size=16',
        '--config.relabel.batch_size=16',
        f'--workdir={work}',
    ]
    done = _cli('mlrelabel.main', *flags, cwd=str(root))
    assert done.returncode == 0, done.stderr[-3000:]
    return root, work, given, done.stderr


@pytest.mark.slow
def test_relabel_on_an_attribute_csv_names_classes_and_keeps_groups_exclusive(csv_run):
    root, work, given, stderr = csv_run
    assert 'mlrelabel: data.num_classes=5 (from the labels)' in stderr
    assert (
        'mlrelabel: classes (sorted names): 0=colour=0, 1=colour=1, 2=colour=2, 3=size=0, 4=size=1' in stderr
    )
    manifest = json.load(open(os.path.join(work, 'run.json')))
    assert manifest['class_names'] == NAMES and manifest['groups'] == GROUPS and manifest['num_classes'] == 5
    for name in ('labels.json', 'round_1/labels.json'):
        doc = json.load(open(os.path.join(work, name)))
        assert doc['classes'] == NAMES
        for e in doc['data']:
            assert e['names'] == [NAMES[c] for c in e['labels']]
            for a, b in GROUPS:  # at most one value per attribute group ...
                assert sum(a <= c < b for c in e['labels']) <= 1, e
            # ... and it is the given one where the CSV gave one (relabel.keep_given)
            assert set(given[os.path.basename(e['img_path'])]) <= set(e['labels']), e
    thresholds = json.load(open(os.path.join(work, 'round_1', 'thresholds.json')))
    assert thresholds['evidence'] == 'crops' and thresholds['classes'] == NAMES


@pytest.mark.slow
def test_predict_uses_the_rounds_crop_rule_quietly_with_names(csv_run, tmp_path):
    import mlrelabel
    from mlrelabel.relabel.evidence import to_probability
    from mlrelabel.relabel.score import ScoreOptions, make_score_fn

    root, work, _, _ = csv_run
    folder = tmp_path / 'new'
    folder.mkdir()
    pictures = np.stack(
        [_picture(c, s) for c, s in [(0, 0), (1, 1), (2, 0), (0, 1), (1, 0), (2, 1), (0, 0), (1, 1)]]
    )
    for i, img in enumerate(pictures):
        Image.fromarray(img).save(folder / f'{i}.png')
    out = _cli(
        'mlrelabel.predict',
        f'--workdir={work}',
        f'--images={folder}',
        f'--out={tmp_path / "p.csv"}',
        f'--out={tmp_path / "p.json"}',
        '--round=1',
        cwd=str(tmp_path),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stderr.strip() == ''  # quiet: no Orbax or JAX INFO lines
    assert out.stdout.count('(round 1, step') == 2 and 'crop evidence' in out.stdout
    doc = json.load(open(tmp_path / 'p.json'))
    assert doc['evidence'] == 'crops' and doc['classes'] == NAMES and doc['round'] == 1
    # Round 1's thresholds: the run's own copy when round 1 is the chosen round, else round_1's file.
    chosen = json.load(open(os.path.join(work, 'summary.json')))['best_round']
    expected = 'thresholds.json' if chosen == 1 else os.path.join('round_1', 'thresholds.json')
    assert doc['threshold_source'] == os.path.join(work, expected)
    with open(doc['threshold_source']) as f, open(os.path.join(work, 'round_1', 'thresholds.json')) as g:
        assert json.load(f) == json.load(g)
    header = open(tmp_path / 'p.csv').readline().strip().split(',')
    assert header == ['filename', 'labels', 'label_ids', 'colour', 'size'] + [f'p_{n}' for n in NAMES]

    # The same sets from the Python API, and they are the saved thresholds applied to the crop evidence of
    # round 1's model (computed here directly with relabel.score), one value per group at most.
    run = mlrelabel.load_run(work)
    sets, scores = run.predict_labels(pictures, round=1)
    assert [p['label_ids'] for p in doc['predictions']] == sets
    assert [p['labels'] for p in doc['predictions']] == [[NAMES[c] for c in s] for s in sets]
    import jax

    rc = run.config.relabel
    options = ScoreOptions.from_relabel(rc, mean=run.manifest['mean'], std=run.manifest['std'], image_size=16)
    score = make_score_fn(run._build_model(), 'sigmoid', options)
    direct = np.asarray(score(run.variables(1), pictures, jax.random.PRNGKey(run.config.seed))['log_odds'])
    np.testing.assert_allclose(scores, to_probability(direct), atol=1e-5)
    saved = json.load(open(os.path.join(work, 'round_1', 'thresholds.json')))['log_odds']
    limit = np.array([np.inf if t is None else t for t in saved])
    for ids, ev in zip(sets, direct):
        passed = set(np.flatnonzero(ev >= limit).tolist())
        assert set(ids) <= passed or (not passed and ids == [int(ev.argmax())])
        for a, b in GROUPS:
            assert sum(a <= c < b for c in ids) <= 1
            group_pass = [c for c in passed if a <= c < b]
            if group_pass:  # the kept value is the group's best passing one
                assert max(group_pass, key=lambda c: ev[c]) in ids
    # --threshold: one probability on the same evidence; the chosen round by default.
    sets_t, _ = run.predict_labels(pictures, round=1, threshold=0.999999)
    assert all(len(s) == 1 for s in sets_t)  # almost nothing passes: the argmax
    chosen = run.chosen_round
    default = _cli(
        'mlrelabel.predict',
        f'--workdir={work}',
        f'--images={folder}',
        f'--out={tmp_path / "d.json"}',
        cwd=str(tmp_path),
    )
    assert default.returncode == 0, default.stderr[-3000:]
    assert json.load(open(tmp_path / 'd.json'))['round'] == chosen


@pytest.fixture
def init_seeds(monkeypatch):
    """The seeds of every `common.init_variables` call of a run, in order (the calls still happen)."""
    from mlrelabel.methods import common

    seeds = []
    real = common.init_variables

    def recording(model, config, seed, *args, **kwargs):
        seeds.append(seed)
        return real(model, config, seed, *args, **kwargs)

    monkeypatch.setattr(common, 'init_variables', recording)
    return seeds


def _labels(path):
    with open(path) as f:
        return [(e['img_path'], e['labels']) for e in json.load(f)['data']]


@pytest.mark.slow
def test_rounds_that_get_worse_keep_the_better_round(tmp_path, monkeypatch):
    from mlrelabel import main
    from mlrelabel.relabel import select

    real = select.heldout_stats
    scores = iter([3.0, 2.0])  # round 2's labels look worse than round 1's, by either truth-free metric
    f1s = iter([0.9, 0.6])

    def stats(assigned, given):
        out = real(assigned, given)
        out.update(heldout_pu_score=next(scores), heldout_given_recall=0.9, heldout_labels_per_image=9.0)
        return out

    monkeypatch.setattr(select, 'heldout_stats', stats)
    monkeypatch.setattr(select, 'heldout_mixture_f1', lambda *a: {'heldout_mixture_f1': next(f1s)})
    monkeypatch.setattr(select, 'addition_precision', lambda *a: {'heldout_additions_judged': 0})
    c = engine_config(rounds=2)
    c.relabel.train_last_round = False  # the default: round 2 ends the run and is not the output
    main.run(c, str(tmp_path))
    summary = json.load(open(tmp_path / 'summary.json'))
    assert [r['round'] for r in summary['rounds']] == [0, 1, 2]
    assert summary['best_round'] == 1 and summary['relabeling_helped']
    assert _labels(tmp_path / 'labels.json') == _labels(tmp_path / 'round_1' / 'labels.json')
    assert json.load(open(tmp_path / 'run.json'))['chosen_round'] == 1
    assert json.load(open(tmp_path / 'thresholds.json')) == json.load(
        open(tmp_path / 'round_1' / 'thresholds.json')
    )
    # Round 2's labels were made and scored, but its model, which nothing would use, was not trained.
    last = summary['rounds'][2]
    assert last['trained'] is False and 'val_top1' not in last and 'heldout_mixture_f1' in last
    assert (tmp_path / 'round_2' / 'labels.json').exists() and not (
        tmp_path / 'round_2' / 'checkpoints'
    ).exists()
    assert [r['round'] for r in json.load(open(tmp_path / 'run.json'))['rounds']] == [0, 1]
    assert all(r.get('trained', True) for r in summary['rounds'][:2])


@pytest.mark.slow
@pytest.mark.parametrize('cause', ['recall', 'additions'])
def test_a_flagged_round_never_becomes_the_output_and_the_run_says_so(tmp_path, monkeypatch, capsys, cause):
    from mlrelabel import main
    from mlrelabel.relabel import select

    real = select.heldout_stats

    def stats(assigned, given):  # evidence that misses the given labels of held-out images
        return {**real(assigned, given), 'heldout_given_recall': 0.2, 'heldout_pu_score': 99.0}

    def additions(*args):  # additions that stay below the known positives' evidence, as on one-object images
        return {
            'heldout_additions_judged': 50,
            'heldout_additions_like_positives': 0.06,
            'heldout_addition_precision': 0.08,
        }

    if cause == 'recall':
        monkeypatch.setattr(select, 'heldout_stats', stats)
    else:
        monkeypatch.setattr(select, 'addition_precision', additions)
    main.run(engine_config(rounds=2), str(tmp_path))
    summary = json.load(open(tmp_path / 'summary.json'))
    assert len(summary['rounds']) == 2  # stopped at the flagged round
    expected = 'held-out images' if cause == 'recall' else 'look like errors'
    assert any(expected in f for f in summary['rounds'][1]['flags'])
    assert summary['best_round'] == 0 and not summary['relabeling_helped']
    from mlrelabel.methods import common

    given = common.load_datasets(engine_config(), str(tmp_path))['train'].labels.to_lists()
    assert [labels for _, labels in _labels(tmp_path / 'labels.json')] == given
    assert 'relabeling did not help' in capsys.readouterr().err


@pytest.mark.slow
def test_relabel_rounds_train_with_a_single_positive_loss(tmp_path):
    """`relabel.loss` may be a single-positive kind: the rounds' labels are its observed positives."""
    from mlrelabel import main
    from mlrelabel.validation import validate_config

    c = engine_config(rounds=1)
    c.relabel.loss = 'an_ls'
    main.run(c, str(tmp_path))
    summary = json.load(open(tmp_path / 'summary.json'))
    assert [r['loss'] for r in summary['rounds']] == ['softmax_ce', 'an_ls']
    assert summary['rounds'][1]['head'] == 'sigmoid'
    assert np.isfinite(summary['rounds'][1]['history'][-1]['train_loss'])
    c.relabel.loss = 'll_cp'  # rewrites its stored labels: not for the rounds' own labels
    with pytest.raises(Exception, match='relabel.loss'):
        validate_config(c)


@pytest.mark.slow
def test_fresh_rounds_start_from_their_own_init_and_train_their_own_epochs(tmp_path, monkeypatch, init_seeds):
    """`relabel.fresh_rounds=1`: round 1 initialises from its own seed for `relabel.fresh_epochs`; round 2
    warm-starts from round 1 for `relabel.epochs`."""
    from mlrelabel import main
    from mlrelabel.relabel import round_models as relabel_models
    from mlrelabel.relabel import select

    monkeypatch.setattr(select, 'guard', lambda *a, **k: [])  # the smoke model's rounds must not stop the run
    c = engine_config(rounds=2)
    c.relabel.train_last_round = True  # round 2 trains whether or not its labels are the output
    c.relabel.fresh_rounds = 1
    c.train.epochs, c.relabel.fresh_epochs, c.relabel.epochs = 2, 3, 1
    main.run(c, str(tmp_path))
    rounds = json.load(open(tmp_path / 'summary.json'))['rounds']
    assert [r['epochs'] for r in rounds] == [2, 3, 1]
    assert c.seed + relabel_models.INIT_SEED_STRIDE in init_seeds
    assert c.seed + 2 * relabel_models.INIT_SEED_STRIDE not in init_seeds  # round 2 drew no init of its own


@pytest.mark.slow
def test_round_0_models_each_score_round_1_crops_and_the_evidence_is_their_mean(tmp_path, init_seeds):
    """`relabel.round0_models=2`: round 0 trains a second model from an init of its own; each scores round 1's
    crops into a record of its own, and round 1's evidence (what its labels come from) is their mean, with one vote
    per model."""
    from mlrelabel import main
    from mlrelabel.relabel import round_models as relabel_models
    from mlrelabel.relabel import stream

    c = engine_config(rounds=1)
    c.relabel.round0_models = 2
    main.run(c, str(tmp_path))
    assert init_seeds[:2] == [c.seed, c.seed + relabel_models.MODEL_SEED_STRIDE]
    assert (tmp_path / 'round_0' / 'model_1' / 'checkpoints').is_dir()
    models = [stream.load_record(stream.member_path(str(tmp_path), 1, 'train', i)) for i in range(2)]
    assert not np.array_equal(models[0]['log_odds'], models[1]['log_odds'])  # two different models
    merged = stream.load_record(stream.evidence_path(str(tmp_path), 1, 'train'))
    np.testing.assert_allclose(
        stream.dense_evidence(merged, 10),
        np.mean([stream.dense_evidence(m, 10) for m in models], axis=0),
        rtol=1e-5,
        atol=1e-5,
    )
    assert stream.record_models(merged) == 2  # two votes in the evidence of every later round
    row = json.load(open(tmp_path / 'round_0' / 'metrics.json'))
    assert len(row['round0_models_val_top1']) == 2 and row['val_top1'] == row['round0_models_val_top1'][0]


@pytest.mark.slow
def test_a_round_0_that_learnt_too_little_trains_no_more_models(tmp_path, init_seeds):
    """Round 0's first model under `relabel.round0_models_min_top1` (validation top-1 on the given labels): no
    sibling is trained, round 1's crops are scored by that model alone, and round 0's row says why."""
    from mlrelabel import main
    from mlrelabel.relabel import round_models as relabel_models

    c = engine_config(rounds=1)
    c.relabel.round0_models, c.relabel.round0_models_min_top1 = 3, 1.0
    main.run(c, str(tmp_path))
    assert init_seeds[0] == c.seed and c.seed + relabel_models.MODEL_SEED_STRIDE not in init_seeds
    assert not (tmp_path / 'round_0' / 'model_1').exists() and not (tmp_path / 'round_1' / 'models').exists()
    row = json.load(open(tmp_path / 'round_0' / 'metrics.json'))
    assert 'round0_models_val_top1' not in row
    assert any(
        n.startswith('round 0 trained one model, not 3: its validation top-1 (')
        and 'relabel.round0_models_min_top1=1.0' in n
        for n in row['notes']
    )


@pytest.mark.slow
def test_the_default_recipe_decides_without_multi_label_truth(tmp_path, monkeypatch):
    """The same run with the hidden truth removed makes exactly the same decisions: truth only scores."""
    import dataclasses

    from mlrelabel import main
    from mlrelabel.methods import common

    main.run(engine_config(rounds=1), str(tmp_path / 'with_truth'))
    real = common.load_datasets

    def without_truth(config, workdir):
        return {k: dataclasses.replace(v, truth=None) for k, v in real(config, workdir).items()}

    monkeypatch.setattr(common, 'load_datasets', without_truth)
    main.run(engine_config(rounds=1), str(tmp_path / 'no_truth'))
    a, b = tmp_path / 'with_truth', tmp_path / 'no_truth'
    assert _labels(a / 'labels.json') == _labels(b / 'labels.json')
    assert _labels(a / 'round_1' / 'labels.json') == _labels(b / 'round_1' / 'labels.json')
    assert json.load(open(a / 'round_1' / 'thresholds.json')) == json.load(
        open(b / 'round_1' / 'thresholds.json')
    )
    sa, sb = json.load(open(a / 'summary.json')), json.load(open(b / 'summary.json'))
    assert sa['best_round'] == sb['best_round'] and sa['best_round_reason'] == sb['best_round_reason']
    assert 'labels_f1' in sa['rounds'][1] and 'labels_f1' not in sb['rounds'][1]  # truth scored run a only


@pytest.mark.slow
def test_an_under_trained_round_0_trains_on_once_then_names_the_steps_to_retry_with(tmp_path, capsys):
    """A round 0 whose training loss hardly falls (here: a learning rate of 1e-7) trains `train.epochs` more from
    where it stopped, in the same checkpoints (the decision in round_0/extended.json); still under-trained, the run
    says so with a `train.min_steps` to retry with, printed and kept in summary.json. Off: the advice alone."""
    from mlrelabel import main

    c = engine_config(rounds=1)
    c.relabel.round0_models = 1  # one round-0 model: its notes alone
    c.train.epochs = 3
    c.optim.learning_rate = 1e-7
    c.relabel.extend_underfit_round0 = True
    main.run(c, str(tmp_path / 'on'))
    row = json.load(open(tmp_path / 'on' / 'summary.json'))['rounds'][0]
    assert row['epochs'] == 6 and [h['epoch'] for h in row['history']] == [1, 2, 3, 4, 5, 6]
    assert json.load(open(tmp_path / 'on' / 'round_0' / 'extended.json'))['epochs'] == 6
    notes = row['notes']
    advice = [n for n in notes if 'learnt nothing usable' not in n]  # a model at chance is also told so
    assert len(advice) == 2 and 'after 3 epochs; it trained 3 more' in advice[0]
    assert 'under-trained' in advice[1] and '--config.train.min_steps=' in advice[1]
    err = capsys.readouterr().err
    assert 'it trains 3 more epochs from where it stopped' in err
    last_words = err.rstrip().rsplit('\nmlrelabel: done in ', 1)[0]  # before the run's total time
    assert last_words.endswith(f'note: {notes[-1]}')  # the advice is the run's last word
    c.relabel.extend_underfit_round0 = False
    main.run(c, str(tmp_path / 'off'))
    row = json.load(open(tmp_path / 'off' / 'summary.json'))['rounds'][0]
    advice = [n for n in row['notes'] if 'learnt nothing usable' not in n]
    assert row['epochs'] == 3 and len(advice) == 1 and '--config.train.min_steps=' in advice[0]
    assert not (tmp_path / 'off' / 'round_0' / 'extended.json').exists()
