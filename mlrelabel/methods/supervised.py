"""Plain training on the given labels, then evaluation: the baseline every method is measured against.

Leaves in the work directory: `checkpoints/` (Orbax), `metrics.json` (per-epoch history and final
metrics), `training.png` (curves), `examples.png` (validation images with predicted and true labels),
`tensorboard/` (event files) and `run.json` (the manifest `mlrelabel.load_run` and predict read).
"""

from __future__ import annotations

import os

import numpy as np

from mlrelabel import parallel, report
from mlrelabel.eval import evaluate
from mlrelabel.methods import common
from mlrelabel.train import inference


def run(config, workdir: str) -> dict:
    mesh = common.mesh_from_config(config)
    data = common.load_datasets(config, workdir)
    train = data['train']
    model = common.build_model(config, train.num_classes)
    variables = common.init_variables(model, config, config.seed)
    setup = common.ModelSetup(model, data, config, mesh)
    state, history, head = common.fit_validated(setup, variables, os.path.join(workdir, 'checkpoints'))
    final = common.final_metrics(setup, state, history, head, workdir)
    result = {'history': history, 'final': final}
    if parallel.is_main_process():
        _draw_predictions(setup, state, head, os.path.join(workdir, 'examples.png'))
    common.finish_single_model(
        workdir, config, result, train, head, title=f'{config.model.name} on {train.name}'
    )
    return result


def _draw_predictions(setup: common.ModelSetup, state, head: str, path: str) -> None:
    """Draws the first validation images with their predicted and true label sets to `path`."""
    model, dataset, config, mesh = setup.model, setup.data['val'], setup.config, setup.mesh
    n = min(config.report.num_examples, len(dataset))
    idx = np.arange(n)
    images = np.asarray(dataset.images[idx])
    probs = evaluate.probabilities(
        inference.predict(model, state.variables, images, n, config, mesh=mesh), head
    )
    truth = dataset.truth if dataset.truth is not None else dataset.labels
    captions = []
    for i in range(n):
        pred = np.flatnonzero(
            (probs[i] > config.eval.threshold) | (np.arange(probs.shape[1]) == probs[i].argmax())
        )
        names = dataset.class_names
        captions.append(
            f'pred {report.label_text(pred.tolist(), names)}\n'
            f'true {report.label_text(sorted(truth.labels_of(i).tolist()), names)}'
        )
    report.draw_examples(images, captions, path, title='validation: predicted set vs. true set')
