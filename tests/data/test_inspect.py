"""Data-driven defaults (`mlrelabel.data.inspect`): image size, statistics and network from the data, crops as
small as the scored windows, round-0 models and enough steps for small data sets."""

import json

import numpy as np
import pytest
from PIL import Image

from mlrelabel.config import relabel_config


def test_small_datasets_get_enough_steps_in_round_0_and_in_every_relabel_round():
    from mlrelabel.data import inspect

    for train_steps, fresh_steps, round_steps in ((2400, 1200, 300), (600, 0, 0), (0, 100, 500)):
        c = relabel_config('', 'mc_dropout')
        c.train.min_steps, c.relabel.min_steps = train_steps, round_steps
        c.relabel.fresh_min_steps = fresh_steps
        inspect.resolve_data_defaults(c)
        per_epoch = c.data.num_train // c.train.batch_size  # 3,000 // 64 = 46 steps
        assert c.train.epochs == max(20, -(-train_steps // per_epoch))  # 2400 steps → 53 epochs
        # 1200 steps → 27 epochs; 100 → 3, below train.epochs: 20; 0: 0 (as long as round 0)
        assert c.relabel.fresh_epochs == (max(20, -(-fresh_steps // per_epoch)) if fresh_steps else 0)
        assert c.relabel.epochs == max(6, -(-round_steps // per_epoch))  # 300 → 7, 500 → 11
    c = relabel_config('', 'mc_dropout')
    c.relabel.fresh_epochs = 5  # set by the user: kept
    inspect.resolve_data_defaults(c)
    assert c.relabel.fresh_epochs == 5
    c = relabel_config('', 'mc_dropout')
    c.data.num_train = 640_000  # 10,000 steps per epoch: nothing is raised, fresh rounds as long as round 0
    inspect.resolve_data_defaults(c)
    assert c.train.epochs == c.relabel.fresh_epochs == 20


def test_data_driven_defaults_pick_size_statistics_and_network(tmp_path):
    """A user's photo-like images (120-200 px) left at the 'auto' fields: the side is capped for a small set, the
    statistics are measured, and the small network reads them at its own-data width; the built-in digit scenes
    keep their preset network, and a field the user set is never replaced."""
    from mlrelabel.config import relabel_config
    from mlrelabel.data import inspect

    rng = np.random.default_rng(0)
    entries = []
    for i in range(12):
        side = int(rng.integers(120, 200))
        img = rng.integers(0, 60, (side, side + 17, 3), dtype=np.uint8)
        img[side // 4 : side // 2, side // 4 : side // 2] = (220, 180, 40)  # a yellow object on dark ground
        Image.fromarray(img).save(tmp_path / f'p{i}.jpg')
        entries.append({'img_path': f'p{i}.jpg', 'labels': [i % 4]})
    (tmp_path / 'train.json').write_text(json.dumps({'data': entries}))

    c = relabel_config('')
    c.data.source, c.data.train_json, c.data.root = 'json', str(tmp_path / 'train.json'), str(tmp_path)
    notes = inspect.resolve_data_defaults(c)
    assert c.data.num_classes == 4 and c.data.image_size == 64  # under 5,000 images: at most 64 px
    assert c.model.name == 'resnet_tiny' and c.model.width == inspect.SMALL_NET_WIDTH == 24
    assert c.model.small_stem and c.model.stem_stride == 2
    # a yellow object on dark ground: more red than blue, in level and in spread
    assert 0.05 < c.data.mean[2] < c.data.mean[0] < 0.4 and c.data.std[2] < c.data.std[0] < 0.5
    assert any(n.startswith('model.name=resnet_tiny (width=24') for n in notes)

    c = relabel_config('')
    c.data.source, c.data.train_json, c.data.root = 'json', str(tmp_path / 'train.json'), str(tmp_path)
    c.data.max_image_size, c.model.width = 160, 12  # larger images: ResNet-18; the user's width stays
    inspect.resolve_data_defaults(c)
    assert c.data.image_size >= 96 and c.model.name == 'resnet18' and c.model.width == 12
    assert not c.model.small_stem

    builtin = relabel_config('')
    inspect.resolve_data_defaults(builtin)
    assert builtin.model.name == 'resnet_tiny' and builtin.model.width == 0  # the preset: 16 channels


def _label_file(root, name, sides):
    """A JSON label file of `len(sides)` flat JPEGs whose shorter sides are `sides`."""
    folder = root / name
    folder.mkdir()
    entries = []
    for i, side in enumerate(sides):
        Image.fromarray(np.full((side, side + 9, 3), 90, np.uint8)).save(folder / f'p{i}.jpg')
        entries.append({'img_path': f'p{i}.jpg', 'labels': [i % 2]})
    (folder / 'train.json').write_text(json.dumps({'data': entries}))
    return folder


def _relabel_on(folder, **relabel):
    from mlrelabel.config import relabel_config

    c = relabel_config('')
    c.data.source, c.data.train_json, c.data.root = 'json', str(folder / 'train.json'), str(folder)
    c.data.image_size, c.data.mean, c.data.std = 64, (0.4,) * 3, (0.2,) * 3  # set: sides still read
    c.relabel.update(relabel)
    return c


def test_photos_train_on_crops_as_small_as_the_scored_windows(tmp_path):
    """`train.augment.scale` left empty (the relabel recipe): photos (median side >= 96 px) train on crops from
    the area of the smallest window the rounds score, small images and the built-in data on 0.6-1; the note
    says why, and a scale the user set is kept."""
    from mlrelabel.config import relabel_config
    from mlrelabel.data import inspect
    from mlrelabel.train.loop import augment_config

    def resolved(c):
        note = [n for n in inspect.resolve_data_defaults(c) if n.startswith('train.augment.scale')]
        return tuple(c.train.augment.scale), note

    photos = _label_file(tmp_path, 'photos', [96, 120, 150, 300, 500])
    small = _label_file(tmp_path, 'small', [40, 48, 90, 120, 32])
    assert resolved(_relabel_on(photos)) == (
        (0.2, 1.0),
        ['train.augment.scale=(0.2, 1.0) (photos of median side 150 px: as small as the smallest window the '
         'rounds score)'],
    )  # fmt: skip
    assert resolved(_relabel_on(small)) == (
        (0.6, 1.0),
        ['train.augment.scale=(0.6, 1.0) (images of side 48 px, under 96)'],
    )
    c = _relabel_on(photos)
    c.relabel.crops.kind, c.relabel.crops.scale = 'random', (0.3, 0.5)
    assert resolved(c)[0] == (0.3, 1.0)
    c = _relabel_on(photos)
    c.train.augment.scale = (0.5, 1.0)
    assert resolved(c) == ((0.5, 1.0), [])  # the user's
    builtin = relabel_config('')
    assert resolved(builtin) == (
        (0.6, 1.0),
        ['train.augment.scale=(0.6, 1.0) (images of side 40 px, under 96)'],
    )
    with pytest.raises(ValueError, match='resolve_data_defaults'):
        augment_config(relabel_config(''))


def test_photos_get_three_round_0_models_small_images_and_large_sets_one(tmp_path, monkeypatch):
    """`relabel.round0_models` at 0 (by the data; the relabel recipe's default): three models for photos (median side
    >= 96 px) up to `ENSEMBLE_MAX_IMAGES` training images, one for small images, for larger sets and for the
    built-in data; the note says why, and a count the user set is kept."""
    from mlrelabel.config import relabel_config
    from mlrelabel.data import inspect

    def resolved(folder, round0_models=0):
        c = _relabel_on(folder, round0_models=round0_models)
        note = [n for n in inspect.resolve_data_defaults(c) if n.startswith('relabel.round0_models')]
        return c.relabel.round0_models, note

    photos = _label_file(tmp_path, 'photos', [96, 120, 150, 300, 500])
    small = _label_file(tmp_path, 'small', [40, 48, 90, 120, 32])
    count, note = resolved(photos)
    assert count == 3 and note == [
        "relabel.round0_models=3 (5 training photos of median side 150 px: three models score round 1's crops; "
        "--config.relabel.round0_models=1 for a third of round 0's time)"
    ]
    assert resolved(small) == (1, ['relabel.round0_models=1 (images of side 48 px, under 96: one model)'])
    assert resolved(photos, round0_models=2) == (2, [])  # the user's count
    monkeypatch.setattr(inspect, 'ENSEMBLE_MAX_IMAGES', 4)
    assert resolved(photos) == (1, ['relabel.round0_models=1 (5 training images, over 4: one model)'])
    builtin = relabel_config('')
    assert builtin.relabel.round0_models == 0  # the default: by the data
    notes = inspect.resolve_data_defaults(builtin)
    assert (
        builtin.relabel.round0_models == 1
        and 'relabel.round0_models=1 (images of side 40 px, under 96: one model)' in notes
    )
    assert resolved(photos, round0_models=1) == (1, [])  # a count the user set: kept, no note
