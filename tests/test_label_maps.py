"""ReLabel label maps: generation (resize + top-k), crop-box composition, the pooling/CutMix transform, the
sharded store (order checks, lazy reads, resume after a real kill) and the import of ReLabel's .pt files."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT

from mlrelabel.errors import ResourceError
from mlrelabel.label_maps import maps as label_maps
from mlrelabel.label_maps import pooling as label_pooling
from mlrelabel.label_maps.store import LabelMapSource, LabelMapStore, LabelMapWriter, MapShape
from mlrelabel.ops import augment
from mlrelabel.ops import boxes as ops_boxes
from mlrelabel.tools import import_relabel_maps as imp

# ----------------------------------------------------------------------------------------------------------
# Generation.
# ----------------------------------------------------------------------------------------------------------


def test_topk_maps_sorted_ids_and_layout():
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(2, 3, 4, 7)).astype(np.float32)
    scores, classes = label_maps.topk_maps(dense, 3)
    assert scores.shape == classes.shape == (2, 3, 3, 4) and classes.dtype == jnp.int32
    want = np.argsort(-dense, axis=-1)[..., :3]  # [B, h, w, k]
    np.testing.assert_array_equal(np.asarray(classes), np.moveaxis(want, -1, 1))
    np.testing.assert_allclose(np.asarray(scores), np.moveaxis(np.take_along_axis(dense, want, -1), -1, 1))
    assert (np.diff(np.asarray(scores), axis=1) <= 0).all()
    np.testing.assert_array_equal(np.asarray(label_maps.map_argmax(scores, classes)), dense.argmax(-1))
    with pytest.raises(ValueError, match='k must be'):
        label_maps.topk_maps(dense, 8)


def test_resize_dense_keeps_constants_and_covers_the_image():
    const = np.full((1, 3, 3, 2), 1.5, np.float32)
    np.testing.assert_allclose(np.asarray(label_maps.resize_dense(const, 5)), 1.5, atol=1e-6)
    # A left/right split map keeps its halves at the new resolution (cell centres at i + 0.5).
    split = np.zeros((1, 4, 4, 2), np.float32)
    split[:, :, :2, 0] = split[:, :, 2:, 1] = 1.0
    out = np.asarray(label_maps.resize_dense(split, 8))
    assert out.shape == (1, 8, 8, 2)
    assert (out[0, :, :3, 0] > out[0, :, :3, 1]).all() and (out[0, :, 5:, 1] > out[0, :, 5:, 0]).all()
    np.testing.assert_allclose(out[0, :, :4, 0], out[0, :, 4:, 1][:, ::-1], atol=1e-6)  # symmetric


def test_generate_fn_is_the_teachers_dense_output(tiny_config):
    from mlrelabel.methods import common

    model = common.build_model(tiny_config, 10)
    variables = common.init_variables(model, tiny_config, 0)
    images = np.random.default_rng(1).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    mean, std = tiny_config.data.mean, tiny_config.data.std
    gen = jax.jit(label_maps.make_generate_fn(model, k=3, map_size=2, image_size=16, mean=mean, std=std))
    scores, classes = gen(variables, images)
    dense = model.apply(variables, augment.normalize(images, mean, std), dense=True)
    want_s, want_c = label_maps.dense_to_topk_maps(dense, 2, 3)
    assert scores.shape == (4, 3, 2, 2)
    np.testing.assert_allclose(np.asarray(scores), np.asarray(want_s), atol=1e-5)
    np.testing.assert_array_equal(np.asarray(classes), np.asarray(want_c))


# ----------------------------------------------------------------------------------------------------------
# Boxes: a region of an (augmented) crop, in source-image fractions.
# ----------------------------------------------------------------------------------------------------------


def test_compose_boxes_numbers_and_flips():
    outer = np.asarray([[0.2, 0.4, 0.6, 0.8]] * 2, np.float32)
    inner = np.asarray([[0.0, 0.0, 0.5, 0.25]] * 2, np.float32)
    got = np.asarray(label_maps.compose_boxes(outer, inner, np.asarray([False, True])))
    np.testing.assert_allclose(got[0], [0.2, 0.4, 0.4, 0.5], atol=1e-6)
    np.testing.assert_allclose(got[1], [0.2, 0.7, 0.4, 0.8], atol=1e-6)  # mirrored inside the crop
    full = np.asarray([[0, 0, 1, 1]] * 2, np.float32)
    np.testing.assert_allclose(np.asarray(label_maps.compose_boxes(full, inner)), inner, atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(label_maps.compose_boxes(outer, full, np.asarray([True, True]))), outer
    )


def test_compose_boxes_locates_the_pixels_of_an_augmented_crop():
    """Ramp images (channel 0 = row centre, 1 = column centre, as fractions): after random-resized-crop + flip,
    the pixels inside a CutMix box of the crop show the centre of the composed box in the source image."""
    size, batch = 64, 16
    centres = (np.arange(size) + 0.5) / size
    ramp = np.stack(np.broadcast_arrays(centres[:, None], centres[None, :]) + (np.zeros((size, size)),), -1)
    images = jnp.asarray(np.broadcast_to(ramp, (batch, size, size, 3)), jnp.float32)
    out, boxes, flipped = augment.random_resized_crop_flip(
        jax.random.key(5), images, (0.3, 1.0), (3 / 4, 4 / 3)
    )
    assert np.asarray(flipped).any() and not np.asarray(flipped).all()
    inner = np.asarray(
        ops_boxes.random_boxes(jax.random.key(6), batch, 1, scale=(0.1, 0.3), ratio=(0.75, 1.33))
    )[:, 0]
    src = np.asarray(label_maps.compose_boxes(boxes, inner, flipped))
    out = np.asarray(out)
    for i in range(batch):
        r0, c0, r1, c1 = np.rint(inner[i] * size).astype(int)
        seen = out[i, r0:r1, c0:c1, :2].reshape(-1, 2).mean(0)
        want = [(src[i, 0] + src[i, 2]) / 2, (src[i, 1] + src[i, 3]) / 2]
        np.testing.assert_allclose(seen, want, atol=1.5 / size)


# ----------------------------------------------------------------------------------------------------------
# The train step's transform: LabelPooling targets and CutMix.
# ----------------------------------------------------------------------------------------------------------


def _uniform_maps(batch, num_classes, k=2, r=3):
    """Image i's map: class i with score 4 everywhere, class (i + 1) % C with score 1."""
    scores = np.zeros((batch, k, r, r), np.float32)
    scores[:, 0], scores[:, 1] = 4.0, 1.0
    classes = np.zeros((batch, k, r, r), np.int32)
    classes[:, 0] = np.arange(batch)[:, None, None] % num_classes
    classes[:, 1] = (np.arange(batch)[:, None, None] + 1) % num_classes
    return {'map_scores': scores, 'map_classes': classes}


