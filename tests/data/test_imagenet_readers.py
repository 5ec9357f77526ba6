"""ImageNet readers (`mlrelabel.data.imagenet_readers`): the random-resized box stays inside the image and
respects its scale range."""

import numpy as np

from mlrelabel.data import (
    imagenet_readers,
)


def test_random_resized_box_stays_inside_and_respects_scale():
    rng = np.random.default_rng(0)
    for _ in range(200):
        left, top, right, bottom = imagenet_readers.random_resized_box(
            rng, 500, 375, (0.08, 1.0), (3 / 4, 4 / 3)
        )
        assert 0 <= left < right <= 500 and 0 <= top < bottom <= 375
        area = (right - left) * (bottom - top) / (500 * 375)
        assert 0.07 <= area <= 1.0
    assert imagenet_readers.random_resized_box(rng, 1000, 10, (0.9, 1.0), (3 / 4, 4 / 3)) == (
        493,
        0,
        506,
        10,
    )  # widest 4:3 box, centred
