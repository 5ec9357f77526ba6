"""A run's work directory: claimed with its resolved config (`config.json`), refused when it holds another run
or while another process runs in it.

`WorkdirLock` is an OS file lock (`fcntl.flock`) on `<workdir>/.lock`, taken before a run writes anything there
and held until it ends: the kernel drops it when its process exits or is killed, so a stopped run never leaves
a stale lock and the same command resumes. The holder writes its process id and command line into the file
for the message a second run shows. Readers (`load_run`, `mlrelabel-predict`) take no lock: every file a run
writes is replaced atomically (`mlrelabel.io_utils`).

A run resumes in the directory that holds its config.json, read through `schema.migrate` (a run of an earlier
version lacks the fields added since); fields that do not change results (`RESUMABLE_DIFFERENCES`) do not stop
a resumption.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shlex
import sys
import time

from mlrelabel.config.schema import ADDED_FIELDS, complete, migrate  # noqa: F401  (ADDED_FIELDS: importable here)
from mlrelabel.errors import ConfigError
from mlrelabel.io_utils import atomic_write_text, remove_stale_temp_files

LOCK_NAME = '.lock'
# How long a second run waits for a just-started holder to finish writing its id into the lock file.
_HOLDER_WAIT_S = 2.0
# Fields that may change between a run and its resumption without changing its results.
RESUMABLE_DIFFERENCES = ('parallel', 'compile_cache')


def _differences(old: dict, new: dict, prefix: str = '') -> list[str]:
    out = []
    for k in sorted(set(old) | set(new)):
        if not prefix and k in RESUMABLE_DIFFERENCES:
            continue
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f'{prefix}{k}.')
        elif a != b:
            out.append(f'{prefix}{k}: {a!r} → {b!r}')
    return out


def _run_leftovers(workdir: str) -> list[str]:
    """Checkpoint folders of a run in `workdir`: `checkpoints/`, `round_*/`, `<phase>/checkpoints/`."""
    if not os.path.isdir(workdir):
        return []
    found = []
    for name in sorted(os.listdir(workdir)):
        path = os.path.join(workdir, name)
        if os.path.isdir(path) and (
            name in ('checkpoints',)
            or name.startswith('round_')
            or os.path.isdir(os.path.join(path, 'checkpoints'))
        ):
            found.append(name + '/')
    return found


def prepare_workdir(config, workdir: str) -> None:
    """Creates `workdir` and records the resolved config; refuses a workdir that holds another config, or
    checkpoints without the config.json that made them. A resumed run's stale temporary files are removed."""
    from mlrelabel import parallel

    path = os.path.join(workdir, 'config.json')
    text = complete(config).to_json_best_effort(sort_keys=True, indent=2)  # every field, listed or not
    if os.path.exists(path):
        with open(path) as f:
            old = json.loads(migrate(json.load(f)).to_json_best_effort(sort_keys=True))
        diff = _differences(old, json.loads(text))
        if diff:
            raise ConfigError(
                f'{path} holds a run with another config ({"; ".join(diff[:5])}). Resume it with the '
                f'same config, or choose a new --workdir.'
            )
    else:
        leftovers = _run_leftovers(workdir)
        if leftovers:
            raise ConfigError(
                f'{workdir} holds checkpoints ({", ".join(leftovers[:3])}) but no config.json, so the config '
                'that made them is unknown: restore its config.json to resume, or choose a new --workdir.'
            )
    os.makedirs(workdir, exist_ok=True)
    if parallel.is_main_process():
        removed = remove_stale_temp_files(workdir)
        if removed:
            logging.info('removed %d stale temporary files (%s, ...)', len(removed), removed[0])
        if not os.path.exists(path):
            atomic_write_text(path, text)


class WorkdirLock:
    """An exclusive lock on `<workdir>/.lock` for one process (see the module docstring).

    `acquire()` returns None once the lock is held, or `{'pid', 'command'}` of the process that holds it (then
    nothing is held). `release()` (or leaving a `with` block) lets it go; process exit does too.
    """

    def __init__(self, workdir: str):
        self.workdir = os.fspath(workdir)
        self.path = os.path.join(self.workdir, LOCK_NAME)
        self._fd: int | None = None

    def acquire(self) -> dict | None:
        if self._fd is not None:
            raise RuntimeError(f'{self.path}: already held by this WorkdirLock')
        os.makedirs(self.workdir, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return self.holder()
        except BaseException:
            os.close(fd)
            raise
        # Rewritten in place (a rename would swap the locked file for another): a reader retries while partial.
        record = json.dumps({'pid': os.getpid(), 'command': _command_line()}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        self._fd = fd
        return None

    def holder(self) -> dict:
        """`{'pid', 'command'}` recorded by the lock's holder (None values when it has not written them yet)."""
        deadline = time.monotonic() + _HOLDER_WAIT_S
        while True:
            try:
                with open(self.path, encoding='utf-8') as f:
                    record = json.load(f)
                return {'pid': record.get('pid'), 'command': record.get('command')}
            except (OSError, ValueError, AttributeError):
                if time.monotonic() > deadline:
                    return {'pid': None, 'command': None}
                time.sleep(0.05)

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # the next holder's record is never mixed with this one's
        finally:
            os.close(fd)  # closing the last descriptor drops the flock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> 'WorkdirLock':
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _command_line() -> str:
    """This process's command line as typed (`python -m mlrelabel.main --config=...`)."""
    try:
        with open(f'/proc/{os.getpid()}/cmdline', 'rb') as f:
            parts = [p.decode(errors='replace') for p in f.read().split(b'\0') if p]
    except OSError:
        parts = [sys.executable, *sys.argv]
    return shlex.join(parts)
