"""Multi-label iterated learning (MILe; Rajeswar et al., CVPR 2022) and its single-network baselines.

`config.mile.schema` picks the method, at the same budget of `train.epochs` × steps per epoch updates:
  'softmax'  softmax + cross-entropy on the given label (`train.loop.fit`, loss 'softmax_ce');
  'sigmoid'  sigmoid + BCE on the given label (`train.loop.fit`, loss 'sigmoid_bce');
  'mile'     sigmoid + BCE + iterated learning: generations of an interactive phase (`k_t` steps, the
             teacher learns the given labels) and an imitation phase (`k_s` steps, the student learns the
             teacher's binarized predictions `sigmoid(logits) > rho`); the student then becomes the
             teacher. The pure pieces are in `mlrelabel.train.mile`; the student is the evaluated model.

Leaves in the work directory: `checkpoints/` (Orbax: teacher and student train states and the
step / generation / phase counters, so a killed run resumes inside the right phase), `metrics.json`
(per-epoch history and final metrics), `training.png`, `tensorboard/` (event files), `run.json` (the
manifest). Validation follows `mlrelabel.evaluate`: top-1 on the given label, ReaL-style accuracy and
sample-F1 of `argmax ∪ {p > eval.threshold}` on the full sets.
"""

from __future__ import annotations

import logging
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from mlrelabel import parallel, tensorboard_writer
from mlrelabel.checkpoint import Checkpointer
from mlrelabel.data import pipeline
from mlrelabel.methods import common
from mlrelabel.train import divergence, loop, optim
from mlrelabel.train import mile as mile_steps
from mlrelabel.train.state import TrainState

SCHEMA_LOSSES = {'softmax': 'softmax_ce', 'sigmoid': 'sigmoid_bce', 'mile': 'sigmoid_bce'}
TABLE_KEYS = ('val_top1', 'val_real_accuracy', 'val_f1', 'val_map')


def run(config, workdir: str) -> dict:
    schema = config.mile.schema
    if schema not in SCHEMA_LOSSES:
        raise SystemExit(f'config.mile.schema={schema!r}: expected one of {", ".join(SCHEMA_LOSSES)}')
    loss = SCHEMA_LOSSES[schema]
    mesh = common.mesh_from_config(config)
    data = common.load_datasets(config, workdir)
    train = data['train']
    model = common.build_model(config, train.num_classes)
    variables = common.init_variables(model, config, config.seed)
    ckpt_dir = os.path.join(workdir, 'checkpoints')
    if schema == 'mile':
        state, history, head = common.fit_validated(
            model, variables, data, config, mesh, ckpt_dir, loss=loss, fit=fit_mile
        )
    else:
        state, history, head = common.fit_validated(
            model, variables, data, config, mesh, ckpt_dir, loss=loss, desc=schema
        )
    final = common.final_metrics(model, state, history, data, config, mesh, head, workdir)
    result = {'schema': schema, 'loss': loss, 'history': history, 'final': final}
    common.finish_single_model(
        workdir, config, result, train, head, title=f'{schema} ({config.model.name}) on {train.name}'
    )
    return result


def _copy(tree):
    """Fresh device buffers, so that donating one train state never frees another's arrays."""
    return jax.tree.map(jnp.copy, tree)


