"""Import torchvision weights (a `state_dict`) into our Linen networks (ResNets, VGG-16[_bn], Inception-v3,
EfficientNet-B0), and export back.

The name mapping and the layout transforms are the table in `mlrelabel.models.resnet`'s docstring, for every
family: module paths with `.<index>` -> `_<index>` (Inception-v3's names are kept as they are), the final
Linear renamed `fc` (VGG's `classifier.6`, EfficientNet's `classifier.1`), conv weights
`[O, I/groups, kh, kw] -> [kh, kw, I/groups, O]`, linear weights `[C, F] -> [F, C]`, BN `weight/bias` ->
params `scale/bias`, `running_mean/var` -> batch_stats `mean/var`, `num_batches_tracked` dropped. Whether a
module's `weight` is a kernel or a BN scale is read from the model's own variables. The result is checked
against the structure and shapes of `get_model(name, ...)` (the width, stem and class count are read from
the weights), so a wrong architecture or a truncated file fails with the offending keys named.

A path is read with `torch.load(weights_only=True)` (torch is imported only then); `.npz` files and
in-memory mappings of numpy arrays need no torch.
"""

from __future__ import annotations

import os
import re
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from mlrelabel.models import zoo

__all__ = ['STEM_KEYS', 'flax_module', 'from_torchvision', 'head_key', 'load_state_dict', 'to_torchvision']

_BN_FIELDS = {
    'weight': ('params', 'scale'),
    'bias': ('params', 'bias'),
    'running_mean': ('batch_stats', 'mean'),
    'running_var': ('batch_stats', 'var'),
}


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A `state_dict` file -> `{key: numpy array}`: `.npz` directly, else `torch.load` (needs torch).

    Checkpoints that wrap the weights (`{'state_dict': ...}`, `{'model': ...}`) and DataParallel
    `module.` prefixes are unwrapped.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f'from_torchvision: no such weights file {path!r}')
    if path.endswith('.npz'):
        with np.load(path) as f:
            return {k: np.asarray(f[k]) for k in f.files}
    try:
        import torch
    except ImportError as e:
        raise ImportError(
            f'from_torchvision({path!r}): reading a PyTorch file needs torch (pip install torch), or convert it '
            'once elsewhere to .npz: np.savez(out, **{k: v.numpy() for k, v in state_dict.items()})'
        ) from e
    obj = torch.load(path, map_location='cpu', weights_only=True)
    for key in ('state_dict', 'model'):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping):
        raise ValueError(
            f'from_torchvision({path!r}): expected a state_dict mapping, got {type(obj).__name__}'
        )
    return {k: v.detach().cpu().numpy() for k, v in obj.items() if hasattr(v, 'detach')}


def _numbered(module: str) -> str:
    """torch module path -> flax: every `.<index>` becomes `_<index>` ('layer1.0.conv1' -> 'layer1_0.conv1')."""
    return re.sub(r'\.(\d+)', r'_\1', module)


def _dotted(module: str) -> str:
    """The inverse of `_numbered` ('features_1_0.block_1.fc1' -> 'features.1.0.block.1.fc1')."""
    return re.sub(r'_(\d+)(?=_\d|\.|$)', r'.\1', module)


def _identity(module: str) -> str:
    return module


# family -> (torchvision's name of the final Linear, torch -> flax module path, flax -> torch module path).
# Every network names its final Linear `fc` in flax (the classifier the methods look up).
_RENAMES = {
    'resnet': ('fc', _numbered, _dotted),
    'vgg': ('classifier.6', _numbered, _dotted),
    'efficientnet': ('classifier.1', _numbered, _dotted),
    'inception': ('fc', _identity, _identity),  # 'branch3x3_1' is a name, not an index
}
# family -> (the first conv's torch key, whose output channels are the `width` option).
STEM_KEYS = {
    'resnet': 'conv1.weight',
    'vgg': 'features.0.weight',
    'efficientnet': 'features.0.0.weight',
    'inception': 'Conv2d_1a_3x3.conv.weight',
}


