"""The training state: one pytree holding everything a checkpoint must restore."""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
    """`step` (int32 scalar), `params`, `batch_stats`, `opt_state` and the run's base PRNG `key`.

    The optimizer and model are not stored: steps close over them, so the state is plain arrays that Orbax
    saves and restores as-is. Per-step randomness is `fold_in(key, step)`.
    """

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    key: jax.Array

    @classmethod
    def create(cls, variables: dict, tx: optax.GradientTransformation, key: jax.Array) -> 'TrainState':
        params = variables['params']
        return cls(
            step=jnp.zeros((), jnp.int32),
            params=params,
            batch_stats=variables.get('batch_stats', {}),
            opt_state=tx.init(params),
            key=key,
        )

    @property
    def variables(self) -> dict:
        return {'params': self.params, 'batch_stats': self.batch_stats}