def test_transform_pools_the_crop_box_and_mixes_by_pasted_area():
    batch, size, num_classes = 8, 12, 8
    maps = _uniform_maps(batch, num_classes)
    images = jnp.asarray(
        np.broadcast_to(np.arange(batch, dtype=np.float32)[:, None, None, None], (batch, size, size, 3))
    )
    boxes = jnp.asarray(
        ops_boxes.random_boxes(jax.random.key(0), batch, 1, scale=(0.3, 1.0), ratio=(0.75, 1.33))[:, 0]
    )
    flipped = jnp.asarray(np.arange(batch) % 2 == 0)
    plain = label_maps.make_pooling_transform(num_classes)
    out, target = plain(images, maps, boxes, flipped, jax.random.key(1), 0)
    want = label_pooling.label_pooling(
        label_pooling.topk_to_dense(maps['map_scores'], maps['map_classes'], num_classes), boxes
    )
    np.testing.assert_allclose(np.asarray(target), np.asarray(want), atol=1e-6)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(images))

    mix = jax.jit(
        label_maps.make_pooling_transform(num_classes, cutmix=label_maps.CutMixOptions(True, until_step=10))
    )
    out, target = mix(images, maps, boxes, flipped, jax.random.key(2), 3)
    out, target = np.asarray(out), np.asarray(target)
    np.testing.assert_allclose(target.sum(1), 1.0, atol=1e-5)
    z = np.exp(4.0) + np.exp(1.0) + num_classes - 2  # uniform maps: softmax of the scores

    def q(m):
        row = np.full(num_classes, 1 / z)
        row[m], row[(m + 1) % num_classes] = np.exp(4.0) / z, np.exp(1.0) / z
        return row

    mixed_any = False
    for i in range(batch):
        pasted = out[i, ..., 0] != i
        lam = 1.0 - pasted.mean()
        partner = set(np.unique(out[i, ..., 0][pasted]).astype(int)) or {i}
        assert len(partner) == 1
        j = partner.pop()
        mixed_any |= j != i
        np.testing.assert_allclose(target[i], lam * q(i) + (1 - lam) * q(j), atol=1e-4)
    assert mixed_any
    # CutMix is off from `cutmix_until_step` on.
    out, target = mix(images, maps, boxes, flipped, jax.random.key(2), 10)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(images))
    np.testing.assert_allclose(np.asarray(target), np.asarray(want), atol=1e-6)


