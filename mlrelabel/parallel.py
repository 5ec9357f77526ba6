"""Devices, meshes and shardings: data parallelism over a 1-D `data` mesh axis.

Parameters and optimizer state are replicated; batches are split along their leading axis. Under `jax.jit`
with these shardings XLA inserts the collectives, so batch-norm statistics and gradients are computed over
the global batch, exactly as on one device.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = 'data'


def split_cpu(num_devices: int) -> bool:
    """Makes the CPU backend `num_devices` devices (`config.parallel.cpu_devices`); True when it applied.

    Must run before JAX starts its backends; later (a library caller that already ran JAX) it changes
    nothing. `--xla_force_host_platform_device_count` in `$XLA_FLAGS` takes precedence. Accelerators are
    unaffected: the mesh uses the default backend's devices.
    """
    if not num_devices or 'xla_force_host_platform_device_count' in os.environ.get('XLA_FLAGS', ''):
        return False
    try:
        jax.config.update('jax_num_cpu_devices', int(num_devices))
    except RuntimeError:  # backends already started
        logging.info('parallel.cpu_devices=%d not applied: JAX already started', num_devices)
        return False
    return True


def initialize_distributed(
    coordinator_address: str = '', num_processes: int = 0, process_id: int = -1
) -> None:
    """Starts `jax.distributed` for multi-host runs; a no-op for a single process.

    With an explicit coordinator address the three values are used as given (any launcher). Without one,
    JAX's auto-detection is used when a cluster environment is visible (SLURM, TPU VM pods, Open MPI).
    """
    if coordinator_address:
        jax.distributed.initialize(
            coordinator_address=coordinator_address, num_processes=num_processes, process_id=process_id
        )
    elif any(k in os.environ for k in ('SLURM_JOB_ID', 'TPU_WORKER_HOSTNAMES', 'OMPI_COMM_WORLD_SIZE')):
        n = int(os.environ.get('SLURM_NTASKS', os.environ.get('OMPI_COMM_WORLD_SIZE', '1')))
        if n > 1 or 'TPU_WORKER_HOSTNAMES' in os.environ:
            jax.distributed.initialize()
    logging.info(
        'process %d of %d, %d local / %d global devices',
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )


def make_mesh(num_devices: int = 0) -> Mesh:
    """A 1-D mesh over the first `num_devices` devices (0 = all devices of all processes)."""
    devices = jax.devices()
    if num_devices:
        if num_devices > len(devices):
            raise ValueError(f'parallel.num_devices={num_devices} but only {len(devices)} devices exist')
        devices = devices[:num_devices]
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def data_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over the `data` axis, the rest replicated."""
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def check_batch_size(global_batch: int, mesh: Mesh, field: str = 'batch_size') -> int:
    """Returns the per-process batch size; errors when the batch does not split over devices."""
    n = mesh.devices.size
    if global_batch % n:
        hint = (
            ' (config.parallel.cpu_devices splits a CPU into devices)'
            if mesh.devices.flat[0].platform == 'cpu'
            else ''
        )
        raise ValueError(f'{field}={global_batch} must be a multiple of the number of devices ({n}){hint}')
    return global_batch // jax.process_count()


def host_to_global(batch: Any, mesh: Mesh) -> Any:
    """Process-local numpy batch (leading axis = local share of the global batch) → global jax.Arrays."""
    sharding = data_sharding(mesh)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), batch)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Places a pytree on every device of the mesh."""
    return jax.device_put(tree, replicated(mesh))


def process_slice(global_batch: int) -> slice:
    """This process's rows of a global batch (processes own contiguous, equal slices)."""
    local = global_batch // jax.process_count()
    start = jax.process_index() * local
    return slice(start, start + local)


def is_main_process() -> bool:
    """Only process 0 writes logs, label files and reports; all processes write checkpoints via Orbax."""
    return jax.process_index() == 0


def progress_bar(total: int, desc: str, unit: str, initial: int = 0):
    """A tqdm bar (rate and ETA) shown by process 0 only; `initial` > 0 when a run resumes. It reports to the
    run's progress line (`progress.tracked`)."""
    from tqdm.auto import tqdm

    from mlrelabel import progress

    return progress.tracked(tqdm)(
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        disable=not is_main_process(),
        dynamic_ncols=True,
        mininterval=1.0,
    )
