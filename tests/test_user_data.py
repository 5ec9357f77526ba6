"""A user's own images and CS570 label files drive both the supervised and the relabel methods."""

import json

import numpy as np
from PIL import Image


def _write_split(root, split, n, rng, multi=False, corrupt=()):
    entries = []
    (root / split).mkdir(parents=True)
    for i in range(n):
        label = int(i % 3)
        img = np.zeros((24, 24, 3), np.uint8)
        img[..., label] = 200  # the class is the dominant colour
        img += rng.integers(0, 40, img.shape, dtype=np.uint8)
        path = root / split / f'im{i}.jpg'
        if i in corrupt:
            path.write_bytes(b'not a jpeg')
        else:
            Image.fromarray(img).save(path)
        labels = [label, (label + 1) % 3] if multi and i % 2 else [label]
        entries.append({'img_path': f'{split}/im{i}.jpg', 'labels': labels})
    (root / f'{split}.json').write_text(json.dumps({'data': entries}))


def _config(tmp_path, base):
    rng = np.random.default_rng(0)
    _write_split(tmp_path, 'train', 65, rng, corrupt={5})
    _write_split(tmp_path, 'val', 32, rng, multi=True)
    c = base
    c.data.source = 'json'
    c.data.train_json = str(tmp_path / 'train.json')
    c.data.val_json = str(tmp_path / 'val.json')
    c.data.num_classes = 10  # labels use classes 0-2; the shapes (and compiled programs) match the smoke runs
    c.train.epochs = 1
    return c


def test_supervised_and_relabel_on_label_files(tmp_path):
    from mlrelabel import main
    from mlrelabel.config import base_config, relabel_config

    cfg = _config(tmp_path / 'data', base_config('smoke'))
    result = main.run(cfg, str(tmp_path / 'sup'))
    assert 0.0 <= result['final']['val_top1'] <= 1.0

    cfg = _config(tmp_path / 'data2', relabel_config('smoke'))
    result = main.run(cfg, str(tmp_path / 'rel'))
    labels = json.load(open(tmp_path / 'rel' / 'round_1' / 'labels.json'))['data']
    # The corrupt image (train/im5.jpg) was skipped, never mislabelled: 64 entries, paths aligned with labels.
    assert len(labels) == 64
    assert 'train/im5.jpg' not in {e['img_path'].split('data2/')[-1] for e in labels}
    for e in labels:
        i = int(e['img_path'].rsplit('im', 1)[1].split('.')[0])
        assert i % 3 in e['labels']  # the given label is kept (keep_given)
    assert result['rounds'][-1]['round'] == 1
