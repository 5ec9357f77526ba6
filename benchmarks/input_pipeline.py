"""Input pipeline throughput: images/s of JPEG decode + random-resized-crop (+ flip) at 224 px through the
grain loader (`mlrelabel.data.grain_loader`), per number of worker processes, on generated ImageNet-sized
JPEGs (500x375, quality 90, smooth texture plus noise: ~110 kB each, like ImageNet's average file).

  python benchmarks/input_pipeline.py --workers=0,1,2,4 --num_images=512 --batch_size=64 --out=bench.json
  python benchmarks/input_pipeline.py --workers=16 --num_images=1024 --epochs=32   # one thread per worker

Workers = 0 decodes in threads of the main process. Every process builds `--threads` batches at once
(0 = grain's 16). `steady_images_per_s` is the sustained rate, timed away from start-up and the final drain
(see `measure`).
"""

from __future__ import annotations

import argparse
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


def measure(paths, workers: int, batch_size: int, epochs: int, image_size: int, threads: int = 0) -> dict:
    """Images/s of `workers` processes x `threads` threads decoding random-resized-crops of `paths`.

    `steady_images_per_s` times the batches between the first and the last `margin` of them, margin = the most
    batches the pipeline can hold: workers x (2 x threads + 3 x buffer + 1), buffer = 2. Before that window the
    workers start (each imports JAX) and then hand over what they filled their buffers with in a burst; after
    it the buffers drain once decoding has ended. Give it several margins of batches (`epochs`).
    `images_per_s` is the older figure: every batch after the first, which that burst inflates."""
    from mlrelabel.data import grain_loader, imagenet_readers, pipeline
    from mlrelabel.data.label_table import LabelTable
    from mlrelabel.data.sources import Dataset

    dataset = Dataset(
        images=imagenet_readers.FolderImages(paths, image_size, num_threads=1),
        labels=LabelTable.from_single(np.zeros(len(paths), np.int64), 1),
    )
    sampler = pipeline.IndexSampler(len(paths), batch_size, seed=0)
    steps = sampler.steps_per_epoch * epochs
    threads = threads or grain_loader.DEFAULT_THREADS
    buffer = 2
    aug = {'scale': (0.08, 1.0), 'ratio': (3 / 4, 4 / 3), 'flip': True}
    t_start = time.perf_counter()
    options = grain_loader.LoaderOptions(
        num_workers=workers, threads=threads, prefetch=buffer, host_augment=aug
    )
    batches = grain_loader.worker_batches(dataset, sampler, 0, steps, options=options)
    stamps = []
    for batch in batches:
        stamps.append(time.perf_counter())
        assert batch['image'].shape == (batch_size, image_size, image_size, 3)
    margin = max(1, workers) * (2 * threads + 3 * buffer + 1)
    window = stamps[margin : len(stamps) - margin]
    if len(window) < 2:
        raise ValueError(f'{steps} batches leave no steady window after a margin of {margin}: raise epochs')
    return {
        'workers': workers,
        'threads': threads,
        'steady_images_per_s': round((len(window) - 1) * batch_size / (window[-1] - window[0]), 1),
        'images_per_s': round((len(stamps) - 1) * batch_size / (stamps[-1] - stamps[0]), 1),
        'timed_images': (len(window) - 1) * batch_size,
        'total_images': len(stamps) * batch_size,
        'startup_s': round(stamps[0] - t_start, 2),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--workers', default='0,1,2')
    p.add_argument('--threads', type=int, default=1, help='batches each process builds at once (0 = 16)')
    p.add_argument('--num_images', type=int, default=256)
    p.add_argument('--batch_size', type=int, default=32)
    p.add_argument('--epochs', type=int, default=8)
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
        from mlrelabel.io_utils import atomic_write_json

        atomic_write_json(args.out, result)


if __name__ == '__main__':
    main()
