"""Ragged multi-label tables: the positive classes of every image in CSR form.

A `LabelTable` stores the positive classes of every image (`offsets`, `classes`), with an optional
confidence score per positive. It is never expanded to a dense `[N, C]` matrix as a whole (ImageNet has
1.28M images x 1000 classes); `dense(indices)` expands just one batch. Label files (reading and writing
tables with their class names) are `mlrelabel.data.labels`, which re-exports everything here.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, Sequence

import numpy as np

from mlrelabel.errors import DataError

__all__ = ["LabelTable", "LabelFileError"]


class LabelFileError(DataError):
    """A label file (or a list of labels) is malformed; the message names the file and entry."""


def _is_int(value: Any) -> bool:
    """True for Python/NumPy integers, False for bools, floats, strings."""
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value: Any) -> bool:
    """True for finite real numbers that are not bools."""
    return (
        isinstance(value, (numbers.Real, np.number))
        and not isinstance(value, (bool, np.bool_))
        and math.isfinite(float(value))
    )


def _gather_positions(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Flat positions of rows that begin at `starts` with `lengths`, concatenated in order.

    Vectorised equivalent of `concat([arange(s, s + l) for s, l in zip(starts, lengths)])`.
    """
    total = int(lengths.sum())
    if total == 0:
        return np.zeros((0,), np.int64)
    out_starts = np.cumsum(lengths) - lengths  # where each row begins in the output
    return np.repeat(starts - out_starts, lengths) + np.arange(total, dtype=np.int64)


