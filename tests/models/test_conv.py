"""The tiny-map convolution rewrite (mlrelabel/models/conv.py) equals XLA's convolution, forward and backward."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from mlrelabel.models import conv

DN = ('NHWC', 'HWIO', 'NHWC')


def _reference(x, w, padding):
    return lax.conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=DN)


def _ours(x, w, padding):
    return conv.conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=DN)


@pytest.mark.parametrize(
    'side,kernel,padding',
    [(1, 3, ((1, 1), (1, 1))), (2, 3, ((1, 1), (1, 1))), (2, 3, ((0, 2), (1, 0))), (2, 1, ((0, 0), (0, 0)))],
)
def test_matches_xla_convolution_forward_and_backward(side, kernel, padding):
    kx, kw, kg = jax.random.split(jax.random.PRNGKey(0), 3)
    x = jax.random.normal(kx, (5, side, side, 6))
    w = jax.random.normal(kw, (kernel, kernel, 6, 4))
    ours, ref = _ours(x, w, padding), _reference(x, w, padding)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)
    cot = jax.random.normal(kg, ref.shape)
    g_ours = jax.grad(lambda x, w: jnp.vdot(_ours(x, w, padding), cot), argnums=(0, 1))(x, w)
    g_ref = jax.grad(lambda x, w: jnp.vdot(_reference(x, w, padding), cot), argnums=(0, 1))(x, w)
    for a, b in zip(g_ours, g_ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def _has_conv(fn, *args) -> bool:
    return 'conv_general_dilated' in str(jax.make_jaxpr(fn)(*args))


def test_rewrites_only_tiny_stride_one_maps():
    w = jnp.ones((3, 3, 4, 4))
    pad = ((1, 1), (1, 1))
    assert not _has_conv(lambda x: _ours(x, w, pad), jnp.ones((2, 2, 2, 4)))  # 2x2: one matrix product
    assert _has_conv(lambda x: _ours(x, w, pad), jnp.ones((2, 3, 3, 4)))  # larger maps: XLA's convolution
    strided = lambda x: conv.conv_general_dilated(x, w, (2, 2), pad, dimension_numbers=DN)  # noqa: E731
    assert _has_conv(strided, jnp.ones((2, 2, 2, 4)))
    nchw = lambda x: conv.conv_general_dilated(  # noqa: E731
        x, jnp.ones((4, 4, 3, 3)), (1, 1), pad, dimension_numbers=('NCHW', 'OIHW', 'NCHW')
    )
    assert _has_conv(nchw, jnp.ones((2, 4, 2, 2)))


def test_resnet_outputs_unchanged_on_small_crops(monkeypatch):
    """A ResNet whose last stage sees 2x2 maps gives XLA's outputs (the relabel pass's 28 px crops)."""
    from mlrelabel.models.resnet import get_resnet

    model = get_resnet('resnet_tiny', num_classes=3, small_stem=True, stem_stride=2)
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 28, 28, 3))
    variables = model.init(jax.random.PRNGKey(0), x)
    ours = model.apply(variables, x)
    monkeypatch.setattr(conv, 'conv_general_dilated', lax.conv_general_dilated)
    ref = model.apply(variables, x)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5)
