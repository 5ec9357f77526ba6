"""Label hooks: training losses that rewrite their own labels between epochs (`loop.fit(..., loss=...)`).

Two single-positive losses change the stored labels as training goes (mlrelabel.losses.single_positive):
  ll_cp   LL-Cp (Kim et al. 2022): every step flags the unobserved entries with the largest losses, which
          become positives for good (`corrections` from the train step).
  em_apl  EM+APL (Zhou et al. 2022): after every epoch from `warmup_epochs` on, the least likely unobserved
          entries of each class become pseudo-negatives with soft label p, stored as −p (`apl_select`).

A hook owns a `RewrittenLabels` source (the given LabelTable plus the rewritten entries) that `fit` reads
its batches from, one epoch at a time, so an epoch sees the labels as they stood at its start. The rewritten
entries are saved with every checkpoint (`<ckpt_dir>_labels/step_<s>.npz`, written atomically and named in the
checkpoint's JSON record), so a killed run resumes with exactly the labels it had. Each image appears once
per epoch, so applying LL-Cp's corrections at save points and epoch ends equals applying them at once.
"""

from __future__ import annotations

import os

import jax
import numpy as np

from mlrelabel import parallel
from mlrelabel.data.label_table import LabelTable
from mlrelabel.io_utils import atomic_save_npz
from mlrelabel.losses import single_positive

KEEP_FILES = 3  # label files kept: enough for the checkpoints Orbax keeps (2) plus the one being written


class RewrittenLabels:
    """A label source: `base` (a LabelTable) with entries overridden, `batch(indices) -> {'target': [B, C]}`.

    Overrides are flat keys `row·C + class` (sorted int64) with float32 values: 1 for a corrected
    positive, −s for a soft pseudo-negative. Updates replace the arrays (never mutate them), so the
    loader thread always reads a consistent pair.
    """

    def __init__(self, base: LabelTable, keys=None, values=None):
        self.base = base
        self.num_classes = base.num_classes
        keys = np.zeros((0,), np.int64) if keys is None else np.asarray(keys, np.int64)
        values = np.zeros((0,), np.float32) if values is None else np.asarray(values, np.float32)
        self._overrides = (keys, values)

    def __len__(self) -> int:
        return len(self.base)

    @property
    def overrides(self) -> tuple[np.ndarray, np.ndarray]:
        return self._overrides

    def dense(self, indices=None) -> np.ndarray:
        """`[B, C]` float32 targets of rows `indices` (all rows when None)."""
        indices = np.arange(len(self)) if indices is None else np.asarray(indices, np.int64).reshape(-1)
        out = self.base.dense(indices).astype(np.float32)
        keys, values = self._overrides
        if keys.size:
            c = self.num_classes
            lo, hi = np.searchsorted(keys, indices * c), np.searchsorted(keys, (indices + 1) * c)
            for b in np.flatnonzero(hi > lo):
                out[b, keys[lo[b] : hi[b]] - indices[b] * c] = values[lo[b] : hi[b]]
        return out

    def batch(self, indices) -> dict:
        return {'target': self.dense(indices)}

    def update(self, keys, values) -> None:
        """Sets entries `keys` (flat `row·C + class`) to `values`; later values win."""
        keys = np.asarray(keys, np.int64).reshape(-1)
        values = np.broadcast_to(np.asarray(values, np.float32), keys.shape)
        old_keys, old_values = self._overrides
        all_keys = np.concatenate([keys, old_keys])
        all_values = np.concatenate([values, old_values])
        merged, first = np.unique(all_keys, return_index=True)  # first occurrence = the new value
        self._overrides = (merged, all_values[first])


