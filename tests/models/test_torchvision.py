"""torchvision ResNet weights -> our ResNets: the name/layout mapping (without torch), errors, and the
logits of torchvision itself on the same random weights and input (when torch is installed)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlrelabel.models import get_model
from mlrelabel.models.torchvision import from_torchvision, load_state_dict, to_torchvision


@pytest.fixture(scope='module')
def tiny():
    model = get_model('resnet_tiny', 5, width=8)
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3)), train=False))
    # Random values everywhere (nothing to compile), so that any swapped or mis-transposed leaf would show.
    rng = np.random.default_rng(0)
    variables = jax.tree.map(lambda s: rng.uniform(0.5, 1.5, s.shape).astype(np.float32), shapes)
    return model, variables


def test_fake_state_dict_maps_back_exactly(tiny, tmp_path):
    model, variables = tiny
    sd = to_torchvision(variables)
    # torchvision layout, checked by hand on a few keys.
    kernel = variables['params']['layer2_0']['downsample_0']['kernel']  # [1, 1, I, O]
    assert sd['layer2.0.downsample.0.weight'].shape == (kernel.shape[3], kernel.shape[2], 1, 1)
    conv = variables['params']['layer1_0']['conv2']['kernel']
    assert sd['layer1.0.conv2.weight'][3, 2, 0, 1] == conv[0, 1, 2, 3]
    np.testing.assert_array_equal(sd['fc.weight'], variables['params']['fc']['kernel'].T)
    np.testing.assert_array_equal(
        sd['layer3.0.downsample.1.running_var'], variables['batch_stats']['layer3_0']['downsample_1']['var']
    )
    np.testing.assert_array_equal(sd['bn1.weight'], variables['params']['bn1']['scale'])
    sd['layer1.0.bn1.num_batches_tracked'] = np.array(7)  # dropped
    sd = {'module.' + k: v for k, v in sd.items()}  # DataParallel prefix, stripped
    back = from_torchvision(sd, 'resnet_tiny')
    assert jax.tree.structure(back) == jax.tree.structure(variables)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(variables)):
        np.testing.assert_array_equal(a, b)
    # .npz files load without torch.
    path = tmp_path / 'w.npz'
    np.savez(path, **to_torchvision(variables))
    assert set(load_state_dict(path)) == set(to_torchvision(variables))
    assert jax.tree.structure(from_torchvision(str(path), 'resnet_tiny')) == jax.tree.structure(variables)


def test_mismatches_are_named(tiny, tmp_path):
    _, variables = tiny
    sd = to_torchvision(variables)
    missing = {k: v for k, v in sd.items() if k != 'layer4.0.bn2.running_mean'}
    with pytest.raises(KeyError, match='batch_stats/layer4_0/bn2/mean'):
        from_torchvision(missing, 'resnet_tiny')
    extra = dict(sd, **{'layer5.0.conv1.weight': np.zeros((8, 8, 3, 3))})
    with pytest.raises(KeyError, match=r'unexpected keys \[.layer5.0.conv1.weight.\]'):
        from_torchvision(extra, 'resnet_tiny')
    wrong = dict(sd, **{'layer1.0.conv1.weight': np.zeros((8, 8, 1, 1))})
    with pytest.raises(ValueError, match=r'layer1.0.conv1.weight has shape \(8, 8, 1, 1\)'):
        from_torchvision(wrong, 'resnet_tiny')
    with pytest.raises(KeyError, match='missing variables'):  # resnet_small has more blocks per stage
        from_torchvision(sd, 'resnet_small')
    with pytest.raises(FileNotFoundError):
        from_torchvision(str(tmp_path / 'none.pth'), 'resnet18')


def test_logits_match_torchvision_on_the_same_random_weights():
    torch = pytest.importorskip('torch')
    torchvision = pytest.importorskip('torchvision')
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=7)
    with torch.no_grad():  # non-trivial running statistics
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    net.eval()
    x = np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    variables = from_torchvision(net.state_dict(), 'resnet18')
    got = get_model('resnet18', 7).apply(variables, jnp.asarray(x.transpose(0, 2, 3, 1)))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-4, atol=1e-4)
