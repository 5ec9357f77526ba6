"""The sharded label-map store (`mlrelabel.label_maps.store`): round trips, lazy reads, order checks, and a
resume after a real kill mid-write."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mlrelabel.label_maps.store import LabelMapSource, LabelMapStore, LabelMapWriter, MapShape
from tests.helpers import ROOT

_SHAPE = MapShape(k=2, height=3, width=3, num_classes=20)  # the store tests' map shape


def _random_maps(n, k=2, r=3, num_classes=20, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, k, r, r)).astype(np.float32), rng.integers(0, num_classes, (n, k, r, r))


def test_store_round_trip_lazy_reads_and_order_checks(tmp_path):
    order = [f'cls{i % 3}/img{i}.png' for i in range(23)]
    scores, classes = _random_maps(23)
    writer = LabelMapWriter(str(tmp_path), order, _SHAPE, shard_size=10)
    assert writer.num_shards == 3 and writer.missing_shards() == [0, 1, 2]
    with pytest.raises(ValueError, match='incomplete store'):
        LabelMapStore(str(tmp_path))
    for s in writer.missing_shards():
        a, b = writer.shard_range(s)
        writer.write_shard(s, scores[a:b], classes[a:b])
    with pytest.raises(ValueError, match=r'expected scores and classes of shape \(10, 2, 3, 3\)'):
        writer.write_shard(0, scores[:9], classes[:9])
    store = LabelMapStore(str(tmp_path), expected_order=order)
    idx = np.asarray([22, 0, 15, 9, 10])
    got_s, got_c = store.get(idx)
    assert got_s.dtype == np.float32 and got_c.dtype == np.int32
    np.testing.assert_allclose(got_s, scores[idx], atol=2e-3)  # fp16 storage
    np.testing.assert_array_equal(got_c, classes[idx])
    assert all(isinstance(a, np.memmap) for pair in store._shards.values() for a in pair)
    assert set(store._shards) == {0, 1, 2}
    assert os.path.getsize(tmp_path / 'shard_00000.scores.npy') < 10 * 18 * 2 + 200
    # Order: checked on open (naming the first difference); rows_for maps permuted or re-rooted ids.
    wrong = list(order)
    wrong[4] = 'cls1/other.png'
    with pytest.raises(
        ValueError, match="image 4 is 'cls1/img4.png' in the store, 'cls1/other.png' expected"
    ):
        LabelMapStore(str(tmp_path), expected_order=wrong)
    perm = np.random.default_rng(1).permutation(23)[:7]
    np.testing.assert_array_equal(store.rows_for([order[i] for i in perm]), perm)
    np.testing.assert_array_equal(store.rows_for([f'/data/train/{order[i][:-4]}.JPEG' for i in perm]), perm)
    with pytest.raises(ValueError, match="no label map for image 1 \\('cls0/missing.png'\\)"):
        store.rows_for([order[0], 'cls0/missing.png'])
    source = LabelMapSource(store, store.rows_for([order[i] for i in perm]))
    batch = source.batch(np.asarray([0, 2]))
    np.testing.assert_array_equal(batch['map_classes'], classes[perm[[0, 2]]])
    # A writer on the same directory with another order or shape is refused.
    with pytest.raises(ValueError, match='image order: image 4'):
        LabelMapWriter(str(tmp_path), wrong, _SHAPE, shard_size=10)
    with pytest.raises(ValueError, match='k: 2 stored, 3 now'):
        LabelMapWriter(str(tmp_path), order, MapShape(k=3, height=3, width=3, num_classes=20), shard_size=10)


_KILLED_WRITER = r'''
import os, sys, time
from mlrelabel.label_maps import store
import numpy as np
out, marker = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
scores, classes = rng.normal(size=(25, 2, 3, 3)), rng.integers(0, 20, (25, 2, 3, 3))
real, calls = store.atomic_write_bytes, []
def slow(path, data):
    calls.append(path)
    if len(calls) == 4:              # shard 1's class file: half written, then killed
        with open(path + '.partial.tmp', 'wb') as f:
            f.write(data[: len(data) // 2])
        open(marker, 'w').close()
        time.sleep(60)
    real(path, data)
store.atomic_write_bytes = slow
shape = store.MapShape(k=2, height=3, width=3, num_classes=20)
w = store.LabelMapWriter(out, [f'c/{i}.png' for i in range(25)], shape, shard_size=10)
for s in w.missing_shards():
    a, b = w.shard_range(s)
    w.write_shard(s, scores[a:b], classes[a:b])
'''


def test_store_survives_a_kill_mid_write_and_resumes(tmp_path):
    out, marker = tmp_path / 'store', tmp_path / 'marker'
    proc = subprocess.Popen(
        [sys.executable, '-c', _KILLED_WRITER, str(out), str(marker)], cwd=ROOT, stderr=subprocess.PIPE
    )
    deadline = time.time() + 60
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert marker.exists(), proc.stderr.read().decode()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    index = json.load(open(out / 'index.json'))
    assert [s['shard'] for s in index['shards']] == [0]
    with pytest.raises(ValueError, match='2 of 3 shards missing'):
        LabelMapStore(str(out))
    order = [f'c/{i}.png' for i in range(25)]
    writer = LabelMapWriter(str(out), order, _SHAPE, shard_size=10)
    assert writer.missing_shards() == [1, 2] and writer.num_done() == 10
    rng = np.random.default_rng(0)
    scores, classes = rng.normal(size=(25, 2, 3, 3)), rng.integers(0, 20, (25, 2, 3, 3))
    for s in writer.missing_shards():
        a, b = writer.shard_range(s)
        writer.write_shard(s, scores[a:b], classes[a:b])
    got_s, got_c = LabelMapStore(str(out), expected_order=order).get(np.arange(25))
    np.testing.assert_allclose(got_s, scores, atol=4e-3)
    np.testing.assert_array_equal(got_c, classes)
