"""The label rules of `mlrelabel.relabel.assign`: global and per-class thresholds, top-k, the uncertainty
filter, final label lists, calibrated thresholds."""

import numpy as np
import pytest

from mlrelabel.relabel import assign as asg


def test_assign_threshold_global_and_per_class():
    conf = np.array([[0.9, 0.4, 0.6], [0.2, 0.5, 0.7]], np.float32)
    np.testing.assert_array_equal(asg.assign_threshold(conf, 0.5), [[True, False, True], [False, True, True]])
    np.testing.assert_array_equal(
        asg.assign_threshold(conf, np.array([0.95, 0.3, 0.65])),
        [[False, True, False], [False, True, True]],
    )
    with pytest.raises(ValueError, match="threshold"):
        asg.assign_threshold(conf, np.array([0.5, 0.5]))


def test_assign_topk():
    conf = np.array([[0.1, 0.7, 0.3, 0.6], [0.05, 0.02, 0.9, 0.01]], np.float32)
    np.testing.assert_array_equal(
        asg.assign_topk(conf, 2), [[False, True, False, True], [True, False, True, False]]
    )
    np.testing.assert_array_equal(
        asg.assign_topk(conf, 2, min_conf=0.5),
        [[False, True, False, True], [False, False, True, False]],
    )
    assert not np.asarray(asg.assign_topk(conf, 0)).any()
    with pytest.raises(ValueError, match="k must be"):
        asg.assign_topk(conf, 5)


def test_uncertainty_filter():
    assigned = np.array([[True, True], [True, False]])
    np.testing.assert_array_equal(
        asg.uncertainty_filter(assigned, np.array([0.1, 0.9]), 0.5), [[True, True], [False, False]]
    )
    np.testing.assert_array_equal(
        asg.uncertainty_filter(assigned, np.array([[0.1, 0.6], [0.2, 0.0]]), 0.5),
        [[True, False], [True, False]],
    )
    with pytest.raises(ValueError, match="uncertainty"):
        asg.uncertainty_filter(assigned, np.ones(3), 0.5)


def test_finalize_labels_keeps_given_and_sorts():
    assigned = np.array([[False, True, False, True], [False, False, False, False], [True, True, True, False]])
    conf = np.array([[0.05, 0.6, 0.2, 0.9], [0.1, 0.3, 0.2, 0.4], [0.7, 0.8, 0.9, 0.1]], np.float32)
    given = np.array([2, 0, 1])
    labels, scores = asg.finalize_labels(assigned, given, conf=conf)
    assert labels == [[3, 1, 2], [0], [2, 1, 0]]
    np.testing.assert_allclose(scores[0], [0.9, 0.6, 0.2])
    np.testing.assert_allclose(scores[1], [0.1])
    # Cap: the given label survives even though it is the least confident.
    capped, capped_scores = asg.finalize_labels(assigned, given, conf=conf, max_labels=2)
    assert capped == [[3, 2], [0], [2, 1]]
    np.testing.assert_allclose(capped_scores[0], [0.9, 0.2])
    # Without the given labels; empty images may record their top-k instead.
    dropped, _ = asg.finalize_labels(assigned, given, keep_given=False, conf=conf)
    assert dropped == [[3, 1], [], [2, 1, 0]]
    recorded, rec_scores = asg.finalize_labels(assigned, None, conf=conf, top_k_record=2)
    assert recorded[1] == [3, 1]
    np.testing.assert_allclose(rec_scores[1], [0.4, 0.3])
    # No confidences: class order, score 1; negative given means "none".
    plain, plain_scores = asg.finalize_labels(assigned, np.array([0, -1, 3]))
    assert plain == [[0, 1, 3], [], [0, 1, 2, 3]]
    assert plain_scores[2] == [1.0, 1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="given"):
        asg.finalize_labels(assigned, np.array([0, 1, 7]))


def test_calibrate_thresholds_separable():
    rng = np.random.default_rng(0)
    truth = np.zeros((200, 3), bool)
    truth[:80, 0] = True
    truth[50:150, 1] = True
    conf = np.empty((200, 3), np.float32)
    # Class 0 separable with a gap (0.30, 0.60); class 1 separable at a low level (0.05, 0.15).
    conf[:, 0] = np.where(truth[:, 0], rng.uniform(0.6, 1.0, 200), rng.uniform(0.0, 0.3, 200))
    conf[:, 1] = np.where(truth[:, 1], rng.uniform(0.15, 0.3, 200), rng.uniform(0.0, 0.05, 200))
    conf[:, 2] = rng.uniform(0.0, 1.0, 200)  # no positives: gets the global threshold
    thresholds = asg.calibrate_thresholds(conf, truth)
    assert thresholds.shape == (3,)
    assert conf[~truth[:, 0], 0].max() < thresholds[0] <= conf[truth[:, 0], 0].min()
    assert conf[~truth[:, 1], 1].max() < thresholds[1] <= conf[truth[:, 1], 1].min()
    assert 0.3 < thresholds[0] < 0.6  # middle of the gap, far from both edges
    assigned = np.asarray(asg.assign_threshold(conf[:, :2], thresholds[:2]))
    np.testing.assert_array_equal(assigned, truth[:, :2])


def test_calibrate_thresholds_fallback_for_classes_without_positives():
    rng = np.random.default_rng(1)
    truth = np.zeros((100, 2), bool)
    truth[:40, 0] = True
    conf = np.zeros((100, 2), np.float32)
    conf[:, 0] = np.where(truth[:, 0], rng.uniform(0.7, 1.0, 100), rng.uniform(0.0, 0.2, 100))
    # Class 1 has no positives and never fires, so the pooled (micro) F1 is best on class 0's gap.
    thresholds = asg.calibrate_thresholds(conf, truth)
    assert 0.2 < thresholds[0] <= 0.7
    assert thresholds[1] == thresholds[0]
    custom = asg.calibrate_thresholds(conf, truth, grid=[0.9, 0.5, 0.1])
    np.testing.assert_allclose(custom, [0.5, 0.5])


def test_calibrate_thresholds_is_not_capped():
    truth = np.array([[1], [1], [0], [0]], bool)
    conf = np.array([[30.0], [25.0], [20.0], [-5.0]], np.float32)  # log-odds: the gap is at 22.5
    assert asg.calibrate_thresholds(conf, truth)[0] == pytest.approx(22.5)
