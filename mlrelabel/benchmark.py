"""Throughput benchmark: training, inference and relabel passes on synthetic on-device data.

  python -m mlrelabel.benchmark                       # CPU preset: the default digit-scenes model
  python -m mlrelabel.benchmark --preset=gpu          # ResNet-50, 224 px, bf16, large batch
  python -m mlrelabel.benchmark --preset=tiny         # seconds; what the tests run
  python -m mlrelabel.benchmark --preset=gpu --torch  # plus torchvision's ResNet-50 on the same device (AMP bf16,
                                                      # channels_last, torch.compile) and the JAX/PyTorch ratio

Prints one line per measurement (images/s, and crops x samples / s for relabeling) and, with `--out`,
writes them as JSON. Timings exclude compilation: one warm-up call, then the median of `repeats` rounds of
`iters` calls, each round blocking on its last result (no host synchronisation inside a round).
benchmarks/gpu_check.sh runs these on a GPU together with the input pipeline, one process per part.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from typing import Callable

import jax
import jax.numpy as jnp
import optax
from absl import app, flags

from mlrelabel import parallel
from mlrelabel.ops import augment
from mlrelabel.ops import boxes as ops_boxes
from mlrelabel.ops import crops as ops_crops
from mlrelabel.relabel import confidence
from mlrelabel.train.state import TrainState
from mlrelabel.train.step import make_train_step

_PRESET_FIELDS = (
    'model', 'width', 'stem_stride', 'small_stem', 'image_size', 'batch', 'crops', 'samples', 'dtype', 'iters',
)  # fmt: skip
# One row a preset: the fields above in order, then anything extra.
PRESETS = {
    # torchvision has no resnet_tiny: the reference path at this size only
    'tiny': dict(zip(_PRESET_FIELDS, ('resnet_tiny', 8, 2, True, 32, 16, 4, 4, 'float32', 3)), torch_model='resnet18'),
    'cpu': dict(zip(_PRESET_FIELDS, ('resnet_tiny', 16, 2, True, 40, 64, 8, 16, 'float32', 10))),
    'tiny_resnet18': dict(zip(_PRESET_FIELDS, ('resnet18', 64, 0, False, 64, 8, 2, 2, 'float32', 2))),
    # torchvision's other networks at full width, small batches on CPU (stem fields: ResNet-only, unused)
    'tiny_vgg16': dict(zip(_PRESET_FIELDS, ('vgg16', 64, 0, False, 64, 8, 2, 2, 'float32', 2))),
    'tiny_vgg16_bn': dict(zip(_PRESET_FIELDS, ('vgg16_bn', 64, 0, False, 64, 8, 2, 2, 'float32', 2))),
    'tiny_inception_v3': dict(zip(_PRESET_FIELDS, ('inception_v3', 32, 0, False, 96, 8, 2, 2, 'float32', 2))),
    'tiny_efficientnet_b0': dict(zip(_PRESET_FIELDS, ('efficientnet_b0', 32, 0, False, 64, 8, 2, 2, 'float32', 2))),
    'gpu': dict(
        zip(_PRESET_FIELDS, ('resnet50', 64, 0, False, 224, 256, 8, 16, 'bfloat16', 30)), relabel_iters=10, repeats=3
    ),
}  # fmt: skip
RELABEL_METHODS = ('naive', 'mc_dropout', 'mc_dropout_full')

_PRESET = flags.DEFINE_enum('preset', 'cpu', list(PRESETS), 'Size preset.')
_BATCH = flags.DEFINE_integer('batch', 0, 'Override the preset batch size.')
_ONLY = flags.DEFINE_list('only', [], 'Subset of: train,inference,relabel.')
_OUT = flags.DEFINE_string('out', '', 'Write the results as JSON here.')
_TORCH = flags.DEFINE_bool(
    'torch', False, 'Also time the PyTorch/torchvision reference (same model, batch, device).'
)
_CPU_DEVICES = flags.DEFINE_integer(
    'cpu_devices',
    2,
    'Without an accelerator, split the CPU into this many devices (config.parallel.cpu_devices).',
)
_COMPILE = flags.DEFINE_bool(
    'torch_compile', True, 'Try torch.compile for the reference (falls back to eager).'
)


def _timeit(fn, iters: int, repeats: int = 1, sync=jax.block_until_ready) -> tuple[float, float]:
    """`(seconds per call, seconds of the first call)`: one warm-up call (compilation, autotuning), then
    `repeats` rounds of `iters` calls, each round ending on `sync` of its last result; the median round."""
    start = time.perf_counter()
    sync(fn())
    first = time.perf_counter() - start
    rounds = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        for _ in range(iters):
            out = fn()
        sync(out)
        rounds.append((time.perf_counter() - start) / iters)
    return statistics.median(rounds), first


def run(
    preset: str = 'cpu',
    batch: int = 0,
    only=(),
    num_classes: int = 1000,
    methods=RELABEL_METHODS,
    progress: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Times the preset's model on synthetic on-device data: `train` (SGD step, state donated),
    `inference`, and `relabel_<method>` for each of `methods` (K crops per image, T samples). Rows of
    images/s (and ms per call, compile + first call seconds); `progress(row)` is called after each."""
    p = dict(PRESETS[preset])
    if batch:
        p['batch'] = batch
    dtype = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}[p['dtype']]
    mesh = parallel.make_mesh()
    rep, dat = parallel.replicated(mesh), parallel.data_sharding(mesh)
    b, s = p['batch'], p['image_size']
    repeats = p.get('repeats', 1)
    model = _jax_model(p, num_classes, dtype)
    variables = jax.jit(lambda k: model.init(k, jnp.zeros((1, s, s, 3)), train=False))(
        jax.random.key(0, impl='rbg')
    )
    images = jax.device_put(
        jax.random.randint(jax.random.PRNGKey(1), (b, s, s, 3), 0, 255).astype(jnp.uint8), dat
    )
    targets = jax.device_put(jax.nn.one_hot(jnp.arange(b) % num_classes, num_classes), dat)
    results = []

    def record(name, timing, images_per_call, iters, extra=None):
        row = {**_timing_row(name, timing, images_per_call, iters, repeats), **(extra or {})}
        results.append(row)
        print(json.dumps(row), flush=True)
        if progress is not None:
            progress(row)

    if not only or 'train' in only:
        train_call = _train_call(model, variables, {'image': images, 'target': targets}, mesh)
        record('train', _timeit(train_call, p['iters'], repeats), b, p['iters'])
    if not only or 'inference' in only:
        infer = jax.jit(
            lambda v, x: model.apply(v, augment.normalize(x, _MEAN, _STD)), in_shardings=(rep, dat)
        )
        record('inference', _timeit(lambda: infer(variables, images), p['iters'], repeats), b, p['iters'])
    if not only or 'relabel' in only:
        k, t = p['crops'], p['samples']
        boxes = ops_boxes.random_boxes(jax.random.PRNGKey(2), b, k, scale=(0.15, 0.5))
        key = jax.random.PRNGKey(3)
        for method in methods:
            samples = 1 if method == 'naive' else t
            fn = _relabel_fn(confidence.confidence_fn(method, model, 'softmax', samples), b, k, s)
            iters = max(1, p.get('relabel_iters', p['iters']) // (4 if method == 'mc_dropout_full' else 1))
            timing = _timeit(lambda fn=fn: fn(variables, images, boxes, key), iters, repeats)
            per_s = round(b * k * samples / timing[0], 1)
            extra = {'crops': k, 'samples': samples, 'crop_samples_per_s': per_s}
            record(f'relabel_{method}', timing, b, iters, extra)
    return results


def torch_reference(
    preset: str = 'gpu',
    batch: int = 0,
    num_classes: int = 1000,
    compile_model: bool = True,
    only=(),
    progress: Callable[[dict], None] | None = None,
) -> list[dict]:
    """The same measurements with torchvision's model: bf16 autocast (when the preset computes in bf16),
    channels_last, cuDNN autotuning, SGD with Nesterov momentum. Needs torch and torchvision.

    With `compile_model`, each measurement runs eagerly first and then through `torch.compile`; the row
    reports the compiled figure, or the eager one (with `compile_error`) when compilation fails, and keeps
    the eager figure as `eager_images_per_s`. `progress(row)` is called after every timing, so a caller
    killed during a long compilation still has the eager figure."""
    import torch
    import torchvision

    p = dict(PRESETS[preset])
    if batch:
        p['batch'] = batch
    name = p.get('torch_model', p['model'])
    if not hasattr(torchvision.models, name):
        raise ValueError(f"preset {preset!r} uses {name}, which torchvision does not have")
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    torch.backends.cudnn.benchmark = True
    b, s, repeats = p['batch'], p['image_size'], p.get('repeats', 1)
    model = getattr(torchvision.models, name)(num_classes=num_classes).to(device)
    model = model.to(memory_format=torch.channels_last)
    x = torch.randn(b, 3, s, s, device=device).to(memory_format=torch.channels_last)
    y = torch.arange(b, device=device) % num_classes
    train_call, infer_call = _torch_calls(model, x, y, device, p['dtype'] == 'bfloat16')

    def sync(_=None):
        if device == 'cuda':
            torch.cuda.synchronize()

    extra = _torch_fields(name, device)
    results = []
    for bench, call, train in (('train', train_call, True), ('inference', infer_call, False)):
        if only and bench not in only:
            continue
        model.train(train)
        timing = _timeit(lambda: call(model), p['iters'], repeats, sync)
        row = {**_timing_row(bench, timing, b, p['iters'], repeats), 'compiled': False, **extra}
        if compile_model:

            def time_compiled(call=call):
                compiled = torch.compile(model)
                return _timeit(lambda: call(compiled), p['iters'], repeats, sync)

            _add_compiled(row, time_compiled, progress)
        results.append(row)
        print(json.dumps(row), flush=True)
        if progress is not None:
            progress(dict(row))
    return results


_MEAN, _STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # the normalisation every benchmark applies


def _train_call(model, variables, batch: dict, mesh) -> Callable:
    """`call() -> loss`: one SGD (Nesterov) step on `batch`, its state donated and kept between calls."""
    rep, dat = parallel.replicated(mesh), parallel.data_sharding(mesh)
    tx = optax.sgd(0.1, momentum=0.9, nesterov=True)
    # The step donates its state: give it its own copy of the parameters.
    own = jax.tree.map(lambda x: x.copy(), variables)
    state = parallel.replicate(TrainState.create(own, tx, jax.random.PRNGKey(0)), mesh)
    step = jax.jit(
        make_train_step(model, tx, loss='softmax_ce', mean=_MEAN, std=_STD),
        in_shardings=(rep, dat),
        out_shardings=(rep, rep),
        donate_argnums=(0,),
    )
    box = {'state': state}

    def train_call():
        box['state'], metrics = step(box['state'], batch)
        return metrics['loss']

    return train_call


def _relabel_fn(conf: Callable, batch: int, k: int, side: int) -> Callable:
    """Jitted `(variables, images, boxes [batch, k, 4], key) -> mean probabilities [batch * k, C]`: the crops
    resized to `side` and scored by the confidence function `conf`."""

    # Weights, images and boxes are arguments, not closed-over constants baked into the program.
    def relabel_call(v, images, boxes, key):
        x = augment.normalize(images, _MEAN, _STD)
        patches = ops_crops.extract_crops(x, boxes, side).reshape(batch * k, side, side, 3)
        return conf(v, patches, key)['mean']

    return jax.jit(relabel_call)


def _jax_model(p: dict, num_classes: int, dtype):
    """The preset `p`'s network (as `methods.common.build_model` makes it: dropout, no auxiliary head)."""
    from mlrelabel.models import get_model, zoo

    options = dict(width=p['width'], dropout_rate=0.25, dtype=dtype)
    if 'small_stem' in zoo.OPTIONS[zoo.family(p['model'])]:
        options.update({'small_stem': p['small_stem'], 'stem_stride': p['stem_stride']})
    if p['model'] == 'inception_v3':
        options['aux_logits'] = False  # as methods.common.build_model trains it
    return get_model(p['model'], num_classes, **options)


def _timing_row(name: str, timing: tuple, images_per_call: int, iters: int, repeats: int) -> dict:
    """One result row: `timing` is `(seconds per call, compile + first call seconds)` of calls on
    `images_per_call` images (the row's batch)."""
    seconds, first = timing
    return {
        'benchmark': name,
        'images_per_s': round(images_per_call / seconds, 1),
        'batch': images_per_call,
        'ms_per_call': round(1000 * seconds, 2),
        'first_call_s': round(first, 2),
        'iters': iters,
        'repeats': repeats,
    }


def _torch_calls(model, x, y, device: str, amp: bool) -> tuple[Callable, Callable]:
    """`(train_call(net), infer_call(net))` on the batch `x`, `y`: an SGD (Nesterov) step of `model`'s
    parameters through `net` (the model or its compiled form), and a forward pass; bf16 autocast with `amp`."""
    import torch

    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)

    def train_call(net):
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
            loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()

    def infer_call(net):
        with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
            net(x)

    return train_call, infer_call