def fit_mile(
    model,
    variables: dict,
    dataset,
    cfg,
    *,
    mesh,
    ckpt_dir: str,
    eval_fn=None,
    stop_at_step: int | None = None,
    tensorboard_dir: str | None = None,
) -> tuple[TrainState, list[dict]]:
    """Iterated learning from `variables` for `train.epochs` epochs; returns `(student, history)`.

    Global step `s` reads batch `s` of the seeded sampler and runs the phase `phase_of(s, k_t, k_s)`. The
    hand-overs happen at the start of a phase's first step (the student becomes the teacher; the student
    optionally restarts from the teacher), so resuming from a checkpoint after any step replays the
    uninterrupted run exactly. Teacher and student have their own optimizers whose schedules span their
    own number of steps in the run. `stop_at_step` ends early (tests use it to simulate a kill).
    TensorBoard events as in `loop.fit` (`tensorboard_dir`, default the active run's): per step the
    stepping network's loss and learning rate (`train/loss`, `train/<teacher|student>_loss`,
    `train/learning_rate`), per epoch the history row.
    """
    mc, tcfg = cfg.mile, cfg.train
    k_t, k_s = int(mc.k_t), int(mc.k_s)
    mile_steps.check_schedule(k_t, k_s)
    if mc.student_init not in mile_steps.STUDENT_INITS:
        raise SystemExit(
            f'config.mile.student_init={mc.student_init!r}: expected one of '
            f'{", ".join(mile_steps.STUDENT_INITS)}'
        )
    batch_size = tcfg.batch_size
    parallel.check_batch_size(batch_size, mesh, 'config.train.batch_size')
    sampler = pipeline.IndexSampler(len(dataset), batch_size, cfg.seed)
    spe = sampler.steps_per_epoch
    total = spe * tcfg.epochs
    n_teacher, n_student = mile_steps.phase_counts(total, k_t, k_s)
    tx_t, sched_t = optim.make_optimizer(cfg.optim, max(n_teacher, 1) / tcfg.epochs, tcfg.epochs, batch_size)
    tx_s, sched_s = optim.make_optimizer(cfg.optim, max(n_student, 1) / tcfg.epochs, tcfg.epochs, batch_size)

    key = jax.random.PRNGKey(cfg.seed)
    state = {
        'teacher': TrainState.create(variables, tx_t, jax.random.fold_in(key, 0)),
        'student': TrainState.create(variables, tx_s, jax.random.fold_in(key, 1)),
        'counters': _counters(0, k_t, k_s),
    }
    state = parallel.replicate(state, mesh)
    state['student'] = _copy(state['student'])
    ckpt = Checkpointer(ckpt_dir)
    history: list[dict] = []
    logs: dict[str, list[float]] = {}
    if ckpt.latest_step() is not None:
        state, meta = ckpt.restore(state)
        history, logs = meta['history'], meta['logs']
        step = int(state['counters']['step'])
        expected = _counters(step, k_t, k_s)
        if any(int(state['counters'][k]) != int(v) for k, v in expected.items()):
            raise SystemExit(
                f'{ckpt_dir}: checkpoint counters {jax.device_get(state["counters"])} do not match '
                f'config.mile.k_t={k_t}, k_s={k_s}'
            )
        logging.info(
            'mile: resumed at step %d (%s phase, generation %d)', step, *_phase_and_generation(step, k_t, k_s)
        )

    common_args = dict(mean=cfg.data.mean, std=cfg.data.std, augment_cfg=loop.augment_config(cfg))
    interactive = mile_steps.make_interactive_step(model, tx_t, **common_args)
    imitation = mile_steps.make_imitation_step(
        model, tx_s, rho=mc.rho, or_given=mc.or_given, sample=mc.sample, **common_args
    )
    rep, dat = parallel.replicated(mesh), parallel.data_sharding(mesh)
    teacher_fn = jax.jit(
        divergence.with_finite_flag(interactive),
        in_shardings=(rep, dat),
        out_shardings=(rep, rep),
        donate_argnums=(0,),
    )
    student_fn = jax.jit(
        divergence.with_finite_flag(imitation),
        in_shardings=(rep, rep, dat),
        out_shardings=(rep, rep),
        donate_argnums=(1,),
    )

    teacher, student = state['teacher'], state['student']
    step = int(state['counters']['step'])

    end = total if stop_at_step is None else min(total, stop_at_step)
    events, offset = tensorboard_writer.open_phase(tensorboard_dir, ckpt_dir, total, step, end)

    def save(at):
        events.flush()
        snapshot = {'teacher': teacher, 'student': student, 'counters': _counters(at, k_t, k_s)}
        ckpt.save(
            at,
            parallel.replicate(snapshot, mesh),
            {'history': history, 'logs': logs, 'phase': mile_steps.phase_of(at, k_t, k_s)[0]},
        )

    bar = parallel.progress_bar(total, 'mile', 'step', initial=step)
    watch = divergence.FiniteWatch(
        'mile',
        step,
        lambda: divergence.describe_checkpoint(ckpt, ckpt_dir),
        hint=divergence.remedy(cfg),
        on_stop=bar.close,
    )
    pending: list[tuple[str, dict]] = []
    t0 = time.time()
    for batch in pipeline.train_batches(dataset, sampler, step, end):
        phase, within = mile_steps.phase_of(step, k_t, k_s)
        batch = parallel.host_to_global(batch, mesh)
        if phase == mile_steps.INTERACTIVE:
            if within == 0 and step > 0:
                teacher = _copy(mile_steps.start_generation(teacher, student))
            teacher, metrics = teacher_fn(teacher, batch)
        else:
            if within == 0:
                student = _copy(mile_steps.start_imitation(teacher, student, mc.student_init))
            student, metrics = student_fn(teacher.variables, student, batch)
        watch.add(metrics.pop('finite'))
        pending.append((phase, metrics))
        step += 1
        bar.update(1)
        watch.step_done(step)
        epoch_end = step % spe == 0
        save_now = tcfg.checkpoint_every_steps and step % tcfg.checkpoint_every_steps == 0
        if epoch_end or save_now or step == end or step % tcfg.log_every_steps == 0:
            watch.check()  # only finite states are saved
            fetched = jax.device_get(pending)
            _collect(fetched, logs)
            _write_steps(events, offset, fetched, step, k_t, k_s, sched_t, sched_s)
            pending = []
            last = 'student_loss' if phase == mile_steps.IMITATION else 'teacher_loss'
            if logs.get(last):
                bar.set_postfix(
                    phase=phase,
                    gen=mile_steps.generation_of(step - 1, k_t, k_s),
                    loss=f'{logs[last][-1]:.4f}',
                )
        if epoch_end:
            epoch = step // spe
            row = _epoch_row(epoch, step, logs, k_t, k_s)
            row['teacher_learning_rate'] = float(sched_t(max(int(teacher.step) - 1, 0)))
            row['learning_rate'] = float(sched_s(max(int(student.step) - 1, 0)))
            if eval_fn is not None and (
                step == total or (tcfg.eval_every_epochs and epoch % tcfg.eval_every_epochs == 0)
            ):
                row.update(eval_fn(student))
            history.append(row)
            events.scalars(offset + step, tensorboard_writer.scalar_tags(row, 'epoch'))
            logs = {}
            save(step)
            bar.write(
                f'mile epoch {epoch}/{tcfg.epochs} (generation {row["generation"]}, {row["phase"]}): '
                + ', '.join(f'{k}={v:.4f}' for k, v in row.items() if isinstance(v, float))
            )
        elif save_now or step == end:
            save(step)
    bar.close()
    events.close()
    logging.info('mile: %d steps in %.1fs', step, time.time() - t0)
    ckpt.close()
    return student, history