def head_key(name: str) -> str:
    """torchvision's module path of the final Linear of network `name` ('fc', 'classifier.6', ...)."""
    return _RENAMES[zoo.family(name)][0]


def flax_module(torch_module: str, name: str) -> tuple[str, ...]:
    """The flax module path of torchvision's module `torch_module` in network `name` ('conv1' -> ('conv1',))."""
    return _flax_module(torch_module, zoo.family(name))


def _flax_module(key_module: str, fam: str) -> tuple[str, ...]:
    head, to_flax, _ = _RENAMES[fam]
    return ('fc',) if key_module == head else tuple(to_flax(key_module).split('.'))


def _torch_module(path: list[str], fam: str) -> str:
    head, _, to_torch = _RENAMES[fam]
    return head if path == ['fc'] else to_torch('.'.join(path))


def _flax_path(key: str, fam: str, leaves: dict) -> tuple[str, tuple[str, ...], str] | None:
    """torchvision key -> (collection, flax path, transform) or None for dropped keys; KeyError when the key
    has no place in the model (`leaves`: the model's flax module path -> its parameter leaf names)."""
    module, _, leaf = key.rpartition('.')
    if leaf == 'num_batches_tracked':
        return None
    parts = _flax_module(module, fam)
    names = leaves.get(parts, ())
    if 'kernel' in names and leaf in ('weight', 'bias'):
        return (
            'params',
            parts + ('kernel' if leaf == 'weight' else 'bias',),
            'weight' if leaf == 'weight' else 'none',
        )
    if 'scale' in names and leaf in _BN_FIELDS:
        collection, name = _BN_FIELDS[leaf]
        return collection, parts + (name,), 'none'
    raise KeyError(key)


def _transform(value: np.ndarray, kind: str, key: str) -> np.ndarray:
    value = np.asarray(value, np.float32)
    if kind == 'weight':  # conv [O, I/groups, kh, kw] -> [kh, kw, I/groups, O]; linear [C, F] -> [F, C]
        if value.ndim not in (2, 4):
            raise ValueError(
                f'from_torchvision: {key} must be a conv weight [O, I, kh, kw] or a linear weight [C, F], '
                f'got {value.shape}'
            )
        return np.ascontiguousarray(value.T if value.ndim == 2 else value.transpose(2, 3, 1, 0))
    return value


def from_torchvision(state_dict: str | os.PathLike | Mapping[str, Any], name: str, **options) -> dict:
    """torchvision weights -> `{'params', 'batch_stats'}` (numpy) for `get_model(name, ...)`.

    Args:
      state_dict: a path (`.pth`/`.pt` via torch, or `.npz`) or a mapping `key -> array` (numpy or
        anything `np.asarray` takes, e.g. CPU tensors).
      name: our model name (`models.MODEL_NAMES`) the weights belong to.
      **options: get_model options that the weights cannot tell (e.g. `stem_stride`); `width`, ResNet's
        `small_stem`, Inception's `aux_logits` and `num_classes` are read from the weights. With
        `aux_logits=False`, Inception's `AuxLogits.*` keys are dropped (as torchvision does).
    Raises:
      KeyError / ValueError naming unexpected, missing or mis-shaped keys.
    """
    fam = zoo.family(name)
    if isinstance(state_dict, (str, os.PathLike)):
        state_dict = load_state_dict(state_dict)
    if not isinstance(state_dict, Mapping):
        raise TypeError(f'from_torchvision: expected a path or a mapping, got {type(state_dict).__name__}')
    sd = {k[len('module.') :] if k.startswith('module.') else k: v for k, v in state_dict.items()}
    head = head_key(name) + '.weight'
    for required in (STEM_KEYS[fam], head):
        if required not in sd:
            raise KeyError(f'from_torchvision: the state_dict has no {required!r} (is it a {name}?)')
    stem = np.shape(sd[STEM_KEYS[fam]])
    inferred: dict[str, Any] = {'width': int(stem[0])}
    if fam == 'resnet':
        inferred['small_stem'] = stem[-1] == 3
    if fam == 'inception':
        inferred['aux_logits'] = 'AuxLogits.fc.weight' in sd
    options = {**inferred, **options}
    if fam == 'inception' and not options['aux_logits']:
        sd = {k: v for k, v in sd.items() if not k.startswith('AuxLogits.')}
    model = zoo.get_model(name, int(np.shape(sd[head])[0]), **options)
    side = 299 if fam == 'inception' else 32  # shapes only: the auxiliary head needs a 299 px input
    expected = jax.eval_shape(
        lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, side, side, 3), jnp.float32), train=False)
    )
    return _fill(sd, expected, name, fam, options['width'])


