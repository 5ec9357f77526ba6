"""ImageNet sources on generated data (`mlrelabel.data.imagenet`): an ImageNet-layout JPEG folder and TFDS
ArrayRecord datasets written here without TensorFlow; the grain loader; training and relabel runs on both."""

import glob
import importlib.util
import io
import json
import os
import pickle
import warnings

import numpy as np
import pytest
from PIL import Image

from mlrelabel.data import (
    grain_loader,
    imagenet,
    imagenet_readers,
    imagenet_tfds,
    pipeline,
)
from tests.helpers import ROOT, recipe

IMAGENET_CONFIGS = sorted(
    os.path.basename(p) for p in glob.glob(os.path.join(ROOT, 'configs', '*_imagenet.py'))
)


def _config(name, variant='smoke'):
    return recipe(name, variant)


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    """4 classes x 8 training JPEGs (40x48 px), a flat val/ with val_labels.txt, a ReaL json, one corrupt file."""
    root = str(tmp_path_factory.mktemp('imagenet'))
    wnids = imagenet.make_synthetic_folder(root, num_classes=4, per_class=8, num_val=2, flat_val=True)
    with open(os.path.join(root, 'train', wnids[1], 'corrupt.JPEG'), 'wb') as f:
        f.write(b'\xff\xd8\xff\xe0 not a jpeg')
    real = [[i % 4, (i + 1) % 4] if i % 3 else [] for i in range(8)]  # val file k ↔ entry k-1
    with open(os.path.join(root, 'real.json'), 'w') as f:
        json.dump(real, f)
    return root, wnids, real


def _folder_config(root, base='imagenet_resnet50.py'):
    c = _config(base)
    c.data.source = 'folder'
    c.data.root = root
    c.data.num_classes = 4
    c.data.val_labels = os.path.join(root, 'val_labels.txt')
    c.data.real_json = os.path.join(root, 'real.json')
    return c


def test_folder_source_sorted_wnids_val_labels_real_and_corrupt_files(folder, tmp_path):
    root, wnids, real = folder
    with pytest.warns(RuntimeWarning, match=r'skipped 1 of 33 images.*corrupt\.JPEG'):
        data = imagenet.load_folder(_folder_config(root), str(tmp_path))
    train, val = data['train'], data['val']
    assert len(train) == 32 and len(val) == 8
    assert train.class_names == val.class_names == wnids  # the sorted folder names, beside the ids
    assert all(
        os.path.basename(os.path.dirname(p)) == wnids[c[0]]
        for p, c in zip(train.paths, train.labels.to_lists())
    )
    assert val.labels.to_lists() == [[0], [0], [1], [1], [2], [2], [3], [3]]
    assert [set(t) for t in val.truth.to_lists()] == [set(r) for r in real]
    x = train.images[np.array([0, 31])]
    assert x.shape == (2, 32, 32, 3) and x.dtype == np.uint8 and x.std() > 0
    assert os.path.exists(tmp_path / 'data' / 'folder_train_verified.json')  # cached verification
    # A file damaged after verification: a black substitute, recorded, no crash.
    broken = imagenet_readers.FolderImages(
        [train.paths[0], str(tmp_path / 'missing.JPEG')], 32, num_threads=2
    )
    with pytest.warns(RuntimeWarning, match='row 1 could not be decoded'):
        y = broken[np.array([0, 1])]
    assert y[1].max() == 0 and y[0].max() > 0 and list(broken.failures) == [1]


def test_grain_batches_equal_the_index_sampler_batches_and_host_augment_is_seeded(folder, tmp_path):
    root = folder[0]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)
        train = imagenet.load_folder(_folder_config(root), str(tmp_path))['train']
    sampler = pipeline.IndexSampler(len(train), 8, seed=3)
    ref = list(pipeline.train_batches(train, sampler, 0, 6))
    # in-process threads (grain's 16, or one); one grain worker process, resumed at step 3
    for workers, start, threads in ((0, 0, 0), (0, 2, 1), (1, 3, 0)):
        options = grain_loader.LoaderOptions(num_workers=workers, threads=threads)
        got = list(grain_loader.worker_batches(train, sampler, start, 6, options=options))
        assert len(got) == 6 - start
        for a, b in zip(ref[start:], got):
            assert a.keys() == b.keys()
            for k in a:
                np.testing.assert_array_equal(a[k], b[k])
    aug = {'scale': (0.08, 1.0), 'ratio': (3 / 4, 4 / 3), 'flip': True}
    seeded = [grain_loader.LoaderOptions(host_augment=aug, seed=seed) for seed in (1, 1, 2)]
    first, again, other = (next(grain_loader.worker_batches(train, sampler, 2, 3, options=o)) for o in seeded)
    np.testing.assert_array_equal(first['image'], again['image'])
    assert not np.array_equal(first['image'], other['image'])
    np.testing.assert_array_equal(first['index'], ref[2]['index'])