def _phase_and_generation(step: int, k_t: int, k_s: int) -> tuple[str, int]:
    return mile_steps.phase_of(step, k_t, k_s)[0], mile_steps.generation_of(step, k_t, k_s)


def _counters(step: int, k_t: int, k_s: int) -> dict:
    """The schedule position stored in checkpoints (int32 scalars): the next global step to run, its
    generation, phase (index into `PHASES`) and step within the phase."""
    phase, within = mile_steps.phase_of(step, k_t, k_s)
    values = {
        'step': step,
        'generation': mile_steps.generation_of(step, k_t, k_s),
        'phase': mile_steps.PHASES.index(phase),
        'step_in_phase': within,
    }
    return {name: jnp.asarray(value, jnp.int32) for name, value in values.items()}


def _write_steps(events, offset: int, fetched, step: int, k_t: int, k_s: int, sched_t, sched_s) -> None:
    """TensorBoard points of the fetched steps `step - len(fetched) + 1 .. step` (1-based, as in `loop.fit`,
    plus the phase's `offset`): the stepping network's loss and learning rate (its own schedule and count)."""
    first = step - len(fetched)  # 0-based global index of the first fetched step
    counts = np.array([mile_steps.phase_counts(s, k_t, k_s) for s in range(first, step)])  # steps before s
    rates = {
        mile_steps.INTERACTIVE: np.broadcast_to(
            np.asarray(sched_t(counts[:, 0]), np.float64), (len(counts),)
        ),
        mile_steps.IMITATION: np.broadcast_to(np.asarray(sched_s(counts[:, 1]), np.float64), (len(counts),)),
    }
    for i, (phase, metrics) in enumerate(fetched):
        who = 'teacher' if phase == mile_steps.INTERACTIVE else 'student'
        loss = float(metrics['loss'])
        events.scalars(
            offset + first + i + 1,
            {'train/loss': loss, f'train/{who}_loss': loss, 'train/learning_rate': rates[phase][i]},
        )


def _collect(fetched: list[tuple[str, dict]], logs: dict) -> None:
    """Moves fetched per-step metrics into `logs` (lists per name, prefixed by the network that stepped)."""
    for phase, metrics in fetched:
        prefix = 'teacher_' if phase == mile_steps.INTERACTIVE else 'student_'
        for name, value in metrics.items():
            name = name if name.startswith('pseudo_') else prefix + name
            logs.setdefault(name, []).append(float(value))


def _epoch_row(epoch: int, step: int, logs: dict, k_t: int, k_s: int) -> dict:
    phase, generation = _phase_and_generation(step - 1, k_t, k_s)
    row = {'epoch': epoch, 'step': step, 'generation': generation, 'phase': phase}
    losses = logs.get('teacher_loss', []) + logs.get('student_loss', [])
    row['train_loss'] = float(np.mean(losses))
    for name in (
        'teacher_loss',
        'student_loss',
        'teacher_accuracy',
        'student_accuracy',
        'pseudo_per_image',
        'pseudo_has_given',
    ):
        if logs.get(name):
            row[name] = float(np.mean(logs[name]))
    return row
