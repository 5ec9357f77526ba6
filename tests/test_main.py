"""End to end through the CLI entry (`mlrelabel.main`): the smoke variant of every config, a user's own label
files for both methods, refused and resumed work directories, and resumption after real kills."""

import glob
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from mlrelabel import workdir as workdir_mod
from mlrelabel.errors import ConfigError
from tests.helpers import ROOT, recipe

# `*_imagenet.py` recipes need ImageNet-layout data: their smoke variants run in tests/data/test_imagenet.py
# on a generated folder.
CONFIGS = sorted(
    os.path.basename(p)
    for p in glob.glob(os.path.join(ROOT, 'configs', '*.py'))
    if not p.endswith('_imagenet.py')
)


def _load(name, variant='smoke'):

    from ml_collections import config_flags  # noqa: F401 - same loader as the CLI

    return recipe(name, variant)


def test_every_config_has_a_smoke_variant_and_rejects_unknown_variants():
    assert {'supervised.py', 'naive.py', 'mc_dropout.py', 'mc_perturbation.py'} <= set(CONFIGS)
    for name in CONFIGS:
        cfg = _load(name)
        assert cfg.train.epochs <= 2 and cfg.data.num_train <= 1024, name
        with pytest.raises(ValueError, match='variant'):
            _load(name, 'huge')


@pytest.mark.parametrize('name', CONFIGS)
def test_smoke_variant_runs_end_to_end(name, tmp_path, capsys):
    from mlrelabel import main

    cfg = _load(name)
    result = main.run(cfg, str(tmp_path))
    # the progress line, off a terminal: plain lines (with the whole run's ETA where the method plans its phases)
    # and the total and per-phase times at the end, in the log too
    lines = [line for line in capsys.readouterr().err.replace('\r', '\n').splitlines() if 'elapsed' in line]
    assert lines and lines[-1].startswith('mlrelabel: ')
    done = (tmp_path / 'progress.log').read_text().splitlines()[-1]
    assert done.startswith('done in ') and 'setup ' in done
    assert json.load(open(tmp_path / 'timing.json'))['phases']['total_s'] > 0
    if cfg.method == 'relabel':
        assert 'ETA ?' in lines[0] and re.search(r'ETA \d+(m\d\d)?s', lines[-1])
        assert 'round 0 train ' in done and 'score ' in done
    assert json.load(open(tmp_path / 'config.json'))['method'] == cfg.method
    if cfg.method == 'supervised':
        metrics = json.load(open(tmp_path / 'metrics.json'))
        assert len(metrics['history']) == cfg.train.epochs
        assert 0.0 <= metrics['final']['val_top1'] <= 1.0
        assert (tmp_path / 'training.png').stat().st_size > 1000
        assert (tmp_path / 'examples.png').stat().st_size > 1000
    elif cfg.method == 'relabel':
        summary = json.load(open(tmp_path / 'summary.json'))
        assert [r['round'] for r in summary['rounds']] == [r['round'] for r in result['rounds']]
        assert (tmp_path / 'rounds.png').exists()
        for r in summary['rounds'][1:]:
            rdir = tmp_path / f'round_{r["round"]}'
            labels = json.load(open(rdir / 'labels.json'))['data']
            assert len(labels) == cfg.data.num_train
            assert all(len(e['labels']) == len(e['scores']) >= 1 for e in labels)
            assert (rdir / 'examples.png').stat().st_size > 1000
            for key in ('val_f1', 'val_map', 'labels_f1', 'labels_per_image', 'images_changed'):
                assert key in r


def test_workdir_with_another_config_is_refused(tmp_path):

    cfg = _load('supervised.py')
    workdir_mod.prepare_workdir(cfg, str(tmp_path))
    workdir_mod.prepare_workdir(cfg, str(tmp_path))  # same config: resumable
    cfg.train.epochs = 7
    with pytest.raises(ConfigError, match=r'train\.epochs: 2 → 7'):
        workdir_mod.prepare_workdir(cfg, str(tmp_path))


