"""PartialLabels (`mlrelabel.data.partial_labels`): batches are float with -1 for unknown, counts and
positives, compact subsets."""

import numpy as np
import pytest

from mlrelabel.data.partial_labels import (
    PartialLabels,
)


# --------------------------------------------------------------------------- PartialLabels
def test_partial_labels_batch_is_float_with_minus_one_and_compact():
    t = np.array([[1, 0, -1], [-1, -1, 1]])
    labels = PartialLabels(t, ['a', 'b', 'c'])
    assert labels.targets.dtype == np.int8 and len(labels) == 2 and labels.num_classes == 3
    batch = labels.batch(np.array([1, 0]))
    assert batch['target'].dtype == np.float32
    np.testing.assert_array_equal(batch['target'], [[-1, -1, 1], [1, 0, -1]])
    assert labels.positives().to_lists() == [[0], [2]]
    c = labels.counts()
    np.testing.assert_array_equal(c['unknown'], [1, 1, 1])
    assert c['unknown_fraction'] == pytest.approx(0.5)
    assert labels.subset([1]).targets.tolist() == [[-1, -1, 1]]
    with pytest.raises(ValueError, match=r'1, 0 or -1, got 2 at row 0, class 1'):
        PartialLabels(np.array([[1, 2]]))
    with pytest.raises(ValueError, match='class names'):
        PartialLabels(t, ['a'])
