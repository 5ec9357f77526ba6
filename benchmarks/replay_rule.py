"""Replays a finished relabel run's label rule on its stored evidence, with other rule settings: seconds, no training.

  python benchmarks/replay_rule.py --workdir=RUN [--truth=train_truth.json] \
      [--set=relabel.gmm_min_posterior=0.95 --set=relabel.positive_floor=0.1]

Every round k of a relabel run keeps the crop evidence of its training and validation images
(`round_<k>/evidence_{train,val}.npz`). The labels of round k are a pure function of those records (rounds 1..k,
combined by `relabel.evidence`), the given labels and the rule settings (`relabel.assign`, `gmm_min_posterior`,
`positive_floor`, `gmm_*`, `threshold`, `topk`, `keep_given`, `max_labels`): this script rebuilds them with the
run's own settings (a check: they must equal `round_<k>/labels.json`) and with the `--set` overrides, scores both
against the multi-label truth (scoring only) and says which round the run's truth-free choice
(`relabel.metric`, the guard) would output under each.

First order only: the models of rounds after k were trained on the run's own labels of round k, not on the
replayed ones. A setting that wins here still needs whole runs (benchmarks/relabel_quality.py) before it becomes
a default. Attribute groups (`relabel.exclusive_groups`) are not replayed.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from score_labels import _truth_by_path  # noqa: E402

from mlrelabel.compare import parse_set  # noqa: E402
from mlrelabel.data.label_table import LabelTable  # noqa: E402
from mlrelabel.data.labels import read_label_file
from mlrelabel.eval import evaluate, metrics  # noqa: E402


def _tables(config, workdir: str, truth_file: str):
    """`(paths, given train LabelTable, truth LabelTable, given val LabelTable)` of the run's data."""
    import ml_collections

    from mlrelabel.methods import common

    cfg = ml_collections.ConfigDict(config)
    if truth_file:
        c = cfg.data.num_classes
        root = cfg.data.root or None
        paths, given = read_label_file(cfg.data.train_json, c, root=root)
        truth_map = _truth_by_path(truth_file, c)
        truth = LabelTable.from_lists([sorted(truth_map[os.path.normpath(p)]) for p in paths], c)
        return paths, given, truth, read_label_file(cfg.data.val_json, c, root=root)[1]
    data = common.load_datasets(cfg, workdir)
    train, val = data['train'], data['val']
    if train.truth is None:
        raise SystemExit(f'{workdir}: the run has no hidden sets to score against; pass --truth=FILE')
    paths = train.paths or [f'{train.name}/{i:07d}' for i in range(len(train))]
    return paths, train.labels, train.truth, val.labels


def replay(workdir: str, truth_file: str = '', overrides: dict | None = None) -> dict:
    """Per round of the run: the label F1 (against the truth) and labels per image of its own rule and of the rule
    with `overrides` (dotted `relabel.*` fields), the truth-free metric and flags, and the round each would output.
    """
    import ml_collections

    from mlrelabel.relabel import rule, select, stream
    from mlrelabel.relabel.evidence import RoundEvidence

    with open(os.path.join(workdir, 'config.json')) as f:
        config = json.load(f)
    with open(os.path.join(workdir, 'summary.json')) as f:
        summary = json.load(f)
    paths, given, truth, val_labels = _tables(config, workdir, truth_file)
    num_classes = given.num_classes
    own = ml_collections.ConfigDict(config)
    variant = ml_collections.ConfigDict(config)
    for key, value in (overrides or {}).items():
        if not key.startswith('relabel.') or key.split('.', 1)[1] not in variant.relabel:
            raise SystemExit(
                f'--set={key}: expected a field of config.relabel, e.g. relabel.gmm_min_posterior'
            )
        variant.relabel[key.split('.', 1)[1]] = value
    rounds = [r['round'] for r in summary['rounds'] if r['round'] > 0]
    window = 1 if own.relabel.evidence == 'last' else 0
    evidence = {'train': RoundEvidence(window), 'val': RoundEvidence(window)}
    given_train, given_val = evaluate.first_labels(given), evaluate.first_labels(val_labels)
    n = len(given_train)
    out = {
        name: [{'round': 0, 'f1': float(metrics.label_quality(given, truth)['f1'])}]
        for name in ('own', 'set')
    }
    for k in rounds:
        for split in ('train', 'val'):
            record = stream.load_record(stream.evidence_path(workdir, k, split))
            stream.add_record(evidence[split], record, num_classes)
        ev_train = evidence['train'].dense(np.arange(n))
        ev_val = evidence['val'].dense(np.arange(len(given_val)))
        for name, cfg in (('own', own), ('set', variant)):
            rc = cfg.relabel
            decided = rule.assign_round(
                rule.RoundEvidenceArrays(
                    train_dense=lambda rows: ev_train[rows],
                    num_train=n,
                    evidence_val=ev_val,
                    train_given=given_train,
                    val_given=given_val,
                ),
                rule.AssignOptions.from_config(cfg),
            )
            lists, info = decided.labels, decided.info
            table = LabelTable.from_lists(lists, num_classes)
            quality = metrics.label_quality(table, truth)
            row = {
                'round': k,
                'f1': float(quality['f1']),
                'labels_per_image': float(table.num_labels().mean()),
                rc.metric: info.get(rc.metric),
                'flags': info['flags'],
            }
            if name == 'own':
                saved = read_label_file(os.path.join(workdir, f'round_{k}', 'labels.json'), num_classes)[1]
                row['matches_run'] = saved.to_lists() == table.to_lists()
            out[name].append(row)
    result = {'workdir': workdir, 'overrides': overrides or {}, 'paths': len(paths)}
    for name, rows in out.items():
        options = select.ChooseOptions.from_config(own if name == 'own' else variant)
        chosen, _ = select.choose_configured_round(rows, options)
        result[name] = {'rounds': rows, 'chosen': chosen, 'chosen_f1': rows[chosen]['f1']}
    return result


def main(argv):
    del argv
    doc = replay(
        flags.FLAGS.workdir, flags.FLAGS.truth, parse_set(flags.FLAGS.set, 'relabel.gmm_min_posterior=0.95')
    )
    for name in ('own', 'set'):
        part = doc[name]
        rounds = ' '.join(
            f'{r["round"]}:{r["f1"]:.4f}' + ('*' if r.get('flags') else '') for r in part['rounds']
        )
        print(
            f'{name:>3}: label F1 by round {rounds} | output round {part["chosen"]} F1 {part["chosen_f1"]:.4f}'
        )
    if not all(r.get('matches_run', True) for r in doc['own']['rounds']):
        print('warning: the replay of the run\'s own rule differs from its saved labels', file=sys.stderr)
    print(json.dumps(doc))


if __name__ == '__main__':
    flags.DEFINE_string('workdir', None, 'A finished relabel run (its round evidence kept).', required=True)
    flags.DEFINE_string('truth', '', 'Label file with the full label sets (else the built-in hidden sets).')
    flags.DEFINE_multi_string('set', [], 'relabel.<field>=<value> for the variant rule (repeatable).')
    app.run(main)
