"""Single-positive multi-label losses: one observed positive per image, every other class unobserved.

`single_positive_loss(logits [B, C], observed [B, C], kind, **hparams) -> scalar` is the mean over all B·C
entries of a per-entry loss, with p = σ(logits), y = observed and L(q) = −log(q + log_eps) (log_eps = 0:
exactly −log σ(±logits)). Kinds and their papers:

  an, an_ls, wan, epr  Cole et al. 2021, "Multi-Label Learning from Single Positive Labels" (assume
                       negative, + label smoothing, weighted by γ, expected-positive regulariser)
  em, em_apl           Zhou et al. 2022, "Acknowledging the Unknown for Multi-label Learning with Single
                       Positive Labels" (entropy maximisation on unobserved entries, asymmetric
                       pseudo-labels: a pseudo-negative with soft label s is stored as y = −s)
  ll_r, ll_ct, ll_cp   Kim et al. 2022, "Large Loss Matters in Weakly Supervised Multi-Label
                       Classification" (reject / temporarily / permanently correct the largest unobserved
                       losses)

The stateful parts are pure functions too: the per-epoch rejection schedule (`rejection_rate_at`,
`rejected_per_epoch`), LL-Cp's permanent correction (`ll_cp_corrections`, `ll_cp_rewrite`) and EM+APL's
once-per-epoch pseudo-label selection (`apl_counts`, `apl_select`). `make_step_loss` packs a kind and its
config hyper-parameters into the loss the jitted train step calls with the global step.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    'KINDS',
    'LABEL_REWRITING_KINDS',
    'single_positive_loss',
    'check_hparams',
    'rejection_rate_at',
    'rejected_count',
    'rejected_per_epoch',
    'll_cp_corrections',
    'll_cp_rewrite',
    'apl_counts',
    'apl_select',
    'make_step_loss',
]

KINDS = ('an', 'an_ls', 'wan', 'epr', 'em', 'em_apl', 'll_r', 'll_ct', 'll_cp')
LL_KINDS = ('ll_r', 'll_ct', 'll_cp')
# Kinds whose training rewrites the stored labels once per epoch (a label hook in `train.loop.fit`).
LABEL_REWRITING_KINDS = ('em_apl', 'll_cp')

# Hyper-parameters of the loss itself, with their defaults (None: required by the kinds that use it).
LOSS_HPARAMS = {
    'log_eps': 1e-5,  # every kind (Cole et al.'s LOG_EPSILON)
    'label_smoothing': 0.1,  # an_ls
    'gamma': 0.0,  # wan: weight of the unobserved entries (0 = 1/(C−1))
    'expected_positives': None,  # epr: expected positives per image k
    'alpha': 0.1,  # em, em_apl: weight of the entropy of unobserved entries
    'beta': 1.0,  # em_apl: weight of the pseudo-negatives
    'rejection_rate': None,  # ll_*: fraction r of all B·C entries rejected / corrected
    'delta_rel': None,  # ll_cp: fraction corrected per batch (past the first epoch)
    'num_rejected': None,  # ll_*: the count k itself (overrides the rates; may be traced)
}
# Hyper-parameters of EM+APL's pseudo-label selection (`apl_counts`; the loss itself ignores them).
APL_HPARAMS = {'warmup_epochs': 3, 'neg_proportion': 0.9}


def _neg_logs(logits, log_eps):
    """`(L(p), L(1−p))` for p = σ(logits), L(q) = −log(q + log_eps), each `[B, C]`; stable for any logits."""
    if isinstance(log_eps, (int, float)) and log_eps == 0:
        return -jax.nn.log_sigmoid(logits), -jax.nn.log_sigmoid(-logits)
    log_eps = jnp.log(jnp.asarray(log_eps, logits.dtype))
    # −log(σ(x) + ε) = −log(exp(log σ(x)) + exp(log ε)): exact, and finite with finite gradients everywhere.
    return -jnp.logaddexp(jax.nn.log_sigmoid(logits), log_eps), -jnp.logaddexp(
        jax.nn.log_sigmoid(-logits), log_eps
    )


def _resolve(hparams: dict, where: str = 'single_positive_loss') -> dict:
    unknown = sorted(set(hparams) - set(LOSS_HPARAMS))
    if unknown:
        raise TypeError(
            f'{where}: unknown hyper-parameter(s) {unknown}; expected some of {sorted(LOSS_HPARAMS)}'
        )
    return {**LOSS_HPARAMS, **hparams}


def rejected_count(kind: str, num_entries: int, rejection_rate=None, delta_rel=None) -> int:
    """k, the number of unobserved entries a `ll_*` batch of `num_entries` (= B·C) entries rejects or corrects.

    `ll_r`, `ll_ct`: k = ceil(r·B·C). `ll_cp` (as Kim et al.'s code): 0 while r = 0 (the first epoch), else
    ceil(delta_rel·B·C) (ceil(r·B·C) when no delta_rel is given). k is clipped to [0, B·C].
    """
    if kind == 'll_cp' and delta_rel is not None:
        rate = 0.0 if rejection_rate is not None and rejection_rate == 0 else delta_rel
    else:
        rate = rejection_rate
    if rate is None:
        raise ValueError(f'{kind}: needs rejection_rate' + (' or delta_rel' if kind == 'll_cp' else ''))
    return min(max(math.ceil(num_entries * float(rate)), 0), num_entries)


def _largest_loss_rejection(l0, observed, k):
    """`(rejected, corrected)` bool `[B, C]` masks of the large-loss selection, no gradient.

    u = l0 on unobserved entries (y = 0), 0 elsewhere; τ = the k-th largest u over all B·C entries; entries
    with u ≥ τ are rejected, those with u > τ are LL-Cp's permanent corrections; k = 0 selects nothing.
    """
    u = jax.lax.stop_gradient(jnp.where(observed == 0, l0, 0.0))
    n = u.size
    if isinstance(k, (int, np.integer)):
        if k <= 0:
            none = jnp.zeros(u.shape, bool)
            return none, none
        tau = jax.lax.top_k(u.reshape(-1), int(k))[0][-1]
    else:
        k = jnp.asarray(k, jnp.int32)
        ascending = jnp.sort(u.reshape(-1))
        tau = jnp.where(k > 0, ascending[n - jnp.clip(k, 1, n)], jnp.inf)
    return u >= tau, u > tau


def single_positive_loss(logits, observed, kind: str, **hparams):
    """Mean over all B·C entries of the single-positive loss `kind`: `[B, C]`, `[B, C]` -> scalar.

    `observed`: 1 for an observed positive, 0 unobserved; for `em_apl` also −s < 0 for a pseudo-negative
    with soft label s (`apl_select`). Hyper-parameters (see `LOSS_HPARAMS`; unused ones are ignored):
      an      y L(p) + (1−y) L(1−p)
      an_ls   y[(1−s)L(p) + s L(1−p)] + (1−y)[(1−s)L(1−p) + s L(p)],  s = label_smoothing
      wan     y L(p) + (1−y) γ L(1−p),  γ = gamma (0: 1/(C−1))
      epr     y L(p), plus (mean over the batch of Σ_c p − k)² / C² once,  k = expected_positives
      em      y L(p) − α(1−y)[p L(p) + (1−p) L(1−p)],  α = alpha
      em_apl  as em where y ≥ 0; β[s L(p) + (1−s) L(1−p)] where y = −s < 0,  β = beta
      ll_r    the `an` entry loss l0, 0 on the k largest unobserved l0 (`rejected_count`; ties at the k-th
              value all count), selected without gradient
      ll_ct   as ll_r, but the selected entries take the flipped target's loss (1−y: L(p) when unobserved)
      ll_cp   ll_ct's loss with k from delta_rel (Kim et al.'s LL-Cp); `ll_cp_rewrite` rewrites the labels
    Logits are computed in at least float32 (float64 stays float64).
    """
    if kind not in KINDS:
        raise ValueError(f'single_positive_loss: kind={kind!r}; expected one of {KINDS}')
    hp = _resolve(hparams)
    logits, y = _checked_inputs(logits, observed, hp['log_eps'])
    lp, ln = _neg_logs(logits, hp['log_eps'])
    if kind == 'epr':
        k = hp['expected_positives']
        if k is None:
            raise ValueError('single_positive_loss: epr needs expected_positives')
        p = jax.nn.sigmoid(logits)
        regulariser = (jnp.mean(jnp.sum(p, axis=1)) - k) ** 2 / logits.shape[1] ** 2
        return jnp.mean(y * lp) + regulariser
    if kind in LL_KINDS:
        return jnp.mean(_large_loss_entries(kind, y, (lp, ln), hp))
    return jnp.mean(_entry_losses(kind, logits, y, (lp, ln), hp))


def _checked_inputs(logits, observed, log_eps) -> tuple:
    """`(logits, y)` as arrays of at least float32, after checking their shapes and `log_eps`."""
    logits = jnp.asarray(logits)
    logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
    y = jnp.asarray(observed).astype(logits.dtype)
    if logits.ndim != 2 or y.shape != logits.shape:
        raise ValueError(
            f'single_positive_loss: logits and observed must both be [batch, classes], got {logits.shape} '
            f'and {y.shape}'
        )
    if isinstance(log_eps, (int, float)) and log_eps < 0:
        raise ValueError(f'single_positive_loss: log_eps must be >= 0, got {log_eps}')
    return logits, y


def _entry_losses(kind: str, logits, y, neg_logs: tuple, hp: dict):
    """Per-entry losses `[B, C]` of the kinds an, an_ls, wan, em and em_apl (`single_positive_loss`)."""
    lp, ln = neg_logs
    if kind == 'an':
        return y * lp + (1 - y) * ln
    if kind == 'an_ls':
        s = hp['label_smoothing']
        return y * ((1 - s) * lp + s * ln) + (1 - y) * ((1 - s) * ln + s * lp)
    if kind == 'wan':
        gamma = hp['gamma'] or 1.0 / (logits.shape[1] - 1)
        return y * lp + (1 - y) * gamma * ln
    p, q = jax.nn.sigmoid(logits), jax.nn.sigmoid(-logits)
    entry = y * lp - hp['alpha'] * (1 - y) * (p * lp + q * ln)
    if kind == 'em_apl':
        s = -y
        entry = jnp.where(y < 0, hp['beta'] * (s * lp + (1 - s) * ln), entry)
    return entry


def _large_loss_entries(kind: str, y, neg_logs: tuple, hp: dict):
    """Per-entry losses `[B, C]` of the large-loss kinds ll_r, ll_ct and ll_cp (`single_positive_loss`)."""
    lp, ln = neg_logs
    k = hp['num_rejected']
    if k is None:
        k = rejected_count(kind, y.size, hp['rejection_rate'], hp['delta_rel'])
    l0 = y * lp + (1 - y) * ln
    rejected, _ = _largest_loss_rejection(l0, y, k)
    if kind == 'll_r':
        return jnp.where(rejected, 0.0, l0)
    return jnp.where(rejected, (1 - y) * lp + y * ln, l0)


def check_hparams(kind: str, hparams: dict, field: str = 'config.train.single_positive') -> None:
    """Raises ValueError naming `field.<name>` when a hyper-parameter `kind` uses is out of range."""
    if kind not in KINDS:
        raise ValueError(f'{field}: kind={kind!r}; expected one of {KINDS}')

    def need(name, ok, expected):
        if name in hparams and hparams[name] is not None and not ok(hparams[name]):
            raise ValueError(f'{field}.{name}={hparams[name]!r}: expected {expected}')

    need('log_eps', lambda v: v >= 0, '>= 0')
    if kind == 'an_ls':
        need('label_smoothing', lambda v: 0 <= v <= 1, 'in [0, 1]')
    if kind == 'wan':
        need('gamma', lambda v: v >= 0, '>= 0 (0 = 1/(C-1))')
    if kind == 'epr':
        need('expected_positives', lambda v: v > 0, 'the expected number of positives per image, > 0')
        if not hparams.get('expected_positives'):
            raise ValueError(f'{field}.expected_positives: epr needs the expected positives per image (> 0)')
    if kind in ('em', 'em_apl'):
        need('alpha', lambda v: v >= 0, '>= 0')
    if kind == 'em_apl':
        need('beta', lambda v: v >= 0, '>= 0')
        need('neg_proportion', lambda v: 0 <= v <= 1, 'in [0, 1]')
        need('warmup_epochs', lambda v: v >= 1 and float(v).is_integer(), 'a whole number of epochs >= 1')
    if kind in LL_KINDS:
        need('rejection_rate', lambda v: 0 <= v <= 1, 'in [0, 1]')
        need('delta_rel', lambda v: 0 <= v <= 1, 'in [0, 1]')


def rejection_rate_at(epoch: int, delta_rel: float, initial: float = 0.0) -> float:
    """The `ll_*` rejection rate r of 0-based `epoch`: `initial`, then + delta_rel each epoch.

    The growth is computed as Kim et al.'s code does (clean_rate = 1, minus delta_rel after every epoch,
    r = 1 − clean_rate), float rounding included, so k = ceil(r·B·C) matches theirs; with `initial` = 0
    (theirs) nothing is rejected in the first epoch.
    """
    clean = 1.0
    for _ in range(int(epoch)):
        clean -= delta_rel
    return initial + (1.0 - clean)


def rejected_per_epoch(
    kind: str, num_entries: int, num_epochs: int, rejection_rate: float = 0.0, delta_rel: float = 0.0
) -> np.ndarray:
    """`[num_epochs]` int32: k of every epoch for a batch of `num_entries` entries (`rejected_count` of
    `rejection_rate_at`); the train step indexes it with the traced epoch."""
    return np.asarray(
        [
            rejected_count(
                kind,
                num_entries,
                rejection_rate_at(e, delta_rel, rejection_rate),
                delta_rel if kind == 'll_cp' else None,
            )
            for e in range(max(int(num_epochs), 1))
        ],
        np.int32,
    )


def ll_cp_corrections(
    logits, observed, *, log_eps=1e-5, num_rejected=None, rejection_rate=None, delta_rel=None
):
    """`[B, C]` bool: the unobserved entries LL-Cp relabels positive for good (u > τ: the k−1 largest
    unobserved `an` losses when there are no ties), with k as in `single_positive_loss`."""
    logits = jnp.asarray(logits)
    logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
    y = jnp.asarray(observed).astype(logits.dtype)
    k = num_rejected
    if k is None:
        k = rejected_count('ll_cp', y.size, rejection_rate, delta_rel)
    lp, ln = _neg_logs(logits, log_eps)
    _, corrected = _largest_loss_rejection(y * lp + (1 - y) * ln, y, k)
    return corrected


def ll_cp_rewrite(logits, observed, **kwargs):
    """`observed` with LL-Cp's permanent corrections set to 1 (`ll_cp_corrections` takes the kwargs)."""
    corrected = ll_cp_corrections(logits, observed, **kwargs)
    return jnp.where(corrected, jnp.ones_like(observed), observed)


