"""The Python API: `mlrelabel.run_config`, `mlrelabel.load_run` (run.json, or derived for runs without one),
`Run.predict` (any image size, compiled once, the chosen round), labels, thresholds, rounds, refusal of
non-finite checkpoints; `mlrelabel-predict` on top of it."""

import csv
import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

import mlrelabel
from mlrelabel import predict
from mlrelabel.config import base_config
from tests.helpers import ROOT

TINY = {
    'data': {'num_train': 64, 'num_val': 32, 'image_size': 16, 'min_scale': 6, 'max_scale': 9},
    'train': {'batch_size': 16, 'epochs': 1, 'checkpoint_every_steps': 2},
    'eval': {'batch_size': 16},
}


@pytest.fixture(scope='module')
def supervised_run(tmp_path_factory):
    """A finished tiny supervised run (a ConfigDict through run_config)."""
    work = str(tmp_path_factory.mktemp('supervised') / 'run')
    mlrelabel.run_config(base_config('smoke'), work, **TINY)
    return work


@pytest.fixture(scope='module')
def relabel_run(tmp_path_factory):
    """A finished tiny relabel run (round 0 + one relabel round), by recipe name with overrides."""
    work = str(tmp_path_factory.mktemp('relabel') / 'run')
    relabel = {
        'max_rounds': 1,
        'num_samples': 2,
        'crops': {'num_crops': 2, 'crop_size': 16},
        'batch_size': 16,
    }
    mlrelabel.run_config('mc_dropout:smoke', work, relabel=relabel, **TINY)
    return work


def _images(n, h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), np.uint8)


def test_import_mlrelabel_is_light():
    code = 'import sys, mlrelabel; assert "jax" not in sys.modules, sorted(sys.modules); print(mlrelabel.__version__)'
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == mlrelabel.__version__


def test_manifest_and_predict_of_a_supervised_run(supervised_run):
    from mlrelabel.data.sources import resize_and_crop
    from mlrelabel.methods import common
    from mlrelabel.ops import augment

    manifest = json.load(open(os.path.join(supervised_run, 'run.json')))
    assert manifest['format'] == 1 and manifest['method'] == 'supervised' and manifest['head'] == 'softmax'
    assert manifest['num_classes'] == 10 and manifest['class_names'] == [str(c) for c in range(10)]
    assert (
        manifest['checkpoint'] == 'checkpoints'
        and manifest['rounds'] == []
        and manifest['chosen_round'] is None
    )
    assert manifest['image_size'] == 16 and manifest['model']['name'] == 'resnet_tiny'
    assert manifest['labels'] is None and manifest['thresholds'] is None

    run = mlrelabel.load_run(supervised_run)
    assert (run.method, run.head, run.num_classes, run.rounds, run.labels, run.thresholds) == (
        'supervised', 'softmax', 10, [], None, None
    )  # fmt: skip
    images = _images(5, 16, 16)
    probs = run.predict(images)
    assert probs.shape == (5, 10) and probs.dtype == np.float32
    model = common.build_model(run.config, 10)
    logits = model.apply(
        run.variables(), augment.normalize(images, run.config.data.mean, run.config.data.std)
    )
    np.testing.assert_allclose(probs, jax.nn.softmax(logits), atol=1e-5)
    # Other sizes are resized and centre-cropped like training images from files; a list works too.
    big = _images(3, 30, 24, seed=1)
    expected = run.predict(np.stack([resize_and_crop(im, 16) for im in big]))
    np.testing.assert_allclose(run.predict(big), expected, atol=1e-6)
    np.testing.assert_allclose(run.predict(list(big)), expected, atol=1e-6)
    assert run.predict(images[:0]).shape == (0, 10)
    # Compiled once: calls of 5 and 3 images share one padded batch shape.
    assert run._model('checkpoints')._fn._cache_size() == 1
    np.testing.assert_allclose(run.predict(images.astype(np.float32) / 255.0), run.predict(images), atol=1e-6)
    with pytest.raises(ValueError, match=r'values in \[0, 1\]'):
        run.predict(images.astype(np.float32))  # floats are read as [0, 1]: 0-255 floats are refused
    with pytest.raises(ValueError, match=r'\[N, H, W, 3\]'):
        run.predict(images[0])
    with pytest.raises(ValueError, match='no round 1'):
        run.predict(images, round=1)


