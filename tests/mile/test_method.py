"""The MILe method (`mlrelabel.mile.method`): resume mid-phase, the burn-in and the better network returned,
unknown schemas refused, the two configs, and a finished run's predictions."""

import json
import os

import jax
import numpy as np
import pytest

from mlrelabel.errors import ConfigError
from mlrelabel.mile import method as mile_method
from mlrelabel.mile import steps as M
from mlrelabel.ops import augment
from mlrelabel.train import optim
from mlrelabel.train.state import TrainState
from tests.helpers import leaves_close, recipe
from tests.mile.helpers import fit_tiny_mile, tiny_variables


def _config(name, variant=''):
    return recipe(name, variant)


@pytest.mark.parametrize('student_init', M.STUDENT_INITS)
def test_resume_mid_phase_matches_uninterrupted(student_init, tiny_config, tiny_data, tmp_path):
    from mlrelabel.train.checkpoint import Checkpointer

    cfg = tiny_config
    cfg.mile = _config('mile.py', 'smoke').mile  # k_t=3, k_s=2: 8 steps = gens 0, 1 (+ 2 interactive)
    cfg.mile.student_init = student_init
    cfg.mile.burn_in = 0.0
    cfg.train.checkpoint_every_steps = 0
    evals = []

    def eval_fn(s):
        evals.append(int(s.step))
        return {'val_given_map': float(sum(np.asarray(x).sum() for x in jax.tree.leaves(s.params)))}

    full, full_hist = fit_tiny_mile(cfg, tiny_data, str(tmp_path / 'full'), eval_fn=eval_fn)
    assert [r['phase'] for r in full_hist] == [M.IMITATION, M.INTERACTIVE]  # after steps 3 and 7
    assert [r['generation'] for r in full_hist] == [0, 1]
    # The student's own step count (imitation steps 3, and 4 of 0..7), then the final teacher (steps 0-2, 5-7)
    # for the choice of the returned network.
    assert evals == [1, 2, 6]
    assert full_hist[-1]['network'] in ('teacher', 'student')
    assert 0 < full_hist[0]['pseudo_per_image'] <= 10

    cut = str(tmp_path / 'cut')
    fit_tiny_mile(cfg, tiny_data, cut, stop_at_step=4, eval_fn=eval_fn)  # killed inside imitation
    ck = Checkpointer(cut)
    state, meta = ck.restore(_template(cfg))
    ck.close()
    assert meta['phase'] == M.IMITATION
    assert {k: int(v) for k, v in state['counters'].items()} == {
        'step': 4,
        'generation': 0,
        'phase': 1,
        'step_in_phase': 1,
    }
    fit_tiny_mile(cfg, tiny_data, cut, stop_at_step=6, eval_fn=eval_fn)  # inside gen 1's interactive phase
    student, hist = fit_tiny_mile(cfg, tiny_data, cut, eval_fn=eval_fn)
    assert hist == full_hist
    assert leaves_close(student.params, full.params, atol=0, rtol=0)
    assert leaves_close(student.batch_stats, full.batch_stats, atol=0, rtol=0)


@pytest.mark.parametrize('teacher_wins', [True, False])
def test_burn_in_validates_the_teacher_and_the_run_returns_the_better_network(
    teacher_wins, tiny_config, tiny_data, tmp_path
):
    """8 steps, burn-in 0.3 (2 steps), k_t=3, k_s=2: the teacher runs steps 0-4 and 7, the student 5-6. Epoch
    1 (steps 0-3) validates the teacher, the only trained network; the end returns the better of the two on
    `mile.select_metric`, whatever the order of a killed and resumed run."""
    cfg = tiny_config
    cfg.mile = _config('mile.py', 'smoke').mile
    cfg.mile.burn_in = 0.3
    cfg.train.checkpoint_every_steps = 0
    seen = []

    def eval_fn(s):
        seen.append(int(s.step))
        # A stand-in metric that favours the network with more (or fewer) steps of its own.
        return {'val_given_map': float(s.step if teacher_wins else -s.step), 'val_top1': 0.5}

    net, hist = fit_tiny_mile(cfg, tiny_data, str(tmp_path / 'full'), eval_fn=eval_fn)
    assert seen == [
        4,
        2,
        6,
    ]  # epoch 1: the teacher (4 steps); epoch 2: the student (2); the final teacher (6)
    assert [r['phase'] for r in hist] == [M.INTERACTIVE, M.INTERACTIVE]
    last = hist[-1]
    assert last['network'] == ('teacher' if teacher_wins else 'student')
    assert int(net.step) == (6 if teacher_wins else 2)
    assert last['teacher_val_given_map'] == (6.0 if teacher_wins else -6.0)
    assert last['val_given_map'] == max(last['teacher_val_given_map'], last['student_val_given_map'])

    cut = str(tmp_path / 'cut')
    fit_tiny_mile(cfg, tiny_data, cut, stop_at_step=3, eval_fn=eval_fn)  # killed inside the burn-in
    net_again, hist_again = fit_tiny_mile(cfg, tiny_data, cut, eval_fn=eval_fn)
    assert hist_again == hist
    assert leaves_close(net_again.params, net.params, atol=0, rtol=0)


