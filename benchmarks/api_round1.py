"""The array-level API against a run's own round 1: the same round-0 model as a `score_fn`, naive predictions of
each window at the model's input size, `crop_evidence` + `assign_labels`, scored against the hidden truth.

  python benchmarks/api_round1.py --workdir=runs/mc_dropout-...   [--out=benchmarks/results/x.json]

The run's round 1 scores its crops with MC dropout (T samples) at its own crop size; the API here sees each
window once through `Run.predict`, as a user with any model would. Prints both label F1s and their difference.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def compare(workdir: str) -> dict:
    import mlrelabel
    from mlrelabel.data.labels import read_label_file
    from mlrelabel.eval import evaluate, metrics
    from mlrelabel.manifest import read_config
    from mlrelabel.methods import common

    config = read_config(workdir)
    data = common.load_datasets(config, workdir)
    train, val = data['train'], data['val']
    if train.truth is None:
        raise ValueError(f'{workdir}: its data has no hidden truth to score against')
    run = mlrelabel.load_run(workdir)
    options = mlrelabel.CropOptions(crop_size=run.image_size)
    score_fn = lambda crops: run.predict(crops, round=0)  # noqa: E731
    t0 = time.time()
    train_images = [train.images[i] for i in range(len(train))]
    val_images = [val.images[i] for i in range(len(val))]
    evidence = mlrelabel.crop_evidence(score_fn, train_images, options)
    held_out = mlrelabel.crop_evidence(score_fn, val_images, options)
    result = mlrelabel.assign_labels(
        evidence,
        evaluate.first_labels(train.labels),
        held_out,
        evaluate.first_labels(val.labels),
        mlrelabel.AssignOptions.from_config(config),
    )
    seconds = time.time() - t0
    round1 = read_label_file(os.path.join(workdir, 'round_1', 'labels.json'), train.num_classes)[1]
    api_f1 = float(metrics.label_quality(result.labels, train.truth)['f1'])
    run_f1 = float(metrics.label_quality(round1, train.truth)['f1'])
    given_f1 = float(metrics.label_quality(train.labels, train.truth)['f1'])
    return {
        'workdir': workdir,
        'given_f1': given_f1,
        'run_round1_f1': run_f1,
        'api_f1': api_f1,
        'api_minus_run': api_f1 - run_f1,
        'api_keep_given': result.checks['keep_given'],
        'api_labels_per_image': float(np.mean([len(x) for x in result.labels])),
        'api_seconds': round(seconds, 1),
        'windows': int(len(mlrelabel.window_boxes(options))),
        'crop_size': run.image_size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument('--workdir', required=True)
    parser.add_argument('--out', default='')
    args = parser.parse_args()
    out = compare(args.workdir)
    print(json.dumps(out, indent=1))
    if args.out:
        from mlrelabel.io_utils import atomic_write_json

        atomic_write_json(args.out, out, indent=1)


if __name__ == '__main__':
    main()
