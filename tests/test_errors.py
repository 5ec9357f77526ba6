"""User mistakes on the command line end in one short message and exit code 2 (no traceback unless
--verbosity=1); operating-system errors in one line naming the path; Ctrl-C stops a run with exit code 130 and
one line saying how to resume it."""

import errno
import glob
import os
import signal
import subprocess
import sys
import time

import pytest

from mlrelabel import errors, main
from mlrelabel.errors import ConfigError, DataError, ResourceError, TrainingDiverged
from tests.helpers import ROOT

SMOKE = '--config=mc_dropout:smoke'


def _run(module, *args, cwd=ROOT, timeout=120):
    env = {**os.environ, 'PYTHONPATH': ROOT}
    command = [sys.executable, '-m', module, *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _one_paragraph(done, prog='mlrelabel'):
    """The message of a failed command: asserts exit code 2, no traceback and one line starting `prog: `."""
    assert done.returncode == 2, done.stderr[-3000:]
    assert 'Traceback' not in done.stderr, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f'{prog}: '), done.stderr[-3000:]
    return lines[0]


@pytest.mark.parametrize(
    'args, expected',
    [
        (['--config=nonexistent'], ["--config=nonexistent: no such config file and no recipe named 'nonexistent'",
                                    'recipes: ', 'mc_dropout, ', 'supervised']),
        ([SMOKE, '--workdri=x'], ['--workdri=x: no such flag; did you mean --workdir?']),
        ([SMOKE, '--config.train.epochs=abc'], ['--config.train.epochs=abc: expected an int for config.train.epochs']),
        ([SMOKE, '--config.train.augment.flip=maybe'], ['expected a bool for config.train.augment.flip']),
        ([SMOKE, '--config.train.epoch=3'], ["no field 'epoch'", 'did you mean --config.train.epochs?']),
        ([SMOKE, '--config.trian.epochs=3'], ["no field 'trian'", 'did you mean --config.train.epochs?']),
        ([SMOKE, '--config.nosuch.x=1'], ["--config.nosuch.x=1: the config has no field 'nosuch'"]),
        (['--config=mc_dropout:huge'], ["unknown config variant 'huge'"]),
        (['--workdir=x'], ['--config is required: A recipe name or a config file']),
        ([SMOKE, 'stray'], ["unexpected arguments ['stray']"]),
    ],
)  # fmt: skip
def test_a_command_line_mistake_is_one_line_and_exit_2(args, expected, tmp_path):
    line = _one_paragraph(_run('mlrelabel.main', *args, cwd=tmp_path))
    for text in expected:
        assert text in line, line
    assert not os.path.exists(tmp_path / 'runs')  # nothing was started


def test_verbosity_1_adds_the_traceback_and_help_still_works():
    done = _run('mlrelabel.main', SMOKE, '--config.train.epochs=abc', '--verbosity=1')
    assert done.returncode == 2 and 'Traceback' in done.stderr
    assert (
        done.stderr.rstrip()
        .splitlines()[-1]
        .startswith('mlrelabel: --config.train.epochs=abc: expected an int')
    )
    shown = _run('mlrelabel.main', '--help')
    assert shown.returncode == 0 and '--workdir' in shown.stdout and 'Traceback' not in shown.stderr


@pytest.mark.parametrize(
    'args, expected',
    [
        (['--workdri=x', '--images=y', '--out=a.csv'], '--workdri=x: no such flag; did you mean --workdir?'),
        (['--workdir={tmp}/none', '--images={tmp}', '--out=a.csv'], '/none: no config.json'),
        (['--workdir={tmp}', '--images={tmp}', '--out=a.txt'], '--out=a.txt: expected a .csv or .json file'),
        (['--workdir={tmp}', '--images={tmp}', '--out=a.csv', '--threshold=abc'], '--threshold=abc: expected a float'),
        (['--images={tmp}', '--out=a.csv'], '--workdir is required'),
    ],
)  # fmt: skip
def test_predict_mistakes_are_one_line_and_exit_2(args, expected, tmp_path):
    done = _run('mlrelabel.predict', *[a.format(tmp=tmp_path) for a in args], cwd=tmp_path)
    assert expected in _one_paragraph(done, 'mlrelabel-predict')
    shown = _run('mlrelabel.predict', '--help')
    assert shown.returncode == 0 and '--images' in shown.stdout


def test_resume_command_repeats_the_arguments_and_names_a_defaulted_workdir():
    argv = ['/usr/bin/mlrelabel', SMOKE, '--config.train.epochs=3', '--workdir=']
    assert main.resume_command('runs/x y', argv, workdir_given=False) == (
        "mlrelabel --config=mc_dropout:smoke --config.train.epochs=3 '--workdir=runs/x y'"
    )
    argv = ['/usr/bin/mlrelabel', '--workdir=w', SMOKE]
    assert (
        main.resume_command('w', argv, workdir_given=True)
        == 'mlrelabel --workdir=w --config=mc_dropout:smoke'
    )


