"""absl applications as console scripts (`mlrelabel`, `mlrelabel-predict`): a useful `--help`, one-line flag
mistakes and one-paragraph expected failures.

absl's `--help` prints the `__main__` module's docstring and the flags that module defined. A console
script's `__main__` is pip's generated wrapper, which has neither, so `run_app` lends it the real
module's docstring and key flags before `app.run`. absl ends `--help` with exit status 1; asking for
help is not an error, so these commands end it with 0.

A flag mistake (a misspelt flag, an unknown recipe, a value of the wrong type, an unknown `--config.<field>`)
is raised by absl or ml_collections while parsing, before `main` runs; `parse_flags` turns each into a
`ConfigError` naming the argument and what was expected. `run_app` returns the exit status for the entry
point's `cli` to exit with: `errors.describe_failure`'s code and one paragraph for the expected failures
(the traceback only with `--verbosity=1`), a traceback for anything else.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import signal
import sys
import threading
import traceback
import warnings
from typing import Callable, Sequence

from absl import app, flags

from mlrelabel.errors import EXIT_INTERRUPTED, EXIT_MISTAKE, ConfigError, describe_failure

_HELP = ('--help', '-help', '-h', '-?', '--helpshort', '--helpfull', '--helpxml')
_VERBOSITY = re.compile(r'^--?(?:verbosity|v)=(-?\d+)$')


def _prog(argv: Sequence[str]) -> str:
    name = os.path.basename(argv[0]) if argv else 'mlrelabel'
    return {'main.py': 'mlrelabel', 'predict.py': 'mlrelabel-predict'}.get(name, name)


def _suggest(name: str, candidates: Sequence[str]) -> str:
    """' Did you mean --x?' for the closest of `candidates` to `name`, else ''."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f'; did you mean --{close[0]}?' if close else ''


def _argument(argv: Sequence[str], name: str) -> str:
    """The command-line argument that set flag `name` (`--name=value`), else `--name`."""
    pattern = re.compile(rf'^--?(no)?{re.escape(name)}(=|$)')
    return next((a for a in argv[1:] if pattern.match(a)), f'--{name}')


def _config_value(path: str):
    """The value of dotted `path` in the loaded `--config` (None when there is none)."""
    value = flags.FLAGS['config'].value if 'config' in flags.FLAGS else None
    for part in path.split('.'):
        if not hasattr(value, 'keys') or part not in value:
            return None
        value = value[part]
    return value


def _illegal_value(error: flags.IllegalFlagValueError, argv: Sequence[str]) -> str:
    """`--flag=value: reason` for a value that does not parse (absl writes `flag --flag=value: reason`)."""
    text = str(error).removeprefix('flag ')
    argument, _, reason = text.partition(': ')
    if 'Traceback (most recent call last)' in reason:  # a config file that raised: its last line says why
        reason = [line for line in reason.splitlines() if line.strip()][-1].removeprefix('ValueError: ')
    if reason.startswith(f'{argument}: '):  # the parser already named the argument (recipes.resolve)
        return reason
    name = argument.lstrip('-').split('=', 1)[0]
    known = name in flags.FLAGS
    if known and 'must have a value other than None' in reason:  # flags.mark_flags_as_required
        return f'--{name} is required: {flags.FLAGS[name].help} ({_prog(argv)} --help)'
    kind = flags.FLAGS[name].parser.flag_type() if known else ''
    if name.startswith('config.') and kind:
        now = _config_value(name.removeprefix('config.'))
        why = '' if kind in ('int', 'float', 'bool') else f' ({reason})'
        return f'{argument}: expected {_a(kind)} for {name} (now {now!r}){why}'
    if kind in ('int', 'float', 'bool'):
        return f'{argument}: expected {_a(kind)}'
    return f'{argument}: {reason}' if reason else text


def _a(kind: str) -> str:
    return f'{"an" if kind[:1] in tuple("aeiou") else "a"} {kind}'


def _unknown_field(error: LookupError | AttributeError, argv: Sequence[str]) -> str | None:
    """`--config.a.b=v: the config has no field ...` for an override naming no field (ml_collections raises a
    bare AttributeError / KeyError naming the missing key, with its guess), None if no override names it."""
    text = str(error)
    missing = re.search(r'([A-Za-z_]\w*)', text)
    overrides = [a for a in argv[1:] if a.startswith('--config.')]
    name = missing.group(1) if missing else ''
    culprit = next((a for a in overrides if name in a.split('=')[0].split('.')[1:]), None)
    if culprit is None:
        return None
    guess = re.search(r'Did you mean "(\w+)"', text)
    hint = ''
    if guess:
        path = culprit.split('=')[0].split('.')
        fixed = '.'.join(guess.group(1) if part == name else part for part in path)
        hint = f'; did you mean {fixed}?'
    return f'{culprit}: the config has no field {name!r} there{hint} (docs/config.md lists every field)'


