"""Crop → Confidence as one jitted function, for every crop kind and confidence method of the config."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlrelabel.config import relabel_config
from mlrelabel.data import inspect
from mlrelabel.methods import common
from mlrelabel.relabel import score


@pytest.fixture(scope='module')
def setup():
    c = relabel_config('smoke', 'mc_dropout')
    c.data.image_size = 32
    inspect.resolve_data_defaults(c)  # the measured data.mean / data.std
    model = common.build_model(c, 10)
    variables = common.init_variables(model, c, 0)
    images = jnp.asarray(np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3)), jnp.uint8)
    return c, model, variables, images


@pytest.mark.parametrize('kind', ['random', 'fixed', 'grid', 'full', 'proposals'])
def test_every_crop_kind_scores_and_aggregates(setup, kind):
    c, model, variables, images = setup
    c = c.copy_and_resolve_references()
    c.relabel.crops.kind = kind
    fn = jax.jit(score.make_score_fn(model, 'softmax', score.ScoreOptions.from_config(c)))
    out = fn(variables, images, jax.random.PRNGKey(0))
    k = out['boxes'].shape[1]
    assert out['conf'].shape == (4, 10) and out['crop_conf'].shape == (4, k, 10)
    # num_crops=4 plus the whole image; the grid (scales 1.0, 0.6) holds the whole image already
    assert k == {'random': 5, 'fixed': 5, 'grid': 10, 'full': 1, 'proposals': 5}[kind]
    np.testing.assert_allclose(out['crop_conf'].sum(-1), 1.0, rtol=1e-5)  # softmax head: distributions
    # The default aggregate, 'top2': the mean of each class's two best crops (the one crop of 'full').
    assert c.relabel.aggregate == 'top2'
    best = -np.sort(-np.asarray(out['crop_log_odds']), axis=1)[:, :2]
    np.testing.assert_allclose(out['log_odds'], best.mean(1), rtol=1e-5, atol=1e-6)
    best = -np.sort(-np.asarray(out['crop_conf']), axis=1)[:, :2]
    np.testing.assert_allclose(out['conf'], best.mean(1), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out['boxes'][:, 0], [[0, 0, 1, 1]] * 4)  # include_full_image
    boxes = np.asarray(out['boxes'])
    assert (boxes >= 0).all() and (boxes <= 1).all() and (boxes[..., 2] > boxes[..., 0]).all()


def test_uncertainty_choice_is_checked(setup):
    with pytest.raises(ValueError, match='relabel.uncertainty'):
        score.uncertainty_of({}, 'variance')
