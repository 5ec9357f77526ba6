"""`run_task`: the one training loop (epochs, sharding, checkpoints, progress, metrics history) that every
method trains with; `fit` runs it on a `SupervisedTask`; `predict`.

Resumable by construction: the Orbax checkpoint holds the train state (step, params, batch statistics,
optimizer state, key) and a JSON record (history, the current epoch's per-step losses). Batch `s` and the
step's randomness are pure functions of `(seed, s)`, so a run killed at any point and restarted with the
same config ends with the same parameters and history as an uninterrupted one.

Divergence stops the run: each step also returns whether its loss and new parameters are finite
(`mlrelabel.train.divergence`); the flags are read every few steps and before every checkpoint, so a
non-finite state is never saved and `TrainingDiverged` names the phase (`desc`) and the step.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Callable

import jax
import numpy as np

from mlrelabel import parallel, tensorboard_writer
from mlrelabel.data import pipeline
from mlrelabel.train import divergence, label_hooks, optim
from mlrelabel.train.checkpoint import Checkpointer
from mlrelabel.train.inference import predict
from mlrelabel.train.state import TrainState
from mlrelabel.train.step import SOFT_TARGET_LOSSES, StepOptions, jit_train_step, make_train_step
from mlrelabel.train.task import Task


def _crop_scale(a) -> tuple:
    """`train.augment.scale`, which must be resolved by now (empty = by the data)."""
    if not tuple(a.scale):
        raise ValueError(
            'train.augment.scale is empty ("by the data"): call mlrelabel.data.inspect.resolve_data_defaults(config) '
            'first, or set it, e.g. --config.train.augment.scale="(0.6, 1.0)"'
        )
    return tuple(a.scale)


def augment_config(cfg) -> dict | None:
    """`config.train.augment` → the dict `make_train_step` takes (None when disabled or done on the host)."""
    a = cfg.train.augment
    if not a.enabled or cfg.data.host_augment:
        return None
    return {
        'scale': _crop_scale(a),
        'ratio': tuple(a.ratio),
        'flip': bool(a.flip),
        'zoom_out': float(a.zoom_out),
        'zoom_out_prob': float(a.zoom_out_prob),
    }


def mixup_alpha(cfg, loss: str, loss_fn=None) -> float:
    """`config.train.augment.mixup` for losses that read blended targets (`step.SOFT_TARGET_LOSSES`), else 0:
    single-positive and partial-label targets mark entries observed or unknown, and a blend
    of two such marks means neither (those losses train without mixup)."""
    a = cfg.train.augment
    if not a.enabled or loss not in SOFT_TARGET_LOSSES or loss_fn is not None:
        return 0.0
    return float(a.mixup)


def _host_augment(cfg) -> dict | None:
    """Random-resized-crop + flip in the loader's workers (`data.host_augment`), instead of on device."""
    a = cfg.train.augment
    if not (a.enabled and cfg.data.host_augment):
        return None
    return {'scale': _crop_scale(a), 'ratio': tuple(a.ratio), 'flip': bool(a.flip)}


@dataclasses.dataclass(frozen=True)
class LoopOptions:
    """How `run_task` (and `fit`) run beyond what the config says.

    Attributes:
      eval_fn: called on `task.evaluated()` after each evaluated epoch; its dict joins that epoch's history row.
      stop_at_step: stop early once this global step is reached, unsaved (tests use it to simulate a kill).
      tensorboard_dir: event-file folder; None: the active run's (`tensorboard_writer.active_run`, set by
        `main.run`), or no events outside a run. The phase's steps follow the run's earlier phases.
    """

    eval_fn: Callable | None = None
    stop_at_step: int | None = None
    tensorboard_dir: str | None = None


@dataclasses.dataclass(frozen=True)
class TaskOptions:
    """What a `SupervisedTask` trains on and how, beyond the config (every default: the config's).

    Attributes:
      labels: the label source (a LabelTable or an object with `batch(indices) -> dict`); None: `dataset.labels`.
      loss: overrides `cfg.train.loss` (e.g. 'sigmoid_bce' for relabeled rounds). Single-positive losses
        (`mlrelabel.losses.single_positive`, e.g. 'an') take `cfg.train.single_positive`; those that rewrite their
        labels between epochs ('ll_cp', 'em_apl') run a `label_hooks` hook.
      desc: the phase's name in logs and the progress bar.
      seed_offset: decorrelates data order and keys between phases that share a seed (e.g. rounds).
      transform_fn, loss_fn: extension points of the train step (`step.StepOptions`).
      tx: an optax optimizer replacing `config.optim`'s (e.g. per-group learning rates when fine-tuning); the
        config's schedule is still the one logged.
      sampler: replaces the uniform `pipeline.IndexSampler` (e.g. class-balanced); needs `steps_per_epoch`,
        `batch_size` and `global_indices(step)`, a pure function of the step.
    """

    labels: object = None
    loss: str | None = None
    desc: str = 'train'
    seed_offset: int = 0
    transform_fn: Callable | None = None
    loss_fn: Callable | None = None
    tx: object = None
    sampler: object = None


