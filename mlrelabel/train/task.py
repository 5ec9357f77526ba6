"""What one training phase steps, records and evaluates: the interface `loop.run_task` drives.

The loop owns everything phases share: the Orbax checkpoint and its resume, the batch schedule of
`steps_per_epoch × train.epochs` steps, divergence checks, the progress bar, TensorBoard events, the
per-epoch history with validation, and when to save. A task owns the state and what one step does:
`SupervisedTask` (one network on fixed or hook-rewritten labels, `loop.fit`) and
`mile_task.MileTask` (MILe's teacher and student phases).
"""

from __future__ import annotations

from typing import Any, Iterator


class Task:
    """One training phase. `desc` names it in logs; `steps_per_epoch` sets the schedule."""

    desc: str = 'train'
    steps_per_epoch: int = 1

    def state(self, step: int) -> Any:
        """The pytree checkpointed after global step `step` (also the restore template)."""
        raise NotImplementedError

    def meta(self, step: int) -> dict:
        """JSON-able extras saved beside the state (the loop adds 'history')."""
        return {}

    def restore(self, state: Any, meta: dict) -> int:
        """Takes a restored checkpoint; returns the global step to continue from."""
        raise NotImplementedError

    def start_step(self) -> int:
        """The global step a fresh phase starts from."""
        return 0

    def batches(self, first: int, stop: int) -> Iterator[dict]:
        """Host batches of global steps `first .. stop - 1`."""
        raise NotImplementedError

    def step(self, step: int, batch: dict) -> dict:
        """Runs global step `step` on a device batch; returns its device metrics, with a 'finite' flag."""
        raise NotImplementedError

    def record(self, fetched: list[dict], first: int) -> list[dict]:
        """Takes the fetched metrics of steps `first ..` (1-based) and returns one TensorBoard dict per step."""
        raise NotImplementedError

    def postfix(self) -> dict:
        """Progress-bar fields after a fetch."""
        return {}

    def end_epoch(self, epoch: int, step: int) -> dict:
        """The epoch's history row (after 'epoch' and 'step'), before validation; resets per-epoch logs."""
        raise NotImplementedError

    def evaluated(self) -> Any:
        """The `TrainState` that validation sees (and `loop.run_task` returns)."""
        raise NotImplementedError

    def epoch_note(self, row: dict) -> str:
        """Extra words for the epoch line of the log, e.g. ' (generation 1, imitation)'."""
        return ''
