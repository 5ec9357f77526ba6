"""ReLabel label maps (`mlrelabel.label_maps.maps`): generation (resize + top-k), the teacher's dense output,
crop-box composition, the pooling/CutMix transform."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlrelabel.label_maps import maps as label_maps
from mlrelabel.label_maps import pooling as label_pooling
from mlrelabel.ops import augment
from mlrelabel.ops import boxes as ops_boxes


def test_topk_maps_sorted_ids_and_layout():
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(2, 3, 4, 7)).astype(np.float32)
    scores, classes = label_maps.topk_maps(dense, 3)
    assert scores.shape == classes.shape == (2, 3, 3, 4) and classes.dtype == jnp.int32
    want = np.argsort(-dense, axis=-1)[..., :3]  # [B, h, w, k]
    np.testing.assert_array_equal(np.asarray(classes), np.moveaxis(want, -1, 1))
    np.testing.assert_allclose(np.asarray(scores), np.moveaxis(np.take_along_axis(dense, want, -1), -1, 1))
    assert (np.diff(np.asarray(scores), axis=1) <= 0).all()
    np.testing.assert_array_equal(np.asarray(label_maps.map_argmax(scores, classes)), dense.argmax(-1))
    with pytest.raises(ValueError, match='k must be'):
        label_maps.topk_maps(dense, 8)


def test_resize_dense_keeps_constants_and_covers_the_image():
    const = np.full((1, 3, 3, 2), 1.5, np.float32)
    np.testing.assert_allclose(np.asarray(label_maps.resize_dense(const, 5)), 1.5, atol=1e-6)
    # A left/right split map keeps its halves at the new resolution (cell centres at i + 0.5).
    split = np.zeros((1, 4, 4, 2), np.float32)
    split[:, :, :2, 0] = split[:, :, 2:, 1] = 1.0
    out = np.asarray(label_maps.resize_dense(split, 8))
    assert out.shape == (1, 8, 8, 2)
    assert (out[0, :, :3, 0] > out[0, :, :3, 1]).all() and (out[0, :, 5:, 1] > out[0, :, 5:, 0]).all()
    np.testing.assert_allclose(out[0, :, :4, 0], out[0, :, 4:, 1][:, ::-1], atol=1e-6)  # symmetric


def test_generate_fn_is_the_teachers_dense_output(tiny_config):
    from mlrelabel.methods import common

    model = common.build_model(tiny_config, 10)
    variables = common.init_variables(model, tiny_config, 0)
    images = np.random.default_rng(1).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    mean, std = tiny_config.data.mean, tiny_config.data.std
    gen = jax.jit(label_maps.make_generate_fn(model, k=3, map_size=2, image_size=16, mean=mean, std=std))
    scores, classes = gen(variables, images)
    dense = model.apply(variables, augment.normalize(images, mean, std), dense=True)
    want_s, want_c = label_maps.dense_to_topk_maps(dense, 2, 3)
    assert scores.shape == (4, 3, 2, 2)
    np.testing.assert_allclose(np.asarray(scores), np.asarray(want_s), atol=1e-5)
    np.testing.assert_array_equal(np.asarray(classes), np.asarray(want_c))


def test_compose_boxes_numbers_and_flips():
    outer = np.asarray([[0.2, 0.4, 0.6, 0.8]] * 2, np.float32)
    inner = np.asarray([[0.0, 0.0, 0.5, 0.25]] * 2, np.float32)
    got = np.asarray(label_maps.compose_boxes(outer, inner, np.asarray([False, True])))
    np.testing.assert_allclose(got[0], [0.2, 0.4, 0.4, 0.5], atol=1e-6)
    np.testing.assert_allclose(got[1], [0.2, 0.7, 0.4, 0.8], atol=1e-6)  # mirrored inside the crop
    full = np.asarray([[0, 0, 1, 1]] * 2, np.float32)
    np.testing.assert_allclose(np.asarray(label_maps.compose_boxes(full, inner)), inner, atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(label_maps.compose_boxes(outer, full, np.asarray([True, True]))), outer
    )


def test_compose_boxes_locates_the_pixels_of_an_augmented_crop():
    """Ramp images (channel 0 = row centre, 1 = column centre, as fractions): after random-resized-crop + flip,
    the pixels inside a CutMix box of the crop show the centre of the composed box in the source image."""
    size, batch = 64, 16
    centres = (np.arange(size) + 0.5) / size
    ramp = np.stack(np.broadcast_arrays(centres[:, None], centres[None, :]) + (np.zeros((size, size)),), -1)
    images = jnp.asarray(np.broadcast_to(ramp, (batch, size, size, 3)), jnp.float32)
    out, boxes, flipped = augment.random_resized_crop_flip(
        jax.random.key(5), images, (0.3, 1.0), (3 / 4, 4 / 3)
    )
    assert np.asarray(flipped).any() and not np.asarray(flipped).all()
    inner = np.asarray(
        ops_boxes.random_boxes(jax.random.key(6), batch, 1, scale=(0.1, 0.3), ratio=(0.75, 1.33))
    )[:, 0]
    src = np.asarray(label_maps.compose_boxes(boxes, inner, flipped))
    out = np.asarray(out)
    for i in range(batch):
        r0, c0, r1, c1 = np.rint(inner[i] * size).astype(int)
        seen = out[i, r0:r1, c0:c1, :2].reshape(-1, 2).mean(0)
        want = [(src[i, 0] + src[i, 2]) / 2, (src[i, 1] + src[i, 3]) / 2]
        np.testing.assert_allclose(seen, want, atol=1.5 / size)


def _uniform_maps(batch, num_classes, k=2, r=3):
    """Image i's map: class i with score 4 everywhere, class (i + 1) % C with score 1."""
    scores = np.zeros((batch, k, r, r), np.float32)
    scores[:, 0], scores[:, 1] = 4.0, 1.0
    classes = np.zeros((batch, k, r, r), np.int32)
    classes[:, 0] = np.arange(batch)[:, None, None] % num_classes
    classes[:, 1] = (np.arange(batch)[:, None, None] + 1) % num_classes
    return {'map_scores': scores, 'map_classes': classes}