def test_a_run_without_manifest_opens_the_same(supervised_run, tmp_path):
    copy = tmp_path / 'copy'
    shutil.copytree(supervised_run, copy, ignore=shutil.ignore_patterns('data'))
    os.remove(copy / 'run.json')
    written = json.load(open(os.path.join(supervised_run, 'run.json')))
    derived = mlrelabel.load_run(str(copy))
    assert derived.manifest == written
    images = _images(4, 16, 16)
    np.testing.assert_allclose(derived.predict(images), mlrelabel.load_run(supervised_run).predict(images))


def test_relabel_run_rounds_labels_thresholds_and_predict(relabel_run, tmp_path):
    from tensorboard.backend.event_processing import event_accumulator

    work = str(tmp_path / 'copy')
    shutil.copytree(relabel_run, work, ignore=shutil.ignore_patterns('data'))
    if os.path.exists(os.path.join(work, 'run.json')):  # a run without a manifest is derived from its files
        os.remove(os.path.join(work, 'run.json'))
    run = mlrelabel.load_run(work)
    summary = json.load(open(os.path.join(work, 'summary.json')))
    chosen = summary.get('chosen_round', summary.get('best_round', 1))
    assert run.method == 'relabel' and run.chosen_round == chosen
    assert run.rounds == [
        {'round': 0, 'checkpoint': 'round_0/checkpoints', 'head': 'softmax'},
        {'round': 1, 'checkpoint': 'round_1/checkpoints', 'head': 'sigmoid'},
    ]
    assert run.head == run.rounds[chosen]['head']
    images = _images(6, 16, 16)
    np.testing.assert_allclose(run.predict(images, round=0).sum(1), 1.0, atol=1e-5)  # softmax round
    probs = run.predict(images, round=1)
    assert probs.shape == (6, 10) and not np.allclose(probs.sum(1), 1.0)  # sigmoid round
    np.testing.assert_array_equal(run.predict(images), run.predict(images, round=chosen))
    if chosen == 1:
        entries = json.load(open(os.path.join(work, 'round_1', 'labels.json')))['data']
        assert [e['labels'] for e in run.labels] == [e['labels'] for e in entries]
        assert all(e['names'] == [str(c) for c in e['labels']] for e in run.labels)
    # Per-class thresholds, when the run saved them, are the predict CLI's default for the chosen round.
    saved = np.linspace(0.2, 0.8, 10)
    names = [str(c) for c in range(10)]
    json.dump(
        {'classes': names, 'thresholds': saved.tolist(), 'space': 'probability'},
        open(f'{work}/thresholds.json', 'w'),
    )
    run = mlrelabel.load_run(work)
    np.testing.assert_allclose(run.thresholds, saved, rtol=1e-6)
    folder = tmp_path / 'images'
    folder.mkdir()
    for i, im in enumerate(_images(4, 24, 20, seed=3)):
        Image.fromarray(im).save(folder / f'{i}.png')
    preds = predict.predict_folder(work, str(folder))
    np.testing.assert_allclose(preds['threshold'], saved, rtol=1e-6)
    for p, ids in zip(preds['probs'], preds['label_ids']):
        assert ids == ([int(c) for c in np.flatnonzero(p > saved)] or [int(p.argmax())])
    other = 1 - chosen  # another round's model, with that round's own rule
    theirs = predict.predict_folder(work, str(folder), round=other)
    assert theirs['round'] == other and theirs['threshold'] != [float(t) for t in saved]
    if other == 0:
        assert theirs['threshold'] == 0.5  # the given-label model: the configured probability threshold
    # TensorBoard: the rounds follow each other on one step axis (relabel.py passes nothing for it).
    acc = event_accumulator.EventAccumulator(os.path.join(relabel_run, 'tensorboard'))
    acc.Reload()
    steps = [e.step for e in acc.Scalars('train/loss')]
    # The review list: one row per added class or suspect given label, ranked, beside a picture.
    review = json.load(open(os.path.join(relabel_run, 'review.json')))
    with open(os.path.join(relabel_run, 'review.csv')) as f:
        table = list(csv.DictReader(f))
    assert review['fields'] == list(table[0]) if table else review['rows'] == []
    assert (
        [int(r['rank']) for r in table]
        == list(range(1, len(table) + 1))
        == [r['rank'] for r in review['rows']]
    )
    assert all(r['suggestion'] in ('add', 'remove', 'replace') and 0 <= float(r['score']) <= 1 for r in table)
    assert not table or os.path.getsize(os.path.join(relabel_run, "review.png")) > 0
    # Scored by the evidence the labels came from: round 1's crop log-odds (the only relabel round here).
    from mlrelabel.relabel import stream
    from mlrelabel.relabel.evidence import to_probability

    p = to_probability(
        stream.dense_evidence(
            stream.load_record(os.path.join(relabel_run, 'round_1', 'evidence_train.npz')), 10
        )
    )
    assert table  # an untrained tiny model: every given label is suspect
    for r in table:
        pc = p[int(r['image'].rsplit('/', 1)[1]), int(r['class'])]
        assert float(r['score']) == pytest.approx(pc if r['suggestion'] == 'add' else 1 - pc, abs=2e-6)
        assert r['suggestion'] == 'add' or float(r['label_quality']) < 0.5
    # 4 steps per model: round 0's two (the smoke recipe's relabel.round0_models) and round 1's; the review list
    # trains nothing (it ranks by the rounds' own evidence)
    assert steps == list(range(1, len(steps) + 1)) and len(steps) == 4 + 4 + 4


