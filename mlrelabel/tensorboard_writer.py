"""TensorBoard event files of a run, in `<workdir>/tensorboard/` (tensorboardX: no TensorFlow needed).

Tags (one step axis per run):
  train/loss, train/accuracy, train/learning_rate   every step (written where `loop.fit` fetches metrics)
  epoch/<field>                                      each epoch's history row (val_*, train_loss, ...)
  round/<field>, final/<field>                       one point per round / run (`write_scalars`)

Phases. A run trains in phases (relabel rounds; teacher then student; prior then main phase), each with
its own checkpoint directory and local steps 1..total. Each phase gets a fixed place on the run's axis,
recorded in `tensorboard/ledger.json` when it first starts: it begins where the phases before it ended.
A resumed run finds every phase where it was, whichever phases it runs again, so phases never overwrite
each other and no method has to count steps. `main.run` makes its work directory the active run
(`active_run`); `loop.fit` writes there unless given another folder.

Resumption. A phase resumed at local step s opens its writer with `purge_step = offset + s + 1`, so
TensorBoard drops what a killed attempt wrote after the last checkpoint (writers flush before every
checkpoint, so nothing up to it is lost). `write_scalars` records the (tag, step) pairs it wrote and skips
them on a rerun. Only process 0 writes; elsewhere every writer does nothing.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
from typing import Mapping

import numpy as np

from mlrelabel import parallel
from mlrelabel.io_utils import atomic_write_json

SUBDIR = 'tensorboard'
LEDGER = 'ledger.json'
_SKIP = ('epoch', 'step', 'round')  # bookkeeping fields of metric rows, not metrics
_counter = itertools.count()
_active: list[str] = []  # event folders of the runs `main.run` is running (innermost last)


def event_dir(workdir: str) -> str:
    return os.path.join(workdir, SUBDIR)


@contextlib.contextmanager
def active_run(workdir: str):
    """Within this context `loop.fit` (and `fit_mile`) write their events into `workdir`'s folder."""
    _active.append(event_dir(workdir))
    try:
        yield
    finally:
        _active.pop()


def scalar_tags(row: Mapping, group: str) -> dict[str, float]:
    """`{group/field: value}` for the numeric fields of a metrics row (bools, strings, lists left out)."""
    out = {}
    for key, value in row.items():
        if key in _SKIP or isinstance(value, bool):
            continue
        if isinstance(value, (int, float, np.integer, np.floating)):
            out[f'{group}/{key}'] = float(value)
    return out


class _NullWriter:
    """What processes other than 0 get, and runs without an event folder: every call does nothing."""

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class Writer:
    """Scalars into one new event file of `directory` (tensorboardX `SummaryWriter`)."""

    def __init__(self, directory: str, purge_step: int | None = None):
        from tensorboardX import SummaryWriter

        # A unique file name per writer: tensorboardX names files by the second and truncates a namesake.
        suffix = f'.{os.getpid()}.{next(_counter):04d}'
        self._writer = SummaryWriter(directory, purge_step=purge_step, flush_secs=30, filename_suffix=suffix)

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        for tag, value in values.items():
            self._writer.add_scalar(tag, float(value), int(step))

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def _read_ledger(directory: str) -> dict:
    path = os.path.join(directory, LEDGER)
    if not os.path.exists(path):
        return {'phases': {}, 'written': {}}
    with open(path) as f:
        return json.load(f)


def _timeline_end(ledger: dict) -> int:
    return max((offset + total for offset, total in ledger['phases'].values()), default=0)


def open_phase(directory: str | None, ckpt_dir: str, total: int, start: int, end: int):
    """`(writer, offset)` for a training phase checkpointed in `ckpt_dir` with local steps 1..`total`,
    running local steps `start + 1 .. end`: global step = offset + local step.

    `directory` None means the active run's folder (none: a no-op writer). A phase with nothing to run
    gets a no-op writer but keeps its place on the axis.
    """
    directory = directory or (_active[-1] if _active else None)
    if directory is None or not parallel.is_main_process():
        return _NullWriter(), 0
    ledger = _read_ledger(directory)
    key = os.path.relpath(os.path.abspath(ckpt_dir), os.path.dirname(os.path.abspath(directory)))
    if key not in ledger['phases']:
        ledger['phases'][key] = [_timeline_end(ledger), int(total)]
        atomic_write_json(os.path.join(directory, LEDGER), ledger)
    elif int(total) > ledger['phases'][key][1]:  # a phase trained on (relabel's round 0 extended): it grows
        ledger['phases'][key][1] = int(total)
        atomic_write_json(os.path.join(directory, LEDGER), ledger)
    offset = int(ledger['phases'][key][0])
    if start >= end:
        return _NullWriter(), offset
    return Writer(directory, purge_step=offset + start + 1), offset


def timeline_end(workdir: str) -> int:
    """The global step where the run's phases so far end (0 before any training)."""
    return _timeline_end(_read_ledger(event_dir(workdir)))


def write_scalars(workdir: str, step: int | None, scalars: Mapping[str, float]) -> None:
    """Writes `{tag: value}` at global `step` (None: `timeline_end(workdir)`, the end of the training so
    far) into `<workdir>/tensorboard/` in one call, on process 0. Tags already written at that step by an
    earlier call (a resumed or rerun run) are skipped. `scalar_tags(row, 'round')` makes tags of a row."""
    if not parallel.is_main_process() or not scalars:
        return
    directory = event_dir(workdir)
    ledger = _read_ledger(directory)
    step = _timeline_end(ledger) if step is None else int(step)
    new = {tag: v for tag, v in scalars.items() if step not in ledger['written'].get(tag, [])}
    if not new:
        return
    writer = Writer(directory)
    writer.scalars(step, new)
    writer.close()
    for tag in new:
        ledger['written'].setdefault(tag, []).append(step)
    atomic_write_json(os.path.join(directory, LEDGER), ledger)
