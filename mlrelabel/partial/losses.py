"""Multi-label losses for full and partial annotations, class priors, and partial-label simulation.

Losses are pure, jittable JAX functions of logits `[batch, classes]` that return the loss SUMMED over
batch and classes (a scalar), as the reference implementations do; callers divide by whatever they
normalise by. Partial targets use the convention 1 = positive, 0 = negative, -1 = unknown
(un-annotated). Logits are upcast to float32.

- `asymmetric_loss`: ASL, Ridnik et al. 2021, "Asymmetric Loss For Multi-Label Classification".
- `partial_asymmetric_loss`: the partial-annotation loss with the 'negative' / 'ignore' /
  'ignore_normalize_classes' / 'selective' treatments of unknown labels, Ben-Baruch et al. 2022,
  "Multi-label Classification with Partial Annotations using Class-aware Selective Loss" (CSL).
  Its 'ignore_normalize_classes' weight g_b = alpha_norm / (1 + n_b) + beta_norm, alpha_norm = beta_norm = 1,
  is the CSL reference code's (its comment cites the normalisation of Durand et al. 2019, "Learning a Deep
  ConvNet for Multi-label Classification with Partial Labels"; the +1 avoids division by zero), so g_b lies
  in (1, 2]: a sample with fewer annotations weighs somewhat more; an all-unknown sample contributes 0.
- `estimate_class_prior`, `prior_to_csv`, `load_prior_csv`: the class prior of CSL (average predicted
  probability per class) as a running mean, and its `Classes,avg_pred` CSV file.
- `simulate_fpc`, `simulate_rps`: partial annotations from a fully labelled multi-hot matrix, the
  "fixed per class" and "random per sample" schemes of the CSL paper (numpy, seeded).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    'PARTIAL_MODES',
    'asymmetric_loss',
    'partial_asymmetric_loss',
    'PartialLossOptions',
    'simulate_fpc',
    'simulate_rps',
    'group_softmax_loss',
    'group_probabilities',
]

PARTIAL_MODES = ('negative', 'ignore', 'ignore_normalize_classes', 'selective')


def _check_shapes(fn: str, logits, targets) -> None:
    if logits.ndim != 2 or targets.shape != logits.shape:
        raise ValueError(
            f'{fn}: logits and targets must both be [batch, classes], got {logits.shape} and {targets.shape}'
        )


def _check_clip(fn: str, clip) -> None:
    if isinstance(clip, (int, float)) and not clip >= 0:
        raise ValueError(f'{fn}: clip must be >= 0 (0 disables probability shifting), got {clip}')


def _probabilities(logits, clip):
    """p = sigmoid(z), q_m = 1 - p_m = min(1 - p + clip, 1) and p_m = max(p - clip, 0), each `[B, C]`.

    1 - p is computed as sigmoid(-z), exact in float32 even where p rounds to 1.
    """
    p = jax.nn.sigmoid(logits)
    q_m = jnp.minimum(jax.nn.sigmoid(-logits) + clip, 1.0)
    p_m = jnp.maximum(p - clip, 0.0)
    return p, q_m, p_m


def _log_clamped(x, eps):
    """log(max(x, eps)): the reference clamp, so saturated entries give a finite value and zero gradient."""
    return jnp.log(jnp.maximum(x, eps))


def asymmetric_loss(logits, targets, gamma_pos=0.0, gamma_neg=4.0, clip=0.05, eps=1e-8):
    """Asymmetric loss (ASL) summed over batch and classes: `[B, C]`, `[B, C]` in {0, 1} -> scalar.

    Ridnik et al. 2021, "Asymmetric Loss For Multi-Label Classification". With p = sigmoid(logits),
    the shifted probability p_m = max(p - clip, 0) (probability shifting, which hard-thresholds easy
    negatives; clip = 0 disables it) and y = targets:

        L+ = y       * log(max(p, eps))       * (1 - p)^gamma_pos
        L- = (1 - y) * log(max(1 - p_m, eps)) * p_m^gamma_neg
        loss = -sum(L+ + L-)

    i.e. the asymmetric focusing weight (1 - pt)^gamma with pt = y*p + (1-y)*(1 - p_m) and
    gamma = y*gamma_pos + (1-y)*gamma_neg. As in the reference implementation's default
    (`disable_torch_grad_focal_loss=True`), the weight is a constant for differentiation
    (`stop_gradient`). With gamma_pos = gamma_neg = clip = 0 this is the summed sigmoid BCE.
    Hyper-parameters may be python floats or traced scalars.
    """
    _check_shapes('asymmetric_loss', logits, targets)
    _check_clip('asymmetric_loss', clip)
    logits = logits.astype(jnp.float32)
    y = targets.astype(jnp.float32)
    p, q_m, p_m = _probabilities(logits, clip)
    loss = y * _log_clamped(p, eps) + (1.0 - y) * _log_clamped(q_m, eps)
    one_minus_pt = y * (1.0 - p) + (1.0 - y) * p_m
    gamma = y * gamma_pos + (1.0 - y) * gamma_neg
    weight = jax.lax.stop_gradient(jnp.power(one_minus_pt, gamma))
    return -jnp.sum(loss * weight)


def _selective_weights(p, unknown, likelihood_topk, prior, prior_threshold):
    """Weights `[B, C]` in {0, 1} of CSL's selective mode: 0 on ignored unknowns, 1 elsewhere.

    As the reference (`edit_targets_parital_labels` + `negative_backprop_fun_jit`): the unknowns of
    high-prior classes are ignored, and, independently, the `likelihood_topk * B` unknowns with the highest
    (clip-shifted) probability over the whole batch, counted among ALL unknowns, prior-ignored ones
    included. `p` is that probability `[B, C]`; ties go to the lower flat index.
    """
    batch, num_classes = p.shape
    ignored = jnp.zeros_like(unknown)
    if prior is not None:
        prior = jnp.asarray(prior, jnp.float32)
        if prior.shape != (num_classes,):
            raise ValueError(
                f'partial_asymmetric_loss: prior must be [classes] = ({num_classes},), got {prior.shape}'
            )
        ignored = ignored | (unknown & (prior > prior_threshold)[None, :])
    k = min(int(likelihood_topk) * batch, batch * num_classes)
    if k > 0:
        # The k most likely unknowns over the flattened batch are probably missing positives: ignore them
        # rather than push them to 0. Known entries score -inf and are never chosen, even when fewer than
        # k unknowns exist.
        score = jnp.where(unknown, jax.lax.stop_gradient(p), -jnp.inf).reshape(-1)
        _, top = jax.lax.top_k(score, k)
        chosen = jnp.zeros(batch * num_classes, bool).at[top].set(True).reshape(batch, num_classes)
        ignored = ignored | (unknown & chosen)
    return jnp.where(ignored, 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class PartialLossOptions:
    """Hyper-parameters of `partial_asymmetric_loss` (its docstring gives each one's role); every field but
    `likelihood_topk` may be a traced scalar (or `[C]` array for `prior`)."""

    gamma_pos: float = 0.0
    gamma_neg: float = 1.0
    gamma_unann: float = 2.0
    clip: float = 0.0
    alpha_pos: float = 1.0
    alpha_neg: float = 1.0
    alpha_unann: float = 1.0
    likelihood_topk: int | None = None
    prior: object = None
    prior_threshold: float | None = None
    eps: float = 1e-8


def partial_asymmetric_loss(logits, targets, mode, *, reduction='sum', options=None, **hparams):
    """Asymmetric loss with partial annotations, summed: `[B, C]`, `[B, C]` in {1, 0, -1} -> scalar.

    Ben-Baruch et al. 2022, "Multi-label Classification with Partial Annotations using Class-aware
    Selective Loss" (reference implementation `PartialSelectiveLoss`). targets: 1 positive,
    0 negative, -1 unknown (any other value contributes nothing). The hyper-parameters are `options`
    (`PartialLossOptions`) with any of its fields given as keywords (`**hparams`) replacing its values.
    With p = sigmoid(logits), p_m = max(p - clip, 0) and log(x) meaning log(max(x, eps)), each entry's term is

        positive:               alpha_pos   * log(p)       * (1 - p)^gamma_pos
        negative:               alpha_neg   * log(1 - p_m) * p_m^gamma_neg
        unknown, as negative:   alpha_unann * log(1 - p_m) * p_m^gamma_unann

    with the focusing powers treated as constants (`stop_gradient`), and
    loss = -sum(w * term) with a weight `w [B, C]` set by `mode` (a python string, static):

    - 'negative': every unknown counts as a negative (w = 1 everywhere).
    - 'ignore': unknowns contribute nothing (w = 0 on unknowns, 1 elsewhere).
    - 'ignore_normalize_classes': as 'ignore', and every annotated entry of sample b is weighted by
      g_b = 1 / (1 + n_b) + 1 with n_b the number of annotated (non -1) classes of sample b, as the CSL
      reference code does (module docstring).
    - 'selective': (1) if `prior [C]` is given, the unknowns of every class with
      prior > `prior_threshold` are ignored; (2) among all unknowns (prior-ignored ones included, as
      in the reference), the `likelihood_topk * B` entries with the highest p_m over the whole
      (flattened) batch are ignored too; (3) the rest count as negatives. Requires `likelihood_topk`
      (a python int >= 0). `prior` and `prior_threshold` go together (both or neither).

    `reduction` (static): 'sum' (default) returns the scalar sum over batch and classes;
    'per_example' returns `[B]` sums over classes (what a train step averages). Both see the same
    weights: the selective top-k is always taken over the whole batch, so `per_example(...).sum()`
    equals the 'sum' value.
    """
    o = dataclasses.replace(PartialLossOptions() if options is None else options, **hparams)
    _check_partial_args(logits, targets, mode, reduction, o)
    logits = logits.astype(jnp.float32)
    unknown = targets == -1
    term, p_m = _partial_terms(logits, targets, o)
    weight = _partial_weight(mode, unknown, p_m, o)
    if reduction == 'per_example':
        return -jnp.sum(weight * term, axis=1)
    return -jnp.sum(weight * term)


def _check_partial_args(logits, targets, mode, reduction, o: PartialLossOptions) -> None:
    """ValueError naming the argument of `partial_asymmetric_loss` that is out of its domain."""
    _check_shapes('partial_asymmetric_loss', logits, targets)
    if reduction not in ('sum', 'per_example'):
        raise ValueError(
            f"partial_asymmetric_loss: reduction must be 'sum' or 'per_example', got {reduction!r}"
        )
    _check_clip('partial_asymmetric_loss', o.clip)
    if mode not in PARTIAL_MODES:
        raise ValueError(f'partial_asymmetric_loss: mode must be one of {PARTIAL_MODES}, got {mode!r}')
    if mode != 'selective':
        return
    topk = o.likelihood_topk
    if not isinstance(topk, (int, np.integer)) or isinstance(topk, bool) or topk < 0:
        raise ValueError(
            "partial_asymmetric_loss: mode 'selective' needs likelihood_topk, an int >= 0 "
            f'(unknowns ignored per sample), got {topk!r}'
        )
    if (o.prior is None) != (o.prior_threshold is None):
        raise ValueError(
            "partial_asymmetric_loss: mode 'selective' takes prior and prior_threshold together, got "
            f'prior={"None" if o.prior is None else "given"}, prior_threshold={o.prior_threshold!r}'
        )


def _partial_terms(logits, targets, o: PartialLossOptions) -> tuple:
    """`(term [B, C], p_m [B, C])`: each entry's unweighted loss term by its annotation, and the
    clip-shifted probability."""
    positive = targets == 1
    negative = targets == 0
    unknown = targets == -1
    p, q_m, p_m = _probabilities(logits, o.clip)
    q = jax.nn.sigmoid(-logits)  # 1 - p, unshifted: the positives' focusing weight (1 - p)^gamma_pos

    sg = jax.lax.stop_gradient
    term_pos = o.alpha_pos * _log_clamped(p, o.eps) * sg(jnp.power(q, o.gamma_pos))
    term_neg = o.alpha_neg * _log_clamped(q_m, o.eps) * sg(jnp.power(p_m, o.gamma_neg))
    term_unk = o.alpha_unann * _log_clamped(q_m, o.eps) * sg(jnp.power(p_m, o.gamma_unann))
    term = jnp.where(positive, term_pos, 0.0) + jnp.where(negative, term_neg, 0.0)
    term = term + jnp.where(unknown, term_unk, 0.0)
    return term, p_m


def _partial_weight(mode: str, unknown, p_m, o: PartialLossOptions):
    """The weight `w [B, C]` of each entry's term under `mode` (`partial_asymmetric_loss`)."""
    if mode == 'negative':
        return jnp.ones_like(p_m)
    if mode == 'ignore':
        return jnp.where(unknown, 0.0, 1.0)
    if mode == 'ignore_normalize_classes':
        alpha_norm, beta_norm = 1.0, 1.0
        num_known = jnp.sum(~unknown, axis=1, keepdims=True).astype(jnp.float32)  # [B, 1]
        per_sample = alpha_norm / (1.0 + num_known) + beta_norm
        return jnp.where(unknown, 0.0, per_sample)
    return _selective_weights(p_m, unknown, o.likelihood_topk, o.prior, o.prior_threshold)


# --------------------------------------------------------------------------------------------------
# Simulated partial annotation (CSL paper, Sec. 5): from full multi-hot labels to {1, 0, -1}.


def _check_full(fn: str, full) -> np.ndarray:
    full = np.asarray(full)
    if full.ndim != 2:
        raise ValueError(f'{fn}: full labels must be [num_images, classes], got shape {full.shape}')
    bad = ~((full == 0) | (full == 1))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(f'{fn}: full labels must be 0/1, got {full[row, col]!r} at image {row}, class {col}')
    return full


def simulate_fpc(full, num_per_class: int, seed: int) -> np.ndarray:
    """Fixed-per-class partial annotation: `[N, C]` in {0, 1} -> `[N, C]` int8 in {1, 0, -1}.

    For each class, `num_per_class` positive and `num_per_class` negative images (drawn uniformly
    without replacement, or all of them if fewer exist) keep their label; all other entries become
    -1 (unknown). Deterministic given `seed`.
    """
    full = _check_full('simulate_fpc', full)
    if (
        not isinstance(num_per_class, (int, np.integer))
        or isinstance(num_per_class, bool)
        or num_per_class < 0
    ):
        raise ValueError(f'simulate_fpc: num_per_class must be an int >= 0, got {num_per_class!r}')
    rng = np.random.default_rng(seed)
    out = np.full(full.shape, -1, np.int8)
    for c in range(full.shape[1]):
        for value in (1, 0):
            rows = np.flatnonzero(full[:, c] == value)
            if len(rows) > num_per_class:
                rows = rng.choice(rows, size=int(num_per_class), replace=False)
            out[rows, c] = value
    return out


def simulate_rps(full, drop_prob: float, seed: int) -> np.ndarray:
    """Random-per-sample partial annotation: `[N, C]` in {0, 1} -> `[N, C]` int8 in {1, 0, -1}.

    Each entry independently becomes -1 (unknown) with probability `drop_prob`, otherwise keeps its
    label. Deterministic given `seed`.
    """
    full = _check_full('simulate_rps', full)
    if not 0.0 <= drop_prob <= 1.0:
        raise ValueError(f'simulate_rps: drop_prob must be in [0, 1], got {drop_prob}')
    rng = np.random.default_rng(seed)
    drop = rng.random(full.shape) < drop_prob
    return np.where(drop, -1, full).astype(np.int8)


# --------------------------------------------------------------------------------------------------
# Attribute groups: one softmax head per group over slices of the flat logits.


def _check_groups(fn: str, num_classes: int, groups) -> list[tuple[int, int]]:
    slices, start = [], 0
    for size in groups:
        size = int(size)
        if size < 1:
            raise ValueError(f'{fn}: every group needs >= 1 class, got sizes {list(groups)}')
        slices.append((start, size))
        start += size
    if start != num_classes:
        raise ValueError(
            f'{fn}: group sizes {list(groups)} sum to {start}, logits have {num_classes} classes'
        )
    return slices


def group_softmax_loss(logits, targets, groups):
    """Per-example summed softmax cross-entropy over attribute groups: `[B, C]`, `[B, C]` -> `[B]`.

    `groups` (static): class counts per group, in order; group g owns the consecutive classes
    `[o_g, o_g + K_g)` of the flat logits. A group is known for an example when its target slice has
    a 1 (one-hot; a soft row of non-negative weights also works) and no -1; unknown groups (-1 entries,
    e.g. `#N/A` in an attribute CSV) contribute nothing. loss_b = -sum_g known_bg *
    sum_k t_bgk * log_softmax(z_bg)_k.
    """
    _check_shapes('group_softmax_loss', logits, targets)
    logits = logits.astype(jnp.float32)
    targets = targets.astype(jnp.float32)
    total = jnp.zeros(logits.shape[:1], jnp.float32)
    for start, size in _check_groups('group_softmax_loss', logits.shape[1], groups):
        z = logits[:, start : start + size]
        t = targets[:, start : start + size]
        known = jnp.all(t >= 0, axis=1) & jnp.any(t > 0, axis=1)
        ce = -jnp.sum(jnp.where(t > 0, t * jax.nn.log_softmax(z, axis=1), 0.0), axis=1)
        total = total + jnp.where(known, ce, 0.0)
    return total


def group_probabilities(logits, groups) -> np.ndarray:
    """`[N, C]` probabilities: a softmax within each group's slice of the flat logits (numpy)."""
    logits = np.asarray(logits, np.float32)
    out = np.empty_like(logits)
    for start, size in _check_groups('group_probabilities', logits.shape[1], groups):
        z = logits[:, start : start + size]
        e = np.exp(z - z.max(axis=1, keepdims=True))
        out[:, start : start + size] = e / e.sum(axis=1, keepdims=True)
    return out
