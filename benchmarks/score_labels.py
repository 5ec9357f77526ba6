"""Scores a finished run's final labels against multi-label truth (scoring only: the run never saw it).

  python benchmarks/score_labels.py --workdir=RUN [--truth=train_truth.json]

Prints one JSON line: sample-F1, precision, recall of `<workdir>/labels.json` and of the given labels against
the truth, labels per image of each, and the run's chosen round. Without `--truth` the run must be on the
built-in digit scenes, whose hidden sets are rebuilt from the run's config.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mlrelabel.data.labels import read_label_file  # noqa: E402
from mlrelabel.eval import metrics  # noqa: E402


def _truth_by_path(truth_file: str, num_classes: int) -> dict:
    paths, table = read_label_file(truth_file, num_classes)
    return {os.path.normpath(p): set(row) for p, row in zip(paths, table.to_lists())}


def score_run(workdir: str, truth_file: str = '') -> dict:
    """Label quality of the run's final labels and of the given labels, against the truth."""
    with open(os.path.join(workdir, 'config.json')) as f:
        config = json.load(f)
    with open(os.path.join(workdir, 'summary.json')) as f:
        summary = json.load(f)
    num_classes = int(config['data']['num_classes'])
    paths, final = read_label_file(os.path.join(workdir, 'labels.json'), num_classes)
    if truth_file:
        truth_map = _truth_by_path(truth_file, num_classes)
        given_paths, given = read_label_file(
            config['data']['train_json'], num_classes, root=config['data']['root'] or None
        )
        by_given = {os.path.normpath(p): row for p, row in zip(given_paths, given.to_lists())}
        keys = [os.path.normpath(p) for p in paths]
        from mlrelabel.data.label_table import LabelTable

        truth = LabelTable.from_lists([sorted(truth_map[k]) for k in keys], num_classes)
        given = LabelTable.from_lists([by_given[k] for k in keys], num_classes)
    else:
        import ml_collections

        from mlrelabel.methods import common

        cfg = ml_collections.ConfigDict(config)
        train = common.load_datasets(cfg, workdir)['train']
        truth, given = train.truth, train.labels
    out = {'workdir': workdir, 'best_round': summary.get('best_round'), 'rounds': len(summary['rounds'])}
    for name, table in (('final', final), ('given', given)):
        q = metrics.label_quality(table, truth)
        out.update({f'{name}_{k}': round(float(v), 4) for k, v in q.items()})
    per_round = []
    for r in summary['rounds']:
        path = os.path.join(workdir, f'round_{r["round"]}', 'labels.json')
        table = given if r['round'] == 0 else read_label_file(path, num_classes)[1]
        per_round.append(float(metrics.label_quality(table, truth)['f1']))
    out['round_labels_f1'] = [round(v, 4) for v in per_round]
    out['round_labels_per_image'] = [r.get('labels_per_image') for r in summary['rounds']]
    out['round_val_top1'] = [r.get('val_top1') for r in summary['rounds']]  # the single-label validation
    out['round_flags'] = [r.get('flags') for r in summary['rounds']]
    out['best_possible_round'] = int(np.argmax(per_round))
    out['truth_labels_per_image'] = float(truth.num_labels().mean())
    return out


def main(argv):
    del argv
    print(json.dumps(score_run(flags.FLAGS.workdir, flags.FLAGS.truth)))


if __name__ == '__main__':
    flags.DEFINE_string('workdir', None, 'A finished run.', required=True)
    flags.DEFINE_string('truth', '', 'Label file with the full label sets of the training images.')
    app.run(main)
