"""The pictures a person reads: captions name classes beside their ids, the rounds plot keeps every metric on
a scale it fits and marks the output."""

import numpy as np

from mlrelabel import report


def test_captions_show_names_beside_ids_shortened():
    names = ['0', 'golden retriever puppy', 'cat']
    assert report.label_text([2, 0, 1], names) == '[2 cat, 0, 1 golden retrie…]'
    assert report.label_text([1, 0]) == '[1, 0]'
    assert report.class_text(1, names, max_chars=6) == '1 golde…'
    assert report._wrap('a b c d e f', 5) == 'a b c\nd e f'


ROWS = [
    {'round': 0, 'val_top1': 0.70, 'heldout_pu_score': np.nan, 'heldout_mixture_f1': np.nan},
    {'round': 1, 'val_top1': 0.72, 'heldout_pu_score': 4.1, 'heldout_mixture_f1': 0.86},
    {'round': 2, 'val_top1': 0.71, 'heldout_pu_score': 3.8, 'heldout_mixture_f1': 0.89},
]


KEYS = ['val_top1', 'heldout_pu_score', 'heldout_mixture_f1']


def test_a_score_outside_0_1_gets_its_own_axis_and_the_output_round_is_marked(tmp_path):
    fig = report.rounds_figure(ROWS, KEYS, chosen=2)
    left, right = fig.axes
    assert {line.get_label() for line in left.lines if not line.get_label().startswith('_')} == {
        'val_top1',
        'heldout_mixture_f1',
    }
    (pu,) = right.lines
    assert pu.get_label().startswith('heldout_pu_score')
    lo, hi = right.get_ylim()
    assert lo <= 3.8 and hi >= 4.1  # visible, where the 0-1 axis would have cut it off
    marks = [
        line for line in left.lines if line.get_label().startswith('_') and len(set(line.get_xdata())) == 1
    ]
    assert [line.get_xdata()[0] for line in marks] == [2]
    report.plot_rounds(ROWS, KEYS, str(tmp_path / 'rounds.png'), chosen=0)
    assert (tmp_path / 'rounds.png').stat().st_size > 0


def test_metrics_in_0_1_share_one_axis():
    fig = report.rounds_figure(ROWS, ['val_top1', 'heldout_mixture_f1'])
    assert len(fig.axes) == 1 and fig.axes[0].get_ylim() == (0.0, 1.0)
