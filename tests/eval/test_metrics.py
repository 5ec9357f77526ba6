"""Metrics (`mlrelabel.eval.metrics`): hand-computed cases, sklearn agreement, and the real ReaL labels."""

import math
from pathlib import Path
from types import SimpleNamespace

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from mlrelabel.data import reference_labels
from mlrelabel.eval import metrics
from tests.helpers import ROOT

REAL_JSON = Path(ROOT).parent / 'shared' / 'data' / 'imagenet' / 'real.json'


LOGITS = np.array(
    [
        [0.1, 0.5, 0.2, 0.0],  # order 1, 2, 0, 3
        [3.0, 1.0, 2.0, 4.0],  # order 3, 0, 2, 1
        [1.0, 1.0, 0.0, 1.0],  # ties: 0, 1, 3 (lower index first), 2
    ]
)


def test_topk_hits_hand_cases():
    labels = np.array([2, 2, 1])
    np.testing.assert_array_equal(metrics.topk_hits(LOGITS, labels, 1), [False, False, False])
    np.testing.assert_array_equal(metrics.topk_hits(LOGITS, labels, 2), [True, False, True])
    np.testing.assert_array_equal(metrics.topk_hits(LOGITS, labels, 3), [True, True, True])
    np.testing.assert_array_equal(metrics.topk_hits(LOGITS, np.array([1, 3, 0]), 1), [True, True, True])
    # tie broken towards the lower index: class 3 ranks third among the tied 0, 1, 3
    np.testing.assert_array_equal(metrics.topk_hits(LOGITS, np.array([0, 0, 3]), 2), [False, True, False])
    assert metrics.topk_hits(jnp.asarray(LOGITS), jnp.array([1, 3, 0]), 1).dtype == bool


def test_topk_accuracy_hand_cases_and_argmax_agreement():
    labels = np.array([2, 2, 1])
    assert metrics.topk_accuracy(LOGITS, labels, k=1) == 0.0
    assert metrics.topk_accuracy(LOGITS, labels, k=2) == pytest.approx(2 / 3)
    assert metrics.topk_accuracy(LOGITS, labels, k=4) == 1.0
    rng = np.random.default_rng(0)
    logits = rng.integers(0, 3, size=(200, 5)).astype(np.float32)  # many ties
    labels = rng.integers(0, 5, size=200)
    assert metrics.topk_accuracy(logits, labels) == pytest.approx(np.mean(np.argmax(logits, 1) == labels))


def test_topk_errors():
    with pytest.raises(ValueError, match='k must be in'):
        metrics.topk_accuracy(LOGITS, np.array([0, 0, 0]), k=5)
    with pytest.raises(ValueError, match='labels must be'):
        metrics.topk_accuracy(LOGITS, np.array([0, 0]), k=1)
    with pytest.raises(ValueError, match='lie in'):
        metrics.topk_accuracy(LOGITS, np.array([0, 0, 4]), k=1)
    with pytest.raises(ValueError, match='N = 0'):
        metrics.topk_accuracy(np.zeros((0, 3)), np.zeros(0, int), k=1)


def test_set_accuracy_excludes_empty_sets():
    top1 = np.array([3, 1, 0, 2, 5])
    sets = [[3, 4], [], [1], [2], []]
    assert metrics.set_accuracy(top1, sets) == pytest.approx(2 / 3)  # rows 0, 3 hit; row 2 miss
    assert metrics.real_accuracy(top1, sets) == pytest.approx(2 / 3)
    dense = np.zeros((5, 6), bool)
    for i, s in enumerate(sets):
        dense[i, s] = True
    assert metrics.set_accuracy(top1, dense) == pytest.approx(2 / 3)
    table = SimpleNamespace(
        num_classes=6, offsets=np.array([0, 2, 2, 3, 4, 4]), classes=np.array([3, 4, 1, 2])
    )
    assert metrics.set_accuracy(top1, table) == pytest.approx(2 / 3)
    scores = np.eye(6)[top1]  # [N, C] scores are arg-maxed
    assert metrics.set_accuracy(scores, sets) == pytest.approx(2 / 3)