def test_transform_pools_the_crop_box_and_mixes_by_pasted_area():
    batch, size, num_classes = 8, 12, 8
    maps = _uniform_maps(batch, num_classes)
    images = jnp.asarray(
        np.broadcast_to(np.arange(batch, dtype=np.float32)[:, None, None, None], (batch, size, size, 3))
    )
    boxes = jnp.asarray(
        ops_boxes.random_boxes(jax.random.key(0), batch, 1, scale=(0.3, 1.0), ratio=(0.75, 1.33))[:, 0]
    )
    flipped = jnp.asarray(np.arange(batch) % 2 == 0)
    plain = label_maps.make_pooling_transform(num_classes)
    out, target = plain(images, maps, boxes, flipped, jax.random.key(1), 0)
    want = label_pooling.label_pooling(
        label_pooling.topk_to_dense(maps['map_scores'], maps['map_classes'], num_classes), boxes
    )
    np.testing.assert_allclose(np.asarray(target), np.asarray(want), atol=1e-6)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(images))

    mix = jax.jit(
        label_maps.make_pooling_transform(num_classes, cutmix=label_maps.CutMixOptions(True, until_step=10))
    )
    out, target = mix(images, maps, boxes, flipped, jax.random.key(2), 3)
    out, target = np.asarray(out), np.asarray(target)
    np.testing.assert_allclose(target.sum(1), 1.0, atol=1e-5)
    z = np.exp(4.0) + np.exp(1.0) + num_classes - 2  # uniform maps: softmax of the scores

    def q(m):
        row = np.full(num_classes, 1 / z)
        row[m], row[(m + 1) % num_classes] = np.exp(4.0) / z, np.exp(1.0) / z
        return row

    mixed_any = False
    for i in range(batch):
        pasted = out[i, ..., 0] != i
        lam = 1.0 - pasted.mean()
        partner = set(np.unique(out[i, ..., 0][pasted]).astype(int)) or {i}
        assert len(partner) == 1
        j = partner.pop()
        mixed_any |= j != i
        np.testing.assert_allclose(target[i], lam * q(i) + (1 - lam) * q(j), atol=1e-4)
    assert mixed_any
    # CutMix is off from `cutmix_until_step` on.
    out, target = mix(images, maps, boxes, flipped, jax.random.key(2), 10)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(images))
    np.testing.assert_allclose(np.asarray(target), np.asarray(want), atol=1e-6)


def test_transform_pools_the_pasted_region_of_the_partner():
    """Partner maps split top/bottom between two classes: the pasted share of each class follows the part
    of the partner's source image that the CutMix box covers, through its crop box."""
    batch, size, num_classes = 16, 16, 4
    scores = np.full((batch, 1, 8, 8), 6.0, np.float32)
    classes = np.zeros((batch, 1, 8, 8), np.int32)
    classes[:, :, 4:] = 1  # top half class 0, bottom half class 1
    maps = {'map_scores': scores, 'map_classes': classes}
    images = jnp.zeros((batch, size, size, 3))
    boxes = jnp.asarray(np.tile([[0.5, 0.0, 1.0, 1.0]], (batch, 1)), jnp.float32)  # every crop: bottom half
    mix = label_maps.make_pooling_transform(num_classes, cutmix=label_maps.CutMixOptions(True, until_step=1))
    _, target = mix(images, maps, boxes, jnp.zeros(batch, bool), jax.random.key(3), 0)
    # Both the kept crop and any pasted region lie in the bottom half: class 0 never gets mass.
    one = np.exp(6.0) / (np.exp(6.0) + num_classes - 1)
    np.testing.assert_allclose(np.asarray(target)[:, 1], one, atol=2e-3)
