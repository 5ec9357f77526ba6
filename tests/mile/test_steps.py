"""MILe's steps (`mlrelabel.mile.steps`): the phase schedule and burn-in, the learning rate of the global
step, the network chosen, the pseudo-label rules, hand-overs and the joint imitation step."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mlrelabel import parallel
from mlrelabel.mile import steps as M
from mlrelabel.ops import augment
from mlrelabel.train import optim
from mlrelabel.train.state import TrainState
from mlrelabel.train.step import make_train_step
from tests.helpers import leaves_close, recipe
from tests.mile.helpers import TinyNet, tiny_variables


def _config(name, variant=''):
    return recipe(name, variant)


def test_phase_schedule():
    got = [M.phase_of(s, 3, 2) for s in range(11)]
    t, i = M.INTERACTIVE, M.IMITATION
    assert got == [(t, 0), (t, 1), (t, 2), (i, 0), (i, 1), (t, 0), (t, 1), (t, 2), (i, 0), (i, 1), (t, 0)]
    assert [M.generation_of(s, 3, 2) for s in range(11)] == [0] * 5 + [1] * 5 + [2]
    for total in range(13):
        teacher = sum(M.phase_of(s, 3, 2)[0] == t for s in range(total))
        assert M.phase_counts(total, 3, 2) == (teacher, total - teacher)
    with pytest.raises(ValueError, match='k_s=0'):
        M.phase_of(0, 3, 0)
    with pytest.raises(ValueError, match='step'):
        M.phase_of(-1, 3, 2)


def test_burn_in_lengthens_the_first_interactive_phase_only():
    t, i = M.INTERACTIVE, M.IMITATION
    got = [M.phase_of(s, 3, 2, burn_in=4) for s in range(14)]
    assert got == [(t, k) for k in range(7)] + [(i, 0), (i, 1), (t, 0), (t, 1), (t, 2), (i, 0), (i, 1)]
    assert [M.generation_of(s, 3, 2, burn_in=4) for s in range(14)] == [0] * 9 + [1] * 5
    for total in range(16):
        teacher = sum(M.phase_of(s, 3, 2, burn_in=4)[0] == t for s in range(total))
        assert M.phase_counts(total, 3, 2, burn_in=4) == (teacher, total - teacher)
    assert M.burn_in_steps(100, 0.3) == 30 and M.burn_in_steps(7, 0.0) == 0
    with pytest.raises(ValueError, match='burn_in'):
        M.burn_in_steps(100, 1.0)
    with pytest.raises(ValueError, match='burn-in'):
        M.phase_of(0, 3, 2, burn_in=-1)


@pytest.mark.parametrize('burn_in', [0, 4])
def test_global_step_of_inverts_the_schedule_for_each_network(burn_in):
    """Both networks' k-th own steps map to the global steps where they ran, so one learning-rate schedule over
    the run applies to both (jitted, as inside the optimizer)."""
    steps = {M.INTERACTIVE: [], M.IMITATION: []}
    for s in range(40):
        steps[M.phase_of(s, 3, 2, burn_in)[0]].append(s)
    for phase, where in steps.items():
        mapped = jax.jit(lambda c, phase=phase: M.global_step_of(c, phase, 3, 2, burn_in))(
            jnp.arange(len(where))
        )
        np.testing.assert_array_equal(mapped, where)
    with pytest.raises(ValueError, match='phase'):
        M.global_step_of(0, 'teaching', 3, 2)


def test_run_schedule_gives_teacher_and_student_the_rate_of_the_global_step(tiny_config, tiny_data):
    from mlrelabel.mile.task import MileTask

    cfg = tiny_config
    cfg.mile = _config('mile.py', 'smoke').mile
    cfg.mile.burn_in = 0.3
    task = MileTask(
        TinyNet(), tiny_variables(cfg), tiny_data['train'], cfg, mesh=parallel.make_mesh(1), ckpt_dir=''
    )
    total = task.steps_per_epoch * cfg.train.epochs
    base = optim.make_schedule(cfg.optim.schedule, cfg.optim.learning_rate, cfg.optim.warmup_epochs,
                               task.steps_per_epoch, cfg.train.epochs)  # fmt: skip
    counts = {M.INTERACTIVE: 0, M.IMITATION: 0}
    for s in range(total):
        phase = M.phase_of(s, *task.schedule)[0]
        sched = task.sched_t if phase == M.INTERACTIVE else task.sched_s
        np.testing.assert_allclose(float(sched(counts[phase])), float(base(s)), rtol=1e-6)
        counts[phase] += 1
    assert counts[M.IMITATION] > 0


def test_choose_network_takes_the_higher_single_label_metric_and_keeps_the_student_on_ties():
    assert M.choose_network({'val_given_map': 0.6}, {'val_given_map': 0.5}, 'val_given_map') == 'teacher'
    assert M.choose_network({'val_given_map': 0.5}, {'val_given_map': 0.5}, 'val_given_map') == 'student'
    assert M.choose_network({'val_top1': 0.4}, {'val_top1': 0.7}, 'val_top1') == 'student'
    with pytest.raises(ValueError, match='select_metric'):
        M.choose_network({'val_top1': 0.4}, {'val_top1': 0.7}, 'val_given_map')


def test_pseudo_labels_threshold_probabilities_or_given_and_sampling():
    logits = jnp.asarray([[-0.5, -2.0, 1.0, -3.0]])  # sigmoid: 0.38, 0.12, 0.73, 0.05
    given = jnp.asarray([[0.0, 0.0, 0.0, 1.0]])
    key = jax.random.PRNGKey(0)
    hard = M.pseudo_labels(logits, given, key, rho=0.25, or_given=False, sample=False)
    # -0.5 is a positive: its probability 0.38 > 0.25 although the raw logit is below rho.
    np.testing.assert_array_equal(hard, [[1, 0, 1, 0]])
    with_given = M.pseudo_labels(logits, given, key, rho=0.25, or_given=True, sample=False)
    np.testing.assert_array_equal(with_given, [[1, 0, 1, 1]])
    assert with_given.dtype == jnp.float32

    many = jnp.tile(logits, (20000, 1))
    draws = M.pseudo_labels(many, jnp.zeros_like(many), key, rho=0.25, or_given=False, sample=True)
    np.testing.assert_allclose(draws.mean(0), jax.nn.sigmoid(logits[0]), atol=0.015)
    again = M.pseudo_labels(many, jnp.zeros_like(many), key, rho=0.25, or_given=False, sample=True)
    np.testing.assert_array_equal(draws, again)
    other = M.pseudo_labels(
        many, jnp.zeros_like(many), jax.random.PRNGKey(1), rho=0.25, or_given=False, sample=True
    )
    assert not np.array_equal(draws, other)
    forced = M.pseudo_labels(many, jnp.tile(given, (20000, 1)), key, rho=0.25, or_given=True, sample=True)
    assert float(forced[:, 3].min()) == 1.0


def test_hand_overs_between_phases():
    tx = optax.sgd(0.1, momentum=0.9)
    teacher = TrainState.create(
        {'params': {'w': jnp.ones(3)}, 'batch_stats': {'m': jnp.zeros(3)}}, tx, jax.random.PRNGKey(0)
    ).replace(step=jnp.int32(7))
    student = TrainState.create(
        {'params': {'w': jnp.full(3, 2.0)}, 'batch_stats': {'m': jnp.ones(3)}}, tx, jax.random.PRNGKey(1)
    )
    new_teacher = M.start_generation(teacher, student)
    np.testing.assert_array_equal(new_teacher.params['w'], 2.0)
    np.testing.assert_array_equal(new_teacher.batch_stats['m'], 1.0)
    assert int(new_teacher.step) == 7 and new_teacher.opt_state is teacher.opt_state
    assert M.start_imitation(teacher, student, 'persist') is student
    copied = M.start_imitation(teacher, student, 'teacher')
    np.testing.assert_array_equal(copied.params['w'], 1.0)
    assert copied.key is student.key
    with pytest.raises(ValueError, match='student_init'):
        M.start_imitation(teacher, student, 'fresh')


def test_imitation_step_is_one_function_equal_to_two_passes(tiny_config, tiny_data):
    """The joint step (teacher predictions + student update in one jit) equals predicting with the teacher
    first and training the student on the thresholded probabilities with the plain train step."""
    cfg = tiny_config
    model = TinyNet()
    variables = tiny_variables(cfg, cfg.seed)
    teacher_vars = jax.tree.map(lambda x: x * 1.5 if x.ndim > 1 else x, variables)  # differs from the student
    tx = optax.sgd(0.05)
    student = TrainState.create(variables, tx, jax.random.PRNGKey(3))
    train = tiny_data['train']
    idx = np.arange(16)
    batch = {
        'image': np.asarray(train.images[idx]),
        'target': train.labels.dense(idx),
        'index': idx.astype(np.int32),
    }
    args = dict(mean=cfg.data.mean, std=cfg.data.std)
    joint = jax.jit(M.make_imitation_step(model, tx, rule=M.PseudoLabelRule(rho=0.25, or_given=True), **args))
    new_student, metrics = joint(teacher_vars, student, batch)

    logits = model.apply(teacher_vars, augment.normalize(batch['image'], *args.values()), train=False)
    target = M.pseudo_labels(logits, batch['target'], None, rho=0.25, or_given=True, sample=False)
    plain = jax.jit(make_train_step(model, tx, loss='sigmoid_bce', **args))
    ref_student, ref_metrics = plain(student, dict(batch, target=target))
    assert leaves_close(new_student.params, ref_student.params, atol=1e-5)
    np.testing.assert_allclose(metrics['loss'], ref_metrics['loss'], rtol=1e-5)
    np.testing.assert_allclose(metrics['pseudo_per_image'], target.sum(-1).mean(), rtol=1e-6)
    assert float(metrics['pseudo_has_given']) == 1.0  # or_given keeps every given label
    assert int(new_student.step) == 1
