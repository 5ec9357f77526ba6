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

import os

from mlrelabel.methods import common
from mlrelabel.train import loop
from mlrelabel.train.mile_task import MileTask, counters

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


def fit_mile(model, variables: dict, dataset, cfg, *, mesh, ckpt_dir: str, **loop_options):
    """Iterated learning from `variables` for `train.epochs` epochs; returns `(student, history)`.

    MILe's phases are a task (`mlrelabel.train.mile_task.MileTask`) of the one training loop
    (`loop.run_task`): checkpoints, resume, divergence checks and validation are those of every method.
    `loop_options` are `run_task`'s: eval_fn, stop_at_step (tests use it to simulate a kill), tensorboard_dir.
    TensorBoard events as in `loop.fit` (`tensorboard_dir`, default the active run's): per step the
    stepping network's loss and learning rate (`train/loss`, `train/<teacher|student>_loss`,
    `train/learning_rate`), per epoch the history row.
    """
    task = MileTask(
        model, variables, dataset, cfg, mesh=mesh, ckpt_dir=ckpt_dir, augment_cfg=loop.augment_config(cfg)
    )
    return loop.run_task(task, cfg, mesh=mesh, ckpt_dir=ckpt_dir, **loop_options)


_counters = counters  # the checkpointed schedule position (kept importable from here)
