"""ImageNet label layouts (`mlrelabel.data.imagenet_labels`): a flat val/ folder labelled by the TFDS
validation labels."""

import importlib.util
import os

from PIL import Image

from mlrelabel.data import (
    imagenet_labels,
    reference_labels,
)


def test_flat_val_folder_labelled_by_tfds_validation_labels(tmp_path):
    """ILSVRC2012_val_* files get their labels from TFDS's validation_labels.txt, mapped to our WNIDs."""

    original = reference_labels.load_tfds_imagenet_validation_labels()
    spec = importlib.util.find_spec('tensorflow_datasets')
    with open(
        os.path.join(list(spec.submodule_search_locations)[0], 'datasets', 'imagenet2012', 'labels.txt')
    ) as f:
        all_wnids = f.read().split()
    wnids = [all_wnids[original[0]], all_wnids[original[1]]]
    for w in wnids:
        os.makedirs(tmp_path / 'train' / w)
    os.makedirs(tmp_path / 'val')
    for k in (1, 2):
        Image.new('RGB', (8, 8)).save(tmp_path / 'val' / f'ILSVRC2012_val_{k:08d}.JPEG')
    paths, labels = imagenet_labels.folder_split(str(tmp_path), 'val', sorted(wnids))
    assert [sorted(wnids)[c] for c in labels] == wnids
