"""Per-class two-component mixtures on log-odds (`mlrelabel.relabel.mixtures`): the modes recovered and equal
to sklearn's, bounded samples, degenerate classes, guarded tails, thresholds that agree with the posterior
rule."""

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from mlrelabel.relabel import mixtures


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
