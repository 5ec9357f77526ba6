"""Multi-label and attribute data sets on disk -> `Dataset` (lazy `ImageFiles`) + `PartialLabels`.

Formats (each usable by every method: `Dataset.labels` holds the known positives):

- Annotation folder (MIRFLICKR-style): `<root>/images/im<id>.jpg` and `<root>/annotations/<class>.txt`,
  one image id per line. Classes are ordered by sorted file name (stable across runs and machines).
  An image absent from a class file is a negative of that class (`unlisted='negative'`, a full
  annotation) or unknown (`unlisted='unknown'`). Images that no class file lists are kept (all
  negative / unknown) and reported by name.
- Attribute CSV: a `filename` column plus one column per attribute group (e.g. neck, sleeve_length,
  pattern); each cell is the group's class index or `#N/A` / empty = unknown. Group g with K_g
  classes owns the flat classes `[o_g, o_g + K_g)`, named `<group>=<k>`; a known value sets its class
  to 1 and the rest of the group to 0, an unknown one sets the whole group to -1. Groups and K_g come
  from the header and the largest value (the training file's, reused for validation), or from
  `groups` (e.g. 'neck:7,sleeve_length:4').
- Partial JSON (`mlrelabel.data.partial_labels`): CS570 entries with "negatives"/"unknown" or "targets".

Every problem in a file (unknown attribute value, missing image, duplicate filename or id, malformed
line) raises `FormatError` naming the file and the line (or JSON entry). Without declared groups, a column
whose largest value leaves most of its inferred classes unused (e.g. one typo `67` in a 0..6 column would add
60 empty classes) is refused the same way, naming the row and column. Unreadable images are skipped, counted and named by
`mlrelabel.data.checks.drop_unreadable`, as for every source.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import re
import warnings
from typing import Sequence

import numpy as np

from mlrelabel.data.checks import drop_unreadable
from mlrelabel.data.label_table import LabelFileError
from mlrelabel.data.partial_labels import NEGATIVE, POSITIVE, UNKNOWN, PartialLabels, read_partial_label_file
from mlrelabel.data.sources import Dataset, ImageFiles
from mlrelabel.errors import ConfigError, DataError

__all__ = [
    'FormatError',
    'read_annotation_folder',
    'read_attribute_csv',
    'read_partial_json',
    'parse_groups',
    'load_partial_splits',
    'load_source',
]

UNKNOWN_CELLS = ('', '#N/A')
_ID_FILE = re.compile(r'^im(\d+)\.jpe?g$', re.IGNORECASE)
_MAX_REPORTED = 20


class FormatError(DataError):
    """A malformed data-set file; the message starts with `<file>:<line>:`."""


def _dataset(
    paths: list[str], labels: PartialLabels, image_size: int, name: str, groups=None, root=None
) -> Dataset:
    """`root`: the folder relative file names were joined to (`Dataset.label_paths` writes them back relative)."""
    return Dataset(
        images=ImageFiles(paths, image_size),
        labels=labels.positives(),
        paths=paths,
        name=name,
        class_names=labels.class_names,
        groups=groups or None,
        root=root,
    )


# ---------------------------------------------------------------------- annotation folder
def _images_by_id(image_dir: str) -> dict[int, str]:
    """`{image id: file name}` of the `im<id>.jpg` files in `image_dir`; a reused id is a FormatError."""
    on_disk: dict[int, str] = {}
    for f in sorted(os.listdir(image_dir)):
        if m := _ID_FILE.match(f):
            if int(m.group(1)) in on_disk:
                raise FormatError(
                    f'{image_dir}/{f}: image id {int(m.group(1))} already used by {on_disk[int(m.group(1))]}'
                )
            on_disk[int(m.group(1))] = f
    return on_disk


def _class_members(path: str, on_disk: dict[int, str], image_dir: str) -> set[int]:
    """The image ids listed in the class file `path`, one per line, each checked against `on_disk`."""
    seen: dict[int, int] = {}
    with open(path, encoding='utf-8') as f:
        for line_no, line in enumerate(f, start=1):
            text = line.strip()
            if not text:
                continue
            if not text.isdigit():
                raise FormatError(
                    f'{path}:{line_no}: expected an image id (a non-negative integer), got {text!r}'
                )
            image_id = int(text)
            if image_id in seen:
                raise FormatError(
                    f'{path}:{line_no}: duplicate image id {image_id} (first on line {seen[image_id]})'
                )
            if image_id not in on_disk:
                raise FormatError(
                    f'{path}:{line_no}: image id {image_id}: missing image {os.path.join(image_dir, f"im{image_id}.jpg")}'
                )
            seen[image_id] = line_no
    return set(seen)


def read_annotation_folder(
    root: str | os.PathLike, image_size: int, unlisted: str = 'negative'
) -> tuple[Dataset, PartialLabels, dict]:
    """`<root>/images/` + `<root>/annotations/<class>.txt` -> `(dataset, labels, report)`.

    Rows are ordered by image id. `report`: `{'classes', 'images', 'unlisted': number of images in no
    class file, 'unlisted_files': the first 20 of them}`; they are also named in a warning.
    """
    root = os.fspath(root)
    if unlisted not in ('negative', 'unknown'):
        raise ValueError(
            f"read_annotation_folder: unlisted must be 'negative' or 'unknown', got {unlisted!r}"
        )
    image_dir, ann_dir = os.path.join(root, 'images'), os.path.join(root, 'annotations')
    for d in (image_dir, ann_dir):
        if not os.path.isdir(d):
            raise FormatError(f'{d}: no such folder (an annotation folder holds images/ and annotations/)')
    class_files = sorted(f for f in os.listdir(ann_dir) if f.endswith('.txt'))
    if not class_files:
        raise FormatError(f'{ann_dir}: no <class>.txt files')
    on_disk = _images_by_id(image_dir)
    members = [_class_members(os.path.join(ann_dir, name), on_disk, image_dir) for name in class_files]
    ids = sorted(on_disk)
    if not ids:
        raise FormatError(f'{image_dir}: no im<id>.jpg images')
    listed = set().union(*members)
    nowhere = [i for i in ids if i not in listed]
    row = {image_id: r for r, image_id in enumerate(ids)}
    targets = np.full((len(ids), len(class_files)), NEGATIVE if unlisted == 'negative' else UNKNOWN, np.int8)
    for c, m in enumerate(members):
        targets[[row[i] for i in m], c] = POSITIVE
    names = [os.path.splitext(f)[0] for f in class_files]
    files = [on_disk[i] for i in nowhere]
    if nowhere:
        more = f' and {len(files) - _MAX_REPORTED} more' if len(files) > _MAX_REPORTED else ''
        warnings.warn(
            f'{root}: {len(files)} images are listed in no class file: '
            f'{", ".join(files[:_MAX_REPORTED])}{more}',
            RuntimeWarning,
            stacklevel=2,
        )
    labels = PartialLabels(targets, names)
    paths = [os.path.join(image_dir, on_disk[i]) for i in ids]
    report = {
        'classes': names,
        'images': len(ids),
        'unlisted': len(nowhere),
        'unlisted_files': files[:_MAX_REPORTED],
    }
    return _dataset(paths, labels, image_size, os.path.basename(os.path.normpath(root))), labels, report


# ---------------------------------------------------------------------- attribute CSV
def parse_groups(spec: str) -> list[tuple[str, int]] | None:
    """'neck:7,sleeve_length:4' -> [('neck', 7), ('sleeve_length', 4)]; '' -> None (read from the data)."""
    if not spec.strip():
        return None
    out = []
    for part in spec.split(','):
        name, sep, count = part.strip().partition(':')
        if not sep or not name or not count.strip().isdigit() or int(count) < 1:
            raise ValueError(
                f"attribute groups {spec!r}: expected 'name:count,...' with counts >= 1, got {part!r}"
            )
        out.append((name.strip(), int(count)))
    return out


def _csv_columns(path: str, header: list[str], groups) -> tuple[list[str], list[int] | None]:
    """The attribute columns to read and their class counts (None: infer them), checked against `header`."""
    if 'filename' not in header:
        raise FormatError(f'{path}:1: the header has no "filename" column: {header}')
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise FormatError(f'{path}:1: duplicate columns {dup}')
    if groups is None:
        columns = [h for h in header if h != 'filename']
        sizes = None
    else:
        columns = [g for g, _ in groups]
        missing = [g for g in columns if g not in header]
        if missing:
            raise FormatError(f'{path}:1: attribute columns {missing} not in the header {header}')
        sizes = [int(k) for _, k in groups]
    if not columns:
        raise FormatError(f'{path}:1: no attribute columns besides "filename"')
    return columns, sizes


def _csv_values(where: str, cells: list[str], columns: list[str], sizes: list[int] | None) -> list[int]:
    """One row's attribute cells as class indices (-1 = unknown); FormatError at `where` (`path:line`)."""
    row = []
    for g, (column, cell) in enumerate(zip(columns, cells)):
        cell = cell.strip()
        if cell in UNKNOWN_CELLS:
            row.append(-1)
            continue
        if not cell.lstrip('+').isdigit():
            raise FormatError(f'{where}: {column}={cell!r} is not a class index (an integer >= 0, or #N/A)')
        v = int(cell)
        if sizes is not None and v >= sizes[g]:
            raise FormatError(
                f'{where}: unknown {column} value {v}: the group has {sizes[g]} classes (0..{sizes[g] - 1})'
            )
        row.append(v)
    return row


