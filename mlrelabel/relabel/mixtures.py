"""Per-class two-component Gaussian mixtures over label evidence: the "GMM" rule of the Label stage.

A label is assigned where the high ("present") component is the more probable one (mixture-based split of
clean vs. noisy samples as in DivideMix: Li, Socher & Hoi, ICLR 2020). Fitted (sklearn, at the edge) on a
bounded sample and stored as plain arrays, so the posterior is pure jnp and can be streamed. Degenerate fits
(one component collapsed on saturated or spiky scores, or modes that overlap) are marked invalid and add no
label. Re-exported by `mlrelabel.relabel.assign`.
"""

from __future__ import annotations

import dataclasses

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

_DEGENERATE_STD = 1e-6


def _check_conf(conf, where: str):
    if conf.ndim != 2:
        raise ValueError(f"{where}: expected conf [images, classes], got shape {conf.shape}")


# --------------------------------------------------------------------------------------------
# Per-class two-component Gaussian mixtures


@flax.struct.dataclass
class ClassMixtures:
    """Per-class two-component 1-D Gaussian mixtures, component 1 being the higher-mean one.

    A pytree (pass it into jitted code); the fit space is static.

    Attributes:
      means: `[C, 2]` component means in the fit space.
      variances: `[C, 2]` component variances (sklearn's, including its `reg_covar`).
      weights: `[C, 2]` mixing weights.
      valid: `[C]` bool; False marks a degenerate class (too few samples or no spread) that never
        assigns (its stored parameters are placeholders).
      space: 'log_odds' (scores are log-odds already), 'logit' or 'prob', the space of the fit.
      reasons: per class, '' for a usable mixture or why it was rejected (static; see `fit_class_gmms`).
      eps: probabilities are clipped to [eps, 1 - eps] before the logit.
    """

    means: jax.Array
    variances: jax.Array
    weights: jax.Array
    valid: jax.Array
    space: str = flax.struct.field(pytree_node=False, default="logit")
    eps: float = flax.struct.field(pytree_node=False, default=1e-6)
    reasons: tuple = flax.struct.field(pytree_node=False, default=())

    @property
    def num_classes(self) -> int:
        return self.means.shape[0]


SPACES = ("log_odds", "logit", "prob")


def _to_space(conf, space: str, eps: float, xp):
    """Scores -> fit space (`xp` is numpy or jax.numpy): 'log_odds' scores are used as they are (evidence from
    `relabel.evidence`), 'logit' maps probabilities to log-odds, 'prob' keeps probabilities."""
    if space in ("prob", "log_odds"):
        return conf
    p = xp.clip(conf, eps, 1.0 - eps)
    return xp.log(p) - xp.log1p(-p)


@dataclasses.dataclass(frozen=True)
class GmmOptions:
    """How `fit_class_gmms` fits and vets each class's mixture.

    max_samples: the fit uses a random sample of at most this many images (the same rows for every class).
    seed: seeds the sample and the fits.
    space: 'log_odds' (evidence that is log-odds already), 'logit' (probabilities clipped to [eps, 1 - eps],
      then log-odds) or 'prob'.
    eps: 'logit': the clip.
    min_separation: a mixture whose modes' Ashman's D is below this is rejected.
    min_high_count: a mixture whose high component holds fewer images is rejected.
    """

    max_samples: int = 20000
    seed: int = 0
    space: str = "logit"
    eps: float = 1e-6
    min_separation: float = 1.0
    min_high_count: int = 3


