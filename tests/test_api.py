"""The array-level API (`mlrelabel.api`): `crop_evidence` with any scorer, `assign_labels` (the command's rule,
reproduced exactly from a run's stored evidence), `window_boxes`, `average_evidence`, and their refusals of bad
input; `relabel.round0_checkpoint` (round 0 taken from a model, not trained)."""

import dataclasses
import json
import os

import numpy as np
import pytest
from PIL import Image

import mlrelabel
from mlrelabel import api
from mlrelabel.config import relabel_config
from mlrelabel.errors import ConfigError
from mlrelabel.relabel import stream
from mlrelabel.relabel.evidence import RoundEvidence

COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.float32) / 255.0


def colour_scorer(calls=None):
    """Probabilities of red, green and blue from each crop's share of pixels near each colour (softmax-like)."""

    def score(batch):
        if calls is not None:
            calls.append(batch.shape)
        distance = ((batch[..., None, :] - COLOURS) ** 2).sum(-1)  # [B, S, S, 3 colours]
        share = (distance < 0.1).mean(axis=(1, 2))  # [B, 3]
        logits = 8.0 * share
        e = np.exp(logits - logits.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    return score


def scene(colours, size=(96, 128), seed=0):
    """A grey photo-like image with a square of each colour in `colours` at distinct places."""
    rng = np.random.default_rng(seed)
    h, w = size
    image = (rng.normal(128, 20, (h, w, 3))).clip(0, 255).astype(np.uint8)
    spots = [(4, 4), (h // 2, w // 2), (4, w // 2 + 8)]
    for c, (y, x) in zip(colours, spots):
        image[y : y + h // 3, x : x + w // 4] = (COLOURS[c] * 255).astype(np.uint8)
    return image


def test_window_boxes_default_is_the_recipe_grid_whole_image_first():
    boxes = mlrelabel.window_boxes()
    assert boxes.shape == (42, 4) and boxes.dtype == np.float32
    np.testing.assert_array_equal(boxes[0], [0, 0, 1, 1])
    assert (boxes[:, 2:] > boxes[:, :2]).all() and boxes.min() >= 0 and boxes.max() <= 1
    boxes = mlrelabel.window_boxes(api.CropOptions(scales=(0.5,), overlap=0.0))
    assert boxes.shape == (5, 4)  # the whole image, then 2 x 2 windows


def test_defaults_are_the_main_recipes():
    rc = relabel_config('').relabel
    crops = api.CropOptions()
    assert crops.scales == tuple(rc.crops.grid_scales) and crops.overlap == rc.crops.overlap
    assert crops.include_full_image == rc.crops.include_full_image and crops.aggregate == rc.aggregate
    assert api.AssignOptions.from_config(relabel_config('')) == api.AssignOptions()


def test_crop_evidence_finds_every_object_and_compiles_once():
    images = [scene([0]), scene([0, 2], (200, 150)), scene([1], (120, 120)), scene([], (100, 300))]
    calls = []
    options = api.CropOptions(crop_size=32, batch_size=50)
    evidence = mlrelabel.crop_evidence(colour_scorer(calls), images, options, progress=False)
    assert evidence.shape == (4, 3) and evidence.dtype == np.float32
    assert set(calls) == {(50, 32, 32, 3)}  # every batch padded to one shape
    assert len(calls) == -(-4 * 42 // 50)
    present = evidence > 0
    assert present[0].tolist() == [True, False, False]
    assert present[1].tolist() == [True, False, True]
    assert present[2].tolist() == [False, True, False]
    assert not present[3].any()


def test_crop_evidence_aggregates_the_two_best_crops_by_hand():
    image = scene([0])
    options = api.CropOptions(crop_size=16, scales=(1.0, 0.5), overlap=0.0, batch_size=7)
    boxes = mlrelabel.window_boxes(options)
    crops = api._crops_of(image, boxes, 16)
    p = np.clip(colour_scorer()(crops), 1e-12, 1 - 1e-12)
    log_odds = np.log(p) - np.log1p(-p)
    expected = np.sort(log_odds, axis=0)[-2:].mean(0)
    got = mlrelabel.crop_evidence(colour_scorer(), [image], options, progress=False)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_crop_evidence_reads_paths_like_arrays(tmp_path):
    images = [scene([0], (64, 80)), scene([1, 2], (90, 70), seed=1)]
    paths = []
    for i, image in enumerate(images):
        paths.append(str(tmp_path / f'{i}.png'))
        Image.fromarray(image).save(paths[-1])
    options = api.CropOptions(crop_size=24)
    a = mlrelabel.crop_evidence(colour_scorer(), images, options, progress=False)
    b = mlrelabel.crop_evidence(colour_scorer(), paths, options, progress=False)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    'images, match',
    [
        ([np.zeros((0, 5, 3), np.uint8)], r'images\[0\]: expected a uint8 \[H, W, 3\]'),
        ([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 4), np.uint8)], r'images\[1\]'),
        ([np.zeros((8, 8, 3), np.float32)], r'images\[0\]: expected a uint8'),
        (['/no/such/image.jpg'], r"images\[0\]: no such image file: '/no/such/image.jpg'"),
        ('a.jpg', 'images: expected a sequence'),
    ],
)
def test_crop_evidence_refuses_bad_images_before_scoring(images, match):
    calls = []
    with pytest.raises(ValueError, match=match):
        mlrelabel.crop_evidence(colour_scorer(calls), images, progress=False)
    assert not calls


@pytest.mark.parametrize(
    'bad, match',
    [
        (lambda b: np.full((len(b), 3), np.nan), r'batch 0.*non-finite'),
        (lambda b: np.full((len(b), 3), 2.0), r'batch 0.*in \[0, 1\].*logits'),
        (lambda b: np.full((len(b) - 1, 3), 0.5), r'batch 0.*shape \[8, C\], got \(7, 3\)'),
        (lambda b: np.full((len(b),), 0.5), r'batch 0.*got \(8,\)'),
    ],
)
def test_crop_evidence_names_the_batch_of_a_bad_scorer(bad, match):
    with pytest.raises(ValueError, match=match):
        mlrelabel.crop_evidence(bad, [scene([0])], api.CropOptions(crop_size=8, batch_size=8), progress=False)


def test_crop_evidence_refuses_a_class_count_that_changes():
    counts = iter([3, 4])

    def scorer(batch):
        return np.full((len(batch), next(counts)), 0.25)

    with pytest.raises(ValueError, match=r'batch 1.*\[8, 3\], got \(8, 4\)'):
        mlrelabel.crop_evidence(
            scorer, [scene([0])], api.CropOptions(crop_size=8, batch_size=8), progress=False
        )


def test_average_evidence_is_the_commands_round_average():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 4)).astype(np.float32), rng.normal(size=(5, 4)).astype(np.float32)
    rounds = RoundEvidence()
    rounds.add(lambda rows: a[rows], 2.0)
    rounds.add(lambda rows: b[rows], 1.0)
    np.testing.assert_array_equal(
        mlrelabel.average_evidence([a, b], votes=[2, 1]), rounds.dense(np.arange(5))
    )
    with pytest.raises(ValueError, match='votes'):
        mlrelabel.average_evidence([a, b], votes=[1])
    with pytest.raises(ValueError, match='one shape'):
        mlrelabel.average_evidence([a, b[:3]])


