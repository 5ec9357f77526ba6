"""Linen EfficientNet-B0 with torchvision's topology (`torchvision.models.efficientnet_b0`).

EfficientNet: Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks", ICML 2019.
A 3x3/2 stem conv (32 channels), seven stages of MBConv blocks (1x1 expand, kxk depthwise, squeeze-and-
excitation, 1x1 project; residual with stochastic depth where stride 1 and channels match), a 1x1 conv to
1280 channels, global average pooling, dropout and a Linear classifier. Convs pad (k - 1) // 2 symmetrically,
have no bias (except the SE 1x1 convs), BN eps 1e-5 and momentum 0.1 (torch terms), activation SiLU. Total
stride 32; any input size runs (stride-2 convs round up).

Parameter names are torchvision's module paths with `.<index>` -> `_<index>`: `features_0_0` (stem conv),
`features_0_1` (its BN), `features_<s>_<b>/block_<k>_0|1` (the block's convs and BNs),
`features_<s>_<b>/block_<k>/fc1|fc2` (SE), `features_8_0|1`, except that the classifier Linear
(`classifier.1`) is `fc`, the classifier name every method relies on (`models.torchvision` maps it).

`width` (32, the stem's channels) scales every layer's channels by width / 32 with torchvision's rounding to
multiples of 8 (`_make_divisible`), so small presets stay EfficientNet-shaped; torchvision's B0 is width 32.

Interface: as `models.resnet`; the dropout before `fc` is the head dropout of MC dropout, and the dense
output is `fc` at every location of the last feature map (its spatial mean equals the logits).
Stochastic depth (rate 0.2 * block index / 16, torchvision's) draws from the 'dropout' rng stream in
training mode only.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from mlrelabel.models import layers

# (expand_ratio, kernel, stride, input_channels, out_channels, num_layers): torchvision's B0 table.
B0_STAGES = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)
_EPS = 1e-5


def make_divisible(value: float, divisor: int = 8) -> int:
    """torchvision's `_make_divisible`: the nearest multiple of `divisor`, not below 90% of `value`."""
    out = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * value else out


def _conv_bn(
    parent: nn.Module,
    name: str,
    x: jax.Array,
    features: int,
    kernel: int,
    train: bool,
    *,
    stride: int = 1,
    groups: int = 1,
    act: bool = True,
) -> jax.Array:
    """torchvision's `Conv2dNormActivation` as two siblings `<name>_0` (conv) and `<name>_1` (BN)."""
    dtype = parent.dtype
    x = layers.conv2d(
        features,
        kernel,
        stride=stride,
        padding=(kernel - 1) // 2,
        groups=groups,
        dtype=dtype,
        name=f'{name}_0',
    )(x)
    x = layers.batch_norm(train, _EPS, dtype, name=f'{name}_1')(x)
    return nn.silu(x) if act else x


class SqueezeExcitation(nn.Module):
    """torchvision's SqueezeExcitation: mean-pool, fc1 (1x1 conv, bias), SiLU, fc2, sigmoid, scale."""

    squeeze: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        s = jnp.mean(x.astype(jnp.float32), axis=(1, 2), keepdims=True).astype(self.dtype)
        s = nn.silu(layers.conv2d(self.squeeze, 1, use_bias=True, dtype=self.dtype, name='fc1')(s))
        s = layers.conv2d(x.shape[-1], 1, use_bias=True, dtype=self.dtype, name='fc2')(s)
        return x * nn.sigmoid(s)