def test_a_run_made_before_a_field_existed_resumes_when_the_field_keeps_the_old_behaviour(tmp_path):
    import json

    cfg = _load('supervised.py')
    workdir_mod.prepare_workdir(cfg, str(tmp_path))
    path = tmp_path / 'config.json'
    saved = json.loads(path.read_text())
    del saved['train']['augment']['zoom_out'], saved['train']['augment']['zoom_out_prob']
    path.write_text(json.dumps(saved))  # as written by mlrelabel before zoom-out
    workdir_mod.prepare_workdir(cfg, str(tmp_path))  # off, as before it: resumable
    cfg.train.augment.zoom_out = 0.5
    with pytest.raises(ConfigError, match=r'train\.augment\.zoom_out: 0\.0 → 0\.5'):
        workdir_mod.prepare_workdir(cfg, str(tmp_path))
    # A ReLabel run made when its teacher was trained on the visible labels.
    maps = _load('relabel_maps.py', '')
    workdir_mod.prepare_workdir(maps, str(tmp_path / 'maps'))
    path = tmp_path / 'maps' / 'config.json'
    saved = json.loads(path.read_text())
    del saved['relabel_maps']['teacher_recipe']
    path.write_text(json.dumps(saved))
    with pytest.raises(ConfigError, match=r"relabel_maps\.teacher_recipe: '' → 'mc_dropout'"):
        workdir_mod.prepare_workdir(
            maps, str(tmp_path / 'maps')
        )  # the new default teacher would make another run
    maps.relabel_maps.teacher_recipe = ''
    workdir_mod.prepare_workdir(maps, str(tmp_path / 'maps'))


def _cli(workdir, *extra):
    return [
        sys.executable,
        '-m',
        'mlrelabel.main',
        '--config=configs/mc_dropout.py:smoke',
        f'--workdir={workdir}',
        *extra,
    ]


def _run_until(workdir, ready, *extra, timeout=600):
    """Starts the CLI and SIGKILLs it as soon as `ready()` holds; returns True if it was killed."""
    command = _cli(workdir, *extra)
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while proc.poll() is None and time.time() < deadline:
        if ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.05)
    proc.wait()
    return False


@pytest.mark.slow
def test_relabel_cli_resumes_after_real_kills_with_identical_outputs(tmp_path):
    ref, cut = tmp_path / 'ref', tmp_path / 'cut'
    done = subprocess.run(_cli(ref), cwd=ROOT, check=True, capture_output=True, timeout=900, text=True)
    assert re.search(r'mlrelabel: round 1/1 train · \d+% · .* · ETA \d', done.stderr)  # a log's plain lines
    assert 'mlrelabel: done in ' in done.stderr
    # Kill 1: during round 0 training, right after its first checkpoint lands.
    assert _run_until(cut, lambda: glob.glob(str(cut / 'round_0' / 'checkpoints' / '[0-9]*')))
    # Kill 2: while round 0's second model (relabel.round0_models) trains, after its first checkpoint.
    assert _run_until(cut, lambda: glob.glob(str(cut / 'round_0' / 'model_1' / 'checkpoints' / '[0-9]*')))
    # Kill 3: in the middle of the round-1 relabel pass, once the second model's partial record exists.
    assert _run_until(cut, lambda: (cut / 'round_1' / 'models' / 'evidence_train_1.npz').exists())
    subprocess.run(_cli(cut), cwd=ROOT, check=True, capture_output=True, timeout=900)
    for name in ('round_1/labels.json', 'round_0/metrics.json', 'round_1/metrics.json', 'summary.json'):
        assert (ref / name).read_text() == (cut / name).read_text(), name


@pytest.mark.slow
def test_a_run_whose_last_round_trains_no_model_resumes_with_identical_outputs(tmp_path):
    """`relabel.train_last_round=false` (the default recipe's): the last round trains its model only when its labels
    are the output; a run killed once that round's labels are written resumes to the same outputs."""
    extra = ('--config.relabel.train_last_round=false', '--config.relabel.round0_models=1')
    ref, cut = tmp_path / 'ref', tmp_path / 'cut'
    subprocess.run(_cli(ref, *extra), cwd=ROOT, check=True, capture_output=True, timeout=900)
    summary = json.loads((ref / 'summary.json').read_text())
    last = summary['rounds'][-1]
    assert last['round'] == 1 and last.get('trained', True) == (summary['best_round'] == 1)
    assert (ref / 'round_1' / 'checkpoints').exists() == (summary['best_round'] == 1)
    assert _run_until(cut, lambda: (cut / 'round_1' / 'labels.json').exists(), *extra)
    subprocess.run(_cli(cut, *extra), cwd=ROOT, check=True, capture_output=True, timeout=900)
    for name in ('round_1/labels.json', 'round_1/metrics.json', 'summary.json', 'labels.json'):
        assert (ref / name).read_text() == (cut / name).read_text(), name