def _separable(n, num_classes=4, seed=0):
    """Evidence with a clear high mode for each present class; image i is given class i % C and holds one more."""
    rng = np.random.default_rng(seed)
    given = np.arange(n) % num_classes
    extra = (given + 1 + rng.integers(0, num_classes - 1, n)) % num_classes
    evidence = rng.normal(-6, 1, (n, num_classes))
    evidence[np.arange(n), given] = rng.normal(6, 0.5, n)
    has_extra = rng.random(n) < 0.5
    evidence[np.arange(n)[has_extra], extra[has_extra]] = rng.normal(7, 0.3, has_extra.sum())
    return evidence.astype(np.float32), given, extra, has_extra


def test_assign_labels_adds_the_second_objects_and_ranks_them():
    ev, given, extra, has_extra = _separable(400)
    ev_val, given_val, _, _ = _separable(200, seed=1)
    result = mlrelabel.assign_labels(ev, given, ev_val, given_val, class_names=['a', 'b', 'c', 'd'])
    truth = [sorted({int(g)} | ({int(e)} if h else set())) for g, e, h in zip(given, extra, has_extra)]
    assert [sorted(x) for x in result.labels] == truth
    assert all(int(g) in x for g, x in zip(given, result.labels))
    assert result.thresholds.shape == (4,) and np.isfinite(result.thresholds).all()
    assert result.checks['keep_given'] is False and result.checks['flags'] == []
    assert result.checks['heldout_given_recall'] > 0.9 and result.checks['heldout_mixture_f1'] > 0.9
    assert len(result.review) == int(has_extra.sum())
    assert [r['rank'] for r in result.review] == list(range(1, len(result.review) + 1))
    assert {r['suggestion'] for r in result.review} == {'add'}
    assert result.review[0]['class_name'] in 'abcd'


