"""The "Confidence" stage of the relabel loop: class probabilities of crops, with uncertainty.

Every function is pure (arrays and explicit PRNG keys in, arrays out) and jittable; the model,
head and sample count are static. Images are crops already flattened into the batch and already
normalised for the model: `[batch, height, width, 3]` float32. Probabilities follow the model's
head, never raw logits: softmax for a single-label model, per-class sigmoid for a multi-label one.

Methods (`confidence_fn(method, ...)`):
  naive            one inference forward pass (T = 1).
  mc_dropout       Monte Carlo dropout (Gal & Ghahramani, "Dropout as a Bayesian Approximation:
                   Representing Model Uncertainty in Deep Learning", ICML 2016): batch norm in
                   inference mode, dropout active, T samples. The backbone runs once (`embed`) and
                   only dropout + classifier are repeated (`classify`), vmapped over T keys.
  mc_dropout_full  the same distribution with T full forward passes: the reference/benchmark path.
  mc_perturbation  T random input perturbations per crop (flip, shift/scale, brightness, contrast,
                   noise), each an inference pass: test-time augmentation as a sampling distribution
                   (Ayhan & Berens, "Test-time Data Augmentation for Estimation of Heteroscedastic
                   Aleatoric Uncertainty in Deep Neural Networks", MIDL 2018).

Uncertainty summaries (`summarize_samples`): mean/std over samples, predictive entropy of the mean
and mutual information between prediction and model parameters (BALD: Houlsby, Huszár, Ghahramani
& Lengyel, "Bayesian Active Learning for Classification and Preference Learning", 2011).
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
from jax.scipy.special import xlogy

from mlrelabel.relabel.evidence import mean_log_odds
from mlrelabel.relabel.perturb import PerturbationConfig, as_perturbation_config, perturb  # noqa: F401

HEADS = ("softmax", "sigmoid")
METHODS = ("naive", "mc_dropout", "mc_dropout_full", "mc_perturbation")


def _check_head(head: str, where: str) -> None:
    if head not in HEADS:
        raise ValueError(f"{where}: head must be one of {HEADS}, got {head!r}")


def _check_num_samples(num_samples: int, where: str) -> None:
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"{where}: num_samples must be a positive int, got {num_samples!r}")


def _check_images(images: jax.Array, where: str) -> None:
    if images.ndim != 4:
        raise ValueError(
            f"{where}: expected images [batch, height, width, channels], got shape {images.shape}"
        )


# --------------------------------------------------------------------------------------------
# Link


def head_probabilities(logits: jax.Array, head: str) -> jax.Array:
    """Logits `[..., C]` -> probabilities `[..., C]` float32 through the model's head (jittable; the host form
    for numpy arrays is `evaluate.probabilities`).

    'softmax': a distribution over classes (single-label model); 'sigmoid': independent per-class
    probabilities (multi-label model).
    """
    _check_head(head, "head_probabilities")
    logits = jnp.asarray(logits, jnp.float32)
    if head == "softmax":
        return jax.nn.softmax(logits, axis=-1)
    return jax.nn.sigmoid(logits)


# --------------------------------------------------------------------------------------------
# Samplers. The `*_logits` functions return the raw logits `[T, B, C]` (float32; the evidence in log-odds is
# formed from them without ever saturating); the `*_samples` ones the head's probabilities `[T, B, C]`.


def naive_logits(model: Any, variables: Mapping, images: jax.Array) -> jax.Array:
    """One inference forward pass (batch norm running stats, no dropout): `[B, H, W, 3] -> [1, B, C]`."""
    _check_images(images, "naive_logits")
    return model.apply(variables, images, train=False)[None].astype(jnp.float32)


def naive_confidence(model: Any, variables: Mapping, images: jax.Array, head: str) -> jax.Array:
    """One inference forward pass (batch norm running stats, no dropout): `[B, H, W, 3] -> [B, C]`."""
    return head_probabilities(naive_logits(model, variables, images)[0], head)


def mc_dropout_logits(
    model: Any, variables: Mapping, images: jax.Array, key: jax.Array, num_samples: int
) -> jax.Array:
    """MC dropout logits `[T, B, C]` (Gal & Ghahramani 2016), backbone run once.

    Batch norm stays in inference mode; only the head dropout is stochastic, and it sits after the
    pooled features, so `embed` runs once (`[B, F]`) and `classify` (dropout + classifier) runs
    T times, vmapped over `jax.random.split(key, T)`. Equals `mc_dropout_full_logits` for the
    same key (the model draws the mask from the same submodule in both paths).
    """
    _check_images(images, "mc_dropout_logits")
    _check_num_samples(num_samples, "mc_dropout_logits")
    feats = model.apply(variables, images, method="embed")

    def one(k: jax.Array) -> jax.Array:
        return model.apply(variables, feats, method="classify", dropout=True, rngs={"dropout": k})

    return jax.vmap(one)(jax.random.split(key, num_samples)).astype(jnp.float32)


def mc_dropout_samples(
    model: Any, variables: Mapping, images: jax.Array, key: jax.Array, num_samples: int, head: str
) -> jax.Array:
    """MC dropout probabilities `[T, B, C]` (see `mc_dropout_logits`)."""
    return head_probabilities(mc_dropout_logits(model, variables, images, key, num_samples), head)


def mc_dropout_full_logits(
    model: Any, variables: Mapping, images: jax.Array, key: jax.Array, num_samples: int
) -> jax.Array:
    """MC dropout logits `[T, B, C]` with T full forward passes (the reference and benchmark path).

    Same keys and same values as `mc_dropout_logits` (`jax.random.split(key, T)`), at T times the backbone
    cost, as a framework without the head-only split pays. Under `vmap` JAX would compute the key-independent
    backbone only once, so the passes run one after another (`lax.map`) on an input tied to each key by a
    factor that is exactly 1.0 in float32 but unknown to the compiler, which must then recompute it.
    """
    _check_images(images, "mc_dropout_full_logits")
    _check_num_samples(num_samples, "mc_dropout_full_logits")

    def one(k: jax.Array) -> jax.Array:
        one_exactly = 1.0 + 1e-30 * jax.random.uniform(k, (), images.dtype)  # rounds to 1.0: same images
        return model.apply(variables, images * one_exactly, train=False, dropout=True, rngs={"dropout": k})

    return jax.lax.map(one, jax.random.split(key, num_samples)).astype(jnp.float32)


def mc_dropout_full_samples(
    model: Any, variables: Mapping, images: jax.Array, key: jax.Array, num_samples: int, head: str
) -> jax.Array:
    """MC dropout probabilities `[T, B, C]` with T full forward passes (see `mc_dropout_full_logits`)."""
    return head_probabilities(mc_dropout_full_logits(model, variables, images, key, num_samples), head)


def mc_perturbation_logits(
    model: Any,
    variables: Mapping,
    images: jax.Array,
    key: jax.Array,
    num_samples: int,
    cfg: PerturbationConfig | Mapping | None = None,
) -> jax.Array:
    """Test-time-perturbation logits `[T, B, C]`: T perturbations per crop, inference passes.

    Sample t perturbs every crop with key `jax.random.split(key, T)[t]`; dropout is off and batch
    norm uses running statistics, so the spread reflects sensitivity to the input only.
    """
    _check_images(images, "mc_perturbation_logits")
    _check_num_samples(num_samples, "mc_perturbation_logits")
    cfg = as_perturbation_config(cfg)

    def one(k: jax.Array) -> jax.Array:
        return model.apply(variables, perturb(k, images, cfg), train=False)

    return jax.vmap(one)(jax.random.split(key, num_samples)).astype(jnp.float32)


# --------------------------------------------------------------------------------------------
# Summaries and aggregation


def _entropy(probs: jax.Array, head: str) -> jax.Array:
    """Entropy in nats over the last axis: categorical (softmax) or sum of binary (sigmoid)."""
    if head == "softmax":
        return -jnp.sum(xlogy(probs, probs), axis=-1)
    return -jnp.sum(xlogy(probs, probs) + xlogy(1.0 - probs, 1.0 - probs), axis=-1)


def summarize_samples(probs: jax.Array, head: str = "softmax") -> dict[str, jax.Array]:
    """Summaries of sampled probabilities `[T, B, C]`.

    Returns a dict of float32 arrays:
      mean               `[B, C]` mean over samples (the confidence the Label stage uses).
      std                `[B, C]` standard deviation over samples (population, ddof 0).
      entropy            `[B]` predictive entropy of the mean, nats (total uncertainty); for a
                         sigmoid head the sum over classes of the binary entropies.
      expected_entropy   `[B]` mean over samples of the per-sample entropy (aleatoric part).
      mutual_information `[B]` entropy - expected_entropy, clipped at 0 (epistemic part, BALD).
    With T = 1, std and mutual_information are exactly 0.
    """
    _check_head(head, "summarize_samples")
    probs = jnp.asarray(probs, jnp.float32)
    if probs.ndim != 3:
        raise ValueError(
            f"summarize_samples: expected probs [samples, batch, classes], got shape {probs.shape}"
        )
    mean = jnp.mean(probs, axis=0)
    entropy = _entropy(mean, head)
    expected_entropy = jnp.mean(_entropy(probs, head), axis=0)
    return {
        "mean": mean,
        "std": jnp.std(probs, axis=0),
        "entropy": entropy,
        "expected_entropy": expected_entropy,
        "mutual_information": jnp.maximum(entropy - expected_entropy, 0.0),
    }


def top_k_of(how: str) -> int | None:
    """k of an aggregate named 'top<k>' (k >= 1, as config validation accepts it), else None."""
    match = re.fullmatch(r"top([1-9][0-9]*)", how) if isinstance(how, str) else None
    return int(match.group(1)) if match else None


def aggregate_crops(per_crop: jax.Array, how: str = "max", mask: jax.Array | None = None) -> jax.Array:
    """Aggregate over the K crops of each image: `[N, K, ...] -> [N, ...]` (usually `[N, K, C]`).

    how='max': a class is as confident as its most confident crop (an object seen in any crop);
    how='top<k>' (e.g. 'top3'): the mean of its k most confident crops (all of them when an image has fewer):
    an object that fits one window whole also lies mostly inside the overlapping windows around it, while a
    confusion tends to light up one window alone, so the mean of the best few separates the two better than
    the maximum (top2 on the digit scenes: label F1 +0.004 to +0.008 in 3 seeds, benchmarks/history/label-quality.md);
    how='mean': the average over crops. `mask [N, K]` (bool or 0/1) excludes padded crops; an image
    whose crops are all masked gets 0.
    """
    per_crop = jnp.asarray(per_crop)
    if per_crop.ndim < 2:
        raise ValueError(
            f"aggregate_crops: expected per_crop [images, crops, ...], got shape {per_crop.shape}"
        )
    k = top_k_of(how)
    if how not in ("max", "mean") and k is None:
        raise ValueError(f"aggregate_crops: how must be 'max', 'mean' or 'top<k>' (e.g. 'top3'), got {how!r}")
    if mask is None:
        mask = jnp.ones(per_crop.shape[:2], bool)
    mask = jnp.asarray(mask)
    if mask.shape != per_crop.shape[:2]:
        raise ValueError(
            f"aggregate_crops: mask must have shape [images, crops] = {per_crop.shape[:2]}, got {mask.shape}"
        )
    valid = (mask != 0).reshape(mask.shape + (1,) * (per_crop.ndim - 2))
    count = jnp.sum(valid, axis=1)
    if how == "mean":
        total = jnp.sum(jnp.where(valid, per_crop, 0), axis=1)
        return total / jnp.maximum(count, 1).astype(total.dtype)
    lowest = jnp.array(-jnp.inf, per_crop.dtype)
    if how == "max":
        best = jnp.max(jnp.where(valid, per_crop, lowest), axis=1)
        return jnp.where(count > 0, best, jnp.zeros_like(best))
    k = min(k, per_crop.shape[1])
    ranked = -jnp.sort(-jnp.where(valid, per_crop, lowest), axis=1)[:, :k]  # [N, k, ...], best first
    used = jnp.arange(k).reshape((1, k) + (1,) * (per_crop.ndim - 2)) < jnp.minimum(count, k)[:, None]
    total = jnp.sum(jnp.where(used, ranked, 0), axis=1)
    return total / jnp.maximum(jnp.minimum(count, k), 1).astype(total.dtype)


# --------------------------------------------------------------------------------------------
# Entry point for the relabel loop


def confidence_fn(
    method: str,
    model: Any,
    head: str,
    num_samples: int = 1,
    perturbation_cfg: PerturbationConfig | Mapping | None = None,
) -> Callable[[Mapping, jax.Array, jax.Array], dict[str, jax.Array]]:
    """Build the jitted per-batch confidence function for `method` (see the module docstring).

    Returns `f(variables, crops [B, H, W, 3], key) -> summarize_samples(...)` (keys mean `[B, C]`,
    std `[B, C]`, entropy `[B]`, expected_entropy `[B]`, mutual_information `[B]`) plus `log_odds [B, C]`,
    the float32 log-odds of the mean probability (`evidence.mean_log_odds`); model, head,
    T and the perturbation config are closed over (static), so it compiles once per crop shape.
    'naive' ignores `key` and `num_samples` (T = 1).

    Raises:
      ValueError: unknown method or head, num_samples < 1, or an MC dropout method on a model
        without dropout (`model.dropout_rate` missing or 0: every sample would be identical).
    """
    if method not in METHODS:
        raise ValueError(f"confidence_fn: unknown method {method!r}; valid methods: {METHODS}")
    _check_head(head, "confidence_fn")
    _check_num_samples(num_samples, "confidence_fn")
    if method in ("mc_dropout", "mc_dropout_full"):
        rate = getattr(model, "dropout_rate", None)
        if not rate or rate <= 0:
            raise ValueError(
                f"confidence_fn: method {method!r} needs a model with dropout, but "
                f"{type(model).__name__}.dropout_rate is {rate!r}; build it with "
                "get_model(..., dropout_rate>0) or use 'naive' / 'mc_perturbation'"
            )
    cfg = as_perturbation_config(perturbation_cfg) if method == "mc_perturbation" else None

    def fn(variables: Mapping, crops: jax.Array, key: jax.Array) -> dict[str, jax.Array]:
        if method == "naive":
            logits = naive_logits(model, variables, crops)
        elif method == "mc_dropout":
            logits = mc_dropout_logits(model, variables, crops, key, num_samples)
        elif method == "mc_dropout_full":
            logits = mc_dropout_full_logits(model, variables, crops, key, num_samples)
        else:
            logits = mc_perturbation_logits(model, variables, crops, key, num_samples, cfg)
        out = summarize_samples(head_probabilities(logits, head), head)
        out["log_odds"] = mean_log_odds(logits, head)
        return out

    return jax.jit(fn)