def _template(cfg):
    """A restore template of the checkpointed MILe state (teacher, student, counters)."""
    variables = tiny_variables(cfg, cfg.seed)
    ts = TrainState.create(variables, optim.make_optimizer(cfg.optim, 4, 2, 16)[0], jax.random.PRNGKey(0))
    return {'teacher': ts, 'student': ts, 'counters': mile_method._counters(0, 3, 2)}


def test_unknown_schema_is_refused(tiny_config, tmp_path):
    tiny_config.mile = _config('mile.py', 'smoke').mile
    tiny_config.mile.schema = 'softmax_mile'
    with pytest.raises(ConfigError, match='config.mile.schema'):
        mile_method.run(tiny_config, str(tmp_path))


def test_configs():
    for variant in ('', 'smoke'):
        c = _config('mile.py', variant)
        assert c.method == 'mile' and c.mile.schema == 'mile' and 0 < c.mile.rho < 1
        assert c.mile.k_t >= 1 and c.mile.k_s >= 1 and c.mile.student_init in M.STUDENT_INITS
        n = _config('mile_imagenet.py', variant)
        assert n.method == 'mile' and n.mile.schema == 'mile' and n.mile.rho == 0.25
        assert n.mile.k_t >= 1 and n.mile.k_s >= 1
        assert n.data.source == 'folder' and n.data.root == '' and n.data.num_classes == 1000
    full, smoke = _config('mile_imagenet.py', ''), _config('mile_imagenet.py', 'smoke')
    assert full.model.name == 'resnet50' and full.data.image_size == 224 and full.optim.name == 'sgd'
    assert smoke.model.name == 'resnet_tiny' and smoke.data.image_size <= 32 and smoke.train.epochs <= 2
    with pytest.raises(ValueError, match='variant'):
        _config('mile_imagenet.py', 'huge')


def test_load_run_predicts_with_the_network_a_mile_run_returned_and_its_schema_head(tmp_path):
    """`mlrelabel.load_run` on a MILe run: the returned network's weights (teacher or student, as metrics.json and
    run.json say), the schema's link, with or without run.json."""
    from mlrelabel import main
    from mlrelabel.methods import common
    from mlrelabel.run import load_run
    from mlrelabel.train import inference

    cfg = _config('mile.py', 'smoke')
    cfg.mile.schema = 'mile'
    main.run(cfg, str(tmp_path))
    images = np.random.default_rng(0).integers(
        0, 256, (3, cfg.data.image_size, cfg.data.image_size, 3), np.uint8
    )
    state, _ = inference.restore_latest(str(tmp_path / 'checkpoints'))
    with open(tmp_path / 'metrics.json') as f:
        network = json.load(f)['network']  # the better of teacher and student on val_given_map
    assert network in ('teacher', 'student')
    returned = {'params': state[network]['params'], 'batch_stats': state[network]['batch_stats']}
    model = common.build_model(cfg, cfg.data.num_classes)
    expected = jax.nn.sigmoid(model.apply(returned, augment.normalize(images, cfg.data.mean, cfg.data.std)))
    other = 'student' if network == 'teacher' else 'teacher'
    other_vars = {'params': state[other]['params'], 'batch_stats': state[other]['batch_stats']}
    unexpected = jax.nn.sigmoid(
        model.apply(other_vars, augment.normalize(images, cfg.data.mean, cfg.data.std))
    )
    assert not np.allclose(expected, unexpected, atol=1e-5)  # the two networks differ: the choice matters
    for manifest in ('written', 'derived'):
        if manifest == 'derived':
            os.remove(tmp_path / 'run.json')
        run = load_run(str(tmp_path))
        assert run.method == 'mile' and run.head == 'sigmoid' and run.num_classes == cfg.data.num_classes
        assert run.manifest['network'] == network
        np.testing.assert_allclose(run.predict(images), expected, atol=1e-5, err_msg=manifest)