def test_assign_labels_on_one_object_images_says_keep_the_given_labels():
    rng = np.random.default_rng(3)
    n = 400
    given = np.arange(n) % 4
    ev = rng.normal(-4, 2.0, (n, 4)).astype(np.float32)  # confusions: a broad tail, no second mode
    ev[np.arange(n), given] = rng.normal(6, 1, n)
    val = rng.normal(-4, 2.0, (200, 4)).astype(np.float32)
    val[np.arange(200), np.arange(200) % 4] = rng.normal(6, 1, 200)
    result = mlrelabel.assign_labels(ev, given, val, np.arange(200) % 4)
    added = sum(len(x) - 1 for x in result.labels)
    assert result.checks['keep_given'] or added <= 0.02 * n


@pytest.mark.parametrize(
    'change, match',
    [
        (
            dict(train_given=np.zeros(3, int)),
            r'train_evidence and train_given: 400 rows of evidence but 3 labels',
        ),
        (
            dict(val_evidence=np.zeros((200, 5), np.float32)),
            r'val_evidence: 5 classes, but train_evidence has 4',
        ),
        (dict(train_given=np.full(400, 4)), r'train_given\[0\] = 4: expected a class in \[0, 4\) or -1'),
        (dict(train_evidence=np.zeros(400, np.float32)), r'train_evidence: expected log-odds \[N, C\]'),
        (dict(val_given=np.full(200, -1)), r'val_given: no held-out image has a given label'),
        (dict(train_given=np.zeros(400)), r'train_given: expected int labels'),
    ],
)
def test_assign_labels_refuses_bad_input_naming_the_argument(change, match):
    ev, given, _, _ = _separable(400)
    ev_val, given_val, _, _ = _separable(200, seed=1)
    args = dict(train_evidence=ev, train_given=given, val_evidence=ev_val, val_given=given_val)
    args.update(change)
    with pytest.raises(ValueError, match=match):
        mlrelabel.assign_labels(**args)


def test_options_refuse_bad_values():
    with pytest.raises(ValueError, match='AssignOptions.rule'):
        api.AssignOptions(rule='calibrated')
    with pytest.raises(ValueError, match='CropOptions.aggregate'):
        api.CropOptions(aggregate='median')
    with pytest.raises(ValueError, match='CropOptions.scales'):
        api.CropOptions(scales=(1.5,))


@pytest.fixture(scope='module')
def one_model_run(tmp_path_factory):
    """A finished smoke relabel run whose round 1 is scored by round 0's single model."""
    work = str(tmp_path_factory.mktemp('one_model') / 'run')
    mlrelabel.run_config('mc_dropout:smoke', work, relabel={'round0_models': 1})
    return work


def _given_and_evidence(work):
    from mlrelabel.eval import evaluate
    from mlrelabel.manifest import read_config
    from mlrelabel.methods import common

    config = read_config(work)
    data = common.load_datasets(config, work)
    evidence = {}
    for split in ('train', 'val'):
        record = stream.load_record(stream.evidence_path(work, 1, split))
        evidence[split] = stream.dense_evidence(record, data['train'].num_classes)
    return config, data, evidence, evaluate.first_labels


