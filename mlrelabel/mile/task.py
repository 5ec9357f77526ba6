"""MILe's teacher and student phases as a `Task` of the one training loop (`loop.run_task`).

Multi-label iterated learning (Rajeswar et al., CVPR 2022): global step `s` reads batch `s` of the seeded
sampler and runs the phase `mile.phase_of(s, k_t, k_s)`: interactive (the teacher learns the given labels) or
imitation (the student learns the teacher's binarized predictions). The hand-overs happen at the start of a
phase's first step (the student becomes the teacher; the student optionally restarts from the teacher), so
resuming from a checkpoint after any step replays the uninterrupted run exactly. Teacher and student have their
own optimizers; by default both follow one learning-rate schedule over the run's global steps
(`mile.lr_schedule='run'`), else each a schedule over its own share of the steps ('own'). The first
`mile.burn_in` fraction of the run's steps lengthens the first interactive phase, so the first teacher is
imitated only once it has learned the given labels. The student is validated each epoch (the teacher while no
imitation has run); at the end `methods.mile.fit_mile` returns the better of the two on a single-label
validation metric.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mlrelabel import parallel
from mlrelabel.data import pipeline
from mlrelabel.errors import ConfigError, DataError
from mlrelabel.mile import steps as mile_steps
from mlrelabel.train import optim
from mlrelabel.train.state import TrainState
from mlrelabel.train.step import jit_train_step
from mlrelabel.train.task import Task


def _copy(tree):
    """Fresh device buffers, so that donating one train state never frees another's arrays."""
    return jax.tree.map(jnp.copy, tree)


def counters(step: int, k_t: int, k_s: int, burn_in: int = 0) -> dict:
    """The schedule position stored in checkpoints (int32 scalars): the next global step to run, its
    generation, phase (index into `PHASES`) and step within the phase."""
    phase, within = mile_steps.phase_of(step, k_t, k_s, burn_in)
    values = {
        'step': step,
        'generation': mile_steps.generation_of(step, k_t, k_s, burn_in),
        'phase': mile_steps.PHASES.index(phase),
        'step_in_phase': within,
    }
    return {name: jnp.asarray(value, jnp.int32) for name, value in values.items()}


