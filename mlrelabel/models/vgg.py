"""Linen VGG-16, with and without batch norm, with torchvision's topology (`torchvision.models.vgg16[_bn]`).

VGG: Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition", ICLR 2015.
Five stages of 3x3 convs (pad 1, with bias; with batch norm: conv, BN eps 1e-5, relu) each ending in a 2x2/2
max-pool, an adaptive average pool to 7x7 (at 32 px the 1x1 map is repeated, at 224 px it is the identity),
the map flattened in torch's channel-major order, then the classifier Linear(512*49, 4096) - relu - dropout -
Linear(4096, 4096) - relu - dropout - Linear(4096, C). Inputs are NHWC floats; those under 32 px (the smallest
torchvision's VGG takes; e.g. the relabel loop's crops at 0.7 x a 32 px image) are first resized up to 32 px.

Parameter names are torchvision's module paths with `.<index>` -> `_<index>`: `features_0` ... `features_28`
(`features_43` with batch norm), `classifier_0`, `classifier_3`, except that the last Linear
(`classifier.6`) is `fc`, the classifier name every method relies on (`models.torchvision` maps it).

`width` (64) scales every stage (width * (1, 2, 4, 8, 8)) and the classifier's hidden size (64 * width), so
small presets stay VGG-shaped; torchvision's network is width 64.

Interface: as `models.resnet` (`__call__(x, train, dense, dropout)`, `feature_map`, `embed`, `classify`).
`embed` is the flattened 7x7 map and `classify` the whole classifier (both dropouts), so MC dropout samples
both dropout layers, and `__call__(x, dropout=True) == classify(embed(x), dropout=True)` for one key.

Dense output: the classifier is fully connected over the 7x7 grid, so `dense=True` applies it at every
location of the last feature map `[B, h, w, F]` as if the whole 7x7 grid held that location's features
(the first Linear's kernel summed over its 49 positions, the rest unchanged): `[B, h, w, C]`. Where the map
is 1x1 (32 px inputs) this equals the logits; elsewhere its mean does not (the classifier is not linear).
Dropout masks in dense mode are drawn as in `classify` and shared by all locations.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mlrelabel.models import layers

POOLED = 7  # torchvision's AdaptiveAvgPool2d((7, 7))
MIN_SIDE = 32  # five 2x2 max-pools; smaller inputs are resized up to it
_LINEAR_INIT = nn.initializers.normal(0.01)  # torchvision VGG: nn.init.normal_(m.weight, 0, 0.01), bias 0


def _adaptive_matrix(size: int, out: int) -> np.ndarray:
    """`[out, size]` averaging weights of torch's adaptive average pooling along one axis."""
    m = np.zeros((out, size), np.float32)
    for i in range(out):
        start, end = (i * size) // out, -(-((i + 1) * size) // out)
        m[i, start:end] = 1.0 / (end - start)
    return m


def adaptive_avg_pool(x: jax.Array, out: int) -> jax.Array:
    """`F.adaptive_avg_pool2d(x, out)` on NHWC: `[B, H, W, F] -> [B, out, out, F]`."""
    mh, mw = _adaptive_matrix(x.shape[1], out), _adaptive_matrix(x.shape[2], out)
    return jnp.einsum('ih,jw,nhwc->nijc', mh, mw, x.astype(jnp.float32))


class TiledLinear(nn.Module):
    """`torch.nn.Linear` (params `kernel [in, out]`, `bias`) whose input may also be given as one feature
    vector repeated `repeats` times in channel-major order (`tiled`), without building the repeated vector."""

    features: int
    fan_in: int

    def setup(self):
        self.kernel = self.param('kernel', _LINEAR_INIT, (self.fan_in, self.features), jnp.float32)
        self.bias = self.param('bias', nn.initializers.zeros, (self.features,), jnp.float32)

    def __call__(self, x: jax.Array) -> jax.Array:
        return x.astype(jnp.float32) @ self.kernel + self.bias

    def tiled(self, x: jax.Array, repeats: int) -> jax.Array:
        """`self(x_rep)` where `x_rep[..., c * repeats + k] = x[..., c]`: `[..., fan_in / repeats] -> [..., out]`."""
        summed = self.kernel.reshape(x.shape[-1], repeats, self.features).sum(axis=1)
        return x.astype(jnp.float32) @ summed + self.bias