def test_transform_pools_the_pasted_region_of_the_partner():
    """Partner maps split top/bottom between two classes: the pasted share of each class follows the part
    of the partner's source image that the CutMix box covers, through its crop box."""
    batch, size, num_classes = 16, 16, 4
    scores = np.full((batch, 1, 8, 8), 6.0, np.float32)
    classes = np.zeros((batch, 1, 8, 8), np.int32)
    classes[:, :, 4:] = 1  # top half class 0, bottom half class 1
    maps = {'map_scores': scores, 'map_classes': classes}
    images = jnp.zeros((batch, size, size, 3))
    boxes = jnp.asarray(np.tile([[0.5, 0.0, 1.0, 1.0]], (batch, 1)), jnp.float32)  # every crop: bottom half
    mix = label_maps.make_pooling_transform(num_classes, cutmix=label_maps.CutMixOptions(True, until_step=1))
    _, target = mix(images, maps, boxes, jnp.zeros(batch, bool), jax.random.key(3), 0)
    # Both the kept crop and any pasted region lie in the bottom half: class 0 never gets mass.
    one = np.exp(6.0) / (np.exp(6.0) + num_classes - 1)
    np.testing.assert_allclose(np.asarray(target)[:, 1], one, atol=2e-3)


# ----------------------------------------------------------------------------------------------------------
# The store.
# ----------------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------------
# Import of ReLabel's .pt maps.
# ----------------------------------------------------------------------------------------------------------


def _relabel_files(root, paths, save, num_classes=1000):
    """ReLabel's layout: root/<wnid>/<stem>.pt holding [2, 5, 15, 15] (scores, float class ids)."""
    rng = np.random.default_rng(2)
    arrays = []
    for p in paths:
        ids = np.stack([rng.permutation(num_classes)[:5] for _ in range(225)], -1).reshape(5, 15, 15)
        scores = -np.sort(-rng.normal(size=(5, 15, 15)), axis=0)
        arr = np.stack([scores, ids]).astype(np.float32)
        target = imp.map_file(str(root), p)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        save(arr, target)
        arrays.append(arr)
    return np.stack(arrays)


def test_import_converts_relabel_layout_with_any_loader(tmp_path):
    paths = [f'train/n0144{i % 2}764/n0144{i % 2}764_{i}.JPEG' for i in range(5)]

    def save(arr, target):
        with open(target, 'wb') as f:
            np.save(f, arr)

    arrays = _relabel_files(tmp_path / 'maps', paths, save)
    imp.import_maps(str(tmp_path / 'maps'), paths, str(tmp_path / 'store'), shard_size=2, load_fn=np.load)
    scores, classes = LabelMapStore(str(tmp_path / 'store'), expected_order=paths).get(np.arange(5))
    assert scores.shape == (5, 5, 15, 15)
    np.testing.assert_array_equal(classes, arrays[:, 1].astype(int))
    np.testing.assert_allclose(scores, arrays[:, 0], atol=4e-3)
    with pytest.raises(ValueError, match=r'bad\.pt: expected a \[2, k, h, w\] tensor'):
        imp.split_map(np.zeros((5, 15, 15)), 'bad.pt', 1000)
    with pytest.raises(ValueError, match='outside \\[0, 10\\)'):
        imp.split_map(arrays[0], 'x.pt', 10)
    with pytest.raises(FileNotFoundError, match='no label map for image 5'):
        imp.import_maps(
            str(tmp_path / 'maps'),
            paths + ['train/n01440764/absent.JPEG'],
            str(tmp_path / 'other'),
            load_fn=np.load,
        )


def test_import_command_round_trips_torch_files(tmp_path):
    torch = pytest.importorskip('torch')
    paths = [f'n0153{i % 3}000/n0153{i % 3}000_{i}.JPEG' for i in range(7)]
    arrays = _relabel_files(
        tmp_path / 'maps', paths, lambda arr, target: torch.save(torch.from_numpy(arr), target)
    )
    (tmp_path / 'train.json').write_text(
        json.dumps({'data': [{'img_path': p, 'labels': [0]} for p in paths]})
    )
    assert (
        imp.main(
            [
                f'--root={tmp_path / "maps"}',
                f'--order={tmp_path / "train.json"}',
                f'--out={tmp_path / "store"}',
                '--shard_size=3',
            ]
        )
        == 0
    )
    store = LabelMapStore(str(tmp_path / 'store'))
    np.testing.assert_array_equal(store.rows_for([str(tmp_path / p) for p in paths]), np.arange(7))
    scores, classes = store.get(np.arange(7))
    np.testing.assert_array_equal(classes, arrays[:, 1].astype(int))
    np.testing.assert_allclose(scores, arrays[:, 0], atol=4e-3)


def test_import_without_torch_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'torch', None)
    with pytest.raises(ResourceError, match='pip install torch'):
        imp.load_torch_map(str(tmp_path / 'a.pt'))


