"""Random test-time perturbations of crops: the sampling distribution of the MC-perturbation confidence.

Test-time augmentation as an uncertainty estimate (Ayhan & Berens, "Test-time Data Augmentation for
Estimation of Heteroscedastic Aleatoric Uncertainty in Deep Neural Networks", MIDL 2018). Pure functions of a
PRNG key and images `[batch, height, width, channels]` float32 (already normalised).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class PerturbationConfig:
    """Magnitudes of the random test-time perturbations, in units of the normalised image.

    Attributes:
      flip: probability of a horizontal flip, in [0, 1].
      scale: zoom factor drawn uniformly from [1 - scale, 1 + scale] about the centre, in [0, 1).
      shift: translation drawn uniformly from [-shift, shift] times the side, per axis, >= 0.
      brightness: additive offset drawn uniformly from [-brightness, brightness], >= 0.
      contrast: factor drawn uniformly from [1 - contrast, 1 + contrast] applied around the
        per-image mean, in [0, 1].
      noise: standard deviation of additive i.i.d. Gaussian noise, >= 0.
    A zero magnitude disables that perturbation exactly (it is skipped, not applied with 0).
    """

    flip: float = 0.5
    scale: float = 0.1
    shift: float = 0.1
    brightness: float = 0.1
    contrast: float = 0.1
    noise: float = 0.05

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(
                    f"PerturbationConfig.{field.name}: expected a non-negative number, got {value!r}"
                )
        if self.flip > 1:
            raise ValueError(f"PerturbationConfig.flip: expected a probability in [0, 1], got {self.flip}")
        if self.scale >= 1:
            raise ValueError(f"PerturbationConfig.scale: expected a value in [0, 1), got {self.scale}")
        if self.contrast > 1:
            raise ValueError(f"PerturbationConfig.contrast: expected a value in [0, 1], got {self.contrast}")


def as_perturbation_config(cfg: PerturbationConfig | Mapping | None) -> PerturbationConfig:
    """`PerturbationConfig`, dict (e.g. an ml_collections ConfigDict) or None (defaults) -> config."""
    if cfg is None:
        return PerturbationConfig()
    if isinstance(cfg, PerturbationConfig):
        return cfg
    if hasattr(cfg, "to_dict"):  # ml_collections.ConfigDict
        cfg = cfg.to_dict()
    if not isinstance(cfg, Mapping):
        raise TypeError(
            f"perturbation config: expected PerturbationConfig or a dict, got {type(cfg).__name__}"
        )
    names = {f.name for f in dataclasses.fields(PerturbationConfig)}
    unknown = sorted(set(cfg) - names)
    if unknown:
        raise ValueError(f"perturbation config: unknown field(s) {unknown}; valid fields: {sorted(names)}")
    return PerturbationConfig(**{k: float(v) for k, v in cfg.items()})


def _zoom_shift(image: jax.Array, zoom: jax.Array, frac: jax.Array) -> jax.Array:
    """Zoom `image [H, W, C]` by `zoom` about its centre and shift it by `frac [2]` of its size."""
    size = jnp.array(image.shape[:2], jnp.float32)
    # Output coordinate = input * zoom + translation: (1 - zoom) * size / 2 keeps the centre fixed;
    # regions uncovered by a zoom-out or shift are filled with 0 (the normalised mean).
    translation = (1.0 - zoom) * size / 2.0 + frac * size
    return jax.image.scale_and_translate(
        image,
        image.shape,
        spatial_dims=(0, 1),
        scale=jnp.stack([zoom, zoom]),
        translation=translation,
        method="linear",
        antialias=True,
    )


def perturb(key: jax.Array, images: jax.Array, cfg: PerturbationConfig | Mapping | None = None) -> jax.Array:
    """One independent random perturbation per image: `[B, H, W, C] -> [B, H, W, C]` float32.

    In order: horizontal flip (probability `cfg.flip`), zoom about the centre in
    [1 - scale, 1 + scale] and shift by up to `shift` of the side per axis (bilinear
    `jax.image.scale_and_translate`, size kept), contrast factor in [1 - contrast, 1 + contrast]
    around the per-image mean, additive brightness in [-brightness, brightness], additive Gaussian
    noise with std `noise`. Every image draws its own parameters. Pure given `key`; `cfg` is
    static (see PerturbationConfig; zero magnitudes are skipped, so all-zero is the identity).
    """
    if images.ndim != 4:
        raise ValueError(
            f"perturb: expected images [batch, height, width, channels], got shape {images.shape}"
        )
    cfg = as_perturbation_config(cfg)
    images = jnp.asarray(images, jnp.float32)
    batch = images.shape[0]
    per_image = (batch, 1, 1, 1)
    k_flip, k_zoom, k_shift, k_contrast, k_bright, k_noise = jax.random.split(key, 6)
    if cfg.flip > 0:
        flip = jax.random.bernoulli(k_flip, cfg.flip, per_image)
        images = jnp.where(flip, images[:, :, ::-1], images)
    if cfg.scale > 0 or cfg.shift > 0:
        zoom = jax.random.uniform(k_zoom, (batch,), jnp.float32, 1.0 - cfg.scale, 1.0 + cfg.scale)
        frac = jax.random.uniform(k_shift, (batch, 2), jnp.float32, -cfg.shift, cfg.shift)
        images = jax.vmap(_zoom_shift)(images, zoom, frac)
    if cfg.contrast > 0:
        factor = jax.random.uniform(
            k_contrast, per_image, jnp.float32, 1.0 - cfg.contrast, 1.0 + cfg.contrast
        )
        mean = jnp.mean(images, axis=(1, 2, 3), keepdims=True)
        images = (images - mean) * factor + mean
    if cfg.brightness > 0:
        images = images + jax.random.uniform(
            k_bright, per_image, jnp.float32, -cfg.brightness, cfg.brightness
        )
    if cfg.noise > 0:
        images = images + cfg.noise * jax.random.normal(k_noise, images.shape, jnp.float32)
    return images
