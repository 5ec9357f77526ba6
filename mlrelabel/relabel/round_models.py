"""Training the relabel rounds' models (`methods.relabel`): round 0 and its extra models, fresh and warm rounds.

`ctx` below is the run's `mlrelabel.relabel.method.RelabelRun` (config, workdir, mesh, model, train, val).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

import jax
import numpy as np

from mlrelabel import parallel
from mlrelabel.errors import ConfigError
from mlrelabel.eval import evaluate
from mlrelabel.io_utils import atomic_write_json
from mlrelabel.manifest import has_steps, model_folder
from mlrelabel.methods import common
from mlrelabel.relabel import select, stream

WEIGHT_FILES = ('.pth', '.pt', '.npz')  # torchvision state_dicts (`models.torchvision`)
ROUND0_SOURCES = (
    'expected a finished run directory (with run.json), one of its round folders (W/round_0), an Orbax checkpoint '
    'folder or torchvision weights (.pth, .npz, torchvision:<name>)'
)

INIT_SEED_STRIDE = 10007  # a round k > 0 that starts afresh initialises from seed + k * this
MODEL_SEED_STRIDE = (
    1000003  # round 0's model i > 0 (`relabel.round0_models`) initialises from seed + i * this
)


def train_round0(ctx, labels, loss: str, model: int = 0):
    """Round 0 (`train_round`), and once more for `train.epochs` epochs from where it stopped when it ended
    under-trained (`relabel.extend_underfit_round0`; `select.underfit_note`). The same checkpoints continue (round
    0's model stays `round_0/checkpoints`) under a schedule twice as long, which restarts the learning rate at half
    its peak; `round_0/extended.json` records the decision first, so a run killed at any point resumes straight to
    the same model. Returns `(state, history, info)`, `info['notes']` saying what happened or what to do.
    `model` > 0: round 0's extra model of that index (`round0_models`), in `round_0/model_<i>`."""
    config = ctx.config
    epochs = int(config.train.epochs)
    marker = os.path.join(model_dir(ctx, 0, model), 'extended.json')
    name = f'round 0 (model {model + 1})' if model else 'round 0'
    if os.path.exists(marker):
        with open(marker) as f:
            done = json.load(f)
    else:
        state, history = train_round(ctx, 0, None, labels, loss, RoundArm(model=model))
        note = select.underfit_note(history)
        if not note:
            return state, history, {}
        if not config.relabel.extend_underfit_round0:
            return state, history, {'notes': [retry_advice(note, history, name)]}
        done = {'epochs': 2 * epochs, 'first_epochs': epochs, 'note': note}
        if parallel.is_main_process():
            atomic_write_json(marker, done)
            print(
                f'mlrelabel: {name}: {note}; it trains {epochs} more epochs from where it stopped',
                file=sys.stderr,
            )
    state, history = train_round(ctx, 0, None, labels, loss, RoundArm(epochs=done['epochs'], model=model))
    notes = [
        f'{name}: {done["note"]} after {done["first_epochs"]} epochs; it trained {done["first_epochs"]} more'
    ]
    still = select.underfit_note(history)
    if still:
        notes.append(retry_advice(still, history, name))
    return state, history, {'notes': notes}


@dataclasses.dataclass(frozen=True)
class TakenModel:
    """Round 0's model when it is taken from `relabel.round0_checkpoint`, not trained: its variables."""

    variables: dict


def take_round0(ctx, loss: str):
    """Round 0 from `relabel.round0_checkpoint` (`round0_variables`), not trained: the model is copied into
    `round_0/checkpoints` (a resumed run reads that copy) and validated on the given labels. Returns `(state,
    history, info)` like `train_round0`; `info['round0_checkpoint']` names where it came from."""
    config = ctx.config
    source = config.relabel.round0_checkpoint
    directory = os.path.join(ctx.round_dir(0), 'checkpoints')
    if has_steps(directory):
        from mlrelabel.train import inference

        tree, _ = inference.restore_latest(directory)
        variables = {'params': tree['params'], 'batch_stats': tree['batch_stats']}
    else:
        template = common.init_variables(ctx.model, config, config.seed, pretrained=False)
        variables = round0_variables(source, template, config)
    state = TakenModel(jax.tree.map(np.asarray, variables))
    eval_fn = common.make_eval_fn(ctx.model, ctx.val, config, ctx.mesh, evaluate.head_of(loss))
    history = [{'epoch': 0, 'step': 0, **eval_fn(state)}]
    if not has_steps(directory):
        from mlrelabel.train.checkpoint import Checkpointer

        saver = Checkpointer(directory)
        saver.save(0, state.variables, {'history': history, 'round0_checkpoint': source})
        saver.close()
    if parallel.is_main_process():
        print(f'mlrelabel: round 0: the model of {source} (not trained)', file=sys.stderr)
    return state, history, {'round0_checkpoint': source}


def round0_variables(source: str, template: dict, config) -> dict:
    """`{'params', 'batch_stats'}` of `relabel.round0_checkpoint`: a finished run's work directory (its chosen
    model), one of its round folders (that round's model), an Orbax checkpoint folder, or torchvision
    weights (`.pth`/`.pt`/`.npz` or `torchvision:<name>`, imported like `model.pretrained`). Raises ConfigError
    naming both sides when its network or classes differ from the run's (`template`)."""
    field = f'config.relabel.round0_checkpoint={source!r}'
    if source.startswith('torchvision:') or source.endswith(WEIGHT_FILES):
        cfg = config.copy_and_resolve_references()
        cfg.model.pretrained = source
        return common.pretrained_variables(template, cfg)
    directory = model_folder(source)  # a source run's network and classes: `validation.rules`
    if directory is None:
        raise ConfigError([f'{field}: {ROUND0_SOURCES}'])
    from mlrelabel.train import inference

    try:
        tree, _ = inference.restore_latest(directory)
    except FileNotFoundError:
        raise ConfigError([f'{field}: {directory} holds no Orbax checkpoint']) from None
    variables = {'params': tree['params'], 'batch_stats': tree.get('batch_stats', {})}
    theirs, ours = _classes(variables), _classes(template)
    if theirs != ours:
        raise ConfigError([f'{field}: that checkpoint has {theirs} classes, this run has {ours}'])
    if jax.tree.map(np.shape, variables) != jax.tree.map(np.shape, template):
        raise ConfigError(
            [
                f'{field}: its network differs from the one this run builds (config.model.name={config.model.name!r} '
                'and config.model.*): give a checkpoint of the same network'
            ]
        )
    return variables


def _classes(variables: dict):
    kernel = variables['params'].get('fc', {}).get('kernel')
    return None if kernel is None else int(np.shape(kernel)[-1])


def round0_models(ctx, labels, loss: str, info: dict, history: list) -> list:
    """Round 0's extra models (`relabel.round0_models` - 1 of them): trained like round 0's, each from an init and
    data order of its own, so they err elsewhere. Round 1's crops are scored by all of them and its evidence is
    their mean (`methods.relabel._score_split`): on 3,000 photo scenes round 1's labels scored label F1 0.918 with
    three models where one model's scored 0.909 (benchmarks/history/label-quality.md). Skipped once round 1's evidence exists (a resumed
    run needs them no more), when no round follows, and when round 0's model reached a validation top-1 under
    `relabel.round0_models_min_top1` (a note says so). Adds the models' validation top-1 and notes to `info`
    (round 0's row); returns their states."""
    rc = ctx.config.relabel
    count = int(rc.round0_models)
    if (
        count <= 1
        or rc.max_rounds < 1
        or rc.round0_checkpoint
        or os.path.exists(stream.evidence_path(ctx.workdir, 1, 'val'))
    ):
        return []
    states, top1 = [], [history[-1].get('val_top1')]
    gate = float(rc.round0_models_min_top1)
    if gate and (top1[0] is None or top1[0] < gate):
        # A model that has not learned the objects gains nothing from siblings like it (1,200 photo scenes:
        # validation top-1 0.10-0.34, the guard keeps the given labels): the run keeps its time.
        reached = 'unknown' if top1[0] is None else f'{top1[0]:.3f}'
        info.setdefault('notes', []).append(
            f'round 0 trained one model, not {count}: its validation top-1 ({reached}) is under '
            f'relabel.round0_models_min_top1={gate}, too little learnt for more models like it to help'
        )
        return []
    for model in range(1, count):
        state, history, more = train_round0(ctx, labels, loss, model)
        states.append(state)
        top1.append(history[-1].get('val_top1'))
        info.setdefault('notes', []).extend(more.get('notes', []))
    info['round0_models_val_top1'] = top1
    return states


def model_dir(ctx, k: int, model: int) -> str:
    """Round k's folder, or that of its extra model `model` > 0 (`round_<k>/model_<i>`)."""
    return os.path.join(ctx.round_dir(k), f'model_{model}') if model else ctx.round_dir(k)


def retry_advice(note: str, history: list, name: str = 'round 0') -> str:
    steps = int(history[-1].get('step') or 0)
    return (
        f'{name}: {note}, and it scores the crops of round 1; train it longer, e.g. '
        f'--config.train.min_steps={2 * steps} (benchmarks/history/label-quality.md, "A round 0 twice as long": photo scenes whose round 0 learnt least gained '
        'up to 0.09 label F1 with twice the steps)'
    )


@dataclasses.dataclass(frozen=True)
class RoundArm:
    """Which training of a round `train_round` runs.

    arm: its checkpoints' folder under the round's: 'checkpoints', or 'control/checkpoints' for the control arm.
    epochs: round 0 extended to this many epochs (`train_round0`; None: the round's own).
    model: round 0's extra model of this index (`round0_models`; 0: the round's model).
    """

    arm: str = 'checkpoints'
    epochs: int | None = None
    model: int = 0


def round_epochs(config, k: int) -> int:
    """The epochs round k trains: `relabel.fresh_epochs` for rounds 1..`relabel.fresh_rounds`, `relabel.epochs`
    for later ones (0 for either: `train.epochs`, as round 0)."""
    rc = config.relabel
    if k <= rc.fresh_rounds:
        return int(rc.fresh_epochs) if k > 0 and rc.fresh_epochs else int(config.train.epochs)
    return int(rc.epochs) or int(config.train.epochs)


def train_round(ctx, k: int, prev_state, labels, loss: str, which: RoundArm = RoundArm()):
    """Trains round k's model on `labels` (resuming its checkpoint in `round_<k>/<which.arm>`); returns
    `(state, history)`.

    Rounds 1..`relabel.fresh_rounds` start from an init of their own and train `relabel.fresh_epochs` (0: as
    long as round 0, `train.epochs`);
    later rounds warm-start from round k-1's final weights (`prev_state`) for `relabel.epochs` (without
    `relabel.warm_start`: from an init of their own, for as long). The control arm
    (`arm='control/checkpoints'`) repeats round 1 on the given labels with the same start, data order and keys,
    so the two differ in their labels alone.
    """
    arm, epochs, model = which.arm, which.epochs, which.model
    config, rc = ctx.config, ctx.config.relabel
    cfg = config.copy_and_resolve_references()
    fresh = k <= rc.fresh_rounds  # round 0 too
    cfg.train.epochs = round_epochs(config, k)
    if epochs:  # round 0 extended (`train_round0`)
        cfg.train.epochs = epochs
    if not fresh and rc.warm_start:
        variables = prev_state.variables
    elif k > 0 and ctx.round0_init is not None:  # round 0 was taken: the fresh rounds fine-tune from it
        variables = ctx.round0_init
    else:
        # A round k > 0 that starts afresh draws its own init: a model that differs from round 0's in its start
        # as well as its labels errs elsewhere, and the evidence averaged over rounds gains from that.
        seed = config.seed + INIT_SEED_STRIDE * k + MODEL_SEED_STRIDE * model
        variables = common.init_variables(ctx.model, config, seed)
    state, history, _ = common.fit_validated(
        common.ModelSetup(ctx.model, {'train': ctx.train, 'val': ctx.val}, cfg, ctx.mesh),
        variables,
        os.path.join(model_dir(ctx, k, model), arm),
        loss=loss,
        labels=labels,
        desc=f'round {k} {"control" if arm != "checkpoints" else "train"}'
        + (f' (model {model + 1})' if model else ''),
        seed_offset=1000 * k + 100 * model,
    )
    return state, history
