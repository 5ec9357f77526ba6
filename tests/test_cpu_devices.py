"""`config.parallel.cpu_devices`: a CPU becomes several JAX devices before JAX starts, and never afterwards."""

import os
import subprocess
import sys

import numpy as np
import pytest

from mlrelabel import parallel
from tests.helpers import ROOT

PROBE = """
import jax
from mlrelabel import parallel
applied = parallel.split_cpu({n})
print(applied, jax.device_count(), parallel.make_mesh(0).devices.size)
print(parallel.split_cpu(3), jax.device_count())  # JAX has started: nothing changes
"""


def _probe(n, xla_flags=''):
    env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
    env['JAX_PLATFORMS'] = 'cpu'
    if xla_flags:
        env['XLA_FLAGS'] = xla_flags
    out = subprocess.run(
        [sys.executable, '-c', PROBE.format(n=n)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=True,
    )
    return out.stdout.split()


def test_splits_the_cpu_before_jax_starts():
    assert _probe(2) == ['True', '2', '2', 'False', '2']


def test_zero_keeps_one_device_and_xla_flags_take_precedence():
    assert _probe(0) == ['False', '1', '1', 'False', '1']
    assert _probe(2, '--xla_force_host_platform_device_count=4') == ['False', '4', '4', 'False', '4']


def test_batch_size_error_names_the_field_and_the_setting():
    class FakeDevice:
        platform = 'cpu'

    class FakeMesh:
        devices = np.asarray([FakeDevice(), FakeDevice()], dtype=object)

    with pytest.raises(
        ValueError, match=r'config.train.batch_size=15 .* \(2\) \(config.parallel.cpu_devices'
    ):
        parallel.check_batch_size(15, FakeMesh(), 'config.train.batch_size')