def fit_class_gmms(conf, options: GmmOptions = GmmOptions()) -> ClassMixtures:
    """Fit one two-component Gaussian mixture per class to the scores `conf [N, C]`, as `options` say.

    Per class, `sklearn.mixture.GaussianMixture(n_components=2, random_state=seed)` is fitted on the sample in
    `space`. Components are ordered so that component 1 has the higher mean.

    Robust to saturated or spiky score distributions: the covariance regulariser is 1e-3 of the class's
    variance (a pile of identical scores cannot collapse a component to zero width), and a fitted mixture
    is rejected (`valid=False`, never assigns; `reasons[c]` says why) when the sample has no spread, when
    the high component holds fewer than `min_high_count` images ('no positive mode'), or when the two
    modes overlap: Ashman's D = sqrt(2) |mu1 - mu0| / sqrt(var0 + var1) < `min_separation` ('modes
    overlap'; D > 2 is the criterion for a clean split; crop evidence of present vs absent objects is
    usually 1 < D < 2, and D < 1 means one mode), or when one Gaussian fits the sample better by BIC
    (Schwarz 1978): a unimodal sample split in two still reaches D ≈ 2.5. Runs on the host (numpy/sklearn).
    """
    o = options
    _check_gmm_options(o)
    conf = np.asarray(conf, np.float64)
    _check_conf(conf, "fit_class_gmms")
    num_images, num_classes = conf.shape
    if num_images > o.max_samples:
        rows = np.random.default_rng(o.seed).choice(num_images, o.max_samples, replace=False)
        conf = conf[np.sort(rows)]
    x_all = _to_space(conf, o.space, o.eps, np)

    means = np.zeros((num_classes, 2))
    variances = np.ones((num_classes, 2))
    weights = np.tile([1.0, 0.0], (num_classes, 1))
    valid = np.zeros(num_classes, bool)
    reasons = []
    for c in range(num_classes):
        x = x_all[:, c]
        x = x[np.isfinite(x)]
        if x.shape[0] < 2 or np.std(x) < _DEGENERATE_STD:
            reasons.append("no spread")
            continue
        means[c], variances[c], weights[c], reason = _fit_class(x, o)
        reasons.append(reason)
        valid[c] = not reason
    return ClassMixtures(
        means=means.astype(np.float32),
        variances=variances.astype(np.float32),
        weights=weights.astype(np.float32),
        valid=valid,
        space=o.space,
        eps=float(o.eps),
        reasons=tuple(reasons),
    )


def _check_gmm_options(o: GmmOptions) -> None:
    if o.space not in SPACES:
        raise ValueError(f"fit_class_gmms: space must be one of {SPACES}, got {o.space!r}")
    if not 0 < o.eps < 0.5:
        raise ValueError(f"fit_class_gmms: eps must be in (0, 0.5), got {o.eps!r}")
    if isinstance(o.max_samples, bool) or not isinstance(o.max_samples, int) or o.max_samples < 1:
        raise ValueError(f"fit_class_gmms: max_samples must be a positive int, got {o.max_samples!r}")


def _fit_class(x: np.ndarray, o: GmmOptions):
    """`(means [2], variances [2], weights [2], reason)` of one class's mixture fitted to its scores `x [n]`
    (with spread), low component first; `reason` is '' for a usable mixture, else why it is rejected."""
    from sklearn.mixture import GaussianMixture  # host-side only

    reg = max(1e-6, 1e-3 * float(np.var(x)))
    gmm = GaussianMixture(n_components=2, random_state=o.seed, reg_covar=reg).fit(x[:, None])
    one_mode_bic = GaussianMixture(n_components=1, reg_covar=reg).fit(x[:, None]).bic(x[:, None])
    order = np.argsort(gmm.means_[:, 0], kind="stable")
    means = gmm.means_[order, 0]
    variances = gmm.covariances_.reshape(2)[order]
    weights = gmm.weights_[order]
    separation = np.sqrt(2.0) * (means[1] - means[0]) / np.sqrt(variances.sum())
    reason = ""
    if weights[1] * x.shape[0] < o.min_high_count:
        reason = "no positive mode"
    elif one_mode_bic <= gmm.bic(x[:, None]):
        reason = "modes overlap (one Gaussian explains the scores better by BIC)"
    elif separation < o.min_separation:
        reason = f"modes overlap (Ashman's D {separation:.2f} < {o.min_separation:g})"
    return means, variances, weights, reason