def apl_counts(num_unobserved, neg_proportion: float, num_epochs: int, warmup_epochs: int) -> np.ndarray:
    """`[C]` int: pseudo-negatives EM+APL adds per class and selection, ⌊neg_proportion·U_c / (E − warm-up)⌋
    with U_c the class's unobserved entries in the original labels (Zhou et al.'s code)."""
    span = int(num_epochs) - int(warmup_epochs)
    if span <= 0:
        raise ValueError(f'apl_counts: num_epochs={num_epochs} must exceed warmup_epochs={warmup_epochs}')
    u = np.asarray(num_unobserved, np.float64)
    return np.asarray([int(neg_proportion * x / span) for x in u], np.int64)


def apl_select(probs, observed, counts):
    """EM+APL's pseudo-label selection: `[N, C]` probabilities, `[N, C]` labels, `[C]` counts -> new labels.

    For each class c, the `counts[c]` unobserved entries (y = 0) with the lowest probability become
    pseudo-negatives with soft label s = p, stored as y = −p (ties go to the lower row index).
    """
    probs = jnp.asarray(probs, jnp.float32)
    observed = jnp.asarray(observed, jnp.float32)
    n = probs.shape[0]
    unobserved = observed == 0
    order = jnp.argsort(jnp.where(unobserved, probs, jnp.inf), axis=0, stable=True)
    rank = jnp.zeros_like(order).at[order, jnp.arange(probs.shape[1])[None, :]].set(jnp.arange(n)[:, None])
    selected = unobserved & (rank < jnp.asarray(counts)[None, :])
    return jnp.where(selected, -probs, observed)