class MBConv(nn.Module):
    """torchvision's MBConv: `[B, H, W, in] -> [B, H/s, W/s, out]`; its layers are `block_<k>`."""

    expand_ratio: int
    kernel: int
    stride: int
    out_channels: int
    drop_rate: float  # stochastic depth
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        in_channels, k = x.shape[-1], 0
        expanded = make_divisible(in_channels * self.expand_ratio)
        y = x
        if expanded != in_channels:
            y = _conv_bn(self, f'block_{k}', y, expanded, 1, train)
            k += 1
        y = _conv_bn(self, f'block_{k}', y, expanded, self.kernel, train, stride=self.stride, groups=expanded)
        y = SqueezeExcitation(max(1, in_channels // 4), dtype=self.dtype, name=f'block_{k + 1}')(y)
        y = _conv_bn(self, f'block_{k + 2}', y, self.out_channels, 1, train, act=False)
        if self.stride != 1 or in_channels != self.out_channels:
            return y
        if train and self.drop_rate > 0.0:  # torchvision's StochasticDepth(mode='row')
            survive = 1.0 - self.drop_rate
            keep = jax.random.bernoulli(self.make_rng('dropout'), survive, (y.shape[0], 1, 1, 1))
            y = y * keep.astype(y.dtype) / survive
        return y + x


class EfficientNet(layers.PooledClassifier):
    """EfficientNet-B0 classifier; see the module docstring for the interface and parameter names.

    Attributes:
      num_classes: C, classifier outputs.
      width: the stem's channels (32); every layer scales by width / 32.
      dropout_rate: dropout before `fc` (torchvision: 0.2).
      stochastic_depth_prob: the last block's stochastic-depth rate (torchvision: 0.2).
      dtype: compute dtype; params, BN statistics, pooling and logits are float32.
    """

    num_classes: int
    width: int = 32
    dropout_rate: float = 0.2
    stochastic_depth_prob: float = 0.2
    dtype: Any = jnp.float32

    @property
    def num_features(self) -> int:
        return 4 * make_divisible(B0_STAGES[-1][4] * self.width / 32)

    def setup(self):
        self.head_dropout = nn.Dropout(rate=self.dropout_rate)
        self.fc = layers.dense(
            self.num_classes,
            self.num_features,
            kernel_init=layers.uniform(1.0 / math.sqrt(self.num_classes)),  # torchvision's init_range
            bias_init=nn.initializers.zeros,
        )
        scale = self.width / 32
        self.features_0_0 = layers.conv2d(
            make_divisible(32 * scale), 3, stride=2, padding=1, dtype=self.dtype
        )
        self.features_0_1 = nn.BatchNorm(momentum=layers.BN_MOMENTUM, epsilon=_EPS, dtype=self.dtype)
        total, index, names = sum(s[-1] for s in B0_STAGES), 0, []
        for stage, (expand, kernel, stride, _, out, count) in enumerate(B0_STAGES):
            for b in range(count):
                name = f'features_{stage + 1}_{b}'
                block = MBConv(
                    expand,
                    kernel,
                    stride if b == 0 else 1,
                    make_divisible(out * scale),
                    self.stochastic_depth_prob * index / total,
                    self.dtype,
                )
                setattr(self, name, block)
                names.append(name)
                index += 1
        self.block_names = tuple(names)
        self.features_8_0 = layers.conv2d(self.num_features, 1, dtype=self.dtype)
        self.features_8_1 = nn.BatchNorm(momentum=layers.BN_MOMENTUM, epsilon=_EPS, dtype=self.dtype)

    def feature_map(self, images: jax.Array, train: bool = False) -> jax.Array:
        """The 1x1 head conv's output `[B, ceil(H/32), ceil(W/32), F]` float32."""
        layers.check_images(images, 'EfficientNet')
        x = self.features_0_0(images.astype(self.dtype))
        x = nn.silu(self.features_0_1(x, use_running_average=not train))
        for name in self.block_names:
            x = getattr(self, name)(x, train)
        x = self.features_8_0(x)
        return nn.silu(self.features_8_1(x, use_running_average=not train)).astype(jnp.float32)


def build_efficientnet(name: str, num_classes: int, **options: Any) -> EfficientNet:
    """`efficientnet_b0` with options width, dropout_rate, stochastic_depth_prob, dtype."""
    return EfficientNet(num_classes=num_classes, **options)
