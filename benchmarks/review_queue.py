"""How much a person's review improves a run's labels, per 200 decisions, in two queue orders (scoring only).

  python benchmarks/review_queue.py --workdir=runs/mc_dropout-...  [--step=200] [--out=results.json]

The run's review rows (`review.candidate_rows`: additions and suspect given labels, scored by the additions'
margin over their class thresholds) are decided in order by a simulated person who knows the hidden truth:
an addition is accepted when the class is in the image, a suspect given label's removal when it is not. After
every `--step` decisions the curated labels (`decisions.apply_to_lists`) are scored against the truth. Orders:
'uncertain' (score nearest 0.5 first: where the run is least sure) and 'score' (highest score first). The truth
only scores; nothing here feeds back into a run.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np


def review_rows(workdir: str):
    """`(rows, final lists, truth, paths)` of a finished run with hidden truth."""
    from mlrelabel.data.labels import read_label_file
    from mlrelabel.eval import evaluate
    from mlrelabel.manifest import read_config
    from mlrelabel.methods import common
    from mlrelabel.relabel import review, rule, stream
    from mlrelabel.relabel.evidence import RoundEvidence

    config = read_config(workdir)
    train = common.load_datasets(config, workdir)['train']
    with open(os.path.join(workdir, 'summary.json')) as f:
        chosen = json.load(f)['best_round']
    evidence = RoundEvidence()
    for j in range(1, max(chosen, 1) + 1):
        stream.add_record(
            evidence, stream.load_record(stream.evidence_path(workdir, j, 'train')), train.num_classes
        )
    final = read_label_file(os.path.join(workdir, 'labels.json'), train.num_classes)[1].to_lists()
    thresholds = None
    if chosen > 0:
        with open(os.path.join(workdir, f'round_{chosen}', 'thresholds.json')) as f:
            thresholds = rule.thresholds_from_json(json.load(f)['log_odds'])
    paths = [str(i) for i in range(len(train))]
    names = [str(c) for c in range(train.num_classes)]
    rows = review.candidate_rows(
        final,
        evaluate.first_labels(train.labels),
        evidence.dense(np.arange(len(train))),
        names,
        paths,
        thresholds,
    )
    return rows, final, train.truth, paths


def person(row: dict, truth: set) -> str:
    """What a person who sees the image decides on a review row."""
    c = int(row['class'])
    if row['suggestion'] == 'add':
        return 'accept' if c in truth else 'reject'
    if row['suggestion'] == 'replace':
        return 'accept' if c not in truth and int(row['replacement']) in truth else 'reject'
    return 'accept' if c not in truth else 'reject'


def simulate(rows, final, truth_table, step: int) -> dict:
    from mlrelabel import decisions
    from mlrelabel.eval import metrics

    truth = truth_table.to_lists()
    orders = {
        'uncertain': sorted(rows, key=lambda r: (abs(r['score'] - 0.5), r['image'], r['class'])),
        'score': sorted(rows, key=lambda r: (-r['score'], r['image'], r['class'])),
    }
    out = {
        'rows': len(rows),
        'step': step,
        'f1_before': float(metrics.label_quality(final, truth_table)['f1']),
    }
    for name, ordered in orders.items():
        curve, made = [], []
        for i, r in enumerate(ordered):
            index = int(r['image'])
            replacement = int(r['replacement']) if r['replacement'] != '' else None
            made.append(
                decisions.Decision(
                    index, int(r['class']), person(r, set(truth[index])), r['suggestion'], replacement, i + 1
                )
            )
            if (i + 1) % step == 0 or i + 1 == len(ordered):
                lists, _ = decisions.apply_to_lists(final, made)
                curve.append(
                    {'decisions': i + 1, 'f1': float(metrics.label_quality(lists, truth_table)['f1'])}
                )
        out[name] = curve
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument('--workdir', required=True)
    parser.add_argument('--step', type=int, default=200)
    parser.add_argument('--out', default='')
    args = parser.parse_args()
    rows, final, truth, _ = review_rows(args.workdir)
    result = {'workdir': args.workdir, **simulate(rows, final, truth, args.step)}
    print(f"{result['rows']} review rows; label F1 before review {result['f1_before']:.4f}")
    print('decisions  uncertain-first  score-first')
    for a, b in zip(result['uncertain'], result['score']):
        print(f"{a['decisions']:9d}  {a['f1']:.4f}           {b['f1']:.4f}")
    if args.out:
        from mlrelabel.io_utils import atomic_write_json

        atomic_write_json(args.out, result, indent=1)


if __name__ == '__main__':
    main()
