"""Divergence: a non-finite loss or parameter stops training within a few steps, naming the phase and the step;
no non-finite state is ever saved, the last finite checkpoint survives rotation, predict refuses NaN weights."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlrelabel import parallel
from mlrelabel import workdir as workdir_mod
from mlrelabel.errors import TrainingDiverged
from mlrelabel.methods import common
from mlrelabel.train import divergence, loop
from mlrelabel.train.checkpoint import Checkpointer, NonFiniteCheckpoint, assert_finite
from mlrelabel.train.divergence import FiniteWatch
from tests.helpers import ROOT


def test_all_finite_checks_every_floating_leaf():
    tree = {'a': jnp.ones((3, 2)), 'b': [jnp.zeros(4, jnp.bfloat16)], 'n': jnp.arange(3)}
    assert bool(jax.jit(divergence.all_finite)(tree))
    for bad in (jnp.nan, jnp.inf, -jnp.inf):
        broken = dict(tree, b=[jnp.zeros(4, jnp.bfloat16).at[2].set(bad)])
        assert not bool(jax.jit(divergence.all_finite)(broken))
    assert bool(divergence.all_finite({'steps': jnp.arange(3)}))  # no floating leaf: nothing to check


def test_finite_watch_names_the_first_bad_step_and_waits_only_when_asked():
    stopped = []
    watch = FiniteWatch(
        'round 2 train', 10, lambda: 'no checkpoint had been saved yet', on_stop=lambda: stopped.append(1)
    )
    for ok in (True, True, False, False):
        watch.add(jnp.asarray(ok))
    watch.check(lag=3)  # only step 11 is read: finite
    with pytest.raises(
        TrainingDiverged, match=r'round 2 train: .*non-finite \(NaN or inf\) at step 13'
    ) as info:
        watch.check()
    assert info.value.step == 13 and info.value.desc == 'round 2 train' and stopped == [1]


def _fit(cfg, data, ckpt_dir, **kw):
    model = common.build_model(cfg, 10)
    variables = common.init_variables(model, cfg, cfg.seed)
    return loop.fit(model, variables, data['train'], cfg, mesh=parallel.make_mesh(1), ckpt_dir=ckpt_dir, **kw)


def _nan_from_step(k):
    """A transform that poisons the images from global step k on (step index k is the (k+1)-th update)."""

    def transform(images, batch, boxes, flipped, key, step):
        return images * jnp.where(step >= k, jnp.nan, 1.0), batch['target']

    return transform


def test_divergence_stops_at_the_step_and_keeps_the_last_finite_checkpoint(tiny_config, tiny_data, tmp_path):
    cfg = tiny_config  # 4 steps per epoch, 2 epochs, a checkpoint every 2 steps, 2 kept
    cfg.train.log_every_steps = 100  # no metrics fetch between checkpoints: the periodic check must catch it
    cfg.train.checkpoint_every_steps = 3
    ckpt_dir = str(tmp_path / 'ck')
    with pytest.raises(TrainingDiverged) as info:
        _fit(cfg, tiny_data, ckpt_dir, transform_fn=_nan_from_step(6), desc='round 1 train')
    message = str(info.value)
    assert info.value.step == 7 and 'round 1 train' in message and 'at step 7' in message
    assert (
        'NaN' in message and 'config.optim.learning_rate' in message and 'config.optim.grad_clip' in message
    )
    assert f'step 6 in {ckpt_dir}' in message
    steps = sorted(int(s) for s in os.listdir(ckpt_dir) if s.isdigit())
    assert steps == [4, 6]  # every 3 steps plus the epoch end (4); step 7 was never saved, rotation kept 6
    ckpt = Checkpointer(ckpt_dir)
    for step in steps:
        assert_finite(ckpt.restore(_template(cfg), step)[0], f'step {step}')
    ckpt.close()
    # Resuming replays the same data and keys: it stops at the same step, and nothing is lost.
    with pytest.raises(TrainingDiverged, match='at step 7'):
        _fit(cfg, tiny_data, ckpt_dir, transform_fn=_nan_from_step(6), desc='round 1 train')
    assert sorted(int(s) for s in os.listdir(ckpt_dir) if s.isdigit()) == [4, 6]


def _template(cfg):
    from mlrelabel.train import optim
    from mlrelabel.train.state import TrainState

    model = common.build_model(cfg, 10)
    tx, _ = optim.make_optimizer(cfg.optim, 4, cfg.train.epochs, cfg.train.batch_size)
    return TrainState.create(common.init_variables(model, cfg, cfg.seed), tx, jax.random.PRNGKey(0))


def test_a_huge_learning_rate_is_caught_within_a_few_steps(tiny_config, tiny_data, tmp_path):
    cfg = tiny_config
    cfg.optim.learning_rate = 1e30
    cfg.train.log_every_steps = 100
    cfg.train.checkpoint_every_steps = 0
    cfg.train.epochs = 4  # 16 steps; without the check, the first fetch would be at the epoch end (step 4)
    with pytest.raises(TrainingDiverged, match=r'train: .* at step [1-5]\b.*now 1e\+30'):
        _fit(cfg, tiny_data, str(tmp_path / 'ck'))


def test_mile_stops_on_divergence(tiny_config, tiny_data, tmp_path):
    from tests.helpers import recipe
    from tests.mile.helpers import fit_tiny_mile

    cfg = tiny_config
    cfg.mile = recipe('mile.py', 'smoke').mile
    cfg.optim.learning_rate = 1e30
    with pytest.raises(TrainingDiverged, match=r'mile: .*non-finite.* at step \d+'):
        fit_tiny_mile(cfg, tiny_data, str(tmp_path / 'ck'))


def test_assert_finite_names_the_leaf():
    assert_finite({'params': {'w': np.ones(3)}, 'step': np.int32(3)}, 'x')
    with pytest.raises(
        NonFiniteCheckpoint, match=r"run/checkpoints step 8: \['params'\]\['w'\] holds 1 non-finite"
    ):
        assert_finite({'params': {'w': np.array([1.0, np.nan])}}, 'run/checkpoints step 8')


def test_predict_refuses_a_non_finite_checkpoint(tiny_config, tiny_data, tmp_path):
    import mlrelabel

    work = tmp_path / 'run'
    workdir_mod.prepare_workdir(tiny_config, str(work))
    state = _template(tiny_config)
    state = state.replace(params=jax.tree.map(lambda p: p * jnp.nan, state.params))
    ckpt = Checkpointer(str(work / 'checkpoints'))
    ckpt.save(4, state, {'history': []})
    ckpt.close()
    with pytest.raises(NonFiniteCheckpoint, match=r'checkpoints \(step 4\): .*non-finite'):
        mlrelabel.load_run(str(work))


@pytest.mark.slow
def test_cli_learning_rate_1e30_stops_naming_non_finite_and_the_step(tmp_path):
    command = [
        sys.executable,
        '-m',
        'mlrelabel.main',
        '--config=configs/mc_dropout.py:smoke',
        f'--workdir={tmp_path / "run"}',
        '--config.optim.learning_rate=1e30',
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 3, done.stderr[-3000:]
    assert 'round 0 train' in done.stderr and 'non-finite' in done.stderr and 'NaN' in done.stderr
    assert 'Traceback' not in done.stderr
    import re

    assert re.search(r'at step \d+\b', done.stderr)