def _read_csv_rows(path: str, images_dir: str, groups):
    """`(files, values [N, G] int64, lines, columns, sizes)` of an attribute CSV, every row checked."""
    with open(path, newline='', encoding='utf-8') as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise FormatError(f'{path}:1: empty file (expected a header with a filename column)')
        header = [h.strip() for h in header]
        columns, sizes = _csv_columns(path, header, groups)
        fcol, cols = header.index('filename'), [header.index(g) for g in columns]
        files, values, lines, seen = [], [], [], {}
        for record in reader:
            line = reader.line_num
            if not record or all(not c.strip() for c in record):
                continue
            if len(record) != len(header):
                raise FormatError(f'{path}:{line}: {len(record)} fields, the header has {len(header)}')
            name = record[fcol].strip()
            if not name:
                raise FormatError(f'{path}:{line}: empty filename')
            if name in seen:
                raise FormatError(f'{path}:{line}: duplicate filename {name!r} (first on line {seen[name]})')
            seen[name] = line
            image = name if os.path.isabs(name) else os.path.join(images_dir, name)
            if not os.path.isfile(image):
                raise FormatError(f'{path}:{line}: missing image {image}')
            values.append(_csv_values(f'{path}:{line}', [record[c] for c in cols], columns, sizes))
            files.append(image)
            lines.append(line)
    if not files:
        raise FormatError(f'{path}: no data rows after the header')
    return files, np.asarray(values, np.int64), lines, columns, sizes


