"""Every network by name: `get_model(name, num_classes, **options)` for the ResNets, VGG-16 (with and without
batch norm), Inception-v3 and EfficientNet-B0, each with torchvision's topology and parameter names.

Each family takes its own options (`OPTIONS`): `width` is the stem's channels in all of them (the first conv's
output: 64 for ResNet and VGG, 32 for Inception-v3 and EfficientNet-B0) and scales the network; the ResNets
alone have `small_stem` / `stem_stride`. The smallest image side each runs at is checked in config
validation (`validation.rules.model_min_side`).
"""

from __future__ import annotations

from typing import Any

from mlrelabel.models import efficientnet, inception, resnet, vgg

FAMILY = {
    **{n: 'resnet' for n in resnet.MODEL_NAMES},
    'vgg16': 'vgg',
    'vgg16_bn': 'vgg',
    'inception_v3': 'inception',
    'efficientnet_b0': 'efficientnet',
}
MODEL_NAMES: tuple[str, ...] = tuple(FAMILY)

OPTIONS = {
    'resnet': ('width', 'small_stem', 'stem_stride', 'dropout_rate', 'dtype', 'zero_init_residual'),
    'vgg': ('width', 'dropout_rate', 'dtype'),
    'inception': ('width', 'aux_logits', 'transform_input', 'dropout_rate', 'dtype'),
    'efficientnet': ('width', 'dropout_rate', 'stochastic_depth_prob', 'dtype'),
}
_BUILDERS = {
    'vgg': vgg.build_vgg,
    'inception': inception.build_inception,
    'efficientnet': efficientnet.build_efficientnet,
}


def family(name: str) -> str:
    """'resnet' | 'vgg' | 'inception' | 'efficientnet'; ValueError naming the valid names."""
    if name not in FAMILY:
        raise ValueError(f"get_model: unknown model {name!r}; valid names: {', '.join(MODEL_NAMES)}")
    return FAMILY[name]


def get_model(name: str, num_classes: int, **options: Any):
    """Build a network by name.

    Args:
      name: one of MODEL_NAMES.
      num_classes: C >= 1.
      **options: the family's `OPTIONS` (ResNets: see `models.resnet.get_resnet`; the others: width,
        dropout_rate in [0, 1), dtype; Inception-v3 also aux_logits (default True, as torchvision) and
        transform_input; EfficientNet-B0 also stochastic_depth_prob). Defaults are torchvision's.
    Raises:
      ValueError: unknown name or option, or an invalid value.
    """
    fam = family(name)
    if fam == 'resnet':
        return resnet.get_resnet(name, num_classes, **options)
    unknown = sorted(set(options) - set(OPTIONS[fam]))
    if unknown:
        raise ValueError(
            f'get_model({name!r}): unknown option(s) {unknown}; valid options: {", ".join(OPTIONS[fam])}'
        )
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f'get_model({name!r}): num_classes must be a positive int, got {num_classes!r}')
    width = options.get('width', 1)
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f'get_model({name!r}): width must be a positive int, got {width!r}')
    for field in ('dropout_rate', 'stochastic_depth_prob'):
        if field in options:
            rate = float(options[field])
            if not 0.0 <= rate < 1.0:
                raise ValueError(f'get_model({name!r}): {field} must be in [0, 1), got {options[field]!r}')
            options[field] = rate
    return _BUILDERS[fam](name, num_classes, **options)
