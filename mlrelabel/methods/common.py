"""Edge helpers shared by the methods: datasets from the config, model and variables, evaluation closures."""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mlrelabel import parallel, tensorboard_writer
from mlrelabel.data import checks, inspect, sources
from mlrelabel.errors import ConfigError, DataError
from mlrelabel.eval import evaluate
from mlrelabel.manifest import manifest_fields, write_manifest
from mlrelabel.models import get_model, zoo
from mlrelabel.train import inference, loop

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


# Data sources implemented outside this module: `config.data.source` → 'module:function', where
# `function(config, workdir) -> {'train', 'val'[, 'test']}` returns Datasets.
EXTERNAL_SOURCES: dict[str, str] = {
    'folder': 'mlrelabel.data.imagenet:load_folder',
    'tfds': 'mlrelabel.data.imagenet_tfds:load_tfds',
    'annotation_folder': 'mlrelabel.data.formats:load_source',
    'attribute_csv': 'mlrelabel.data.formats:load_source',
    'partial_json': 'mlrelabel.data.formats:load_source',
}
# Sources whose class ids are the order of sorted names (folders, annotation files, attribute columns).
SORTED_NAME_SOURCES = ('folder', 'annotation_folder', 'attribute_csv')
MAX_ANNOUNCED = 30  # class names on the run's first line


def load_datasets(config, workdir: str) -> dict:
    """`{'train', 'val'[, 'test']}` Datasets for `config.data.source` ('digit_scenes', 'json' or a registered
    source of EXTERNAL_SOURCES), checked by `mlrelabel.data.checks.check_splits` (no empty split, at least one
    training batch) before any training starts."""
    inspect.resolve_data_defaults(config)  # no-op once main has resolved them before claiming the workdir
    d = config.data
    if d.train_labels not in ('visible', 'full'):
        raise ConfigError(f"config.data.train_labels={d.train_labels!r}: expected 'visible' or 'full'")
    if d.given_noise and d.source != 'digit_scenes':
        raise ConfigError(
            f'config.data.given_noise={d.given_noise}: only the digit_scenes source simulates label noise; use 0'
        )
    if d.train_labels != 'visible' and d.source != 'digit_scenes':
        raise ConfigError(
            f'config.data.train_labels={d.train_labels!r}: only the digit_scenes source has hidden full label '
            "sets; use 'visible'"
        )
    where = {}
    if d.source in EXTERNAL_SOURCES:
        module, function = EXTERNAL_SOURCES[d.source].split(':')
        data = getattr(importlib.import_module(module), function)(config, workdir)
        where = {s: f"{d.train_path or d.root or d.source} ({s} split)" for s in data}
    elif d.source == 'digit_scenes':
        shared = ('image_size', 'min_digits', 'max_digits', 'min_scale', 'max_scale', 'visible', 'layout')
        common = {k: d[k] for k in shared}
        cache = os.path.join(workdir, 'data')
        sizes = {'train': d.num_train, 'val': d.num_val, 'test': d.num_test}
        data = {
            split: sources.digit_scenes_dataset(split, cache, num_images=n, seed=d.seed + i, **common)
            for i, (split, n) in enumerate(sizes.items())
            if n
        }
        if d.val_given == 'full':  # the validation labels a user with multi-label val has
            data['val'] = sources.with_full_labels(data['val'])
        if d.train_labels == 'full':  # the full-label upper bound: the hidden label sets
            data['train'] = sources.with_full_labels(data['train'])
        if d.given_noise:  # wrong given labels on a seeded fraction of the training images
            data['train'] = sources.with_noisy_labels(data['train'], d.given_noise, seed=d.seed)
    elif d.source == 'json':
        if not d.train_json or not d.val_json:
            raise ConfigError(
                'config.data.source=json needs --config.data.train_json and --config.data.val_json'
            )
        data = {}
        for split, path in (('train', d.train_json), ('val', d.val_json)):
            data[split], _ = sources.load_image_dataset(
                path, d.image_size, num_classes=d.num_classes, root=d.root or None, check=d.check_images
            )
            where[split] = path
        data['train'], data['val'] = shared_class_names(data['train'], data['val'], d.train_json, d.val_json)
    else:
        raise ConfigError(
            f"config.data.source={d.source!r}: expected one of digit_scenes, json, {', '.join(EXTERNAL_SOURCES)}"
        )
    checks.check_splits(data, config, where)
    checks.write_skipped(data, workdir)  # <workdir>/skipped.json: every image left out as unreadable
    announce_classes(data['train'], config)
    return data


