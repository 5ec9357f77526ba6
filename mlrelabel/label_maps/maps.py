"""Label-map generation: a teacher's dense class scores, kept as top-k per location (ReLabel).

ReLabel (Yun et al. 2021, "Re-labeling ImageNet: from Single to Multi-Labels, from Global to Localized
Labels") runs a strong classifier on every whole training image and keeps its classifier output *before*
global pooling (the class activation map of Zhou et al. 2016): at each cell of the final feature map, the
top-k class scores and their class ids (k = 5 at 15×15 for ImageNet). Training then pools that map over
each random crop (``label_pooling.label_pooling``).

Here the teacher's dense logits ``[B, h, w, C]`` are resized bilinearly to a configured resolution
``r × r`` (so any teacher and input size give maps of one shape) before the top-k. Everything is pure and
jittable; ``make_generate_fn`` gives the batched function that ``methods.relabel_maps`` jits over the mesh.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import jax
import jax.numpy as jnp

from mlrelabel.label_maps import cutmix as cutmix_ops
from mlrelabel.label_maps import pooling as label_pooling
from mlrelabel.ops import augment

__all__ = [
    'resize_dense',
    'topk_maps',
    'dense_to_topk_maps',
    'make_generate_fn',
    'map_argmax',
    'compose_boxes',
    'CutMixOptions',
    'make_pooling_transform',
]


def _check_dense(fn: str, dense) -> None:
    shape = getattr(dense, 'shape', None)
    if shape is None or len(shape) != 4:
        raise ValueError(f'label_maps.{fn}: dense must be [batch, h, w, num_classes], got shape {shape}')


def resize_dense(dense: jax.Array, size: int) -> jax.Array:
    """`[B, h, w, C]` → `[B, size, size, C]` float32 by bilinear resampling (antialiased when shrinking).

    Cells are treated as pixels with centres at ``i + 0.5`` (the box convention of ``label_pooling``), so
    a constant map stays constant and the map keeps covering the whole image.
    """
    _check_dense('resize_dense', dense)
    if not isinstance(size, int) or size < 1:
        raise ValueError(f'label_maps.resize_dense: size must be a positive int, got {size!r}')
    dense = jnp.asarray(dense, jnp.float32)
    b, h, w, c = dense.shape
    if (h, w) == (size, size):
        return dense
    return jax.image.resize(dense, (b, size, size, c), method='linear')


def topk_maps(dense: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """Top-k classes per location: `[B, r, r, C]` → `(scores [B, k, r, r] float32, classes [B, k, r, r] int32)`.

    Scores are sorted in decreasing order along k (ties: lower class id first), the layout of ReLabel's
    released ``[2, k, 15, 15]`` files.
    """
    _check_dense('topk_maps', dense)
    num_classes = dense.shape[-1]
    if not isinstance(k, int) or not 1 <= k <= num_classes:
        raise ValueError(f'label_maps.topk_maps: k must be an int in [1, {num_classes}], got {k!r}')
    scores, classes = jax.lax.top_k(jnp.asarray(dense, jnp.float32), k)  # [B, r, r, k]
    return jnp.moveaxis(scores, -1, 1), jnp.moveaxis(classes.astype(jnp.int32), -1, 1)


def dense_to_topk_maps(dense: jax.Array, size: int, k: int) -> tuple[jax.Array, jax.Array]:
    """Dense logits `[B, h, w, C]` → resized to `size × size` → top-k: `([B, k, size, size], [B, k, size, size])`."""
    return topk_maps(resize_dense(dense, size), k)


def make_generate_fn(
    model, *, k: int, map_size: int, image_size: int, mean: Sequence[float], std: Sequence[float]
) -> Callable:
    """`generate(variables, images [B, H, W, 3] uint8) -> (scores [B, k, r, r] f32, classes [B, k, r, r] i32)`.

    The teacher sees each whole image resized to `image_size` (bilinear, after the per-channel
    normalisation of training) in inference mode; its dense logits become the top-k map at `map_size`.
    Pure: jit it with the batch axis sharded over devices.
    """
    if not isinstance(image_size, int) or image_size < 1:
        raise ValueError(
            f'label_maps.make_generate_fn: image_size must be a positive int, got {image_size!r}'
        )

    def generate(variables, images):
        x = augment.normalize(images, mean, std)
        if x.shape[1:3] != (image_size, image_size):
            x = jax.image.resize(x, (x.shape[0], image_size, image_size, x.shape[3]), method='linear')
        dense = model.apply(variables, x, train=False, dense=True)
        return dense_to_topk_maps(dense, map_size, k)

    return generate


def map_argmax(scores: jax.Array, classes: jax.Array) -> jax.Array:
    """The top class at every location: `[B, k, r, r]` scores and ids → `[B, r, r]` int32."""
    best = jnp.argmax(jnp.asarray(scores), axis=1)[:, None]
    return jnp.take_along_axis(jnp.asarray(classes), best, axis=1)[:, 0].astype(jnp.int32)


def compose_boxes(outer: jax.Array, inner: jax.Array, flipped: jax.Array | None = None) -> jax.Array:
    """Maps boxes given in fractions of a crop into fractions of the crop's source image.

    Args:
      outer: `[B, 4]` `(y0, x0, y1, x1)`: each crop's box in its source image (``random_resized_crop_flip``).
      inner: `[B, 4]` a box in fractions of the crop *as the network sees it*, e.g. a CutMix box.
      flipped: `[B]` bool, the crop was mirrored after cropping; the inner box is then mirrored back first.
    Returns:
      `[B, 4]` the inner box in source-image fractions:
      `y = y0 + v (y1 - y0)`, `x = x0 + u (x1 - x0)` with `u` the unmirrored inner x.
    """
    outer = jnp.asarray(outer, jnp.float32)
    inner = jnp.asarray(inner, jnp.float32)
    if outer.ndim != 2 or outer.shape[1] != 4 or inner.shape != outer.shape:
        raise ValueError(
            f'label_maps.compose_boxes: outer and inner must both be [batch, 4], got '
            f'{outer.shape} and {inner.shape}'
        )
    v0, u0, v1, u1 = (inner[:, i] for i in range(4))
    if flipped is not None:
        flipped = jnp.asarray(flipped, bool)
        u0, u1 = jnp.where(flipped, 1.0 - u1, u0), jnp.where(flipped, 1.0 - u0, u1)
    y0, x0, y1, x1 = (outer[:, i] for i in range(4))
    hy, wx = y1 - y0, x1 - x0
    return jnp.stack([y0 + v0 * hy, x0 + u0 * wx, y0 + v1 * hy, x0 + u1 * wx], axis=1)


@dataclasses.dataclass(frozen=True)
class CutMixOptions:
    """CutMix in the label-map train step (`make_pooling_transform`).

    enabled: mix at all.
    alpha: the Beta(alpha, alpha) of the kept fraction.
    prob: each example is mixed with this probability...
    until_step: ...while the step is below this.
    """

    enabled: bool = False
    alpha: float = 1.0
    prob: float = 1.0
    until_step: int = 0


def make_pooling_transform(
    num_classes: int,
    *,
    cutmix: CutMixOptions = CutMixOptions(),
    transpose_boxes: bool = False,
    offset: float = label_pooling.RELABEL_OFFSET,
) -> Callable:
    """The train step's `transform_fn` for label maps: LabelPooling targets, optionally with CutMix.

    `transform(images, batch, boxes, flipped, key, step) -> (images, target [B, C])` with
    `batch['map_scores']`, `batch['map_classes']` `[B, k, r, r]` (``LabelMapSource``). The target of a crop is
    the LabelPooling of its map over its box (softmax of the RoIAlign average; Yun et al. 2021). The crop's
    flip needs no handling: its box is in source coordinates and the flipped crop shows the same region.

    CutMix (Yun et al. 2019), per example with probability `cutmix.prob` while `step < cutmix.until_step`:
    a box of partner `perm[i]`'s (augmented) crop is pasted into crop i, and the target is
    `lam · pool(map_i, crop box_i) + (1 - lam) · pool(map_perm[i], pasted box)`, where the pasted box is the
    CutMix box mapped into the partner's source image through its crop box and flip (``compose_boxes``).
    ReLabel's CutMix reuses the partner's whole-crop target instead; pooling the pasted region itself labels
    what is actually pasted.
    """

    def transform(images, batch, boxes, flipped, key, step):
        dense = label_pooling.topk_to_dense(batch['map_scores'], batch['map_classes'], num_classes)
        target = label_pooling.label_pooling(dense, boxes, transpose_boxes=transpose_boxes, offset=offset)
        if not cutmix.enabled:
            return images, target
        b, h, w = images.shape[:3]
        k_perm, k_box, k_apply = jax.random.split(key, 3)
        perm = jax.random.permutation(k_perm, b)
        cut, lam = cutmix_ops.cutmix_boxes(k_box, b, cutmix.alpha, image_size=(h, w))
        use = jax.random.bernoulli(k_apply, cutmix.prob, (b,)) & (step < cutmix.until_step)
        cut = jnp.where(use[:, None], cut, 0.0)
        lam = jnp.where(use, lam, 1.0)
        mixed = cutmix_ops.apply_cutmix(images, perm, cut)
        pasted_box = compose_boxes(boxes[perm], cut, flipped[perm])
        pasted = label_pooling.label_pooling(
            dense[perm], pasted_box, transpose_boxes=transpose_boxes, offset=offset
        )
        return mixed, cutmix_ops.cutmix_targets(target, pasted, lam)

    return transform
