"""Shared fixtures: tiny configs and datasets so every test compiles small programs."""

import os
import sys

import pytest

from tests.helpers import ROOT

if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# Compiled programs are cached on disk across tests and the subprocesses they start: most test time on a
# 2-core machine is XLA compilation of the same few programs.
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', os.path.join(ROOT, '.cache', 'xla'))
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0.5')


@pytest.fixture
def tiny_config():
    """The supervised smoke config shrunk further: 64 training images at 16 px, one epoch of 4 steps."""
    from mlrelabel.config import base_config
    from mlrelabel.data import inspect

    c = base_config('smoke')
    c.data.num_train = 64
    c.data.num_val = 32
    c.data.image_size = 16
    c.data.min_scale = 6
    c.data.max_scale = 9
    c.train.batch_size = 16
    c.train.epochs = 2
    c.train.checkpoint_every_steps = 2
    c.eval.batch_size = 16
    inspect.resolve_data_defaults(c)  # the built-in data's measured mean / std, as main does
    return c


@pytest.fixture
def tiny_data(tiny_config, tmp_path):
    from mlrelabel.methods import common

    return common.load_datasets(tiny_config, str(tmp_path))