def flag_mistake(error: BaseException, argv: Sequence[str]) -> str | None:
    """One line naming the argument and what was expected, for a mistake raised while parsing `argv`; None
    when `error` is not one."""
    if isinstance(error, flags.UnrecognizedFlagError):
        known = [n for n in flags.FLAGS if not n.startswith('config.')]
        name = error.flagname
        hint = _suggest(name, known)
        return f'{_argument(argv, name)}: no such flag{hint} ({_prog(argv)} --help lists the flags)'
    if isinstance(error, flags.IllegalFlagValueError):
        return _illegal_value(error, argv)
    if isinstance(error, flags.Error):
        return str(error)
    if isinstance(error, (AttributeError, KeyError)):
        return _unknown_field(error, argv)
    return None


def parse_flags(argv: Sequence[str]) -> list[str]:
    """absl's flag parsing; a flag mistake is raised as a `ConfigError` (see `flag_mistake`)."""
    try:
        return flags.FLAGS(argv)
    except (flags.Error, AttributeError, KeyError) as e:
        message = flag_mistake(e, argv)
        if message is None:
            raise
        raise ConfigError(message) from e


def _verbose(argv: Sequence[str]) -> bool:
    """Whether `--verbosity` asks for tracebacks (read from `argv` when flag parsing failed)."""
    if flags.FLAGS.is_parsed():
        return flags.FLAGS.verbosity >= 1
    found = [int(m.group(1)) for a in argv[1:] if (m := _VERBOSITY.match(a))]
    return bool(found) and found[-1] >= 1


def _clear_progress_bars() -> None:
    """Removes the open tqdm bars from the terminal, so that the message is the last line and no bar is
    redrawn after it when the interpreter exits."""
    tqdm_module = sys.modules.get('tqdm.std')
    for bar in list(getattr(getattr(tqdm_module, 'tqdm', None), '_instances', ())):
        bar.leave = False
        bar.close()


def report(error: BaseException, argv: Sequence[str], prog: str = '') -> int | None:
    """Prints the one-paragraph message of an expected failure (and, with `--verbosity=1`, its traceback),
    starting with `prog` (default: the command's name), and returns its exit code; None for anything else
    (the caller re-raises it)."""
    failure = describe_failure(error, prog or _prog(argv))
    if failure is None:
        return None
    code, message = failure
    _clear_progress_bars()
    if _verbose(argv):
        traceback.print_exception(error)
    elif code not in (EXIT_MISTAKE, EXIT_INTERRUPTED):
        message += ' (rerun with --verbosity=1 for the traceback)'
    print(message, file=sys.stderr)
    return code


class _Style(logging.Formatter):
    """`prog: message` for information, `prog: warning: message` (error, ...) from warnings up."""

    def __init__(self, prog: str):
        super().__init__()
        self.prog = prog

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.exc_info:
            text += '\n' + self.formatException(record.exc_info)
        if record.levelno < logging.WARNING:
            return f'{self.prog}: {text}'
        return f'{self.prog}: {record.levelname.lower()}: {text}'


def one_log_style(prog: str) -> None:
    """Everything the command prints through logging (Python's, absl's) and `warnings` in one style:
    `prog: warning: message`, without timestamps, source paths or logger names."""
    from absl import logging as absl_logging

    style = _Style(prog)
    absl_logging.get_absl_handler().setFormatter(style)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(style)

    def show_warning(message, category, filename, lineno, file=None, line=None):
        print(f'{prog}: warning: {message}', file=sys.stderr if file is None else file)

    warnings.showwarning = show_warning


def run_app(main: Callable, doc: str, flag_names: Sequence[str]) -> int | str | None:
    """`app.run(main)` with `doc` and the flags `flag_names` shown by `--help`; returns the exit status."""
    module = sys.modules['__main__']
    if not getattr(module, '__doc__', None):
        module.__doc__ = doc
    for name in flag_names:
        if name in flags.FLAGS:
            flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS[name])
    asked_for_help = any(arg in _HELP for arg in sys.argv[1:])
    # A process started with SIGINT ignored (a script's background job, some CI runners) would otherwise
    # never see Ctrl-C or `kill -INT`; every entry point stops on it with its one-line resume message.
    if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def styled_main(argv):
        one_log_style(_prog(argv))  # after app.run has installed absl's handler
        return main(argv)

    try:
        app.run(styled_main, flags_parser=parse_flags)
    except SystemExit as e:  # app.run exits with main's return value; absl's --help with 1
        return 0 if e.code == 1 and asked_for_help else e.code
    except BrokenPipeError:  # `mlrelabel --help | head`: the reader has what it wanted
        if not asked_for_help:
            raise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except (Exception, KeyboardInterrupt) as error:  # noqa: BLE001 - expected failures become one paragraph
        code = report(error, sys.argv)
        if code is None:
            raise
        return code
    return 0
