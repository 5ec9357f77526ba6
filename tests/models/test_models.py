"""Tests for mlrelabel.models: torchvision-equal sizes and names, the apply interface, dropout paths, dtypes.

Large models are only traced (jax.eval_shape); real compute uses the tiny preset on 32x32 images.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlrelabel.models import MODEL_NAMES, ResNet, get_model

NUM_CLASSES = 5
BATCH = 4


def _count(tree) -> int:
    return int(sum(math.prod(x.shape) for x in jax.tree.leaves(tree)))


@functools.lru_cache(maxsize=None)
def _abstract_init(name, num_classes, size=224, **options):
    """Shapes and dtypes of `init` for a named model (traced only, cached across tests)."""
    model = get_model(name, num_classes, **options)
    images = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
    return jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), images)


def _init(models, images):
    """Real inits of several models in one jitted program, with the 'rbg' PRNG.

    Compiling the per-shape normal samplers dominates CPU test time; one program with the 'rbg'
    generator (XLA shares the identical samples across models) is far cheaper than eager threefry.
    """
    return jax.jit(lambda key, x: [m.init(key, x, train=False) for m in models])(
        jax.random.key(0, impl="rbg"), images
    )


@pytest.fixture(scope="module")
def images():
    return jax.random.normal(jax.random.key(1), (BATCH, 32, 32, 3), jnp.float32)


@pytest.fixture(scope="module")
def tiny_inits(images):
    """Tiny preset with head dropout, its fresh variables, and those with zero_init_residual."""
    model = get_model("resnet_tiny", NUM_CLASSES, dropout_rate=0.5)
    zero = get_model("resnet_tiny", NUM_CLASSES, dropout_rate=0.5, zero_init_residual=True)
    variables, zero_variables = _init([model, zero], images)
    return model, variables, zero_variables


@pytest.fixture(scope="module")
def tiny_init(tiny_inits):
    return tiny_inits[:2]


@pytest.fixture(scope="module")
def tiny(tiny_init):
    """Same model with batch stats after one train-mode pass, so eval-mode BN is not the identity."""
    model, variables = tiny_init
    x = jax.random.normal(jax.random.key(2), (BATCH, 32, 32, 3), jnp.float32) + 0.5
    _, updates = model.apply(variables, x, train=True, dropout=False, mutable=["batch_stats"])
    return model, {"params": variables["params"], "batch_stats": updates["batch_stats"]}


def test_public_names():
    assert MODEL_NAMES == (
        "resnet18",
        "resnet34",
        "resnet50",
        "resnet101",
        "resnet152",
        "resnet_tiny",
        "resnet_small",
        "vgg16",
        "vgg16_bn",
        "inception_v3",
        "efficientnet_b0",
    )
    assert isinstance(get_model("resnet_small", 3), ResNet)


@pytest.mark.parametrize("name,expected", [("resnet50", 25_557_032), ("resnet18", 11_689_512)])
def test_param_counts_match_torchvision(name, expected):
    variables = _abstract_init(name, 1000)
    assert set(variables) == {"params", "batch_stats"}
    assert _count(variables["params"]) == expected
    # Running statistics live in batch_stats only: a mean and a var per BN scale.
    stats = jax.tree_util.tree_flatten_with_path(variables["batch_stats"])[0]
    assert {str(path[-1].key) for path, _ in stats} == {"mean", "var"}
    scales = [
        x
        for path, x in jax.tree_util.tree_flatten_with_path(variables["params"])[0]
        if path[-1].key == "scale"
    ]
    assert _count(variables["batch_stats"]) == 2 * _count(scales)


@pytest.mark.parametrize(
    "name,features",
    [("resnet18", 512), ("resnet34", 512), ("resnet50", 2048), ("resnet101", 2048), ("resnet152", 2048)],
)
def test_output_shapes_torchvision_names(name, features):
    """Traced only: logits [B, C], class maps [B, 7, 7, C] at 224, F = 512 (basic) or 2048."""
    model = get_model(name, 1000)
    variables = _abstract_init(name, 1000)
    images = jax.ShapeDtypeStruct((2, 224, 224, 3), jnp.float32)
    logits = jax.eval_shape(lambda v, x: model.apply(v, x), variables, images)
    assert logits.shape == (2, 1000) and logits.dtype == jnp.float32
    if features == 512 or name == "resnet50":  # tracing the deepest nets twice adds seconds
        dense = jax.eval_shape(lambda v, x: model.apply(v, x, dense=True), variables, images)
        assert dense.shape == (2, 7, 7, 1000) and dense.dtype == jnp.float32
    assert variables["params"]["fc"]["kernel"].shape == (features, 1000)
    assert model.num_features == features


def test_resnet50_is_v1_5_and_stem_shapes():
    """Stride sits on the 3x3 conv of the bottleneck; 7x7/2 stem + 3x3/2 max-pool: 224 -> 112 -> 56."""
    model = get_model("resnet50", 1000)
    variables = _abstract_init("resnet50", 1000)
    images = jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32)
    _, state = jax.eval_shape(
        lambda v, x: model.apply(v, x, capture_intermediates=True, mutable=["intermediates"]),
        variables,
        images,
    )
    inter = state["intermediates"]
    assert inter["conv1"]["__call__"][0].shape == (1, 112, 112, 64)
    assert inter["layer1_0"]["__call__"][0].shape == (1, 56, 56, 256)
    block = inter["layer2_0"]
    assert block["conv1"]["__call__"][0].shape == (1, 56, 56, 128)  # 1x1, stride 1
    assert block["conv2"]["__call__"][0].shape == (1, 28, 28, 128)  # 3x3, stride 2
    assert block["downsample_0"]["__call__"][0].shape == (1, 28, 28, 512)
    assert inter["layer4_2"]["__call__"][0].shape == (1, 7, 7, 2048)


def test_parameter_names_map_to_torchvision():
    params = _abstract_init("resnet50", 1000)["params"]
    shapes = {
        "conv1/kernel": (7, 7, 3, 64),  # conv1.weight [64, 3, 7, 7]
        "bn1/scale": (64,),
        "layer1_0/conv1/kernel": (1, 1, 64, 64),
        "layer1_0/downsample_0/kernel": (1, 1, 64, 256),  # layer1.0.downsample.0.weight
        "layer1_0/downsample_1/scale": (256,),  # layer1.0.downsample.1.weight
        "layer3_5/conv2/kernel": (3, 3, 256, 256),
        "layer4_2/conv3/kernel": (1, 1, 512, 2048),
        "layer4_2/bn3/bias": (2048,),
        "fc/kernel": (2048, 1000),  # fc.weight [1000, 2048]
        "fc/bias": (1000,),
    }
    flat = {
        "/".join(str(k.key) for k in path): x.shape
        for path, x in jax.tree_util.tree_flatten_with_path(params)[0]
    }
    for key, shape in shapes.items():
        assert flat[key] == shape, key
    assert "downsample_0" not in params["layer1_1"]
    assert "layer3_6" not in params and "layer5_0" not in params
    # No conv has a bias (torchvision uses bias=False everywhere but fc).
    assert not [k for k in flat if "conv" in k.split("/")[-2] and k.endswith("bias")]
    r18 = _abstract_init("resnet18", 1000)["params"]
    assert "downsample_0" not in r18["layer1_0"]  # 64 -> 64, stride 1: identity shortcut
    assert r18["layer2_0"]["downsample_0"]["kernel"].shape == (1, 1, 64, 128)


def test_tiny_forward_eval_and_train(tiny_init, images):
    model = get_model("resnet_tiny", NUM_CLASSES)  # no dropout; same variable tree as the fixture
    variables = tiny_init[1]
    assert set(variables) == {"params", "batch_stats"}
    assert model.num_features == 128
    assert variables["params"]["conv1"]["kernel"].shape == (3, 3, 3, 16)  # small stem
    logits = model.apply(variables, images, train=False)
    assert logits.shape == (BATCH, NUM_CLASSES) and logits.dtype == jnp.float32
    assert np.all(np.isfinite(logits))
    assert model.apply(variables, images, method="feature_map").shape == (BATCH, 4, 4, 128)
    assert model.apply(variables, images, method="embed").shape == (BATCH, 128)

    # Strided 3x3 convs pad (1, 1) like torch, not 'SAME' (which pads (0, 1) on even inputs).
    _, state = model.apply(variables, images, capture_intermediates=True, mutable=["intermediates"])
    inter = state["intermediates"]
    block_in = inter["layer1_0"]["__call__"][0]  # [B, 32, 32, 16]
    expected = jax.lax.conv_general_dilated(
        block_in,
        variables["params"]["layer2_0"]["conv1"]["kernel"],
        (2, 2),
        ((1, 1), (1, 1)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    np.testing.assert_allclose(inter["layer2_0"]["conv1"]["__call__"][0], expected, rtol=1e-5, atol=1e-5)

    train_logits, updates = model.apply(variables, images, train=True, mutable=["batch_stats"])
    assert train_logits.shape == (BATCH, NUM_CLASSES)
    assert set(updates) == {"batch_stats"}
    assert jax.tree.structure(updates["batch_stats"]) == jax.tree.structure(variables["batch_stats"])
    # Batch statistics differ from the running ones at init, so train and eval outputs differ.
    assert not np.allclose(train_logits, logits)
    old_mean = variables["batch_stats"]["layer4_0"]["bn2"]["mean"]
    new_mean = updates["batch_stats"]["layer4_0"]["bn2"]["mean"]
    assert np.all(old_mean == 0.0) and np.any(new_mean != 0.0)


def test_batch_norm_momentum_and_epsilon(tiny_init, images):
    """Running stats move by torch momentum 0.1 (flax 0.9); eps 1e-5."""
    model, variables = tiny_init
    _, state = model.apply(
        variables,
        images,
        train=True,
        dropout=False,
        capture_intermediates=True,
        mutable=["batch_stats", "intermediates"],
    )
    y = np.asarray(state["intermediates"]["conv1"]["__call__"][0], np.float64)
    stats = state["batch_stats"]["bn1"]
    np.testing.assert_allclose(stats["mean"], 0.1 * y.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(stats["var"], 0.9 + 0.1 * y.var(axis=(0, 1, 2)), rtol=1e-4)
    bound = model.bind(variables)
    assert bound.bn1.epsilon == 1e-5 and bound.bn1.momentum == 0.9
    assert bound.layer1_0.dtype == jnp.float32


def test_dense_mean_equals_logits(tiny, images):
    model, variables = tiny
    dense = model.apply(variables, images, dense=True)
    assert dense.shape == (BATCH, 4, 4, NUM_CLASSES) and dense.dtype == jnp.float32
    logits = model.apply(variables, images)
    np.testing.assert_allclose(dense.mean(axis=(1, 2)), logits, rtol=1e-5, atol=1e-5)
    # Under dropout the same channel mask is shared by all locations, so linearity still holds.
    key = jax.random.key(3)
    dense_drop = model.apply(variables, images, dense=True, dropout=True, rngs={"dropout": key})
    logits_drop = model.apply(variables, images, dropout=True, rngs={"dropout": key})
    np.testing.assert_allclose(dense_drop.mean(axis=(1, 2)), logits_drop, rtol=1e-5, atol=1e-5)
    assert not np.allclose(dense_drop, dense)


def test_embed_then_classify_equals_call(tiny, images):
    model, variables = tiny
    feats = model.apply(variables, images, method="embed")
    assert feats.shape == (BATCH, 128) and feats.dtype == jnp.float32
    fmap = model.apply(variables, images, method="feature_map")
    np.testing.assert_allclose(fmap.mean(axis=(1, 2)), feats, rtol=1e-6, atol=1e-6)

    plain = model.apply(variables, images, train=False)
    np.testing.assert_array_equal(model.apply(variables, feats, method="classify"), plain)

    key = jax.random.key(4)
    via_call = model.apply(variables, images, train=False, dropout=True, rngs={"dropout": key})
    via_parts = model.apply(variables, feats, method="classify", dropout=True, rngs={"dropout": key})
    np.testing.assert_array_equal(via_call, via_parts)

    # MC dropout style: classify vmapped over keys under jit matches __call__ per key.
    keys = jax.random.split(jax.random.key(5), 3)
    mc = jax.jit(
        jax.vmap(
            lambda k: model.apply(variables, feats, method="classify", dropout=True, rngs={"dropout": k})
        )
    )(keys)
    for i in range(3):
        one = model.apply(variables, images, dropout=True, rngs={"dropout": keys[i]})
        np.testing.assert_allclose(mc[i], one, rtol=1e-5, atol=1e-5)


def test_dropout_is_active_only_when_asked(tiny, images):
    model, variables = tiny
    feats = model.apply(variables, images, method="embed")
    k1, k2 = jax.random.key(6), jax.random.key(7)

    def classify(**kw):
        return np.asarray(model.apply(variables, feats, method="classify", **kw))

    off = classify()
    on1 = classify(dropout=True, rngs={"dropout": k1})
    assert not np.allclose(on1, off)
    assert not np.allclose(on1, classify(dropout=True, rngs={"dropout": k2}))
    np.testing.assert_array_equal(on1, classify(dropout=True, rngs={"dropout": k1}))

    # dropout=None: active iff train (BN in train mode for all three calls below).
    def train_call(**kw):
        return np.asarray(model.apply(variables, images, train=True, mutable=["batch_stats"], **kw)[0])

    default = train_call(rngs={"dropout": k1})
    np.testing.assert_array_equal(default, train_call(dropout=True, rngs={"dropout": k1}))
    assert not np.allclose(default, train_call(dropout=False))
    # Inference default never touches the dropout rng; active dropout without one is an error.
    np.testing.assert_array_equal(model.apply(variables, images), model.apply(variables, images, train=False))
    with pytest.raises(Exception, match="dropout"):
        model.apply(variables, images, dropout=True)


def test_bfloat16_compute(tiny, images):
    model32, variables = tiny
    model16 = get_model("resnet_tiny", NUM_CLASSES, dropout_rate=0.5, dtype=jnp.bfloat16)
    fresh = _abstract_init("resnet_tiny", NUM_CLASSES, size=32, dtype=jnp.bfloat16)
    assert {x.dtype for x in jax.tree.leaves(fresh)} == {jnp.dtype(jnp.float32)}
    assert jax.tree.structure(fresh) == jax.tree.structure(variables)

    dense, feats, (_, updates) = jax.eval_shape(  # dtypes only: traced, not computed
        lambda v, x: (
            model16.apply(v, x, dense=True),
            model16.apply(v, x, method="embed"),
            model16.apply(v, x, train=True, dropout=False, mutable=["batch_stats"]),
        ),
        variables,
        images,
    )
    assert dense.dtype == jnp.float32 and feats.dtype == jnp.float32
    assert {x.dtype for x in jax.tree.leaves(updates)} == {jnp.dtype(jnp.float32)}
    bound = model16.bind(variables)
    assert bound.conv1.dtype == jnp.bfloat16 and bound.layer2_0.dtype == jnp.bfloat16

    logits16 = model16.apply(variables, images)
    assert logits16.dtype == jnp.float32

    logits32 = model32.apply(variables, images)
    err = float(jnp.max(jnp.abs(logits16 - logits32)))
    scale = float(jnp.max(jnp.abs(logits32)))
    assert err <= 0.05 * scale + 1e-3, (err, scale)
    assert err > 0.0  # really computed in bfloat16


def test_initialisation(tiny_inits):
    params = tiny_inits[1]["params"]
    kernel = np.asarray(params["layer4_0"]["conv2"]["kernel"])  # [3, 3, 128, 128]
    expected_std = math.sqrt(2.0 / (3 * 3 * 128))  # kaiming normal, fan_out, relu gain
    assert abs(kernel.std() / expected_std - 1.0) < 0.03
    assert abs(kernel.mean()) < 0.05 * expected_std
    bound = 1.0 / math.sqrt(128)  # torch Linear default: U(-1/sqrt(F), 1/sqrt(F))
    assert np.abs(params["fc"]["kernel"]).max() <= bound
    assert np.abs(params["fc"]["bias"]).max() <= bound and np.any(params["fc"]["bias"] != 0)
    for name in ("layer1_0", "layer4_0"):
        assert np.all(params[name]["bn2"]["scale"] == 1.0)
        assert np.all(params[name]["bn2"]["bias"] == 0.0)

    zparams = tiny_inits[2]["params"]
    for name in ("layer1_0", "layer2_0", "layer3_0", "layer4_0"):
        assert np.all(zparams[name]["bn2"]["scale"] == 0.0)
        assert np.all(zparams[name]["bn1"]["scale"] == 1.0)
        if name != "layer1_0":  # identity shortcut in layer1_0
            assert np.all(zparams[name]["downsample_1"]["scale"] == 1.0)
    bottleneck = _abstract_init("resnet50", 10, zero_init_residual=True)
    assert bottleneck["params"]["layer1_0"]["bn3"]["scale"].shape == (256,)


def test_options_width_and_stem():
    r18 = get_model("resnet18", 10, width=32, small_stem=True)
    variables = _abstract_init("resnet18", 10, size=32, width=32, small_stem=True)
    assert variables["params"]["conv1"]["kernel"].shape == (3, 3, 3, 32)
    assert variables["params"]["fc"]["kernel"].shape == (256, 10)
    fmap = jax.eval_shape(
        lambda v, x: r18.apply(v, x, method="feature_map"),
        variables,
        jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32),
    )
    assert fmap.shape == (1, 4, 4, 256)  # no stem downsampling
    small = get_model("resnet_small", 10)
    assert small.small_stem and small.width == 16 and tuple(small.stage_sizes) == (2, 2, 2, 2)
    big_stem = _abstract_init("resnet_tiny", 10, size=64, small_stem=False)
    assert big_stem["params"]["conv1"]["kernel"].shape == (7, 7, 3, 16)


def test_errors(images):
    with pytest.raises(ValueError, match="resnet999") as info:
        get_model("resnet999", 10)
    assert all(name in str(info.value) for name in MODEL_NAMES)
    with pytest.raises(ValueError, match="drop_rate"):
        get_model("resnet18", 10, drop_rate=0.1)
    with pytest.raises(ValueError, match="dropout_rate"):
        get_model("resnet18", 10, dropout_rate=1.0)
    with pytest.raises(ValueError, match="num_classes"):
        get_model("resnet18", 0)
    model = get_model("resnet_tiny", 3)
    with pytest.raises(TypeError, match="floating"):
        model.init(jax.random.key(0), (images * 255).astype(jnp.uint8), train=False)
    with pytest.raises(ValueError, match="batch, height, width"):
        model.init(jax.random.key(0), images[0], train=False)
