"""Multi-label iterated learning (MILe; Rajeswar et al., CVPR 2022) and its single-network baselines.

`config.mile.schema` picks the method, at the same budget of `train.epochs` × steps per epoch updates:
  'softmax'  softmax + cross-entropy on the given label (`train.loop.fit`, loss 'softmax_ce');
  'sigmoid'  sigmoid + BCE on the given label (`train.loop.fit`, loss 'sigmoid_bce');
  'mile'     sigmoid + BCE + iterated learning: generations of an interactive phase (`k_t` steps, the
             teacher learns the given labels) and an imitation phase (`k_s` steps, the student learns the
             teacher's binarized predictions `sigmoid(logits) > rho`); the student then becomes the
             teacher. The pure pieces are in `mlrelabel.mile.steps`; the student is the evaluated model.

Leaves in the work directory: `checkpoints/` (Orbax: teacher and student train states and the
step / generation / phase counters, so a killed run resumes inside the right phase), `metrics.json`
(per-epoch history and final metrics), `training.png`, `tensorboard/` (event files), `run.json` (the
manifest). Validation follows `mlrelabel.eval.evaluate`: top-1 on the given label, ReaL-style accuracy and
sample-F1 of `argmax ∪ {p > eval.threshold}` on the full sets.
"""

from __future__ import annotations

import os

from mlrelabel.errors import ConfigError
from mlrelabel.methods import common
from mlrelabel.mile import steps as mile_steps
from mlrelabel.mile.task import MileTask, counters
from mlrelabel.train import loop

SCHEMA_LOSSES = {'softmax': 'softmax_ce', 'sigmoid': 'sigmoid_bce', 'mile': 'sigmoid_bce'}
TABLE_KEYS = ('val_top1', 'val_real_accuracy', 'val_f1', 'val_map')


def run(config, workdir: str) -> dict:
    schema = config.mile.schema
    if schema not in SCHEMA_LOSSES:
        raise ConfigError(f'config.mile.schema={schema!r}: expected one of {", ".join(SCHEMA_LOSSES)}')
    loss = SCHEMA_LOSSES[schema]
    mesh = common.mesh_from_config(config)
    data = common.load_datasets(config, workdir)
    train = data['train']
    model = common.build_model(config, train.num_classes)
    variables = common.init_variables(model, config, config.seed)
    ckpt_dir = os.path.join(workdir, 'checkpoints')
    setup = common.ModelSetup(model, data, config, mesh)
    if schema == 'mile':
        state, history, head = common.fit_validated(setup, variables, ckpt_dir, loss=loss, fit=fit_mile)
    else:
        state, history, head = common.fit_validated(setup, variables, ckpt_dir, loss=loss, desc=schema)
    final = common.final_metrics(setup, state, history, head, workdir)
    result = {'schema': schema, 'loss': loss, 'history': history, 'final': final}
    extra = {}
    if schema == 'mile':  # which network the checkpoint's model is (load_run, predict)
        result['network'] = extra['network'] = history[-1].get('network', 'student')
    common.finish_single_model(
        workdir, config, result, train, head, title=f'{schema} ({config.model.name}) on {train.name}', **extra
    )
    return result


def fit_mile(model, variables: dict, dataset, cfg, *, mesh, ckpt_dir: str, **loop_options):
    """Iterated learning from `variables` for `train.epochs` epochs; returns `(network, history)`: the better of
    the final teacher and student on `mile.select_metric` when `eval_fn` validates (`choose_final`), else the
    student.

    MILe's phases are a task (`mlrelabel.mile.task.MileTask`) of the one training loop
    (`loop.run_task`): checkpoints, resume, divergence checks and validation are those of every method.
    `loop_options` are `run_task`'s: eval_fn, stop_at_step (tests use it to simulate a kill), tensorboard_dir.
    TensorBoard events as in `loop.fit` (`tensorboard_dir`, default the active run's): per step the
    stepping network's loss and learning rate (`train/loss`, `train/<teacher|student>_loss`,
    `train/learning_rate`), per epoch the history row.
    """
    task = MileTask(
        model, variables, dataset, cfg, mesh=mesh, ckpt_dir=ckpt_dir, augment_cfg=loop.augment_config(cfg)
    )
    state, history = loop.run_task(task, cfg, mesh=mesh, ckpt_dir=ckpt_dir, **loop_options)
    eval_fn = loop_options.get('eval_fn')
    total = task.steps_per_epoch * cfg.train.epochs
    if eval_fn is None or not history or history[-1]['step'] != total:
        return state, history  # killed before the end, or nothing to compare on
    return choose_final(task, history, eval_fn, cfg.mile.select_metric)


def choose_final(task: MileTask, history: list, eval_fn, metric: str):
    """The better of the final teacher and student on validation `metric` (single labels only): a run that
    ends inside an interactive phase keeps its teacher's last steps when they paid. Returns `(state, history)`
    with the last row's validation metrics those of the returned network, `network` naming it and
    `teacher_<metric>` / `student_<metric>` the two scores."""
    last = dict(history[-1])
    evaluated = task.evaluated()
    if evaluated is task.teacher:  # no imitation ran (burn-in of the whole run): nothing to choose
        return evaluated, history[:-1] + [dict(last, network='teacher')]
    student_row = {k: v for k, v in last.items() if k.startswith('val_')}
    teacher_row = eval_fn(task.teacher)
    network = mile_steps.choose_network(teacher_row, student_row, metric)
    last.update(teacher_row if network == 'teacher' else student_row)
    last.update(
        {
            'network': network,
            f'teacher_{metric}': teacher_row[metric],
            f'student_{metric}': student_row[metric],
        }
    )
    return (task.teacher if network == 'teacher' else task.student), history[:-1] + [last]


_counters = counters  # the checkpointed schedule position (kept importable from here)
