"""Training with partial labels (1 positive, 0 negative, -1 unknown): CSL and its baselines.

Ben-Baruch et al. 2022, "Multi-label Classification with Partial Annotations using Class-aware
Selective Loss" (CSL); the losses are `mlrelabel.partial.losses.partial_asymmetric_loss` (ASL focusing,
Ridnik et al. 2021) with `config.partial.mode`:
  negative                  unknowns are negatives
  ignore                    unknowns contribute nothing
  ignore_normalize_classes  ignore + the reference per-sample weight 1 / (1 + n_annotated) + 1
  selective                 CSL: unknowns of classes whose prior > prior_threshold are ignored, and the
                            likelihood_topk * B most likely remaining unknowns of the batch too; the
                            rest are negatives.
The class prior of 'selective' comes from a first phase trained in 'ignore' mode for
`partial.prior_epochs` epochs: the mean sigmoid prediction per class over the training images (a
running mean, `partial.estimate_class_prior`), saved as `<workdir>/prior.csv`. The main phase then trains
the remaining `train.epochs - prior_epochs` epochs (warm-started from phase one when
`partial.prior_warm_start`), so every mode gets the same number of training steps. A given
`partial.prior_path` skips phase one.

Heads: `partial.head='sigmoid'` (one sigmoid per class) or 'group_softmax' (one softmax per attribute
group over slices of the flat logits; unknown groups ignored; `mlrelabel.partial.losses.group_softmax_loss`).

Data: the built-in digit scenes with partial labels simulated from the hidden full truth
(`partial.simulate` = 'rps' | 'fpc'), or the formats of `mlrelabel.data.formats` (annotation folder,
attribute CSV, partial JSON). Validation is scored against the full truth (unknown entries ignored
by mAP when the validation labels are themselves partial).

Transfer learning: `model.pretrained` (a torchvision `state_dict`, see `mlrelabel.models.torchvision`)
initialises the backbone; `model.freeze_backbone` trains the classifier only (backbone parameters and
batch statistics fixed), otherwise everything is fine-tuned, the backbone at
`optim.learning_rate * model.backbone_lr_scale` (optax.multi_transform).

Work directory: `config.json`, `partial_labels.json` (label statistics), `prior.csv` and `prior/`
(selective), `checkpoints/` (Orbax), `metrics.json` (history, final metrics, per-class AP),
`training.png`, `tensorboard/` (prior, then main phase), `run.json` (the manifest).
"""

from __future__ import annotations

import copy
import dataclasses
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mlrelabel import parallel, report
from mlrelabel.data.partial_labels import PartialLabels
from mlrelabel.errors import ConfigError
from mlrelabel.eval import evaluate, metrics
from mlrelabel.io_utils import atomic_write_json
from mlrelabel.methods import common
from mlrelabel.models.frozen import FrozenBackbone
from mlrelabel.partial import class_prior
from mlrelabel.partial import losses as P
from mlrelabel.train import inference, loop, optim

FORMAT_SOURCES = ('annotation_folder', 'attribute_csv', 'partial_json')


# ------------------------------------------------------------------------------------------ data
def load_data(config, workdir: str) -> dict:
    """`{'train': Dataset, 'val': Dataset, 'train_labels': PartialLabels, 'val_targets': [N, C] int8,
    'groups': [(name, K)], 'class_names': [C]}`."""
    d, pc = config.data, config.partial
    if d.source in FORMAT_SOURCES:
        from mlrelabel.data import checks, formats

        splits = formats.load_partial_splits(config)
        checks.check_splits(
            {'train': splits['train'], 'val': splits['val']}, config, formats.split_files(config)
        )
        checks.write_skipped({'train': splits['train'], 'val': splits['val']}, workdir)
        common.announce_classes(splits['train'], config)
        return splits
    data = common.load_datasets(config, workdir)
    train, val = data['train'], data['val']
    if train.truth is None:
        raise ConfigError(f'config.data.source={d.source!r}: simulating partial labels needs the full truth')
    full = train.truth.dense().astype(np.int8)
    if pc.simulate == 'rps':
        targets = P.simulate_rps(full, pc.rps_drop, seed=pc.simulate_seed)
    elif pc.simulate == 'fpc':
        targets = P.simulate_fpc(full, pc.fpc_per_class, seed=pc.simulate_seed)
    elif pc.simulate == 'none':
        targets = full
    else:
        raise ConfigError(f"config.partial.simulate={pc.simulate!r}: expected 'rps', 'fpc' or 'none'")
    names = list(train.class_names)
    truth = val.truth if val.truth is not None else val.labels
    return {
        'train': train,
        'val': val,
        'train_labels': PartialLabels(targets, names),
        'val_targets': truth.dense().astype(np.int8),
        'groups': [],
        'class_names': names,
    }


