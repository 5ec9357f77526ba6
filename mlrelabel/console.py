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
        app.run(main)
    except SystemExit as e:
        if e.code == 1 and asked_for_help:
            raise SystemExit(0) from None
        raise
    except BrokenPipeError:  # `mlrelabel --help | head`: the reader has what it wanted
        if not asked_for_help:
            raise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        raise SystemExit(0) from None
