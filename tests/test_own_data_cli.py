"""Your own data end to end, through the command line: a relabel run on an attribute CSV without
`data.num_classes` names its classes, keeps each attribute group exclusive, records names and groups, and
`mlrelabel.predict` labels a folder of images quietly with the run's own rule (crop evidence and its per-class
thresholds), names beside ids."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT
from PIL import Image

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