def balanced_indices(targets: np.ndarray, seed: int) -> np.ndarray:
    """`[N]` int64 rows drawn with replacement so that classes are seen about equally often.

    Row weight = mean over its known positive classes c of 1 / n_c (n_c = known positives of c); rows
    without a known positive form one more "class". Inverse-frequency (class-balanced) sampling.
    """
    pos = np.asarray(targets) == 1
    n_c = pos.sum(0).astype(np.float64)
    inv = np.where(n_c > 0, 1.0 / np.maximum(n_c, 1), 0.0)
    k = pos.sum(1)
    w = np.where(k > 0, (pos * inv).sum(1) / np.maximum(k, 1), 0.0)
    empty = k == 0
    if empty.any():
        w[empty] = 1.0 / empty.sum()
    rng = np.random.default_rng(seed)
    return rng.choice(len(w), size=len(w), replace=True, p=w / w.sum()).astype(np.int64)


# ------------------------------------------------------------------------------------------ model
def initial_variables(model, config, num_classes: int) -> dict:
    """Fresh variables (seeded), or the torchvision weights of `model.pretrained` when given
    (`common.init_variables`: the classifier is kept only if it has `num_classes` outputs)."""
    return common.init_variables(model, config, config.seed)


def transfer_optimizer(config, params, steps_per_epoch: int, epochs: int):
    """optax.multi_transform: `fc` at the configured rate, the backbone at `backbone_lr_scale` times it."""
    base, _ = optim.make_optimizer(config.optim, steps_per_epoch, epochs, config.train.batch_size)
    scaled_cfg = copy.deepcopy(config.optim)
    scaled_cfg.learning_rate = config.optim.learning_rate * config.model.backbone_lr_scale
    backbone, _ = optim.make_optimizer(scaled_cfg, steps_per_epoch, epochs, config.train.batch_size)
    labels = {k: ('head' if k == 'fc' else 'backbone') for k in params}
    return optax.multi_transform({'head': base, 'backbone': backbone}, labels)


# ------------------------------------------------------------------------------------------ losses
def make_loss_fn(config, num_classes: int, groups, prior=None, mode: str | None = None):
    """`loss_fn(logits [B, C], target [B, C], batch) -> [B]` per-example losses for `loop.fit`.

    The selective top-k is taken over the whole (global) batch before the per-example sums, as in CSL.
    """
    pc = config.partial
    mode = mode or pc.mode
    if pc.head == 'group_softmax':
        sizes = tuple(int(k) for _, k in groups)
        if not sizes:
            raise ConfigError("config.partial.head='group_softmax' needs attribute groups (an attribute CSV)")
        return lambda logits, target, batch: P.group_softmax_loss(logits, target, sizes)
    if pc.head != 'sigmoid':
        raise ConfigError(f"config.partial.head={pc.head!r}: expected 'sigmoid' or 'group_softmax'")
    if mode not in P.PARTIAL_MODES:
        raise ConfigError(f'config.partial.mode={mode!r}: expected one of {", ".join(P.PARTIAL_MODES)}')
    kw = {
        k: pc[k]
        for k in ('gamma_pos', 'gamma_neg', 'gamma_unann', 'clip', 'alpha_pos', 'alpha_neg', 'alpha_unann')
    }
    if mode == 'selective':
        kw['likelihood_topk'] = int(pc.likelihood_topk)
        if prior is not None:
            kw.update(prior=jnp.asarray(prior, jnp.float32), prior_threshold=float(pc.prior_threshold))

    def loss_fn(logits, target, batch):
        return P.partial_asymmetric_loss(logits, target, mode, reduction='per_example', **kw)

    return loss_fn


# ------------------------------------------------------------------------------------------ evaluation
def partial_probabilities(logits, config, groups) -> np.ndarray:
    if config.partial.head == 'group_softmax':
        return P.group_probabilities(logits, [k for _, k in groups])
    return evaluate.probabilities(logits, 'sigmoid')


