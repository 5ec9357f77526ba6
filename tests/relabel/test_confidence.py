"""Confidence of crops (`mlrelabel.relabel.confidence`) on a tiny ResNet at 16x16, CPU: heads, naive, MC
dropout, MC perturbation, sample summaries, aggregation over crops."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlrelabel.models.resnet import get_resnet
from mlrelabel.relabel import confidence as cf

NUM_CLASSES = 5


@pytest.fixture(scope="module")
def setup():
    """resnet_tiny (dropout 0.5) with perturbed BN statistics, 16x16 'normalised' crops, and the
    jitted reference pieces shared by the tests (compiled once per module)."""
    model = get_resnet("resnet_tiny", NUM_CLASSES, dropout_rate=0.5, small_stem=True)
    images = jax.random.normal(jax.random.key(1), (4, 16, 16, 3), jnp.float32)

    # Parameters drawn on the host from the init shapes (He-scaled kernels, BN parameters and
    # non-trivial running statistics near their defaults): compiling the random initialisers of
    # `model.init` costs far more CPU time than these tests need.
    shapes = jax.eval_shape(lambda k: model.init(k, images, train=False), jax.random.key(0))
    rng = np.random.default_rng(0)

    def fill(path, leaf):
        name = jax.tree_util.keystr(path)
        if "kernel" in name:
            fan_in = int(np.prod(leaf.shape[:-1]))
            return rng.normal(0.0, np.sqrt(2.0 / fan_in), leaf.shape).astype(np.float32)
        if "scale" in name or "var" in name:
            return (1.0 + 0.2 * rng.random(leaf.shape)).astype(np.float32)
        return (0.1 * rng.normal(size=leaf.shape)).astype(np.float32)  # bias, running mean

    variables = jax.tree_util.tree_map_with_path(fill, shapes)
    logits = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, images)
    fast = jax.jit(lambda v, x, k: cf.mc_dropout_samples(model, v, x, k, 6, "softmax"))
    return {
        "model": model,
        "variables": variables,
        "images": images,
        "logits": logits,
        "fast": fast,
    }


def test_probabilities_follow_head():
    logits = jnp.array([[2.0, -1.0, 0.5], [0.0, 0.0, 0.0]])
    soft = cf.head_probabilities(logits, "softmax")
    np.testing.assert_allclose(soft.sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(soft[1], 1 / 3, rtol=1e-6)
    sig = cf.head_probabilities(logits, "sigmoid")
    np.testing.assert_allclose(sig, 1 / (1 + np.exp(-np.asarray(logits))), rtol=1e-6)
    with pytest.raises(ValueError, match="head"):
        cf.head_probabilities(logits, "relu")


def test_naive_equals_eval_forward(setup):
    model, variables, images = setup["model"], setup["variables"], setup["images"]
    both = jax.jit(
        lambda v, x: (
            cf.naive_confidence(model, v, x, "softmax"),
            cf.naive_confidence(model, v, x, "sigmoid"),
        )
    )
    soft, sig = both(variables, images)
    assert soft.shape == (4, NUM_CLASSES)
    np.testing.assert_allclose(soft, jax.nn.softmax(setup["logits"]), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(sig, jax.nn.sigmoid(setup["logits"]), rtol=1e-6, atol=1e-7)


def test_mc_dropout_embed_path_equals_full_passes(setup):
    model, variables, images, fast = (setup[k] for k in ("model", "variables", "images", "fast"))
    key = jax.random.key(7)
    full = jax.jit(lambda v, x, k: cf.mc_dropout_full_samples(model, v, x, k, 6, "softmax"))
    a = fast(variables, images, key)
    b = full(variables, images, key)
    assert a.shape == b.shape == (6, 4, NUM_CLASSES)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # Dropout is active: samples differ from each other and from the deterministic pass.
    naive = jax.nn.softmax(setup["logits"])
    assert float(jnp.max(jnp.abs(a - a[0]))) > 1e-4
    assert float(jnp.max(jnp.abs(a - naive[None]))) > 1e-4
    # Another key gives other samples; the same key the same ones.
    c = fast(variables, images, jax.random.key(8))
    assert float(jnp.max(jnp.abs(a - c))) > 1e-4
    np.testing.assert_array_equal(fast(variables, images, key), a)


def test_perturbation_with_zero_magnitudes_equals_naive(setup):
    model, variables, images = setup["model"], setup["variables"], setup["images"]
    zero = dict(flip=0.0, scale=0.0, shift=0.0, brightness=0.0, contrast=0.0, noise=0.0)
    sample = jax.jit(
        lambda v, x, k: cf.head_probabilities(cf.mc_perturbation_logits(model, v, x, k, 3, zero), "softmax")
    )
    probs = sample(variables, images, jax.random.key(3))
    naive = jax.nn.softmax(setup["logits"])
    assert probs.shape == (3, 4, NUM_CLASSES)
    np.testing.assert_allclose(probs, jnp.broadcast_to(naive, probs.shape), rtol=1e-6, atol=1e-7)


def test_summarize_samples_hand_cases():
    uniform = jnp.full((1, 2, 4), 0.25)
    s = cf.summarize_samples(uniform)
    assert s["mean"].shape == (2, 4) and s["std"].shape == (2, 4)
    assert s["entropy"].shape == (2,) and s["mutual_information"].shape == (2,)
    np.testing.assert_allclose(s["entropy"], math.log(4), rtol=1e-6)
    np.testing.assert_array_equal(s["std"], 0.0)
    np.testing.assert_array_equal(s["mutual_information"], 0.0)
    peaked = jnp.array([[[1.0, 0.0, 0.0]]])
    np.testing.assert_allclose(cf.summarize_samples(peaked)["entropy"], 0.0, atol=1e-7)
    # Two confident samples that disagree: mean uniform over 2 classes, MI = log 2 (BALD).
    disagree = jnp.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    d = cf.summarize_samples(disagree)
    np.testing.assert_allclose(d["mean"], [[0.5, 0.5]])
    np.testing.assert_allclose(d["std"], [[0.5, 0.5]])
    np.testing.assert_allclose(d["entropy"], [math.log(2)], rtol=1e-6)
    np.testing.assert_allclose(d["mutual_information"], [math.log(2)], rtol=1e-6)
    # Sigmoid head: sum of binary entropies, 3 classes at p = 0.5 -> 3 log 2.
    sig = cf.summarize_samples(jnp.full((1, 1, 3), 0.5), head="sigmoid")
    np.testing.assert_allclose(sig["entropy"], [3 * math.log(2)], rtol=1e-6)
    with pytest.raises(ValueError, match="samples, batch, classes"):
        cf.summarize_samples(jnp.ones((2, 3)))


def test_aggregate_crops_max_mean_mask():
    per_crop = jnp.array(
        [
            [[0.1, 0.9], [0.5, 0.2], [0.8, 0.0]],
            [[0.3, 0.3], [0.7, 0.1], [0.9, 0.9]],
        ]
    )  # [N=2, K=3, C=2]
    np.testing.assert_allclose(cf.aggregate_crops(per_crop, "max"), [[0.8, 0.9], [0.9, 0.9]])
    np.testing.assert_allclose(
        cf.aggregate_crops(per_crop, "mean"), [[1.4 / 3, 1.1 / 3], [1.9 / 3, 1.3 / 3]], rtol=1e-6
    )
    mask = jnp.array([[True, True, False], [False, False, False]])
    np.testing.assert_allclose(cf.aggregate_crops(per_crop, "max", mask), [[0.5, 0.9], [0.0, 0.0]])
    np.testing.assert_allclose(
        cf.aggregate_crops(per_crop, "mean", mask.astype(jnp.float32)),
        [[0.3, 0.55], [0.0, 0.0]],
        rtol=1e-6,
    )
    # Per-image quantities [N, K] aggregate too.
    np.testing.assert_allclose(cf.aggregate_crops(per_crop[..., 0], "max", mask), [0.5, 0.0])
    with pytest.raises(ValueError, match="how"):
        cf.aggregate_crops(per_crop, "median")
    with pytest.raises(ValueError, match="mask"):
        cf.aggregate_crops(per_crop, "max", jnp.ones((2, 2)))


def test_aggregate_crops_top_k_is_the_mean_of_the_k_best_crops():
    per_crop = jnp.array(
        [
            [[0.1, 0.9], [0.5, 0.2], [0.8, 0.0], [-1.0, 0.4]],
            [[0.3, 0.3], [0.7, 0.1], [0.9, 0.9], [0.2, 0.8]],
        ]
    )  # [N=2, K=4, C=2]
    np.testing.assert_allclose(cf.aggregate_crops(per_crop, "top2"), [[0.65, 0.65], [0.8, 0.85]], rtol=1e-6)
    np.testing.assert_allclose(cf.aggregate_crops(per_crop, "top1"), cf.aggregate_crops(per_crop, "max"))
    # k >= K: the mean of every crop.
    np.testing.assert_allclose(
        cf.aggregate_crops(per_crop, "top9"), cf.aggregate_crops(per_crop, "mean"), rtol=1e-6
    )
    # Masked crops never count; an image with fewer valid crops than k averages those it has; none gives 0.
    mask = jnp.array([[True, False, False, True], [False, False, False, False]])
    np.testing.assert_allclose(
        cf.aggregate_crops(per_crop, "top3", mask), [[-0.45, 0.65], [0.0, 0.0]], rtol=1e-6
    )
    np.testing.assert_allclose(cf.aggregate_crops(per_crop[..., 1], "top2", mask), [0.65, 0.0], rtol=1e-6)
    # It stays finite and exact under jit and for -inf-free large negative log-odds.
    jitted = jax.jit(lambda x: cf.aggregate_crops(x, "top3"))
    np.testing.assert_allclose(
        jitted(per_crop - 50.0), cf.aggregate_crops(per_crop, "top3") - 50.0, rtol=1e-6
    )
    for bad in ("top0", "top01", "top", "topk", "top-1"):
        with pytest.raises(ValueError, match="top<k>"):
            cf.aggregate_crops(per_crop, bad)


def test_confidence_fn_methods_and_errors(setup):
    model, variables, images = setup["model"], setup["variables"], setup["images"]
    key = jax.random.key(5)
    naive = cf.confidence_fn("naive", model, "softmax")(variables, images, key)
    assert set(naive) >= {"mean", "std", "entropy", "mutual_information"}
    np.testing.assert_allclose(naive["mean"], jax.nn.softmax(setup["logits"]), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(naive["std"], 0.0)
    np.testing.assert_array_equal(naive["mutual_information"], 0.0)

    mc = cf.confidence_fn("mc_dropout", model, "softmax", num_samples=6)(variables, images, key)
    expected = cf.summarize_samples(setup["fast"](variables, images, key))
    assert mc["mean"].shape == (4, NUM_CLASSES) and mc["entropy"].shape == (4,)
    for name in ("mean", "std", "entropy", "mutual_information"):
        np.testing.assert_allclose(mc[name], expected[name], rtol=1e-5, atol=1e-6)
    assert float(jnp.max(mc["mutual_information"])) > 0

    with pytest.raises(ValueError, match="unknown method"):
        cf.confidence_fn("ensemble", model, "softmax", 4)
    with pytest.raises(ValueError, match="head"):
        cf.confidence_fn("naive", model, "tanh")
    with pytest.raises(ValueError, match="num_samples"):
        cf.confidence_fn("mc_dropout", model, "softmax", 0)
    no_dropout = get_resnet("resnet_tiny", NUM_CLASSES, dropout_rate=0.0, small_stem=True)
    for method in ("mc_dropout", "mc_dropout_full"):
        with pytest.raises(ValueError, match="dropout_rate"):
            cf.confidence_fn(method, no_dropout, "softmax", 4)
    # Perturbation sampling does not need dropout; it spreads the per-class sigmoid probabilities.
    cf.confidence_fn("mc_perturbation", no_dropout, "sigmoid", 2)
    pert = cf.confidence_fn("mc_perturbation", model, "sigmoid", 2, {"noise": 0.5})(variables, images, key)
    assert pert["mean"].shape == (4, NUM_CLASSES) and pert["mutual_information"].shape == (4,)
    assert float(jnp.max(pert["std"])) > 1e-4
    assert np.all(np.asarray(pert["entropy"]) <= NUM_CLASSES * math.log(2) + 1e-5)
