"""Partial labels: every (image, class) entry is 1 (positive), 0 (negative) or -1 (unknown).

`PartialLabels` is a label source for `pipeline.gather` / `loop.fit(labels=...)`: `batch(indices)`
returns `{'target': [B, C] float32}` with -1 for unknown entries, which the partial losses of
`mlrelabel.partial.losses` read (Ben-Baruch et al. 2022, CSL). Storage is a dense int8 `[N, C]` matrix:
one byte per entry, i.e. 1.2 GB for Open Images (9M x 9.6k classes would be 86 GB, so very large C
needs a sparse store); fine up to moderate C (COCO, VOC, attribute data sets, tens of millions of
entries).

Partial JSON label files extend the CS570 format `{"data": [{"img_path", "labels", ...}]}`; each entry
is one of
  - `"targets": [t_0, ..., t_{C-1}]`, each 1, 0 or -1 (no other label fields), or
  - `"labels"` (positives) plus optional `"negatives"` and `"unknown"` lists of class ids. Without
    `"negatives"` every unlisted class is negative (the CS570 meaning: a full annotation); with
    `"negatives"` every unlisted class is unknown. `"unknown"` marks classes unknown explicitly.
A class may appear in one list only. Class names come from a top-level `"classes"` list or a `classes.txt`
beside the file (as for label files, `mlrelabel.data.labels.class_names_of`); entries may name their `"labels"`
in `"names"`. Errors name the file, the entry and the field.
"""

from __future__ import annotations

import json
import os
from typing import Sequence

import numpy as np

from mlrelabel.data.label_table import LabelFileError, LabelTable, _is_int
from mlrelabel.data.labels import _check_entry_names, class_id_list, names_and_count
from mlrelabel.io_utils import atomic_write_text

__all__ = ['PartialLabels', 'read_partial_label_file', 'write_partial_label_file']

POSITIVE, NEGATIVE, UNKNOWN = 1, 0, -1


class PartialLabels:
    """`targets [N, C]` int8 in {1, 0, -1}; a label source (`batch`) and a table of known entries."""

    def __init__(self, targets: np.ndarray, class_names: Sequence[str] | None = None):
        targets = np.asarray(targets)
        if targets.ndim != 2 or targets.shape[1] < 1:
            raise ValueError(f'PartialLabels: targets must be [N, C] with C >= 1, got shape {targets.shape}')
        if targets.dtype.kind == 'f' and not np.all(np.isfinite(targets)):
            raise ValueError('PartialLabels: targets contain NaN or inf')
        bad = ~np.isin(targets, (POSITIVE, NEGATIVE, UNKNOWN))
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise ValueError(
                f'PartialLabels: targets must be 1, 0 or -1, got {targets[r, c].item()!r} at row {r}, class {c}'
            )
        self.targets = targets.astype(np.int8)
        self.targets.setflags(write=False)
        if class_names is not None:
            class_names = [str(n) for n in class_names]
            if len(class_names) != targets.shape[1]:
                raise ValueError(
                    f'PartialLabels: {len(class_names)} class names for {targets.shape[1]} classes'
                )
        self.class_names = class_names

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_table(cls, table: LabelTable, class_names=None) -> 'PartialLabels':
        """Fully annotated labels: the table's positives are 1, everything else 0."""
        return cls(table.dense().astype(np.int8), class_names)

    @classmethod
    def from_lists(
        cls,
        positives: Sequence[Sequence[int]],
        num_classes: int,
        negatives: Sequence[Sequence[int] | None] | None = None,
        unknown: Sequence[Sequence[int] | None] | None = None,
    ) -> 'PartialLabels':
        """Rows from class-id lists with the JSON rule (module docstring): a row with a negatives list
        (not None) defaults to unknown, else to negative."""
        n = len(positives)
        out = np.zeros((n, num_classes), np.int8)
        for i in range(n):
            neg = None if negatives is None else negatives[i]
            unk = None if unknown is None else unknown[i]
            if neg is not None:
                out[i] = UNKNOWN
                out[i, list(neg)] = NEGATIVE
            if unk is not None:
                out[i, list(unk)] = UNKNOWN
            out[i, list(positives[i])] = POSITIVE
        return cls(out)

    # ------------------------------------------------------------------ access
    @property
    def num_classes(self) -> int:
        return int(self.targets.shape[1])

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def batch(self, indices) -> dict:
        """`{'target': [B, C] float32}` in {1, 0, -1} for rows `indices` (the label-source protocol)."""
        return {'target': self.dense(indices)}

    def dense(self, indices=None) -> np.ndarray:
        """`[B, C]` float32 in {1, 0, -1} (all rows when `indices` is None)."""
        rows = self.targets if indices is None else self.targets[np.asarray(indices, np.int64)]
        return rows.astype(np.float32)

    def subset(self, indices) -> 'PartialLabels':
        return PartialLabels(self.targets[np.asarray(indices, np.int64).reshape(-1)], self.class_names)

    def positives(self) -> LabelTable:
        """The known positives as a LabelTable (e.g. the `labels` of a Dataset)."""
        return LabelTable.from_dense((self.targets == POSITIVE).astype(np.float32))

    def counts(self) -> dict:
        """Per class `positive`, `negative`, `unknown` counts `[C]` int64 and the overall unknown fraction."""
        t = self.targets
        return {
            'positive': (t == POSITIVE).sum(0),
            'negative': (t == NEGATIVE).sum(0),
            'unknown': (t == UNKNOWN).sum(0),
            'unknown_fraction': float((t == UNKNOWN).mean()),
        }

    def __repr__(self) -> str:
        return f'PartialLabels({len(self)} images, {self.num_classes} classes, {self.counts()["unknown_fraction"]:.1%} unknown)'