@pytest.mark.slow
def test_assign_labels_reproduces_a_command_round_exactly(one_model_run):
    config, data, evidence, first_labels = _given_and_evidence(one_model_run)
    result = mlrelabel.assign_labels(
        evidence['train'],
        first_labels(data['train'].labels),
        evidence['val'],
        first_labels(data['val'].labels),
        api.AssignOptions.from_config(config),
    )
    saved = json.load(open(os.path.join(one_model_run, 'round_1', 'labels.json')))['data']
    assert [sorted(x) for x in result.labels] == [sorted(e['labels']) for e in saved]
    doc = json.load(open(os.path.join(one_model_run, 'round_1', 'thresholds.json')))
    assert [None if not np.isfinite(t) else float(t) for t in result.thresholds] == doc['log_odds']
    summary = json.load(open(os.path.join(one_model_run, 'summary.json')))
    row = summary['rounds'][1]
    assert result.checks['heldout_given_recall'] == row['heldout_given_recall']
    assert result.checks['flags'] == row['flags']


@pytest.mark.slow
def test_round0_checkpoint_takes_a_rounds_model_without_training(one_model_run, tmp_path):
    work = str(tmp_path / 'taken')
    mlrelabel.run_config(
        'mc_dropout:smoke',
        work,
        relabel={'round0_models': 1, 'round0_checkpoint': os.path.join(one_model_run, 'round_0')},
    )
    summary = json.load(open(os.path.join(work, 'summary.json')))
    first = json.load(open(os.path.join(one_model_run, 'summary.json')))
    assert summary['rounds'][0]['round0_checkpoint'].endswith('round_0')
    assert summary['rounds'][0]['epochs'] == 0
    assert summary['rounds'][0]['val_top1'] == pytest.approx(first['rounds'][0]['val_top1'])
    ours = json.load(open(os.path.join(work, 'round_1', 'labels.json')))['data']
    theirs = json.load(open(os.path.join(one_model_run, 'round_1', 'labels.json')))['data']
    assert [e['labels'] for e in ours] == [e['labels'] for e in theirs]
    timing = json.load(open(os.path.join(work, 'timing.json')))
    assert timing['round_0']['train_s'] < 10
    run = mlrelabel.load_run(work)
    assert run.predict(np.zeros((2, 40, 40, 3), np.uint8), round=0).shape == (2, run.num_classes)


@pytest.mark.slow
def test_round0_checkpoint_of_another_network_or_classes_is_refused_naming_both(one_model_run, tmp_path):
    from mlrelabel import validation

    config = relabel_config('smoke')
    config.relabel.round0_checkpoint = os.path.join(one_model_run, 'round_0')
    config.model.name = 'resnet18'
    config.data.num_classes = 7
    problems = validation.problems(config)
    assert any(
        "that run trained config.model.name='resnet_tiny', this run builds 'resnet18'" in p for p in problems
    )
    assert any('that run has 10 classes, this run has 7' in p for p in problems)
    config = relabel_config('smoke')
    config.relabel.round0_checkpoint = 'torchvision:resnet50'
    assert any(
        "holds resnet50 weights, but config.model.name='resnet_tiny'" in p
        for p in validation.problems(config)
    )
    work = tmp_path / 'refused'
    with pytest.raises(ConfigError, match='round0_checkpoint'):
        mlrelabel.run_config(
            'mc_dropout:smoke',
            str(work),
            relabel={'round0_checkpoint': str(tmp_path)},
            data={'num_classes': 7},
        )
    assert not work.exists()