def mixture_thresholds(mixtures: ClassMixtures, min_posterior: float, grid_size: int = 4097) -> np.ndarray:
    """Per-class thresholds `[C]` float32 (in the fit space) equivalent to a posterior rule.

    For each usable class, the smallest score at which the monotone envelope (running maximum from below) of
    the high component's posterior reaches `min_posterior`, so that `score >= threshold` is the assignment
    (below the low component's mean the posterior is capped at its value there, as in `gmm_posterior`).
    Thresholds are not capped: a confident class can need log-odds of 20 or more. Rejected classes, and
    classes whose posterior never reaches `min_posterior`, get +inf (they never assign).
    """
    if not 0.0 < float(min_posterior) < 1.0:
        raise ValueError(f"mixture_thresholds: min_posterior must lie in (0, 1), got {min_posterior!r}")
    means = np.asarray(mixtures.means, np.float64)
    var = np.asarray(mixtures.variances, np.float64)
    weights = np.maximum(np.asarray(mixtures.weights, np.float64), 1e-300)
    out = np.full(means.shape[0], np.inf, np.float32)
    for c in np.flatnonzero(np.asarray(mixtures.valid)):
        sd = np.sqrt(var[c])
        x = np.linspace(means[c, 0] - 8 * sd[0], means[c, 1] + 8 * sd[1], grid_size)
        log_joint = np.log(weights[c])[None] - 0.5 * (
            np.log(2 * np.pi * var[c])[None] + (x[:, None] - means[c][None]) ** 2 / var[c][None]
        )
        # Far in the low tail exp overflows to inf: the posterior 0 it should be.
        with np.errstate(over='ignore'):
            post = 1.0 / (1.0 + np.exp(log_joint[:, 0] - log_joint[:, 1]))
        # Below the low mean a wider high component wins again (a tail inversion): ignore that tail.
        at_low = post[np.searchsorted(x, means[c, 0])]
        post = np.maximum.accumulate(np.where(x < means[c, 0], np.minimum(post, at_low), post))
        hit = np.flatnonzero(post >= min_posterior)
        if hit.size:
            out[c] = x[hit[0]]
    return out


def _component_log_joint(mixtures: ClassMixtures, x: jax.Array, j: int) -> jax.Array:
    """log(weight_j * N(x; mean_j, var_j)) for `x [N, C]`."""
    mean = jnp.asarray(mixtures.means[:, j], jnp.float32)
    var = jnp.asarray(mixtures.variances[:, j], jnp.float32)
    weight = jnp.asarray(mixtures.weights[:, j], jnp.float32)
    return jnp.log(jnp.maximum(weight, 1e-30)) - 0.5 * (
        jnp.log(2.0 * jnp.pi * var) + jnp.square(x - mean) / var
    )


def gmm_posterior(mixtures: ClassMixtures, conf: jax.Array, monotone: bool = False) -> jax.Array:
    """Posterior probability of the high component, `[N, C]` float32 (0 for degenerate classes).

    Pure jnp from the stored parameters (no sklearn), so it can run per batch inside a stream;
    with `monotone=False` it equals sklearn's `predict_proba(...)[:, high]`.

    With unequal variances the Gaussian posterior is not monotone in x: far below the low mean the
    wider component wins again (and far above the high mean likewise). `monotone=True` removes
    those tail inversions: below the low mean the posterior is at most its value at the low mean,
    above the high mean at least its value at the high mean.
    """
    conf = jnp.asarray(conf, jnp.float32)
    _check_conf(conf, "gmm_posterior")
    if conf.shape[1] != mixtures.num_classes:
        raise ValueError(
            f"gmm_posterior: conf has {conf.shape[1]} classes, mixtures have {mixtures.num_classes}"
        )
    x = _to_space(conf, mixtures.space, mixtures.eps, jnp)

    def posterior(x):
        return jax.nn.sigmoid(_component_log_joint(mixtures, x, 1) - _component_log_joint(mixtures, x, 0))

    post = posterior(x)
    if monotone:
        low = jnp.asarray(mixtures.means[:, 0], jnp.float32)
        high = jnp.asarray(mixtures.means[:, 1], jnp.float32)
        at_low = posterior(jnp.broadcast_to(low, x.shape))
        at_high = posterior(jnp.broadcast_to(high, x.shape))
        post = jnp.where(x < low, jnp.minimum(post, at_low), post)
        post = jnp.where(x > high, jnp.maximum(post, at_high), post)
    return jnp.where(jnp.asarray(mixtures.valid), post, 0.0)


def assign_gmm(conf: jax.Array, mixtures: ClassMixtures, min_posterior: float = 0.5) -> jax.Array:
    """Assign class c to image n where the (monotone) high-component posterior >= `min_posterior`.

    `[N, C]` bool; degenerate classes never assign, whatever `min_posterior`.
    """
    post = gmm_posterior(mixtures, conf, monotone=True)
    return (post >= min_posterior) & jnp.asarray(mixtures.valid)
