"""Single-positive losses (`mlrelabel.losses.single_positive`): values and gradients against independent
float64 numpy references of the papers' formulas, stability, jit, the LL schedule, APL selection, LL-Cp
rewriting."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlrelabel.losses import single_positive, single_positive_loss


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def ref_loss(
    logits, y, kind, log_eps=1e-5, ls=0.1, gamma=None, k_pos=None, alpha=0.1, beta=1.0, r=None, delta=None
):
    """The loss as Cole et al. / Zhou et al. / Kim et al. compute it: an entry matrix divided by B·C, summed."""
    x = np.asarray(logits, np.float64)
    y = np.asarray(y, np.float64)
    b, c = x.shape
    p, q = _sig(x), _sig(-x)  # q = 1 - p without cancellation

    def nl(v):
        return -np.log(v + log_eps)

    pos, unobs = y == 1, y == 0
    m = np.zeros_like(x)
    reg = 0.0
    if kind == 'an':
        m[pos], m[unobs] = nl(p[pos]), nl(q[unobs])
    elif kind == 'an_ls':
        m[pos] = (1 - ls) * nl(p[pos]) + ls * nl(q[pos])
        m[unobs] = (1 - ls) * nl(q[unobs]) + ls * nl(p[unobs])
    elif kind == 'wan':
        m[pos], m[unobs] = nl(p[pos]), nl(q[unobs]) * (gamma if gamma else 1.0 / (c - 1))
    elif kind == 'epr':
        m[pos] = nl(p[pos])
        reg = (p.sum(1).mean(0) - k_pos) ** 2 / c**2
    elif kind in ('em', 'em_apl'):
        m[pos] = nl(p[pos])
        m[unobs] = -alpha * (p[unobs] * nl(p[unobs]) + q[unobs] * nl(q[unobs]))
        neg = y < 0
        s = -y[neg]
        m[neg] = beta * (s * nl(p[neg]) + (1 - s) * nl(q[neg]))
    else:  # Kim et al.: loss matrix, unobserved losses, k-th largest, torch.where(u < tau, loss, other)
        loss = np.where(pos, nl(p), nl(q))
        corrected = np.where(pos, nl(q), nl(p))  # target logical_not(y)
        if kind == 'll_cp':
            rate = 0.0 if r == 0 else delta
        else:
            rate = r
        k = math.ceil(b * c * rate)
        if k > 0:
            u = unobs * loss
            tau = np.sort(u.ravel())[::-1][k - 1]
            other = np.zeros_like(loss) if kind == 'll_r' else corrected
            loss = np.where(u < tau, loss, other)
        m = loss
    return (m / (b * c)).sum() + reg


def ref_grad(logits, y, kind, h=1e-6, **kw):
    """Central finite differences of `ref_loss` in float64."""
    x = np.asarray(logits, np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (ref_loss(x + e, y, kind, **kw) - ref_loss(x - e, y, kind, **kw)) / (2 * h)
    return g


HP_NAMES = {
    'ls': 'label_smoothing',
    'k_pos': 'expected_positives',
    'r': 'rejection_rate',
    'delta': 'delta_rel',
}


def _ours(kind, kw):
    return {HP_NAMES.get(k, k): v for k, v in kw.items()}


def _batch(seed=0, b=6, c=5, scale=3.0, extra_positives=0, apl=False):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(b, c)) * scale
    y = np.zeros((b, c))
    y[np.arange(b), rng.integers(0, c, b)] = 1
    for _ in range(extra_positives):
        y[rng.integers(0, b), rng.integers(0, c)] = 1
    if apl:  # pseudo-negatives -s on some unobserved entries
        free = np.argwhere(y == 0)
        pick = free[rng.choice(len(free), size=len(free) // 3, replace=False)]
        y[pick[:, 0], pick[:, 1]] = -rng.uniform(0.01, 0.6, size=len(pick))
    return x, y


CASES = [
    ('an', {}),
    ('an', {'log_eps': 0.0}),
    ('an', {'log_eps': 1e-3}),
    ('an_ls', {'ls': 0.1}),
    ('an_ls', {'ls': 0.3, 'log_eps': 0.0}),
    ('wan', {}),
    ('wan', {'gamma': 0.5}),
    ('epr', {'k_pos': 2.0}),
    ('epr', {'k_pos': 1.3, 'log_eps': 0.0}),
    ('em', {'alpha': 0.1}),
    ('em', {'alpha': 0.5, 'log_eps': 0.0}),
    ('em_apl', {'alpha': 0.2, 'beta': 0.02}),
    ('em_apl', {'alpha': 0.1, 'beta': 0.9, 'log_eps': 0.0}),
    ('ll_r', {'r': 0.1}),
    ('ll_r', {'r': 0.3, 'log_eps': 0.0}),
    ('ll_ct', {'r': 0.1}),
    ('ll_ct', {'r': 0.25, 'log_eps': 0.0}),
    ('ll_cp', {'r': 0.2, 'delta': 0.1}),
    ('ll_cp', {'r': 0.0, 'delta': 0.1}),  # first epoch: nothing corrected
    ('ll_r', {'r': 0.0}),
]


@pytest.mark.parametrize('kind,kw', CASES)
@pytest.mark.parametrize('seed', [0, 1])
def test_values_and_gradients_match_numpy_reference(kind, kw, seed):
    x, y = _batch(seed, extra_positives=2 if kind != 'em_apl' else 0, apl=kind == 'em_apl')
    expected = ref_loss(x, y, kind, **kw)
    expected_grad = ref_grad(x, y, kind, **kw)
    fn = lambda z: single_positive_loss(z, jnp.asarray(y, jnp.float32), kind, **_ours(kind, kw))  # noqa: E731
    value, grad = jax.value_and_grad(fn)(jnp.asarray(x, jnp.float32))
    assert value.shape == () and value.dtype == jnp.float32
    np.testing.assert_allclose(float(value), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(grad), expected_grad, rtol=1e-4, atol=1e-6)
    # float64 logits stay float64: the same formulas to rounding.
    with jax.enable_x64(True):
        fn64 = lambda z: single_positive_loss(z, jnp.asarray(y), kind, **_ours(kind, kw))  # noqa: E731
        v64, g64 = jax.value_and_grad(fn64)(jnp.asarray(x, jnp.float64))
        assert v64.dtype == jnp.float64
        np.testing.assert_allclose(float(v64), expected, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(np.asarray(g64), expected_grad, rtol=1e-6, atol=1e-9)


def test_reference_cases_reject_and_correct_something():
    """The LL cases above are not vacuous: the selection changes the value."""
    x, y = _batch(0, extra_positives=2)
    an = ref_loss(x, y, 'an')
    for kind, kw in [('ll_r', {'r': 0.1}), ('ll_ct', {'r': 0.1}), ('ll_cp', {'r': 0.2, 'delta': 0.1})]:
        assert abs(ref_loss(x, y, kind, **kw) - an) > 1e-3
    assert ref_loss(x, y, 'll_cp', r=0.0, delta=0.1) == an


def test_analytic_gradient_of_an():
    x, y = _batch(3)
    eps = 1e-5
    p, q = _sig(x), _sig(-x)
    # d/dx −log(σ(x)+ε) = −pq/(p+ε); d/dx −log(σ(−x)+ε) = pq/(q+ε)
    analytic = np.where(y == 1, -p * q / (p + eps), p * q / (q + eps)) / y.size
    grad = jax.grad(lambda z: single_positive_loss(z, y, 'an'))(jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(np.asarray(grad), analytic, rtol=1e-5, atol=1e-8)


def test_log_eps_zero_is_exact_log_sigmoid_and_stable_at_large_logits():
    x = jnp.array([[100.0, -100.0, 1e4, -1e4], [30.0, -30.0, 0.0, 88.0]])
    y = jnp.array([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0]])
    per = jnp.where(y == 1, jax.nn.softplus(-x), jax.nn.softplus(x))
    for kind in ('an', 'an_ls', 'wan', 'em', 'll_ct'):
        hp = {'log_eps': 0.0, 'rejection_rate': 0.2}
        value, grad = jax.value_and_grad(lambda z: single_positive_loss(z, y, kind, **hp))(x)
        assert np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(grad))), kind
    value = single_positive_loss(x, y, 'an', log_eps=0.0)
    np.testing.assert_allclose(float(value), float(per.mean()), rtol=1e-7)
    assert float(value) > 1e3  # −log σ(−1e4) = 1e4, not clipped
    # with log_eps the loss saturates at −log(ε) and its gradient vanishes
    sat = jax.grad(lambda z: single_positive_loss(z, y, 'an'))(x)
    assert abs(float(sat[0, 2])) < 1e-6
    big = single_positive_loss(jnp.array([[-1e4]]), jnp.array([[1.0]]), 'an')
    np.testing.assert_allclose(float(big), -math.log(1e-5), rtol=1e-6)
    # em_apl with soft labels and huge logits
    y_apl = jnp.array([[1.0, -0.3, 0.0, -0.0], [0.0, -0.9, 1.0, -1e-3]])
    v, g = jax.value_and_grad(lambda z: single_positive_loss(z, y_apl, 'em_apl', log_eps=0.0, beta=0.5))(x)
    assert np.isfinite(float(v)) and np.all(np.isfinite(np.asarray(g)))


def test_jit_and_traced_rejection_count():
    x, y = _batch(2, b=8, c=10)
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    for kind in single_positive.KINDS:
        hp = {'expected_positives': 2.0, 'rejection_rate': 0.15, 'delta_rel': 0.05}
        eager = single_positive_loss(x, y, kind, **hp)
        jitted = jax.jit(lambda a, b: single_positive_loss(a, b, kind, **hp))(x, y)
        np.testing.assert_allclose(float(jitted), float(eager), rtol=1e-6)
    for kind in single_positive.LL_KINDS:
        k = single_positive.rejected_count(kind, y.size, 0.15, None)
        traced = jax.jit(lambda a, b, n: single_positive_loss(a, b, kind, num_rejected=n))(x, y, k)
        static = single_positive_loss(x, y, kind, num_rejected=k)
        np.testing.assert_allclose(float(traced), float(static), rtol=1e-6)
        zero = jax.jit(lambda a, b, n: single_positive_loss(a, b, kind, num_rejected=n))(x, y, 0)
        np.testing.assert_allclose(float(zero), float(single_positive_loss(x, y, 'an')), rtol=1e-6)


def test_argument_errors():
    x, y = jnp.zeros((2, 3)), jnp.zeros((2, 3))
    with pytest.raises(ValueError, match='kind'):
        single_positive_loss(x, y, 'bce')
    with pytest.raises(TypeError, match='unknown hyper'):
        single_positive_loss(x, y, 'an', smoothing=0.1)
    with pytest.raises(ValueError, match='expected_positives'):
        single_positive_loss(x, y, 'epr')
    with pytest.raises(ValueError, match='rejection_rate'):
        single_positive_loss(x, y, 'll_r')
    with pytest.raises(ValueError, match=r'\[batch, classes\]'):
        single_positive_loss(x, y[:1], 'an')
    with pytest.raises(ValueError, match='config.train.single_positive.label_smoothing'):
        single_positive.check_hparams('an_ls', {'label_smoothing': 2.0})
    with pytest.raises(ValueError, match='config.train.single_positive.expected_positives'):
        single_positive.check_hparams('epr', {'expected_positives': 0.0})


def test_rejection_schedule_follows_the_reference_accumulation():
    # Kim et al.: clean_rate = 1, minus delta_rel after each epoch; k = ceil(B·C·(1 − clean_rate)).
    clean, ks = 1.0, []
    for _ in range(6):
        ks.append(math.ceil(640 * (1 - clean)))
        clean -= 0.1
    table = single_positive.rejected_per_epoch('ll_r', 640, 6, 0.0, 0.1)
    assert table.tolist() == ks == [0, 64, 128, 192, 256, 320]
    assert ks[3] == 192  # 1 − 0.7000000000000001 rounds below 0.3: ceil(3·0.1·640) would give 193
    assert single_positive.rejection_rate_at(0, 0.002) == 0.0
    assert single_positive.rejected_per_epoch('ll_r', 640, 3, 0.0, 0.002).tolist() == [0, 2, 3]
    # a starting rate rejects from the first epoch; LL-Cp corrects ceil(delta·B·C) after the first epoch
    assert single_positive.rejected_per_epoch('ll_ct', 64, 3, 0.05, 0.01).tolist() == [4, 4, 5]
    assert single_positive.rejected_per_epoch('ll_cp', 640, 4, 0.0, 0.002).tolist() == [0, 2, 2, 2]
    assert single_positive.rejected_per_epoch('ll_r', 10, 3, 0.0, 0.9).tolist() == [0, 9, 10]  # clipped


def test_step_loss_switches_rejection_on_after_the_first_epoch():
    x, y = _batch(4, b=8, c=10)
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    hp = {
        'log_eps': 1e-5,
        'rejection_rate': 0.0,
        'delta_rel': 0.05,
        'warmup_epochs': 2,
        'neg_proportion': 0.9,
    }
    step_loss = jax.jit(single_positive.make_step_loss('ll_ct', hp, steps_per_epoch=5, num_epochs=4))
    an = float(single_positive_loss(x, y, 'an'))
    np.testing.assert_allclose(float(step_loss(x, y, 4)[0]), an, rtol=1e-6)  # epoch 0
    for step, epoch in [(5, 1), (12, 2), (40, 3)]:  # steps past the last epoch keep its rate
        k = math.ceil(80 * single_positive.rejection_rate_at(epoch, 0.05))
        expected = float(single_positive_loss(x, y, 'll_ct', num_rejected=k))
        np.testing.assert_allclose(float(step_loss(x, y, step)[0]), expected, rtol=1e-6)
        assert abs(expected - an) > 1e-4
    cp = jax.jit(single_positive.make_step_loss('ll_cp', hp, steps_per_epoch=5, num_epochs=4))
    assert not np.asarray(cp(x, y, 3)[1]['corrections']).any()
    assert int(np.asarray(cp(x, y, 7)[1]['corrections']).sum()) == math.ceil(80 * 0.05) - 1


def test_ll_cp_rewrite_matches_reference_selection():
    x, y = _batch(5, b=8, c=10, extra_positives=3)
    eps = 1e-5
    loss = np.where(y == 1, -np.log(_sig(x) + eps), -np.log(_sig(-x) + eps))
    u = (y == 0) * loss
    k = math.ceil(80 * 0.1)
    tau = np.sort(u.ravel())[::-1][k - 1]
    expected = y.copy()
    expected[u > tau] = 1.0  # Kim et al.: label_matrix_obs[correction_idx] = 1 with u > tau (strict)
    got = single_positive.ll_cp_rewrite(
        jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), delta_rel=0.1
    )
    np.testing.assert_array_equal(np.asarray(got), expected)
    assert (expected != y).sum() == k - 1
    assert np.all(np.asarray(got)[y == 1] == 1)


def test_apl_selection():
    probs = np.array(
        [[0.9, 0.2, 0.05], [0.1, 0.8, 0.3], [0.3, 0.1, 0.3], [0.05, 0.6, 0.01], [0.2, 0.2, 0.7]], np.float32
    )
    observed = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 0], [0, 0, -0.5]], np.float32)
    counts = single_positive.apl_counts((observed == 0).sum(0), 0.9, num_epochs=4, warmup_epochs=2)
    assert counts.tolist() == [int(0.9 * 4 / 2), int(0.9 * 3 / 2), int(0.9 * 3 / 2)] == [1, 1, 1]
    got = np.asarray(single_positive.apl_select(probs, observed, np.array([2, 2, 1])))
    expected = observed.copy()
    expected[3, 0], expected[1, 0] = -0.05, -0.1  # class 0: the two lowest unobserved
    expected[2, 1], expected[0, 1] = -0.1, -0.2  # class 1: 0.1 then the tie 0.2 / 0.2 goes to row 0
    expected[3, 2] = -0.01  # class 2: row 4 (already pseudo-labelled) and row 2 (positive) are not candidates
    np.testing.assert_allclose(got, expected)
    again = np.asarray(single_positive.apl_select(probs, got, np.array([1, 1, 1])))
    assert (again != got).sum() == 3
    np.testing.assert_allclose([again[4, 0], again[4, 1], again[0, 2]], [-0.2, -0.2, -0.05])
    with pytest.raises(ValueError, match='warmup_epochs'):
        single_positive.apl_counts([3], 0.9, num_epochs=3, warmup_epochs=3)