class MileTask(Task):
    """Teacher and student from `variables` on `dataset` for `cfg.train.epochs` epochs (`cfg.mile`: k_t, k_s,
    rho, or_given, sample, student_init)."""

    desc = 'mile'

    def __init__(self, model, variables: dict, dataset, cfg, *, mesh, ckpt_dir: str, augment_cfg=None):
        mc, tcfg = cfg.mile, cfg.train
        self.k_t, self.k_s = k_t, k_s = int(mc.k_t), int(mc.k_s)
        mile_steps.check_schedule(k_t, k_s)
        if mc.student_init not in mile_steps.STUDENT_INITS:
            raise ConfigError(
                f'config.mile.student_init={mc.student_init!r}: expected one of '
                f'{", ".join(mile_steps.STUDENT_INITS)}'
            )
        self.student_init, self.mesh, self.ckpt_dir = mc.student_init, mesh, ckpt_dir
        batch_size = tcfg.batch_size
        parallel.check_batch_size(batch_size, mesh, 'config.train.batch_size')
        self.dataset = dataset
        self.sampler = pipeline.IndexSampler(len(dataset), batch_size, cfg.seed)
        self.steps_per_epoch = self.sampler.steps_per_epoch
        total = self.steps_per_epoch * tcfg.epochs
        self.burn_in = mile_steps.burn_in_steps(total, mc.burn_in)
        self.schedule = (k_t, k_s, self.burn_in)
        n_teacher, n_student = mile_steps.phase_counts(total, *self.schedule)
        epochs = tcfg.epochs
        if mc.lr_schedule == 'run':  # one schedule over the run's steps, for both networks

            def network_optimizer(phase):
                to_run = lambda count: mile_steps.global_step_of(count, phase, *self.schedule)  # noqa: E731
                return optim.make_optimizer(
                    cfg.optim, self.steps_per_epoch, epochs, batch_size, step_map=to_run
                )

            (tx_t, self.sched_t), (tx_s, self.sched_s) = map(network_optimizer, mile_steps.PHASES)
        else:  # 'own': each network's schedule spans its own share of the steps
            tx_t, self.sched_t = optim.make_optimizer(
                cfg.optim, max(n_teacher, 1) / epochs, epochs, batch_size
            )
            tx_s, self.sched_s = optim.make_optimizer(
                cfg.optim, max(n_student, 1) / epochs, epochs, batch_size
            )
        key = jax.random.PRNGKey(cfg.seed)
        state = {
            'teacher': TrainState.create(variables, tx_t, jax.random.fold_in(key, 0)),
            'student': TrainState.create(variables, tx_s, jax.random.fold_in(key, 1)),
        }
        state = parallel.replicate(state, mesh)
        self.teacher, self.student = state['teacher'], _copy(state['student'])
        self.logs: dict[str, list[float]] = {}

        common = dict(mean=cfg.data.mean, std=cfg.data.std, augment_cfg=augment_cfg)
        interactive = mile_steps.make_interactive_step(model, tx_t, **common)
        rule = mile_steps.PseudoLabelRule(rho=mc.rho, or_given=mc.or_given, sample=mc.sample)
        imitation = mile_steps.make_imitation_step(model, tx_s, rule=rule, **common)
        self.teacher_fn = jit_train_step(interactive, mesh)
        self.student_fn = jit_train_step(imitation, mesh, replicated_args=2, donate=1)
        self._last_phase, self._next_step = mile_steps.INTERACTIVE, 0

    def state(self, step):
        snapshot = {
            'teacher': self.teacher,
            'student': self.student,
            'counters': counters(step, *self.schedule),
        }
        return parallel.replicate(snapshot, self.mesh)

    def meta(self, step):
        return {'logs': self.logs, 'phase': mile_steps.phase_of(step, *self.schedule)[0]}

    def restore(self, state, meta):
        self.teacher, self.student, self.logs = state['teacher'], state['student'], meta['logs']
        step = int(state['counters']['step'])
        self._next_step = step
        expected = counters(step, *self.schedule)
        if any(int(state['counters'][k]) != int(v) for k, v in expected.items()):
            raise DataError(
                f'{self.ckpt_dir}: checkpoint counters {jax.device_get(state["counters"])} do not match '
                f'config.mile.k_t={self.k_t}, k_s={self.k_s}, burn-in {self.burn_in} steps'
            )
        return step

    def batches(self, first, stop):
        return pipeline.train_batches(self.dataset, self.sampler, first, stop)

    def step(self, step, batch):
        phase, within = mile_steps.phase_of(step, *self.schedule)
        if phase == mile_steps.INTERACTIVE:
            if within == 0 and step > 0:
                self.teacher = _copy(mile_steps.start_generation(self.teacher, self.student))
            self.teacher, metrics = self.teacher_fn(self.teacher, batch)
        else:
            if within == 0:
                self.student = _copy(
                    mile_steps.start_imitation(self.teacher, self.student, self.student_init)
                )
            self.student, metrics = self.student_fn(self.teacher.variables, self.student, batch)
        self._last_phase, self._next_step = phase, step + 1
        return {**metrics, 'phase': mile_steps.PHASES.index(phase)}

    def record(self, fetched, first):
        """Per step: the stepping network's loss and learning rate (its own schedule and count)."""
        counts = np.array(
            [mile_steps.phase_counts(s, *self.schedule) for s in range(first - 1, first - 1 + len(fetched))]
        )
        rates = {
            mile_steps.INTERACTIVE: np.broadcast_to(
                np.asarray(self.sched_t(counts[:, 0]), np.float64), (len(counts),)
            ),
            mile_steps.IMITATION: np.broadcast_to(
                np.asarray(self.sched_s(counts[:, 1]), np.float64), (len(counts),)
            ),
        }
        out = []
        for i, metrics in enumerate(fetched):
            phase = mile_steps.PHASES[int(metrics.pop('phase'))]
            prefix = 'teacher_' if phase == mile_steps.INTERACTIVE else 'student_'
            for name, value in metrics.items():
                self.logs.setdefault(name if name.startswith('pseudo_') else prefix + name, []).append(
                    float(value)
                )
            loss = float(metrics['loss'])
            out.append(
                {'train/loss': loss, f'train/{prefix}loss': loss, 'train/learning_rate': rates[phase][i]}
            )
        return out

    def postfix(self):
        last = 'student_loss' if self._last_phase == mile_steps.IMITATION else 'teacher_loss'
        if not self.logs.get(last):
            return {}
        return {
            'phase': self._last_phase,
            'gen': mile_steps.generation_of(self._next_step - 1, *self.schedule),
            'loss': f'{self.logs[last][-1]:.4f}',
        }

    def end_epoch(self, epoch, step):
        phase, generation = (
            mile_steps.phase_of(step - 1, *self.schedule)[0],
            mile_steps.generation_of(step - 1, *self.schedule),
        )
        row = {'generation': generation, 'phase': phase}
        logs = self.logs
        row['train_loss'] = float(np.mean(logs.get('teacher_loss', []) + logs.get('student_loss', [])))
        for name in ('teacher_loss', 'student_loss', 'teacher_accuracy', 'student_accuracy'):
            if logs.get(name):
                row[name] = float(np.mean(logs[name]))
        for name in ('pseudo_per_image', 'pseudo_has_given'):
            if logs.get(name):
                row[name] = float(np.mean(logs[name]))
        row['teacher_learning_rate'] = float(self.sched_t(max(int(self.teacher.step) - 1, 0)))
        row['learning_rate'] = float(self.sched_s(max(int(self.student.step) - 1, 0)))
        self.logs = {}
        return row

    def evaluated(self):
        """The student once it has imitated; during the burn-in (no imitation yet) the teacher, the only
        network that has learned anything."""
        if mile_steps.phase_counts(self._next_step, *self.schedule)[1] == 0:
            return self.teacher
        return self.student

    def epoch_note(self, row):
        return f' (generation {row["generation"]}, {row["phase"]})'