def _inferred_sizes(path: str, columns: list[str], values: np.ndarray, lines: list[int]) -> list[int]:
    """Each group's class count as its largest value + 1; refuses a stray value that leaves most empty."""
    sizes = []
    for g, column in enumerate(columns):
        known = values[:, g][values[:, g] >= 0]
        if not known.size:
            raise FormatError(
                f'{path}: column {column!r} has no known value; give its class count in the groups'
            )
        sizes.append(int(known.max()) + 1)
        unused = np.setdiff1d(np.arange(sizes[-1]), known)
        if unused.size > sizes[-1] - unused.size:  # most inferred classes empty: a stray value, not data
            row = int(np.argmax(values[:, g]))
            raise FormatError(
                f'{path}:{lines[row]}: {column}={values[row, g]} makes the group {sizes[-1]} classes, but '
                f'{unused.size} of them never occur ({", ".join(map(str, unused[:10].tolist()))}'
                f'{", ..." if unused.size > 10 else ""}): a typo? If those classes exist, declare the '
                f"groups: --config.data.attribute_groups='{column}:{sizes[-1]},...'"
            )
    return sizes


def _group_targets(values: np.ndarray, sizes: list[int]) -> np.ndarray:
    """`[N, sum(sizes)]` int8: per group, its class positive, the others negative, all unknown if -1."""
    targets = np.zeros((values.shape[0], sum(sizes)), np.int8)
    start = 0
    for g, k in enumerate(sizes):
        v = values[:, g]
        block = np.zeros((values.shape[0], k), np.int8)
        block[v < 0] = UNKNOWN
        known = np.flatnonzero(v >= 0)
        block[known, v[known]] = POSITIVE
        targets[:, start : start + k] = block
        start += k
    return targets


def read_attribute_csv(
    path: str | os.PathLike,
    image_size: int,
    images_dir: str | os.PathLike | None = None,
    groups: Sequence[tuple[str, int]] | None = None,
) -> tuple[Dataset, PartialLabels, list[tuple[str, int]]]:
    """An attribute CSV -> `(dataset, labels, groups)` (module docstring). `images_dir` defaults to
    `<csv folder>/images`. `groups` None: every non-`filename` column, K_g = largest value + 1."""
    path = os.fspath(path)
    images_dir = (
        os.fspath(images_dir)
        if images_dir
        else os.path.join(os.path.dirname(os.path.abspath(path)), 'images')
    )
    files, values, lines, columns, sizes = _read_csv_rows(path, images_dir, groups)
    if sizes is None:
        sizes = _inferred_sizes(path, columns, values, lines)
    groups = [(c, k) for c, k in zip(columns, sizes)]
    names = [f'{c}={j}' for c, k in groups for j in range(k)]
    labels = PartialLabels(_group_targets(values, sizes), names)
    name = os.path.splitext(os.path.basename(path))[0]
    return _dataset(files, labels, image_size, name, groups, root=images_dir), labels, groups


