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


def test_round_evidence_gives_each_model_one_vote():
    """A record that averages three models (round 1's, from `relabel.round0_models=3`) weighs three rounds of one
    model each; the window keeps its weight."""
    from mlrelabel.relabel import stream

    a, b = np.arange(6.0).reshape(3, 2), np.ones((3, 2))
    rounds = evidence.RoundEvidence()
    rounds.add(lambda rows: a[rows], 3)
    rounds.add(lambda rows: b[rows])
    np.testing.assert_allclose(rounds.dense(np.arange(3)), (3 * a + b) / 4)
    window = evidence.RoundEvidence(window=2)
    for fn, weight in ((lambda rows: b[rows], 1), (lambda rows: a[rows], 3), (lambda rows: b[rows], 1)):
        window.add(fn, weight)
    np.testing.assert_allclose(window.dense(np.arange(3)), (3 * a + b) / 4)
    with pytest.raises(ValueError, match='weight'):
        rounds.add(lambda rows: a[rows], 0)
    # Records carry their vote: a merged record of three models counts three, any other record one.
    record = {
        'classes': np.array([[0, 1]] * 3, np.int16),
        'log_odds': a.astype(np.float32),
        'std': np.zeros((3, 2), np.float32),
        'mutual_information': np.zeros(3, np.float32),
        'entropy': np.zeros(3, np.float32),
    }
    merged = stream.merge_records([record] * 3, 2)
    assert stream.record_models(record) == 1 and stream.record_models(merged) == 3
    with pytest.raises(ValueError, match='already a merge'):
        stream.merge_records([merged, record], 2)
    carried = evidence.RoundEvidence()
    stream.add_record(carried, merged, 2)
    stream.add_record(carried, dict(record, log_odds=b.astype(np.float32)), 2)
    np.testing.assert_allclose(carried.dense(np.arange(3)), (3 * a + b) / 4)


def test_a_saved_merged_record_keeps_its_vote(tmp_path):
    """A resumed run reads round 1's merged record back from disk with the same vote it was made with."""
    from mlrelabel.relabel import stream

    record = {
        'classes': np.array([[1, 0]] * 2, np.int16),
        'log_odds': np.array([[2.0, -1.0]] * 2, np.float32),
        'std': np.zeros((2, 2), np.float32),
        'mutual_information': np.zeros(2, np.float32),
        'entropy': np.zeros(2, np.float32),
    }
    first = {'boxes': np.zeros((1, 4), np.float32), 'crop_log_odds': np.zeros((1, 2), np.float32)}
    for saved, models in ((record, 1), (stream.merge_records([record] * 2, 2), 2)):
        path = str(tmp_path / f'evidence_{models}.npz')
        stream.save_record(path, saved, first, 2)
        assert stream.record_models(stream.finished_record(path, 2)[0]) == models
        assert stream.record_models(stream.load_record(path)) == models


def test_merged_records_hold_the_mean_evidence_of_several_models_with_the_top_classes_of_the_mean():
    """`stream.merge_records`: round 0's models score the same images; the merged record's dense evidence is the
    mean of theirs (classes outside a record's top-k at its fill value), keeping the top-k of the mean."""
    from mlrelabel.relabel import stream

    rng = np.random.default_rng(0)
    n, c, k = 7, 6, 3

    def record(dense):
        order = np.argsort(-dense, axis=1, kind='stable')[:, :k]
        return {
            'classes': order.astype(np.int16),
            'log_odds': np.take_along_axis(dense, order, 1).astype(np.float32),
            'std': rng.uniform(0, 1, (n, k)).astype(np.float32),
            'mutual_information': rng.uniform(0, 1, n).astype(np.float32),
            'entropy': rng.uniform(0, 1, n).astype(np.float32),
        }

    records = [record(rng.normal(0, 3, (n, c))) for _ in range(3)]
    merged = stream.merge_records(records, c, chunk=3)  # chunks smaller than the rows
    mean = np.mean([stream.dense_evidence(r, c) for r in records], axis=0)
    top = np.sort(-mean, axis=1)[:, :k]
    np.testing.assert_allclose(merged['log_odds'], -top, rtol=1e-6)
    np.testing.assert_allclose(np.take_along_axis(mean, merged['classes'].astype(int), 1), -top, rtol=1e-6)
    std_mean = np.mean([stream.dense_evidence(r, c, field='std') for r in records], axis=0)
    np.testing.assert_allclose(
        merged['std'], np.take_along_axis(std_mean, merged['classes'].astype(int), 1), rtol=1e-6
    )
    np.testing.assert_allclose(merged['entropy'], np.mean([r['entropy'] for r in records], axis=0), rtol=1e-6)
    assert merged['classes'].dtype == np.int16 and merged['log_odds'].dtype == np.float32
    assert int(merged['models']) == 3
    one = stream.merge_records(records[:1], c)
    for name in stream.RECORD_FIELDS:
        np.testing.assert_array_equal(one[name], records[0][name])
    assert int(one['models']) == 1
    with pytest.raises(ValueError, match='no records'):
        stream.merge_records([], c)
