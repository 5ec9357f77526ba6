"""Atomic file writing: a reader never sees a half-written file.

Every writer goes through `atomic_write_bytes`: the data is written to a temporary file in the
destination's directory (same file system, so the rename is atomic), flushed and fsynced, then
moved over the destination with `os.replace`. If anything fails before the rename, the temporary
file is removed and any previous version of the destination is left untouched.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Callable

import numpy as np

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_save_npz",
]


def _atomic_write(path: str | os.PathLike, write: Callable[[Any], None]) -> None:
    """Calls `write(binary_file)` on a temp file next to `path`, then renames it to `path`."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
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
    _atomic_write(path, lambda f: f.write(data))


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
    _atomic_write(path, lambda f: np.savez(f, **arrays))
