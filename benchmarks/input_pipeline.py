"""Input pipeline throughput: images/s of JPEG decode + random-resized-crop (+ flip) at 224 px through the
grain loader (`mlrelabel.data.grain_loader`), per number of worker processes, on generated ImageNet-sized
JPEGs (500x375, quality 90, smooth texture plus noise: ~110 kB each, like ImageNet's average file).

  python benchmarks/input_pipeline.py --workers=0,1,2,4 --num_images=512 --batch_size=64 --out=bench.json
  python benchmarks/input_pipeline.py --workers=16 --threads=1 --epochs=8    # one core per worker

Workers = 0 decodes in threads of the main process. Every process builds `--threads` batches at once
(0 = grain's 16). `steady_images_per_s` is the sustained rate: the difference of two fresh runs, over all
batches and over a quarter of them, so that start-up cancels (see `measure`); give it several
workers x threads batches.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_jpegs(folder: str, n: int, size=(375, 500), seed: int = 0) -> list[str]:
    """`n` ImageNet-sized JPEGs: upsampled random colour fields (smooth) plus fine noise."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        coarse = rng.integers(0, 256, (size[0] // 25, size[1] // 25, 3), dtype=np.uint8)
        img = np.asarray(Image.fromarray(coarse).resize(size[::-1], Image.Resampling.BICUBIC), np.float32)
        img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
        path = os.path.join(folder, f'img_{i:05d}.JPEG')
        Image.fromarray(img).save(path, quality=90)
        paths.append(path)
    return paths


def _run(dataset, sampler, steps: int, workers: int, threads: int, image_size: int, aug: dict) -> tuple:
    """One fresh pipeline over `steps` batches: `(seconds to the first batch, seconds to the last)`."""
    from mlrelabel.data import grain_loader

    t_start = time.perf_counter()
    batches = grain_loader.train_batches(
        dataset, sampler, 0, steps, num_workers=workers, host_augment=aug, prefetch=2, threads=threads
    )
    first = next(batches)
    t_first = time.perf_counter()
    assert first['image'].shape == (sampler.batch_size, image_size, image_size, 3)
    for _ in batches:
        pass
    return t_first - t_start, time.perf_counter() - t_start


def measure(paths, workers: int, batch_size: int, epochs: int, image_size: int, threads: int = 0) -> dict:
    """Images/s of `workers` processes x `threads` threads decoding random-resized-crops of `paths`.

    `steady_images_per_s` is the marginal rate of two fresh pipelines, over all the batches of `epochs` epochs
    and over a quarter of them: (difference in images) / (difference in time to the last batch). Start-up
    (spawning workers that import JAX) and the burst of batches that the workers' threads finish together
    cancel out. `images_per_s` is the older figure: the long run's batches after the first, over the time
    after the first, which that burst inflates when workers x threads is large."""
    from mlrelabel.data import imagenet, pipeline
    from mlrelabel.data.labels import LabelTable
    from mlrelabel.data.sources import Dataset

    dataset = Dataset(
        images=imagenet.FolderImages(paths, image_size, num_threads=1),
        labels=LabelTable.from_single(np.zeros(len(paths), np.int64), 1),
    )
    sampler = pipeline.IndexSampler(len(paths), batch_size, seed=0)
    steps = sampler.steps_per_epoch * epochs
    short = max(1, steps // 4)
    aug = {'scale': (0.08, 1.0), 'ratio': (3 / 4, 4 / 3), 'flip': True}
    _, t_short = _run(dataset, sampler, short, workers, threads, image_size, aug)
    startup, t_long = _run(dataset, sampler, steps, workers, threads, image_size, aug)
    n = (steps - 1) * batch_size
    return {
        'workers': workers,
        'threads': threads or 16,
        'steady_images_per_s': round((steps - short) * batch_size / (t_long - t_short), 1),
        'images_per_s': round(n / (t_long - startup), 1),
        'timed_images': steps * batch_size,
        'short_run_images': short * batch_size,
        'startup_s': round(startup, 2),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--workers', default='0,1,2')
    p.add_argument('--threads', type=int, default=0, help='batches each process builds at once (0 = 16)')
    p.add_argument('--num_images', type=int, default=256)
    p.add_argument('--batch_size', type=int, default=32)
    p.add_argument('--epochs', type=int, default=2)
    p.add_argument('--image_size', type=int, default=224)
    p.add_argument('--folder', default='', help='reuse/keep the generated JPEGs here')
    p.add_argument('--out', default='', help='write the results as JSON')
    args = p.parse_args()
    folder = args.folder or tempfile.mkdtemp(prefix='mlrelabel_jpegs_')
    os.makedirs(folder, exist_ok=True)
    existing = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith('.JPEG'))
    paths = (
        existing[: args.num_images]
        if len(existing) >= args.num_images
        else make_jpegs(folder, args.num_images)
    )
    mean_kb = np.mean([os.path.getsize(x) for x in paths]) / 1024
    rows = [
        measure(paths, int(w), args.batch_size, args.epochs, args.image_size, args.threads)
        for w in args.workers.split(',')
    ]
    result = {
        'cpu_count': os.cpu_count(),
        'num_images': len(paths),
        'mean_jpeg_kb': round(float(mean_kb), 1),
        'source_size': '500x375',
        'image_size': args.image_size,
        'batch_size': args.batch_size,
        'rows': rows,
    }
    print(
        f'{len(paths)} JPEGs 500x375 (mean {mean_kb:.0f} kB), decode + random-resized-crop + flip at '
        f'{args.image_size}, {os.cpu_count()} CPUs'
    )
    print('| worker processes | threads each | steady images/s | start-up s |\n|---|---|---|---|')
    for r in rows:
        w = r['workers'] or '0 (the main process)'
        print(f"| {w} | {r['threads']} | {r['steady_images_per_s']:.0f} | {r['startup_s']} |")
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=2)


if __name__ == '__main__':
    main()
