"""Import torchvision ResNet weights (a `state_dict`) into our Linen ResNets, and export back.

The name mapping and the layout transforms are the table in `mlrelabel.models.resnet`'s docstring:
module paths with `.<index>` -> `_<index>`, conv weights `[O, I, kh, kw] -> [kh, kw, I, O]`,
`fc.weight [C, F] -> [F, C]`, BN `weight/bias` -> params `scale/bias`, `running_mean/var` ->
batch_stats `mean/var`, `num_batches_tracked` dropped. The result is checked against the structure
and shapes of `get_model(name, ...)` (the width, stem and class count are read from the weights), so
a wrong architecture or a truncated file fails with the offending keys named.

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

from mlrelabel.models.resnet import get_model

__all__ = ['from_torchvision', 'to_torchvision', 'load_state_dict']

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


def _flax_path(key: str) -> tuple[str, tuple[str, ...], str] | None:
    """torchvision key -> (collection, module path, transform) or None for dropped keys."""
    module, _, leaf = key.rpartition('.')
    if leaf == 'num_batches_tracked':
        return None
    parts = tuple(re.sub(r'\.(\d+)', r'_\1', module).split('.'))
    last = parts[-1]
    if last == 'fc':
        if leaf == 'weight':
            return 'params', parts + ('kernel',), 'linear'
        if leaf == 'bias':
            return 'params', parts + ('bias',), 'none'
    elif last.startswith('conv') or last == 'downsample_0':
        if leaf == 'weight':
            return 'params', parts + ('kernel',), 'conv'
    elif last.startswith('bn') or last == 'downsample_1':
        if leaf in _BN_FIELDS:
            collection, name = _BN_FIELDS[leaf]
            return collection, parts + (name,), 'none'
    raise KeyError(key)


def _transform(value: np.ndarray, kind: str, key: str) -> np.ndarray:
    value = np.asarray(value, np.float32)
    if kind == 'conv':
        if value.ndim != 4:
            raise ValueError(
                f'from_torchvision: {key} must be a 4-d conv weight [O, I, kh, kw], got {value.shape}'
            )
        return np.ascontiguousarray(value.transpose(2, 3, 1, 0))
    if kind == 'linear':
        if value.ndim != 2:
            raise ValueError(f'from_torchvision: {key} must be a 2-d linear weight [C, F], got {value.shape}')
        return np.ascontiguousarray(value.T)
    return value


def from_torchvision(state_dict: str | os.PathLike | Mapping[str, Any], name: str, **options) -> dict:
    """torchvision ResNet weights -> `{'params', 'batch_stats'}` (numpy) for `get_model(name, ...)`.

    Args:
      state_dict: a path (`.pth`/`.pt` via torch, or `.npz`) or a mapping `key -> array` (numpy or
        anything `np.asarray` takes, e.g. CPU tensors).
      name: our model name (resnet18/34/50/101/152, resnet_tiny, resnet_small) the weights belong to.
      **options: get_model options that the weights cannot tell (e.g. `stem_stride`); `width`,
        `small_stem` and `num_classes` are read from the weights.
    Raises:
      KeyError / ValueError naming unexpected, missing or mis-shaped keys.
    """
    if isinstance(state_dict, (str, os.PathLike)):
        state_dict = load_state_dict(state_dict)
    if not isinstance(state_dict, Mapping):
        raise TypeError(f'from_torchvision: expected a path or a mapping, got {type(state_dict).__name__}')
    sd = {k[len('module.') :] if k.startswith('module.') else k: v for k, v in state_dict.items()}
    for required in ('conv1.weight', 'fc.weight'):
        if required not in sd:
            raise KeyError(f'from_torchvision: the state_dict has no {required!r} (is it a ResNet?)')
    conv1 = np.shape(sd['conv1.weight'])
    num_classes = int(np.shape(sd['fc.weight'])[0])
    options = {'width': int(conv1[0]), 'small_stem': conv1[-1] == 3, **options}
    model = get_model(name, num_classes, **options)
    expected = jax.eval_shape(
        lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3), jnp.float32), train=False)
    )
    want = {
        (c,) + tuple(str(getattr(p, 'key', p)) for p in path): leaf.shape
        for c in ('params', 'batch_stats')
        for path, leaf in jax.tree_util.tree_flatten_with_path(expected.get(c, {}))[0]
    }
    out: dict = {'params': {}, 'batch_stats': {}}
    seen, unexpected = set(), []
    for key, value in sd.items():
        try:
            mapped = _flax_path(key)
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
            f'from_torchvision({name!r}, width={options["width"]}): unexpected keys {unexpected[:8]}'
            f'{"..." if len(unexpected) > 8 else ""}; missing variables {missing[:8]}{"..." if len(missing) > 8 else ""}'
        )
    return out


def to_torchvision(variables: Mapping) -> dict[str, np.ndarray]:
    """The inverse of `from_torchvision`: our `{'params', 'batch_stats'}` -> a torchvision-style
    `{key: numpy array}` (no `num_batches_tracked`); e.g. to save as `.npz` or load into torch."""
    inverse_bn = {v: k for k, v in _BN_FIELDS.items()}
    out = {}
    for collection in ('params', 'batch_stats'):
        for path, leaf in jax.tree_util.tree_flatten_with_path(variables.get(collection, {}))[0]:
            names = [str(getattr(p, 'key', p)) for p in path]
            module = '.'.join(re.sub(r'_(\d+)$', r'.\1', n) for n in names[:-1])
            value = np.asarray(leaf, np.float32)
            leafname = names[-1]
            if leafname == 'kernel':
                value = value.T if value.ndim == 2 else value.transpose(3, 2, 0, 1)
                leafname = 'weight'
            elif (collection, leafname) in inverse_bn:
                leafname = inverse_bn[(collection, leafname)]
            out[f'{module}.{leafname}'] = np.ascontiguousarray(value)
    return out
