"""The persistent compilation cache: where it lives, what it counts, and a rerun that compiles nothing."""

import json
import os
import subprocess
import sys

import pytest

from mlrelabel import compile_cache, workdir
from tests.helpers import ROOT


def test_cache_folder_from_config_and_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(compile_cache.ENV_DIR, raising=False)
    assert compile_cache.resolve_dir('') == ''
    assert compile_cache.resolve_dir('~/x/xla') == os.path.join(os.path.expanduser('~'), 'x', 'xla')
    monkeypatch.setenv(compile_cache.ENV_DIR, str(tmp_path))
    assert compile_cache.resolve_dir('~/x/xla') == str(tmp_path)  # the environment moves it ...
    assert compile_cache.resolve_dir('') == ''  # ... but never turns a disabled cache on


def test_every_program_is_counted_once_as_compiled_or_loaded():
    import jax
    import jax.numpy as jnp
    import numpy as np

    x = np.ones((7, 13), np.float32)  # a host array: nothing compiled to make it
    compile_cache.start_counting()
    # A shape no other test uses: one new program, compiled or (in a later session) loaded from the repo cache.
    jax.jit(lambda x: jnp.cumsum(x * 3.0) - 1.0)(x).block_until_ready()
    s = compile_cache.stats()
    assert s['compiled'] + s['loaded'] == 1
    assert compile_cache.parse_summary('noise\nmlrelabel: ' + compile_cache.summary('/c') + '\n') == {
        'compiled': s['compiled'],
        'loaded': s['loaded'],
        'compile_s': round(s['compile_s'], 1),
    }
    assert compile_cache.parse_summary('no summary here') is None


def test_resuming_with_another_cache_folder_is_allowed(tmp_path):
    from mlrelabel.config import base_config

    cfg = base_config('smoke')
    workdir.prepare_workdir(cfg, str(tmp_path))
    cfg.compile_cache = ''
    workdir.prepare_workdir(cfg, str(tmp_path))  # no ConfigError: the cache does not change results


@pytest.mark.slow
def test_second_run_of_a_job_compiles_nothing(tmp_path):
    """benchmarks/main_job.py: two runs sharing a cache that starts empty; the second loads every program."""
    out = tmp_path / 'main_job.json'
    cmd = [
        sys.executable,
        os.path.join(ROOT, 'benchmarks', 'main_job.py'),
        '--config=configs/supervised.py:smoke',
        '--benchmark=',
        f'--out={out}',
        '--config.data.num_train=64',
        '--config.data.num_val=32',
        '--config.train.epochs=1',
    ]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, timeout=900)
    result = json.loads(out.read_text())
    assert result['cold']['compiled'] > 0
    assert result['warm']['compiled'] == 0
    assert result['warm']['loaded'] == result['cold']['compiled'] + result['cold']['loaded']