def test_set_accuracy_errors():
    with pytest.raises(ValueError, match='3 predictions but 2 label sets'):
        metrics.real_accuracy(np.array([0, 1, 2]), [[0], [1]])
    with pytest.raises(ValueError, match='all 2 label sets are empty'):
        metrics.set_accuracy(np.array([0, 1]), [[], []])
    with pytest.raises(ValueError, match='entry 1'):
        metrics.set_accuracy(np.array([0, 1]), [[0], [-1]])


@pytest.mark.skipif(
    not REAL_JSON.is_file(), reason=f'ReaL labels not found at {REAL_JSON} (shared data absent)'
)
def test_real_accuracy_of_original_labels():
    real = reference_labels.load_real_labels(REAL_JSON)
    original = reference_labels.load_tfds_imagenet_validation_labels()
    assert len(real) == 50000
    assert sum(1 for s in real if s) == 46837
    acc = metrics.real_accuracy(original, real)
    # Derived from the data: 42,164 of the 46,837 labelled images keep their original label in the
    # ReaL set (0.90023); Beyer et al. report ≈ 90% ReaL accuracy for the original labels.
    assert acc == pytest.approx(42164 / 46837, abs=1e-12)
    assert 0.895 < acc < 0.91
    # a perturbed prediction must score lower: shift every label by one class
    assert metrics.real_accuracy((original + 1) % 1000, real) < 0.1


def test_predicted_sets():
    probs = np.array(
        [
            [0.2, 0.3, 0.1],  # nothing > 0.5: top-1 only
            [0.6, 0.7, 0.55],  # all above
            [0.5, 0.4, 0.1],
        ]
    )  # 0.5 is not > 0.5: top-1 only
    expected = np.array([[0, 1, 0], [1, 1, 1], [1, 0, 0]], bool)
    np.testing.assert_array_equal(metrics.predicted_sets(probs), expected)
    np.testing.assert_array_equal(
        metrics.predicted_sets(probs, include_top1=False), [[0, 0, 0], [1, 1, 1], [0, 0, 0]]
    )
    np.testing.assert_array_equal(
        metrics.predicted_sets(probs, threshold=0.25), [[0, 1, 0], [1, 1, 1], [1, 1, 0]]
    )


def _multi_hot(lists, c):
    out = np.zeros((len(lists), c), np.float32)
    for i, s in enumerate(lists):
        out[i, s] = 1
    return out


# Rows: (pred, truth) -> precision, recall, f1, jaccard, computed by hand.
SET_CASES = [
    ([0, 1], [1, 2, 3], 1 / 2, 1 / 3, 2 / 5, 1 / 4),
    ([2], [2], 1, 1, 1, 1),
    ([], [0], 0, 0, 0, 0),  # empty prediction, non-empty truth
    ([0], [], 0, 0, 0, 0),  # non-empty prediction, empty truth
    ([], [], 1, 1, 1, 1),  # both empty: perfect agreement
    ([0, 1, 2, 3], [3], 1 / 4, 1, 2 / 5, 1 / 4),
]


def test_sample_set_metrics_hand_cases():
    pred = _multi_hot([c[0] for c in SET_CASES], 4)
    truth = _multi_hot([c[1] for c in SET_CASES], 4)
    got = metrics.sample_set_metrics(pred.astype(bool), truth)
    for j, key in enumerate(['precision', 'recall', 'f1', 'jaccard']):
        assert got[key] == pytest.approx(np.mean([c[2 + j] for c in SET_CASES])), key
    # each row alone
    for i, case in enumerate(SET_CASES):
        row = metrics.sample_set_metrics(pred[i : i + 1], truth[i : i + 1])
        assert [row[k] for k in ('precision', 'recall', 'f1', 'jaccard')] == pytest.approx(case[2:]), case


def test_sample_set_metrics_mask_and_errors():
    pred = _multi_hot([c[0] for c in SET_CASES], 4)
    truth = _multi_hot([c[1] for c in SET_CASES], 4)
    mask = np.array([1, 1, 0, 0, 0, 0])
    got = metrics.sample_set_metrics(jnp.asarray(pred), jnp.asarray(truth), mask=mask)
    assert got == pytest.approx({'precision': 3 / 4, 'recall': 2 / 3, 'f1': 7 / 10, 'jaccard': 5 / 8})
    with pytest.raises(ValueError, match='no rows left'):
        metrics.sample_set_metrics(pred, truth, mask=np.zeros(6))
    with pytest.raises(ValueError, match='mask must be'):
        metrics.sample_set_metrics(pred, truth, mask=np.ones(5))
    with pytest.raises(ValueError, match='0/1 or bool'):
        metrics.sample_set_metrics(pred * 0.7, truth)
    with pytest.raises(ValueError, match='6 rows but truth has 5'):
        metrics.sample_set_metrics(pred, truth[:5])


