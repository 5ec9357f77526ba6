"""Linen Inception-v3 with torchvision's topology (`torchvision.models.inception_v3`), auxiliary head optional.

Inception-v3: Szegedy, Vanhoucke, Ioffe, Shlens & Wojna, "Rethinking the Inception Architecture for Computer
Vision", CVPR 2016. Designed for 299 px inputs; runs from 75 px up (the stem's unpadded convs and pools and
the two unpadded stride-2 reductions): smaller inputs (e.g. the relabel loop's crops, 0.7 x the image side) are
first resized up to 75 px. Config validation still asks for data.image_size >= 75. Every conv is `BasicConv2d`: conv without bias, BN eps 1e-3, relu.
Pools: 3x3/2 max-pools without padding; the branch pools are 3x3/1 average pools with padding 1 that count
the padding (torch's default). After Mixed_7c: global average pool, dropout, `fc`.

Parameter names are torchvision's module paths (no renaming: `Conv2d_1a_3x3/conv`, `Mixed_5b/branch1x1/bn`,
`AuxLogits/conv0/conv`, `fc`).

`aux_logits` (torchvision's default True) adds the auxiliary classifier on Mixed_6e (`AuxLogits`); its
parameters exist for import/export and its logits come from `method='auxiliary'`; `__call__` returns the main
logits only (the training loop has no auxiliary loss). `transform_input` re-normalises ImageNet-normalised
inputs to the [-1, 1] scale Google's weights were trained with (torchvision sets it with pretrained weights).
`width` (32, the stem's channels) scales every layer's channels by width / 32.

Interface: as `models.resnet`: the dropout before `fc` is the head dropout of MC dropout; the dense output is
`fc` at every location of Mixed_7c's map (its spatial mean equals the logits).
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from mlrelabel.models import layers

MIN_SIDE = 75
_INIT = nn.initializers.normal(0.1)  # torchvision: trunc_normal_(std=0.1, a=-2, b=2), i.e. barely truncated


class BasicConv2d(nn.Module):
    """conv (no bias) `conv` + BN eps 1e-3 `bn` + relu."""

    features: int
    kernel: int | tuple[int, int]
    stride: int = 1
    padding: int | tuple[int, int] = 0
    stddev: float = 0.1
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        init = nn.initializers.normal(self.stddev)
        x = layers.conv2d(
            self.features,
            self.kernel,
            stride=self.stride,
            padding=self.padding,
            kernel_init=init,
            dtype=self.dtype,
            name='conv',
        )(x)
        return nn.relu(layers.batch_norm(train, 1e-3, self.dtype, name='bn')(x))


class _Block(nn.Module):
    """Base of the Inception blocks: `self.conv(name, features, kernel, ...)` builds a named BasicConv2d."""

    width: int = 32
    dtype: Any = jnp.float32

    def conv(self, name: str, features: int, kernel, stride: int = 1, padding=0) -> BasicConv2d:
        return _basic(self.width, self.dtype, name, features, kernel, stride, padding)


def _basic(width: int, dtype: Any, name: str | None, features: int, kernel, stride: int = 1, padding=0):
    """A BasicConv2d with `features` scaled by width / 32 (name None inside setup)."""
    return BasicConv2d(max(1, features * width // 32), kernel, stride, padding, dtype=dtype, name=name)


class InceptionA(_Block):
    pool_features: int = 32

    @nn.compact
    def __call__(self, x, train):
        b1 = self.conv('branch1x1', 64, 1)(x, train)
        b5 = self.conv('branch5x5_2', 64, 5, padding=2)(self.conv('branch5x5_1', 48, 1)(x, train), train)
        b3 = self.conv('branch3x3dbl_1', 64, 1)(x, train)
        b3 = self.conv('branch3x3dbl_2', 96, 3, padding=1)(b3, train)
        b3 = self.conv('branch3x3dbl_3', 96, 3, padding=1)(b3, train)
        bp = self.conv('branch_pool', self.pool_features, 1)(layers.avg_pool_same3(x), train)
        return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(_Block):
    @nn.compact
    def __call__(self, x, train):
        b3 = self.conv('branch3x3', 384, 3, stride=2)(x, train)
        bd = self.conv('branch3x3dbl_1', 64, 1)(x, train)
        bd = self.conv('branch3x3dbl_2', 96, 3, padding=1)(bd, train)
        bd = self.conv('branch3x3dbl_3', 96, 3, stride=2)(bd, train)
        return jnp.concatenate([b3, bd, layers.max_pool(x, 3, 2)], axis=-1)


class InceptionC(_Block):
    channels_7x7: int = 128

    @nn.compact
    def __call__(self, x, train):
        c7 = self.channels_7x7
        b1 = self.conv('branch1x1', 192, 1)(x, train)
        b7 = self.conv('branch7x7_1', c7, 1)(x, train)
        b7 = self.conv('branch7x7_2', c7, (1, 7), padding=(0, 3))(b7, train)
        b7 = self.conv('branch7x7_3', 192, (7, 1), padding=(3, 0))(b7, train)
        bd = self.conv('branch7x7dbl_1', c7, 1)(x, train)
        bd = self.conv('branch7x7dbl_2', c7, (7, 1), padding=(3, 0))(bd, train)
        bd = self.conv('branch7x7dbl_3', c7, (1, 7), padding=(0, 3))(bd, train)
        bd = self.conv('branch7x7dbl_4', c7, (7, 1), padding=(3, 0))(bd, train)
        bd = self.conv('branch7x7dbl_5', 192, (1, 7), padding=(0, 3))(bd, train)
        bp = self.conv('branch_pool', 192, 1)(layers.avg_pool_same3(x), train)
        return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(_Block):
    @nn.compact
    def __call__(self, x, train):
        b3 = self.conv('branch3x3_2', 320, 3, stride=2)(self.conv('branch3x3_1', 192, 1)(x, train), train)
        b7 = self.conv('branch7x7x3_1', 192, 1)(x, train)
        b7 = self.conv('branch7x7x3_2', 192, (1, 7), padding=(0, 3))(b7, train)
        b7 = self.conv('branch7x7x3_3', 192, (7, 1), padding=(3, 0))(b7, train)
        b7 = self.conv('branch7x7x3_4', 192, 3, stride=2)(b7, train)
        return jnp.concatenate([b3, b7, layers.max_pool(x, 3, 2)], axis=-1)


class InceptionE(_Block):
    @nn.compact
    def __call__(self, x, train):
        b1 = self.conv('branch1x1', 320, 1)(x, train)
        b3 = self.conv('branch3x3_1', 384, 1)(x, train)
        b3 = jnp.concatenate(
            [
                self.conv('branch3x3_2a', 384, (1, 3), padding=(0, 1))(b3, train),
                self.conv('branch3x3_2b', 384, (3, 1), padding=(1, 0))(b3, train),
            ],
            axis=-1,
        )
        bd = self.conv('branch3x3dbl_1', 448, 1)(x, train)
        bd = self.conv('branch3x3dbl_2', 384, 3, padding=1)(bd, train)
        bd = jnp.concatenate(
            [
                self.conv('branch3x3dbl_3a', 384, (1, 3), padding=(0, 1))(bd, train),
                self.conv('branch3x3dbl_3b', 384, (3, 1), padding=(1, 0))(bd, train),
            ],
            axis=-1,
        )
        bp = self.conv('branch_pool', 192, 1)(layers.avg_pool_same3(x), train)
        return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class InceptionAux(_Block):
    num_classes: int = 1000

    @nn.compact
    def __call__(self, x, train):
        x = nn.avg_pool(x, (5, 5), strides=(3, 3))
        x = self.conv('conv0', 128, 1)(x, train)
        x = BasicConv2d(max(1, 768 * self.width // 32), 5, stddev=0.01, dtype=self.dtype, name='conv1')(
            x, train
        )
        x = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
        fan_in = x.shape[-1]
        return layers.dense(self.num_classes, fan_in, kernel_init=nn.initializers.normal(0.001), name='fc')(x)


# (name, block class, extra attributes) after the stem, in order; AuxLogits branches off after Mixed_6e.
_MIXED: Sequence[tuple[str, type, dict]] = (
    ('Mixed_5b', InceptionA, {'pool_features': 32}),
    ('Mixed_5c', InceptionA, {'pool_features': 64}),
    ('Mixed_5d', InceptionA, {'pool_features': 64}),
    ('Mixed_6a', InceptionB, {}),
    ('Mixed_6b', InceptionC, {'channels_7x7': 128}),
    ('Mixed_6c', InceptionC, {'channels_7x7': 160}),
    ('Mixed_6d', InceptionC, {'channels_7x7': 160}),
    ('Mixed_6e', InceptionC, {'channels_7x7': 192}),
    ('Mixed_7a', InceptionD, {}),
    ('Mixed_7b', InceptionE, {}),
    ('Mixed_7c', InceptionE, {}),
)


class Inception3(layers.PooledClassifier):
    """Inception-v3 classifier; see the module docstring for the interface and parameter names.

    Attributes:
      num_classes: C, classifier outputs.
      width: the stem's channels (32); every layer scales by width / 32.
      aux_logits: build the auxiliary classifier `AuxLogits`.
      transform_input: map ImageNet-normalised inputs to Google's [-1, 1] normalisation first.
      dropout_rate: dropout before `fc` (torchvision: 0.5).
      dtype: compute dtype; params, BN statistics, pooling and logits are float32.
    """

    num_classes: int
    width: int = 32
    aux_logits: bool = True
    transform_input: bool = False
    dropout_rate: float = 0.5
    dtype: Any = jnp.float32

    @property
    def num_features(self) -> int:
        return 2048 * self.width // 32

    def setup(self):
        block = dict(width=self.width, dtype=self.dtype)
        self.Conv2d_1a_3x3 = _basic(self.width, self.dtype, None, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = _basic(self.width, self.dtype, None, 32, 3)
        self.Conv2d_2b_3x3 = _basic(self.width, self.dtype, None, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = _basic(self.width, self.dtype, None, 80, 1)
        self.Conv2d_4a_3x3 = _basic(self.width, self.dtype, None, 192, 3)
        for name, cls, extra in _MIXED:
            setattr(self, name, cls(**block, **extra))
        if self.aux_logits:
            self.AuxLogits = InceptionAux(**block, num_classes=self.num_classes)
        self.head_dropout = nn.Dropout(rate=self.dropout_rate)
        self.fc = layers.dense(self.num_classes, self.num_features, kernel_init=_INIT)

    def _to_6e(self, images: jax.Array, train: bool) -> jax.Array:
        layers.check_images(images, 'Inception3')
        x = layers.upscale_to(images, MIN_SIDE).astype(jnp.float32)
        if self.transform_input:  # torchvision's _transform_input: ImageNet mean/std -> (x - 0.5) / 0.5
            mean, std = jnp.array([0.485, 0.456, 0.406]), jnp.array([0.229, 0.224, 0.225])
            x = x * (std / 0.5) + (mean - 0.5) / 0.5
        x = x.astype(self.dtype)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x, train), train), train)
        x = layers.max_pool(x, 3, 2)
        x = layers.max_pool(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x, train), train), 3, 2)
        for name, _, _ in _MIXED[:8]:
            x = getattr(self, name)(x, train)
        return x

    def feature_map(self, images: jax.Array, train: bool = False) -> jax.Array:
        """Mixed_7c's output `[B, h, w, F]` float32 (8x8 at 299 px)."""
        x = self._to_6e(images, train)
        if self.aux_logits and self.is_initializing():  # creates AuxLogits' variables
            self.AuxLogits(x, train)
        for name, _, _ in _MIXED[8:]:
            x = getattr(self, name)(x, train)
        return x.astype(jnp.float32)

    def auxiliary(self, images: jax.Array, train: bool = False) -> jax.Array:
        """The auxiliary classifier's logits `[B, C]` float32 (needs `aux_logits`)."""
        if not self.aux_logits:
            raise ValueError('Inception3.auxiliary: the model was built with aux_logits=False')
        return self.AuxLogits(self._to_6e(images, train), train)


def build_inception(name: str, num_classes: int, **options: Any) -> Inception3:
    """`inception_v3` with options width, aux_logits, transform_input, dropout_rate, dtype."""
    return Inception3(num_classes=num_classes, **options)