def shared_class_names(train, val, train_file: str, val_file: str) -> tuple:
    """`(train, val)` with one class list: a file without names takes the other's; two different lists are
    refused (the same id would mean two classes)."""
    default = [str(c) for c in range(train.num_classes)]
    if val.class_names == default or val.class_names == train.class_names:
        return train, dataclasses.replace(val, class_names=train.class_names)
    if train.class_names == default:
        return dataclasses.replace(train, class_names=val.class_names), val
    diff = next(i for i, (a, b) in enumerate(zip(train.class_names, val.class_names)) if a != b)
    raise DataError(
        f'{val_file}: class {diff} is {val.class_names[diff]!r}, but {train_file} calls it '
        f'{train.class_names[diff]!r}: both splits must use the same class list'
    )


_ANNOUNCED: set = set()


def announce_classes(train, config) -> None:
    """One line at the start of a run: which class id is which name, for sources whose ids come from sorted
    names (folders, annotation files, attribute columns) or that named their classes."""
    names = list(train.class_names)
    if names == [str(c) for c in range(len(names))] or not parallel.is_main_process():
        return
    key = (config.data.source, tuple(names))
    if key in _ANNOUNCED:
        return
    _ANNOUNCED.add(key)
    order = 'sorted names' if config.data.source in SORTED_NAME_SOURCES else 'the label files'
    shown = ', '.join(f'{c}={n}' for c, n in enumerate(names[:MAX_ANNOUNCED]))
    more = f', ... ({len(names)} classes)' if len(names) > MAX_ANNOUNCED else ''
    print(f'mlrelabel: classes ({order}): {shown}{more}', file=sys.stderr)


def build_model(config, num_classes: int | None = None):
    """The network of `config.model` (`models.get_model`); the ResNet-only stem fields go to ResNets only."""
    m = config.model
    if m.name == 'auto':
        inspect.resolve_data_defaults(config)
    return get_model(m.name, num_classes or config.data.num_classes, **model_options(config))


def model_options(config) -> dict:
    """`get_model` options of `config.model` for its network's family (`models.zoo.OPTIONS`). Inception-v3 is
    built without its auxiliary head (the training loop has no auxiliary loss) and, as torchvision does, with
    `transform_input` when it starts from pretrained weights."""
    m = config.model
    accepted = zoo.OPTIONS[zoo.family(m.name)]
    options = {'dropout_rate': m.dropout_rate, 'dtype': DTYPES[m.dtype]}
    if m.width:
        options['width'] = m.width
    if 'small_stem' in accepted:
        options.update(small_stem=m.small_stem, stem_stride=m.stem_stride)
    if 'aux_logits' in accepted:
        options.update(aux_logits=False, transform_input=bool(m.get('pretrained', '')))
    return options


def init_variables(model, config, seed: int, pretrained: bool = True) -> dict:
    """`{'params', 'batch_stats'}` as numpy, from `seed` through an `rbg` key, or from the torchvision weights
    of `config.model.pretrained` when set and `pretrained` (False: a template to restore a checkpoint into).

    XLA's RngBitGenerator compiles in a fraction of the time threefry needs for a network's many kernel
    shapes (seconds instead of ~20 s on a 2-core CPU); init runs unsharded, so its bits are reproducible.
    """
    s = config.data.image_size
    key = jax.random.key(seed, impl='rbg')
    variables = jax.jit(lambda k: model.init(k, jnp.zeros((1, s, s, 3), jnp.float32), train=False))(key)
    variables = jax.tree.map(np.asarray, variables)
    if pretrained and config.model.pretrained:
        return pretrained_variables(variables, config)
    return variables


