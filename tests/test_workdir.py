"""The work directory (`mlrelabel.workdir`): stale temporary files removed on resume, checkpoints without a
config refused, a folder with only data adopted; one run per work directory through `<workdir>/.lock` (flock),
which names its holder, dies with its process and lets the same command resume afterwards."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from mlrelabel import workdir as workdir_mod
from mlrelabel.config import base_config
from mlrelabel.errors import ConfigError
from mlrelabel.workdir import LOCK_NAME, WorkdirLock
from tests.helpers import ROOT


def test_a_resumed_workdir_loses_its_stale_temp_files(tmp_path):
    config = base_config('smoke')
    workdir_mod.prepare_workdir(config, str(tmp_path))
    (tmp_path / 'round_0').mkdir()
    leftover = tmp_path / 'round_0' / '.metrics.json.zz99yy88.mlrelabel-tmp'
    leftover.write_text('{"partial": tr')
    workdir_mod.prepare_workdir(config, str(tmp_path))  # the resume
    assert not leftover.exists() and (tmp_path / 'config.json').exists()


@pytest.mark.parametrize('leftover', ['checkpoints/8', 'round_0/checkpoints/4', 'teacher/checkpoints/2'])
def test_checkpoints_without_config_json_are_refused(leftover, tmp_path):
    (tmp_path / leftover).mkdir(parents=True)
    with pytest.raises(ConfigError, match=r'holds checkpoints .* but no config\.json'):
        workdir_mod.prepare_workdir(base_config('smoke'), str(tmp_path))
    assert not (tmp_path / 'config.json').exists()


def test_a_workdir_with_only_data_is_adopted(tmp_path):
    (tmp_path / 'data').mkdir()
    workdir_mod.prepare_workdir(base_config('smoke'), str(tmp_path))
    assert (tmp_path / 'config.json').exists()


HOLDER = (
    'import sys, time\n'
    'from mlrelabel.workdir import WorkdirLock\n'
    'assert WorkdirLock(sys.argv[1]).acquire() is None\n'
    'print("locked", flush=True)\n'
    'time.sleep(120)\n'
)


def _env():
    return dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))


@pytest.fixture
def holder(tmp_path):
    """A separate process holding the lock of `tmp_path/run` (killed at the end)."""
    workdir = str(tmp_path / 'run')
    proc = subprocess.Popen(
        [sys.executable, '-c', HOLDER, workdir, '--marker'], stdout=subprocess.PIPE, text=True, env=_env()
    )
    assert proc.stdout.readline().strip() == 'locked'
    yield workdir, proc
    proc.kill()
    proc.wait()


def test_lock_names_its_holder_and_dies_with_it(holder):
    workdir, proc = holder
    second = WorkdirLock(workdir)
    found = second.acquire()
    assert found is not None and not second.held
    assert found['pid'] == proc.pid and '--marker' in found['command']
    proc.send_signal(signal.SIGKILL)  # a killed run leaves no stale lock
    proc.wait()
    assert second.acquire() is None and second.held
    with open(os.path.join(workdir, LOCK_NAME)) as f:
        assert json.load(f)['pid'] == os.getpid()
    second.release()
    assert not second.held and WorkdirLock(workdir).acquire() is None


def test_second_cli_run_stops_at_once_with_exit_2(holder):
    workdir, proc = holder
    t0 = time.time()
    out = subprocess.run(
        [sys.executable, '-m', 'mlrelabel.main', '--config=supervised:smoke', f'--workdir={workdir}'],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
        cwd=ROOT,
    )
    assert out.returncode == 2, out.stderr
    assert f'process {proc.pid}' in out.stderr and workdir in out.stderr and '--marker' in out.stderr
    assert time.time() - t0 < 60
    assert sorted(os.listdir(workdir)) == [LOCK_NAME]  # nothing else was written


def test_run_method_holds_the_lock_while_the_method_runs(tiny_config, tmp_path, monkeypatch):
    from mlrelabel.methods import launch, supervised

    workdir = str(tmp_path / 'run')
    seen = {}

    def fake_run(config, wd):
        seen['busy'] = WorkdirLock(wd).acquire()  # another descriptor: refused while the run holds it
        raise RuntimeError('method failed')

    monkeypatch.setattr(supervised, 'run', fake_run)
    with pytest.raises(RuntimeError, match='method failed'):
        launch.run_method(tiny_config, workdir)
    assert seen['busy']['pid'] == os.getpid()
    lock = WorkdirLock(workdir)
    assert lock.acquire() is None  # released when the run ends, even by an exception
    lock.release()
    with WorkdirLock(workdir) as held:
        assert held.acquire() is None
        with pytest.raises(launch.WorkdirBusy, match=f'process {os.getpid()}'):
            launch.claim(workdir)
