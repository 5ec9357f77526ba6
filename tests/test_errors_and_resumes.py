"""Clean resumes and errors: stale temporary files removed, timing.json merged, checkpoints without a config
refused, operating-system errors reported in one line naming the path."""

import errno
import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

from mlrelabel import errors, io_utils
from mlrelabel import workdir as workdir_mod
from mlrelabel.config import base_config
from mlrelabel.errors import ConfigError, DataError, ResourceError, TrainingDiverged


def test_atomic_writes_use_a_recognisable_temp_name_and_stale_ones_are_removed(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace

    def replace(src, dst):
        seen.append(os.path.basename(src))
        return real_replace(src, dst)

    monkeypatch.setattr(io_utils.os, 'replace', replace)
    io_utils.atomic_write_json(tmp_path / 'metrics.json', {'a': 1})
    monkeypatch.undo()
    assert seen[0].startswith('.metrics.json.') and seen[0].endswith(io_utils.TEMP_SUFFIX)
    # What writers killed before their rename leave behind (this version's and older versions' names).
    (tmp_path / 'round_1').mkdir()
    stale = [
        tmp_path / '.summary.json.k3j_9x2a.mlrelabel-tmp',
        tmp_path / 'round_1' / '.labels.json.ab12cd34.tmp',
        tmp_path / 'round_1' / 'tmpab12cd_3.png.tmp',
    ]
    kept = [tmp_path / 'notes.tmp', tmp_path / 'round_1' / 'labels.json', tmp_path / 'metrics.json']
    for p in stale + kept[:2]:
        p.write_text('x')
    removed = io_utils.remove_stale_temp_files(tmp_path)
    assert sorted(removed) == sorted(map(str, stale))
    assert all(p.exists() for p in kept) and not any(p.exists() for p in stale)


def test_a_resumed_workdir_loses_its_stale_temp_files(tmp_path):
    config = base_config('smoke')
    workdir_mod.prepare_workdir(config, str(tmp_path))
    (tmp_path / 'round_0').mkdir()
    leftover = tmp_path / 'round_0' / '.metrics.json.zz99yy88.mlrelabel-tmp'
    leftover.write_text('{"partial": tr')
    workdir_mod.prepare_workdir(config, str(tmp_path))  # the resume
    assert not leftover.exists() and (tmp_path / 'config.json').exists()


def test_record_timing_keeps_every_segment(tmp_path):
    io_utils.record_timing(tmp_path, 0, {'relabel_s': 0.0, 'train_s': 12.5})
    io_utils.record_timing(tmp_path, 1, {'relabel_s': 3.0})
    io_utils.record_timing(tmp_path, 1, {'train_s': 7.0})  # e.g. after a resume, the next segment
    record = json.loads((tmp_path / 'timing.json').read_text())
    assert record == {'0': {'relabel_s': 0.0, 'train_s': 12.5}, '1': {'relabel_s': 3.0, 'train_s': 7.0}}


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
