"""Exclusive attribute groups: `relabel.assign.enforce_groups` keeps one value per group (the given one, else the
assigned one with the most evidence) and leaves every other class alone."""

import numpy as np
import pytest

from mlrelabel.relabel.groups import enforce_groups

GROUPS = [[0, 3], [3, 5]]  # classes 0-2: one group, 3-4: another, 5: no group


def test_the_given_value_wins_else_the_best_assigned_one():
    assigned = np.array(
        [
            [1, 1, 0, 1, 1, 1],  # given 1 (group 0): keep 1; group 1 has no given value: the best of 3, 4
            [1, 0, 1, 0, 0, 0],  # given 4 (group 1, not assigned): group 1 = {4}; group 0: best of 0, 2
            [0, 0, 0, 0, 0, 1],  # nothing assigned in the groups and no given label: nothing added
            [0, 0, 1, 0, 0, 0],  # given 0 but the rule assigned 2: the group keeps the given value
        ],
        bool,
    )
    evidence = np.array(
        [
            [9.0, 1.0, 0.0, 2.0, 3.0, 5.0],
            [1.0, 0.0, 4.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.0, 9.0],
            [0.0, 0.0, 7.0, 0.0, 0.0, 0.0],
        ],
        np.float32,
    )
    out = enforce_groups(assigned, evidence, GROUPS, np.array([1, 4, -1, 0]))
    expected = np.array(
        [
            [0, 1, 0, 0, 1, 1],
            [0, 0, 1, 0, 1, 0],
            [0, 0, 0, 0, 0, 1],
            [1, 0, 0, 0, 0, 0],
        ],
        bool,
    )
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == bool and not np.shares_memory(out, assigned)
    # At most one value per group in every row, whatever the input.
    rng = np.random.default_rng(0)
    many = enforce_groups(
        rng.random((50, 6)) > 0.3, rng.normal(size=(50, 6)), GROUPS, rng.integers(-1, 6, 50)
    )
    assert many[:, 0:3].sum(1).max() <= 1 and many[:, 3:5].sum(1).max() <= 1


def test_every_given_label_of_a_mask_is_kept_and_ties_go_to_the_lower_id():
    # An attribute CSV gives one value per known group: a mask keeps each group's given value.
    given = np.array([[0, 0, 1, 1, 0, 0]], bool)
    assigned = np.array([[1, 1, 0, 0, 1, 0]], bool)
    out = enforce_groups(assigned, np.zeros((1, 6), np.float32), GROUPS, given)
    np.testing.assert_array_equal(out, [[0, 0, 1, 1, 0, 0]])
    tie = enforce_groups(assigned, np.zeros((1, 6), np.float32), GROUPS, np.array([-1]))
    np.testing.assert_array_equal(tie, [[1, 0, 0, 0, 1, 0]])
    # An assigned value with -inf evidence still beats an unassigned one with more.
    lone = enforce_groups(
        np.array([[0, 1, 0, 0, 0, 0]], bool), np.array([[5.0, -np.inf, 5.0, 0, 0, 0]]), GROUPS, np.array([-1])
    )
    np.testing.assert_array_equal(lone, [[0, 1, 0, 0, 0, 0]])


def test_bad_groups_and_given_are_named():
    a, e = np.zeros((2, 6), bool), np.zeros((2, 6), np.float32)
    with pytest.raises(ValueError, match=r'group 1 = \[2, 4\) overlaps an earlier group'):
        enforce_groups(a, e, [[0, 3], [2, 4]], np.array([-1, -1]))
    with pytest.raises(ValueError, match=r'group 0 = \[4, 7\) is not a class range in \[0, 6\)'):
        enforce_groups(a, e, [[4, 7]], np.array([-1, -1]))
    with pytest.raises(ValueError, match=r'given\[1\] = 6 is not a class'):
        enforce_groups(a, e, GROUPS, np.array([0, 6]))
    with pytest.raises(ValueError, match='must both be'):
        enforce_groups(a, e[:, :5], GROUPS, np.array([0, 1]))
    np.testing.assert_array_equal(enforce_groups(a, e, [], np.array([0, 1])), a)  # no groups: unchanged
