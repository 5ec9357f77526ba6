"""The class prior of the class-aware selective loss (CSL, Ben-Baruch et al. 2022): the average predicted
probability per class as a running mean (pure, jittable), and its `Classes,avg_pred` CSV file.

Re-exported by `mlrelabel.partial.losses`.
"""

from __future__ import annotations

import csv
import io
import math
import os
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mlrelabel.io_utils import atomic_write_text

PRIOR_CSV_HEADER = ('Classes', 'avg_pred')


def estimate_class_prior(running, logits, mask=None):
    """Adds a batch to the running mean of sigmoid predictions per class; pure and jittable.

    `running` is None (start) or the dict returned by the previous call; `logits [B, C]`; `mask [B]`
    (optional, e.g. the batch `mask`) weights each row, 0 for padding rows. Returns a new dict
    `{'count': [] float32 (rows seen), 'sum': [C] float32 (sum of sigmoid(logits)), 'prior': [C]
    float32 (sum / count, 0 before any row)}`. CSL (Ben-Baruch et al. 2022) ignores the unknowns of
    classes whose prior exceeds a threshold.
    """
    if logits.ndim != 2:
        raise ValueError(f'estimate_class_prior: logits must be [batch, classes], got {logits.shape}')
    probs = jax.nn.sigmoid(logits.astype(jnp.float32))
    if mask is None:
        weights = jnp.ones(logits.shape[:1], jnp.float32)
    else:
        if mask.shape != logits.shape[:1]:
            raise ValueError(
                f'estimate_class_prior: mask must be [batch] = {logits.shape[:1]}, got {mask.shape}'
            )
        weights = jnp.asarray(mask, jnp.float32)
    if running is None:
        count = jnp.zeros((), jnp.float32)
        total = jnp.zeros(logits.shape[1:], jnp.float32)
    else:
        if not isinstance(running, dict) or 'count' not in running or 'sum' not in running:
            raise ValueError(
                "estimate_class_prior: running must be None or a dict with 'count' and 'sum', got "
                f'{type(running).__name__} {sorted(running) if isinstance(running, dict) else ""}'
            )
        count = jnp.asarray(running['count'], jnp.float32)
        total = jnp.asarray(running['sum'], jnp.float32)
        if total.shape != logits.shape[1:]:
            raise ValueError(
                f"estimate_class_prior: running['sum'] has shape {total.shape}, logits have {logits.shape[1]} classes"
            )
    count = count + jnp.sum(weights)
    total = total + jnp.sum(probs * weights[:, None], axis=0)
    prior = jnp.where(count > 0, total / jnp.maximum(count, 1e-12), 0.0)
    return {'count': count, 'sum': total, 'prior': prior}


def prior_to_csv(path, prior, class_names: Sequence[str]) -> None:
    """Writes `prior [C]` as a CSV with header `Classes,avg_pred` and one `name,value` row per class.

    Written atomically (`io_utils.atomic_write_text`); values use `repr` so they read back exactly.
    """
    prior = np.asarray(prior, dtype=np.float64)
    names = [str(n) for n in class_names]
    if prior.ndim != 1 or prior.shape[0] != len(names):
        raise ValueError(
            f'prior_to_csv({path}): prior must be [classes] matching {len(names)} class names, got shape {prior.shape}'
        )
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ValueError(f'prior_to_csv({path}): duplicate class name {dup!r}')
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator='\n')
    writer.writerow(PRIOR_CSV_HEADER)
    for name, value in zip(names, prior):
        writer.writerow((name, repr(float(value))))
    atomic_write_text(path, buffer.getvalue())


def load_prior_csv(path, class_names: Sequence[str] | None = None) -> np.ndarray:
    """Reads a `Classes,avg_pred` CSV (as written by `prior_to_csv`) -> prior `[C]` float32.

    Without `class_names` the rows' order is kept; with them the result follows `class_names` and
    every name must appear exactly once in the file. Values must be finite and in [0, 1]. Errors
    name the file and line.
    """
    path = os.fspath(path)
    with open(path, newline='', encoding='utf-8') as f:
        rows = list(csv.reader(f))
    if not rows or [c.strip() for c in rows[0]] != list(PRIOR_CSV_HEADER):
        got = rows[0] if rows else 'an empty file'
        raise ValueError(f'{path}:1: expected the header {",".join(PRIOR_CSV_HEADER)}, got {got!r}')
    values: dict[str, float] = {}
    lines: dict[str, int] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue  # blank line
        if len(row) != 2:
            raise ValueError(f'{path}:{line}: expected 2 fields "class,avg_pred", got {len(row)}: {row!r}')
        name, text = row[0].strip(), row[1].strip()
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f'{path}:{line}: avg_pred of class {name!r} is not a number: {text!r}') from None
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise ValueError(f'{path}:{line}: avg_pred of class {name!r} must be in [0, 1], got {text!r}')
        if name in values:
            raise ValueError(f'{path}:{line}: class {name!r} already given on line {lines[name]}')
        values[name] = value
        lines[name] = line
    if not values:
        raise ValueError(f'{path}: no class rows after the header')
    if class_names is None:
        return np.asarray(list(values.values()), np.float32)
    names = [str(n) for n in class_names]
    missing = [n for n in names if n not in values]
    extra = sorted(set(values) - set(names))
    if missing or extra:
        raise ValueError(
            f'{path}: classes do not match the expected {len(names)}: missing {missing[:5]}'
            f'{"..." if len(missing) > 5 else ""}, unexpected {extra[:5]}{"..." if len(extra) > 5 else ""}'
        )
    return np.asarray([values[n] for n in names], np.float32)