def make_step_loss(kind: str, hparams: dict, steps_per_epoch: int, num_epochs: int) -> Callable:
    """`step_loss(logits [B, C], observed [B, C], step) -> (scalar, aux)` for the jitted train step.

    `hparams`: `config.train.single_positive` (loss fields plus schedule fields). For `ll_*` the epoch
    `step // steps_per_epoch` picks k from `rejected_per_epoch` (r = rejection_rate + epoch·delta_rel);
    `aux` holds `corrections [B, C]` bool for `ll_cp` (the label hook applies them), else nothing.
    """
    check_hparams(kind, hparams)
    hp = {k: v for k, v in hparams.items() if k in LOSS_HPARAMS and k not in ('rejection_rate', 'delta_rel')}
    if not hp.get('gamma'):
        hp.pop('gamma', None)
    rate, delta = float(hparams.get('rejection_rate') or 0.0), float(hparams.get('delta_rel') or 0.0)

    def step_loss(logits, observed, step):
        if kind not in LL_KINDS:
            return single_positive_loss(logits, observed, kind, **hp), {}
        table = rejected_per_epoch(kind, observed.size, num_epochs, rate, delta)
        epoch = jnp.minimum(step // steps_per_epoch, len(table) - 1)
        k = jnp.asarray(table)[epoch]
        value = single_positive_loss(logits, observed, kind, **{**hp, 'num_rejected': k})
        if kind != 'll_cp':
            return value, {}
        return value, {
            'corrections': ll_cp_corrections(
                logits, observed, log_eps=hp.get('log_eps', 1e-5), num_rejected=k
            )
        }

    return step_loss