def _torch_fields(name: str, device: str) -> dict:
    """What every torch row says about where it was measured."""
    import torch

    return {
        'framework': 'torch',
        'torch': torch.__version__,
        'model': name,
        'device': torch.cuda.get_device_name() if device == 'cuda' else 'cpu',
    }


def _add_compiled(row: dict, time_compiled: Callable[[], tuple], progress) -> None:
    """Replaces the eager figures of `row` by those of `torch.compile` (`time_compiled()`), keeping the eager
    images/s; when compilation fails the row stays eager and says why. `progress` sees the eager row first."""
    row['eager_images_per_s'] = row['images_per_s']
    if progress is not None:
        progress(dict(row))
    try:
        sec, first = time_compiled()
        row.update(
            images_per_s=round(row['batch'] / sec, 1),
            ms_per_call=round(1000 * sec, 2),
            first_call_s=round(first, 2),
            compiled=True,
        )
    except Exception as e:  # noqa: BLE001 - the reference stays eager, and says why
        row['compile_error'] = f'{type(e).__name__}: {e}'[:500]


def ratios(jax_rows: list[dict], torch_rows: list[dict]) -> dict:
    """JAX images/s over PyTorch images/s for each benchmark both measured."""
    ref = {r['benchmark']: r['images_per_s'] for r in torch_rows}
    return {
        r['benchmark']: round(r['images_per_s'] / ref[r['benchmark']], 3)
        for r in jax_rows
        if r['benchmark'] in ref
    }


def main(argv):
    del argv
    parallel.split_cpu(_CPU_DEVICES.value)
    info = {
        'device': str(jax.devices()[0].device_kind),
        'platform': jax.devices()[0].platform,
        'num_devices': jax.device_count(),
        'jax': jax.__version__,
        'python': platform.python_version(),
        'preset': _PRESET.value,
    }
    print(json.dumps(info), flush=True)
    results = run(_PRESET.value, _BATCH.value, _ONLY.value)
    reference, ratio = [], {}
    if _TORCH.value:
        reference = torch_reference(
            _PRESET.value, _BATCH.value, compile_model=_COMPILE.value, only=_ONLY.value
        )
        ratio = ratios(results, reference)
        print(json.dumps({'jax_over_torch': ratio}), flush=True)
    if _OUT.value:
        from mlrelabel.io_utils import atomic_write_json

        atomic_write_json(
            _OUT.value, {'info': info, 'results': results, 'torch': reference, 'jax_over_torch': ratio}
        )


if __name__ == '__main__':
    app.run(main)