def pretrained_variables(fresh: dict, config) -> dict:
    """The torchvision weights of `config.model.pretrained` (a state_dict: .pth/.pt with torch, or .npz;
    or a published name such as 'torchvision:resnet50': its cached file, `models.weights.fetch_weights`) imported
    with `models.torchvision.from_torchvision` in place of `fresh` (the seeded init of the same model).

    The classifier is kept when it has the model's number of outputs, else `fresh`'s is used (a new task). Every
    other variable must match the configured model's structure and shapes; a mismatch (another depth, width or
    stem) names the file and the config fields to change.
    """
    from mlrelabel.models import torchvision as tv
    from mlrelabel.models import weights

    m = config.model
    path = m.pretrained
    if weights.is_weights_name(path):  # the cached file (launch.run_method fetched it before the run)
        path = weights.fetch_weights(path)
    sd = tv.load_state_dict(path) if isinstance(path, str) else dict(path)
    sd = {k[len('module.') :] if k.startswith('module.') else k: v for k, v in sd.items()}
    fam = zoo.family(m.name)
    stem_key = tv.STEM_KEYS[fam]
    fresh_stem = fresh['params']
    for part in tv.flax_module(stem_key.rpartition('.')[0], m.name):
        fresh_stem = fresh_stem[part]
    stem, want_stem = tuple(np.shape(sd.get(stem_key, ()))), np.shape(fresh_stem['kernel'])
    if len(stem) == 4 and (stem[0], stem[-1]) != (want_stem[3], want_stem[0]):
        fix = f'--config.model.width={stem[0]}' + (
            f' --config.model.small_stem={stem[-1] == 3}' if fam == 'resnet' else ''
        )
        raise ConfigError(
            f'config.model.pretrained={path!r}: its stem is a {stem[-1]}x{stem[-1]} conv with {stem[0]} channels, '
            f'but config.model.width={m.width}, small_stem={m.small_stem} build a {want_stem[0]}x{want_stem[0]} '
            f'conv with {want_stem[3]}: set {fix}'
        )
    fc, head = fresh['params']['fc'], tv.head_key(m.name)
    keep_fc = (
        f'{head}.weight' in sd
        and tuple(np.shape(sd[f'{head}.weight'])) == tuple(np.shape(fc['kernel']))[::-1]
    )
    if not keep_fc:
        sd = {k: v for k, v in sd.items() if not k.startswith(f'{head}.')}
        sd[f'{head}.weight'], sd[f'{head}.bias'] = np.asarray(fc['kernel']).T, np.asarray(fc['bias'])
    options = {k: v for k, v in model_options(config).items() if k in ('stem_stride', 'aux_logits')}
    try:
        loaded = tv.from_torchvision(sd, m.name, **options)
    except (KeyError, ValueError) as e:
        raise ConfigError(
            f'config.model.pretrained={path!r} does not fit config.model.name={m.name!r}: {e}'
        ) from e
    if jax.tree.map(np.shape, loaded) != jax.tree.map(np.shape, fresh):  # e.g. another stem stride
        raise ConfigError(
            f'config.model.pretrained={path!r}: its variables differ in shape from config.model.name={m.name!r} '
            'as configured (config.model.*)'
        )
    logging.info('weights from %s (classifier %s)', path, 'kept' if keep_fc else 'new')
    return loaded


def make_eval_fn(model, dataset, config, mesh, head: str, prefix: str = 'val_'):
    """`eval_fn(state) -> {prefix + metric: value}` on `dataset` (the shared evaluation protocol)."""

    def eval_fn(state):
        logits = inference.predict(model, state.variables, dataset.images, len(dataset), config, mesh=mesh)
        return evaluate.evaluate_logits(logits, dataset, head, config.eval.threshold, prefix=prefix)

    return eval_fn


@dataclasses.dataclass(frozen=True)
class ModelSetup:
    """What training and evaluating one model read: the network, the datasets (`'train'`, `'val'`, maybe
    `'test'`), the config (its `train` section for training) and the device mesh."""

    model: Any
    data: dict
    config: Any
    mesh: Any


