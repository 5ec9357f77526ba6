"""`python -m mlrelabel.compare`: every method over seeds, mean ± sd, and who beats its baseline."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mlrelabel import compare
from mlrelabel.errors import ConfigError
from mlrelabel.label_maps import method as relabel_maps
from tests.helpers import ROOT


def test_mean_sd_and_the_two_sd_rule():
    s = compare.mean_sd([0.5, 0.6, 0.7])
    assert s['n'] == 3 and s['mean'] == pytest.approx(0.6) and s['sd'] == pytest.approx(0.1)
    base = {'val_map': compare.mean_sd([0.50, 0.52, 0.54])}  # sd 0.02
    assert compare.beats({'val_map': compare.mean_sd([0.60, 0.61, 0.62])}, base)  # +0.09 > 2 x 0.02
    assert not compare.beats({'val_map': compare.mean_sd([0.55, 0.56, 0.57])}, base)  # +0.04 = 2 sd: no
    assert not compare.beats({'val_map': compare.mean_sd([0.4, 0.6, 0.8])}, base)  # its own sd is 0.2
    assert not compare.beats({'val_map': compare.mean_sd([0.9])}, base)  # one seed proves nothing


def test_summary_and_markdown_from_runs():
    runs = {
        'softmax': {0: {'val_map': 0.50, 'wall_s': 10.0}, 1: {'val_map': 0.52, 'wall_s': 12.0}},
        'an': {0: {'val_map': 0.60, 'wall_s': 11.0}, 1: {'val_map': 0.61, 'wall_s': 11.0}},
        'relabel': {
            0: {'val_map': 0.51, 'labels_f1': 0.88, 'wall_s': 300.0},
            1: {'val_map': 0.53, 'labels_f1': 0.89, 'wall_s': 280.0},
        },
    }
    summary = compare.summarize(runs)
    assert list(summary) == ['softmax', 'an', 'relabel']  # the order of ENTRIES
    assert summary['an']['beats_baseline'] and not summary['relabel']['beats_baseline']
    assert 'beats_baseline' not in summary['softmax'] and summary['an']['baseline'] == 'softmax'
    assert (
        summary['relabel']['labels_f1']['mean'] == pytest.approx(0.885) and 'labels_f1' not in summary['an']
    )
    md = compare.to_markdown(summary, [0, 1])
    assert '| an | softmax | 0.605 ± 0.007 | — | — | — | — | 11 ± 0 | ✓ |' in md
    assert '| relabel | softmax | 0.520 ± 0.014 | — | — | — | 0.885 ± 0.007 | 290 ± 14 | no |' in md
    assert 'against full labels' not in md  # no `full` row: no share to give
    del runs['an'][1]  # a comparison still running: the row says how many seeds it has so far
    md = compare.to_markdown(compare.summarize(runs), [0, 1])
    assert '| an | softmax | 0.600 ± 0.000 (n=1) | — | — | — | — | 11 ± 0 (n=1) | no |' in md


def test_the_best_single_positive_loss_as_a_share_of_full_labels():
    runs = {
        'softmax': {0: {'val_map': 0.70, 'val_crop_map': 0.90}, 1: {'val_map': 0.72, 'val_crop_map': 0.90}},
        'an': {0: {'val_map': 0.60, 'val_crop_map': 0.80}, 1: {'val_map': 0.62, 'val_crop_map': 0.82}},
        'wan': {0: {'val_map': 0.64, 'val_crop_map': 0.78}, 1: {'val_map': 0.66, 'val_crop_map': 0.78}},
        'full': {0: {'val_map': 0.80, 'val_crop_map': 0.84}, 1: {'val_map': 0.80, 'val_crop_map': 0.84}},
    }
    summary = compare.summarize(runs)
    whole = compare.best_against_full(summary, 'val_map')
    assert whole['entry'] == 'wan' and whole['share'] == pytest.approx(0.65 / 0.80)  # softmax is not a kind
    crops = compare.best_against_full(summary, 'val_crop_map')
    assert crops['entry'] == 'an' and crops['share'] == pytest.approx(0.81 / 0.84)
    md = compare.to_markdown(summary, [0, 1])
    assert '- val mAP: wan 0.650 against full labels\' 0.800: 81 % (target >= 95 %)' in md
    assert '- val mAP (crops): an 0.810 against full labels\' 0.840: 96 % (target >= 95 %)' in md
    del runs['full']
    assert compare.best_against_full(compare.summarize(runs), 'val_map') is None


def test_entry_metrics_reads_every_result_shape():
    assert compare.entry_metrics({'final': {'val_map': 0.4, 'val_f1': 0.3, 'epoch': 2}}) == {
        'val_map': 0.4,
        'val_f1': 0.3,
    }
    relabel = {
        'rounds': [{'val_map': 0.1, 'labels_f1': 0.67}, {'val_map': 0.2, 'labels_f1': 0.8}],
        'best_round': 1,
    }
    assert compare.entry_metrics(relabel) == {'val_map': 0.2, 'labels_f1': 0.8}
    assert compare.entry_metrics(dict(relabel, best_round=0))['labels_f1'] == 0.67  # the given labels kept


def test_every_entry_names_a_recipe_and_valid_fields():
    from mlrelabel.config import recipes
    from mlrelabel.run import _override

    names = [e.name for e in compare.ENTRIES]
    assert len(set(names)) == len(names)
    for e in compare.ENTRIES:
        cfg = recipes.load(e.recipe)
        for key, value in e.overrides:
            _override(cfg, key, value)  # raises on a field the recipe lacks
        assert e.baseline is None or e.baseline in names


def test_compare_runs_seeds_writes_tables_and_resumes(tmp_path):
    work = tmp_path / 'cmp'
    extra = {'data.num_train': 64, 'data.num_val': 32, 'train.epochs': 1}
    doc = compare.compare([0, 1], str(work), ['softmax', 'an'], 'smoke', extra)
    assert doc == json.load(open(work / 'compare.json'))
    assert doc['seeds'] == [0, 1] and set(doc['runs']) == {'softmax', 'an'}
    for name in ('softmax', 'an'):
        maps = [doc['runs'][name][s]['val_map'] for s in ('0', '1')]
        assert doc['summary'][name]['val_map']['mean'] == pytest.approx(np.mean(maps))
        assert doc['summary'][name]['val_map']['n'] == 2
        assert os.path.exists(work / name / 'seed_1' / 'run.json')
    assert doc['runs']['softmax']['0'] != doc['runs']['softmax']['1']  # the seeds differ
    assert all(0.0 < r['val_crop_map'] <= 1.0 for e in doc['runs'].values() for r in e.values())
    md = (work / 'compare.md').read_text()
    assert '| softmax |' in md and '| an | softmax |' in md
    # A second call finds every run finished (compare_run.json) and reruns nothing: the same figures.
    os.remove(work / 'softmax' / 'seed_0' / 'run.json')  # proof: a rerun would have written it again
    again = compare.compare([0, 1], str(work), ['softmax', 'an'], 'smoke', extra)
    assert again['runs'] == doc['runs'] and not os.path.exists(work / 'softmax' / 'seed_0' / 'run.json')
    # A run finished before the crop column existed gets it from its checkpoint, once, and keeps its figures.
    done = work / 'an' / 'seed_1' / 'compare_run.json'
    record = json.load(open(done))
    crop = record['metrics'].pop('val_crop_map')
    json.dump(record, open(done, 'w'))
    third = compare.compare([0, 1], str(work), ['softmax', 'an'], 'smoke', extra)
    assert third['runs']['an']['1']['val_crop_map'] == pytest.approx(crop, abs=1e-6)
    assert third['runs']['an']['1']['val_map'] == doc['runs']['an']['1']['val_map']  # not run again
    assert json.load(open(done))['metrics']['val_crop_map'] == pytest.approx(crop, abs=1e-6)


def test_compare_cli_refuses_an_unknown_entry():
    bad = [sys.executable, '-m', 'mlrelabel.compare', '--entries=softmax,nope']
    out = subprocess.run(bad, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and 'unknown nope' in out.stderr and 'Traceback' not in out.stderr


@pytest.mark.slow
def test_label_maps_entry_is_taught_by_the_relabel_run_of_its_seed(tmp_path):
    """`relabel_maps` (the recipe's teacher is the relabel loop): the relabel entry runs first at the same seed, its chosen round's model writes
    the maps (the teacher is restored, not trained), and its wall time counts in the student's."""
    work = tmp_path / 'cmp'
    extra = {'data.num_train': 64, 'data.num_val': 32, 'train.epochs': 1}
    doc = compare.compare([0], str(work), ['relabel_maps'], 'smoke', extra)
    teacher_dir = work / 'relabel' / 'seed_0'
    teacher = json.load(open(teacher_dir / 'compare_run.json'))['metrics']
    student_dir = work / 'relabel_maps' / 'seed_0'
    own = json.load(open(student_dir / 'compare_run.json'))['metrics']
    assert doc['runs']['relabel_maps']['0']['wall_s'] == pytest.approx(
        own['wall_s'] + teacher['wall_s'], abs=0.11
    )
    config = json.load(open(student_dir / 'config.json'))
    assert config['relabel_maps']['teacher_workdir'] == str(teacher_dir)
    assert not (student_dir / 'teacher').exists()  # restored from the relabel run, not trained here
    chosen = json.load(open(teacher_dir / 'run.json'))['checkpoint']
    assert relabel_maps._checkpoint_dir(str(teacher_dir)) == str(teacher_dir / chosen)


def test_set_fields_reach_the_entries_whose_recipe_has_the_section_and_unknown_sections_are_refused():
    """`--set=relabel.round0_models=1` applies to the relabel job, not to the supervised entries (whose config has
    no relabel section); a section no selected entry has is refused instead of doing nothing."""
    extra = {'relabel.round0_models': 1, 'train.epochs': 3}
    assert compare._applicable(extra, 'mc_dropout:smoke') == extra
    assert compare._applicable(extra, 'supervised:smoke') == {'train.epochs': 3}
    compare._check_sections(extra, [compare.BY_NAME['softmax'], compare.BY_NAME['relabel']], 'smoke')
    with pytest.raises(ConfigError, match='config.relabel section'):
        compare._check_sections(extra, [compare.BY_NAME['softmax']], 'smoke')
    with pytest.raises(ConfigError, match='config.relabl section'):
        compare._check_sections({'relabl.x': 1}, [compare.BY_NAME['relabel']], '')
