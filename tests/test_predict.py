"""`mlrelabel-predict` (`mlrelabel.predict`): the images of a folder are listed and decoded as training
decodes them."""

import os

import numpy as np
import pytest
from PIL import Image


def test_predict_lists_images_decoded_like_training(tmp_path):
    from mlrelabel.predict import list_images

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / 'ok.png')
    Image.fromarray(np.full((4, 4), 0.5, np.float32), 'F').save(tmp_path / 'float.tif')
    os.rename(tmp_path / 'float.tif', tmp_path / 'float.png')
    with pytest.warns(RuntimeWarning, match='float.png'):
        assert list_images(str(tmp_path)) == ['ok.png']