_LOOP_FIELDS = tuple(f.name for f in dataclasses.fields(LoopOptions))


def fit(
    model, variables: dict, dataset, cfg, *, mesh, ckpt_dir: str, **options
) -> tuple[TrainState, list[dict]]:
    """Trains `model` from `variables` on `dataset` (`cfg`: `train`, `optim`, `data.mean/std`, `seed`):
    `run_task` on a `SupervisedTask`. An existing checkpoint in `ckpt_dir` is resumed.

    `options`: keywords of `LoopOptions` (eval_fn, stop_at_step, tensorboard_dir) and of `TaskOptions`
    (labels, loss, desc, seed_offset, transform_fn, loss_fn, tx, sampler).
    Returns `(state, history)`: final state (replicated on the mesh) and one dict per epoch.
    """
    loop_options = {k: options.pop(k) for k in _LOOP_FIELDS if k in options}
    task = SupervisedTask(model, variables, dataset, cfg, mesh=mesh, ckpt_dir=ckpt_dir, **options)
    return run_task(task, cfg, mesh=mesh, ckpt_dir=ckpt_dir, **loop_options)


def run_task(task: Task, cfg, *, mesh, ckpt_dir: str, **options):
    """The one training loop: drives `task` for `train.epochs` epochs; returns `(task.evaluated(), history)`.
    `options`: the keywords of `LoopOptions`.

    Resumes from the latest checkpoint in `ckpt_dir`; fetches metrics every `train.log_every_steps` steps and
    before every save (only finite states are saved); at each epoch end builds the history row, validates
    (`eval_fn(task.evaluated())`, every `train.eval_every_epochs` epochs and at the last) and saves; between
    epochs saves every `train.checkpoint_every_steps` steps, but no sooner than `checkpoint_every_seconds`
    after the last save (the last step always saves). `stop_at_step` stops as a kill would: unsaved.
    """
    run = _Run(task, cfg, LoopOptions(**options), ckpt_dir)
    tcfg, step, bar = cfg.train, run.step, run.bar
    watch = divergence.FiniteWatch(
        task.desc,
        step,
        lambda: divergence.describe_checkpoint(run.ckpt, ckpt_dir),
        hint=divergence.remedy(cfg),
        on_stop=bar.close,
    )
    pending = []
    t0 = time.time()
    for batch in task.batches(step, run.end):
        metrics = task.step(step, parallel.host_to_global(batch, mesh))
        watch.add(metrics.pop('finite'))
        pending.append(metrics)
        step += 1
        bar.update(1)
        watch.step_done(step)
        epoch_end = step % task.steps_per_epoch == 0
        save_due = bool(tcfg.checkpoint_every_steps) and step % tcfg.checkpoint_every_steps == 0
        if epoch_end or step % tcfg.log_every_steps == 0 or step == run.end or save_due:
            watch.check()  # every step so far was finite: only now may the state be saved
            run.record(pending, step)
            pending = []
        if epoch_end:
            run.end_epoch(step)
        elif save_due:
            run.save(step)
    bar.close()
    run.events.close()
    logging.info('%s: %d steps in %.1fs', task.desc, step, time.time() - t0)
    run.ckpt.close()
    return task.evaluated(), run.history


def _resume(task: Task, ckpt: Checkpointer) -> tuple[int, list[dict]]:
    """`(step, history)` to start from: the latest checkpoint's (restored into `task`), else the task's start."""
    step = task.start_step()
    if ckpt.latest_step() is None:
        return step, []
    state, meta = ckpt.restore(task.state(step))
    step = task.restore(state, meta)
    logging.info('%s: resumed from step %d', task.desc, step)
    return step, meta['history']