class LabelHook:
    """The hook protocol of `loop.fit`: after every step, at every epoch end, and at every checkpoint."""

    def __init__(self, base: LabelTable, directory: str):
        self.labels = RewrittenLabels(base)
        self.directory = directory
        self._file = None  # the label file of the last save
        self._saved_overrides = self.labels.overrides

    def after_step(self, indices: np.ndarray, metrics: dict) -> None:
        """`indices [B]`: the global batch's rows; may pop its own arrays from `metrics` (kept on device)."""

    def end_epoch(self, epoch: int, state) -> None:
        """Runs once the 1-based `epoch` has ended, before its evaluation and checkpoint."""

    def _flush(self) -> None:
        pass

    def save(self, step: int) -> dict:
        """Writes the rewritten entries when they changed; returns the JSON record for the checkpoint."""
        self._flush()
        keys, values = self.labels.overrides
        if keys.size and self.labels.overrides is not self._saved_overrides:
            name = f'step_{step:09d}.npz'
            if parallel.is_main_process():
                atomic_save_npz(os.path.join(self.directory, name), keys=keys, values=values)
                self._prune(keep=name)
            self._file, self._saved_overrides = name, self.labels.overrides
        return {'file': self._file, 'num_rewritten': int(keys.size)}

    def restore(self, record: dict | None) -> None:
        """Loads the labels a checkpoint's record names (the given labels when it names none)."""
        self._discard_pending()
        name = (record or {}).get('file')
        if name is None:
            self.labels = RewrittenLabels(self.labels.base)
        else:
            path = os.path.join(self.directory, name)
            if not os.path.exists(path):
                raise FileNotFoundError(f'{path}: the rewritten labels named by the checkpoint are missing')
            with np.load(path) as f:
                self.labels = RewrittenLabels(self.labels.base, f['keys'], f['values'])
        self._file, self._saved_overrides = name, self.labels.overrides

    def _discard_pending(self) -> None:
        pass

    def _prune(self, keep: str) -> None:
        names = sorted(n for n in os.listdir(self.directory) if n.startswith('step_') and n.endswith('.npz'))
        for n in names[: max(len(names) - KEEP_FILES, 0)]:
            if n != keep:
                os.remove(os.path.join(self.directory, n))


class LLCpHook(LabelHook):
    """LL-Cp: the train step's `corrections [B, C]` become positives of the stored labels."""

    def __init__(self, base: LabelTable, directory: str):
        super().__init__(base, directory)
        self._pending: list[tuple[np.ndarray, jax.Array]] = []

    def after_step(self, indices, metrics):
        self._pending.append((np.asarray(indices, np.int64), metrics.pop('corrections')))

    def end_epoch(self, epoch, state):
        self._flush()

    def _flush(self):
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        masks = jax.device_get([m for _, m in pending])
        c = self.labels.num_classes
        keys = [idx[r] * c + col for (idx, _), m in zip(pending, masks) for r, col in [np.nonzero(m)]]
        keys = np.concatenate(keys)
        if keys.size:
            self.labels.update(keys, 1.0)

    def _discard_pending(self):
        self._pending = []


class APLHook(LabelHook):
    """EM+APL: after each epoch e ≥ `warmup_epochs` (1-based; not after the last, which could not use them)
    the lowest-probability unobserved entries of each class become pseudo-negatives (`apl_select`).

    `predict_fn(state) -> logits [N, C]` scores the training images (inference mode, no augmentation). The
    selection holds the N×C labels and probabilities in memory.
    """

    def __init__(self, base, directory, predict_fn, neg_proportion, warmup_epochs, num_epochs):
        super().__init__(base, directory)
        self.predict_fn = predict_fn
        self.warmup_epochs, self.num_epochs = int(warmup_epochs), int(num_epochs)
        unobserved = len(base) - np.bincount(base.classes, minlength=base.num_classes)
        self.counts = single_positive.apl_counts(unobserved, neg_proportion, num_epochs, warmup_epochs)

    def end_epoch(self, epoch, state):
        if not self.warmup_epochs <= epoch < self.num_epochs:
            return
        probs = jax.nn.sigmoid(np.asarray(self.predict_fn(state), np.float32))
        observed = self.labels.dense()
        new = np.asarray(single_positive.apl_select(probs, observed, self.counts))
        rows, cols = np.nonzero(new != observed)
        if rows.size:
            self.labels.update(rows * self.labels.num_classes + cols, new[rows, cols])


def make_label_hook(
    kind: str, hparams, labels, num_epochs: int, predict_fn, ckpt_dir: str
) -> LabelHook | None:
    """The hook of `kind` (None for kinds that keep their labels). `labels`: the given LabelTable;
    `hparams`: `config.train.single_positive`; files go to `<ckpt_dir>_labels/`."""
    if kind not in single_positive.LABEL_REWRITING_KINDS:
        return None
    if not isinstance(labels, LabelTable):
        raise ValueError(
            f'loss {kind!r} rewrites its labels and needs a LabelTable label source, got {type(labels)}'
        )
    directory = os.path.normpath(ckpt_dir) + '_labels'
    if kind == 'll_cp':
        return LLCpHook(labels, directory)
    hp = {**single_positive.APL_HPARAMS, **{k: v for k, v in dict(hparams).items() if v is not None}}
    single_positive.check_hparams(kind, hp)
    if not hp['warmup_epochs'] < num_epochs:
        raise ValueError(
            f"config.train.single_positive.warmup_epochs={hp['warmup_epochs']}: em_apl chooses pseudo-labels "
            f'after epochs warmup_epochs .. train.epochs - 1, so it must be below train.epochs={num_epochs}'
        )
    return APLHook(labels, directory, predict_fn, hp['neg_proportion'], hp['warmup_epochs'], num_epochs)
