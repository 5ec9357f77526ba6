"""Tests for mlrelabel.losses: hand-computed values, smoothing, masking, extreme logits, jit."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlrelabel import losses

# softmax(log [1, 2, 3]) = [1/6, 1/3, 1/2]
LOGITS = jnp.log(jnp.array([[1.0, 2.0, 3.0]] * 4))
TARGETS = jnp.array(
    [
        [0.0, 0.0, 1.0],  # one-hot
        [1.0, 1.0, 0.0],  # multi-hot -> [1/2, 1/2, 0]
        [0.2, 0.6, 0.2],  # distribution
        [0.0, 0.0, 0.0],
    ]
)  # no label -> loss 0
LOGP = np.log([1 / 6, 1 / 3, 1 / 2])


def test_softmax_ce_hand_values():
    got = losses.softmax_cross_entropy(LOGITS, TARGETS)
    expected = [-LOGP[2], -(LOGP[0] + LOGP[1]) / 2, -(0.2 * LOGP[0] + 0.6 * LOGP[1] + 0.2 * LOGP[2]), 0.0]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert got.shape == (4,) and got.dtype == jnp.float32
    np.testing.assert_allclose(
        losses.softmax_cross_entropy(LOGITS, 5 * TARGETS), got, rtol=1e-6
    )  # row-normalised
    np.testing.assert_allclose(losses.soft_target_cross_entropy(LOGITS, TARGETS), got, rtol=1e-6)
    grad = jax.grad(lambda z: losses.softmax_cross_entropy(z, TARGETS).sum())(LOGITS)
    np.testing.assert_array_equal(grad[3], 0.0)  # unlabelled row contributes nothing
    # d/dlogits of CE = softmax - target
    np.testing.assert_allclose(grad[0], [1 / 6, 1 / 3, -1 / 2], atol=1e-6)


def test_label_smoothing():
    eps = 0.3
    got = losses.softmax_cross_entropy(LOGITS, TARGETS, label_smoothing=eps)
    smoothed = 0.7 * np.array([0.0, 0.0, 1.0]) + eps / 3  # [0.1, 0.1, 0.8]
    assert float(got[0]) == pytest.approx(-(smoothed @ LOGP), rel=1e-6)
    assert float(got[3]) == 0.0
    uniform = losses.softmax_cross_entropy(LOGITS, TARGETS, label_smoothing=1.0)
    np.testing.assert_allclose(uniform[:3], -LOGP.mean(), rtol=1e-6)
    # the smoothed loss is minimised at the smoothed target: zero gradient at logits = log(target)
    at_target = jnp.log(jnp.asarray(smoothed, jnp.float32))[None]
    grad = jax.grad(lambda z: losses.softmax_cross_entropy(z, TARGETS[:1], eps).sum())(at_target)
    np.testing.assert_allclose(grad, 0.0, atol=1e-6)
    # confident correct logits: smoothing penalises over-confidence
    confident = jnp.array([[-20.0, -20.0, 20.0]])
    assert (
        losses.softmax_cross_entropy(confident, TARGETS[:1], eps)[0]
        > losses.softmax_cross_entropy(confident, TARGETS[:1])[0] + 1.0
    )
    with pytest.raises(ValueError, match='label_smoothing'):
        losses.softmax_cross_entropy(LOGITS, TARGETS, label_smoothing=1.5)


def test_sigmoid_bce_hand_values_and_mask():
    logits = jnp.array([[0.0, 0.0, 0.0], [math.log(3.0), math.log(3.0), math.log(3.0)]])
    targets = jnp.array([[1.0, 0.0, 0.5], [1.0, 0.0, 0.5]])
    got = losses.sigmoid_binary_cross_entropy(logits, targets)
    # sigmoid(0) = 1/2; sigmoid(log 3) = 3/4
    row1 = -math.log(3 / 4) - math.log(1 / 4) - 0.5 * (math.log(3 / 4) + math.log(1 / 4))
    np.testing.assert_allclose(got, [3 * math.log(2), row1], rtol=1e-6)
    mask = jnp.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    masked = losses.sigmoid_binary_cross_entropy(logits, targets, mask=mask)
    np.testing.assert_allclose(masked, [2 * math.log(2), math.log(4)], rtol=1e-6)
    row_mask = losses.sigmoid_binary_cross_entropy(logits, targets, mask=jnp.array([[0.0], [1.0]]))
    np.testing.assert_allclose(row_mask, [0.0, row1], rtol=1e-6)
    # d/dlogit of BCE = sigmoid(logit) - target on kept entries, 0 on ignored ones
    grad = jax.grad(lambda z: losses.sigmoid_binary_cross_entropy(z, targets, mask).sum())(logits)
    np.testing.assert_allclose(grad, mask * (jax.nn.sigmoid(logits) - targets), atol=1e-6)
    assert float(grad[1, 0]) == 0.0 and float(grad[1, 1]) == pytest.approx(0.75)
    # partial labels: -1 entries masked out give the same loss as dropping them
    partial = jnp.array([[1.0, -1.0, 0.5]])
    got_partial = losses.sigmoid_binary_cross_entropy(logits[:1], jnp.maximum(partial, 0), mask=partial >= 0)
    np.testing.assert_allclose(got_partial, [2 * math.log(2)], rtol=1e-6)
    with pytest.raises(ValueError, match='mask must be 2-D'):
        losses.sigmoid_binary_cross_entropy(logits, targets, mask=jnp.ones(2))


def test_extreme_logits_finite_values_and_gradients():
    logits = jnp.array([[100.0, -100.0, 0.0], [-100.0, 100.0, -100.0]])
    targets = jnp.array([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]])  # maximally wrong
    for name, fn in losses.LOSSES.items():
        value, grad = jax.value_and_grad(lambda z: fn(z, targets).sum())(logits)
        assert np.isfinite(value) and np.all(np.isfinite(grad)), name
    assert float(losses.softmax_cross_entropy(logits, targets)[0]) == pytest.approx(200.0, rel=1e-5)
    assert float(losses.sigmoid_binary_cross_entropy(logits, targets)[1]) == pytest.approx(300.0, rel=1e-5)
    _, grad = jax.value_and_grad(lambda z: losses.softmax_cross_entropy(z, targets, 0.1).sum())(logits)
    assert np.all(np.isfinite(grad))


def test_jit_matches_eager():
    eager = losses.softmax_cross_entropy(LOGITS, TARGETS, 0.1)
    np.testing.assert_allclose(jax.jit(losses.softmax_cross_entropy)(LOGITS, TARGETS, 0.1), eager, rtol=1e-6)
    smooth = jax.jit(functools.partial(losses.softmax_cross_entropy, label_smoothing=0.1))
    np.testing.assert_allclose(smooth(LOGITS, TARGETS), eager, rtol=1e-6)
    mask = jnp.ones((4, 3)).at[:, 0].set(0)
    bce = jax.jit(losses.sigmoid_binary_cross_entropy)(LOGITS, TARGETS, mask)
    np.testing.assert_allclose(bce, losses.sigmoid_binary_cross_entropy(LOGITS, TARGETS, mask), rtol=1e-6)


def test_registry():
    assert set(losses.LOSSES) == {'softmax_ce', 'sigmoid_bce', 'soft_ce'}
    assert losses.get_loss('soft_ce') is losses.soft_target_cross_entropy
    assert losses.get_loss('sigmoid_bce') is losses.sigmoid_binary_cross_entropy
    with pytest.raises(ValueError, match="'nope'.*softmax_ce"):
        losses.get_loss('nope')