class _Run:
    """The bookkeeping of one `run_task`: the step to resume from, metrics to TensorBoard and the progress
    bar, history rows with validation, and checkpoints (at most one per `train.checkpoint_every_seconds`
    unless forced)."""

    def __init__(self, task: Task, cfg, options: LoopOptions, ckpt_dir: str):
        self.task, self.tcfg, self.options = task, cfg.train, options
        self.total = total = task.steps_per_epoch * cfg.train.epochs
        self.ckpt = Checkpointer(ckpt_dir)
        self.step, self.history = _resume(task, self.ckpt)
        self.end = total if options.stop_at_step is None else min(total, options.stop_at_step)
        # TensorBoard: this phase's place on the run's step axis; a killed attempt's events after the last
        # checkpoint are purged (writers flush before each checkpoint).
        self.events, self.offset = tensorboard_writer.open_phase(
            options.tensorboard_dir, ckpt_dir, total, self.step, self.end
        )
        self.last_save = time.time()
        self.bar = parallel.progress_bar(total, task.desc, 'step', initial=self.step)

    def save(self, at: int, force: bool = False):
        """Checkpoints step `at` unless the last save is under `train.checkpoint_every_seconds` old."""
        if not force and time.time() - self.last_save < self.tcfg.checkpoint_every_seconds:
            return
        self.events.flush()
        self.ckpt.save(at, self.task.state(at), {'history': self.history, **self.task.meta(at)})
        self.last_save = time.time()

    def record(self, pending: list, step: int):
        """Fetches the metrics of the steps up to `step` and writes them to TensorBoard and the progress bar."""
        fetched = jax.device_get(pending)
        first = step - len(fetched) + 1  # the fetched metrics are those of steps first..step
        for i, scalars in enumerate(self.task.record(fetched, first)):
            self.events.scalars(self.offset + first + i, scalars)
        self.bar.set_postfix(**self.task.postfix())

    def end_epoch(self, step: int):
        """The epoch's history row (validated when due), its events, a checkpoint and a progress line."""
        task, tcfg, eval_fn, total = self.task, self.tcfg, self.options.eval_fn, self.total
        epoch = step // task.steps_per_epoch
        row = {'epoch': epoch, 'step': step, **task.end_epoch(epoch, step)}
        if eval_fn is not None and (
            step == total or (tcfg.eval_every_epochs and epoch % tcfg.eval_every_epochs == 0)
        ):
            row.update(eval_fn(task.evaluated()))
        self.history.append(row)
        self.events.scalars(self.offset + step, tensorboard_writer.scalar_tags(row, 'epoch'))
        self.save(step, force=step == total)
        self.bar.write(
            f'{task.desc} epoch {epoch}/{tcfg.epochs}{task.epoch_note(row)}: '
            + ', '.join(f'{k}={v:.4f}' for k, v in row.items() if isinstance(v, float))
        )


