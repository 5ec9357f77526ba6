"""What the MILe tests share: a tiny network with the steps' contract, and MILe fitted on it."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


class TinyNet(nn.Module):
    """A two-layer net with batch norm: the steps' contract (train flag, batch_stats) at a fraction of a
    ResNet's compile time. The ResNet path runs in tests/test_main.py (smoke variant of configs/mile.py)."""

    @nn.compact
    def __call__(self, images, train=False):
        x = nn.Dense(16)(images.reshape(images.shape[0], -1))
        x = nn.relu(nn.BatchNorm(use_running_average=not train)(x))
        return nn.Dense(10)(x)


def tiny_variables(cfg, seed=0):
    s = cfg.data.image_size
    return jax.tree.map(np.asarray, TinyNet().init(jax.random.PRNGKey(seed), jnp.zeros((1, s, s, 3))))


def fit_tiny_mile(cfg, data, ckpt_dir, **kw):
    """`mile.method.fit_mile` of TinyNet on `data['train']`, one device."""
    from mlrelabel import parallel
    from mlrelabel.mile import method as mile_method

    variables = tiny_variables(cfg, cfg.seed)
    return mile_method.fit_mile(
        TinyNet(), variables, data['train'], cfg, mesh=parallel.make_mesh(1), ckpt_dir=ckpt_dir, **kw
    )
