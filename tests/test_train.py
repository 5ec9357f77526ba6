"""Training loop: learning happens, resuming after a kill reproduces the uninterrupted run, optimizers."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import ROOT, leaves_close

from mlrelabel import parallel
from mlrelabel.methods import common
from mlrelabel.train import loop, optim


def _fit(cfg, data, ckpt_dir, **kw):
    mesh = parallel.make_mesh(1)
    model = common.build_model(cfg, 10)
    variables = common.init_variables(model, cfg, cfg.seed)
    return loop.fit(model, variables, data['train'], cfg, mesh=mesh, ckpt_dir=ckpt_dir, **kw)


def test_resume_after_interruption_matches_uninterrupted(tiny_config, tiny_data, tmp_path):
    full_state, full_hist = _fit(tiny_config, tiny_data, str(tmp_path / 'full'))
    # "Kill" after step 3: the last checkpoint is step 2 (checkpoint_every_steps=2), step 3 is lost.
    _fit(tiny_config, tiny_data, str(tmp_path / 'cut'), stop_at_step=3)
    assert sorted(os.listdir(tmp_path / 'cut'))[-1] == '2'
    state, hist = _fit(tiny_config, tiny_data, str(tmp_path / 'cut'))
    assert int(state.step) == int(full_state.step) == 8
    assert leaves_close(state.params, full_state.params, atol=0, rtol=0)
    assert leaves_close(state.batch_stats, full_state.batch_stats, atol=0, rtol=0)
    assert hist == full_hist


def test_checkpoint_every_seconds_spaces_saves_but_the_phase_end_always_saves(
    tiny_config, tiny_data, tmp_path, monkeypatch
):
    from mlrelabel import checkpoint

    saved = []
    original = checkpoint.Checkpointer.save
    monkeypatch.setattr(
        checkpoint.Checkpointer,
        'save',
        lambda self, step, *a, **k: saved.append(step) or original(self, step, *a, **k),
    )
    tiny_config.train.checkpoint_every_seconds = 3600.0
    state, _ = _fit(tiny_config, tiny_data, str(tmp_path / 'spaced'))
    assert saved == [8] and int(state.step) == 8  # steps 2, 4 and 6 were due, but too soon
    saved.clear()
    tiny_config.train.checkpoint_every_seconds = 0.0
    _fit(tiny_config, tiny_data, str(tmp_path / 'every'))
    assert saved == [2, 4, 6, 8]


def test_training_reduces_loss_and_updates_batch_stats(tiny_config, tiny_data, tmp_path):
    tiny_config.train.epochs = 4
    state, hist = _fit(tiny_config, tiny_data, str(tmp_path / 'ck'))
    assert hist[-1]['train_loss'] < hist[0]['train_loss']
    model = common.build_model(tiny_config, 10)
    init = common.init_variables(model, tiny_config, tiny_config.seed)
    assert not leaves_close(init['batch_stats'], state.batch_stats)


def test_eval_fn_rows_and_labels_override(tiny_config, tiny_data, tmp_path):
    from mlrelabel.data.labels import LabelTable

    tiny_config.train.epochs = 1
    truth = tiny_data['train'].truth
    calls = []
    _, hist = _fit(
        tiny_config,
        tiny_data,
        str(tmp_path / 'ck'),
        labels=truth,
        loss='sigmoid_bce',
        eval_fn=lambda s: calls.append(int(s.step)) or {'val_x': 0.5},
    )
    assert calls == [4] and hist[0]['val_x'] == 0.5
    assert isinstance(truth, LabelTable)


@pytest.mark.parametrize('every, evaluated', [(1, [4, 8, 12]), (2, [8, 12]), (0, [12])])
def test_eval_every_epochs_and_zero_for_the_end_only(tiny_config, tiny_data, tmp_path, every, evaluated):
    tiny_config.train.epochs = 3
    tiny_config.train.eval_every_epochs = every
    calls = []
    _, hist = _fit(
        tiny_config,
        tiny_data,
        str(tmp_path / 'ck'),
        eval_fn=lambda s: calls.append(int(s.step)) or {'val_x': 1.0},
    )
    assert calls == evaluated
    assert [('val_x' in row) for row in hist] == [row['step'] in evaluated for row in hist]


def test_schedules_and_optimizers():
    import ml_collections

    cfg = ml_collections.ConfigDict(
        dict(
            name='sgd',
            learning_rate=0.4,
            lr_base_batch=256,
            momentum=0.9,
            nesterov=True,
            weight_decay=1e-4,
            warmup_epochs=1.0,
            schedule='cosine',
        )
    )
    tx, sched = optim.make_optimizer(cfg, steps_per_epoch=10, num_epochs=5, batch_size=128)
    assert float(sched(0)) == 0.0
    assert np.isclose(float(sched(10)), 0.2)  # peak after warm-up, scaled by 128 / 256
    assert float(sched(49)) < 0.01
    cfg.schedule = 'constant'
    _, sched = optim.make_optimizer(cfg, 10, 5, 256)
    assert np.isclose(float(sched(30)), 0.4)
    cfg.name = 'lamb'
    with pytest.raises(ValueError, match='optim.name'):
        optim.make_optimizer(cfg, 10, 5, 256)
    mask = optim.decay_mask({'conv': {'kernel': np.zeros((3, 3, 1, 2))}, 'bn': {'scale': np.zeros(2)}})
    assert mask == {'conv': {'kernel': True}, 'bn': {'scale': False}}


SHARDING_SCRIPT = textwrap.dedent('''
    import os
    os.environ['XLA_FLAGS'] = '--xla_force_host_platform_device_count=8'
    import sys, tempfile
    sys.path.insert(0, {root!r})
    import jax, numpy as np
    from mlrelabel import parallel
    from mlrelabel.config import base_config
    from mlrelabel.methods import common
    from mlrelabel.train import loop
    assert jax.device_count() == 8, jax.devices()
    c = base_config('smoke')
    c.data.num_train, c.data.num_val, c.data.image_size, c.data.min_scale, c.data.max_scale = 64, 16, 16, 6, 9
    c.train.batch_size, c.train.epochs, c.train.checkpoint_every_steps = 32, 1, 0
    c.eval.batch_size = 16
    data = common.load_datasets(c, tempfile.mkdtemp())
    model = common.build_model(c, 10)
    v = common.init_variables(model, c, 0)
    out = {{}}
    for n in (1, 8):
        mesh = parallel.make_mesh(n)
        state, hist = loop.fit(model, v, data['train'], c, mesh=mesh, ckpt_dir=tempfile.mkdtemp())
        logits = loop.predict(model, state.variables, data['val'].images, 16, c, mesh=mesh)
        out[n] = (state, hist, logits)
    (s1, h1, l1), (s8, h8, l8) = out[1], out[8]
    assert len(s8.params['fc']['kernel'].sharding.device_set) == 8
    print('loss', h1[0]['train_loss'], h8[0]['train_loss'])
    assert abs(h1[0]['train_loss'] - h8[0]['train_loss']) < 1e-5
    for a, b in zip(jax.tree.leaves((s1.params, s1.batch_stats)), jax.tree.leaves((s8.params, s8.batch_stats))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-5, rtol=2e-4)
    np.testing.assert_allclose(l1, l8, atol=1e-4, rtol=1e-4)
    print('SHARDING_OK')
''')


def test_eight_devices_match_one_device():
    """Same global batch on 1 and 8 simulated CPU devices: same loss, parameters and batch statistics."""
    env = dict(os.environ, JAX_PLATFORMS='cpu')
    proc = subprocess.run(
        [sys.executable, '-c', SHARDING_SCRIPT.format(root=ROOT)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert 'SHARDING_OK' in proc.stdout, proc.stdout[-3000:] + proc.stderr[-5000:]