# ---------------------------------------------------------------------- partial JSON
def read_partial_json(path, image_size: int, num_classes: int | None = None) -> tuple[Dataset, PartialLabels]:
    """A partial JSON label file -> `(dataset, labels)`; missing images raise naming the entry."""
    try:
        paths, labels = read_partial_label_file(path, num_classes=num_classes)
    except LabelFileError as e:
        raise FormatError(str(e)) from e
    for i, p in enumerate(paths):
        if not os.path.isfile(p):
            raise FormatError(f'{os.fspath(path)}: entry {i}: missing image {p}')
    name, root = os.path.splitext(os.path.basename(path))[0], os.path.dirname(os.path.abspath(path))
    return _dataset(paths, labels, image_size, name, root=root), labels


# ---------------------------------------------------------------------- from the config
def _read(config, path: str, groups, image_size: int | None = None):
    d = config.data
    size = image_size or d.image_size
    if d.source == 'annotation_folder':
        ds, labels, _ = read_annotation_folder(path, size, unlisted=d.unlisted)
        return ds, labels, []
    if d.source == 'attribute_csv':
        return read_attribute_csv(path, size, d.images_dir or None, groups)
    if d.source == 'partial_json':
        ds, labels = read_partial_json(path, size, d.num_classes or None)
        return ds, labels, []
    raise ValueError(f'config.data.source={d.source!r} is not a file format of mlrelabel.data.formats')


def _read_checked(config, path: str, groups, verify_images: bool):
    """`_read`, then (with `data.check_images` and `verify_images`) unreadable images dropped and named."""
    ds, labels, groups = _read(config, path, groups)
    if verify_images and config.data.check_images:
        keep, report = drop_unreadable(ds.paths, path)
        if report['skipped']:
            ds, labels = (
                dataclasses.replace(ds.subset(keep), skipped=report['skipped_files']),
                labels.subset(keep),
            )
    return ds, labels, groups


def load_partial_splits(config, verify_images: bool = True) -> dict:
    """`{'train', 'val' (Datasets), 'train_labels' (PartialLabels), 'val_targets' [N, C] int8, 'groups',
    'class_names'}` from `config.data.train_path` / `val_path` (or a seeded `val_fraction` hold-out).
    `verify_images=False` reads the annotations only (no image is decoded)."""
    d = config.data
    if not d.train_path:
        raise ConfigError(f'config.data.source={d.source} needs --config.data.train_path')
    groups = parse_groups(d.attribute_groups)
    train, train_labels, groups = _read_checked(config, d.train_path, groups, verify_images)
    if d.num_classes and d.num_classes != train.num_classes:
        shown = ', '.join(train.class_names[:10]) + (', ...' if train.num_classes > 10 else '')
        raise FormatError(
            f'{d.train_path}: {train.num_classes} classes ({shown}), but config.data.num_classes='
            f'{d.num_classes}; they must agree (0 = from the data)'
        )
    if d.val_path:
        val, val_labels, _ = _read_checked(config, d.val_path, groups or None, verify_images)
        if (
            val_labels.num_classes != train_labels.num_classes
            or val_labels.class_names != train_labels.class_names
        ):
            raise FormatError(
                f'{d.val_path}: classes {val_labels.class_names} differ from {d.train_path}\'s '
                f'{train_labels.class_names}'
            )
    else:
        n = len(train)
        order = np.random.default_rng(d.seed).permutation(n)
        n_val = max(1, int(round(n * d.val_fraction)))
        if n_val >= n:
            raise ConfigError(f'config.data.val_fraction={d.val_fraction} leaves no training images of {n}')
        val, val_labels = train.subset(order[:n_val]), train_labels.subset(order[:n_val])
        val = dataclasses.replace(val, skipped=None)  # the file's skipped images count once, with train
        train, train_labels = train.subset(order[n_val:]), train_labels.subset(order[n_val:])
    return {
        'train': train,
        'val': val,
        'train_labels': train_labels,
        'val_targets': val_labels.targets,
        'groups': list(groups),
        'class_names': train_labels.class_names,
    }


def training_files(config) -> tuple[list[str], list[str]]:
    """`(image paths, class names)` of `config.data.train_path` (every row, before any hold-out), from the
    annotations alone: no image is decoded, so `data.image_size` may still be unknown (data-driven defaults)."""
    groups = parse_groups(config.data.attribute_groups)
    ds, _, _ = _read(config, config.data.train_path, groups, image_size=1)  # image size: never decoded here
    return ds.paths, list(ds.class_names)


def split_files(config) -> dict:
    """`{'train', 'val'}`: the file each split is read from (for messages)."""
    d = config.data
    return {'train': d.train_path, 'val': d.val_path or f'{d.train_path} (val_fraction hold-out)'}


def load_source(config, workdir: str) -> dict:
    """`common.EXTERNAL_SOURCES` entry point: `{'train', 'val'}` Datasets (labels = known positives)."""
    splits = load_partial_splits(config)
    return {'train': splits['train'], 'val': splits['val']}