def evaluate_partial(logits, val, targets, config, groups, per_class=False) -> dict:
    """`val_*` metrics: mAP against `targets [N, C]` in {1, 0, -1} (unknowns ignored) plus, for the sigmoid head,
    the shared protocol of `mlrelabel.eval.evaluate`; for group heads the accuracy of each group's argmax."""
    prefix = 'val_'
    probs = partial_probabilities(logits, config, groups)
    out = {}
    if config.partial.head == 'sigmoid':
        out.update(evaluate.evaluate_logits(logits, val, 'sigmoid', config.eval.threshold, prefix=prefix))
    else:
        start, accs = 0, []
        for name, k in groups:
            t = targets[:, start : start + k]
            known = (t == 1).any(1) & (t >= 0).all(1)
            if known.any():
                acc = float((probs[known, start : start + k].argmax(1) == t[known].argmax(1)).mean())
                out[f'{prefix}acc_{name}'] = acc
                accs.append(acc)
            start += k
        out[prefix + 'group_accuracy'] = float(np.mean(accs)) if accs else float('nan')
    m, ap = metrics.mean_average_precision(probs, targets, return_per_class=True)
    out[prefix + 'map'] = float(m)
    if per_class:
        out[prefix + 'ap_per_class'] = [None if np.isnan(a) else float(a) for a in ap]
    return out


# ------------------------------------------------------------------------------------------ run
@dataclasses.dataclass(frozen=True)
class PartialTask:
    """What every training phase of a partial-label run shares: the model (a `FrozenBackbone` when the backbone
    is frozen), the images and labels it trains on (resampled when `partial.balanced_sampling`), the config, the
    device mesh, and the parameters the transfer optimizer splits (None: one learning rate)."""

    model: Any
    train: Any
    labels: Any
    config: Any
    mesh: Any
    tx_params: Any = None


@dataclasses.dataclass(frozen=True)
class Phase:
    """One training phase: its config (its `train.epochs`), checkpoint folder, per-example loss, progress
    label, validation (None: none) and the offset of its data order and keys."""

    config: Any
    ckpt_dir: str
    loss_fn: Callable
    desc: str
    eval_fn: Callable | None = None
    seed_offset: int = 0


def _fit(task: PartialTask, variables, phase: Phase):
    """`loop.fit` of `task` from `variables` for one `phase`; returns `(state, history)`."""
    config, kwargs = phase.config, {}
    if task.tx_params is not None:
        spe = len(task.train) // config.train.batch_size
        kwargs['tx'] = transfer_optimizer(config, task.tx_params, spe, config.train.epochs)
    return loop.fit(
        task.model,
        variables,
        task.train,
        config,
        mesh=task.mesh,
        ckpt_dir=phase.ckpt_dir,
        labels=task.labels,
        eval_fn=phase.eval_fn,
        loss_fn=phase.loss_fn,
        desc=phase.desc,
        seed_offset=phase.seed_offset,
        **kwargs,
    )


def _with_epochs(config, epochs: int):
    cfg = copy.deepcopy(config)
    cfg.train.epochs = int(epochs)
    return cfg


def estimate_prior(model, variables, train, config, mesh) -> np.ndarray:
    """Mean sigmoid prediction per class over the training images (CSL's class prior), `[C]`."""
    logits = inference.predict(model, variables, train.images, len(train), config, mesh=mesh, desc='prior')
    running = None
    step = config.eval.batch_size
    for start in range(0, len(logits), step):
        running = class_prior.estimate_class_prior(running, jnp.asarray(logits[start : start + step]))
    return np.asarray(running['prior'])


def run(config, workdir: str) -> dict:
    pc = config.partial
    mesh = common.mesh_from_config(config)
    data = load_data(config, workdir)
    train, val, labels = data['train'], data['val'], data['train_labels']
    groups, names, val_targets = data['groups'], data['class_names'], data['val_targets']
    num_classes = labels.num_classes
    names = names or [str(c) for c in range(num_classes)]
    counts = labels.counts()
    if parallel.is_main_process():
        atomic_write_json(os.path.join(workdir, 'partial_labels.json'), _label_stats(labels, names, groups))

    model, variables, tx_params = _partial_model(config, num_classes)
    fit_train, fit_labels = train, labels
    if pc.balanced_sampling:
        idx = balanced_indices(labels.targets, config.seed)
        fit_train, fit_labels = train.subset(idx), labels.subset(idx)
    task = PartialTask(model, fit_train, fit_labels, config, mesh, tx_params)

    eval_fn = _validation(model, data, config, mesh)
    prior, main_cfg = None, config
    if pc.head == 'sigmoid' and pc.mode == 'selective':
        prior, variables, main_cfg = _prior_phase(task, variables, workdir, train, names, groups)
    main = Phase(
        main_cfg,
        os.path.join(workdir, 'checkpoints'),
        make_loss_fn(config, num_classes, groups, prior),
        f'train ({pc.mode if pc.head == "sigmoid" else pc.head})',
        eval_fn,
        # A warm-started main phase must not replay the prior phase's batches and keys.
        seed_offset=1 if pc.prior_epochs > 0 and pc.prior_warm_start and not pc.prior_path else 0,
    )
    state, history = _fit(task, variables, main)
    logits = inference.predict(model, state.variables, val.images, len(val), config, mesh=mesh)
    final = dict(history[-1])
    final.update(evaluate_partial(logits, val, val_targets, config, groups, per_class=True))
    final['train_unknown_fraction'] = counts['unknown_fraction']
    result = {
        'history': history,
        'final': final,
        'mode': pc.mode,
        'head': pc.head,
        'prior': None if prior is None else [float(x) for x in prior],
    }
    if parallel.is_main_process():
        _write_outputs(config, workdir, result)
    common.record_run(
        workdir,
        config,
        final,
        num_classes=num_classes,
        head=pc.head,
        class_names=names,
        groups=groups,
    )
    return result


