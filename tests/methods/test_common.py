"""`model.pretrained`: torchvision weights (a state_dict in torchvision's key layout, here written with numpy as
.npz) start every method through `methods.common.init_variables`; validation checks the file and the model."""

import jax
import numpy as np
import pytest

from mlrelabel.config import base_config, relabel_config
from mlrelabel.errors import ConfigError
from mlrelabel.methods import common
from mlrelabel.models.torchvision import to_torchvision
from mlrelabel.validation import problems


def _tiny(c):
    c.data.num_train, c.data.num_val = 64, 32
    c.data.image_size, c.data.min_scale, c.data.max_scale = 16, 6, 9
    c.train.batch_size, c.train.epochs, c.train.checkpoint_every_steps = 16, 1, 2
    c.eval.batch_size = 16
    return c


def _weights(path, num_classes=1000, seed=123, width=8, name='resnet_tiny'):
    """A torchvision-layout state_dict (.npz) of another seed's network with a `num_classes` classifier."""
    c = _tiny(base_config('smoke'))
    c.model.name, c.model.width = name, width
    variables = common.init_variables(common.build_model(c, num_classes), c, seed)
    np.savez(path, **to_torchvision(variables))
    return variables


def _same(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(np.array_equal(x, y) for x, y in zip(la, lb))


def test_init_variables_loads_the_weights_with_a_new_or_kept_classifier(tmp_path):
    c = _tiny(base_config('smoke'))
    model = common.build_model(c, 10)
    fresh = common.init_variables(model, c, 0)
    pre = _weights(tmp_path / 'w1000.npz', 1000)
    c.model.pretrained = str(tmp_path / 'w1000.npz')
    loaded = common.init_variables(model, c, 0)
    backbone = lambda v: {k: x for k, x in v['params'].items() if k != 'fc'}  # noqa: E731
    assert _same(backbone(loaded), backbone(pre)) and _same(loaded['batch_stats'], pre['batch_stats'])
    assert _same(
        loaded['params']['fc'], fresh['params']['fc']
    )  # 1000 → 10 classes: the seeded new classifier
    same_task = _weights(tmp_path / 'w10.npz', 10)
    c.model.pretrained = str(tmp_path / 'w10.npz')
    assert _same(common.init_variables(model, c, 0), same_task)  # same class count: the classifier too


def test_weights_of_another_network_are_refused_naming_the_fields(tmp_path):
    c = _tiny(base_config('smoke'))
    model = common.build_model(c, 10)
    _weights(tmp_path / 'wide.npz', width=16)
    c.model.pretrained = str(tmp_path / 'wide.npz')
    with pytest.raises(ConfigError, match=r'16 channels, but config.model.width=8.*--config.model.width=16'):
        common.init_variables(model, c, 0)
    _weights(tmp_path / 'small.npz', name='resnet_small')  # more blocks per stage than resnet_tiny
    c.model.pretrained = str(tmp_path / 'small.npz')
    with pytest.raises(ConfigError, match=r"does not fit config.model.name='resnet_tiny'.*missing variables"):
        common.init_variables(model, c, 0)


def test_validation_and_imagenet_normalisation(tmp_path):
    import importlib.util

    from mlrelabel.data import inspect

    _weights(tmp_path / 'w.npz')
    c = base_config('')
    c.model.pretrained = str(tmp_path / 'w.npz')
    found = problems(c)
    assert any("config.model.pretrained=" in p and "config.model.name='auto'" in p for p in found)
    c.model.name = 'resnet18'
    assert not [p for p in problems(c) if 'pretrained' in p]
    c.model.pretrained = str(tmp_path / 'missing.pth')
    assert any(p.startswith("config.model.pretrained=") and 'existing file' in p for p in problems(c))
    (tmp_path / 'w.pth').write_bytes(b'')
    c.model.pretrained = str(tmp_path / 'w.pth')
    needs_torch = [p for p in problems(c) if 'needs torch' in p]
    assert bool(needs_torch) == (importlib.util.find_spec('torch') is None)
    # Weights trained on ImageNet expect its normalisation when the run does not set one.
    c.model.pretrained = str(tmp_path / 'w.npz')
    inspect.resolve_data_defaults(c)
    assert (
        tuple(c.data.mean) == inspect.IMAGENET_STATS['mean']
        and tuple(c.data.std) == inspect.IMAGENET_STATS['std']
    )


@pytest.mark.slow
@pytest.mark.parametrize('method', ['supervised', 'relabel'])
def test_every_method_starts_from_the_weights(tmp_path, method):
    """With a vanishing learning rate, the trained parameters are the imported ones: the first model of the run
    (supervised; round 0 of relabel) started from them."""
    from mlrelabel import main
    from mlrelabel.run import load_run

    pre = _weights(tmp_path / 'w.npz', 10)
    c = _tiny(base_config('smoke') if method == 'supervised' else relabel_config('smoke'))
    c.model.pretrained = str(tmp_path / 'w.npz')
    c.optim.learning_rate = 1e-30  # must be > 0; moves nothing by more than 1e-29
    c.optim.weight_decay = 0.0
    if method == 'relabel':
        c.relabel.max_rounds, c.relabel.num_samples, c.relabel.batch_size = 1, 2, 16
        c.relabel.crops.crop_size = 16
        c.relabel.epochs = 1
    work = str(tmp_path / 'run')
    main.run(c, work)
    run = load_run(work)
    params = run.variables(round=0 if method == 'relabel' else None)['params']
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(pre['params'])):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-20)