class SupervisedTask(Task):
    """One network trained on `dataset` with `cfg` and `options` (the keywords of `TaskOptions`)."""

    def __init__(self, model, variables: dict, dataset, cfg, *, mesh, ckpt_dir: str, **options):
        o = TaskOptions(**options)
        tcfg = cfg.train
        batch_size = tcfg.batch_size
        parallel.check_batch_size(batch_size, mesh, 'config.train.batch_size')
        self.cfg, self.dataset, self.desc, self.mesh = cfg, dataset, o.desc, mesh
        self.seed = cfg.seed + o.seed_offset
        self.sampler = o.sampler or pipeline.IndexSampler(len(dataset), batch_size, self.seed)
        spe = self.steps_per_epoch = self.sampler.steps_per_epoch
        default_tx, self.schedule = optim.make_optimizer(cfg.optim, spe, tcfg.epochs, batch_size)
        tx = default_tx if o.tx is None else o.tx
        loss = o.loss or tcfg.loss
        # The step donates the state's buffers: copy device arrays so the caller's `variables` stay valid.
        variables = jax.tree.map(lambda x: x.copy() if isinstance(x, jax.Array) else x, variables)
        self.train_state = parallel.replicate(
            TrainState.create(variables, tx, jax.random.PRNGKey(self.seed)), mesh
        )
        self._init_labels(model, o.labels, loss, ckpt_dir)
        self.epoch_losses: list[float] = []
        self.epoch_accs: list[float] = []
        self.epoch_floors: list[float] = []  # the loss's floor on blended targets (mixup), else empty
        step_options = StepOptions(
            label_smoothing=tcfg.label_smoothing,
            augment_cfg=augment_config(cfg),
            mixup=mixup_alpha(cfg, loss, o.loss_fn),
            transform_fn=o.transform_fn,
            loss_fn=o.loss_fn,
            loss_hparams=dict(tcfg.single_positive),
            steps_per_epoch=spe,
            num_epochs=tcfg.epochs,
        )
        train_step = make_train_step(
            model, tx, loss=loss, mean=cfg.data.mean, std=cfg.data.std, options=step_options
        )
        self.step_fn = jit_train_step(train_step, mesh)

    def _init_labels(self, model, labels, loss: str, ckpt_dir: str):
        """`self.labels` and `self.label_hook`: the hook of losses that rewrite their labels between epochs
        (single-positive ll_cp, em_apl), which then owns the labels."""
        cfg, dataset, mesh = self.cfg, self.dataset, self.mesh
        self.labels = dataset.labels if labels is None else labels
        self.label_hook = label_hooks.make_label_hook(
            loss,
            dict(cfg.train.single_positive),
            self.labels,
            cfg.train.epochs,
            lambda st: predict(model, st.variables, dataset.images, len(dataset), cfg, mesh=mesh),
            ckpt_dir,
        )
        self.labels = labels if self.label_hook is None else self.label_hook.labels

    def state(self, step):
        return self.train_state

    def meta(self, step):
        meta = {
            'epoch_losses': self.epoch_losses,
            'epoch_accs': self.epoch_accs,
            'epoch_floors': self.epoch_floors,
        }
        if self.label_hook is not None:
            meta['label_hook'] = self.label_hook.save(step)
        return meta

    def restore(self, state, meta):
        self.train_state = state
        self.epoch_losses, self.epoch_accs = meta['epoch_losses'], meta['epoch_accs']
        self.epoch_floors = meta.get('epoch_floors', [])
        if self.label_hook is not None:
            self.label_hook.restore(meta.get('label_hook'))
            self.labels = self.label_hook.labels
        return int(state.step)

    def _batches(self, first, stop):
        cfg = self.cfg
        if cfg.data.loader_workers or cfg.data.host_augment:
            from mlrelabel.data import grain_loader  # decode (+ augment) in grain worker processes

            options = grain_loader.LoaderOptions(
                num_workers=cfg.data.loader_workers,
                threads=cfg.data.loader_threads,
                host_augment=_host_augment(cfg),
                seed=self.seed,
            )
            return grain_loader.worker_batches(self.dataset, self.sampler, first, stop, self.labels, options)
        return pipeline.train_batches(self.dataset, self.sampler, first, stop, labels=self.labels)

    def batches(self, first, stop):
        # A label hook rewrites the labels at epoch ends: open each epoch's batches only once it starts.
        if self.label_hook is None:
            return self._batches(first, stop)
        return _per_epoch(self._batches, first, stop, self.steps_per_epoch)

    def step(self, step, batch):
        self.train_state, metrics = self.step_fn(self.train_state, batch)
        if self.label_hook is not None:
            self.label_hook.after_step(self.sampler.global_indices(step), metrics)
        return metrics

    def record(self, fetched, first):
        self.epoch_losses += [float(m['loss']) for m in fetched]
        self.epoch_accs += [float(m['accuracy']) for m in fetched]
        self.epoch_floors += [float(m['loss_floor']) for m in fetched if 'loss_floor' in m]
        self._rates = _rates(self.schedule, first - 1, first - 1 + len(fetched))
        return [
            {'train/loss': m['loss'], 'train/accuracy': m['accuracy'], 'train/learning_rate': self._rates[i]}
            for i, m in enumerate(fetched)
        ]

    def postfix(self):
        return {'loss': f'{self.epoch_losses[-1]:.4f}', 'lr': f'{self._rates[-1]:.3g}'}

    def end_epoch(self, epoch, step):
        if self.label_hook is not None:
            self.label_hook.end_epoch(epoch, self.train_state)
        row = {
            'train_loss': float(np.mean(self.epoch_losses)),
            'train_accuracy': float(np.mean(self.epoch_accs)),
            'learning_rate': float(self.schedule(step - 1)),
        }
        if self.epoch_floors:
            row['train_loss_floor'] = float(np.mean(self.epoch_floors))
        self.epoch_losses, self.epoch_accs, self.epoch_floors = [], [], []
        return row

    def evaluated(self):
        return self.train_state


def _rates(schedule, start: int, stop: int) -> np.ndarray:
    """`[stop - start]` learning rates of optimizer steps start..stop-1, in one call of the schedule."""
    steps = np.arange(start, stop)
    return np.broadcast_to(np.asarray(schedule(steps), np.float64), steps.shape)


def _per_epoch(make_batches: Callable, first: int, stop: int, steps_per_epoch: int):
    """Batches `first .. stop - 1`, each epoch's opened after the previous epoch's batches were consumed."""
    while first < stop:
        epoch_stop = min(stop, (first // steps_per_epoch + 1) * steps_per_epoch)
        yield from make_batches(first, epoch_stop)
        first = epoch_stop
