"""benchmarks/gpu_check.py at its tiny size: every part runs (PyTorch's is skipped where torch is absent) and
the result file has the keys the GPU run reports."""

import glob
import json
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT


@pytest.mark.slow
def test_tiny_gpu_check_writes_every_figure(tmp_path):
    script = os.path.join(ROOT, 'benchmarks', 'gpu_check.py')
    proc = subprocess.run(
        [sys.executable, script, '--preset=tiny', f'--out_dir={tmp_path}', '--budget_s=600'],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = glob.glob(str(tmp_path / '*.json'))
    r = json.load(open(path))
    assert os.path.basename(path) == f'{r["date"]}-{r["device"].lower()}.json'
    assert {'jax', 'jaxlib', 'flax', 'optax', 'python'} <= set(r['versions'])
    for part in ('train_jax', 'relabel', 'input', 'train_jax_xla_flags'):
        assert r['parts'][part]['status'] == 'ok', (part, r['parts'][part])
    t = r['train']
    assert t['jax_images_per_s'] > 0 and t['batch'] == 16 and t['iters'] > 0
    assert t['jax_variants']['xla_flags']['images_per_s'] > 0
    try:
        import torchvision  # noqa: F401

        assert t['torch_images_per_s'] > 0 and t['ratio'] > 0 and t['torch_compiled'] in (True, False)
    except ImportError:
        assert (
            t['torch_images_per_s'] is None and t['ratio'] is None and 'not installed' in t['torch_skipped']
        )
    rl = r['relabel']
    assert rl['naive_images_per_s'] > 0 and rl['mc_dropout_images_per_s'] > 0 and rl['samples'] == 4
    assert rl['ratio'] == pytest.approx(rl['naive_images_per_s'] / rl['mc_dropout_images_per_s'], rel=1e-2)
    i = r['input']
    assert i['images_per_s'] > 0 and i['workers'] == 2 and i['num_images'] == 48 and i['image_size'] == 224
    assert set(r['goals']) == {
        'jax_at_least_1.2x_torch',
        'jax_at_least_4000_images_per_s',
        'mc_dropout_at_most_1.2x_naive',
        'input_at_least_training_rate',
    }


def _gpu_check():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        'gpu_check', os.path.join(ROOT, 'benchmarks', 'gpu_check.py')
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_merge_computes_ratios_and_goals_from_the_parts():
    gc = _gpu_check()
    ok = {'status': 'ok', 'wall_s': 1.0}
    parts = {
        'train_jax': {
            'figures': {'device': 'NVIDIA H100 80GB HBM3', 'images_per_s': 3000.0, 'batch': 256},
            **ok,
        },
        'train_torch': {'figures': {'images_per_s': 2000.0, 'compiled': True, 'torch': '2.11.0'}, **ok},
        'relabel': {
            'figures': {
                'relabel_naive': {'images_per_s': 1000.0, 'crops': 8, 'samples': 1},
                'relabel_mc_dropout': {'images_per_s': 900.0, 'crops': 8, 'samples': 16},
            },
            **ok,
        },
        'input': {'figures': {'rows': [{'workers': 16, 'threads': 1, 'steady_images_per_s': 3500.0}]}, **ok},
        'train_jax_batch_512': {'figures': {'images_per_s': 3100.0, 'batch': 512}, **ok},
        'train_jax_xla_flags': {'status': 'skipped: 10 s of the budget left', 'wall_s': 0.0},
    }
    r = gc.merge(parts, 'gpu', 0.0)
    assert r['device'] == 'NVIDIA H100 80GB HBM3' and r['versions']['torch'] == '2.11.0'
    assert gc.slug(r['device']) == 'nvidia-h100-80gb-hbm3'
    t = r['train']
    assert (t['jax_images_per_s'], t['torch_images_per_s'], t['ratio']) == (3000.0, 2000.0, 1.5)
    assert t['jax_best_images_per_s'] == 3100.0 and t['ratio_best'] == 1.55
    assert (
        t['jax_variants']['batch_512']['batch'] == 512
        and t['jax_variants']['xla_flags']['images_per_s'] is None
    )
    assert r['relabel']['ratio'] == 1.111 and r['relabel']['samples'] == 16
    assert r['input']['images_per_s'] == 3500.0 and r['input']['workers'] == 16
    assert r['goals'] == {
        'jax_at_least_1.2x_torch': True,
        'jax_at_least_4000_images_per_s': False,
        'mc_dropout_at_most_1.2x_naive': True,
        'input_at_least_training_rate': True,
    }
    assert r['parts']['train_jax_xla_flags']['status'].startswith('skipped')
