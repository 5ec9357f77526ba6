"""`fit`: the thin training loop (epochs, sharding, checkpoints, progress, metrics history) and `predict`.

Resumable by construction: the Orbax checkpoint holds the train state (step, params, batch statistics,
optimizer state, key) and a JSON record (history, the current epoch's per-step losses). Batch `s` and the
step's randomness are pure functions of `(seed, s)`, so a run killed at any point and restarted with the
same config ends with the same parameters and history as an uninterrupted one.

Divergence stops the run: each step also returns whether its loss and new parameters are finite
(`mlrelabel.train.divergence`); the flags are read every few steps and before every checkpoint, so a
non-finite state is never saved and `TrainingDiverged` names the phase (`desc`) and the step.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Callable

import jax
import numpy as np
from jax.experimental import multihost_utils
from tqdm.auto import tqdm

from mlrelabel import parallel, tensorboard_writer
from mlrelabel.checkpoint import Checkpointer
from mlrelabel.data import pipeline
from mlrelabel.train import divergence, label_hooks, optim
from mlrelabel.train.state import TrainState
from mlrelabel.train.step import make_predict_step, make_train_step


def augment_config(cfg) -> dict | None:
    """`config.train.augment` → the dict `make_train_step` takes (None when disabled or done on the host)."""
    a = cfg.train.augment
    if not a.enabled or cfg.data.get('host_augment', False):
        return None
    return {'scale': tuple(a.scale), 'ratio': tuple(a.ratio), 'flip': bool(a.flip)}


def _host_augment(cfg) -> dict | None:
    """Random-resized-crop + flip in the loader's workers (`data.host_augment`), instead of on device."""
    a = cfg.train.augment
    if not (a.enabled and cfg.data.get('host_augment', False)):
        return None
    return {'scale': tuple(a.scale), 'ratio': tuple(a.ratio), 'flip': bool(a.flip)}


