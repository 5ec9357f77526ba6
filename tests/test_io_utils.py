"""Atomic writes (`mlrelabel.io_utils`): a recognisable temporary name, stale ones removed, the old file kept
when writing fails, bytes and .npz; timing.json keeps every segment."""

import json
import os

import numpy as np
import pytest

from mlrelabel import io_utils


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


def test_record_timing_keeps_every_segment(tmp_path):
    io_utils.record_timing(tmp_path, 0, {'relabel_s': 0.0, 'train_s': 12.5})
    io_utils.record_timing(tmp_path, 1, {'relabel_s': 3.0})
    io_utils.record_timing(tmp_path, 1, {'train_s': 7.0})  # e.g. after a resume, the next segment
    record = json.loads((tmp_path / 'timing.json').read_text())
    assert record == {'0': {'relabel_s': 0.0, 'train_s': 12.5}, '1': {'relabel_s': 3.0, 'train_s': 7.0}}


def test_atomic_write_leaves_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "out" / "metrics.json"
    io_utils.atomic_write_json(target, {"round": 1})
    assert json.loads(target.read_text()) == {"round": 1}

    def failing_fsync(fd):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(io_utils.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="simulated"):
        io_utils.atomic_write_text(target, '{"round": 2, "partial": tr')
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"round": 1}
    assert os.listdir(target.parent) == ["metrics.json"]

    with pytest.raises(TypeError):  # unserialisable: fails before touching the file
        io_utils.atomic_write_json(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"round": 1}
    assert os.listdir(target.parent) == ["metrics.json"]


def test_atomic_write_bytes_and_npz(tmp_path):
    io_utils.atomic_write_bytes(tmp_path / "a" / "b" / "blob.bin", b"\x00\x01")
    assert (tmp_path / "a" / "b" / "blob.bin").read_bytes() == b"\x00\x01"
    target = tmp_path / "arrays.cache"  # no .npz suffix is added
    io_utils.atomic_save_npz(target, x=np.arange(6).reshape(2, 3), y=np.ones(2, np.uint8))
    with np.load(target) as f:
        np.testing.assert_array_equal(f["x"], np.arange(6).reshape(2, 3))
        assert f["y"].dtype == np.uint8
    assert sorted(os.listdir(tmp_path)) == ["a", "arrays.cache"]
