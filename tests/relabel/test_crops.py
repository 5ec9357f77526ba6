"""CAM proposals (`mlrelabel.relabel.crops`): boxes centred on the hot spots of the classes asked for, a class
excluded, filled when peaks are few, under jit."""

import jax
import numpy as np
import pytest

from mlrelabel.relabel import crops


def _check_valid(boxes):
    boxes = np.asarray(boxes)
    assert boxes.dtype == np.float32
    assert np.all(boxes >= 0.0) and np.all(boxes <= 1.0)
    assert np.all(boxes[..., 0] < boxes[..., 2]) and np.all(boxes[..., 1] < boxes[..., 3])


def _two_spot_map():
    rng = np.random.default_rng(0)
    dense = rng.uniform(-0.1, 0.1, size=(2, 8, 8, 5)).astype(np.float32)
    dense[0, 1, 1, 2] = 5.0
    dense[0, 1, 2, 2] = 4.5  # shoulders of the first spot: not peaks, though above the second spot
    dense[0, 2, 1, 2] = 4.0
    dense[0, 6, 5, 4] = 3.0
    dense[1, 3, 4, 0] = 4.0
    dense[1, 7, 0, 1] = 6.0
    return dense


def test_proposals_centre_on_hot_spots_with_classes():
    boxes, classes = crops.proposal_boxes(_two_spot_map(), num_boxes=2, box_size=0.25)
    boxes, classes = np.asarray(boxes), np.asarray(classes)
    assert boxes.shape == (2, 2, 4) and classes.shape == (2, 2) and classes.dtype == np.int32
    _check_valid(boxes)
    centres = np.stack([(boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2], -1)
    cell = lambda i, j: [(i + 0.5) / 8, (j + 0.5) / 8]
    np.testing.assert_allclose(centres[0], [cell(1, 1), cell(6, 5)], atol=1e-6)
    np.testing.assert_array_equal(classes[0], [2, 4])
    # Image 1: the stronger spot first; the corner box is shifted inside, so it contains the centre.
    np.testing.assert_array_equal(classes[1], [1, 0])
    np.testing.assert_allclose(boxes[1, 0], [0.75, 0.0, 1.0, 0.25], atol=1e-6)
    np.testing.assert_allclose(centres[1, 1], cell(3, 4), atol=1e-6)


def test_proposals_exclude_class_and_box_shift():
    dense = _two_spot_map()
    boxes, classes = crops.proposal_boxes(dense, num_boxes=1, box_size=0.5, exclude_class=np.array([2, -1]))
    np.testing.assert_array_equal(np.asarray(classes)[:, 0], [4, 1])
    centre_6_5 = [6.5 / 8, 5.5 / 8]
    np.testing.assert_allclose(
        np.asarray(boxes)[0, 0], [0.5, centre_6_5[1] - 0.25, 1.0, centre_6_5[1] + 0.25], atol=1e-6
    )
    with pytest.raises(ValueError, match="exclude_class"):
        crops.proposal_boxes(dense, 1, exclude_class=np.array([1, 2, 3]))


def test_proposals_fill_when_few_peaks():
    # Increasing scores in row-major order (one 3x3 peak at the last cell, 15) plus a peak of 20 at (0, 0)
    # whose neighbour (0, 1) = 19 is not a peak: peaks first, then the remaining cells by score.
    dense = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    dense[0, 0, 0, 0], dense[0, 0, 1, 0] = 20.0, 19.0
    boxes, classes = crops.proposal_boxes(dense, num_boxes=4, box_size=0.25)
    starts = np.round(np.asarray(boxes)[0, :, :2] * 4).astype(int)
    np.testing.assert_array_equal(starts, [[0, 0], [3, 3], [0, 1], [3, 2]])
    np.testing.assert_array_equal(np.asarray(classes), 0)
    # More boxes than cells: the ranking repeats, shapes stay static.
    small = np.array([[[[1.0], [4.0]], [[2.0], [3.0]]]], np.float32)
    boxes, _ = crops.proposal_boxes(small, num_boxes=6, box_size=0.5)
    starts = np.round(np.asarray(boxes)[0, :, :2] * 2).astype(int)
    np.testing.assert_array_equal(starts, [[0, 1], [1, 1], [1, 0], [0, 0], [0, 1], [1, 1]])


def test_proposals_under_jit():
    dense = _two_spot_map()
    fn = jax.jit(lambda d: crops.proposal_boxes(d, num_boxes=2, box_size=0.25))
    boxes, classes = fn(dense)
    ref_boxes, ref_classes = crops.proposal_boxes(dense, num_boxes=2, box_size=0.25)
    np.testing.assert_allclose(np.asarray(boxes), np.asarray(ref_boxes))
    np.testing.assert_array_equal(np.asarray(classes), np.asarray(ref_classes))
