"""Converts ReLabel's published label maps (Yun et al. 2021, naver-ai/relabel_imagenet) into a store.

  python -m mlrelabel.tools.import_relabel_maps --root=DIR --order=LABELFILE_OR_LIST --out=STORE

ReLabel releases one ``.pt`` file per ImageNet training image, ``root/<wnid>/<image-stem>.pt``, holding a
``[2, 5, 15, 15]`` tensor: the top-5 scores at each of 15 × 15 cells, then their class ids stored as
floats (sorted-WNID class order). ``--order`` gives the image order of the dataset the maps will train:
a CS570 label file (``.json``, its ``img_path`` values, resolved like the training data with
``--image_root``) or a text file with one image path per line. The image at ``<...>/<wnid>/<stem>.<ext>``
reads ``root/<wnid>/<stem>.pt``. The store (``mlrelabel.label_maps.store``) is written shard by shard,
so rerunning a killed import resumes it. torch is needed only here (``pip install torch``).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

import numpy as np

from mlrelabel import parallel
from mlrelabel.errors import ResourceError
from mlrelabel.label_maps.store import LabelMapWriter, MapShape


def map_file(root: str, image_path: str) -> str:
    """`root/<wnid>/<stem>.pt` for an image `.../<wnid>/<stem>.<ext>`."""
    wnid = os.path.basename(os.path.dirname(image_path))
    stem = os.path.splitext(os.path.basename(image_path))[0]
    if not wnid:
        raise ValueError(f'{image_path}: expected a path <...>/<wnid>/<image>, the class folder is missing')
    return os.path.join(root, wnid, stem + '.pt')


def load_torch_map(path: str) -> np.ndarray:
    """One ReLabel `.pt` file → `[2, k, h, w]` float32 numpy (imports torch lazily)."""
    try:
        import torch
    except ImportError:
        raise ResourceError(
            'import_relabel_maps needs PyTorch to read ReLabel\'s .pt files: pip install torch '
            '(CPU build is enough); nothing else in mlrelabel needs it'
        ) from None
    obj = torch.load(path, map_location='cpu', weights_only=True)
    if not isinstance(obj, torch.Tensor):
        raise ValueError(f'{path}: expected a tensor, got {type(obj).__name__}')
    return obj.detach().to(torch.float32).numpy()


def read_order(order: str, image_root: str | None = None) -> list[str]:
    """Image paths from a CS570 label file (`.json`) or a text list (one path per line, blanks skipped)."""
    if order.endswith('.json'):
        from mlrelabel.data.labels import read_label_file

        paths, _ = read_label_file(order, root=image_root)
        return paths
    with open(order, encoding='utf-8') as f:
        return [line.strip() for line in f if line.strip()]


def split_map(array: np.ndarray, path: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """`[2, k, h, w]` (scores, float class ids) → `(scores [k, h, w] float32, classes [k, h, w] int64)`."""
    array = np.asarray(array)
    if array.ndim != 4 or array.shape[0] != 2:
        raise ValueError(
            f'{path}: expected a [2, k, h, w] tensor (scores, class ids), got shape {array.shape}'
        )
    ids = array[1].astype(np.float64)
    classes = np.rint(ids).astype(np.int64)
    if np.abs(ids - classes).max(initial=0) > 1e-3:
        raise ValueError(
            f'{path}: class ids are not whole numbers (e.g. {ids.ravel()[np.argmax(np.abs(ids - classes))]})'
        )
    if classes.size and (classes.min() < 0 or classes.max() >= num_classes):
        raise ValueError(f'{path}: class ids {classes.min()}..{classes.max()} outside [0, {num_classes})')
    return array[0].astype(np.float32), classes


def import_maps(
    root: str,
    order: Sequence[str],
    out: str,
    *,
    num_classes: int = 1000,
    shard_size: int = 4096,
    load_fn: Callable[[str], np.ndarray] = load_torch_map,
) -> LabelMapWriter:
    """Writes the maps of the images `order` (paths) found under `root` into the store `out` (resumable).

    `load_fn(path) -> [2, k, h, w]` reads one file (default: torch). The map shape comes from the first file.
    """
    if not order:
        raise ValueError('import_relabel_maps: the image order is empty')
    first = split_map(load_fn(map_file(root, order[0])), map_file(root, order[0]), num_classes)[0]
    k, h, w = first.shape
    writer = LabelMapWriter(
        out,
        order,
        MapShape(k=k, height=h, width=w, num_classes=num_classes),
        shard_size=shard_size,
        meta={'source': 'ReLabel .pt import', 'root': os.path.abspath(root)},
    )
    bar = parallel.progress_bar(len(order), 'import label maps', 'img', initial=writer.num_done())
    for shard in writer.missing_shards():
        start, stop = writer.shard_range(shard)
        scores = np.empty((stop - start, k, h, w), np.float32)
        classes = np.empty((stop - start, k, h, w), np.int64)
        for j, image in enumerate(order[start:stop]):
            path = map_file(root, image)
            if not os.path.exists(path):
                raise FileNotFoundError(f'{path}: no label map for image {start + j} ({image})')
            s, c = split_map(load_fn(path), path, num_classes)
            if s.shape != (k, h, w):
                raise ValueError(f'{path}: map shape {s.shape}, the first file had {(k, h, w)}')
            scores[j], classes[j] = s, c
            bar.update(1)
        writer.write_shard(shard, scores, classes)
    bar.close()
    return writer


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog='python -m mlrelabel.tools.import_relabel_maps',
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument('--root', required=True, help='folder of ReLabel maps: <root>/<wnid>/<stem>.pt')
    parser.add_argument('--order', required=True, help='CS570 label file (.json) or text list of image paths')
    parser.add_argument('--out', required=True, help='the label-map store to write (resumed if it exists)')
    parser.add_argument(
        '--image_root', default=None, help='resolves relative img_path values of a .json order'
    )
    parser.add_argument('--num_classes', type=int, default=1000)
    parser.add_argument('--shard_size', type=int, default=4096, help='images per shard file')
    args = parser.parse_args(argv)
    order = read_order(args.order, args.image_root)
    writer = import_maps(args.root, order, args.out, num_classes=args.num_classes, shard_size=args.shard_size)
    print(f'{writer.num_images} label maps {writer.shape} → {args.out}', file=sys.stderr)
    return 0


def cli() -> None:
    """`python -m mlrelabel.tools.import_relabel_maps`: expected failures end in one paragraph and an exit code."""
    from mlrelabel.console import report

    try:
        code = main()
    except (Exception, KeyboardInterrupt) as error:  # noqa: BLE001 - expected failures become one paragraph
        code = report(error, sys.argv, 'import_relabel_maps')
        if code is None:
            raise
    sys.exit(code)


if __name__ == '__main__':
    cli()
