"""Runs a recipe: trains, relabels and evaluates, leaving everything in a work directory.

  mlrelabel --config=mc_dropout [--workdir=DIR] [--config.field=value ...]
  python -m mlrelabel.main --config=configs/mc_dropout.py:smoke

--config takes a recipe name (mc_dropout, naive, mc_perturbation, supervised, relabel_maps, partial,
mile, *_imagenet) or a config file, either with ':smoke' for the seconds-long variant. Any field can
be overridden: --config.train.epochs=5. Without --workdir a new folder under runs/ is used.
Rerunning with the same --workdir resumes the run from its last checkpoint; a work directory that
holds another config is refused. TensorBoard: tensorboard --logdir=DIR/tensorboard.
Predictions of a finished run: mlrelabel-predict --workdir=DIR --images=FOLDER --out=preds.csv
"""

from __future__ import annotations

import datetime
import importlib
import json
import logging
import os
import sys

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

from mlrelabel import parallel, recipes, tensorboard_writer
from mlrelabel.console import run_app
from mlrelabel.io_utils import atomic_write_text

_CONFIG = config_flags.DEFINE_config_file(
    'config',
    None,
    'A recipe name or a config file, with an optional :variant: '
    f'{", ".join(recipes.available())} (e.g. mc_dropout:smoke, configs/mc_dropout.py).',
    lock_config=True,
)

# ml_collections' config-file parser, taught recipe names: `mc_dropout:smoke` → `<recipes>/mc_dropout.py:smoke`.
_parse_config_file = flags.FLAGS['config'].parser.parse
flags.FLAGS['config'].parser.parse = lambda path: _parse_config_file(recipes.resolve(path))
_WORKDIR = flags.DEFINE_string('workdir', '', 'Work directory (default: a new folder under runs/).')

METHODS_PACKAGE = 'mlrelabel.methods'
# Fields that may change between a run and its resumption without changing its results.
RESUMABLE_DIFFERENCES = ('parallel',)


def default_workdir(config_path: str) -> str:
    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    return os.path.join('runs', f'{recipes.display_name(config_path)}-{stamp}')


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


def prepare_workdir(config, workdir: str) -> None:
    """Creates `workdir` and records the resolved config; refuses a workdir that holds another config."""
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, 'config.json')
    text = config.to_json_best_effort(sort_keys=True, indent=2)
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        diff = _differences(old, json.loads(text))
        if diff:
            raise SystemExit(
                f'{path} holds a run with another config ({"; ".join(diff[:5])}). Resume it with the '
                f'same config, or choose a new --workdir.'
            )
    elif parallel.is_main_process():
        atomic_write_text(path, text)


def enable_compilation_cache(directory: str = '') -> None:
    """Keeps compiled XLA programs on disk, so identical programs (later rounds, reruns, resumed runs) compile
    once. Results are unaffected. `JAX_COMPILATION_CACHE_DIR` or `directory` override the default location."""
    import jax

    if jax.config.jax_compilation_cache_dir:
        return
    directory = directory or os.path.join(os.path.expanduser('~'), '.cache', 'mlrelabel', 'xla')
    jax.config.update('jax_compilation_cache_dir', directory)
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)


def available_methods() -> list[str]:
    """Every module of `mlrelabel/methods/` that defines `run(config, workdir)` is a method."""
    import pkgutil

    package = importlib.import_module(METHODS_PACKAGE)
    return sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.name != 'common')


def run(config, workdir: str) -> dict:
    """Runs `config.method` in `workdir`; returns the method's summary dict."""
    methods = available_methods()
    if config.method not in methods:
        raise SystemExit(f'config.method={config.method!r}: expected one of {", ".join(methods)}')
    prepare_workdir(config, workdir)
    module = importlib.import_module(f'{METHODS_PACKAGE}.{config.method}')
    with tensorboard_writer.active_run(workdir):  # training phases write <workdir>/tensorboard/
        return module.run(config, workdir)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    if not flags.FLAGS['verbosity'].present:
        absl_logging.set_verbosity(absl_logging.WARNING)  # Orbax and JAX log every save at INFO
    config = _CONFIG.value
    enable_compilation_cache()
    p = config.parallel
    parallel.initialize_distributed(p.coordinator_address, p.num_processes, p.process_id)
    workdir = _WORKDIR.value or default_workdir(config_flags.get_config_filename(flags.FLAGS['config']))
    logging.info('work directory: %s', workdir)
    print(f'mlrelabel: {config.method} → {workdir}  (resume with --workdir={workdir})', file=sys.stderr)
    run(config, workdir)


def cli():
    """The `mlrelabel` console script (the same as `python -m mlrelabel.main`)."""
    flags.mark_flags_as_required(['config'])
    run_app(main, __doc__, ['config', 'workdir', 'verbosity'])


if __name__ == '__main__':
    cli()
