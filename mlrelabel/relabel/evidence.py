"""Evidence for labels, in log-odds: per crop, per image, and carried across relabel rounds.

A label's evidence is the log-odds `log p - log(1 - p)` of the model's (Monte-Carlo mean) probability of that
class. Probabilities of a sigmoid model trained on its own labels pile up at 0 and 1; in float32 (let alone
float16) they saturate at exactly 1.0, and mixtures or thresholds fitted on them collapse. Log-odds keep the
full range (±80 and beyond), so everything here works in log space and never forms `1 - p` where it could
round to 0.

- `sample_log_odds`: per-sample log-probabilities of a head from its logits, `[T, B, C]`.
- `mean_log_odds`: log-odds of the mean over T Monte-Carlo samples, `[B, C]`, computed with logsumexp.
- `RoundEvidence`: the running mean of each image's evidence over the relabel rounds, one vote per model
  (evidence carried across rounds damps the confirmation bias of a model relabeling the images it was trained
  on).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

HEADS = ('softmax', 'sigmoid')


def log_probabilities(logits: jax.Array, head: str) -> tuple[jax.Array, jax.Array]:
    """`(log p, log(1 - p))`, each `[..., C]` float32, of a head's per-class probabilities.

    'sigmoid': `log σ(z)` and `log σ(-z)` (exact at any |z|). 'softmax': `log_softmax(z)`; for `log(1 - p_c)`
    the log-sum-exp of the other classes, so the top class of a confident crop keeps its evidence instead of
    rounding `1 - p` to 0.
    """
    if head not in HEADS:
        raise ValueError(f'log_probabilities: head must be one of {HEADS}, got {head!r}')
    z = jnp.asarray(logits, jnp.float32)
    if head == 'sigmoid':
        return jax.nn.log_sigmoid(z), jax.nn.log_sigmoid(-z)
    log_p = jax.nn.log_softmax(z, axis=-1)
    # For a class with p <= 1/2, log1p(-p) is accurate. Only the top class can have p > 1/2; its complement is
    # the softmax mass of all other classes.
    is_top = jax.nn.one_hot(jnp.argmax(z, axis=-1), z.shape[-1], dtype=bool)
    others = jax.nn.logsumexp(jnp.where(is_top, -jnp.inf, z), axis=-1, keepdims=True)
    top_complement = others - jax.nn.logsumexp(z, axis=-1, keepdims=True)
    log_1mp = jnp.where(is_top, top_complement, jnp.log1p(-jnp.exp(jnp.minimum(log_p, np.log(0.5)))))
    return log_p, log_1mp


def mean_log_odds(logits: jax.Array, head: str) -> jax.Array:
    """Log-odds of the Monte-Carlo mean probability: logits `[T, B, C]` → `[B, C]` float32.

    `log p̄ - log(1 - p̄)` with `p̄ = mean_t p_t`, both terms by logsumexp over the T samples, so a class whose
    every sample says 1 - 1e-12 keeps log-odds ≈ 27.6 rather than +inf.
    """
    logits = jnp.asarray(logits, jnp.float32)
    if logits.ndim != 3:
        raise ValueError(
            f'mean_log_odds: expected logits [samples, batch, classes], got shape {logits.shape}'
        )
    log_p, log_1mp = log_probabilities(logits, head)
    log_t = jnp.log(jnp.float32(logits.shape[0]))
    mean_log_p = jax.nn.logsumexp(log_p, axis=0) - log_t
    mean_log_1mp = jax.nn.logsumexp(log_1mp, axis=0) - log_t
    return mean_log_p - mean_log_1mp


def to_probability(log_odds) -> np.ndarray:
    """Log-odds → probability (float64 on the host, so values up to ±36 stay distinguishable from 0 and 1)."""
    x = np.asarray(log_odds, np.float64)
    return 1.0 / (1.0 + np.exp(-x))


def to_log_odds(probability, eps: float = 1e-12) -> np.ndarray:
    """Probability → log-odds (float64), clipped to [eps, 1 - eps]."""
    p = np.clip(np.asarray(probability, np.float64), eps, 1.0 - eps)
    return np.log(p) - np.log1p(-p)


class RoundEvidence:
    """Each image's evidence averaged over the relabel rounds so far: `sum_j w_j E_j / sum_j w_j`, `[N, C]`.

    Rounds are given as dense-able records (`dense(rows) -> [R, C]` float32 callables), so the mean of any
    chunk of rows is formed on demand and nothing of size N × C is ever held for large datasets. A round's
    weight `w_j` is the number of independently trained models its record averages (round 1's: round 0's
    models, `relabel.round0_models`; every other round's: 1), so each model has one vote. `window` > 0 keeps
    only the last `window` rounds.
    """

    def __init__(self, window: int = 0):
        if window < 0:
            raise ValueError(f'RoundEvidence: window must be >= 0 (0 = every round), got {window}')
        self.window = int(window)
        self._rounds: list = []

    def add(self, dense_fn, weight: float = 1.0) -> None:
        if not weight > 0:
            raise ValueError(f'RoundEvidence.add: weight must be > 0, got {weight!r}')
        self._rounds.append((dense_fn, float(weight)))

    def __len__(self) -> int:
        return len(self._used())

    def _used(self) -> list:
        return self._rounds[-self.window :] if self.window else self._rounds

    def dense(self, rows) -> np.ndarray:
        """`[R, C]` float32 mean evidence of the given rows over the rounds in use."""
        used = self._used()
        if not used:
            raise ValueError('RoundEvidence.dense: no round added yet')
        total = sum(weight * np.asarray(fn(rows), np.float64) for fn, weight in used)
        return (total / sum(weight for _, weight in used)).astype(np.float32)