@pytest.mark.slow
def test_ctrl_c_during_round_0_stops_with_exit_130_and_the_resume_command(tmp_path):
    """SIGINT during round 0 of a run whose work directory was defaulted: exit 130 within seconds, one line
    naming the work directory and the command that resumes it, no traceback. The run starts with SIGINT
    ignored, as a background job of a script or a CI runner does, and must stop all the same."""
    env = {**os.environ, 'PYTHONPATH': ROOT}
    command = [sys.executable, '-m', 'mlrelabel.main', SMOKE]
    proc = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    deadline = time.time() + 600
    while proc.poll() is None and time.time() < deadline:
        if glob.glob(str(tmp_path / 'runs' / '*' / 'round_0' / 'checkpoints' / '*')):
            break
        time.sleep(0.05)
    assert proc.poll() is None, 'the run ended before round 0 saved a checkpoint'
    proc.send_signal(signal.SIGINT)
    sent = time.time()
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == errors.EXIT_INTERRUPTED, stderr[-3000:]
    assert time.time() - sent < 30, 'Ctrl-C took too long'
    assert 'Traceback' not in stderr, stderr[-3000:]
    (workdir,) = glob.glob('runs/*', root_dir=tmp_path)
    lines = [line for line in stderr.splitlines() if line.startswith('mlrelabel: interrupted')]
    assert len(lines) == 1, stderr[-3000:]
    assert f'saved in {workdir}' in lines[0]
    assert lines[0].endswith(f'Resume with: python -m mlrelabel.main {SMOKE} --workdir={workdir}')
    assert stderr.rstrip().splitlines()[-1] == lines[0]  # the last line: nothing logged after it


def test_everything_printed_has_one_style(tmp_path):
    """Python logging, absl logging and `warnings` all print as `prog: warning: message` under run_app."""
    script = tmp_path / 'tool.py'
    script.write_text(
        'import logging, sys, warnings\n'
        'from absl import logging as absl_logging\n'
        'from mlrelabel.console import run_app\n'
        'def main(argv):\n'
        '    logging.warning("from logging %d", 1)\n'
        '    absl_logging.warning("from absl")\n'
        '    warnings.warn("from warnings", RuntimeWarning)\n'
        'sys.exit(run_app(main, "a tool", []))\n'
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [
        'tool.py: warning: from logging 1',
        'tool.py: warning: from absl',
        'tool.py: warning: from warnings',
    ]


def test_failures_become_one_line_and_an_exit_code():
    disk_full = OSError(errno.ENOSPC, 'No space left on device', '/runs/x/round_1/labels.json')
    try:
        try:
            raise disk_full
        except OSError as e:
            raise RuntimeError('orbax: save failed') from e
    except RuntimeError as wrapped:
        code, message = errors.describe_failure(wrapped)
    assert code == errors.EXIT_OS_ERROR
    assert message == 'mlrelabel: No space left on device (ENOSPC): /runs/x/round_1/labels.json'
    code, message = errors.describe_failure(PermissionError(errno.EACCES, 'Permission denied', '/runs/x'))
    assert code == errors.EXIT_OS_ERROR and message.endswith('Permission denied (EACCES): /runs/x')
    assert errors.describe_failure(ConfigError(['config.train.epochs=0: expected an integer >= 1']))[0] == 2
    assert errors.describe_failure(DataError('val.json: lists no images'))[0] == 2
    assert errors.describe_failure(TrainingDiverged('round 1 train', 9, 'no checkpoint'))[0] == 3
    assert errors.describe_failure(ResourceError('pip install torch'))[0] == 4
    assert errors.describe_failure(KeyboardInterrupt()) == (130, 'mlrelabel: interrupted (Ctrl-C)')
    assert errors.describe_failure(errors.Interrupted('interrupted; resume with: x'), 'p') == (
        130,
        'p: interrupted; resume with: x',
    )
    assert errors.describe_failure(KeyError('bug')) is None  # anything else keeps its traceback


@pytest.mark.slow
def test_cli_reports_an_os_error_in_one_line_naming_the_path(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('not a folder')
    command = [
        sys.executable,
        '-m',
        'mlrelabel.main',
        '--config=configs/supervised.py:smoke',
        f'--workdir={blocker}/run',
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == errors.EXIT_OS_ERROR
    lines = [line for line in done.stderr.splitlines() if line.startswith('mlrelabel: Not a directory')]
    assert len(lines) == 1 and f'{blocker}/run' in lines[0]
    assert 'Traceback' not in done.stderr and len(done.stderr.splitlines()) <= 3