def fit_validated(setup: ModelSetup, variables, ckpt_dir: str, *, loss=None, fit=None, **fit_kwargs):
    """Trains `setup.model` from `variables` on `data['train']` with `fit` (default `loop.fit`, which also gets
    `loss`), validating on `data['val']` with the head of `loss` (default `config.train.loss`). Returns
    `(state, history, head)`."""
    model, data, config, mesh = setup.model, setup.data, setup.config, setup.mesh
    head = evaluate.head_of(loss or config.train.loss)
    eval_fn = make_eval_fn(model, data['val'], config, mesh, head)
    if fit is None:
        fit, fit_kwargs = loop.fit, dict(fit_kwargs, loss=loss)
    state, history = fit(
        model, variables, data['train'], config, mesh=mesh, ckpt_dir=ckpt_dir, eval_fn=eval_fn, **fit_kwargs
    )
    return state, history, head


def mesh_from_config(config):
    mesh = parallel.make_mesh(config.parallel.num_devices)
    logging.info('mesh: %d devices (%s)', mesh.devices.size, jax.devices()[0].platform)
    return mesh


IMAGENET_SETS = ('real', 'multilabel', 'v2')


def imagenet_eval_sets(model, variables, config, mesh, head: str, workdir: str) -> dict:
    """The TFDS evaluation sets named in `config.eval.imagenet_sets` (ReaL, imagenet2012_multilabel,
    ImageNet-V2; mlrelabel.eval.imagenet_eval), as `{'eval_' + metric: value}`; {} when none are named."""
    names = [s.strip() for s in config.eval.imagenet_sets.split(',') if s.strip()]
    unknown = sorted(set(names) - set(IMAGENET_SETS))
    if unknown:
        raise ConfigError(
            f'config.eval.imagenet_sets: unknown set(s) {unknown}; expected some of {IMAGENET_SETS}'
        )
    if not names:
        return {}
    from mlrelabel.eval import imagenet_eval

    def predict_fn(images, n):
        logits = inference.predict(model, variables, images, n, config, mesh=mesh, desc='eval sets')
        return evaluate.probabilities(logits, head)

    out = imagenet_eval.evaluate_sets(
        predict_fn,
        config.data.image_size,
        sets=tuple(names),
        data_dir=config.data.tfds_data_dir or None,
        cache_dir=os.path.join(workdir, 'data'),
        threshold=config.eval.threshold,
    )
    return {'eval_' + k: float(v) for k, v in out.items()}


def final_metrics(setup: ModelSetup, state, history, head: str, workdir: str) -> dict:
    """A run's final row: its last epoch's history row, the ImageNet sets of `config.eval.imagenet_sets`
    (`eval_*`) and, when the data has a test split, the shared protocol on it (`test_*`)."""
    model, data, config, mesh = setup.model, setup.data, setup.config, setup.mesh
    final = dict(history[-1])
    final.update(imagenet_eval_sets(model, state.variables, config, mesh, head, workdir))
    if 'test' in data:
        final.update(make_eval_fn(model, data['test'], config, mesh, head, prefix='test_')(state))
    return final


def finish_single_model(workdir: str, config, result: dict, train, head: str, title: str, **manifest) -> None:
    """The outputs of a run that trains one model (supervised, MILe): `metrics.json` (`result`), the history
    plot `training.png`, the final table on stdout, then `record_run` with the training set's classes (and
    the extra `manifest` fields)."""
    from mlrelabel import report  # matplotlib: only where pictures are drawn
    from mlrelabel.io_utils import atomic_write_json

    final = result['final']
    if parallel.is_main_process():
        atomic_write_json(os.path.join(workdir, 'metrics.json'), result)
        report.plot_history(result['history'], os.path.join(workdir, 'training.png'), title=title)
        keys = [k for k in final if k.startswith(('val_', 'test_'))]
        print(report.format_table([final], ['epoch'] + keys))
    record_run(
        workdir,
        config,
        final,
        num_classes=train.num_classes,
        head=head,
        class_names=train.class_names,
        groups=train.groups,
        **manifest,
    )


def record_run(workdir: str, config, final: dict, **manifest) -> None:
    """A finished run's last records: its final metrics as TensorBoard points `final/*` at the end of its
    training, and `<workdir>/run.json` (`mlrelabel.manifest.manifest_fields(config, **manifest)`)."""
    tensorboard_writer.write_scalars(workdir, None, tensorboard_writer.scalar_tags(final, 'final'))
    write_manifest(workdir, manifest_fields(config, **manifest))
