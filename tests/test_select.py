"""Round selection and held-out statistics decide from given labels alone."""

import numpy as np
import pytest

from mlrelabel.relabel import select


def test_heldout_stats_hand_case():
    given = np.array([0, 0, 1, 1])
    assigned = np.array([[1, 0, 1], [0, 0, 0], [1, 1, 0], [0, 1, 0]], bool)
    s = select.heldout_stats(assigned, given)
    assert s['heldout_given_recall'] == 0.75
    assert s['heldout_labels_per_image'] == 1.25
    assert s['heldout_new_per_image'] == 0.5
    # class 0: r = 1/2, P = 2/4 -> 0.5; class 1: r = 1, P = 2/4 -> 2.0
    assert s['heldout_pu_score'] == pytest.approx((0.5 + 2.0) / 2)


def test_choose_round_prefers_the_best_unflagged_round_and_keeps_given_otherwise():
    rows = [
        {'round': 0, 'val_top1': 0.60},
        {'round': 1, 'val_top1': 0.70, 'flags': []},
        {'round': 2, 'val_top1': 0.65, 'flags': []},  # got worse: round 1 stays the best
        {'round': 3, 'val_top1': 0.90, 'flags': ['too many labels']},
    ]
    best, reason = select.choose_round(rows, 'val_top1')
    assert best == 1 and 'round 1' in reason
    worse = [{'round': 0, 'val_top1': 0.6}, {'round': 1, 'val_top1': 0.55, 'flags': []}]
    best, reason = select.choose_round(worse, 'val_top1')
    assert best == 0 and 'beat the given labels' in reason
    assert select.choose_round(rows, 'val_top1', min_delta=0.2)[0] == 0


def test_choose_round_refuses_metrics_that_need_truth():
    with pytest.raises(ValueError, match='truth-free'):
        select.choose_round([{'round': 0, 'val_f1': 0.5}], 'val_f1')