def _validation(model, data: dict, config, mesh):
    """`eval_fn(state) -> val_* metrics`: `evaluate_partial` of the state's predictions on `data['val']`."""
    val = data['val']

    def eval_fn(state):
        logits = inference.predict(model, state.variables, val.images, len(val), config, mesh=mesh)
        return evaluate_partial(logits, val, data['val_targets'], config, data['groups'])

    return eval_fn


def _label_stats(labels: PartialLabels, names: list, groups: list) -> dict:
    """`partial_labels.json`: how many labels of each kind the training images have, per class."""
    counts = labels.counts()
    return {
        'images': len(labels),
        'classes': labels.num_classes,
        'unknown_fraction': counts['unknown_fraction'],
        'positive': counts['positive'].tolist(),
        'negative': counts['negative'].tolist(),
        'unknown': counts['unknown'].tolist(),
        'class_names': names,
        'groups': [list(g) for g in groups],
    }


def _partial_model(config, num_classes: int):
    """`(model, variables, tx_params)`: the network (behind a `FrozenBackbone` with `model.freeze_backbone`),
    its initial variables, and the parameters the transfer optimizer splits (`model.backbone_lr_scale` != 1)."""
    base_model = common.build_model(config, num_classes)
    variables = initial_variables(base_model, config, num_classes)
    if config.model.freeze_backbone:
        return FrozenBackbone(base_model), FrozenBackbone.split(variables), None
    if config.model.backbone_lr_scale != 1.0:
        return base_model, variables, variables['params']
    return base_model, variables, None


def _prior_phase(task: PartialTask, variables, workdir: str, train, names: list, groups: list):
    """`(prior, variables, main config)` of the selective mode: the class prior from `partial.prior_path`, or
    estimated over `train` by a first phase of `prior_epochs` with the 'ignore' loss (its weights start the main
    phase with `prior_warm_start`, which then trains the remaining epochs); None without either."""
    config = task.config
    pc = config.partial
    if pc.prior_path:
        return class_prior.load_prior_csv(pc.prior_path, names), variables, config
    if pc.prior_epochs <= 0:
        return None, variables, config
    if pc.prior_epochs >= config.train.epochs:
        raise ConfigError(
            f'config.partial.prior_epochs={pc.prior_epochs} must be < train.epochs={config.train.epochs}'
        )
    phase = Phase(
        _with_epochs(config, pc.prior_epochs),
        os.path.join(workdir, 'prior', 'checkpoints'),
        make_loss_fn(config, task.labels.num_classes, groups, mode='ignore'),
        'prior (ignore)',
    )
    state, _ = _fit(task, variables, phase)
    prior_file = os.path.join(workdir, 'prior.csv')
    if os.path.exists(prior_file):
        prior = class_prior.load_prior_csv(prior_file, names)
    else:
        prior = estimate_prior(task.model, state.variables, train, config, task.mesh)
        if parallel.is_main_process():
            class_prior.prior_to_csv(prior_file, prior, names)
    if pc.prior_warm_start:
        variables = jax.tree.map(np.asarray, jax.device_get(state.variables))
    return prior, variables, _with_epochs(config, config.train.epochs - pc.prior_epochs)


def _write_outputs(config, workdir: str, result: dict) -> None:
    """`metrics.json`, `training.png` and the final table on stdout (main process)."""
    pc, final = config.partial, result['final']
    atomic_write_json(os.path.join(workdir, 'metrics.json'), result)
    report.plot_history(
        result['history'],
        os.path.join(workdir, 'training.png'),
        title=f'{config.model.name}, partial labels ({pc.mode}, {pc.head})',
    )
    keys = [k for k, v in final.items() if k.startswith('val_') and isinstance(v, float)]
    print(report.format_table([final], ['epoch'] + keys))