def _fill(sd: Mapping, expected: Mapping, name: str, fam: str, width: int) -> dict:
    """Places every key of `sd` at its variable of `expected` (shapes), checking that all are covered."""
    want, leaves = {}, {}
    for c in ('params', 'batch_stats'):
        for path, leaf in jax.tree_util.tree_flatten_with_path(expected.get(c, {}))[0]:
            names = tuple(str(getattr(p, 'key', p)) for p in path)
            want[(c,) + names] = leaf.shape
            leaves.setdefault(names[:-1], set()).add(names[-1])
    out: dict = {c: {} for c in ('params', 'batch_stats') if c in expected}  # vgg16 has no batch_stats
    seen, unexpected = set(), []
    for key, value in sd.items():
        try:
            mapped = _flax_path(key, fam, leaves)
        except KeyError:
            unexpected.append(key)
            continue
        if mapped is None:
            continue
        collection, path, kind = mapped
        full = (collection,) + path
        if full not in want:
            unexpected.append(key)
            continue
        array = _transform(value, kind, key)
        if array.shape != want[full]:
            raise ValueError(
                f'from_torchvision({name!r}): {key} has shape {np.shape(value)} -> {array.shape}, '
                f'but {"/".join(full)} needs {want[full]}'
            )
        node = out[collection]
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = array
        seen.add(full)
    missing = sorted('/'.join(k) for k in set(want) - seen)
    if unexpected or missing:
        raise KeyError(
            f'from_torchvision({name!r}, width={width}): unexpected keys {unexpected[:8]}'
            f'{"..." if len(unexpected) > 8 else ""}; missing variables {missing[:8]}{"..." if len(missing) > 8 else ""}'
        )
    return out


def _family_of(params: Mapping) -> str:
    """The family of a variable tree, by its first layer's name."""
    for fam, first in (
        ('vgg', 'features_0'),
        ('efficientnet', 'features_0_0'),
        ('inception', 'Conv2d_1a_3x3'),
    ):
        if first in params:
            return fam
    return 'resnet'


def to_torchvision(variables: Mapping) -> dict[str, np.ndarray]:
    """The inverse of `from_torchvision`: our `{'params', 'batch_stats'}` (any family) -> a torchvision-style
    `{key: numpy array}` (no `num_batches_tracked`); e.g. to save as `.npz` or load into torch."""
    inverse_bn = {v: k for k, v in _BN_FIELDS.items()}
    fam = _family_of(variables.get('params', {}))
    out = {}
    for collection in ('params', 'batch_stats'):
        for path, leaf in jax.tree_util.tree_flatten_with_path(variables.get(collection, {}))[0]:
            names = [str(getattr(p, 'key', p)) for p in path]
            module = _torch_module(names[:-1], fam)
            value = np.asarray(leaf, np.float32)
            leafname = names[-1]
            if leafname == 'kernel':
                value = value.T if value.ndim == 2 else value.transpose(3, 2, 0, 1)
                leafname = 'weight'
            elif (collection, leafname) in inverse_bn:
                leafname = inverse_bn[(collection, leafname)]
            out[f'{module}.{leafname}'] = np.ascontiguousarray(value)
    return out
