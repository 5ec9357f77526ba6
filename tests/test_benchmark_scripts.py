"""The diagnostic scripts in benchmarks/ on a finished relabel run: replay_rule.py rebuilds its labels from the stored
evidence exactly and scores a variant rule; round_crop_map.py scores each round's model on crops."""

import json
import os
import subprocess
import sys

import pytest

from mlrelabel.config import relabel_config
from tests.helpers import ROOT


@pytest.fixture(scope='module')
def finished_run(tmp_path_factory):
    from mlrelabel import main

    c = relabel_config('smoke', 'mc_dropout')
    c.data.num_train = 128
    c.data.num_val = 64
    c.relabel.max_rounds = 2
    c.relabel.patience = 5
    c.relabel.stable_fraction = 0.0
    workdir = str(tmp_path_factory.mktemp('replay') / 'run')
    main.run(c, workdir)
    return workdir


def test_replay_of_the_runs_own_rule_rebuilds_its_labels(finished_run):
    sys.path.insert(0, os.path.join(ROOT, 'benchmarks'))
    from replay_rule import replay

    doc = replay(finished_run, overrides={'relabel.gmm_min_posterior': 0.999, 'relabel.positive_floor': 0.2})
    own, variant = doc['own']['rounds'], doc['set']['rounds']
    with open(os.path.join(finished_run, 'summary.json')) as f:
        assert [r['round'] for r in own] == [r['round'] for r in json.load(f)['rounds']]
    assert len(own) >= 2
    assert all(r['matches_run'] for r in own[1:])  # the same labels as round_<k>/labels.json
    assert own[0]['f1'] == variant[0]['f1']  # the given labels
    # A stricter rule never adds labels: a higher posterior and floor raise every threshold.
    assert all(v['labels_per_image'] <= o['labels_per_image'] for o, v in zip(own[1:], variant[1:]))
    assert 0 <= doc['own']['chosen'] < len(own) and doc['own']['chosen_f1'] == own[doc['own']['chosen']]['f1']


def test_replay_command_refuses_fields_outside_the_rule(finished_run):
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'benchmarks', 'replay_rule.py'), f'--workdir={finished_run}',
         '--set=train.epochs=3'],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )  # fmt: skip
    assert proc.returncode != 0 and 'expected a field of config.relabel' in proc.stderr


def test_round_crop_map_scores_every_round_and_their_running_mean(finished_run):
    sys.path.insert(0, os.path.join(ROOT, 'benchmarks'))
    import numpy as np
    from round_crop_map import round_crop_map

    from mlrelabel import run as run_api
    from mlrelabel.eval import metrics
    from mlrelabel.relabel import label_sets

    doc = round_crop_map(finished_run)
    rows = doc['rounds']
    with open(os.path.join(finished_run, 'run.json')) as f:
        assert [r['round'] for r in rows] == [r['round'] for r in json.load(f)['rounds']]
    assert rows[0]['head'] == 'softmax' and rows[0]['crop_map'] == rows[0]['mean_crop_map']
    assert all(0 < r['crop_map'] <= 1 and 0 < r['mean_crop_map'] <= 1 for r in rows)
    # The last row's running mean is the mAP of the evidence averaged over every round's model, scored as predict
    # scores crops (here with one naive pass).
    run = run_api.load_run(finished_run)
    with run.config.unlocked():
        run.config.relabel.confidence, run.config.relabel.num_samples = 'naive', 1
    from mlrelabel.methods import common

    val = common.load_datasets(run.config.copy_and_resolve_references(), finished_run)['val']
    rows_val = np.arange(len(val))
    mean = np.mean([label_sets.crop_scores(run, val.images[rows_val], r['round']) for r in rows], 0)
    truth = val.truth.dense(rows_val) > 0
    assert abs(rows[-1]['mean_crop_map'] - metrics.mean_average_precision(mean, truth)) < 1e-6