def fit(
    model,
    variables: dict,
    dataset,
    cfg,
    *,
    mesh,
    ckpt_dir: str,
    labels=None,
    eval_fn: Callable[[TrainState], dict] | None = None,
    loss: str | None = None,
    desc: str = 'train',
    stop_at_step: int | None = None,
    seed_offset: int = 0,
    transform_fn: Callable | None = None,
    loss_fn: Callable | None = None,
    tx=None,
    sampler=None,
    tensorboard_dir: str | None = None,
) -> tuple[TrainState, list[dict]]:
    """Trains `model` from `variables` on `dataset` (targets from `labels`, default `dataset.labels`).

    Args:
      cfg: the run config (`train`, `optim`, `data.mean/std`, `seed`).
      ckpt_dir: Orbax directory; an existing checkpoint there is resumed.
      eval_fn: called on the state after each evaluated epoch; its dict joins that epoch's history row.
      loss: overrides `cfg.train.loss` (e.g. 'sigmoid_bce' for relabeled rounds).
      stop_at_step: stop early once this global step is reached (tests use it to simulate a kill).
      seed_offset: decorrelates data order and keys between phases that share a seed (e.g. rounds).
      labels: the label source (a LabelTable or an object with `batch(indices) -> dict`).
      transform_fn, loss_fn: extension points of `make_train_step` (on-device targets / mixing, custom losses).
      tx: an optax optimizer replacing `config.optim`'s (e.g. per-group learning rates when fine-tuning); the
        config's schedule is still the one logged.
      sampler: replaces the uniform `pipeline.IndexSampler` (e.g. class-balanced); needs `steps_per_epoch`,
        `batch_size` and `global_indices(step)`, a pure function of the step.
      tensorboard_dir: event-file folder; None: the active run's (`tensorboard_writer.active_run`, set by
        `main.run`), or no events outside a run. The phase's steps follow the run's earlier phases.
    Single-positive losses (`mlrelabel.single_positive`, e.g. loss='an') take `cfg.train.single_positive`;
    those that rewrite their labels between epochs ('ll_cp', 'em_apl') run a `label_hooks` hook.
    Returns:
      `(state, history)`: final state (replicated on the mesh) and one dict per epoch.
    """
    tcfg = cfg.train
    batch_size = tcfg.batch_size
    parallel.check_batch_size(batch_size, mesh, 'config.train.batch_size')
    seed = cfg.seed + seed_offset
    sampler = sampler or pipeline.IndexSampler(len(dataset), batch_size, seed)
    spe = sampler.steps_per_epoch
    total = spe * tcfg.epochs
    default_tx, schedule = optim.make_optimizer(cfg.optim, spe, tcfg.epochs, batch_size)
    tx = default_tx if tx is None else tx
    loss = loss or tcfg.loss
    # The step donates the state's buffers: copy device arrays so the caller's `variables` stay valid.
    variables = jax.tree.map(lambda x: x.copy() if isinstance(x, jax.Array) else x, variables)
    state = TrainState.create(variables, tx, jax.random.PRNGKey(seed))
    state = parallel.replicate(state, mesh)

    sp_hparams = dict(tcfg.get('single_positive', {}))
    # Losses that rewrite their labels between epochs (single-positive ll_cp, em_apl).
    label_hook = label_hooks.make_label_hook(
        loss,
        sp_hparams,
        dataset.labels if labels is None else labels,
        tcfg.epochs,
        lambda st: predict(model, st.variables, dataset.images, len(dataset), cfg, mesh=mesh),
        ckpt_dir,
    )
    if label_hook is not None:
        labels = label_hook.labels

    ckpt = Checkpointer(ckpt_dir)
    history: list[dict] = []
    epoch_losses: list[float] = []
    epoch_accs: list[float] = []
    if ckpt.latest_step() is not None:
        state, meta = ckpt.restore(state)
        history, epoch_losses, epoch_accs = meta['history'], meta['epoch_losses'], meta['epoch_accs']
        if label_hook is not None:
            label_hook.restore(meta.get('label_hook'))
            labels = label_hook.labels
        logging.info('%s: resumed from step %d', desc, int(state.step))

    train_step = make_train_step(
        model,
        tx,
        loss=loss,
        mean=cfg.data.mean,
        std=cfg.data.std,
        label_smoothing=tcfg.label_smoothing,
        augment_cfg=augment_config(cfg),
        transform_fn=transform_fn,
        loss_fn=loss_fn,
        loss_hparams=sp_hparams,
        steps_per_epoch=spe,
        num_epochs=tcfg.epochs,
    )
    train_step = divergence.with_finite_flag(train_step)
    rep, dat = parallel.replicated(mesh), parallel.data_sharding(mesh)
    step_fn = jax.jit(train_step, in_shardings=(rep, dat), out_shardings=(rep, rep), donate_argnums=(0,))

    step = int(state.step)
    end = total if stop_at_step is None else min(total, stop_at_step)
    # TensorBoard: this phase's place on the run's step axis; a killed attempt's events after the last
    # checkpoint are purged (writers flush before each checkpoint).
    events, offset = tensorboard_writer.open_phase(tensorboard_dir, ckpt_dir, total, step, end)

    last_save = time.time()

    def save(step, force=False):
        """Checkpoints `step` unless the last save is under `train.checkpoint_every_seconds` old."""
        nonlocal last_save
        if not force and time.time() - last_save < tcfg.get('checkpoint_every_seconds', 0):
            return
        events.flush()
        meta = {'history': history, 'epoch_losses': epoch_losses, 'epoch_accs': epoch_accs}
        if label_hook is not None:
            meta['label_hook'] = label_hook.save(step)
        ckpt.save(step, state, meta)
        last_save = time.time()

    bar = parallel.progress_bar(total, desc, 'step', initial=step)
    watch = divergence.FiniteWatch(
        desc,
        step,
        lambda: divergence.describe_checkpoint(ckpt, ckpt_dir),
        hint=divergence.remedy(cfg),
        on_stop=bar.close,
    )
    pending = []
    t0 = time.time()

    def make_batches(first, stop):
        if cfg.data.get('loader_workers', 0) or cfg.data.get('host_augment', False):
            from mlrelabel.data import grain_loader  # decode (+ augment) in grain worker processes

            return grain_loader.train_batches(
                dataset,
                sampler,
                first,
                stop,
                labels=labels,
                num_workers=cfg.data.loader_workers,
                threads=cfg.data.get('loader_threads', 0),
                host_augment=_host_augment(cfg),
                seed=seed,
            )
        return pipeline.train_batches(dataset, sampler, first, stop, labels=labels)

    # A label hook rewrites the labels at epoch ends: open each epoch's batches only once it starts.
    batches = make_batches(step, end) if label_hook is None else _per_epoch(make_batches, step, end, spe)
    for batch in batches:
        state, metrics = step_fn(state, parallel.host_to_global(batch, mesh))
        if label_hook is not None:
            label_hook.after_step(sampler.global_indices(step), metrics)
        watch.add(metrics.pop('finite'))
        pending.append(metrics)
        step += 1
        bar.update(1)
        watch.step_done(step)
        epoch_end = step % spe == 0
        if (
            epoch_end
            or step % tcfg.log_every_steps == 0
            or step == end
            or (tcfg.checkpoint_every_steps and step % tcfg.checkpoint_every_steps == 0)
        ):
            watch.check()  # every step so far was finite: only now may the state be saved
            fetched = jax.device_get(pending)
            epoch_losses += [float(m['loss']) for m in fetched]
            epoch_accs += [float(m['accuracy']) for m in fetched]
            first = step - len(fetched) + 1  # the fetched metrics are those of steps first..step
            rates = _rates(schedule, first - 1, step)
            for i, m in enumerate(fetched):
                events.scalars(
                    offset + first + i,
                    {
                        'train/loss': m['loss'],
                        'train/accuracy': m['accuracy'],
                        'train/learning_rate': rates[i],
                    },
                )
            pending = []
            bar.set_postfix(loss=f'{epoch_losses[-1]:.4f}', lr=f'{rates[-1]:.3g}')
        if epoch_end:
            epoch = step // spe
            if label_hook is not None:
                label_hook.end_epoch(epoch, state)
            row = {
                'epoch': epoch,
                'step': step,
                'train_loss': float(np.mean(epoch_losses)),
                'train_accuracy': float(np.mean(epoch_accs)),
                'learning_rate': float(schedule(step - 1)),
            }
            if eval_fn is not None and (
                step == total or (tcfg.eval_every_epochs and epoch % tcfg.eval_every_epochs == 0)
            ):
                row.update(eval_fn(state))
            history.append(row)
            events.scalars(offset + step, tensorboard_writer.scalar_tags(row, 'epoch'))
            epoch_losses, epoch_accs = [], []
            save(step, force=step == total)
            bar.write(
                f'{desc} epoch {epoch}/{tcfg.epochs}: '
                + ', '.join(f'{k}={v:.4f}' for k, v in row.items() if isinstance(v, float))
            )
        elif tcfg.checkpoint_every_steps and step % tcfg.checkpoint_every_steps == 0:
            save(step)
    bar.close()
    events.close()
    logging.info('%s: %d steps in %.1fs', desc, step, time.time() - t0)
    ckpt.close()
    return state, history


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


