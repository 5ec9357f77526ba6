"""absl applications as console scripts (`mlrelabel`, `mlrelabel-predict`) with a useful `--help`.

absl's `--help` prints the `__main__` module's docstring and the flags that module defined. A console
script's `__main__` is pip's generated wrapper, which has neither, so `run_app` lends it the real
module's docstring and key flags before `app.run`. absl ends `--help` with exit status 1; asking for
help is not an error, so these commands end it with 0.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, Sequence

from absl import app, flags

_HELP = ('--help', '-help', '-h', '-?', '--helpshort', '--helpfull', '--helpxml')


def _parse_flags(argv: Sequence[str]) -> list[str]:
    """absl's flag parsing, with a one-line error for a `--config.<field>=` override naming no field
    (ml_collections raises a bare AttributeError / KeyError there, with a traceback)."""
    try:
        return flags.FLAGS(argv)
    except (AttributeError, KeyError) as e:
        name = str(e.args[0] if e.args else e).strip('"\'')
        culprit = next((a for a in argv[1:] if a.startswith('--config.') and name in a.split('=')[0]), None)
        if culprit is None:
            raise
        print(
            f'{os.path.basename(argv[0])}: {culprit}: the config has no field {name!r} there '
            '(README.md lists every field; `--config.<section>.<field>=value`)',
            file=sys.stderr,
        )
        raise SystemExit(2) from None


def run_app(main: Callable, doc: str, flag_names: Sequence[str]) -> None:
    """`app.run(main)` with `doc` and the flags `flag_names` shown by `--help`."""
    module = sys.modules['__main__']
    if not getattr(module, '__doc__', None):
        module.__doc__ = doc
    for name in flag_names:
        if name in flags.FLAGS:
            flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS[name])
    asked_for_help = any(arg in _HELP for arg in sys.argv[1:])
    try:
        app.run(main, flags_parser=_parse_flags)
    except SystemExit as e:
        if e.code == 1 and asked_for_help:
            raise SystemExit(0) from None
        raise
    except BrokenPipeError:  # `mlrelabel --help | head`: the reader has what it wanted
        if not asked_for_help:
            raise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        raise SystemExit(0) from None