@pytest.mark.slow
def test_a_run_killed_as_round_0_starts_its_extension_resumes_to_the_same_labels(tmp_path):
    """Round 0 under-trained (learning rate 1e-7) is extended; kills right after the decision is written and in the
    middle of the extension resume to the same round-0 model (metrics) and the same round-1 labels as an
    uninterrupted run."""
    extra = (
        '--config.optim.learning_rate=1e-7',
        '--config.train.epochs=3',
        '--config.relabel.extend_underfit_round0=True',
    )
    ref, cut = tmp_path / 'ref', tmp_path / 'cut'
    subprocess.run(_cli(ref, *extra), cwd=ROOT, check=True, capture_output=True, timeout=900)
    assert (ref / 'round_0' / 'extended.json').exists()
    assert _run_until(cut, lambda: (cut / 'round_0' / 'extended.json').exists(), *extra)

    def extending():  # a checkpoint past round 0's first 3 epochs (8 steps each), before the 6th ends
        names = os.listdir(cut / 'round_0' / 'checkpoints')
        return any(n.isdigit() and 24 < int(n) < 48 for n in names)

    assert _run_until(cut, extending, *extra)
    subprocess.run(_cli(cut, *extra), cwd=ROOT, check=True, capture_output=True, timeout=900)
    for name in ('round_0/metrics.json', 'round_1/labels.json', 'summary.json'):
        assert (ref / name).read_text() == (cut / name).read_text(), name


def _write_split(root, split, n, rng, multi=False, corrupt=()):
    entries = []
    (root / split).mkdir(parents=True)
    for i in range(n):
        label = int(i % 3)
        img = np.zeros((24, 24, 3), np.uint8)
        img[..., label] = 200  # the class is the dominant colour
        img += rng.integers(0, 40, img.shape, dtype=np.uint8)
        path = root / split / f'im{i}.jpg'
        if i in corrupt:
            path.write_bytes(b'not a jpeg')
        else:
            Image.fromarray(img).save(path)
        labels = [label, (label + 1) % 3] if multi and i % 2 else [label]
        entries.append({'img_path': f'{split}/im{i}.jpg', 'labels': labels})
    (root / f'{split}.json').write_text(json.dumps({'data': entries}))


def _config(tmp_path, base):
    rng = np.random.default_rng(0)
    _write_split(tmp_path, 'train', 65, rng, corrupt={5})
    _write_split(tmp_path, 'val', 32, rng, multi=True)
    c = base
    c.data.source = 'json'
    c.data.train_json = str(tmp_path / 'train.json')
    c.data.val_json = str(tmp_path / 'val.json')
    c.data.num_classes = 10  # labels use classes 0-2; the shapes (and compiled programs) match the smoke runs
    c.train.epochs = 1
    return c


def test_supervised_and_relabel_on_label_files(tmp_path):
    from mlrelabel import main
    from mlrelabel.config import base_config, relabel_config

    cfg = _config(tmp_path / 'data', base_config('smoke'))
    result = main.run(cfg, str(tmp_path / 'sup'))
    assert 0.0 <= result['final']['val_top1'] <= 1.0

    cfg = _config(tmp_path / 'data2', relabel_config('smoke'))
    result = main.run(cfg, str(tmp_path / 'rel'))
    labels = json.load(open(tmp_path / 'rel' / 'round_1' / 'labels.json'))['data']
    # The corrupt image (train/im5.jpg) was skipped, never mislabelled: 64 entries, paths aligned with labels.
    assert len(labels) == 64
    assert 'train/im5.jpg' not in {e['img_path'].split('data2/')[-1] for e in labels}
    for e in labels:
        i = int(e['img_path'].rsplit('im', 1)[1].split('.')[0])
        assert i % 3 in e['labels']  # the given label is kept (keep_given)
    assert result['rounds'][-1]['round'] == 1
    # labels.json keeps the label file's relative paths (with its folder as "root") and says what was left out
    final = json.load(open(tmp_path / 'rel' / 'labels.json'))
    assert final['root'] == str(tmp_path / 'data2') and final['left_out'] == 1
    assert all(e['img_path'].startswith('train/im') for e in final['data'])
    skipped = json.load(open(tmp_path / 'rel' / 'skipped.json'))
    assert skipped['count'] == 1 and skipped['by_split'] == {'train': 1, 'val': 0}
    assert skipped['files'][0]['path'].endswith('train/im5.jpg') and skipped['files'][0]['split'] == 'train'
    assert json.load(open(tmp_path / 'rel' / 'summary.json'))['skipped_images'] == 1