# ----------------------------------------------------------------------------------------------------------
# Configs.
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize('name', ['relabel_maps.py', 'relabel_maps_imagenet.py'])
def test_configs_build(name):
    spec = importlib.util.spec_from_file_location(name[:-3], os.path.join(ROOT, 'configs', name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    full, smoke = module.get_config(''), module.get_config('smoke')
    assert full.method == smoke.method == 'relabel_maps' and full.train.loss == 'soft_ce'
    assert smoke.train.epochs <= 2 and smoke.relabel_maps.cutmix
    with pytest.raises(ValueError, match='variant'):
        module.get_config('huge')
    if name == 'relabel_maps_imagenet.py':
        o = full.optim
        assert (
            o.name,
            o.nesterov,
            o.learning_rate,
            o.lr_base_batch,
            o.weight_decay,
            o.warmup_epochs,
            o.schedule,
        ) == ('sgd', True, 0.1, 1024, 1e-4, 5.0, 'cosine')
        assert full.train.epochs == 300 and full.model.name == 'resnet50' and full.relabel_maps.map_size == 15
        assert (full.relabel_maps.cutmix_prob, full.relabel_maps.cutmix_off_epochs) == (1.0, 0)  # ReLabel's
    else:  # at 10 epochs every example mixed until the last 2 under-fits (benchmarks/history/methods.md: ReLabel's teacher)
        assert (full.relabel_maps.cutmix_prob, full.relabel_maps.cutmix_off_epochs) == (0.5, 5)


# ----------------------------------------------------------------------------------------------------------
# The teacher: a relabel run made in <workdir>/teacher.
# ----------------------------------------------------------------------------------------------------------


def test_the_recipes_teacher_is_the_relabel_recipe_on_the_same_data_seed_and_network():
    """`relabel_maps.teacher_recipe='mc_dropout'` (the digit recipe's default) runs exactly the config that
    `python -m mlrelabel.main --config=mc_dropout` runs on the same data and seed (so `mlrelabel.compare` may
    reuse its relabel entry's run), with the student's network and the recipe's own dropout and budget."""
    from mlrelabel.config import recipes
    from mlrelabel.data import inspect
    from mlrelabel.label_maps.method import teacher_config

    maps, direct = recipes.load('relabel_maps'), recipes.load('mc_dropout')
    assert maps.relabel_maps.teacher_recipe == 'mc_dropout'
    assert recipes.load('relabel_maps_imagenet').relabel_maps.teacher_recipe == ''  # 90 epochs on its labels
    for cfg in (maps, direct):
        cfg.seed = 3
        cfg.data.num_train = 500
        inspect.resolve_data_defaults(cfg)
    teacher = teacher_config(maps)
    inspect.resolve_data_defaults(teacher)  # as the teacher's run does (round 0's models, ...)
    assert teacher.to_dict() == direct.to_dict()
    maps.model.width = 32  # the student's network teaches too; the recipe keeps its dropout
    teacher = teacher_config(maps)
    assert teacher.model.width == 32 and teacher.model.dropout_rate == direct.model.dropout_rate > 0
    assert maps.model.dropout_rate == 0.0  # the student's config is left as it was


@pytest.mark.slow
def test_a_relabel_teacher_runs_once_in_teacher_and_its_chosen_model_writes_the_maps(tmp_path):
    """The relabel run is made in `<workdir>/teacher` (a run of its own: config.json, run.json, labels), its chosen
    round's model writes the maps, and rerunning the finished run does not run the teacher again."""
    import mlrelabel
    from mlrelabel.label_maps import method

    work = tmp_path / 'run'
    tiny = {
        'data': {'num_train': 64, 'num_val': 32, 'image_size': 16, 'min_scale': 6, 'max_scale': 9},
        'train': {'batch_size': 16, 'epochs': 1},
        'eval': {'batch_size': 16},
        'relabel_maps': {'teacher_recipe': 'mc_dropout:smoke', 'batch_size': 16, 'cutmix': False},
    }
    first = mlrelabel.run_config('relabel_maps:smoke', str(work), **tiny)
    teacher = work / 'teacher'
    manifest = json.load(open(teacher / 'run.json'))
    config = json.load(open(teacher / 'config.json'))
    assert manifest['method'] == 'relabel' and (teacher / 'labels.json').exists()
    assert config['data']['num_train'] == 64 and config['seed'] == 0 and config['model']['dropout_rate'] > 0
    assert method._checkpoint_dir(str(teacher)) == str(teacher / manifest['checkpoint'])
    meta = LabelMapStore(str(work / 'label_maps')).index['meta']
    assert meta['teacher'] == 'the mc_dropout:smoke run in teacher/'
    stamp = os.stat(teacher / 'run.json').st_mtime_ns
    again = mlrelabel.run_config('relabel_maps:smoke', str(work), **tiny)
    assert os.stat(teacher / 'run.json').st_mtime_ns == stamp  # finished: not run again
    assert again['final']['val_map'] == first['final']['val_map']
