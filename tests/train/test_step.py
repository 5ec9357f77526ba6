"""The train step (`mlrelabel.train.step`): the loss floor is the least loss on soft targets."""

import numpy as np


def test_loss_floor_is_the_least_loss_on_soft_targets():
    import jax
    import jax.numpy as jnp

    from mlrelabel import losses
    from mlrelabel.train.step import loss_floor

    target = jnp.array([[0.7, 0.3, 0.0], [0.0, 0.5, 0.5]])
    for name, best in (('softmax_ce', jnp.log(jnp.clip(target, 1e-7))), ('sigmoid_bce', None)):
        floor = float(loss_floor(name, target))
        if best is None:
            t = jnp.clip(target, 1e-7, 1 - 1e-7)
            best = jnp.log(t) - jnp.log1p(-t)
        np.testing.assert_allclose(float(losses.get_loss(name)(best, target).mean()), floor, rtol=1e-4)
        other = best + jax.random.normal(jax.random.key(1), best.shape)
        assert float(losses.get_loss(name)(other, target).mean()) > floor
    assert float(loss_floor('softmax_ce', jnp.eye(3))) < 1e-5  # one-hot targets: no floor
    # Softmax and soft-target CE normalise each row, so a blended multi-hot row's floor is that of the
    # normalised row: [1, 1, 0.5] -> [0.4, 0.4, 0.2].
    multi_hot = jnp.array([[1.0, 1.0, 0.5]])
    for name in ('softmax_ce', 'soft_ce'):
        p = multi_hot / multi_hot.sum()
        np.testing.assert_allclose(
            float(loss_floor(name, multi_hot)), float(-(p * jnp.log(p)).sum()), rtol=1e-5
        )
        best = losses.get_loss(name)(jnp.log(p), multi_hot).mean()
        np.testing.assert_allclose(float(best), float(loss_floor(name, multi_hot)), rtol=1e-4)
