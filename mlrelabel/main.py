"""Runs a recipe: trains, relabels and evaluates, leaving everything in a work directory.

  mlrelabel --config=mc_dropout [--workdir=DIR] [--config.field=value ...]
  python -m mlrelabel.main --config=configs/mc_dropout.py:smoke

--config takes a recipe name (mc_dropout, naive, mc_perturbation, supervised, relabel_maps, partial,
mile, *_imagenet) or a config file, either with ':smoke' for the seconds-long variant. Any field can
be overridden: --config.train.epochs=5. Without --workdir a new folder under runs/ is used.
Rerunning with the same --workdir resumes the run from its last checkpoint; a work directory that
holds another config is refused. TensorBoard: tensorboard --logdir=DIR/tensorboard.
Predictions of a finished run: mlrelabel-predict --workdir=DIR --images=FOLDER --out=preds.csv

Before any work the whole config is validated (mlrelabel.validation), the fields left to the data are
filled in (mlrelabel.data.inspect) and the label files it names are read (mlrelabel.data.checks); a
mistake stops the run before the work directory is claimed, so the corrected command can use the same
--workdir. Expected failures end in one paragraph on stderr and an exit code (the traceback with
--verbosity=1): 2 a config or data mistake, 3 training diverged (NaN or inf; the step is named and the
last finite checkpoint kept), 4 an operating-system error (disk full, permission, ...) naming the path,
130 interrupted by Ctrl-C (one line naming the work directory and the command that resumes the run).
"""

from __future__ import annotations

import datetime
import logging
import os
import shlex
import sys
from typing import Sequence

from absl import flags
from absl import logging as absl_logging
from ml_collections import config_flags

from mlrelabel import compile_cache, validation
from mlrelabel.config import recipes, schema
from mlrelabel.console import run_app
from mlrelabel.errors import ConfigError, Interrupted

# Nothing above imports JAX: a config mistake is reported before the heavy imports.

_CONFIG = config_flags.DEFINE_config_file(
    'config',
    None,
    'A recipe name or a config file, with an optional :variant: '
    f'{", ".join(recipes.available())} (e.g. mc_dropout:smoke, configs/mc_dropout.py).',
    lock_config=True,
)

# ml_collections' config-file parser, taught recipe names: `mc_dropout:smoke` → `<recipes>/mc_dropout.py:smoke`.
_parse_config_file = flags.FLAGS['config'].parser.parse
# The schema fills in the fields a recipe does not list before the --config.x=y overrides apply to them.
flags.FLAGS['config'].parser.parse = lambda path: schema.complete(_parse_config_file(recipes.resolve(path)))
_WORKDIR = flags.DEFINE_string('workdir', '', 'Work directory (default: a new folder under runs/).')


def default_workdir(config_path: str) -> str:
    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    return os.path.join('runs', f'{recipes.display_name(config_path)}-{stamp}')


def run(config, workdir: str) -> dict:
    """Runs `config.method` in `workdir` and returns its summary dict: `methods.launch.run_method`, kept here
    under the name scripts and tests call."""
    from mlrelabel.methods import launch

    return launch.run_method(config, workdir)


def resume_command(workdir: str, argv: Sequence[str], workdir_given: bool) -> str:
    """The command that resumes a run started by `argv`: the same arguments, plus `--workdir=<workdir>` when
    it was defaulted (`workdir_given` False)."""
    spec = getattr(sys.modules.get('__main__'), '__spec__', None)
    prog = (
        'python -m mlrelabel.main'
        if spec is not None and spec.name == 'mlrelabel.main'
        else os.path.basename(argv[0])
    )
    args = list(argv[1:])
    if not workdir_given:
        args = [a for a in args if not a.lstrip('-').startswith('workdir=')] + [f'--workdir={workdir}']
    return ' '.join([prog, *map(shlex.quote, args)])


def _interrupted(workdir: str) -> Interrupted:
    command = resume_command(workdir, sys.argv, workdir_given=bool(_WORKDIR.value))
    return Interrupted(
        f'interrupted; the work so far is saved in {workdir} (the last checkpoint and finished stages). '
        f'Resume with: {command}'
    )


def main(argv):
    if len(argv) > 1:
        raise ConfigError(
            f'unexpected arguments {argv[1:]}: every option is a --flag=value (mlrelabel --help)'
        )
    if not flags.FLAGS['verbosity'].present:
        absl_logging.set_verbosity(absl_logging.WARNING)  # Orbax and JAX log every save at INFO
    config = _CONFIG.value
    validation.validate_config(config)  # before JAX is imported: mistakes stop in about a second
    workdir = _WORKDIR.value or default_workdir(config_flags.get_config_filename(flags.FLAGS['config']))
    try:
        from mlrelabel import parallel

        cache_dir = compile_cache.enable(config.compile_cache)
        p = config.parallel
        parallel.split_cpu(p.cpu_devices)
        parallel.initialize_distributed(p.coordinator_address, p.num_processes, p.process_id)
        logging.info('work directory: %s', workdir)
        print(f'mlrelabel: {config.method} → {workdir}  (resume with --workdir={workdir})', file=sys.stderr)
        run(config, workdir)
        if parallel.is_main_process():
            print(f'mlrelabel: {compile_cache.summary(cache_dir)}', file=sys.stderr)
    except KeyboardInterrupt:  # Ctrl-C: one line saying what was kept and how to go on
        # A checkpoint save cut short logs errors from its background threads at exit; its temporary files
        # are removed when the run resumes, so those logs would only hide the resume line.
        logging.disable(logging.CRITICAL)
        raise _interrupted(workdir) from None


def cli():
    """The `mlrelabel` console script (the same as `python -m mlrelabel.main`): expected failures end in one
    paragraph and an exit code (mlrelabel.errors), the traceback only with --verbosity=1."""
    flags.mark_flags_as_required(['config'])
    sys.exit(run_app(main, __doc__, ['config', 'workdir', 'verbosity']))


if __name__ == '__main__':
    cli()
