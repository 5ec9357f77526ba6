"""How well each round's model of a relabel run scores crops: validation mAP on crop evidence, per model and averaged.

  python benchmarks/round_crop_map.py --workdir=RUN [--val_truth=val_truth.json] [--confidence=naive|run]

Round k's labels come from the crop evidence of the models of rounds 0..k-1, averaged (`relabel.evidence`), so a
weak model in the middle drags every later round down. For every round's model this prints the mAP of its crop
evidence on the validation images against their full label sets (scoring only: the hidden sets of the built-in
data, or `--val_truth`), and the mAP of the evidence averaged over rounds 0..k, which is what round k+1's labels
are made from. `--confidence=naive` (default) scores one deterministic pass per crop, `run` the run's own
confidence (MC dropout: slower). The evidence is `mlrelabel.relabel.label_sets.crop_scores`, as predict computes it.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mlrelabel import run as run_api  # noqa: E402
from mlrelabel.data.labels import read_label_file  # noqa: E402
from mlrelabel.eval import metrics  # noqa: E402
from mlrelabel.relabel import label_sets

CHUNK = 256  # validation images decoded at a time


def _val_truth(run, val_truth: str):
    """`(val images (lazy), truth [N, C] bool)`: the run's validation split and its full label sets."""
    from mlrelabel.methods import common

    val = common.load_datasets(run.config.copy_and_resolve_references(), run.workdir)['val']
    c = run.num_classes
    if val_truth:
        paths, table = read_label_file(val_truth, c, root=run.config.data.get('root', '') or None)
        by_path = {os.path.normpath(p): row for p, row in zip(paths, table.to_lists())}
        truth = np.zeros((len(val), c), bool)
        for i, p in enumerate(val.paths):
            truth[i, by_path[os.path.normpath(p)]] = True
        return val, truth
    if val.truth is None:
        raise SystemExit(f'{run.workdir}: no hidden sets for the validation images; pass --val_truth=FILE')
    return val, val.truth.dense(np.arange(len(val))) > 0


def round_crop_map(workdir: str, val_truth: str = '', confidence: str = 'naive') -> dict:
    """`{'rounds': [{'round', 'head', 'crop_map', 'mean_crop_map'}...]}` for every round whose model was saved (of a
    run stopped during a round's training, that round's latest checkpoint)."""
    run = run_api.load_run(workdir)
    if confidence == 'naive' and 'relabel' in run.config:
        with run.config.unlocked():
            run.config.relabel.confidence = 'naive'
            run.config.relabel.num_samples = 1
    elif confidence not in ('naive', 'run'):
        raise SystemExit(f"--confidence={confidence!r}: expected 'naive' or 'run'")
    val, truth = _val_truth(run, val_truth)
    rows, evidence = [], []
    for entry in run.manifest.get('rounds') or [{'round': None}]:
        k = entry['round']
        scores = np.concatenate(
            [
                label_sets.crop_scores(run, val.images[np.arange(s, min(s + CHUNK, len(val)))], k)
                for s in range(0, len(val), CHUNK)
            ]
        )
        evidence.append(scores)
        rows.append(
            {
                'round': k,
                'head': run.round_info(k)['head'],
                'crop_map': float(metrics.mean_average_precision(scores, truth)),
                'mean_crop_map': float(metrics.mean_average_precision(np.mean(evidence, 0), truth)),
            }
        )
    return {'workdir': workdir, 'confidence': confidence, 'val_images': len(val), 'rounds': rows}


def main(argv):
    del argv
    doc = round_crop_map(flags.FLAGS.workdir, flags.FLAGS.val_truth, flags.FLAGS.confidence)
    for r in doc['rounds']:
        print(
            f'round {r["round"]} ({r["head"]}): crop mAP {r["crop_map"]:.4f}; '
            f'averaged over rounds 0..{r["round"]}: {r["mean_crop_map"]:.4f}'
        )
    print(json.dumps(doc))


if __name__ == '__main__':
    flags.DEFINE_string('workdir', None, 'A finished relabel run.', required=True)
    flags.DEFINE_string(
        'val_truth', '', 'Label file with the validation images\' full sets (else the built-in ones).'
    )
    flags.DEFINE_enum(
        'confidence', 'naive', ['naive', 'run'], 'One pass per crop, or the run\'s own confidence.'
    )
    app.run(main)
