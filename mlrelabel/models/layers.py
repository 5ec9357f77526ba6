"""Layers shared by the VGG, Inception-v3 and EfficientNet ports: PyTorch-style convs (explicit symmetric
padding), batch norm with torch's momentum, and torch's default initialisers, so torchvision weights give the
same outputs once imported (`models.torchvision`)."""

from __future__ import annotations

import math
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from mlrelabel.models import conv as fast_conv

BN_MOMENTUM = 0.9  # flax convention: ra = m * ra + (1 - m) * batch; torch momentum 0.1

# nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu"): N(0, 2 / fan_out), untruncated.
KAIMING_FAN_OUT = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def conv2d(
    features: int,
    kernel: int | tuple[int, int],
    *,
    stride: int = 1,
    padding: int | tuple[int, int] = 0,
    groups: int = 1,
    use_bias: bool = False,
    kernel_init: Callable = KAIMING_FAN_OUT,
    dtype: Any = jnp.float32,
    name: str | None = None,
) -> nn.Conv:
    """`torch.nn.Conv2d(..., kernel, stride, padding, groups, bias)` in NHWC: symmetric explicit padding."""
    ph, pw = _pair(padding)
    return nn.Conv(
        features,
        _pair(kernel),
        strides=_pair(stride),
        padding=((ph, ph), (pw, pw)),
        feature_group_count=groups,
        use_bias=use_bias,
        kernel_init=kernel_init,
        bias_init=nn.initializers.zeros,
        dtype=dtype,
        param_dtype=jnp.float32,
        conv_general_dilated=fast_conv.conv_general_dilated,
        name=name,
    )


def batch_norm(train: bool, epsilon: float, dtype: Any, name: str | None = None) -> nn.BatchNorm:
    """`torch.nn.BatchNorm2d(eps=epsilon)` (momentum 0.1); params and running statistics stay float32."""
    return nn.BatchNorm(
        use_running_average=not train,
        momentum=BN_MOMENTUM,
        epsilon=epsilon,
        dtype=dtype,
        param_dtype=jnp.float32,
        name=name,
    )


def uniform(bound: float) -> Callable:
    """U(-bound, bound), the shape of torch.nn.Linear's default init."""

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def dense(
    features: int,
    fan_in: int,
    *,
    kernel_init: Callable | None = None,
    bias_init: Callable | None = None,
    name: str | None = None,
) -> nn.Dense:
    """`torch.nn.Linear(fan_in, features)` in float32; default init U(+-1/sqrt(fan_in)) as torch's."""
    bound = 1.0 / math.sqrt(fan_in)
    return nn.Dense(
        features,
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        kernel_init=kernel_init or uniform(bound),
        bias_init=bias_init or uniform(bound),
        name=name,
    )


def max_pool(x: jax.Array, window: int, stride: int) -> jax.Array:
    """`F.max_pool2d(x, window, stride)` without padding (floor mode)."""
    return nn.max_pool(x, (window, window), strides=(stride, stride), padding='VALID')


def avg_pool_same3(x: jax.Array) -> jax.Array:
    """`F.avg_pool2d(x, 3, stride=1, padding=1)`: zero padding counted in the mean (count_include_pad)."""
    return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), count_include_pad=True)


def upscale_to(images: jax.Array, min_side: int) -> jax.Array:
    """Images with a side under `min_side` resized (bilinear) so that both sides are at least `min_side`;
    others unchanged. Lets a network whose stem needs `min_side` px score the relabel loop's smaller crops."""
    h, w = images.shape[1:3]
    if min(h, w) >= min_side:
        return images
    shape = (images.shape[0], max(h, min_side), max(w, min_side), images.shape[3])
    return jax.image.resize(images.astype(jnp.float32), shape, method='linear').astype(images.dtype)


def check_images(images: jax.Array, network: str) -> None:
    if images.ndim != 4:
        raise ValueError(
            f'{network}: expected images [batch, height, width, channels], got shape {images.shape}'
        )
    if not jnp.issubdtype(images.dtype, jnp.floating):
        raise TypeError(f'{network}: expected floating-point images (normalised), got dtype {images.dtype}')


class PooledClassifier(nn.Module):
    """The head every network here shares: global average pooling of `feature_map`, dropout (`head_dropout`,
    rng stream 'dropout') and the linear classifier `fc`. A subclass defines `feature_map`, `head_dropout`,
    `fc` and `dropout_rate`."""

    def embed(self, images: jax.Array, train: bool = False) -> jax.Array:
        """Globally average-pooled backbone features, `[B, F]` float32 (no dropout)."""
        return jnp.mean(self.feature_map(images, train), axis=(1, 2))

    def classify(self, features: jax.Array, dropout: bool = False) -> jax.Array:
        """Dropout (if `dropout`) + classifier: `[B, F] -> [B, C]` float32."""
        features = self.head_dropout(features.astype(jnp.float32), deterministic=not dropout)
        return self.fc(features)

    def __call__(
        self, images: jax.Array, train: bool = False, dense: bool = False, dropout: bool | None = None
    ) -> jax.Array:
        """Logits `[B, C]` float32, or with `dense=True` class maps `[B, h, w, C]` float32.

        `train` switches BN to batch statistics (needs `mutable=['batch_stats']`); `dropout=None` means dropout
        is active iff `train`. With `dense=True` the classifier runs at every location of the feature map (class
        activation maps, Zhou et al. 2016); by linearity their spatial mean equals the logits, also under
        dropout (one channel mask, drawn as `classify` draws it, shared by all locations).
        """
        active = train if dropout is None else bool(dropout)
        if not dense:
            return self.classify(self.embed(images, train=train), dropout=active)
        fmap = self.feature_map(images, train=train)
        if active and self.dropout_rate > 0.0:
            keep = self.head_dropout(
                jnp.ones(fmap.shape[:1] + fmap.shape[3:], jnp.float32), deterministic=False
            )
            fmap = fmap * keep[:, None, None, :]
        return self.fc(fmap)
