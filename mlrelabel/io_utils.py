"""Atomic file writing: a reader never sees a half-written file.

Every writer goes through `atomic_write_file`: the data is written to a temporary file in the
destination's directory (same file system, so the rename is atomic), flushed and fsynced, then
moved over the destination with `os.replace`. If anything fails before the rename, the temporary
file is removed and any previous version of the destination is left untouched.

Temporary files are named `.<name>.<random>.mlrelabel-tmp`; a process killed between creating one and
the rename leaves it behind, and `remove_stale_temp_files(workdir)` (called when a run starts or resumes)
deletes them. `record_timing` merges one segment into `timing.json` instead of overwriting the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from typing import Any, Callable, Sequence

import numpy as np

__all__ = [
    "TEMP_SUFFIX",
    "atomic_write_file",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_save_npz",
    "remove_stale_temp_files",
    "record_timing",
]

TEMP_SUFFIX = ".mlrelabel-tmp"
# Temporary files of this module (and of versions before TEMP_SUFFIX: mkstemp's 8 random characters).
_STALE = re.compile(r"^\..+\.mlrelabel-tmp$|^\..+\.[A-Za-z0-9_]{8}\.tmp$|^tmp[A-Za-z0-9_]{8}\.png\.tmp$")


def atomic_write_file(path: str | os.PathLike, write: Callable[[Any], None]) -> None:
    """Calls `write(binary_file)` on a temp file next to `path`, then renames it to `path`."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(
        dir=directory, prefix="." + os.path.basename(path) + ".", suffix=TEMP_SUFFIX
    )
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates the file with mode 0600; give it the usual umask-based permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    except BaseException:
        try:
            os.unlink(tmp_path)
        except FileNotFoundError:
            pass
        raise
    # Make the rename itself durable (best effort: not every platform can fsync a directory).
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes `data` to `path` atomically, creating parent directories."""
    atomic_write_file(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Writes the string `text` to `path` atomically (UTF-8 by default)."""
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    """Serialises `obj` to JSON and writes it to `path` atomically.

    Serialisation happens before the file is touched, so an unserialisable `obj` raises
    (TypeError) and leaves any existing file as it was.
    """
    text = json.dumps(obj, indent=indent)
    atomic_write_text(path, text + "\n")


def atomic_save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Saves `arrays` as an uncompressed `.npz` at exactly `path` (no suffix is appended)."""
    atomic_write_file(path, lambda f: np.savez(f, **arrays))


def remove_stale_temp_files(directory: str | os.PathLike) -> list[str]:
    """Deletes the temporary files that killed writers left anywhere under `directory`; returns their paths.

    Call it only while no writer is running in `directory` (when a run starts or resumes, before any work).
    """
    removed = []
    for folder, _, files in os.walk(os.fspath(directory)):
        for name in files:
            if _STALE.match(name):
                path = os.path.join(folder, name)
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    continue
                removed.append(path)
    return removed


def record_timing(workdir: str | os.PathLike, key: Any, seconds: dict) -> dict:
    """Merges `seconds` (e.g. `{'relabel_s': 12.3, 'train_s': 45.6}`) into entry `key` of
    `<workdir>/timing.json`, keeping every other entry (earlier rounds, earlier segments of a resumed run);
    returns the whole record. One writer at a time (the main process)."""
    path = os.path.join(os.fspath(workdir), "timing.json")
    record: dict = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    record.setdefault(str(key), {}).update(seconds)
    atomic_write_json(path, record)
    return record


def order_digest(order: Sequence[str]) -> str:
    """sha256 of the image order (ids joined by newlines): identifies which image each row belongs to."""
    h = hashlib.sha256()
    for i, name in enumerate(order):
        if '\n' in str(name):
            raise ValueError(f'label map store: image id {i} contains a newline: {name!r}')
        h.update(str(name).encode('utf-8'))
        h.update(b'\n')
    return h.hexdigest()