class VGG(nn.Module):
    """VGG classifier; see the module docstring for the interface and parameter names.

    Attributes:
      stage_sizes: 3x3 convs per stage, (2, 2, 3, 3, 3) for VGG-16.
      num_classes: C, classifier outputs.
      batch_norm: a BN after every conv (vgg16_bn).
      width: channels of the first stage (64); see the module docstring.
      dropout_rate: the rate of the classifier's two dropouts (torchvision: 0.5).
      dtype: compute dtype of the convs; params, BN statistics and the classifier are float32.
    """

    stage_sizes: Sequence[int]
    num_classes: int
    batch_norm: bool = False
    width: int = 64
    dropout_rate: float = 0.5
    dtype: Any = jnp.float32

    @property
    def num_features(self) -> int:
        """F, the channels of the last feature map; the embedding has F * 49."""
        return self.width * 8

    @property
    def hidden(self) -> int:
        return 64 * self.width

    def setup(self):
        convs, index = [], 0
        for stage, size in enumerate(self.stage_sizes):
            for _ in range(size):
                conv = layers.conv2d(
                    self.width * min(2**stage, 8), 3, padding=1, use_bias=True, dtype=self.dtype
                )
                bn = (
                    nn.BatchNorm(
                        momentum=layers.BN_MOMENTUM, epsilon=1e-5, dtype=self.dtype, param_dtype=jnp.float32
                    )
                    if self.batch_norm
                    else None
                )
                setattr(self, f'features_{index}', conv)
                if bn is not None:
                    setattr(self, f'features_{index + 1}', bn)
                convs.append((f'features_{index}', f'features_{index + 1}' if bn is not None else None))
                index += 3 if self.batch_norm else 2  # conv, [bn], relu
            convs.append(None)  # max-pool
            index += 1
        self.layout = tuple(convs)
        fan_in = self.num_features * POOLED * POOLED
        self.classifier_0 = TiledLinear(self.hidden, fan_in)
        self.classifier_3 = TiledLinear(self.hidden, self.hidden)
        self.fc = TiledLinear(self.num_classes, self.hidden)
        self.drop1 = nn.Dropout(rate=self.dropout_rate)
        self.drop2 = nn.Dropout(rate=self.dropout_rate)

    def feature_map(self, images: jax.Array, train: bool = False) -> jax.Array:
        """The last stage's pooled output `[B, H/32, W/32, F]` float32."""
        layers.check_images(images, 'VGG')
        x = layers.upscale_to(images, MIN_SIDE).astype(self.dtype)
        for entry in self.layout:
            if entry is None:
                x = layers.max_pool(x, 2, 2)
                continue
            conv, bn = entry
            x = getattr(self, conv)(x)
            if bn is not None:
                x = getattr(self, bn)(x, use_running_average=not train)
            x = nn.relu(x)
        return x.astype(jnp.float32)

    def embed(self, images: jax.Array, train: bool = False) -> jax.Array:
        """The 7x7 adaptive-pooled map flattened channel-major (torch's order), `[B, F * 49]` float32."""
        pooled = adaptive_avg_pool(self.feature_map(images, train), POOLED)
        return pooled.transpose(0, 3, 1, 2).reshape(pooled.shape[0], -1)

    def _masks(self, batch: int, active: bool) -> tuple[jax.Array, jax.Array] | None:
        if not active or self.dropout_rate <= 0.0:
            return None
        ones = jnp.ones((batch, self.hidden), jnp.float32)
        return self.drop1(ones, deterministic=False), self.drop2(ones, deterministic=False)

    def classify(self, features: jax.Array, dropout: bool = False) -> jax.Array:
        """The classifier with its dropouts (if `dropout`, rng stream 'dropout'): `[B, F * 49] -> [B, C]`."""
        masks = self._masks(features.shape[0], dropout)
        x = nn.relu(self.classifier_0(features))
        x = x * masks[0] if masks else x
        x = nn.relu(self.classifier_3(x))
        x = x * masks[1] if masks else x
        return self.fc(x)

    def __call__(
        self, images: jax.Array, train: bool = False, dense: bool = False, dropout: bool | None = None
    ) -> jax.Array:
        """Logits `[B, C]` float32, or with `dense=True` class maps `[B, h, w, C]` (module docstring)."""
        active = train if dropout is None else bool(dropout)
        if not dense:
            return self.classify(self.embed(images, train=train), dropout=active)
        fmap = self.feature_map(images, train=train)
        masks = self._masks(fmap.shape[0], active)
        x = nn.relu(self.classifier_0.tiled(fmap, POOLED * POOLED))
        x = x * masks[0][:, None, None, :] if masks else x
        x = nn.relu(self.classifier_3(x))
        x = x * masks[1][:, None, None, :] if masks else x
        return self.fc(x)


STAGES = {'vgg16': (2, 2, 3, 3, 3), 'vgg16_bn': (2, 2, 3, 3, 3)}


def build_vgg(name: str, num_classes: int, **options: Any) -> VGG:
    """`vgg16` / `vgg16_bn` with options width, dropout_rate, dtype (checked by `models.zoo.get_model`)."""
    return VGG(stage_sizes=STAGES[name], num_classes=num_classes, batch_norm=name.endswith('_bn'), **options)
