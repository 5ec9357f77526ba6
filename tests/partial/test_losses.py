"""Partial-label losses (`mlrelabel.partial.losses`): ASL and partial-label losses against hand computations
(plain math), selective-mode ignoring, gradients at extreme logits, jit, partial-label simulation."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlrelabel.partial import losses as partial

Z = [[2.0, -1.0, 0.5], [-0.3, 1.5, -2.0]]


LOGITS = jnp.array(Z)


def sig(z):
    return 1.0 / (1.0 + math.exp(-z))


def pos_term(z, gamma, alpha=1.0):
    """alpha * log(p) * (1 - p)^gamma."""
    p = sig(z)
    return alpha * math.log(p) * (1.0 - p) ** gamma


def neg_term(z, gamma, clip=0.0, alpha=1.0):
    """alpha * log(1 - p_m) * p_m^gamma with p_m = max(p - clip, 0)."""
    pm = max(sig(z) - clip, 0.0)
    return alpha * math.log(1.0 - pm) * pm**gamma


def test_asl_hand_values_with_clip_shifting():
    y = [[1, 0, 0], [0, 1, 1]]
    got = partial.asymmetric_loss(LOGITS, jnp.array(y, jnp.float32), gamma_pos=1.0, gamma_neg=2.0, clip=0.1)
    expected = 0.0
    for i in range(2):
        for j in range(3):
            expected -= pos_term(Z[i][j], 1.0) if y[i][j] else neg_term(Z[i][j], 2.0, clip=0.1)
    assert got.shape == () and got.dtype == jnp.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # A shift of 0 differs: clipping matters.
    no_clip = partial.asymmetric_loss(
        LOGITS, jnp.array(y, jnp.float32), gamma_pos=1.0, gamma_neg=2.0, clip=0.0
    )
    assert abs(float(no_clip) - expected) > 1e-3


def test_asl_hard_threshold_zeroes_easy_negatives():
    # p(-1.0) = 0.269 and p(-2.0) = 0.119 are below clip = 0.3: loss and gradient exactly 0 there.
    y = jnp.array([[1, 0, 0], [0, 1, 0]], jnp.float32)
    grad = jax.grad(lambda z: partial.asymmetric_loss(z, y, clip=0.3))(LOGITS)
    assert grad[0, 1] == 0.0 and grad[1, 2] == 0.0
    assert grad[0, 2] > 0.0 and grad[1, 0] > 0.0  # p = 0.62, 0.43 above the clip: pushed down
    only_easy = jnp.array([[0.0, 0.0, 0.0]])
    assert float(partial.asymmetric_loss(jnp.array([[-1.0, -2.0, -3.0]]), only_easy, clip=0.3)) == 0.0


def test_asl_without_focusing_is_bce_sum():
    y = [[1, 0, 1], [0, 0, 1]]
    expected = -sum(
        math.log(sig(Z[i][j])) if y[i][j] else math.log(1 - sig(Z[i][j])) for i in range(2) for j in range(3)
    )
    got = partial.asymmetric_loss(LOGITS, jnp.array(y), gamma_pos=0.0, gamma_neg=0.0, clip=0.0)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_asl_focusing_weight_is_constant_for_gradient():
    # With w = (1 - p)^g held constant, d/dz[-log(p) * w] = -(1 - p) * w = -(1 - p)^(g + 1).
    y = jnp.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    grad = jax.grad(lambda z: partial.asymmetric_loss(z, y, gamma_pos=2.0, gamma_neg=3.0, clip=0.0))(LOGITS)
    np.testing.assert_allclose(grad[0, 0], -((1 - sig(2.0)) ** 3), rtol=1e-5)
    # Negative: d/dz[-log(1 - p) * p^g] = p * p^g.
    np.testing.assert_allclose(grad[1, 0], sig(-0.3) ** 4, rtol=1e-5)


def test_asl_rejects_bad_input():
    with pytest.raises(ValueError, match='clip'):
        partial.asymmetric_loss(LOGITS, jnp.zeros((2, 3)), clip=-0.1)
    with pytest.raises(ValueError, match=r'\[batch, classes\]'):
        partial.asymmetric_loss(LOGITS, jnp.zeros((2, 4)))


T = [[1, 0, -1], [-1, 1, -1]]


TARGETS = jnp.array(T, jnp.float32)


HP = dict(gamma_pos=1.0, gamma_neg=2.0, gamma_unann=3.0, alpha_pos=1.5, alpha_neg=0.7, alpha_unann=0.4)


def known_term(i, j, clip=0.0):
    if T[i][j] == 1:
        return pos_term(Z[i][j], HP['gamma_pos'], alpha=HP['alpha_pos'])
    return neg_term(Z[i][j], HP['gamma_neg'], clip=clip, alpha=HP['alpha_neg'])


def unk_term(z, clip=0.0):
    """Unknown as negative: alpha_unann * log(1 - p_m) * p_m^gamma_unann, clip-shifted like negatives (the
    reference uses the shifted xs_neg for unannotated entries too)."""
    return neg_term(z, HP['gamma_unann'], clip=clip, alpha=HP['alpha_unann'])


KNOWN = [(0, 0), (0, 1), (1, 1)]


UNKNOWN = [(0, 2), (1, 0), (1, 2)]


def test_partial_negative_mode():
    got = partial.partial_asymmetric_loss(LOGITS, TARGETS, 'negative', clip=0.05, **HP)
    expected = -sum(known_term(i, j, clip=0.05) for i, j in KNOWN) - sum(
        unk_term(Z[i][j], clip=0.05) for i, j in UNKNOWN
    )
    assert got.shape == ()
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_partial_ignore_mode_and_zero_gradient_on_unknowns():
    loss = functools.partial(partial.partial_asymmetric_loss, mode='ignore', **HP)
    expected = -sum(known_term(i, j) for i, j in KNOWN)
    np.testing.assert_allclose(loss(LOGITS, TARGETS), expected, rtol=1e-5)
    grad = jax.grad(lambda z: loss(z, TARGETS))(LOGITS)
    for i, j in UNKNOWN:
        assert grad[i, j] == 0.0
    for i, j in KNOWN:
        assert grad[i, j] != 0.0
    # Integer targets work the same.
    np.testing.assert_allclose(loss(LOGITS, jnp.array(T, jnp.int32)), expected, rtol=1e-5)


def test_partial_ignore_normalize_classes_mode():
    got = partial.partial_asymmetric_loss(LOGITS, TARGETS, 'ignore_normalize_classes', **HP)
    # CSL reference: g = 1 / (1 + n_known) + 1: row 0 has 2 known -> 4/3, row 1 has 1 known -> 3/2.
    expected = -(4 / 3) * (known_term(0, 0) + known_term(0, 1)) - 1.5 * known_term(1, 1)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # A fully annotated row (3 known) gets 1/4 + 1 = 1.25; an all-unknown row contributes 0, finitely.
    full = jnp.array([[1.0, 0.0, 0.0], [-1.0, -1.0, -1.0]])
    got = partial.partial_asymmetric_loss(LOGITS, full, 'ignore_normalize_classes', **HP)
    np.testing.assert_allclose(
        got,
        -1.25 * (pos_term(2.0, 1.0, 1.5) + neg_term(-1.0, 2.0, alpha=0.7) + neg_term(0.5, 2.0, alpha=0.7)),
        rtol=1e-5,
    )


@pytest.mark.parametrize('mode', ['negative', 'ignore', 'ignore_normalize_classes', 'selective'])
def test_per_example_reduction_sums_to_the_batch_sum(mode):
    targets = jnp.array(SEL_T if mode == 'selective' else T, jnp.float32)
    kw = dict(likelihood_topk=1) if mode == 'selective' else {}
    per = partial.partial_asymmetric_loss(LOGITS, targets, mode, reduction='per_example', **kw, **HP)
    total = partial.partial_asymmetric_loss(LOGITS, targets, mode, **kw, **HP)
    assert per.shape == (2,)
    np.testing.assert_allclose(per.sum(), total, rtol=1e-6)
    if mode == 'selective':
        # Batch-level top-k: row 0's two unknowns (0,0), (0,2) are ignored, so row 0 keeps only (0,1);
        # row 1 keeps its positive and its two unknowns (1,0), (1,2) as negatives.
        np.testing.assert_allclose(per[0], -unk_term(-1.0), rtol=1e-5)
        np.testing.assert_allclose(
            per[1], -pos_term(1.5, 1.0, 1.5) - unk_term(-0.3) - unk_term(-2.0), rtol=1e-5
        )
    with pytest.raises(ValueError, match='reduction'):
        partial.partial_asymmetric_loss(LOGITS, targets, mode, reduction='mean', **kw)


SEL_T = [[-1, -1, -1], [-1, 1, -1]]  # unknown p: (0,0) .881, (0,1) .269, (0,2) .622, (1,0) .426, (1,2) .119


def test_partial_selective_topk_ignores_most_likely_unknowns():
    targets = jnp.array(SEL_T, jnp.float32)
    got = partial.partial_asymmetric_loss(LOGITS, targets, 'selective', likelihood_topk=1, **HP)
    # k = 1 * batch 2 = 2: the two most likely unknowns (0,0) and (0,2) are ignored, the rest negatives.
    expected = -pos_term(1.5, 1.0, 1.5) - unk_term(-1.0) - unk_term(-0.3) - unk_term(-2.0)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # k = 0 and no prior: selective is the 'negative' mode.
    np.testing.assert_allclose(
        partial.partial_asymmetric_loss(LOGITS, targets, 'selective', likelihood_topk=0, **HP),
        partial.partial_asymmetric_loss(LOGITS, targets, 'negative', **HP),
        rtol=1e-6,
    )
    # k larger than the number of unknowns ignores them all, but never a known label.
    got = partial.partial_asymmetric_loss(LOGITS, targets, 'selective', likelihood_topk=3, **HP)
    np.testing.assert_allclose(got, -pos_term(1.5, 1.0, 1.5), rtol=1e-5)


def test_partial_selective_prior_and_topk_over_all_unknowns():
    targets = jnp.array(SEL_T, jnp.float32)
    prior = jnp.array([0.9, 0.1, 0.2])
    # Class 0 (prior 0.9 > 0.5): unknowns (0,0), (1,0) ignored. Independently, as in the CSL reference, the
    # top k = 2 of ALL unknowns by p, (0,0) .881 and (0,2) .622, are ignored; (0,1) and (1,2) stay negatives.
    got = partial.partial_asymmetric_loss(
        LOGITS, targets, 'selective', likelihood_topk=1, prior=prior, prior_threshold=0.5, **HP
    )
    np.testing.assert_allclose(got, -pos_term(1.5, 1.0, 1.5) - unk_term(-1.0) - unk_term(-2.0), rtol=1e-5)
    # Prior only (k = 0): class 0 unknowns ignored, all others negatives.
    got = partial.partial_asymmetric_loss(
        LOGITS, targets, 'selective', likelihood_topk=0, prior=prior, prior_threshold=0.5, **HP
    )
    expected = -pos_term(1.5, 1.0, 1.5) - unk_term(-1.0) - unk_term(0.5) - unk_term(-2.0)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # Known labels of a high-prior class still count.
    known = jnp.array([[1.0, -1.0, -1.0], [0.0, -1.0, -1.0]])
    got = partial.partial_asymmetric_loss(
        LOGITS, known, 'selective', likelihood_topk=0, prior=prior, prior_threshold=0.5, **HP
    )
    expected = (
        -pos_term(2.0, 1.0, 1.5)
        - neg_term(-0.3, 2.0, alpha=0.7)
        - unk_term(-1.0)
        - unk_term(0.5)
        - unk_term(1.5)
        - unk_term(-2.0)
    )
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_partial_argument_errors():
    with pytest.raises(ValueError, match='mode must be one of'):
        partial.partial_asymmetric_loss(LOGITS, TARGETS, 'drop')
    with pytest.raises(ValueError, match='likelihood_topk'):
        partial.partial_asymmetric_loss(LOGITS, TARGETS, 'selective')
    with pytest.raises(ValueError, match='together'):
        partial.partial_asymmetric_loss(LOGITS, TARGETS, 'selective', likelihood_topk=1, prior=jnp.zeros(3))
    with pytest.raises(ValueError, match=r'prior must be \[classes\]'):
        partial.partial_asymmetric_loss(
            LOGITS, TARGETS, 'selective', likelihood_topk=1, prior=jnp.zeros(4), prior_threshold=0.5
        )


def test_gradients_finite_at_extreme_logits():
    z = jnp.array([[50.0, -50.0, 50.0], [-50.0, 50.0, -50.0]])
    # Confident and confidently wrong entries of every kind.
    targets = jnp.array([[1.0, 1.0, 0.0], [0.0, -1.0, -1.0]])
    fns = [lambda z: partial.asymmetric_loss(z, jnp.maximum(targets, 0.0))]
    fns += [
        lambda z, m=m: partial.partial_asymmetric_loss(z, targets, m, clip=0.05)
        for m in ('negative', 'ignore', 'ignore_normalize_classes')
    ]
    fns.append(
        lambda z: partial.partial_asymmetric_loss(
            z, targets, 'selective', likelihood_topk=0, prior=jnp.array([0.1, 0.9, 0.1]), prior_threshold=0.5
        )
    )
    for fn in fns:
        value, grad = jax.value_and_grad(fn)(z)
        assert np.isfinite(value) and np.all(np.isfinite(grad))


def test_jit_matches_eager():
    prior = jnp.array([0.9, 0.1, 0.2])
    targets = jnp.array(SEL_T, jnp.float32)
    fn = jax.jit(functools.partial(partial.partial_asymmetric_loss, mode='selective', likelihood_topk=1))
    got = fn(LOGITS, targets, prior=prior, prior_threshold=jnp.float32(0.5), gamma_unann=jnp.float32(3.0))
    eager = partial.partial_asymmetric_loss(
        LOGITS, targets, 'selective', likelihood_topk=1, prior=prior, prior_threshold=0.5, gamma_unann=3.0
    )
    np.testing.assert_allclose(got, eager, rtol=1e-6)
    asl = jax.jit(partial.asymmetric_loss)(LOGITS, jnp.maximum(targets, 0.0), 0.0, 4.0, 0.05)
    np.testing.assert_allclose(asl, partial.asymmetric_loss(LOGITS, jnp.maximum(targets, 0.0)), rtol=1e-6)


def random_full(n, c, seed):
    full = (np.random.default_rng(seed).random((n, c)) < 0.3).astype(np.int64)
    return full


def test_fpc_exact_counts_per_class():
    full = random_full(200, 4, 0)
    full[:, 3] = 0
    full[[5, 17, 60], 3] = 1  # only 3 positives: all kept
    out = partial.simulate_fpc(full, 10, seed=1)
    assert out.shape == full.shape and out.dtype == np.int8
    for c in range(4):
        npos, nneg = int(full[:, c].sum()), int((full[:, c] == 0).sum())
        assert int((out[:, c] == 1).sum()) == min(10, npos)
        assert int((out[:, c] == 0).sum()) == min(10, nneg)
        assert int((out[:, c] == -1).sum()) == 200 - min(10, npos) - min(10, nneg)
    kept = out != -1
    np.testing.assert_array_equal(out[kept], full[kept])
    np.testing.assert_array_equal(np.flatnonzero(out[:, 3] == 1), [5, 17, 60])
    np.testing.assert_array_equal(partial.simulate_fpc(full, 10, seed=1), out)  # deterministic
    assert not np.array_equal(partial.simulate_fpc(full, 10, seed=2), out)
    with pytest.raises(ValueError, match='image 0, class 1'):
        partial.simulate_fpc(np.array([[0, 2]]), 1, seed=0)


def test_rps_drop_fraction_and_preserved_labels():
    full = random_full(400, 50, 3)
    out = partial.simulate_rps(full, 0.3, seed=0)
    dropped = out == -1
    assert abs(dropped.mean() - 0.3) < 0.02  # 20000 entries: sd 0.0032
    np.testing.assert_array_equal(out[~dropped], full[~dropped])
    # Both positives and negatives are dropped at about the same rate.
    assert abs(dropped[full == 1].mean() - 0.3) < 0.04 and abs(dropped[full == 0].mean() - 0.3) < 0.03
    np.testing.assert_array_equal(partial.simulate_rps(full, 0.0, seed=0), full)
    assert np.all(partial.simulate_rps(full, 1.0, seed=0) == -1)
    np.testing.assert_array_equal(partial.simulate_rps(full, 0.3, seed=0), out)
    with pytest.raises(ValueError, match='drop_prob'):
        partial.simulate_rps(full, 1.5, seed=0)
