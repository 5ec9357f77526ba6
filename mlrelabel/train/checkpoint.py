"""Orbax checkpoints: one train-state pytree plus a JSON record (history, phase, data position).

Orbax writes each step into a temporary directory and renames it when complete, so a run killed while
saving leaves the previous checkpoint intact; such leftover temporary directories are removed when the
manager opens the directory again. `assert_finite` refuses a restored tree holding NaN or inf (the training
loop never saves one; predictions from one would be NaN).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from mlrelabel.errors import DataError


class NonFiniteCheckpoint(DataError):
    """A checkpoint holds NaN or inf values (a ValueError, exit code 2 at the command line)."""


def assert_finite(tree: Any, where: str) -> None:
    """Raises `NonFiniteCheckpoint` naming `where` and the first leaf (by its path) that holds NaN or inf."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        value = np.asarray(jax.device_get(leaf))
        if np.issubdtype(value.dtype, np.inexact) and not np.isfinite(value).all():
            bad = int((~np.isfinite(value)).sum())
            raise NonFiniteCheckpoint(
                f'{where}: {jax.tree_util.keystr(path)} holds {bad} non-finite (NaN or inf) values of '
                f'{value.size}: the run diverged before this checkpoint; use an earlier one or retrain'
            )


class Checkpointer:
    """Saves and restores `(state, meta)` pairs under `directory/<step>/`."""

    def __init__(self, directory: str, max_to_keep: int = 2):
        self.directory = os.path.abspath(directory)
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep,
                create=True,
                enable_async_checkpointing=False,
                cleanup_tmp_directories=True,
            ),
            item_names=('state', 'meta'),
        )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state: Any, meta: dict, force: bool = True) -> None:
        self._manager.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
            force=force,
        )
        self._manager.wait_until_finished()

    def restore(self, template: Any, step: int | None = None) -> tuple[Any, dict]:
        """Restores into the structure, dtypes and shardings of `template` (concrete or abstract arrays)."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f'no checkpoint in {self.directory}')
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        out = self._manager.restore(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()),
        )
        return out['state'], dict(out['meta'])

    def close(self) -> None:
        self._manager.close()
