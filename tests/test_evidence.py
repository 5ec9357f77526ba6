"""Evidence in log-odds: exact at any scale, never saturating, carried across rounds."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlrelabel.relabel import evidence


def _reference_log_odds(logits, head):
    """float64 numpy: log-odds of the mean over samples of the head's probabilities."""
    z = np.asarray(logits, np.float64)
    if head == 'sigmoid':
        p = 1 / (1 + np.exp(-z))
    else:
        e = np.exp(z - z.max(-1, keepdims=True))
        p = e / e.sum(-1, keepdims=True)
    m = p.mean(0)
    return np.log(m) - np.log1p(-m)


@pytest.mark.parametrize('head', ['sigmoid', 'softmax'])
def test_mean_log_odds_matches_float64_reference(head):
    logits = np.random.default_rng(0).normal(0, 3, (5, 4, 6)).astype(np.float32)
    got = np.asarray(evidence.mean_log_odds(logits, head))
    np.testing.assert_allclose(got, _reference_log_odds(logits, head), rtol=1e-4, atol=1e-4)
    assert got.dtype == np.float32


def test_saturated_probabilities_keep_their_evidence():
    # Sigmoid probabilities of logits 30 and 60 are both exactly 1.0 in float32; their log-odds are not.
    logits = jnp.asarray([[[30.0, 60.0, -45.0]]])
    assert float(jax.nn.sigmoid(logits)[0, 0, 0]) == 1.0
    np.testing.assert_allclose(
        np.asarray(evidence.mean_log_odds(logits, 'sigmoid'))[0], [30, 60, -45], rtol=1e-5
    )
    # A confident softmax crop: p(top) rounds to 1 in float32, its log-odds are z_top - logsumexp(others).
    z = jnp.asarray([[[40.0, 0.0, 0.0]]])
    expected = 40.0 - np.log(2.0)
    np.testing.assert_allclose(np.asarray(evidence.mean_log_odds(z, 'softmax'))[0, 0], expected, rtol=1e-5)
    assert np.isfinite(np.asarray(evidence.mean_log_odds(z * 10, 'softmax'))).all()


def test_probability_round_trip_and_round_evidence():
    x = np.array([-25.0, -2.0, 0.0, 3.0, 25.0])
    np.testing.assert_allclose(evidence.to_log_odds(evidence.to_probability(x)), x, rtol=1e-5)
    rounds = evidence.RoundEvidence()
    a, b = np.arange(6.0).reshape(3, 2), np.ones((3, 2))
    rounds.add(lambda rows: a[rows])
    rounds.add(lambda rows: b[rows])
    np.testing.assert_allclose(rounds.dense(np.array([0, 2])), (a[[0, 2]] + 1) / 2)
    last = evidence.RoundEvidence(window=1)
    last.add(lambda rows: a[rows])
    last.add(lambda rows: b[rows])
    np.testing.assert_allclose(last.dense(np.arange(3)), b)
    with pytest.raises(ValueError, match='no round'):
        evidence.RoundEvidence().dense(np.arange(1))
