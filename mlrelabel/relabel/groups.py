"""Mutually exclusive attribute groups in assigned label sets: at most one value per group.

An attribute CSV (`mlrelabel.data.formats`) gives each image one value per attribute group (neck = V-neck,
sleeve = long, ...), laid out as flat classes: group g owns the ids `[start_g, stop_g)`. A label assignment
made class by class (thresholds, mixtures, top-k) may give an image several values of one group, which cannot
all be true. `enforce_groups` keeps one: the given value when the image has one in that group, else the
assigned value with the most evidence. Classes outside every group are left as they are.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ['enforce_groups']


def _given_mask(given, shape: tuple[int, int]) -> np.ndarray:
    """`[N, C]` bool of the given labels: from `[N]` class ids (< 0: none) or an `[N, C]` mask."""
    given = np.asarray(given)
    n, c = shape
    if given.shape == shape:
        return given.astype(bool)
    if given.shape != (n,) or not np.issubdtype(given.dtype, np.integer):
        raise ValueError(
            f'enforce_groups: given must be [N] class ids or an [N, C] mask with N, C = {n}, {c}; '
            f'got {given.dtype} {given.shape}'
        )
    if np.any(given >= c):
        bad = int(np.argmax(given >= c))
        raise ValueError(f'enforce_groups: given[{bad}] = {int(given[bad])} is not a class in [0, {c})')
    mask = np.zeros(shape, bool)
    rows = np.flatnonzero(given >= 0)
    mask[rows, given[rows]] = True
    return mask


def enforce_groups(assigned, evidence, groups: Sequence[Sequence[int]], given) -> np.ndarray:
    """At most one label per exclusive group: `assigned [N, C]` bool → `[N, C]` bool.

    Args:
      assigned: `[N, C]` bool, the labels a rule assigned.
      evidence: `[N, C]` float, the evidence behind them (log-odds or probabilities: only the order matters).
      groups: `[[start, stop], ...]`, disjoint class-id ranges with `0 <= start < stop <= C`.
      given: `[N]` int given class per image (< 0: none) or `[N, C]` bool, every given label (an attribute CSV
        gives one per known group).
    Returns:
      Per image and group: the given value when the image has one there (kept even where the rule did not
      assign it, so the group never switches away from what the user gave; several given values: the one with
      the most evidence), else the assigned value with the most evidence (ties: the lower class id), else
      nothing. Classes outside the groups are `assigned` unchanged.
    """
    assigned = np.asarray(assigned, bool)
    evidence = np.asarray(evidence, np.float64)
    if assigned.ndim != 2 or evidence.shape != assigned.shape:
        raise ValueError(
            f'enforce_groups: assigned and evidence must both be [N, C], got {assigned.shape} and {evidence.shape}'
        )
    n, c = assigned.shape
    given_mask = _given_mask(given, assigned.shape)
    # Members of the pool always beat non-members, whatever their evidence (even -inf or NaN).
    finite = np.nan_to_num(evidence, nan=-np.finfo(np.float64).max, neginf=-np.finfo(np.float64).max)
    out = assigned.copy()
    taken = np.zeros(c, bool)
    for g, bounds in enumerate(groups):
        start, stop = (int(x) for x in bounds)
        if not 0 <= start < stop <= c:
            raise ValueError(
                f'enforce_groups: group {g} = [{start}, {stop}) is not a class range in [0, {c})'
            )
        if taken[start:stop].any():
            raise ValueError(f'enforce_groups: group {g} = [{start}, {stop}) overlaps an earlier group')
        taken[start:stop] = True
        given_here = given_mask[:, start:stop]
        has_given = given_here.any(axis=1, keepdims=True)
        pool = np.where(has_given, given_here, assigned[:, start:stop])
        pick = np.argmax(np.where(pool, finite[:, start:stop], -np.inf), axis=1)
        block = np.zeros((n, stop - start), bool)
        rows = np.flatnonzero(pool.any(axis=1))
        block[rows, pick[rows]] = True
        out[:, start:stop] = block
    return out
