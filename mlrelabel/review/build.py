"""The review page's data: the run's review rows, its labels, one thumbnail per image and each row's crop box.

The rows are the run's `review.json` (`mlrelabel.relabel.review`); the box of a row is the window of the
relabel grid (`config.relabel.crops`) in which the model that scored the run's evidence sees the row's class
(the replacement for a 'replace' row) most, found once and kept in `review/boxes.json`.
"""

from __future__ import annotations

import json
import os

import numpy as np

from mlrelabel.data.labels import read_labels
from mlrelabel.errors import DataError
from mlrelabel.io_utils import atomic_write_json
from mlrelabel.review import page

KIND_CODES = {'add': 0, 'remove': 1, 'replace': 2}


def review_dir(workdir: str) -> str:
    return os.path.join(workdir, 'review')


def run_rows(workdir: str) -> list[dict]:
    """The run's review rows (review.json); DataError when the run wrote none."""
    path = os.path.join(workdir, 'review.json')
    if not os.path.exists(path):
        raise DataError(f'{path}: no review list (a relabel run with relabel.review=True writes it)')
    with open(path) as f:
        return json.load(f)['rows']


def run_labels(workdir: str) -> tuple[list[str], list[list[int]], list[str]]:
    """`(paths as written, label lists, class names)` of the run's labels.json."""
    path = os.path.join(workdir, 'labels.json')
    if not os.path.exists(path):
        raise DataError(f'{path}: not found (is {workdir} a finished relabel run?)')
    _, table, names = read_labels(path)
    with open(path, encoding='utf-8') as f:
        paths = [entry['img_path'] for entry in json.load(f)['data']]  # as written, not joined to a root
    return paths, table.to_lists(), names or [str(c) for c in range(table.num_classes)]


def build_page(workdir: str, boxes: bool = True) -> str:
    """Writes `WORKDIR/review/index.html` and `review/img/<i>.png` (one per image with a row); returns the
    page's path."""
    rows = run_rows(workdir)
    paths, lists, names = run_labels(workdir)
    out = review_dir(workdir)
    os.makedirs(os.path.join(out, 'img'), exist_ok=True)
    index = {p: i for i, p in enumerate(paths)}
    unknown = sorted({r['image'] for r in rows} - set(index))
    if unknown:
        raise DataError(f'{workdir}/review.json: images not in labels.json, e.g. {unknown[0]!r}')
    wanted = sorted({index[r['image']] for r in rows})
    images = _train_images(workdir, paths, wanted)
    for i in wanted:
        _write_thumbnail(os.path.join(out, 'img', f'{i}.png'), images[i])
    found = _row_boxes(workdir, rows, index, images) if boxes else {}
    data = page_data(rows, paths, lists, names, found, os.path.basename(os.path.abspath(workdir)))
    path = os.path.join(out, 'index.html')
    page.write(path, data)
    return path


def page_data(rows, paths, lists, names, boxes: dict, title: str) -> dict:
    """The page's data, columnar so that 50,000 rows stay a few MB: per row its image index, class, kind code,
    replacement (-1: none), score and box (null: none); per image of a row its path and labels."""
    index = {p: i for i, p in enumerate(paths)}
    used = sorted({index[r['image']] for r in rows})
    return {
        'title': title,
        'classes': list(names),
        'images': {str(i): {'path': paths[i], 'labels': lists[i]} for i in used},
        'img': [index[r['image']] for r in rows],
        'cls': [int(r['class']) for r in rows],
        'kind': [KIND_CODES[r['suggestion']] for r in rows],
        'rep': [-1 if r['replacement'] == '' else int(r['replacement']) for r in rows],
        'score': [float(r['score']) for r in rows],
        'given': [r['given'] for r in rows],
        'box': [boxes.get((r['image'], int(r['class']))) for r in rows],
    }


def _train_images(workdir: str, paths: list[str], wanted: list[int]) -> dict:
    """`{index: uint8 [H, W, 3]}` of the run's training images `wanted` (its config's data source)."""
    from mlrelabel.manifest import read_config
    from mlrelabel.methods import common

    train = common.load_datasets(read_config(workdir), workdir)['train']
    if len(train) != len(paths):
        raise DataError(
            f'{workdir}: the data source gives {len(train)} training images, labels.json {len(paths)}'
        )
    return {i: np.asarray(train.images[i]) for i in wanted}


def _write_thumbnail(path: str, image: np.ndarray) -> None:
    from PIL import Image

    if os.path.exists(path):
        return
    pil = Image.fromarray(np.asarray(image, np.uint8))
    pil.thumbnail((256, 256))
    tmp = path + '.tmp'
    pil.save(tmp, format='PNG')
    os.replace(tmp, path)


def _row_boxes(workdir: str, rows: list[dict], index: dict, images: dict) -> dict:
    """`{(image, class): [y0, x0, y1, x1]}` fractions: per row, the grid window where the scoring model sees the
    row's class (a replacement's for 'replace') most; cached in review/boxes.json."""
    cache = os.path.join(review_dir(workdir), 'boxes.json')
    if os.path.exists(cache):
        with open(cache) as f:
            return {(r['image'], r['class']): r['box'] for r in json.load(f)}
    from mlrelabel.run import load_run

    run = load_run(workdir)
    windows = _windows(run.config)
    model_round = max(int(run.chosen_round or 0), 1) - 1  # round k's evidence was scored by round k-1's model
    by_image: dict = {}
    for r in rows:
        shown = int(r['replacement']) if r['replacement'] != '' else int(r['class'])
        by_image.setdefault(r['image'], []).append((int(r['class']), shown))
    found = []
    for image, wanted in by_image.items():
        probs = run.predict(_crops(images[index[image]], windows), round=model_round)
        for cls, shown in wanted:
            found.append(
                {
                    'image': image,
                    'class': cls,
                    'box': [round(float(v), 4) for v in windows[probs[:, shown].argmax()]],
                }
            )
    atomic_write_json(cache, found)
    return {(r['image'], r['class']): r['box'] for r in found}


def _windows(config) -> np.ndarray:
    from mlrelabel.api import CropOptions, window_boxes

    crops = config.relabel.crops
    return window_boxes(CropOptions(scales=tuple(crops.grid_scales), overlap=float(crops.overlap)))


def _crops(image: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """`[K, H, W, 3]` uint8: each window of `image` resized back to the image's size."""
    from PIL import Image

    h, w = image.shape[:2]
    pil = Image.fromarray(np.asarray(image, np.uint8))
    out = np.empty((len(windows), h, w, 3), np.uint8)
    for j, (y0, x0, y1, x1) in enumerate(windows):
        region = (float(x0) * w, float(y0) * h, float(x1) * w, float(y1) * h)
        out[j] = np.asarray(pil.convert('RGB').resize((w, h), Image.Resampling.BILINEAR, box=region))
    return out
