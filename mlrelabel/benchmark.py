"""Throughput benchmark: training, inference and relabel passes on synthetic on-device data.

  python -m mlrelabel.benchmark                       # CPU preset: the default digit-scenes model
  python -m mlrelabel.benchmark --preset=gpu          # ResNet-50, 224 px, bf16, large batch
  python -m mlrelabel.benchmark --preset=tiny         # seconds; what the tests run

Prints one line per measurement (images/s, and crops x samples / s for relabeling) and, with `--out`,
writes them as JSON. Timings exclude compilation (one warm-up call) and block on the results.
"""

from __future__ import annotations

import json
import platform
import time

import jax
import jax.numpy as jnp
import optax
from absl import app, flags

from mlrelabel import parallel
from mlrelabel.relabel import confidence, crops
from mlrelabel.train import augment
from mlrelabel.train.state import TrainState
from mlrelabel.train.step import make_train_step

PRESETS = {
    'tiny': dict(model='resnet_tiny', width=8, stem_stride=2, small_stem=True, image_size=32, batch=16,
                 crops=4, samples=4, dtype='float32', iters=3),
    'cpu': dict(model='resnet_tiny', width=16, stem_stride=2, small_stem=True, image_size=40, batch=64,
                crops=8, samples=16, dtype='float32', iters=10),
    'gpu': dict(model='resnet50', width=64, stem_stride=0, small_stem=False, image_size=224, batch=256,
                crops=8, samples=16, dtype='bfloat16', iters=30),
}

_PRESET = flags.DEFINE_enum('preset', 'cpu', list(PRESETS), 'Size preset.')
_BATCH = flags.DEFINE_integer('batch', 0, 'Override the preset batch size.')
_ONLY = flags.DEFINE_list('only', [], 'Subset of: train,inference,relabel.')
_OUT = flags.DEFINE_string('out', '', 'Write the results as JSON here.')


def _timeit(fn, iters: int) -> float:
    """Seconds per call after one warm-up (compilation) call."""
    jax.block_until_ready(fn())
    start = time.perf_counter()
    for _ in range(iters):
        out = fn()
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / iters


def run(preset: str = 'cpu', batch: int = 0, only=(), num_classes: int = 1000) -> list[dict]:
    from mlrelabel.models import get_model

    p = dict(PRESETS[preset])
    if batch:
        p['batch'] = batch
    dtype = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}[p['dtype']]
    mesh = parallel.make_mesh()
    rep, dat = parallel.replicated(mesh), parallel.data_sharding(mesh)
    b, s = p['batch'], p['image_size']
    model = get_model(p['model'], num_classes, width=p['width'], small_stem=p['small_stem'],
                      stem_stride=p['stem_stride'], dropout_rate=0.25, dtype=dtype)
    variables = jax.jit(lambda k: model.init(k, jnp.zeros((1, s, s, 3)), train=False))(jax.random.key(0, impl='rbg'))
    images = jax.device_put(jax.random.randint(jax.random.PRNGKey(1), (b, s, s, 3), 0, 255).astype(jnp.uint8), dat)
    targets = jax.device_put(jax.nn.one_hot(jnp.arange(b) % num_classes, num_classes), dat)
    results = []

    def record(name, seconds, images_per_call, extra=None):
        row = {'benchmark': name, 'images_per_s': round(images_per_call / seconds, 1), 'batch': b,
               'ms_per_call': round(1000 * seconds, 2), **(extra or {})}
        results.append(row)
        print(json.dumps(row), flush=True)

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    if not only or 'train' in only:
        tx = optax.sgd(0.1, momentum=0.9, nesterov=True)
        state = parallel.replicate(TrainState.create(variables, tx, jax.random.PRNGKey(0)), mesh)
        step = jax.jit(make_train_step(model, tx, loss='softmax_ce', mean=mean, std=std),
                       in_shardings=(rep, dat), out_shardings=(rep, rep), donate_argnums=(0,))
        box = {'state': state}

        def train_call():
            box['state'], metrics = step(box['state'], {'image': images, 'target': targets})
            return metrics['loss']

        record('train', _timeit(train_call, p['iters']), b)
    if not only or 'inference' in only:
        infer = jax.jit(lambda v, x: model.apply(v, augment.normalize(x, mean, std)), in_shardings=(rep, dat))
        record('inference', _timeit(lambda: infer(variables, images), p['iters']), b)
    if not only or 'relabel' in only:
        k, t = p['crops'], p['samples']
        boxes = crops.random_boxes(jax.random.PRNGKey(2), b, k, scale=(0.15, 0.5))
        for method, samples in (('naive', 1), ('mc_dropout', t), ('mc_dropout_full', t)):
            conf = confidence.confidence_fn(method, model, 'softmax', samples)

            def relabel_call(conf=conf):
                x = augment.normalize(images, mean, std)
                patches = crops.extract_crops(x, boxes, s).reshape(b * k, s, s, 3)
                return conf(variables, patches, jax.random.PRNGKey(3))['mean']

            fn = jax.jit(relabel_call)
            sec = _timeit(fn, max(1, p['iters'] // (4 if method == 'mc_dropout_full' else 1)))
            record(f'relabel_{method}', sec, b, {'crops': k, 'samples': samples,
                                                'crop_samples_per_s': round(b * k * samples / sec, 1)})
    return results


def main(argv):
    del argv
    info = {'device': str(jax.devices()[0].device_kind), 'platform': jax.devices()[0].platform,
            'num_devices': jax.device_count(), 'jax': jax.__version__, 'python': platform.python_version(),
            'preset': _PRESET.value}
    print(json.dumps(info), flush=True)
    results = run(_PRESET.value, _BATCH.value, _ONLY.value)
    if _OUT.value:
        from mlrelabel.io_utils import atomic_write_json

        atomic_write_json(_OUT.value, {'info': info, 'results': results})


if __name__ == '__main__':
    app.run(main)
