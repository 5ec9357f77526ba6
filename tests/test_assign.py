"""Tests for mlrelabel.relabel.assign."""

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from mlrelabel.relabel import assign as asg
from mlrelabel.relabel import mixtures


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


def _bimodal(rng, n_low=600, n_high=400):
    """Probabilities whose logits are N(-3, 0.5^2) (absent) and N(2, 0.7^2) (present)."""
    logits = np.concatenate([rng.normal(-3.0, 0.5, n_low), rng.normal(2.0, 0.7, n_high)])
    truth = np.concatenate([np.zeros(n_low, bool), np.ones(n_high, bool)])
    return 1 / (1 + np.exp(-logits)), truth


def test_gmm_recovers_modes_and_matches_sklearn():
    rng = np.random.default_rng(0)
    p0, truth0 = _bimodal(rng)
    p1, truth1 = _bimodal(rng, n_low=300, n_high=700)
    perm = rng.permutation(1000)
    conf = np.stack([p0, p1[perm]], axis=1).astype(np.float32)  # [N=1000, C=2]
    truth = np.stack([truth0, truth1[perm]], axis=1)

    mix = mixtures.fit_class_gmms(conf, mixtures.GmmOptions(seed=0))
    assert mix.valid.all()
    np.testing.assert_allclose(mix.means[0], [-3.0, 2.0], atol=0.2)
    np.testing.assert_allclose(mix.means[1], [-3.0, 2.0], atol=0.2)
    np.testing.assert_allclose(mix.weights[0], [0.6, 0.4], atol=0.05)
    np.testing.assert_allclose(mix.weights[1], [0.3, 0.7], atol=0.05)
    assert np.all(mix.means[:, 1] > mix.means[:, 0])

    assigned = np.asarray(mixtures.assign_gmm(conf, mix))
    assert (assigned == truth).mean() > 0.99

    # The stored-parameter posterior equals sklearn's predict_proba on the same fit.
    post = np.asarray(mixtures.gmm_posterior(mix, conf))
    for c in range(2):
        x = np.log(np.clip(conf[:, c], 1e-6, 1 - 1e-6).astype(np.float64))
        x = x - np.log1p(-np.clip(conf[:, c], 1e-6, 1 - 1e-6).astype(np.float64))
        gmm = GaussianMixture(n_components=2, random_state=0).fit(x[:, None])
        high = int(np.argmax(gmm.means_[:, 0]))
        np.testing.assert_allclose(post[:, c], gmm.predict_proba(x[:, None])[:, high], atol=1e-4)

    # Probability-space fit also separates this sample.
    mix_p = mixtures.fit_class_gmms(conf, mixtures.GmmOptions(seed=0, space="prob"))
    assert (np.asarray(mixtures.assign_gmm(conf, mix_p)) == truth).mean() > 0.97


def test_gmm_bounded_sample_and_degenerate_class():
    rng = np.random.default_rng(1)
    p, _ = _bimodal(rng)
    conf = np.stack([p, np.full(1000, 0.3)], axis=1).astype(np.float32)
    mix = mixtures.fit_class_gmms(conf, mixtures.GmmOptions(max_samples=200, seed=3))
    np.testing.assert_array_equal(mix.valid, [True, False])
    np.testing.assert_allclose(mix.means[0], [-3.0, 2.0], atol=0.4)
    assert not np.asarray(mixtures.assign_gmm(conf, mix, min_posterior=0.0))[:, 1].any()
    assert not np.asarray(mixtures.gmm_posterior(mix, conf))[:, 1].any()


def test_gmm_monotone_guards_the_tails():
    # Narrow low component, wide high component: far below the low mean the raw posterior of the
    # high component rises again; the assignment must not follow it.
    mix = mixtures.ClassMixtures(
        means=np.array([[-2.0, 2.0]], np.float32),
        variances=np.array([[0.1, 4.0]], np.float32),
        weights=np.array([[0.5, 0.5]], np.float32),
        valid=np.array([True]),
        space="logit",
    )
    conf = 1 / (1 + np.exp(-np.array([[-6.0], [-2.0], [0.0], [2.0], [8.0]], np.float32)))
    raw = np.asarray(mixtures.gmm_posterior(mix, conf))[:, 0]
    assert raw[0] > 0.5  # the tail inversion exists
    np.testing.assert_array_equal(
        np.asarray(mixtures.assign_gmm(conf, mix))[:, 0], [False, False, True, True, True]
    )


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


def test_gmm_on_log_odds_with_saturated_and_spiky_scores():
    rng = np.random.default_rng(0)
    # 70 % negatives piled on one value (a spike), 30 % positives far up (log-odds, no cap at 0.99).
    x = np.concatenate([np.full(700, -9.0), rng.normal(14.0, 2.0, 300)]).astype(np.float32)
    flat = np.full(1000, 3.0, np.float32)  # no spread at all
    overlap = rng.normal(0.0, 1.0, 1000).astype(np.float32)  # one mode: no split to make
    conf = np.stack([x, flat, overlap], 1)
    mix = mixtures.fit_class_gmms(conf, mixtures.GmmOptions(seed=0, space='log_odds'))
    assert mix.valid.tolist() == [True, False, False]
    assert mix.reasons[1] == 'no spread' and mix.reasons[2].startswith('modes overlap')
    t = mixtures.mixture_thresholds(mix, 0.97)
    assert -9.0 < t[0] < 14.0 and np.isinf(t[1:]).all()
    assigned = conf >= t
    assert assigned[:, 0].sum() == pytest.approx(300, abs=3) and not assigned[:, 1:].any()


def test_mixture_thresholds_agree_with_the_posterior_rule():
    rng = np.random.default_rng(2)
    p, _ = _bimodal(rng)
    mix = mixtures.fit_class_gmms(p[:, None].astype(np.float32), mixtures.GmmOptions(seed=0))
    t = mixtures.mixture_thresholds(mix, 0.9)
    x = np.log(p) - np.log1p(-p)
    by_rule = np.asarray(mixtures.assign_gmm(p[:, None], mix, 0.9))[:, 0]
    by_threshold = x >= t[0]
    assert (by_rule != by_threshold).sum() <= 2  # equal up to the grid's resolution


def test_calibrate_thresholds_is_not_capped():
    truth = np.array([[1], [1], [0], [0]], bool)
    conf = np.array([[30.0], [25.0], [20.0], [-5.0]], np.float32)  # log-odds: the gap is at 22.5
    assert asg.calibrate_thresholds(conf, truth)[0] == pytest.approx(22.5)
