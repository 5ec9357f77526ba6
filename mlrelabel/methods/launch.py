"""Runs one recipe's method in a work directory: the path of `mlrelabel.main.run`, and of a run that starts
another (the ReLabel recipe's default teacher is a relabel run in `<workdir>/teacher`)."""

from __future__ import annotations

import contextlib
import importlib
import sys

from mlrelabel.config import schema
from mlrelabel.errors import DataError
from mlrelabel.validation.rules import METHOD_MODULES


class WorkdirBusy(DataError):
    """Another process runs in the work directory (it holds `<workdir>/.lock`); nothing was written."""


def claim(workdir: str) -> contextlib.AbstractContextManager:
    """The work directory's lock (`workdir.WorkdirLock`), held by the main process until the `with` block ends;
    raises `WorkdirBusy` naming the folder and the other process's id and command when it holds the lock."""
    from mlrelabel import parallel
    from mlrelabel.workdir import WorkdirLock

    if not parallel.is_main_process():  # one lock per run: the processes of a multi-host run share it
        return contextlib.nullcontext()
    lock = WorkdirLock(workdir)
    holder = lock.acquire()
    if holder is not None:
        pid = holder['pid'] if holder['pid'] is not None else 'unknown'
        raise WorkdirBusy(
            f'{workdir} is in use by another run: process {pid} ({holder["command"] or "command unknown"}) '
            f'holds {lock.path}. Wait for it to end (or stop it), then rerun this command: it resumes the run.'
        )
    return lock


def run_method(config, workdir: str) -> dict:
    """Validates `config` (with the device count), fills its data-driven defaults, reads its label files,
    claims `workdir` (its lock, then `config.json`) and runs `config.method` there; returns the method's summary
    dict. Raises `ConfigError` / `DataError` before anything is written when the config or its data files are
    wrong, `WorkdirBusy` (a `DataError`) when another process runs in `workdir`, and
    `models.weights.WeightsDownloadError` when `model.pretrained` names weights that cannot be downloaded."""
    import jax

    from mlrelabel import parallel, progress, tensorboard_writer, validation
    from mlrelabel.data import inspect, preflight
    from mlrelabel.models import weights
    from mlrelabel.workdir import prepare_workdir

    schema.complete(config)  # a recipe's get_config() lists only some fields
    validation.validate_config(config, devices=jax.device_count())
    notes = inspect.resolve_data_defaults(config)
    if notes:
        validation.validate_config(config, devices=jax.device_count())
    preflight.preflight(config)
    for name in (config.model.pretrained, config.relabel.round0_checkpoint if 'relabel' in config else ''):
        if weights.is_weights_name(name):  # downloaded once, before any work
            weights.fetch_weights(name)
    with claim(workdir):
        prepare_workdir(config, workdir)
        if parallel.is_main_process():  # after the workdir is claimed: a failure to claim it stays one line
            for note in notes:
                print(f'mlrelabel: {note}', file=sys.stderr)
        module = importlib.import_module(METHOD_MODULES[config.method])
        main = parallel.is_main_process()
        # training phases write <workdir>/tensorboard/; the run's progress line (`progress`) ends with its times
        with tensorboard_writer.active_run(workdir), progress.tracking(workdir, main) as run_progress:
            summary = module.run(config, workdir)
            run_progress.finish(workdir)
            return summary
