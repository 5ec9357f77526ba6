"""The package's exceptions, one home for all of them, and the exit code each stands for.

Library code raises these; only the entry points (`main`/`cli` of `mlrelabel.main`, `predict`, `compare`,
`benchmark`, `tools/*`) turn them into a one-paragraph message and an exit code (`describe_failure`):

  2  `ConfigError` (a config field or command-line argument) and `DataError` (a data set, label file or run
     directory that cannot be used as given)
  3  `TrainingDiverged` (a non-finite loss or parameter; the phase and the step are named)
  4  `ResourceError` (the machine lacks something: an optional package, a device) and any `OSError` (disk
     full, permission, ...), named with its path
  130 `Interrupted` (Ctrl-C: the message says what was saved and the command that resumes)

Nothing here imports JAX or NumPy: `main` reports a config mistake before anything heavy is loaded.
"""

from __future__ import annotations

import errno
from typing import Sequence

__all__ = [
    'EXIT_DIVERGED',
    'EXIT_INTERRUPTED',
    'EXIT_MISTAKE',
    'EXIT_OS_ERROR',
    'ConfigError',
    'DataError',
    'Interrupted',
    'MlrelabelError',
    'ResourceError',
    'TrainingDiverged',
    'describe_failure',
    'os_error_of',
]

EXIT_MISTAKE, EXIT_DIVERGED, EXIT_OS_ERROR, EXIT_INTERRUPTED = 2, 3, 4, 130


class MlrelabelError(Exception):
    """The base of every expected failure; `exit_code` is what the command line exits with."""

    exit_code = 1


class ConfigError(MlrelabelError, ValueError):
    """Invalid config fields or command-line arguments; `problems` lists them.

    A list (what `validation.validate_config` collects before any work) is reported one per line under a
    header saying nothing was run; a single string is the whole message."""

    exit_code = EXIT_MISTAKE

    def __init__(self, problems: str | Sequence[str]):
        if isinstance(problems, str):
            self.problems = [problems]
            super().__init__(problems)
            return
        self.problems = list(problems)
        n = len(self.problems)
        head = f'{n} problem{"s" if n != 1 else ""} in the config (nothing was run or written):'
        super().__init__('\n'.join([head] + ['  ' + p for p in self.problems]))


class DataError(MlrelabelError, ValueError):
    """A data set that cannot be trained on as given; the message names the file and the entry or line."""

    exit_code = EXIT_MISTAKE


class TrainingDiverged(MlrelabelError, RuntimeError):
    """Training produced a non-finite loss or parameter; `desc` (phase) and `step` say where."""

    exit_code = EXIT_DIVERGED

    def __init__(self, desc: str, step: int, last_checkpoint: str, hint: str = ''):
        self.desc, self.step, self.last_checkpoint = desc, step, last_checkpoint
        super().__init__(
            f'{desc}: training diverged: the loss or the parameters became non-finite (NaN or inf) at step '
            f'{step}. Nothing non-finite was saved; {last_checkpoint}. {hint}'.strip()
        )


class ResourceError(MlrelabelError, RuntimeError):
    """The machine lacks something the work needs (an optional package, a device); the message says what."""

    exit_code = EXIT_OS_ERROR


class Interrupted(MlrelabelError):
    """The run was stopped by Ctrl-C (SIGINT); the message says what was saved and how to resume."""

    exit_code = EXIT_INTERRUPTED


def os_error_of(error: BaseException) -> OSError | None:
    """`error` or the OSError it was raised from (libraries wrap disk-full errors in their own types)."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, OSError):
            return error
        error, seen = error.__cause__ or error.__context__, seen + 1
    return None


def _describe_os_error(error: OSError) -> str:
    name = errno.errorcode.get(error.errno or 0, '')
    where = error.filename if error.filename is not None else ''
    if error.filename2 is not None:
        where = f'{where} -> {error.filename2}'
    reason = error.strerror or str(error)
    return f'{reason}{f" ({name})" if name else ""}: {where}' if where else str(error)


def describe_failure(error: BaseException, prog: str = 'mlrelabel') -> tuple[int, str] | None:
    """`(exit code, one-paragraph message)` for the expected failures, None for anything else (a bug keeps
    its traceback). `prog` starts the message (`mlrelabel: ...`)."""
    if isinstance(error, MlrelabelError):
        return error.exit_code, f'{prog}: {error}'
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED, f'{prog}: interrupted (Ctrl-C)'
    os_error = os_error_of(error)
    if os_error is not None:
        return EXIT_OS_ERROR, f'{prog}: {_describe_os_error(os_error)}'
    return None