@functools.lru_cache(maxsize=8)
def _predict_fn(model, mean: tuple, std: tuple, dense: bool, mesh):
    """The jitted forward pass, built once per model, normalisation and mesh: every evaluation, label hook
    and prediction of a run reuses it instead of tracing it again."""
    rep, dat = parallel.replicated(mesh), parallel.data_sharding(mesh)
    step = make_predict_step(model, mean=mean, std=std, dense=dense)
    return jax.jit(step, in_shardings=(rep, dat), out_shardings=dat)


def predict(
    model, variables, images, num_examples: int, cfg, *, mesh, dense: bool = False, desc: str | None = None
) -> np.ndarray:
    """Logits `[N, C]` (or dense `[N, h, w, C]`) for `images[0..N-1]` (uint8, indexable by index arrays)."""
    batch_size = cfg.eval.batch_size
    parallel.check_batch_size(batch_size, mesh, 'config.eval.batch_size')
    fn = _predict_fn(model, tuple(cfg.data.mean), tuple(cfg.data.std), bool(dense), mesh)
    outputs = []
    batches = pipeline.eval_batches(num_examples, batch_size, lambda idx: {'image': np.asarray(images[idx])})
    for batch, valid in tqdm(
        batches,
        total=-(-num_examples // batch_size),
        desc=desc,
        disable=desc is None or not parallel.is_main_process(),
        leave=False,
    ):
        out = fn(variables, parallel.host_to_global(batch['image'], mesh))
        out = (
            multihost_utils.process_allgather(out, tiled=True) if jax.process_count() > 1 else np.asarray(out)
        )
        outputs.append(out[:valid])
    return np.concatenate(outputs, axis=0)
