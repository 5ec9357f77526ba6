"""Two JAX processes on localhost (CPU, gloo collectives) train to the same parameters as one process.

The test starts this file as a script twice (`process_id` 0 and 1, explicit coordinator address); each
process owns one CPU device, gathers only its half of every global batch, and checkpoints through Orbax
into a shared folder. Meanwhile the test runs the same 4 steps in one process on the same global batches.
"""

import os
import socket
import subprocess
import sys

import numpy as np

from tests.helpers import ROOT

STEPS = 4


def _config():
    from mlrelabel.config import base_config

    c = base_config('smoke')
    c.data.num_train, c.data.num_val = 64, 16
    c.data.image_size, c.data.min_scale, c.data.max_scale = 16, 6, 9
    c.train.batch_size = 16
    c.train.epochs = 1
    c.train.checkpoint_every_steps = 2
    c.optim.warmup_epochs = 0.0
    return c


def _train(workdir: str, ckpt_dir: str) -> dict:
    """4 steps of loop.fit on every device of every process; returns the parameters as numpy (local copy)."""
    import jax

    from mlrelabel import parallel
    from mlrelabel.methods import common
    from mlrelabel.train import loop

    cfg = _config()
    train = common.load_datasets(cfg, workdir)['train']
    model = common.build_model(cfg, train.num_classes)
    variables = common.init_variables(model, cfg, cfg.seed)
    state, _ = loop.fit(model, variables, train, cfg, mesh=parallel.make_mesh(), ckpt_dir=ckpt_dir)
    assert int(jax.device_get(state.step.addressable_data(0))) == STEPS
    flat = jax.tree_util.tree_flatten_with_path(state.params)[0]
    return {jax.tree_util.keystr(k): np.asarray(v.addressable_data(0)) for k, v in flat}


def _worker(process_id: int, num_processes: int, port: int, tmp: str) -> None:
    import jax

    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    jax.distributed.initialize(
        coordinator_address=f'localhost:{port}', num_processes=num_processes, process_id=process_id
    )
    assert jax.process_count() == num_processes and jax.device_count() == num_processes
    params = _train(os.path.join(tmp, f'data_{process_id}'), os.path.join(tmp, 'ckpt_multi'))
    np.savez(os.path.join(tmp, f'params_{process_id}.npz'), **params)
    jax.distributed.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('localhost', 0))
        return s.getsockname()[1]


def test_two_processes_match_one_process(tmp_path):
    port = _free_port()
    env = dict(
        os.environ, JAX_PLATFORMS='cpu', PYTHONPATH=ROOT, XLA_FLAGS='--xla_force_host_platform_device_count=1'
    )
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, str(i), '2', str(port), str(tmp_path)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for i in range(2)
    ]
    try:
        single = _train(str(tmp_path / 'data_single'), str(tmp_path / 'ckpt_single'))  # overlaps the workers
        outputs = [p.communicate(timeout=600)[0].decode(errors='replace') for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
    for i in range(2):
        multi = dict(np.load(tmp_path / f'params_{i}.npz'))
        assert multi.keys() == single.keys()
        for k in single:
            np.testing.assert_allclose(multi[k], single[k], rtol=2e-4, atol=2e-5, err_msg=f'process {i} {k}')
    # The 2-process run really trained (parameters moved from the init) and wrote an Orbax checkpoint.
    assert sorted(os.listdir(tmp_path / 'ckpt_multi'))
    from mlrelabel.methods import common

    cfg = _config()
    init = common.init_variables(common.build_model(cfg, 10), cfg, cfg.seed)['params']
    moved = [not np.allclose(a, b) for a, b in zip(_leaves(init), _leaves_of(single))]
    assert any(moved)


def _leaves(tree):
    import jax

    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _leaves_of(flat: dict):
    return [flat[k] for k in flat]


if __name__ == '__main__':
    sys.path.insert(0, ROOT)
    _worker(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
