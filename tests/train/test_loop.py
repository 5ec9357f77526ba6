"""The training loop (`mlrelabel.train.loop`): learning happens, resuming after a kill reproduces the
uninterrupted run, checkpoints and evaluations on schedule, eight devices equal one, mixup and zoom-out in
training."""

import os
import subprocess
import sys
import textwrap

import pytest

from mlrelabel import parallel
from mlrelabel.methods import common
from mlrelabel.train import loop
from tests.helpers import ROOT, leaves_close


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


def test_resume_with_mixup_matches_uninterrupted_floor_included(tiny_config, tiny_data, tmp_path):
    tiny_config.train.augment.mixup = 0.4
    full_state, full_hist = _fit(tiny_config, tiny_data, str(tmp_path / 'full'))
    _fit(tiny_config, tiny_data, str(tmp_path / 'cut'), stop_at_step=3)  # killed inside epoch 1
    state, hist = _fit(tiny_config, tiny_data, str(tmp_path / 'cut'))
    assert leaves_close(state.params, full_state.params, atol=0, rtol=0)
    assert hist == full_hist and all('train_loss_floor' in row for row in hist)


def test_checkpoint_every_seconds_spaces_saves_but_the_phase_end_always_saves(
    tiny_config, tiny_data, tmp_path, monkeypatch
):
    from mlrelabel.train import checkpoint

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
    from mlrelabel.data.label_table import LabelTable

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


SHARDING_SCRIPT = textwrap.dedent('''
    import os
    os.environ['XLA_FLAGS'] = '--xla_force_host_platform_device_count=8'
    import sys, tempfile
    sys.path.insert(0, {root!r})
    import jax, numpy as np
    from mlrelabel import parallel
    from mlrelabel.config import base_config
    from mlrelabel.methods import common
    from mlrelabel.train import inference, loop
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
        logits = inference.predict(model, state.variables, data['val'].images, 16, c, mesh=mesh)
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


def test_mixup_changes_training_reproducibly_and_leaves_losses_without_soft_targets_alone(
    tiny_config, tiny_data, tmp_path
):
    _, plain = _fit(tiny_config, tiny_data, str(tmp_path / 'plain'))
    tiny_config.train.augment.mixup = 0.4
    state_a, mixed = _fit(tiny_config, tiny_data, str(tmp_path / 'a'))
    state_b, mixed_again = _fit(tiny_config, tiny_data, str(tmp_path / 'b'))
    assert mixed != plain
    # The loss's floor on blended targets is recorded (the under-training check compares the excess over it).
    assert all(row['train_loss_floor'] > 0 for row in mixed)
    assert all('train_loss_floor' not in row for row in plain)
    assert mixed == mixed_again and leaves_close(state_a.params, state_b.params, atol=0, rtol=0)
    # A single-positive loss reads its targets as observed / unobserved: it trains without mixup.
    tiny_config.train.loss = 'an'
    assert loop.mixup_alpha(tiny_config, 'an') == 0.0 and loop.mixup_alpha(tiny_config, 'sigmoid_bce') == 0.4
    state_an, with_mixup_asked = _fit(tiny_config, tiny_data, str(tmp_path / 'an'))
    tiny_config.train.augment.mixup = 0.0
    state_an_plain, without = _fit(tiny_config, tiny_data, str(tmp_path / 'an_plain'))
    assert with_mixup_asked == without and leaves_close(
        state_an.params, state_an_plain.params, atol=0, rtol=0
    )
    with pytest.raises(ValueError, match=r'train\.augment\.mixup.*an'):  # the step itself refuses the pair
        from mlrelabel.train.step import StepOptions, make_train_step

        make_train_step(None, None, loss='an', mean=0.0, std=1.0, options=StepOptions(mixup=0.4))


def test_zoom_out_trains_reproducibly_and_is_refused_where_it_cannot_apply(tiny_config, tiny_data, tmp_path):
    from mlrelabel.validation import problems

    _, plain = _fit(tiny_config, tiny_data, str(tmp_path / 'plain'))
    tiny_config.train.augment.zoom_out = 0.5
    assert loop.augment_config(tiny_config)['zoom_out'] == 0.5
    state_a, zoomed = _fit(tiny_config, tiny_data, str(tmp_path / 'a'))
    state_b, zoomed_again = _fit(tiny_config, tiny_data, str(tmp_path / 'b'))
    assert zoomed != plain
    assert zoomed == zoomed_again and leaves_close(state_a.params, state_b.params, atol=0, rtol=0)
    tiny_config.data.host_augment = True
    assert any('data.host_augment=True' in p for p in problems(tiny_config))
    tiny_config.data.host_augment = False
    tiny_config.method = 'relabel_maps'
    assert any('LabelPooling' in p and 'zoom_out=0.5' in p for p in problems(tiny_config))