@dataclasses.dataclass(frozen=True, eq=False)
class LabelTable:
    """Positive classes per image in CSR form.

    Attributes:
      num_classes: C, the number of classes; every class id is in [0, C).
      offsets: [N + 1] int64, row i's labels are `classes[offsets[i]:offsets[i + 1]]`.
      classes: [nnz] int32 class ids, unique within a row, in insertion order.
      scores: [nnz] float32 confidence of each positive, or None (all labels certain).
    """

    num_classes: int
    offsets: np.ndarray
    classes: np.ndarray
    scores: np.ndarray | None = None

    def __post_init__(self):
        num_classes = self.num_classes
        if not _is_int(num_classes) or num_classes < 1:
            raise ValueError(f"LabelTable: num_classes must be a positive integer, got {num_classes!r}")
        offsets = np.asarray(self.offsets)
        classes = np.asarray(self.classes)
        if offsets.ndim != 1 or offsets.shape[0] < 1 or offsets.dtype.kind not in "iu":
            raise ValueError(
                f"LabelTable: offsets must be a 1-d integer array [N + 1], got {offsets.dtype} {offsets.shape}"
            )
        if classes.ndim != 1 or (classes.size and classes.dtype.kind not in "iu"):
            raise ValueError(
                f"LabelTable: classes must be a 1-d integer array [nnz], got {classes.dtype} {classes.shape}"
            )
        offsets = offsets.astype(np.int64, copy=False)
        if offsets[0] != 0 or offsets[-1] != classes.shape[0] or np.any(np.diff(offsets) < 0):
            raise ValueError(
                "LabelTable: offsets must start at 0, be non-decreasing and end at len(classes) "
                f"({classes.shape[0]}); got offsets[0]={offsets[0]}, offsets[-1]={offsets[-1]}"
            )
        if classes.size and (classes.min() < 0 or classes.max() >= num_classes):
            raise ValueError(
                f"LabelTable: class ids must lie in [0, {num_classes}), got range "
                f"[{classes.min()}, {classes.max()}]"
            )
        classes = classes.astype(np.int32, copy=False)
        scores = self.scores
        if scores is not None:
            scores = np.asarray(scores, dtype=np.float32)
            if scores.shape != classes.shape:
                raise ValueError(
                    f"LabelTable: scores must have the shape of classes {classes.shape}, got {scores.shape}"
                )
        object.__setattr__(self, "num_classes", int(num_classes))
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "scores", scores)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_lists(
        cls,
        lists: Sequence[Sequence[int]],
        num_classes: int,
        scores: Sequence[Sequence[float]] | None = None,
    ) -> "LabelTable":
        """Builds a table from one list of class ids per image.

        Ids must be integers (not bools or floats) in [0, num_classes). Repeated ids in a row are
        dropped, keeping the first occurrence (and its score). Raises `LabelFileError` naming the
        offending entry index.
        """
        if not _is_int(num_classes) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        lengths = np.zeros((len(lists),), np.int64)
        for i, row in enumerate(lists):
            if isinstance(row, (str, bytes, dict)) or not hasattr(row, "__len__"):
                raise LabelFileError(f"entry {i}: labels must be a list of integers, got {row!r}")
            lengths[i] = len(row)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        flat = [v for row in lists for v in row]
        other_types = {type(v) for v in flat} - {int}  # a set of types: cheap even for 1M labels
        if any(
            not issubclass(t, (numbers.Integral, np.integer)) or issubclass(t, (bool, np.bool_))
            for t in other_types
        ):
            pos = next(p for p, v in enumerate(flat) if not _is_int(v))
            i = int(np.searchsorted(offsets, pos, side="right") - 1)
            raise LabelFileError(
                f"entry {i}: label {flat[pos]!r} (position {pos - offsets[i]}) is not an integer"
            )
        try:
            classes = np.asarray(flat, dtype=np.int64) if flat else np.zeros((0,), np.int64)
        except OverflowError as e:
            raise LabelFileError(f"a label does not fit in int64 (range [0, {num_classes}))") from e
        bad = np.flatnonzero((classes < 0) | (classes >= num_classes))
        if bad.size:
            pos = int(bad[0])
            i = int(np.searchsorted(offsets, pos, side="right") - 1)
            raise LabelFileError(f"entry {i}: label {int(classes[pos])} is out of range [0, {num_classes})")
        score_arr = None
        if scores is not None:
            if len(scores) != len(lists):
                raise LabelFileError(f"scores has {len(scores)} entries but labels has {len(lists)}")
            for i, (row, srow) in enumerate(zip(lists, scores)):
                if isinstance(srow, (str, bytes, dict)) or not hasattr(srow, "__len__"):
                    raise LabelFileError(f"entry {i}: scores must be a list of numbers, got {srow!r}")
                if len(srow) != len(row):
                    raise LabelFileError(
                        f"entry {i}: {len(srow)} scores for {len(row)} labels (lengths must match)"
                    )
            flat_scores = [s for srow in scores for s in srow]
            for pos, s in enumerate(flat_scores):
                if not _is_number(s):
                    i = int(np.searchsorted(offsets, pos, side="right") - 1)
                    raise LabelFileError(
                        f"entry {i}: score {s!r} (position {pos - offsets[i]}) is not a finite number"
                    )
            score_arr = np.asarray(flat_scores, dtype=np.float32).reshape(-1)
        return cls._dedup(num_classes, offsets, classes, score_arr)

    @classmethod
    def _dedup(cls, num_classes, offsets, classes, scores) -> "LabelTable":
        """Drops repeated (row, class) pairs, keeping the first occurrence; rows keep their order."""
        rows = np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(offsets))
        key = rows * num_classes + classes.astype(np.int64)
        _, first = np.unique(key, return_index=True)
        if first.size == key.size:
            return cls(num_classes, offsets, classes, scores)
        keep = np.zeros(key.shape, bool)
        keep[first] = True
        counts = np.bincount(rows[keep], minlength=len(offsets) - 1)
        new_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(
            num_classes,
            new_offsets,
            classes[keep],
            None if scores is None else scores[keep],
        )

    @classmethod
    def from_single(cls, labels: np.ndarray, num_classes: int) -> "LabelTable":
        """One class per image: `labels` [N] integers in [0, num_classes)."""
        labels = np.asarray(labels)
        if labels.ndim != 1 or (labels.size and labels.dtype.kind not in "iu"):
            raise ValueError(
                f"from_single: labels must be a 1-d integer array, got {labels.dtype} {labels.shape}"
            )
        bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
        if bad.size:
            raise LabelFileError(
                f"entry {int(bad[0])}: label {int(labels[bad[0]])} is out of range [0, {num_classes})"
            )
        return cls(num_classes, np.arange(labels.shape[0] + 1, dtype=np.int64), labels.astype(np.int32))

    @classmethod
    def from_dense(cls, multi_hot: np.ndarray, scores: np.ndarray | None = None) -> "LabelTable":
        """From a multi-hot `[N, C]` array (nonzero = positive); `scores` [N, C] gives each positive's score.

        Classes within a row come out in ascending order.
        """
        multi_hot = np.asarray(multi_hot)
        if multi_hot.ndim != 2:
            raise ValueError(f"from_dense: expected a [N, C] array, got shape {multi_hot.shape}")
        positive = multi_hot != 0
        rows, cols = np.nonzero(positive)
        counts = positive.sum(axis=1)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        score_arr = None
        if scores is not None:
            scores = np.asarray(scores)
            if scores.shape != multi_hot.shape:
                raise ValueError(
                    f"from_dense: scores shape {scores.shape} != multi_hot shape {multi_hot.shape}"
                )
            score_arr = scores[rows, cols].astype(np.float32)
        return cls(int(multi_hot.shape[1]), offsets, cols.astype(np.int32), score_arr)

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return int(self.offsets.shape[0] - 1)

    def num_labels(self) -> np.ndarray:
        """[N] int64 number of positives per image."""
        return np.diff(self.offsets)

    def labels_of(self, i: int) -> np.ndarray:
        """Class ids of image `i` (int32 array, insertion order)."""
        i = self._check_index(i)
        return self.classes[self.offsets[i] : self.offsets[i + 1]]

    def scores_of(self, i: int) -> np.ndarray | None:
        """Scores of image `i`'s labels, or None when the table has no scores."""
        i = self._check_index(i)
        if self.scores is None:
            return None
        return self.scores[self.offsets[i] : self.offsets[i + 1]]

    def to_lists(self) -> list[list[int]]:
        """Class ids per image as Python lists."""
        flat = self.classes.tolist()
        bounds = self.offsets.tolist()
        return [flat[bounds[i] : bounds[i + 1]] for i in range(len(self))]

    def scores_to_lists(self) -> list[list[float]] | None:
        """Scores per image as Python lists (None when the table has no scores)."""
        if self.scores is None:
            return None
        flat = self.scores.tolist()
        bounds = self.offsets.tolist()
        return [flat[bounds[i] : bounds[i + 1]] for i in range(len(self))]

    def _check_index(self, i: int) -> int:
        if not _is_int(i):
            raise TypeError(f"row index must be an integer, got {i!r}")
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"row {i} out of range for a table of {n} rows")
        return int(i) % n

    def _check_indices(self, indices) -> np.ndarray:
        if indices is None:
            return np.arange(len(self), dtype=np.int64)
        indices = np.asarray(indices)
        if indices.ndim != 1 or (indices.size and indices.dtype.kind not in "iu"):
            raise ValueError(f"indices must be a 1-d integer array, got {indices.dtype} {indices.shape}")
        indices = indices.astype(np.int64)
        n = len(self)
        if indices.size and (indices.min() < -n or indices.max() >= n):
            raise IndexError(f"indices out of range for a table of {n} rows")
        return np.where(indices < 0, indices + n, indices)

    def dense(self, indices=None) -> np.ndarray:
        """Multi-hot targets `[B, C]` float32 for rows `indices` ([B] ints; None = all rows)."""
        indices = self._check_indices(indices)
        starts = self.offsets[indices]
        lengths = self.offsets[indices + 1] - starts
        positions = _gather_positions(starts, lengths)
        out = np.zeros((indices.shape[0], self.num_classes), np.float32)
        out[np.repeat(np.arange(indices.shape[0]), lengths), self.classes[positions]] = 1.0
        return out

    def subset(self, indices) -> "LabelTable":
        """The table of rows `indices` ([B] ints), in that order."""
        indices = self._check_indices(indices)
        starts = self.offsets[indices]
        lengths = self.offsets[indices + 1] - starts
        positions = _gather_positions(starts, lengths)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        scores = None if self.scores is None else self.scores[positions]
        return LabelTable(self.num_classes, offsets, self.classes[positions], scores)

    def replace_rows(self, indices, other: "LabelTable") -> "LabelTable":
        """A new table whose row `indices[j]` is `other`'s row j; all other rows are unchanged.

        Used to write the labels of a relabeled subset back into the full table. If only one of
        the two tables has scores, the other's labels get score 1.0 (certain labels).
        """
        indices = self._check_indices(indices)
        if len(other) != indices.shape[0]:
            raise ValueError(f"replace_rows: {indices.shape[0]} indices but other has {len(other)} rows")
        if other.num_classes != self.num_classes:
            raise ValueError(f"replace_rows: num_classes differ ({self.num_classes} vs {other.num_classes})")
        if np.unique(indices).shape[0] != indices.shape[0]:
            raise ValueError("replace_rows: indices must be unique")
        lengths = self.num_labels().copy()
        starts = self.offsets[:-1].copy()
        lengths[indices] = other.num_labels()
        starts[indices] = self.classes.shape[0] + other.offsets[:-1]
        positions = _gather_positions(starts, lengths)
        all_classes = np.concatenate([self.classes, other.classes])
        scores = None
        if self.scores is not None or other.scores is not None:
            mine = self.scores if self.scores is not None else np.ones_like(self.classes, np.float32)
            theirs = other.scores if other.scores is not None else np.ones_like(other.classes, np.float32)
            scores = np.concatenate([mine, theirs])[positions]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return LabelTable(self.num_classes, offsets, all_classes[positions], scores)

    def equals(self, other: "LabelTable", check_scores: bool = True) -> bool:
        """True when both tables hold the same rows (and, if `check_scores`, the same scores)."""
        if not isinstance(other, LabelTable):
            return False
        same = (
            self.num_classes == other.num_classes
            and np.array_equal(self.offsets, other.offsets)
            and np.array_equal(self.classes, other.classes)
        )
        if not same or not check_scores:
            return same
        if self.scores is None or other.scores is None:
            return self.scores is None and other.scores is None
        return bool(np.array_equal(self.scores, other.scores))

    def __repr__(self) -> str:
        return (
            f"LabelTable(rows={len(self)}, num_classes={self.num_classes}, "
            f"positives={self.classes.shape[0]}, scores={'yes' if self.scores is not None else 'no'})"
        )