def test_the_worked_example_loop_runs_with_a_numpy_scorer():
    """docs/api.md's loop: score crops with your model, assign, (fine-tune), score again."""
    rng = np.random.default_rng(0)
    train = [scene(sorted(set(rng.integers(0, 3, 2))), (80, 96), seed=i) for i in range(24)]
    val = [scene([i % 3], (80, 96), seed=100 + i) for i in range(12)]
    train_given = np.array(
        [int(np.argmax(colour_scorer()(np.asarray(im, np.float32)[None] / 255.0))) for im in train]
    )
    options = api.CropOptions(crop_size=24)
    rounds = []
    for _ in range(2):  # your fine-tuning would go between the rounds
        rounds.append(mlrelabel.crop_evidence(colour_scorer(), train, options, progress=False))
        held_out = mlrelabel.crop_evidence(colour_scorer(), val, options, progress=False)
        result = mlrelabel.assign_labels(
            mlrelabel.average_evidence(rounds), train_given, held_out, np.arange(12) % 3
        )
    assert len(result.labels) == 24 and all(train_given[i] in x for i, x in enumerate(result.labels))
    assert dataclasses.is_dataclass(result)


def test_docs_example_relabels_a_folder_of_jpeg_photos(tmp_path):
    """docs/examples/relabel_folder.py with a numpy scorer in place of torchvision's ResNet-50."""
    import importlib.util

    from tests.helpers import ROOT

    spec = importlib.util.spec_from_file_location(
        'relabel_folder', os.path.join(ROOT, 'docs/examples/relabel_folder.py')
    )
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    names = ['blue', 'green', 'red']  # sorted folder names; the scorer's columns are red, green, blue
    for c, name in enumerate(names):
        os.makedirs(tmp_path / name)
        colour = {'red': 0, 'green': 1, 'blue': 2}[name]
        for i in range(10):
            others = [colour] + ([(colour + 1 + i % 2) % 3] if i % 2 else [])
            Image.fromarray(scene(others, (120, 160), seed=10 * c + i)).save(
                tmp_path / name / f'{i}.jpg', quality=95
            )

    def scorer(batch):
        return colour_scorer()(batch)[:, [2, 1, 0]]  # the folder's class order

    result, classes, paths = example.relabel_folder(scorer, str(tmp_path), crop_size=32, rounds=2)
    assert classes == names and len(paths) == len(result.labels) == 24
    by_path = dict(zip(paths, result.labels))
    assert sorted(by_path[str(tmp_path / 'red' / '1.jpg')]) == [0, 2]  # red given, blue added
    assert by_path[str(tmp_path / 'red' / '0.jpg')] == [2]


