"""VGG-16 (with and without batch norm), Inception-v3 and EfficientNet-B0 (`mlrelabel.models.zoo`):
torchvision's parameter counts, the interface every method relies on (dense maps, MC dropout), the image-size
rule, torchvision weight import (logits equal to torchvision's when torch is installed), a smoke relabel
run."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlrelabel.models import MODEL_NAMES, get_model, to_torchvision
from mlrelabel.models.torchvision import from_torchvision
from tests.helpers import ROOT

NEW = ('vgg16', 'vgg16_bn', 'inception_v3', 'efficientnet_b0')


def _count(name: str, **options) -> int:
    """Parameters of `name` at 1000 classes, from shapes only (nothing is materialised)."""
    model = get_model(name, 1000, **options)
    side = 299 if name == 'inception_v3' else 224
    shapes = jax.eval_shape(
        lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, side, side, 3)), train=False)
    )
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(shapes['params']))


@pytest.mark.parametrize(
    'name, options, expected',
    [
        ('vgg16', {}, 138_357_544),
        ('vgg16_bn', {}, 138_365_992),
        ('inception_v3', {}, 27_161_264),  # torchvision's default: with the auxiliary head
        ('inception_v3', {'aux_logits': False}, 23_834_568),
        ('efficientnet_b0', {}, 5_288_548),
    ],
)
def test_parameter_counts_equal_torchvisions(name, options, expected):
    assert _count(name, **options) == expected


def test_names_and_options():
    assert set(NEW) <= set(MODEL_NAMES)
    with pytest.raises(ValueError, match="unknown option.*'small_stem'"):
        get_model('vgg16', 10, small_stem=True)
    with pytest.raises(ValueError, match='dropout_rate must be in'):
        get_model('efficientnet_b0', 10, dropout_rate=1.5)
    with pytest.raises(ValueError, match='width must be a positive int'):
        get_model('inception_v3', 10, width=0)


def _init(model, side):
    return jax.jit(lambda k: model.init(k, jnp.zeros((1, side, side, 3)), train=False))(jax.random.PRNGKey(0))


@pytest.mark.parametrize(
    'name, width, side', [('vgg16_bn', 4, 48), ('inception_v3', 4, 80), ('efficientnet_b0', 8, 40)]
)
def test_interface_dense_and_mc_dropout(name, width, side):
    model = get_model(name, 5, width=width, dropout_rate=0.5)
    variables = _init(model, side)
    x = jax.random.normal(jax.random.PRNGKey(1), (2, side, side, 3))
    logits = model.apply(variables, x)
    dense = model.apply(variables, x, dense=True)
    assert logits.shape == (2, 5) and dense.ndim == 4 and dense.shape[0] == 2 and dense.shape[3] == 5
    if name != 'vgg16_bn':  # a linear head on pooled features: the dense map averages to the logits
        np.testing.assert_allclose(dense.mean(axis=(1, 2)), logits, rtol=1e-4, atol=1e-4)
    # MC dropout: backbone once + T classifier draws == the full forward pass with the same key.
    key = jax.random.PRNGKey(2)
    full = model.apply(variables, x, dropout=True, rngs={'dropout': key})
    feats = model.apply(variables, x, method='embed')
    split = model.apply(variables, feats, method='classify', dropout=True, rngs={'dropout': key})
    np.testing.assert_allclose(full, split, rtol=1e-5, atol=1e-5)
    assert not np.allclose(full, logits, rtol=1e-3, atol=0)  # dropout is active
    # Training mode updates the batch statistics (and draws stochastic depth / dropout).
    _, updates = model.apply(variables, x, train=True, mutable=['batch_stats'], rngs={'dropout': key})
    assert jax.tree.structure(updates['batch_stats']) == jax.tree.structure(variables['batch_stats'])


def test_vgg_small_inputs_and_dense_map():
    model = get_model('vgg16', 3, width=4)
    variables = _init(model, 32)
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 32, 32, 3))
    # At 32 px the last map is 1x1: the dense map is the logits.
    np.testing.assert_allclose(
        model.apply(variables, x, dense=True)[:, 0, 0], model.apply(variables, x), atol=1e-5
    )
    # A crop under 32 px (the relabel loop's 0.7 x 32 px) is resized up to 32 px first.
    small = jax.image.resize(x, (2, 22, 22, 3), 'linear')
    np.testing.assert_allclose(
        model.apply(variables, small),
        model.apply(variables, jax.image.resize(small, (2, 32, 32, 3), 'linear')),
        atol=1e-5,
    )
    assert model.apply(variables, jnp.zeros((1, 96, 96, 3)), dense=True).shape == (1, 3, 3, 3)


def test_image_size_rule():
    from mlrelabel.config import recipes
    from mlrelabel.validation import rules

    def problems(name, size):
        c = recipes.load('mc_dropout:smoke')
        c.model.name, c.data.image_size = name, size
        return rules._image_fits_model(c, None)

    assert problems('vgg16', 32) == [] and problems('efficientnet_b0', 32) == []
    assert problems('inception_v3', 80) == []
    (message,) = problems('inception_v3', 32)
    assert 'config.data.image_size=32' in message and 'at least 75 px' in message
    (message,) = problems('vgg16_bn', 16)
    assert 'at least 32 px' in message


@pytest.mark.parametrize('name', NEW)
def test_export_import_round_trip_without_torch(name):
    model = get_model(name, 4, width=4 if name != 'efficientnet_b0' else 8)
    side = 299 if name == 'inception_v3' else 32
    shapes = jax.eval_shape(
        lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, side, side, 3)), train=False)
    )
    rng = np.random.default_rng(0)
    variables = jax.tree.map(lambda s: rng.uniform(0.5, 1.5, s.shape).astype(np.float32), shapes)
    sd = to_torchvision(variables)
    head = {'vgg16': 'classifier.6', 'vgg16_bn': 'classifier.6', 'efficientnet_b0': 'classifier.1'}.get(
        name, 'fc'
    )
    np.testing.assert_array_equal(sd[f'{head}.weight'], variables['params']['fc']['kernel'].T)
    back = from_torchvision(sd, name)
    assert jax.tree.structure(back) == jax.tree.structure(variables)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(variables)):
        np.testing.assert_array_equal(a, b)


def _torchvision_net(torch, torchvision, name, side):
    """torchvision's `name` with seeded random weights, BN affine parameters and running statistics of
    its own activations (cumulative averages over two batches), in eval mode."""
    torch.manual_seed(0)
    net = getattr(torchvision.models, name)(num_classes=10)
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for m in bns:
            m.momentum = None
            m.reset_running_stats()
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.2, 0.2)
    aux = getattr(net, 'AuxLogits', None)
    if aux is not None:
        net.AuxLogits = None  # needs 299 px in training mode; its statistics are set below
    net.train()
    with torch.no_grad():
        for _ in range(2):
            net(torch.randn(4, 3, side, side))
        for m in bns:  # the auxiliary head's: random
            if not m.num_batches_tracked:
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    if aux is not None:
        net.AuxLogits = aux
    return net.eval()


@pytest.mark.parametrize(
    'name, side', [('vgg16', 32), ('vgg16_bn', 32), ('inception_v3', 192), ('efficientnet_b0', 64)]
)
def test_logits_match_torchvision_on_the_same_random_weights(name, side):
    torch = pytest.importorskip('torch')
    torchvision = pytest.importorskip('torchvision')
    net = _torchvision_net(torch, torchvision, name, side)
    x = np.random.default_rng(0).normal(size=(2, 3, side, side)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    sd = {k: v.numpy() for k, v in net.state_dict().items()}
    variables = from_torchvision(sd, name)
    model = get_model(name, 10)
    got = np.asarray(model.apply(variables, jnp.asarray(x.transpose(0, 2, 3, 1))))
    assert np.abs(got - expected).max() <= 1e-3
    assert set(to_torchvision(variables)) == {k for k in sd if not k.endswith('num_batches_tracked')}
    if name == 'inception_v3':  # without the auxiliary head its keys are dropped, as torchvision does
        without = from_torchvision(sd, name, aux_logits=False)
        assert 'AuxLogits' not in without['params']
        np.testing.assert_allclose(
            get_model(name, 10, aux_logits=False).apply(without, jnp.asarray(x.transpose(0, 2, 3, 1))),
            got,
            atol=1e-5,
        )


def _smoke_relabel(tmp_path, name):
    workdir = tmp_path / name
    env = dict(os.environ, PYTHONPATH=ROOT)
    cmd = [
        sys.executable, '-m', 'mlrelabel.main', '--config=mc_dropout:smoke', f'--config.model.name={name}',
        f'--workdir={workdir}',
    ]  # fmt: skip
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


@pytest.mark.slow
@pytest.mark.parametrize('name', ['vgg16', 'efficientnet_b0'])
def test_smoke_relabel_runs(tmp_path, name):
    workdir = _smoke_relabel(tmp_path, name)
    import json

    config = json.load(open(workdir / 'config.json'))
    assert config['model']['name'] == name
    assert any(n.startswith('labels') and n.endswith('.json') for n in os.listdir(workdir))
