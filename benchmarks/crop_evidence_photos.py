"""Single-label models on photo-like images: val mAP on whole images vs on crop evidence.

  python benchmarks/crop_evidence_photos.py --workdir=runs/crop_photos --epochs=50 --entries=softmax,wan,full

Writes photo scenes (`mlrelabel.data.photo_scenes`: 96-224 px JPEG, 1-3 digits pasted on scikit-learn's sample
photographs, one given label: the largest object) once, trains the supervised recipe on them through label files
(`--config.data.source=json`, the data-driven defaults), then scores each run's model on the validation images'
hidden sets twice: whole-image probabilities (`Run.predict`) and crop evidence (`mlrelabel.relabel.label_sets.
crop_scores`: the relabel grid of 42 windows, one naive pass). Label sets too: per-class crop thresholds fitted on
the first half of the validation images from their given labels (`label_sets.fit_crop_thresholds`, what predict
does), scored on the second half against the whole-image sets at p > 0.5. `full` trains on the hidden training
sets (the upper bound). `--set=field=value` (repeatable) changes every entry's config (e.g.
`train.augment.zoom_out=0.5`). Prints one JSON line per entry and appends it to <workdir>/results.jsonl.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np


def main():
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--workdir', default='runs/crop_photos', help='data and runs go here')
    parser.add_argument('--epochs', type=int, default=50, help='training epochs of every entry')
    parser.add_argument('--entries', default='softmax,wan,full', help='any of: softmax, an, wan, full')
    parser.add_argument('--photo_train', type=int, default=3000, help='training images')
    parser.add_argument('--photo_val', type=int, default=600, help='validation images')
    parser.add_argument('--seed', type=int, default=0, help='data and training seed')
    parser.add_argument(
        '--set',
        action='append',
        default=[],
        help='field=value for every entry, e.g. train.augment.zoom_out=0.5',
    )
    args = parser.parse_args()
    from mlrelabel import parallel
    from mlrelabel import run as run_api
    from mlrelabel.compare import parse_set
    from mlrelabel.config import base_config
    from mlrelabel.data.photo_scenes import make_photo_scenes
    from mlrelabel.data.sources import load_image_dataset
    from mlrelabel.eval import evaluate, metrics
    from mlrelabel.relabel import label_sets

    parallel.split_cpu(base_config().parallel.cpu_devices)  # as mlrelabel.main does, before JAX starts
    data = os.path.join(args.workdir, f'data_{args.seed}')
    if not os.path.exists(os.path.join(data, 'val_truth.json')):
        make_photo_scenes(data, num_train=args.photo_train, num_val=args.photo_val, seed=args.seed)
    losses = {
        'softmax': {},
        'an': {'train.loss': 'an'},
        'wan': {'train.loss': 'wan'},
        'full': {'train.loss': 'sigmoid_bce', 'data.train_json': os.path.join(data, 'train_truth.json')},
    }
    extra = parse_set(args.set, example='train.augment.zoom_out=0.5')
    suffix = ''.join(f'_{k.split(".")[-1]}{v}' for k, v in sorted(extra.items()))
    for name in args.entries.split(','):
        workdir = os.path.join(args.workdir, f'{name}_{args.epochs}_seed{args.seed}{suffix}')
        overrides = {
            'seed': args.seed,
            'data.source': 'json',
            'data.train_json': os.path.join(data, 'train.json'),
            'data.val_json': os.path.join(data, 'val.json'),
            'train.epochs': args.epochs,
            **losses[name],
            **extra,
        }
        t0 = time.time()
        run_api.run_config('supervised', workdir, **{k.replace('.', '__'): v for k, v in overrides.items()})
        wall = time.time() - t0
        run = run_api.load_run(workdir)
        val, _ = load_image_dataset(os.path.join(data, 'val_truth.json'), run.image_size, num_classes=10)
        given, _ = load_image_dataset(os.path.join(data, 'val.json'), run.image_size, num_classes=10)
        rows = np.arange(len(val))
        truth, images = val.labels.dense(rows), val.images[rows]
        crops = label_sets.crop_scores(run, images)
        # Label sets: per-class crop thresholds fitted on the first half of val (its given labels only), scored on
        # the second half; beside them the whole-image sets at p > 0.5 on the same half.
        fit, test = rows[: len(rows) // 2], rows[len(rows) // 2 :]
        t, _ = label_sets.fit_crop_thresholds(
            crops[fit], evaluate.first_labels(given.labels)[fit], label_sets.crop_settings(run.config)
        )
        crop_sets = label_sets.apply_rule(
            crops[test], {'evidence': 'crops', 'thresholds': t, 'topk': None, 'groups': []}
        )
        image_sets = label_sets.apply_rule(
            run.predict(images[test]), {'evidence': 'image', 'thresholds': np.full(10, 0.5), 'topk': None}
        )
        sets = {}
        for kind, label_ids in (('crop', crop_sets), ('image', image_sets)):
            pred = np.zeros((len(test), 10), bool)
            for i, ids in enumerate(label_ids):
                pred[i, ids] = True
            sets[f'{kind}_sets_f1'] = metrics.sample_set_metrics(pred, truth[test].astype(bool))['f1']
            sets[f'{kind}_labels_per_image'] = float(pred.sum(1).mean())
        row = {
            'entry': name,
            'epochs': args.epochs,
            'seed': args.seed,
            'set': extra,
            'image_size': run.image_size,
            'model': run.config.model.name,
            'val_map': metrics.mean_average_precision(run.predict(images), truth),
            'val_crop_map': metrics.mean_average_precision(crops, truth),
            **sets,
            'truth_labels_per_image': float(truth[test].sum(1).mean()),
            'wall_s': round(wall, 1),
        }
        print(json.dumps(row), flush=True)
        with open(os.path.join(args.workdir, 'results.jsonl'), 'a') as f:
            f.write(json.dumps(row) + '\n')


if __name__ == '__main__':
    main()
