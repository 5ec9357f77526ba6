"""Crop → Confidence for a batch of whole images, as one jitted function.

`make_score_fn` composes the pure stages: normalise, sample crop boxes (random / fixed / grid / full, or
proposals from the model's own class activation maps), extract and resize every crop in one call, score all
`B × K` crops with the chosen confidence method (naive, MC dropout, MC perturbation), and aggregate over
each image's crops. The relabel loop streams batches of images through it, sharded like training.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from mlrelabel.relabel import confidence, crops
from mlrelabel.train import augment

UNCERTAINTIES = ('std', 'mutual_information', 'entropy')


def make_score_fn(model, head: str, cfg, *, mean, std, image_size: int) -> Callable:
    """Returns `score(variables, images [B, H, W, 3] uint8, key) -> dict` (jit it with the mesh shardings).

    Output:
      `conf [B, C]` aggregated class probabilities (max or mean over crops of each crop's mean over samples),
      `std [B, C]` the per-class sample std aggregated the same way, `mutual_information [B]` and
      `entropy [B]` averaged over crops, `boxes [B, K, 4]` the crops, `crop_conf [B, K, C]` per crop.
    `cfg` is `config.relabel` (fields `crops`, `confidence`, `num_samples`, `perturbation`, `aggregate`).
    """
    c = cfg.crops
    conf_fn = confidence.confidence_fn(cfg.confidence, model, head, cfg.num_samples, dict(cfg.perturbation))
    crop_size = c.crop_size or image_size

    def boxes_for(key, images):
        b = images.shape[0]
        kind_params = {
            'random': dict(scale=tuple(c.scale), ratio=tuple(c.ratio)),
            'fixed': dict(size=tuple(c.size)),
            'grid': dict(scales=tuple(c.grid_scales), overlap=c.overlap),
            'full': {},
        }[c.kind]
        num = None if c.kind in ('grid', 'full') else c.num_crops  # grid: every window; full: one crop
        return crops.sample_boxes(key, c.kind, b, num, include_full_image=c.include_full_image, **kind_params)

    def score(variables, images, key):
        k_box, k_conf = jax.random.split(key)
        x = augment.normalize(images, mean, std)
        b = x.shape[0]
        if c.kind == 'proposals':
            dense = model.apply(variables, x, train=False, dense=True)
            boxes, _ = crops.proposal_boxes(dense, c.num_crops, c.proposal_box_size)
            if c.include_full_image:
                boxes = boxes.at[:, 0].set(jnp.asarray([0.0, 0.0, 1.0, 1.0], jnp.float32))
        else:
            boxes = boxes_for(k_box, x)
        k = boxes.shape[1]
        patches = crops.extract_crops(x, boxes, crop_size).reshape(b * k, crop_size, crop_size, x.shape[-1])
        s = conf_fn(variables, patches, k_conf)
        per_crop = s['mean'].reshape(b, k, -1)
        return {
            'conf': confidence.aggregate_crops(per_crop, cfg.aggregate),
            'std': confidence.aggregate_crops(s['std'].reshape(b, k, -1), cfg.aggregate),
            'mutual_information': s['mutual_information'].reshape(b, k).mean(1),
            'entropy': s['entropy'].reshape(b, k).mean(1),
            'boxes': boxes,
            'crop_conf': per_crop,
        }

    return score


def uncertainty_of(scores: dict, kind: str) -> Any:
    """The uncertainty the filter uses: per class `[B, C]` ('std') or per image `[B]`."""
    if kind not in UNCERTAINTIES:
        raise ValueError(f'config.relabel.uncertainty={kind!r}: expected one of {UNCERTAINTIES}')
    return scores[kind]