@pytest.mark.slow
def test_docs_your_model_block_runs(one_model_run, tmp_path):
    """docs/api.md's "Your model, our crops and label rule" code block, on a finished smoke run as runs/demo."""
    import re
    import subprocess
    import sys

    from tests.helpers import ROOT

    text = open(os.path.join(ROOT, 'docs', 'api.md')).read()
    section = text[text.index('## Your model, our crops and label rule') :]
    block = re.search(r'```python\n(.*?)```', section, re.S).group(1)
    os.makedirs(tmp_path / 'runs')
    os.symlink(one_model_run, tmp_path / 'runs' / 'demo')
    out = subprocess.run(
        [sys.executable, '-c', block], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().split()[0] in ('True', 'False')


@pytest.mark.slow
def test_cs570_recipe_relabels_from_torchvision_weights_without_training_round_0(tmp_path):
    """configs/cs570_imagenet.py:smoke on a generated ImageNet-layout folder, round 0 from a torchvision-layout
    .npz of the recipe's network: round 0 is taken, its weights score round 1, round 1 fine-tunes from them."""
    from mlrelabel import main
    from mlrelabel.config import recipes
    from mlrelabel.data import imagenet
    from mlrelabel.methods import common
    from mlrelabel.models.torchvision import to_torchvision
    from tests.helpers import ROOT

    root = str(tmp_path / 'imagenet')
    imagenet.make_synthetic_folder(root, num_classes=4, per_class=6, num_val=2)
    config = recipes.load(os.path.join(ROOT, 'configs', 'cs570_imagenet.py') + ':smoke')
    config.data.synthetic, config.data.root, config.data.num_classes = False, root, 4
    variables = common.init_variables(common.build_model(config, 4), config, seed=5)
    np.savez(tmp_path / 'weights.npz', **to_torchvision(variables))
    config.relabel.round0_checkpoint = str(tmp_path / 'weights.npz')
    work = str(tmp_path / 'run')
    main.run(config, work)
    summary = json.load(open(os.path.join(work, 'summary.json')))
    assert summary['rounds'][0]['round0_checkpoint'] == str(tmp_path / 'weights.npz')
    assert json.load(open(os.path.join(work, 'timing.json')))['round_0']['taken_from'].endswith('weights.npz')
    taken = mlrelabel.load_run(work).variables(round=0)
    assert all(np.array_equal(a, b) for a, b in zip(jax_leaves(taken), jax_leaves(variables)))
    assert os.path.exists(os.path.join(work, 'round_1', 'labels.json'))


def jax_leaves(tree):
    import jax

    return jax.tree.leaves(tree)


@pytest.mark.slow
def test_relabel_decisions_keep_accepted_labels_and_never_add_rejected_ones(one_model_run, tmp_path):
    """`relabel.decisions`: a second run with the same seed makes the same round-1 evidence; its labels are the
    first run's with the person's accepted additions kept and rejected ones removed."""
    first = json.load(open(os.path.join(one_model_run, 'round_1', 'labels.json')))['data']
    additions = [(e['img_path'], c) for e in first for c in e['labels'][1:]][:6]
    assert additions, 'the smoke run added no label to decide on'
    records = [
        {'image': p, 'class': c, 'action': 'reject' if i % 2 else 'accept', 'kind': 'add', 'time': 't'}
        for i, (p, c) in enumerate(additions)
    ]
    records.append(
        {'image': first[0]['img_path'], 'class': 9, 'action': 'accept', 'kind': 'add', 'time': 't'}
    )
    path = tmp_path / 'decisions.jsonl'
    path.write_text(''.join(json.dumps(r) + '\n' for r in records))
    work = str(tmp_path / 'decided')
    mlrelabel.run_config('mc_dropout:smoke', work, relabel={'round0_models': 1, 'decisions': str(path)})
    second = {
        e['img_path']: set(e['labels'])
        for e in json.load(open(os.path.join(work, 'round_1', 'labels.json')))['data']
    }
    expected = {e['img_path']: set(e['labels']) for e in first}
    for r in records:
        (expected[r['image']].add if r['action'] == 'accept' else expected[r['image']].discard)(r['class'])
    assert second == expected


def test_crop_evidence_aggregates_finished_images_in_chunks(monkeypatch):
    """Only a chunk of finished images' windows is held: chunked and whole aggregation agree."""
    images = [scene([i % 3], (40 + i, 50), seed=i) for i in range(7)]
    options = api.CropOptions(crop_size=16, scales=(1.0, 0.5), overlap=0.0, batch_size=6)
    whole = mlrelabel.crop_evidence(colour_scorer(), images, options, progress=False)
    monkeypatch.setattr(api, 'AGGREGATE_CHUNK', 2)
    chunked = mlrelabel.crop_evidence(colour_scorer(), images, options, progress=False)
    np.testing.assert_array_equal(whole, chunked)
    assert whole.shape == (7, 3) and (np.argmax(whole, 1) == np.arange(7) % 3).all()


@pytest.mark.slow
def test_round0_sources_run_directory_and_orbax_folder_give_their_models(one_model_run):
    import jax

    from mlrelabel.methods import common
    from mlrelabel.relabel import round_models as relabel_models

    run = mlrelabel.load_run(one_model_run)
    config = relabel_config('smoke')
    template = common.init_variables(common.build_model(config, 10), config, 0, pretrained=False)
    same = lambda a, b: all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))  # noqa: E731
    chosen = relabel_models.round0_variables(one_model_run, template, config)  # a run: its chosen model
    assert same(chosen, run.variables())
    orbax = relabel_models.round0_variables(
        os.path.join(one_model_run, 'round_0', 'checkpoints'), template, config
    )
    assert same(orbax, run.variables(round=0))
