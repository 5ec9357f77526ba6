"""The parts of benchmarks/gpu_check.py, each run in a child process: `python gpu_check.py --part=NAME`.

Each writes its figures through a `Recorder` as soon as it has them, so a part stopped at its time cap keeps
what it measured. See gpu_check.py for what each part measures.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time

CACHE = os.path.join(tempfile.gettempdir(), 'mlrelabel_gpu_check')  # compiled programs and JPEGs, for a rerun


class Recorder:
    """Writes a part's figures to its JSON file after every update (atomically), so a killed part keeps them."""

    def __init__(self, path: str):
        self.path, self.data = path, {}

    def update(self, **values) -> None:
        self.data.update(values)
        tmp = self.path + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(self.data, f, indent=1)
        os.replace(tmp, self.path)


def _jax_info() -> dict:
    import jax

    d = jax.devices()[0]
    return {
        'device': d.device_kind,
        'platform': d.platform,
        'num_devices': jax.device_count(),
        'platform_version': getattr(d.client, 'platform_version', ''),
    }


def part_train_jax(rec: Recorder, preset: dict, batch: int = 0) -> None:
    from mlrelabel import benchmark, compile_cache

    compile_cache.enable(os.path.join(CACHE, 'xla'))
    p = benchmark.PRESETS[preset['bench']]
    rec.update(
        **_jax_info(),
        **{k: p[k] for k in ('model', 'image_size', 'dtype')},
        xla_flags=os.environ.get('XLA_FLAGS', ''),
    )
    (row,) = benchmark.run(preset['bench'], batch=batch, only=['train'])
    rec.update(**row, programs_compiled=compile_cache.stats()['compiled'])


def part_relabel(rec: Recorder, preset: dict) -> None:
    from mlrelabel import benchmark, compile_cache

    compile_cache.enable(os.path.join(CACHE, 'xla'))
    rec.update(**_jax_info())
    benchmark.run(
        preset['bench'],
        only=['relabel'],
        methods=('naive', 'mc_dropout'),
        progress=lambda row: rec.update(**{row['benchmark']: row}),
    )


def part_train_torch(rec: Recorder, preset: dict) -> None:
    try:
        import torch
        import torchvision
    except ImportError as e:
        rec.update(skipped=f'torch/torchvision not installed ({e})')
        return
    from mlrelabel import benchmark

    rec.update(
        torch=torch.__version__,
        torchvision=torchvision.__version__,
        cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version() if torch.cuda.is_available() else None,
    )
    benchmark.torch_reference(preset['bench'], only=['train'], progress=lambda row: rec.update(**row))


def _make_jpegs(args) -> list[str]:
    from input_pipeline import make_jpegs

    folder, n, seed = args
    os.makedirs(folder, exist_ok=True)
    return make_jpegs(folder, n, seed=seed)


def part_input(rec: Recorder, preset: dict) -> None:
    """Generates the JPEGs on every core (kept in /tmp for a rerun), then times the grain pipeline."""
    import multiprocessing

    cfg = dict(preset['input'])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1
    workers = [(w or cores, t) for w, t in cfg['workers']]  # 0 workers = one per core
    folder = os.path.join(CACHE, f'jpegs_{cfg["num_images"]}')
    chunks = [(os.path.join(folder, f'part_{i:02d}'), cfg['num_images'] // cores, i) for i in range(cores)]
    chunks[0] = (chunks[0][0], chunks[0][1] + cfg['num_images'] % cores, 0)
    start = time.perf_counter()
    done = os.path.join(folder, 'done')
    if os.path.exists(done):
        paths = sorted(os.path.join(c[0], f) for c in chunks for f in os.listdir(c[0]))
    else:
        shutil.rmtree(folder, ignore_errors=True)
        with multiprocessing.get_context('spawn').Pool(cores) as pool:
            paths = sorted(p for part in pool.map(_make_jpegs, chunks) for p in part)
        open(done, 'w').close()
    rec.update(
        num_images=len(paths),
        mean_jpeg_kb=round(sum(os.path.getsize(p) for p in paths) / len(paths) / 1024, 1),
        source_size='500x375',
        jpegs_s=round(time.perf_counter() - start, 1),
        cpu_count=cores,
        batch=cfg['batch'],
        epochs=cfg['epochs'],
        image_size=cfg['image_size'],
    )
    from input_pipeline import measure

    rows = []
    for w, t in workers:
        rows.append(measure(paths, w, cfg['batch'], cfg['epochs'], cfg['image_size'], threads=t))
        rec.update(rows=rows)


PARTS = {
    'train_jax': part_train_jax,
    'train_torch': part_train_torch,
    'relabel': part_relabel,
    'input': part_input,
}