def _jpeg(value, size=(40, 48)):
    buf = io.BytesIO()
    rng = np.random.default_rng(value)
    img = np.clip(value * 60 + rng.normal(0, 15, size + (3,)), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(buf, 'JPEG')
    return buf.getvalue()


@pytest.fixture(scope='module')
def tfds_dir(tmp_path_factory):
    """imagenet2012 (train 24, validation 8, one corrupt record) and imagenet2012_real, as ArrayRecord."""
    d = str(tmp_path_factory.mktemp('tfds'))
    train = [
        {'image': _jpeg(i % 4), 'label': i % 4, 'file_name': f'n0000000{i % 4}_{i}.JPEG'} for i in range(24)
    ]
    train[5]['image'] = b'\xff\xd8 corrupt'
    val_names = [
        f'ILSVRC2012_val_{k:08d}.JPEG' for k in (3, 1, 2, 4, 8, 6, 5, 7)
    ]  # record order ≠ file order
    val = [{'image': _jpeg(i % 4), 'label': i % 4, 'file_name': n} for i, n in enumerate(val_names)]
    imagenet_tfds.write_tfds_array_record(d, 'imagenet2012', {'train': train, 'validation': val})
    real = [
        {
            'image': _jpeg(0),
            'original_label': 0,
            'real_label': [int(n[-6]) % 4, 7] if n[-6] != '5' else [],
            'file_name': n,
        }
        for n in sorted(val_names)
    ]
    imagenet_tfds.write_tfds_array_record(d, 'imagenet2012_real', {'validation': real})
    return d


def test_tfds_source_reads_array_record_without_tensorflow(tfds_dir, tmp_path):
    import sys

    c = _config('imagenet_resnet50.py')
    c.data.tfds_data_dir = tfds_dir
    c.data.image_size = 32
    data = imagenet_tfds.load_tfds(c, str(tmp_path))
    assert 'tensorflow' not in sys.modules
    train, val = data['train'], data['val']
    assert len(train) == 24 and train.num_classes == 1000
    assert train.class_names[:2] == ['n01440764', 'n01443537'] and len(set(train.class_names)) == 1000  # TFDS
    assert train.labels.to_lists()[:5] == [[0], [1], [2], [3], [0]]
    # ReaL sets matched by file name, not record order.
    for name, labels in zip(val.paths, val.truth.to_lists()):
        assert labels == ([] if name[-6] == '5' else sorted({int(name[-6]) % 4, 7}))
    with pytest.warns(RuntimeWarning, match='row 5 could not be decoded'):
        x = train.images[np.arange(8)]
    assert x.shape == (8, 32, 32, 3) and x[5].max() == 0 and x[4].max() > 0
    assert list(train.images.failures) == [5]
    # The reader pickles without its data source (grain workers reopen it) and reads the same pixels.
    clone = pickle.loads(pickle.dumps(train.images.subset(np.array([7, 4]))))
    assert clone._source is None
    np.testing.assert_array_equal(clone[np.array([0, 1])], x[[7, 4]])


def test_imagenet_resnet50_smoke_trains_on_the_folder(folder, tmp_path):
    from mlrelabel import main

    root = folder[0]
    c = _folder_config(root)
    c.data.num_classes = 0
    result = main.run(c, str(tmp_path))
    assert len(result['history']) == c.train.epochs and result['history'][-1]['step'] == 8
    assert 0 <= result['final']['val_real_accuracy'] <= 1
    assert (tmp_path / 'checkpoints').is_dir()


@pytest.mark.slow
def test_fit_decodes_and_augments_in_grain_workers_and_resumes_identically(folder, tmp_path):
    """`data.loader_workers` / `data.host_augment` switch fit to the grain loader; a cut run resumes exactly."""
    import jax

    from mlrelabel import parallel
    from mlrelabel.methods import common
    from mlrelabel.train import loop

    c = _folder_config(folder[0])
    c.data.num_classes = 0
    c.data.loader_workers = 1
    c.data.host_augment = True
    data = common.load_datasets(c, str(tmp_path))
    model = common.build_model(c, data['train'].num_classes)
    variables = common.init_variables(model, c, 0)
    mesh = parallel.make_mesh(1)
    assert loop.augment_config(c) is None  # augmentation moved to the host workers
    full, hist = loop.fit(model, variables, data['train'], c, mesh=mesh, ckpt_dir=str(tmp_path / 'a'))
    loop.fit(model, variables, data['train'], c, mesh=mesh, ckpt_dir=str(tmp_path / 'b'), stop_at_step=3)
    resumed, hist_b = loop.fit(model, variables, data['train'], c, mesh=mesh, ckpt_dir=str(tmp_path / 'b'))
    assert int(full.step) == int(resumed.step) == 8 and hist == hist_b
    for x, y in zip(jax.tree.leaves(full.params), jax.tree.leaves(resumed.params)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.slow
def test_one_relabel_round_on_the_folder(folder, tmp_path):
    from mlrelabel import main

    root = folder[0]
    c = _config_relabel(root)
    result = main.run(c, str(tmp_path))
    assert [r['round'] for r in result['rounds']] == [0, 1]
    labels = json.load(open(tmp_path / 'round_1' / 'labels.json'))['data']
    assert len(labels) == 32 and all(0 <= c < 4 for e in labels for c in e['labels'])
    assert labels[0]['img_path'].endswith('.JPEG')


def _config_relabel(root, name='mc_dropout.py'):
    spec = importlib.util.spec_from_file_location(name[:-3], os.path.join(ROOT, 'configs', name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    c = module.get_config('smoke')
    c.data.source = 'folder'
    c.data.root = root
    c.data.num_classes = 4
    c.data.val_labels = os.path.join(root, 'val_labels.txt')
    c.data.real_json = os.path.join(root, 'real.json')
    c.train.batch_size = 8
    c.relabel.batch_size = 8
    c.eval.batch_size = 8
    return c


@pytest.mark.slow
def test_training_and_one_relabel_round_on_tfds(tfds_dir, tmp_path):
    from mlrelabel import main

    c = _config_relabel('', 'mc_dropout.py')
    c.data.source = 'tfds'
    c.data.root = ''
    c.data.val_labels = ''
    c.data.real_json = ''
    c.data.tfds_name = 'imagenet2012'
    c.data.tfds_data_dir = tfds_dir
    c.data.num_classes = 1000
    c.relabel.assign = 'topk'
    c.eval.imagenet_sets = 'real'  # the fixture's TFDS imagenet2012_real, evaluated after every round
    result = main.run(c, str(tmp_path))
    assert [r['round'] for r in result['rounds']] == [0, 1]
    assert all(0.0 <= r['eval_real_accuracy'] <= 1.0 and 'eval_real_f1' in r for r in result['rounds'])
    assert len(json.load(open(tmp_path / 'round_1' / 'labels.json'))['data']) == 24


@pytest.fixture(scope='module')
def folder6(tmp_path_factory):
    """6 classes (recipes with top-5 label maps need more than 5) x 6 training JPEGs, flat val, ReaL json."""
    root = str(tmp_path_factory.mktemp('imagenet6'))
    imagenet.make_synthetic_folder(root, num_classes=6, per_class=6, num_val=1, flat_val=True)
    with open(os.path.join(root, 'real.json'), 'w') as f:
        json.dump([[i, (i + 1) % 6] for i in range(6)], f)
    return root


@pytest.mark.slow
@pytest.mark.parametrize('name', IMAGENET_CONFIGS)
def test_imagenet_config_smoke_variants_run_on_the_folder(name, folder6, tmp_path):
    from mlrelabel import main

    c = _config(name)
    c.data.source = 'folder'
    c.data.root = folder6
    c.data.num_classes = 6
    c.data.val_labels = os.path.join(folder6, 'val_labels.txt')  # added when the recipe lacks the field
    c.data.real_json = os.path.join(folder6, 'real.json')
    main.run(c, str(tmp_path))
