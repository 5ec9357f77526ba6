"""LabelTable (`mlrelabel.data.label_table`): construction from lists, dense and single labels,
de-duplication, subsets and row replacement, equality, bad entries and scores refused."""

import numpy as np
import pytest

from mlrelabel.data.label_table import LabelFileError, LabelTable

LISTS = [[3, 1], [0], [], [4, 2, 3], [1]]


SCORES = [[0.9, 0.25], [1.0], [], [0.5, 0.125, 0.75], [0.3]]


def _dense_reference(lists, num_classes):
    out = np.zeros((len(lists), num_classes), np.float32)
    for i, row in enumerate(lists):
        out[i, row] = 1.0
    return out


def test_from_lists_round_trip_and_accessors():
    table = LabelTable.from_lists(LISTS, 5, scores=SCORES)
    assert len(table) == 5 and table.num_classes == 5
    assert table.offsets.dtype == np.int64 and table.classes.dtype == np.int32
    assert table.scores.dtype == np.float32
    assert table.to_lists() == LISTS
    np.testing.assert_array_equal(table.num_labels(), [2, 1, 0, 3, 1])
    np.testing.assert_array_equal(table.labels_of(3), [4, 2, 3])
    np.testing.assert_allclose(table.scores_of(0), [0.9, 0.25])
    np.testing.assert_array_equal(table.labels_of(-1), [1])
    assert table.labels_of(2).shape == (0,)
    with pytest.raises(IndexError):
        table.labels_of(5)
    assert LabelTable.from_lists(LISTS, 5).scores_of(0) is None


def test_from_lists_dedups_keeping_first_occurrence_and_its_score():
    table = LabelTable.from_lists(
        [[2, 0, 2, 1, 0], [3, 3]], 4, scores=[[0.1, 0.2, 0.3, 0.4, 0.5], [0.6, 0.7]]
    )
    assert table.to_lists() == [[2, 0, 1], [3]]
    np.testing.assert_allclose(table.scores, [0.1, 0.2, 0.4, 0.6])


def test_dense_matches_reference_for_any_index_order():
    table = LabelTable.from_lists(LISTS, 5)
    idx = np.array([3, 0, 2, 3, 4])
    np.testing.assert_array_equal(table.dense(idx), _dense_reference(LISTS, 5)[idx])
    assert table.dense(idx).dtype == np.float32
    np.testing.assert_array_equal(table.dense(), _dense_reference(LISTS, 5))
    assert table.dense(np.zeros((0,), np.int32)).shape == (0, 5)


def test_from_dense_and_from_single_round_trips():
    table = LabelTable.from_lists([[0, 3], [], [1, 2, 4]], 5)  # ascending rows: from_dense order
    again = LabelTable.from_dense(table.dense())
    assert again.equals(table)
    scores = np.arange(15, dtype=np.float32).reshape(3, 5)
    with_scores = LabelTable.from_dense(table.dense(), scores=scores)
    np.testing.assert_array_equal(with_scores.scores, [0, 3, 11, 12, 14])
    single = LabelTable.from_single(np.array([4, 0, 2]), 5)
    assert single.to_lists() == [[4], [0], [2]]
    with pytest.raises(LabelFileError, match="entry 1"):
        LabelTable.from_single(np.array([4, 5, 2]), 5)


def test_subset_and_replace_rows():
    table = LabelTable.from_lists(LISTS, 5, scores=SCORES)
    sub = table.subset([4, 3, 3])
    assert sub.to_lists() == [[1], [4, 2, 3], [4, 2, 3]]
    np.testing.assert_allclose(sub.scores, [0.3, 0.5, 0.125, 0.75, 0.5, 0.125, 0.75])

    new = LabelTable.from_lists([[0, 1, 2], [4]], 5)  # no scores: they count as 1.0
    out = table.replace_rows([3, 1], new)
    assert out.to_lists() == [[3, 1], [4], [], [0, 1, 2], [1]]  # row 3 <- new row 0, row 1 <- new row 1
    np.testing.assert_allclose(out.scores, [0.9, 0.25, 1.0, 1.0, 1.0, 1.0, 0.3])
    assert table.to_lists() == LISTS  # the original is untouched
    plain = LabelTable.from_lists(LISTS, 5).replace_rows([2], LabelTable.from_lists([[2]], 5))
    assert plain.scores is None and plain.to_lists()[2] == [2]
    with pytest.raises(ValueError, match="unique"):
        table.replace_rows([1, 1], new)
    with pytest.raises(ValueError, match="rows"):
        table.replace_rows([1], new)


def test_equals():
    a = LabelTable.from_lists(LISTS, 5, scores=SCORES)
    assert a.equals(LabelTable.from_lists(LISTS, 5, scores=SCORES))
    assert not a.equals(LabelTable.from_lists(LISTS, 5))
    assert a.equals(LabelTable.from_lists(LISTS, 5), check_scores=False)
    assert not a.equals(LabelTable.from_lists(LISTS, 6, scores=SCORES))
    assert not a.equals(LabelTable.from_lists([[3, 1], [0], [], [4, 3, 2], [1]], 5))


@pytest.mark.parametrize(
    "lists, match",
    [
        ([[1], [0], [True]], r"entry 2: label True .* not an integer"),
        ([[1], [0], [1.5]], r"entry 2: label 1.5 .* not an integer"),
        ([[1], [0], ["3"]], r"entry 2: label '3' .* not an integer"),
        ([[1], [0], [0, 7]], r"entry 2: label 7 is out of range \[0, 5\)"),
        ([[1], [0], [-1]], r"entry 2: label -1 is out of range"),
        ([[1], [0], 3], r"entry 2: labels must be a list"),
    ],
)
def test_from_lists_rejects_bad_entries(lists, match):
    with pytest.raises(LabelFileError, match=match):
        LabelTable.from_lists(lists, 5)


def test_from_lists_rejects_bad_scores():
    with pytest.raises(LabelFileError, match="entry 1: 1 scores for 2 labels"):
        LabelTable.from_lists([[0], [1, 2]], 3, scores=[[1.0], [0.5]])
    with pytest.raises(LabelFileError, match="entry 1: score 'x'"):
        LabelTable.from_lists([[0], [1, 2]], 3, scores=[[1.0], [0.5, "x"]])