# ---------------------------------------------------------------------- JSON files
def read_partial_label_file(
    path: str | os.PathLike, num_classes: int | None = None, root: str | os.PathLike | None = None
) -> tuple[list[str], PartialLabels]:
    """Reads a partial JSON label file (module docstring) -> `(paths, PartialLabels)`, row-aligned.

    `num_classes` None infers C from the class names, else the `targets` length or the largest class id + 1
    (the class names and a given `num_classes` must agree). Relative
    `img_path`s are joined to `root` (default: the file's folder). Raises LabelFileError naming the
    file, entry and field; duplicate `img_path`s are refused (they would count an image twice).
    """
    path = os.fspath(path)
    base = os.fspath(root) if root is not None else os.path.dirname(os.path.abspath(path))
    try:
        with open(path, encoding='utf-8') as f:
            doc = json.load(f)
    except json.JSONDecodeError as e:
        raise LabelFileError(f'{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}') from e
    if not isinstance(doc, dict) or not isinstance(doc.get('data'), list):
        raise LabelFileError(f'{path}: expected a JSON object with a "data" list at the top level')
    names, num_classes = names_and_count(doc, path, num_classes)
    paths, rows, seen = [], [], {}
    for i, entry in enumerate(doc['data']):
        where = f'{path}: entry {i}'
        if not isinstance(entry, dict):
            raise LabelFileError(f'{where}: expected an object, got {type(entry).__name__}')
        img = entry.get('img_path')
        if not isinstance(img, str) or not img:
            raise LabelFileError(f'{where}: field "img_path" must be a non-empty string, got {img!r}')
        if img in seen:
            raise LabelFileError(f'{where}: duplicate img_path {img!r} (first in entry {seen[img]})')
        seen[img] = i
        rows.append(_entry_row(entry, where, num_classes, names))
        paths.append(img if os.path.isabs(img) else os.path.join(base, img))
    if not rows:
        raise LabelFileError(f'{path}: "data" is empty')
    if num_classes is None:
        num_classes = _inferred_num_classes(rows, path)
    return paths, PartialLabels(_targets_array(rows, num_classes, path), names)


