"""Datasets: images plus training labels, optional hidden truth, boxes and file paths.

A `Dataset` holds `images` either as an in-memory `[N, H, W, 3]` uint8 array (digit scenes) or as a
lazy `ImageFiles` reader (label files pointing at JPEG/PNG files, e.g. ImageNet); both support
`images[indices] -> [B, H, W, 3] uint8`, `len(images)` and `images.shape`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Sequence

import numpy as np
from PIL import Image

from mlrelabel.data.checks import drop_unreadable
from mlrelabel.data.digit_scenes import NUM_CLASSES as DIGIT_CLASSES
from mlrelabel.data.digit_scenes import load_or_build_digit_scenes
from mlrelabel.data.images import index_array, open_image
from mlrelabel.data.label_table import LabelTable
from mlrelabel.data.labels import read_labels_and_root

__all__ = [
    "Dataset",
    "ImageFiles",
    "load_image_dataset",
    "digit_scenes_dataset",
    "with_full_labels",
    "with_noisy_labels",
]


def _decode(path: str, image_size: int | None) -> Image.Image:
    """Decodes `path` as a person sees it (`mlrelabel.data.images`); with `image_size`, JPEGs decode at a
    reduced scale that is still >= image_size on both sides (PIL draft), much faster for large photos."""
    return open_image(path, draft=image_size)


def _resize_crop(img: Image.Image, size: int) -> np.ndarray:
    """Resizes so the shorter side is `size` (bilinear, aspect kept), then centre-crops to size x size."""
    w, h = img.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    img = img.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=None)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


class ImageFiles:
    """Lazy reader of image files: `reader[indices] -> [B, S, S, 3] uint8` (int index -> [S, S, 3]).

    Each image is converted to RGB, resized so its shorter side is S (bilinear, aspect ratio kept)
    and centre-cropped to S x S. Keeping the aspect ratio avoids distorting objects, at the cost of
    the border of elongated images (the standard ImageNet evaluation crop does the same).
    """

    def __init__(self, paths: Sequence[str], image_size: int):
        if int(image_size) < 1:
            raise ValueError(f"image_size must be positive, got {image_size}")
        self.paths = [os.fspath(p) for p in paths]
        self.image_size = int(image_size)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.paths), self.image_size, self.image_size, 3)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8)

    def load(self, i: int) -> np.ndarray:
        """Image `i` as [S, S, 3] uint8; raises OSError naming the file if it cannot be read."""
        path = self.paths[i]
        try:
            img = _decode(path, self.image_size)
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise OSError(f"cannot read image {path!r} (row {i}): {e}") from e
        return _resize_crop(img, self.image_size)

    def __getitem__(self, indices) -> np.ndarray:
        if isinstance(indices, (int, np.integer)):
            return self.load(int(indices))
        indices = index_array(indices, len(self))
        out = np.empty((indices.shape[0], self.image_size, self.image_size, 3), np.uint8)
        for b, i in enumerate(indices):
            out[b] = self.load(int(i))
        return out

    def subset(self, indices) -> "ImageFiles":
        """A reader over the files at `indices`, in that order."""
        return ImageFiles([self.paths[int(i)] for i in np.asarray(indices).reshape(-1)], self.image_size)

    def __repr__(self) -> str:
        return f"ImageFiles({len(self)} files, image_size={self.image_size})"


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Images with training labels, row-aligned.

    Attributes:
      images: [N, H, W, 3] uint8 array, or a lazy reader (`ImageFiles`) with the same indexing.
      labels: visible/training labels (what a model is trained on; relabeling replaces these).
      truth: hidden full label sets when known (digit scenes), for evaluation only; else None.
      boxes: [N, D, 4] float32 (y0, x0, y1, x1) fractions of each object, -1 padded, or None.
      paths: image file paths, or None for generated images.
      name: a short name for reports.
      class_names: [C] the name of each class id (None: `str(i)`); ids stay the labels, names go beside them.
      groups: mutually exclusive attribute groups `[(name, size)]` covering the classes in order (attribute
        CSVs: group g owns the ids `[start_g, start_g + size_g)`), or None.
      skipped: `[{'path', 'reason'}]` every image of the source left out as unreadable (the run lists them in
        skipped.json: `checks.write_skipped`), or None.
      root: the folder relative `img_path`s of the label file were joined to (`label_paths` writes them back
        relative to it), or None.
    """

    images: Any
    labels: LabelTable
    truth: LabelTable | None = None
    boxes: np.ndarray | None = None
    paths: list[str] | None = None
    name: str = ""
    class_names: list[str] | None = None
    groups: list[tuple[str, int]] | None = None
    skipped: list[dict] | None = None
    root: str | None = None

    def __post_init__(self):
        n = len(self.labels)
        for field, value in (
            ("images", self.images),
            ("truth", self.truth),
            ("boxes", self.boxes),
            ("paths", self.paths),
        ):
            if value is not None and len(value) != n:
                raise ValueError(f"Dataset {self.name!r}: {field} has {len(value)} rows but labels has {n}")
        if self.truth is not None and self.truth.num_classes != self.labels.num_classes:
            raise ValueError(
                f"Dataset {self.name!r}: truth has {self.truth.num_classes} classes, labels {self.labels.num_classes}"
            )
        c = self.labels.num_classes
        names = [str(i) for i in range(c)] if self.class_names is None else [str(x) for x in self.class_names]
        if len(names) != c:
            raise ValueError(f"Dataset {self.name!r}: {len(names)} class names for {c} classes")
        object.__setattr__(self, "class_names", names)
        if self.groups:
            groups = [(str(g), int(k)) for g, k in self.groups]
            if sum(k for _, k in groups) != c or min(k for _, k in groups) < 1:
                raise ValueError(f"Dataset {self.name!r}: groups {groups} do not cover the {c} classes")
            object.__setattr__(self, "groups", groups)
        else:
            object.__setattr__(self, "groups", None)

    @property
    def num_classes(self) -> int:
        return self.labels.num_classes

    @property
    def group_bounds(self) -> list[list[int]]:
        """`[[start, stop], ...]` class-id ranges of `groups` ([] without groups)."""
        bounds = np.cumsum([0] + [k for _, k in self.groups or []]).tolist()
        return [[a, b] for a, b in zip(bounds[:-1], bounds[1:])]

    def __len__(self) -> int:
        return len(self.labels)

    def label_paths(self) -> list[str] | None:
        """`paths` as the label file wrote them: those joined to `root` relative to it again, the rest as they are
        (what labels.json and the review list show; `write_label_file(root=...)` keeps them readable). An
        absolute `img_path` inside `root` comes back relative to it: the same file."""
        if self.paths is None or not self.root:
            return self.paths
        prefix = os.path.join(self.root, "")
        return [p[len(prefix) :] if p.startswith(prefix) else p for p in self.paths]

    def with_labels(self, table: LabelTable) -> "Dataset":
        """A copy of this dataset with training labels `table` (same rows, same class count)."""
        if len(table) != len(self):
            raise ValueError(
                f"with_labels: table has {len(table)} rows, dataset {self.name!r} has {len(self)}"
            )
        if table.num_classes != self.num_classes:
            raise ValueError(
                f"with_labels: table has {table.num_classes} classes, dataset has {self.num_classes}"
            )
        return dataclasses.replace(self, labels=table)

    def subset(self, indices) -> "Dataset":
        """The rows `indices` ([B] ints), in that order, with every field kept aligned."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        images = self.images.subset(indices) if hasattr(self.images, 'subset') else self.images[indices]
        return Dataset(
            images=images,
            labels=self.labels.subset(indices),
            truth=None if self.truth is None else self.truth.subset(indices),
            boxes=None if self.boxes is None else self.boxes[indices],
            paths=None if self.paths is None else [self.paths[int(i)] for i in indices],
            name=self.name,
            class_names=self.class_names,
            groups=self.groups,
            skipped=self.skipped,
            root=self.root,
        )


def load_image_dataset(
    label_file: str | os.PathLike,
    image_size: int,
    num_classes: int | None = None,
    root: str | os.PathLike | None = None,
    check: bool = True,
    num_workers: int | None = None,
) -> tuple[Dataset, dict]:
    """Reads a CS570 label file into a Dataset of lazily loaded images (with the file's class names, if any:
    `mlrelabel.data.labels.read_labels`).

    With `check=True` every image is decoded once (`mlrelabel.data.checks.drop_unreadable`, threads).
    Missing or unreadable files are dropped together with their label rows, so labels stay aligned
    with paths, and a warning names them.

    Returns:
      (dataset, report) with report = {'total': entries in the file, 'kept': rows in the dataset,
      'skipped': dropped rows, 'skipped_files': [{'path', 'reason'}, ...] for every dropped row} (also the
      dataset's `skipped`).
    """
    label_file = os.fspath(label_file)
    paths, table, class_names, base = read_labels_and_root(label_file, num_classes=num_classes, root=root)
    total = len(paths)
    report = {"total": total, "kept": total, "skipped": 0, "skipped_files": []}
    if check and total:
        keep, report = drop_unreadable(paths, label_file, num_workers=num_workers)
        if report["skipped"]:
            paths = [paths[i] for i in keep]
            table = table.subset(keep)
    name = os.path.splitext(os.path.basename(label_file))[0]
    dataset = Dataset(
        images=ImageFiles(paths, image_size),
        labels=table,
        paths=paths,
        name=name,
        class_names=class_names,
        skipped=report["skipped_files"],
        root=base,
    )
    return dataset, report


def digit_scenes_dataset(split: str, cache_dir: str | os.PathLike | None = None, **kwargs) -> Dataset:
    """The built-in digit-scenes split as a Dataset (arguments as `load_or_build_digit_scenes`).

    labels = the single visible label per image, truth = the hidden set of all digits present,
    boxes = each digit's box. Arrays are cached in `cache_dir` (None: no cache).
    """
    arrays = load_or_build_digit_scenes(cache_dir, split, **kwargs)
    return Dataset(
        images=arrays["image"],
        labels=LabelTable.from_single(arrays["label"], DIGIT_CLASSES),
        truth=LabelTable.from_dense(arrays["truth"]),
        boxes=arrays["boxes"],
        paths=None,
        name=f"digit_scenes_{split}",
    )


def with_full_labels(dataset: Dataset) -> Dataset:
    """The dataset with its hidden truth as its given labels (the visible label first, then the others)."""
    if dataset.truth is None:
        raise ValueError(f"with_full_labels: {dataset.name!r} has no multi-label truth")
    lists = [
        [v] + [c for c in t if c != v]
        for v, t in zip((row[0] for row in dataset.labels.to_lists()), dataset.truth.to_lists())
    ]
    return dataclasses.replace(dataset, labels=LabelTable.from_lists(lists, dataset.labels.num_classes))


def with_noisy_labels(dataset: Dataset, fraction: float, seed: int = 0) -> Dataset:
    """The dataset with a wrong given label on `round(fraction * N)` seeded images: a class drawn uniformly
    from those absent from the image's truth (images holding every class keep theirs). The truth is
    unchanged, so a given label is wrong exactly where it is not in the truth."""
    if dataset.truth is None:
        raise ValueError(f"with_noisy_labels: {dataset.name!r} has no multi-label truth")
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"with_noisy_labels: fraction must lie in [0, 1), got {fraction!r}")
    n, num_classes = len(dataset), dataset.labels.num_classes
    rng = np.random.default_rng([seed, 0x6E6F6973])
    flip = rng.permutation(n)[: int(round(fraction * n))]
    draws = rng.uniform(size=n)
    lists = dataset.labels.to_lists()
    truth = dataset.truth.to_lists()
    for i in flip:
        absent = [c for c in range(num_classes) if c not in truth[i]]
        if absent:
            lists[i] = [absent[min(int(draws[i] * len(absent)), len(absent) - 1)]]
    return dataclasses.replace(dataset, labels=LabelTable.from_lists(lists, num_classes))


def resize_and_crop(image: np.ndarray, size: int) -> np.ndarray:
    """`[H, W, 3]` uint8 → `[size, size, 3]` uint8: shorter side to `size`, then a centre crop, exactly as
    `ImageFiles` prepares files (predictions on in-memory images see what training saw)."""
    return _resize_crop(Image.fromarray(np.asarray(image, np.uint8)), size)
