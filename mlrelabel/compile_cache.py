"""JAX's persistent compilation cache, and a count of the XLA programs a run compiled or loaded from it.

Compiled programs are kept on disk (by default in `~/.cache/mlrelabel/xla`, `config.compile_cache`), so a
rerun, a resumed run or a later round with the same shapes loads them instead of compiling again. A program's
cache key is its HLO, the compile options, the devices and the jax/jaxlib versions, so results never depend on
the cache. Every program is cached, however fast it compiled: on a 2-core CPU the many small programs of a
run add up to seconds each.

    enable(config.compile_cache)     # before the first compilation
    ...
    print(summary())                 # 'XLA programs: 3 compiled (12.1 s), 41 loaded from the cache ...'

The counts come from `jax.monitoring` events: every program JAX obtains for a device is one
`/jax/core/compile/backend_compile_duration` event, and one loaded from the persistent cache is also a
`/jax/compilation_cache/cache_hits` event inside it.
"""

from __future__ import annotations

import os
import re
import threading

DEFAULT_DIR = '~/.cache/mlrelabel/xla'
ENV_DIR = 'JAX_COMPILATION_CACHE_DIR'

_COMPILE_EVENT = '/jax/core/compile/backend_compile_duration'
_HIT_EVENT = '/jax/compilation_cache/cache_hits'
_SUMMARY = re.compile(
    r'XLA programs: (?P<compiled>\d+) compiled \((?P<compile_s>[\d.]+) s\), (?P<loaded>\d+) loaded'
)


class _Counter:
    """Programs compiled / loaded in this process, with their seconds (listeners registered once)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.local = threading.local()
        self.reset()
        self.registered = False

    def reset(self):
        self.compiled, self.loaded, self.compile_s, self.load_s = 0, 0, 0.0, 0.0
        self.compiled_names: list[str] = []

    def on_event(self, event: str, **kwargs) -> None:
        if event == _HIT_EVENT:
            self.local.hit = True

    def on_duration(self, event: str, seconds: float, **kwargs) -> None:
        if event != _COMPILE_EVENT:
            return
        hit = getattr(self.local, 'hit', False)
        self.local.hit = False
        with self.lock:
            if hit:
                self.loaded += 1
                self.load_s += seconds
            else:
                self.compiled += 1
                self.compile_s += seconds
                self.compiled_names.append(str(kwargs.get('fun_name', '?')))


_COUNTER = _Counter()


def resolve_dir(configured: str) -> str:
    """The cache folder for `config.compile_cache` ('' = no cache). `$JAX_COMPILATION_CACHE_DIR`, when set,
    moves a configured cache (tests keep theirs in the repository); it never turns a disabled one on."""
    if not configured:
        return ''
    return os.path.abspath(os.path.expanduser(os.environ.get(ENV_DIR) or configured))


def start_counting() -> None:
    """Registers the `jax.monitoring` listeners (once per process) and zeroes the counts."""
    from jax import monitoring

    with _COUNTER.lock:
        _COUNTER.reset()
        if not _COUNTER.registered:
            monitoring.register_event_listener(_COUNTER.on_event)
            monitoring.register_event_duration_secs_listener(_COUNTER.on_duration)
            _COUNTER.registered = True


def enable(configured: str = DEFAULT_DIR) -> str:
    """Turns the persistent cache on in `resolve_dir(configured)` (off for '') and starts counting.

    Call it before the first compilation of the process: JAX opens the cache folder once. Returns the folder
    ('' when disabled)."""
    import jax

    directory = resolve_dir(configured)
    if directory:
        os.makedirs(directory, exist_ok=True)
        jax.config.update('jax_enable_compilation_cache', True)
        jax.config.update('jax_compilation_cache_dir', directory)
        # Cache every program: the defaults skip those compiled in under a second, which a rerun would
        # then compile again.
        jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
        jax.config.update('jax_persistent_cache_min_entry_size_bytes', -1)
    else:
        jax.config.update('jax_enable_compilation_cache', False)
    start_counting()
    return directory


def stats() -> dict:
    """`{'compiled', 'loaded', 'compile_s', 'load_s', 'compiled_names'}` since `enable` / `start_counting`."""
    with _COUNTER.lock:
        return {
            'compiled': _COUNTER.compiled,
            'loaded': _COUNTER.loaded,
            'compile_s': round(_COUNTER.compile_s, 2),
            'load_s': round(_COUNTER.load_s, 2),
            'compiled_names': list(_COUNTER.compiled_names),
        }


def summary(directory: str = '') -> str:
    """One line for the end of a run; `parse_summary` reads it back (benchmarks/main_job.py)."""
    s = stats()
    where = f'the cache {directory}' if directory else 'the cache (disabled)'
    return (
        f'XLA programs: {s["compiled"]} compiled ({s["compile_s"]:.1f} s), {s["loaded"]} loaded from '
        f'{where} ({s["load_s"]:.1f} s)'
    )


def parse_summary(text: str) -> dict | None:
    """`{'compiled', 'loaded', 'compile_s'}` from the last `summary` line in `text`, or None."""
    found = list(_SUMMARY.finditer(text))
    if not found:
        return None
    m = found[-1]
    return {'compiled': int(m['compiled']), 'loaded': int(m['loaded']), 'compile_s': float(m['compile_s'])}