def _entry_row(entry: dict, where: str, num_classes: int | None, names) -> tuple[str, list | dict]:
    """One entry as `('targets', [C] values)` or `('lists', {field: class ids})`, checked."""
    if 'targets' in entry:
        extra = sorted({'labels', 'negatives', 'unknown'} & set(entry))
        if extra:
            raise LabelFileError(f'{where}: "targets" cannot be combined with {extra}')
        t = entry['targets']
        if not isinstance(t, list) or not t:
            raise LabelFileError(f'{where}: field "targets" must be a non-empty list, got {t!r}')
        for j, v in enumerate(t):
            if not _is_int(v) or v not in (POSITIVE, NEGATIVE, UNKNOWN):
                raise LabelFileError(f'{where}: field "targets"[{j}] = {v!r} must be 1, 0 or -1')
        if num_classes is not None and len(t) != num_classes:
            raise LabelFileError(f'{where}: field "targets" has {len(t)} values, expected {num_classes}')
        return ('targets', list(t))
    if 'labels' not in entry:
        raise LabelFileError(f'{where}: missing field "labels" (or "targets")')
    lists = {
        f: class_id_list(entry[f], f, where, num_classes)
        for f in ('labels', 'negatives', 'unknown')
        if f in entry
    }
    if 'names' in entry:
        _check_entry_names(entry['names'], lists['labels'], names, where)
    owner: dict[int, str] = {}
    for f, values in lists.items():
        for v in values:
            if v in owner and owner[v] != f:
                raise LabelFileError(f'{where}: class {v} is in both "{owner[v]}" and "{f}"')
            owner[v] = f
    return ('lists', lists)


def _inferred_num_classes(rows: list, path: str) -> int:
    """C from the rows of a file without class names: the `targets` length, else the largest id + 1."""
    lengths = {len(r) for kind, r in rows if kind == 'targets'}
    ids = [v for kind, r in rows if kind == 'lists' for values in r.values() for v in values]
    if len(lengths) > 1:
        raise LabelFileError(f'{path}: "targets" vectors have different lengths {sorted(lengths)}')
    num_classes = lengths.pop() if lengths else (max(ids) + 1 if ids else 0)
    if ids and max(ids) >= num_classes:
        raise LabelFileError(f'{path}: class id {max(ids)} exceeds the {num_classes} "targets" classes')
    if num_classes < 1:
        raise LabelFileError(f'{path}: no class ids at all; cannot infer num_classes, pass it explicitly')
    return num_classes


def _targets_array(rows: list, num_classes: int, path: str) -> np.ndarray:
    """`[N, C]` int8 targets in {1, 0, -1} from checked rows (unlisted classes negative, or unknown
    when the entry lists "negatives")."""
    out = np.zeros((len(rows), num_classes), np.int8)
    for i, (kind, r) in enumerate(rows):
        if kind == 'targets':
            if len(r) != num_classes:
                raise LabelFileError(
                    f'{path}: entry {i}: field "targets" has {len(r)} values, expected {num_classes}'
                )
            out[i] = r
            continue
        if 'negatives' in r:
            out[i] = UNKNOWN
            out[i, r['negatives']] = NEGATIVE
        out[i, r.get('unknown', [])] = UNKNOWN
        out[i, r['labels']] = POSITIVE
    return out


def write_partial_label_file(path: str | os.PathLike, paths: Sequence[str], labels: PartialLabels) -> None:
    """Writes `{"classes", "data": [{"img_path", "labels", "negatives"}]}` atomically (unlisted classes =
    unknown; `"classes"`: the labels' class names, `str(i)` without)."""
    if len(paths) != len(labels):
        raise ValueError(f'write_partial_label_file: {len(paths)} paths but {len(labels)} label rows')
    lines = []
    for p, row in zip(paths, labels.targets):
        entry = {
            'img_path': os.fspath(p),
            'labels': np.flatnonzero(row == POSITIVE).tolist(),
            'negatives': np.flatnonzero(row == NEGATIVE).tolist(),
        }
        lines.append(json.dumps(entry))
    names = labels.class_names or [str(c) for c in range(labels.num_classes)]
    atomic_write_text(
        path, '{"classes": ' + json.dumps(names) + ',\n"data": [\n' + ',\n'.join(lines) + '\n]}\n'
    )
