"""Reference labels (`mlrelabel.data.reference_labels`): ReaL files with bad entries refused, the TFDS
ImageNet validation labels."""

import json

import numpy as np
import pytest

from mlrelabel.data import reference_labels


def test_load_real_labels_rejects_bad_entries(tmp_path):
    good = tmp_path / 'good.json'
    good.write_text(json.dumps([[], [1, 2], [3]]))
    assert reference_labels.load_real_labels(good) == [[], [1, 2], [3]]
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps([[1], [2, 'x']]))
    with pytest.raises(ValueError, match=r'bad\.json: entry 1'):
        reference_labels.load_real_labels(bad)


def test_tfds_validation_labels():
    labels = reference_labels.load_tfds_imagenet_validation_labels()
    assert labels.shape == (50000,)
    assert labels.min() == 0 and labels.max() == 999
    assert np.all(np.bincount(labels, minlength=1000) == 50)  # 50 validation images per class
    # ILSVRC2012_val_00000001 is n01751748 (sea snake, class 65), ..._00000002 is n09193705 (alp, 970)
    np.testing.assert_array_equal(labels[:2], [65, 970])