def test_any_run_predicts_on_crop_evidence_when_asked(supervised_run, relabel_run, tmp_path):
    """`evidence='crops'`: a supervised model scored on the relabel recipe's grid of crops (one naive pass),
    thresholded at config.eval.threshold; batching does not change the evidence; the CLI flag does the same."""
    from mlrelabel.relabel import label_sets
    from mlrelabel.relabel.evidence import to_probability

    run = mlrelabel.load_run(supervised_run)
    images = _images(5, 16, 16, seed=4)
    rule = run.label_rule(evidence='crops')
    assert rule['evidence'] == 'crops' and rule['source'] == 'config.eval.threshold=0.5 on crop evidence'
    crop_sets, scores = run.predict_labels(images, evidence='crops')
    log_odds = label_sets.crop_scores(run, images)
    assert log_odds.shape == (5, 10) and log_odds.dtype == np.float32
    np.testing.assert_allclose(scores, to_probability(log_odds), rtol=1e-6)
    one_by_one = np.concatenate([label_sets.crop_scores(run, images[i : i + 1]) for i in range(5)])
    np.testing.assert_allclose(one_by_one, log_odds, atol=1e-5)
    for p, ids in zip(scores, crop_sets):
        assert ids == ([int(c) for c in np.flatnonzero(p >= 0.5)] or [int(p.argmax())])
    assert not np.allclose(scores, run.predict(images), atol=1e-3)  # not the whole-image probabilities
    assert label_sets.crop_scores(run, images[:0]).shape == (0, 10)
    # A relabel run asked for whole images: its chosen round's probabilities, at config.eval.threshold.
    relabel = mlrelabel.load_run(relabel_run)
    _, probs = relabel.predict_labels(images, evidence='image')
    np.testing.assert_allclose(probs, relabel.predict(images), rtol=1e-6)
    assert relabel.label_rule(evidence='image')['source'] == 'config.eval.threshold=0.5'
    assert 'not calibrated' in rule['note']  # one threshold on crops: said plainly
    # The CLI fits per-class crop thresholds once (the run's validation images and given labels), saves them
    # beside the run and predicts with them; a second call reads them back.
    work = tmp_path / 'copy'
    shutil.copytree(supervised_run, work)
    folder = tmp_path / 'images'
    folder.mkdir()
    for i, im in enumerate(images):
        Image.fromarray(im).save(folder / f'{i}.png')
    cli = [
        sys.executable,
        '-m',
        'mlrelabel.predict',
        f'--workdir={work}',
        f'--images={folder}',
        '--evidence=crops',
    ]
    out = subprocess.run([*cli, f'--out={tmp_path}/p.json'], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    saved = work / label_sets.CROP_THRESHOLDS
    assert 'fitted per-class crop thresholds on 32 validation images' in out.stderr and saved.exists()
    doc = json.load(open(tmp_path / 'p.json'))
    assert doc['evidence'] == 'crops' and doc['threshold_source'] == str(saved) and 'note' not in doc
    fitted = json.load(open(saved))
    assert fitted['images'] == 32 and len(fitted['log_odds']) == 10 and fitted['classes'] == run.class_names
    t = np.array([np.inf if v is None else v for v in fitted['log_odds']])
    expected = label_sets.apply_rule(log_odds, {'evidence': 'crops', 'thresholds': t, 'topk': None})
    assert [r['label_ids'] for r in doc['predictions']] == expected  # PNG is lossless: the same images
    before = saved.stat().st_mtime_ns
    again = subprocess.run([*cli, f'--out={tmp_path}/q.json'], cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 0 and 'fitted' not in again.stderr and saved.stat().st_mtime_ns == before
    assert json.load(open(tmp_path / 'q.json'))['predictions'] == doc['predictions']
    assert fitted['checkpoint'] == 'checkpoints' and fitted['step'] == run.step()
    json.dump(
        dict(fitted, step=fitted['step'] - 1), open(saved, 'w')
    )  # fitted for another model: fitted again
    third = subprocess.run([*cli, f'--out={tmp_path}/r.json'], cwd=ROOT, capture_output=True, text=True)
    assert third.returncode == 0 and 'fitted per-class crop thresholds' in third.stderr
    assert json.load(open(saved)) == fitted


def test_non_finite_checkpoint_is_refused(supervised_run, tmp_path):
    from mlrelabel.train import inference
    from mlrelabel.train.checkpoint import Checkpointer

    work = tmp_path / 'copy'
    shutil.copytree(supervised_run, work, ignore=shutil.ignore_patterns('data'))
    state, step = inference.restore_latest(str(work / 'checkpoints'))
    bias = state['params']['fc']['bias']
    state['params']['fc']['bias'] = np.where(np.arange(bias.shape[0]) == 3, np.nan, bias).astype(bias.dtype)
    ckpt = Checkpointer(str(work / 'checkpoints'))
    ckpt.save(step + 1, state, {'history': []})
    ckpt.close()
    with pytest.raises(ValueError, match=r"\['fc'\]\['bias'\] holds 1 non-finite"):
        mlrelabel.load_run(str(work)).predict(_images(2, 16, 16))
    (tmp_path / 'images').mkdir()
    Image.fromarray(_images(1, 16, 16)[0]).save(tmp_path / 'images' / 'a.png')
    cli = [sys.executable, '-m', 'mlrelabel.predict', f'--workdir={work}', f'--images={tmp_path}/images']
    out = subprocess.run([*cli, f'--out={tmp_path}/p.csv'], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 2 and "['fc']['bias'] holds 1 non-finite" in out.stderr
    assert 'Traceback' not in out.stderr and not (tmp_path / 'p.csv').exists()


def test_run_config_rejects_unknown_fields_before_running(tmp_path):
    with pytest.raises(ValueError, match=r'config\.train\.epochz: no such config field'):
        mlrelabel.run_config('supervised:smoke', str(tmp_path / 'w'), train__epochz=1)
    with pytest.raises(ValueError, match='no recipe named'):
        mlrelabel.run_config('nosuch:smoke', str(tmp_path / 'w'))
    assert not (tmp_path / 'w').exists()


def test_predict_reads_paths_walks_subfolders_names_classes_and_prints_a_table(relabel_run, tmp_path):
    run = mlrelabel.load_run(relabel_run)
    folder = tmp_path / 'photos'
    (folder / 'sub' / 'deeper').mkdir(parents=True)
    images = _images(3, 30, 24, seed=5)
    files = [folder / 'a.png', folder / 'sub' / 'b.jpg', folder / 'sub' / 'deeper' / 'c.png']
    for path, im in zip(files, images):
        Image.fromarray(im).save(path, quality=100)
    np.testing.assert_allclose(run.predict([str(files[0])]), run.predict(images[:1]), atol=1e-6)
    ids, scores = run.predict_labels([str(p) for p in files])
    names, same = run.predict_labels([str(p) for p in files], names=True)
    assert names == [[run.class_names[c] for c in row] for row in ids]
    np.testing.assert_array_equal(scores, same)
    assert predict.list_images(str(folder)) == ['a.png']
    assert predict.list_images(str(folder), recursive=True) == ['a.png', 'sub/b.jpg', 'sub/deeper/c.png']
    cli = [
        sys.executable,
        '-m',
        'mlrelabel.predict',
        f'--workdir={relabel_run}',
        f'--images={folder}',
        '--recursive',
    ]
    out = subprocess.run(cli, cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ['file', 'labels', 'scores'] and len(lines) == 4
    assert [line.split()[0] for line in lines[1:]] == ['a.png', 'sub/b.jpg', 'sub/deeper/c.png']
    assert 'Traceback' not in out.stderr and '3 images' in out.stderr