def test_label_quality_forms_agree():
    preds = [c[0] for c in SET_CASES]
    truths = [c[1] for c in SET_CASES]
    dense = metrics.label_quality(_multi_hot(preds, 4), _multi_hot(truths, 4))
    offsets = np.cumsum([0] + [len(p) for p in preds])
    table = SimpleNamespace(
        num_classes=4, offsets=offsets, classes=np.concatenate([np.array(p, int) for p in preds])
    )
    for labels in (preds, table, [p + p for p in preds]):  # duplicates within a row count once
        got = metrics.label_quality(labels, truths)
        assert got == pytest.approx(dense)
    assert dense['labels_per_image'] == pytest.approx(8 / 6)
    assert set(dense) == {'precision', 'recall', 'f1', 'jaccard', 'labels_per_image'}
    masked = metrics.label_quality(preds, _multi_hot(truths, 4), mask=[0, 1, 0, 0, 0, 1])
    assert masked == pytest.approx(
        {'precision': 5 / 8, 'recall': 1, 'f1': 7 / 10, 'jaccard': 5 / 8, 'labels_per_image': 5 / 2}
    )


def test_map_matches_sklearn_on_random_data():
    rng = np.random.default_rng(1)
    targets = (rng.random((60, 7)) < 0.3).astype(int)
    targets[0] = 1  # every class has a positive ...
    targets[1] = 0  # ... and a negative
    scores = rng.normal(size=(60, 7)) + targets
    expected = average_precision_score(targets, scores, average='macro')
    assert metrics.mean_average_precision(scores, targets) == pytest.approx(expected, abs=1e-12)
    tied = np.round(scores)  # ties across positives and negatives
    assert metrics.mean_average_precision(tied, targets) == pytest.approx(
        average_precision_score(targets, tied, average='macro'), abs=1e-12
    )
    per_class = metrics.mean_average_precision(scores, targets, return_per_class=True)[1]
    np.testing.assert_allclose(per_class, average_precision_score(targets, scores, average=None), atol=1e-12)


def test_map_ignores_unknown_entries_and_skips_classes():
    scores = np.array(
        [[0.9, 0.8, 0.1, 0.3], [0.8, 0.7, 0.2, 0.9], [0.7, 0.6, 0.3, 0.2], [0.6, 0.5, 0.4, 0.1]]
    )
    targets = np.array([[0, -1, 1, 1], [1, 1, 1, 1], [-1, 0, 1, 1], [1, -1, 1, -1]])
    # class 0: known rows 0 (neg, .9), 1 (pos, .8), 3 (pos, .6): ranks neg, pos, pos -> (1/2 + 2/3) / 2
    # class 1: known rows 1 (pos, .7), 2 (neg, .6): AP 1; classes 2 and 3 have no negative: skipped
    map_, per_class = metrics.mean_average_precision(scores, targets, return_per_class=True)
    np.testing.assert_allclose(per_class[:2], [(1 / 2 + 2 / 3) / 2, 1.0])
    assert np.isnan(per_class[2:]).all()
    assert map_ == pytest.approx(((1 / 2 + 2 / 3) / 2 + 1.0) / 2)
    assert 0.0 <= map_ <= 1.0
    # treating the -1 entries as negatives instead lowers both APs to 1/2 (they outrank positives)
    assert metrics.mean_average_precision(scores[:, :2], np.maximum(targets, 0)[:, :2]) == pytest.approx(
        1 / 2
    )
    with pytest.raises(ValueError, match='none of the 2 classes'):
        metrics.mean_average_precision(scores[:, 2:], targets[:, 2:])
    with pytest.raises(ValueError, match='1, 0 or -1'):
        metrics.mean_average_precision(scores, targets * 2)
    assert math.isclose(metrics.mean_average_precision(jnp.asarray(scores), jnp.asarray(targets)), map_)
