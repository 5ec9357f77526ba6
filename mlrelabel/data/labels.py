"""CS570 JSON label files with class names, over the ragged `LabelTable` (`mlrelabel.data.label_table`).

Label files use the CS570 relabeler format::

    {"classes": ["tench", ..., "toilet tissue"],
     "data": [{"img_path": "n01440764/x.JPEG", "labels": [0, 391], "names": ["tench", "sea snake"],
               "scores": [0.93, 0.41]}, ...]}

`scores` is optional. A label without a score means a certain label (score 1.0) wherever a table
with scores is needed. Class names are optional too: a top-level `"classes"` list (index = class id),
else a `classes.txt` beside the file (one name per line); entries may repeat their labels' `"names"`,
which must then match the list. Indices stay the labels; names travel beside them.

Relative `img_path`s are joined to the file's folder, or to a top-level `"root"` folder when the file has one
(relative to the file's folder). The label files a run writes keep the paths as the user wrote them, with the
folder they are relative to as `"root"` (`write_label_file(root=...)`), so they stay readable from anywhere.
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

from mlrelabel.data.checks import check_unique
from mlrelabel.data.label_table import LabelFileError, LabelTable, _is_int, _is_number
from mlrelabel.io_utils import atomic_write_text

__all__ = [
    "LabelTable",
    "LabelFileError",
    "CLASSES_TXT",
    "class_names_of",
    "label_root",
    "read_classes_txt",
    "read_labels",
    "read_labels_and_root",
    "read_label_file",
    "write_label_file",
]

CLASSES_TXT = "classes.txt"  # the class names of the label files in a folder, one per line


# ---------------------------------------------------------------------- class names
def _check_names(names: Any, where: str) -> list[str]:
    """`names` as a list of distinct non-empty strings, else LabelFileError naming `where` and the position."""
    if not isinstance(names, list) or not names:
        raise LabelFileError(f"{where}: expected a non-empty list of class names (strings), got {names!r}")
    first: dict[str, int] = {}
    for i, n in enumerate(names):
        if not isinstance(n, str) or not n.strip():
            raise LabelFileError(f"{where}: class {i}: expected a non-empty string, got {n!r}")
        if n in first:
            raise LabelFileError(f"{where}: class {i}: name {n!r} is already class {first[n]}")
        first[n] = i
    return list(names)


def read_classes_txt(path: str | os.PathLike) -> list[str]:
    """`classes.txt`: one class name per line (class id = position; blank lines ignored)."""
    path = os.fspath(path)
    names, line_of = [], {}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            name = line.strip()
            if not name:
                continue
            if name in line_of:
                raise LabelFileError(f"{path}:{line_no}: class name {name!r} repeats line {line_of[name]}")
            line_of[name] = line_no
            names.append(name)
    if not names:
        raise LabelFileError(f"{path}: no class names (expected one per line)")
    return names


def class_names_of(doc: Any, path: str | os.PathLike) -> tuple[list[str] | None, str]:
    """The class names of the label file `path` (parsed as `doc`) and where they came from: its top-level
    `"classes"` list, else `classes.txt` beside it, else `(None, '')`. Both present must agree."""
    path = os.fspath(path)
    txt = os.path.join(os.path.dirname(os.path.abspath(path)), CLASSES_TXT)
    from_txt = read_classes_txt(txt) if os.path.isfile(txt) else None
    if isinstance(doc, dict) and "classes" in doc:
        names = _check_names(doc["classes"], f'{path}: "classes"')
        if from_txt is not None and from_txt != names:
            raise LabelFileError(
                f'{path}: "classes" ({len(names)} names) differs from {txt} ({len(from_txt)} names); '
                "keep one of them, or make them equal"
            )
        return names, f'{path} ("classes")'
    if from_txt is not None:
        return from_txt, txt
    return None, ""


# ---------------------------------------------------------------------- label files
def read_labels(
    path: str | os.PathLike, num_classes: int | None = None, root: str | os.PathLike | None = None
) -> tuple[list[str], LabelTable, list[str] | None]:
    """Reads a CS570 label file (module docstring) → `(paths, table, class_names or None)`.

    Args:
      path: the JSON file.
      num_classes: C; labels must lie in [0, C). None: the number of class names when the file has them,
        else the largest label + 1. Given together with class names, the two must agree.
      root: directory that relative `img_path`s are resolved against (default: the file's directory).

    Returns:
      image paths (relative ones joined to the root), their labels (row-aligned; entries without `scores` get
      score 1.0 when other entries have scores) and the class names (`class_names_of`).

    Raises:
      LabelFileError naming the file, the entry index and the field for any malformed content (names that do
      not match the class list included), and naming both entries of an image listed twice.
    """
    return read_labels_and_root(path, num_classes, root)[:3]


def names_and_count(doc: dict, path: str, num_classes: int | None) -> tuple[list[str] | None, int | None]:
    """The file's class names (or None) and the class count they imply, checked against `num_classes`."""
    names, names_from = class_names_of(doc, path)
    if names is not None:
        if num_classes is not None and num_classes != len(names):
            raise LabelFileError(
                f"{names_from}: {len(names)} class names, but {num_classes} classes were asked for "
                f"(config.data.num_classes); they must agree"
            )
        num_classes = len(names)
    return names, num_classes


def class_id_list(value, field: str, where: str, num_classes: int | None) -> list[int]:
    """Entry field `field` checked as a list of class ids in [0, num_classes); LabelFileError naming it."""
    if not isinstance(value, list):
        raise LabelFileError(f'{where}: field "{field}" must be a list of integers, got {value!r}')
    for j, v in enumerate(value):
        if not _is_int(v):
            raise LabelFileError(f'{where}: field "{field}"[{j}] = {v!r} is not an integer')
        if v < 0 or (num_classes is not None and v >= num_classes):
            limit = num_classes if num_classes is not None else "num_classes"
            raise LabelFileError(f'{where}: field "{field}"[{j}] = {v} is out of range [0, {limit})')
    return [int(v) for v in value]


def _entry_scores(scores, num_labels: int, where: str) -> list | None:
    """An entry's optional "scores" (None when absent), checked: one finite number per label."""
    if scores is None:
        return None
    if not isinstance(scores, list):
        raise LabelFileError(f'{where}: field "scores" must be a list of numbers, got {scores!r}')
    if len(scores) != num_labels:
        raise LabelFileError(f'{where}: field "scores" has {len(scores)} values for {num_labels} labels')
    for j, s in enumerate(scores):
        if not _is_number(s):
            raise LabelFileError(f'{where}: field "scores"[{j}] = {s!r} is not a finite number')
    return scores


def read_labels_and_root(
    path: str | os.PathLike, num_classes: int | None = None, root: str | os.PathLike | None = None
) -> tuple[list[str], LabelTable, list[str] | None, str]:
    """`read_labels` and the folder relative `img_path`s were joined to (`label_root`)."""
    path = os.fspath(path)
    doc = _load(path)
    base = label_root(path, root, doc)
    data = doc["data"]
    if not isinstance(data, list):
        raise LabelFileError(f'{path}: "data" must be a list of entries, got {type(data).__name__}')
    names, num_classes = names_and_count(doc, path, num_classes)
    paths: list[str] = []
    lists: list[list[int]] = []
    score_lists: list[list[float] | None] = []
    for i, entry in enumerate(data):
        where = f"{path}: entry {i}"
        if not isinstance(entry, dict):
            raise LabelFileError(f"{where}: expected an object, got {type(entry).__name__}")
        if "img_path" not in entry:
            raise LabelFileError(f'{where}: missing field "img_path"')
        img_path = entry["img_path"]
        if not isinstance(img_path, str) or not img_path:
            raise LabelFileError(f'{where}: field "img_path" must be a non-empty string, got {img_path!r}')
        if "labels" not in entry:
            raise LabelFileError(f'{where}: missing field "labels"')
        labels = class_id_list(entry["labels"], "labels", where, num_classes)
        if "names" in entry:
            _check_entry_names(entry["names"], labels, names, where)
        paths.append(img_path if os.path.isabs(img_path) else os.path.join(base, img_path))
        lists.append(labels)
        score_lists.append(_entry_scores(entry.get("scores"), len(labels), where))
    any_scores = any(s is not None for s in score_lists)

    check_unique(paths, path, error=LabelFileError)
    if num_classes is None:
        max_label = max((max(row) for row in lists if row), default=-1)
        if max_label < 0:
            raise LabelFileError(f"{path}: no labels at all, cannot infer num_classes; pass it explicitly")
        num_classes = max_label + 1
    scores_arg = None
    if any_scores:
        scores_arg = [s if s is not None else [1.0] * len(row) for s, row in zip(score_lists, lists)]
    try:
        table = LabelTable.from_lists(lists, num_classes, scores=scores_arg)
    except LabelFileError as e:  # already validated above; keep the file name if it ever happens
        raise LabelFileError(f"{path}: {e}") from e
    return paths, table, names, base


def _load(path: str) -> dict:
    try:
        with open(path, "r", encoding="utf-8") as f:
            doc = json.load(f)
    except json.JSONDecodeError as e:
        raise LabelFileError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from e
    except UnicodeDecodeError as e:
        raise LabelFileError(f"{path}: not UTF-8 text ({e})") from e
    if not isinstance(doc, dict) or "data" not in doc:
        raise LabelFileError(f'{path}: expected a JSON object with a "data" list at the top level')
    return doc


def label_root(
    path: str | os.PathLike, root: str | os.PathLike | None = None, doc: dict | None = None
) -> str:
    """The folder relative `img_path`s of the label file `path` are joined to: `root` when given, else the file's
    top-level `"root"` (relative to its folder), else its folder. `doc`: the parsed file (read when None)."""
    if root is not None:
        return os.fspath(root)
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    doc = _load(os.fspath(path)) if doc is None else doc
    written = doc.get("root")
    if written is not None and (not isinstance(written, str) or not written):
        raise LabelFileError(f'{path}: "root" must be a folder name (a non-empty string), got {written!r}')
    return os.path.join(folder, written) if written else folder


def _check_entry_names(entry_names: Any, labels: list, names: list[str] | None, where: str) -> None:
    """An entry's `"names"`: one string per label, each the class list's name of that label."""
    if names is None:
        raise LabelFileError(
            f'{where}: field "names" needs the class list: a top-level "classes" list or a {CLASSES_TXT} '
            "beside the file"
        )
    if not isinstance(entry_names, list) or len(entry_names) != len(labels):
        raise LabelFileError(
            f'{where}: field "names" must be a list of {len(labels)} class names (one per label), '
            f"got {entry_names!r}"
        )
    for j, (n, c) in enumerate(zip(entry_names, labels)):
        if n != names[c]:
            raise LabelFileError(f'{where}: field "names"[{j}] = {n!r}, but class {c} is {names[c]!r}')


def read_label_file(
    path: str | os.PathLike, num_classes: int | None = None, root: str | os.PathLike | None = None
) -> tuple[list[str], LabelTable]:
    """`(paths, table)` of a CS570 label file: `read_labels` without the class names."""
    paths, table, _ = read_labels(path, num_classes, root)
    return paths, table


def write_label_file(
    path: str | os.PathLike,
    paths: Sequence[str],
    table: LabelTable,
    class_names: Sequence[str] | None = None,
    root: str | None = None,
    left_out: int | None = None,
) -> None:
    """Writes `paths` and `table` as a CS570 label file, atomically, one entry per line.

    The file starts with the `"classes"` list (`class_names`, default `str(i)`) and each entry names its
    labels (`"names"`) beside their indices. Scores are written (rounded to 6 digits) when the table has them.
    Paths are written as given; `root` (the folder relative ones are relative to, e.g. `Dataset.root`) is
    written as `"root"`, absolute, so the file reads back from anywhere. `left_out`: how many images of the
    source were left out as unreadable (`"left_out"`, listed in the run's skipped.json).
    """
    if len(paths) != len(table):
        raise ValueError(f"write_label_file: {len(paths)} paths but the table has {len(table)} rows")
    names = [str(n) for n in class_names] if class_names is not None else None
    names = names or [str(c) for c in range(table.num_classes)]
    if len(names) != table.num_classes:
        raise ValueError(f"write_label_file: {len(names)} class names for {table.num_classes} classes")
    label_lists = table.to_lists()
    score_lists = table.scores_to_lists()
    lines = []
    for i, (p, labels) in enumerate(zip(paths, label_lists)):
        entry: dict[str, Any] = {
            "img_path": os.fspath(p),
            "labels": labels,
            "names": [names[c] for c in labels],
        }
        if score_lists is not None:
            entry["scores"] = [round(s, 6) for s in score_lists[i]]
        lines.append(json.dumps(entry))
    head = "" if root is None else '"root": ' + json.dumps(os.path.abspath(root)) + ",\n"
    head += "" if left_out is None else f'"left_out": {int(left_out)},\n'
    text = "{" + head + '"classes": ' + json.dumps(names) + ',\n"data": [\n' + ",\n".join(lines) + "\n]}\n"
    atomic_write_text(path, text)
