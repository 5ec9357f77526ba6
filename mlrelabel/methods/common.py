"""Edge helpers shared by the methods: datasets from the config, model and variables, evaluation closures."""

from __future__ import annotations

import importlib
import logging
import os

import jax
import jax.numpy as jnp
import numpy as np

from mlrelabel import evaluate, parallel
from mlrelabel.data import sources
from mlrelabel.models import get_model
from mlrelabel.train import loop

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


# Data sources implemented outside this module: `config.data.source` → 'module:function', where
# `function(config, workdir) -> {'train', 'val'[, 'test']}` returns Datasets.
EXTERNAL_SOURCES: dict[str, str] = {
    'folder': 'mlrelabel.data.imagenet:load_folder',
    'tfds': 'mlrelabel.data.imagenet:load_tfds',
    'annotation_folder': 'mlrelabel.data.formats:load_source',
    'attribute_csv': 'mlrelabel.data.formats:load_source',
    'partial_json': 'mlrelabel.data.formats:load_source',
}


def load_datasets(config, workdir: str) -> dict:
    """`{'train', 'val'[, 'test']}` Datasets for `config.data.source` ('digit_scenes', 'json' or a registered
    source of EXTERNAL_SOURCES)."""
    d = config.data
    if d.get('train_labels', 'visible') != 'visible' and d.source != 'digit_scenes':
        raise SystemExit(
            f'config.data.train_labels={d.train_labels!r}: only the digit_scenes source has hidden full label '
            "sets; use 'visible'"
        )
    if d.source in EXTERNAL_SOURCES:
        module, function = EXTERNAL_SOURCES[d.source].split(':')
        return getattr(importlib.import_module(module), function)(config, workdir)
    if d.source == 'digit_scenes':
        common = dict(
            image_size=d.image_size,
            min_digits=d.min_digits,
            max_digits=d.max_digits,
            min_scale=d.min_scale,
            max_scale=d.max_scale,
            visible=d.visible,
            layout=d.layout,
        )
        cache = os.path.join(workdir, 'data')
        sizes = {'train': d.num_train, 'val': d.num_val, 'test': d.num_test}
        out = {
            split: sources.digit_scenes_dataset(split, cache, num_images=n, seed=d.seed + i, **common)
            for i, (split, n) in enumerate(sizes.items())
            if n
        }
        train_labels = d.get('train_labels', 'visible')
        if train_labels == 'full':  # the full-label upper bound: train on the hidden label sets
            out['train'] = out['train'].with_labels(out['train'].truth)
        elif train_labels != 'visible':
            raise SystemExit(f"config.data.train_labels={train_labels!r}: expected 'visible' or 'full'")
        return out
    if d.source == 'json':
        if not d.train_json or not d.val_json:
            raise SystemExit(
                'config.data.source=json needs --config.data.train_json and --config.data.val_json'
            )
        out = {}
        for split, path in (('train', d.train_json), ('val', d.val_json)):
            ds, report = sources.load_image_dataset(
                path, d.image_size, num_classes=d.num_classes, root=d.root or None, check=d.check_images
            )
            if report['skipped']:
                logging.warning(
                    '%s: skipped %d of %d unreadable images', path, report['skipped'], report['total']
                )
            out[split] = ds
        return out
    raise SystemExit(
        f"config.data.source={d.source!r}: expected one of digit_scenes, json, {', '.join(EXTERNAL_SOURCES)}"
    )


def build_model(config, num_classes: int | None = None):
    m = config.model
    return get_model(
        m.name,
        num_classes or config.data.num_classes,
        width=m.width,
        small_stem=m.small_stem,
        stem_stride=m.stem_stride,
        dropout_rate=m.dropout_rate,
        dtype=DTYPES[m.dtype],
    )


def init_variables(model, config, seed: int) -> dict:
    """`{'params', 'batch_stats'}` as numpy, from `seed` through an `rbg` key.

    XLA's RngBitGenerator compiles in a fraction of the time threefry needs for a network's many kernel
    shapes (seconds instead of ~20 s on a 2-core CPU); init runs unsharded, so its bits are reproducible.
    """
    s = config.data.image_size
    key = jax.random.key(seed, impl='rbg')
    variables = jax.jit(lambda k: model.init(k, jnp.zeros((1, s, s, 3), jnp.float32), train=False))(key)
    return jax.tree.map(np.asarray, variables)


def make_eval_fn(model, dataset, config, mesh, head: str, prefix: str = 'val_'):
    """`eval_fn(state) -> {prefix + metric: value}` on `dataset` (the shared evaluation protocol)."""

    def eval_fn(state):
        logits = loop.predict(model, state.variables, dataset.images, len(dataset), config, mesh=mesh)
        return evaluate.evaluate_logits(logits, dataset, head, config.eval.threshold, prefix=prefix)

    return eval_fn


def mesh_from_config(config):
    mesh = parallel.make_mesh(config.parallel.num_devices)
    logging.info('mesh: %d devices (%s)', mesh.devices.size, jax.devices()[0].platform)
    return mesh


IMAGENET_SETS = ('real', 'multilabel', 'v2')


def imagenet_eval_sets(model, variables, config, mesh, head: str, workdir: str) -> dict:
    """The TFDS evaluation sets named in `config.eval.imagenet_sets` (ReaL, imagenet2012_multilabel,
    ImageNet-V2; mlrelabel.imagenet_eval), as `{'eval_' + metric: value}`; {} when none are named."""
    names = [s.strip() for s in config.eval.get('imagenet_sets', '').split(',') if s.strip()]
    unknown = sorted(set(names) - set(IMAGENET_SETS))
    if unknown:
        raise SystemExit(
            f'config.eval.imagenet_sets: unknown set(s) {unknown}; expected some of {IMAGENET_SETS}'
        )
    if not names:
        return {}
    from mlrelabel import imagenet_eval

    def predict_fn(images, n):
        logits = loop.predict(model, variables, images, n, config, mesh=mesh, desc='eval sets')
        return evaluate.probabilities(logits, head)

    out = imagenet_eval.evaluate_sets(
        predict_fn,
        config.data.image_size,
        sets=tuple(names),
        data_dir=config.data.get('tfds_data_dir', '') or None,
        cache_dir=os.path.join(workdir, 'data'),
        threshold=config.eval.threshold,
    )
    return {'eval_' + k: float(v) for k, v in out.items()}


def final_metrics(model, state, history, data, config, mesh, head: str, workdir: str) -> dict:
    """A run's final row: its last epoch's history row, the ImageNet sets of `config.eval.imagenet_sets`
    (`eval_*`) and, when the data has a test split, the shared protocol on it (`test_*`)."""
    final = dict(history[-1])
    final.update(imagenet_eval_sets(model, state.variables, config, mesh, head, workdir))
    if 'test' in data:
        final.update(make_eval_fn(model, data['test'], config, mesh, head, prefix='test_')(state))
    return final
