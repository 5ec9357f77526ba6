"""Linen ResNet family with torchvision's (v1.5) topology, small CPU presets, and `get_resnet`.

ResNet: He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016.
The v1.5 variant (stride on the 3x3 conv of the bottleneck instead of the first 1x1) is the one
torchvision ships; we follow it exactly so torchvision ImageNet weights can be imported and give the
same outputs: explicit symmetric conv padding (7x7/2 pad 3, 3x3 pad 1, 1x1 pad 0), 3x3/2 max-pool
with padding 1 (padded with -inf, like PyTorch), convs without bias, BatchNorm eps 1e-5 and momentum
0.9 in flax terms (= 0.1 in torch terms), a final Dense with bias. Images are NHWC:
`[batch, height, width, 3]`, float.

Parameter names and the torchvision `state_dict` mapping
--------------------------------------------------------
Module paths equal torchvision's module paths with every `.<index>` replaced by `_<index>`
(i.e. `re.sub(r"\\.(\\d+)", r"_\\1", torch_module_path)` and `.` -> `/`):

    torchvision key                         flax variable                                  transform
    conv1.weight            [O, I, kh, kw]  params/conv1/kernel             [kh, kw, I, O]  transpose(2, 3, 1, 0)
    bn1.weight / bn1.bias                   params/bn1/scale / bias                          as is
    bn1.running_mean / running_var          batch_stats/bn1/mean / var                       as is
    bn1.num_batches_tracked                 (dropped)
    layer{i}.{j}.conv{k}.weight             params/layer{i}_{j}/conv{k}/kernel               transpose(2, 3, 1, 0)
    layer{i}.{j}.bn{k}.*                    params|batch_stats/layer{i}_{j}/bn{k}/*          as bn1
    layer{i}.{j}.downsample.0.weight        params/layer{i}_{j}/downsample_0/kernel          transpose(2, 3, 1, 0)
    layer{i}.{j}.downsample.1.*             params|batch_stats/layer{i}_{j}/downsample_1/*   as bn1
    fc.weight               [C, F]          params/fc/kernel                [F, C]          transpose(1, 0)
    fc.bias                                 params/fc/bias                                   as is

`head_dropout` (the dropout before `fc`) has no parameters. Remember that torchvision weights expect
inputs normalised with the ImageNet mean/std (done in the train step, not here).

Interface (setup-based so several methods share the same submodules):

    variables = model.init(rng, images, train=False)                 # {'params', 'batch_stats'}
    logits = model.apply(variables, images)                          # [B, C] float32
    logits, upd = model.apply(variables, images, train=True, mutable=['batch_stats'],
                              rngs={'dropout': key})
    dense = model.apply(variables, images, dense=True)               # [B, h, w, C] float32
    feats = model.apply(variables, images, method='embed')           # [B, F] float32
    fmap = model.apply(variables, images, method='feature_map')      # [B, h, w, F] float32
    logits = model.apply(variables, feats, method='classify', dropout=True, rngs={'dropout': key})

The dropout mask is drawn by the single `head_dropout` submodule in every path, so for one key
`__call__(x, dropout=True)` == `classify(embed(x), dropout=True)` bit for bit (MC dropout relies on
it), and with `dense=True` the same per-channel mask is broadcast over all locations, so the spatial
mean of the dense map still equals the logits.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from mlrelabel.models import conv, layers

_BN_MOMENTUM = 0.9  # flax convention: ra = m * ra + (1 - m) * batch; torch momentum 0.1
_BN_EPSILON = 1e-5

# torchvision: nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu") -> N(0, 2 / fan_out),
# untruncated; fan_out = out_channels * kh * kw, which is what flax computes for an HWIO kernel.
_CONV_INIT = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def _torch_linear_init(fan_in: int) -> tuple[Callable, Callable]:
    """torch.nn.Linear default init: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)

    def uniform(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return uniform, uniform


def _conv(features: int, kernel: int, stride: int, dtype: Any, name: str | None) -> nn.Conv:
    """Bias-free conv with torchvision's symmetric padding `kernel // 2` (name None inside setup)."""
    pad = kernel // 2
    return nn.Conv(
        features,
        (kernel, kernel),
        strides=(stride, stride),
        padding=((pad, pad), (pad, pad)),
        use_bias=False,
        kernel_init=_CONV_INIT,
        dtype=dtype,
        param_dtype=jnp.float32,
        conv_general_dilated=conv.conv_general_dilated,  # fast on the 2x2 maps of small crops on CPU
        name=name,
    )


def _batch_norm(train: bool | None, dtype: Any, name: str | None, zero_scale: bool = False) -> nn.BatchNorm:
    """BatchNorm with torch's eps/momentum; params and running statistics stay float32.

    `train=None` leaves the mode to be passed at call time (`use_running_average=`).
    """
    return nn.BatchNorm(
        use_running_average=None if train is None else not train,
        momentum=_BN_MOMENTUM,
        epsilon=_BN_EPSILON,
        dtype=dtype,
        param_dtype=jnp.float32,
        scale_init=nn.initializers.zeros if zero_scale else nn.initializers.ones,
        bias_init=nn.initializers.zeros,
        name=name,
    )


class _Block(nn.Module):
    """What both residual blocks share: their fields and the shortcut (identity, or a strided 1x1 conv + BN
    where the shape changes) added before the last ReLU."""

    planes: int
    stride: int = 1
    downsample: bool = False
    zero_init_residual: bool = False
    dtype: Any = jnp.float32

    def _add_shortcut(self, y: jax.Array, x: jax.Array, train: bool) -> jax.Array:
        if self.downsample:
            x = _conv(y.shape[-1], 1, self.stride, self.dtype, "downsample_0")(x)
            x = _batch_norm(train, self.dtype, "downsample_1")(x)
        return nn.relu(y + x)


class BasicBlock(_Block):
    """Two 3x3 convs + identity (resnet18/34). `[B, H, W, C_in] -> [B, H/s, W/s, planes]`."""

    expansion = 1

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        y = _conv(self.planes, 3, self.stride, self.dtype, "conv1")(x)
        y = nn.relu(_batch_norm(train, self.dtype, "bn1")(y))
        y = _conv(self.planes, 3, 1, self.dtype, "conv2")(y)
        y = _batch_norm(train, self.dtype, "bn2", zero_scale=self.zero_init_residual)(y)
        return self._add_shortcut(y, x, train)


class Bottleneck(_Block):
    """1x1 reduce, 3x3 (carries the stride: v1.5), 1x1 expand x4 (resnet50/101/152).

    `[B, H, W, C_in] -> [B, H/s, W/s, 4 * planes]`.
    """

    expansion = 4

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        y = _conv(self.planes, 1, 1, self.dtype, "conv1")(x)
        y = nn.relu(_batch_norm(train, self.dtype, "bn1")(y))
        y = _conv(self.planes, 3, self.stride, self.dtype, "conv2")(y)
        y = nn.relu(_batch_norm(train, self.dtype, "bn2")(y))
        y = _conv(self.planes * self.expansion, 1, 1, self.dtype, "conv3")(y)
        y = _batch_norm(train, self.dtype, "bn3", zero_scale=self.zero_init_residual)(y)
        return self._add_shortcut(y, x, train)


_BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(layers.PooledClassifier):
    """ResNet classifier; see the module docstring for the interface and parameter names.

    Attributes:
      stage_sizes: blocks per stage, e.g. (3, 4, 6, 3).
      block: 'basic' (BasicBlock) or 'bottleneck' (Bottleneck, expansion 4).
      num_classes: C, classifier outputs.
      width: channels of the stem and of the first stage's `planes`; stage k uses width * 2**k.
      small_stem: 3x3 stride-1 conv + BN + relu and no max-pool (small images), instead of the
        7x7/2 conv + 3x3/2 max-pool ImageNet stem.
      stem_stride: overrides the stem conv's stride (0 = 1 for the small stem, 2 for ImageNet's); a small
        stem with stride 2 quarters the cost of every stage on 32-64 px images.
      dropout_rate: dropout on the pooled features before `fc` (0 disables it).
      dtype: compute dtype (e.g. jnp.bfloat16); params, BN statistics, pooling and logits are float32.
      zero_init_residual: initialise the last BN scale of every block to 0 (Goyal et al. 2017,
        "Accurate, Large Minibatch SGD"), so each block starts as the identity.
    """

    stage_sizes: Sequence[int]
    block: str
    num_classes: int
    width: int = 64
    small_stem: bool = False
    stem_stride: int = 0
    dropout_rate: float = 0.0
    dtype: Any = jnp.float32
    zero_init_residual: bool = False

    @property
    def num_features(self) -> int:
        """F, the channel count of the final feature map / pooled embedding."""
        return self.width * 2 ** (len(self.stage_sizes) - 1) * _BLOCKS[self.block].expansion

    def setup(self):
        if self.block not in _BLOCKS:
            raise ValueError(f"ResNet.block: expected one of {sorted(_BLOCKS)}, got {self.block!r}")
        block_cls = _BLOCKS[self.block]
        stem_kernel, stem_stride = (3, 1) if self.small_stem else (7, 2)
        stem_stride = self.stem_stride or stem_stride
        self.conv1 = _conv(self.width, stem_kernel, stem_stride, self.dtype, None)
        # Built once in setup, so bn1 receives the train/eval mode at call time.
        self.bn1 = _batch_norm(None, self.dtype, None)
        names = []
        in_channels = self.width
        for stage, num_blocks in enumerate(self.stage_sizes):
            planes = self.width * 2**stage
            for index in range(num_blocks):
                stride = 2 if (stage > 0 and index == 0) else 1
                out_channels = planes * block_cls.expansion
                name = f"layer{stage + 1}_{index}"
                setattr(
                    self,
                    name,
                    block_cls(
                        planes=planes,
                        stride=stride,
                        downsample=stride != 1 or in_channels != out_channels,
                        zero_init_residual=self.zero_init_residual,
                        dtype=self.dtype,
                    ),
                )
                names.append(name)
                in_channels = out_channels
        self.block_names = tuple(names)
        self.head_dropout = nn.Dropout(rate=self.dropout_rate)
        kernel_init, bias_init = _torch_linear_init(self.num_features)
        self.fc = nn.Dense(
            self.num_classes,
            dtype=jnp.float32,
            param_dtype=jnp.float32,
            kernel_init=kernel_init,
            bias_init=bias_init,
        )

    def _backbone(self, images: jax.Array, train: bool) -> jax.Array:
        """`[B, H, W, 3]` float -> `[B, h, w, F]` in the compute dtype."""
        if images.ndim != 4:
            raise ValueError(
                f"ResNet: expected images [batch, height, width, channels], got shape {images.shape}"
            )
        if not jnp.issubdtype(images.dtype, jnp.floating):
            raise TypeError(f"ResNet: expected floating-point images (normalised), got dtype {images.dtype}")
        x = self.conv1(images)
        x = nn.relu(self.bn1(x, use_running_average=not train))
        if not self.small_stem:
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        for name in self.block_names:
            x = getattr(self, name)(x, train=train)
        return x

    def feature_map(self, images: jax.Array, train: bool = False) -> jax.Array:
        """Backbone output before pooling, `[B, h, w, F]` float32."""
        return self._backbone(images, train).astype(jnp.float32)


# name -> (block, stage_sizes, default options)
_CONFIGS: dict[str, tuple[str, tuple[int, ...], dict[str, Any]]] = {
    "resnet18": ("basic", (2, 2, 2, 2), {}),
    "resnet34": ("basic", (3, 4, 6, 3), {}),
    "resnet50": ("bottleneck", (3, 4, 6, 3), {}),
    "resnet101": ("bottleneck", (3, 4, 23, 3), {}),
    "resnet152": ("bottleneck", (3, 8, 36, 3), {}),
    "resnet_tiny": ("basic", (1, 1, 1, 1), {"width": 16, "small_stem": True}),
    "resnet_small": ("basic", (2, 2, 2, 2), {"width": 16, "small_stem": True}),
}

MODEL_NAMES: tuple[str, ...] = tuple(_CONFIGS)

_OPTIONS = ("width", "small_stem", "stem_stride", "dropout_rate", "dtype", "zero_init_residual")


def get_resnet(name: str, num_classes: int, **options: Any) -> ResNet:
    """Build a ResNet by name.

    Args:
      name: one of MODEL_NAMES.
      num_classes: C >= 1.
      **options: width (int, default 64 or the preset's), small_stem (bool), stem_stride (int, 0 = the
        stem's own), dropout_rate (float in
        [0, 1)), dtype (compute dtype), zero_init_residual (bool).
    Raises:
      ValueError: unknown name or option, or an invalid value.
    """
    if name not in _CONFIGS:
        raise ValueError(f"get_resnet: unknown model {name!r}; valid names: {', '.join(MODEL_NAMES)}")
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise ValueError(
            f"get_resnet({name!r}): unknown option(s) {unknown}; valid options: {', '.join(_OPTIONS)}"
        )
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"get_resnet({name!r}): num_classes must be a positive int, got {num_classes!r}")
    block, stage_sizes, defaults = _CONFIGS[name]
    kwargs = {**defaults, **options}
    width = kwargs.get("width", 64)
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"get_resnet({name!r}): width must be a positive int, got {width!r}")
    rate = float(kwargs.get("dropout_rate", 0.0))
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"get_resnet({name!r}): dropout_rate must be in [0, 1), got {rate!r}")
    kwargs["dropout_rate"] = rate
    return ResNet(stage_sizes=stage_sizes, block=block, num_classes=num_classes, **kwargs)
