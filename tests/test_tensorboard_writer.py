"""TensorBoard event files, read back with TensorBoard's own reader: per-step and per-epoch scalars, phases
on one step axis, resumption without duplicated or stale steps, one-call writes, process 0 only."""

import os

import numpy as np
import pytest

from mlrelabel import parallel, tensorboard_writer
from mlrelabel.methods import common
from mlrelabel.train import loop, optim

event_accumulator = pytest.importorskip('tensorboard.backend.event_processing.event_accumulator')


def _scalars(directory) -> dict[str, list[tuple[int, float]]]:
    """`{tag: [(step, value), ...]}` in the order TensorBoard shows them (after its purges)."""
    acc = event_accumulator.EventAccumulator(str(directory), size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()['scalars']}


def _fit(cfg, data, ckpt_dir, events, **kw):
    model = common.build_model(cfg, 10)
    variables = common.init_variables(model, cfg, cfg.seed)
    mesh = parallel.make_mesh(1)
    return loop.fit(
        model, variables, data['train'], cfg, mesh=mesh, ckpt_dir=ckpt_dir, tensorboard_dir=events, **kw
    )


def test_resumed_fit_writes_the_same_scalars_as_an_uninterrupted_one(tiny_config, tiny_data, tmp_path):
    eval_fn = lambda state: {'val_x': 0.25}  # noqa: E731
    _fit(
        tiny_config, tiny_data, str(tmp_path / 'full' / 'ck'), str(tmp_path / 'full' / 'tb'), eval_fn=eval_fn
    )
    # Killed after step 3: the last checkpoint is step 2, so step 3's point is stale and must be purged.
    cut_ck, cut_tb = str(tmp_path / 'cut' / 'ck'), str(tmp_path / 'cut' / 'tb')
    _fit(tiny_config, tiny_data, cut_ck, cut_tb, eval_fn=eval_fn, stop_at_step=3)
    assert [s for s, _ in _scalars(cut_tb)['train/loss']] == [1, 2, 3]
    _fit(tiny_config, tiny_data, cut_ck, cut_tb, eval_fn=eval_fn)
    full, cut = _scalars(tmp_path / 'full' / 'tb'), _scalars(cut_tb)
    assert {'train/loss', 'train/accuracy', 'train/learning_rate', 'epoch/train_loss', 'epoch/val_x'} <= set(
        full
    )
    assert set(full) == set(cut)
    for tag in full:
        assert [s for s, _ in cut[tag]] == [s for s, _ in full[tag]], tag  # every step once, in order
        np.testing.assert_allclose(
            [v for _, v in cut[tag]], [v for _, v in full[tag]], rtol=1e-6, err_msg=tag
        )
    assert [s for s, _ in full['train/loss']] == list(range(1, 9))  # 4 steps per epoch, 2 epochs
    assert [s for s, _ in full['epoch/val_x']] == [4, 8]
    # The learning rate of step s is the schedule's value for optimizer step s - 1.
    _, schedule = optim.make_optimizer(
        tiny_config.optim, 4, tiny_config.train.epochs, tiny_config.train.batch_size
    )
    np.testing.assert_allclose(
        [v for _, v in full['train/learning_rate']], [float(schedule(s - 1)) for s in range(1, 9)], rtol=1e-6
    )


def test_phases_of_a_run_follow_each_other_and_keep_their_place_on_resume(tiny_config, tiny_data, tmp_path):
    work = str(tmp_path)
    with tensorboard_writer.active_run(work):
        _fit(tiny_config, tiny_data, os.path.join(work, 'round_0', 'ck'), None)
        _fit(tiny_config, tiny_data, os.path.join(work, 'round_1', 'ck'), None, stop_at_step=5)
    # The rerun: round 0 is complete (nothing written), round 1 resumes at its checkpoint (step 4).
    with tensorboard_writer.active_run(work):
        _fit(tiny_config, tiny_data, os.path.join(work, 'round_0', 'ck'), None)
        _fit(tiny_config, tiny_data, os.path.join(work, 'round_1', 'ck'), None)
    assert tensorboard_writer.timeline_end(work) == 16
    steps = [s for s, _ in _scalars(tensorboard_writer.event_dir(work))['train/loss']]
    assert steps == list(range(1, 17))
    # Outside a run and without a folder, fit writes nothing.
    _fit(tiny_config, tiny_data, str(tmp_path / 'other' / 'ck'), None)
    assert not (tmp_path / 'other' / 'tensorboard').exists()


def test_write_scalars_is_one_call_and_idempotent(tmp_path):
    work = str(tmp_path)
    row = {
        'round': 1,
        'val_f1': 0.5,
        'labels_per_image': 1.25,
        'images_changed': 7,
        'head': 'sigmoid',
        'ok': True,
    }
    tags = tensorboard_writer.scalar_tags(row, 'round')
    assert tags == {'round/val_f1': 0.5, 'round/labels_per_image': 1.25, 'round/images_changed': 7.0}
    tensorboard_writer.write_scalars(work, 10, tags)
    tensorboard_writer.write_scalars(work, 10, tags)  # a rerun of the finished round: no second point
    tensorboard_writer.write_scalars(work, 20, {'round/val_f1': 0.75})
    scalars = _scalars(tensorboard_writer.event_dir(work))
    assert scalars['round/val_f1'] == [(10, 0.5), (20, 0.75)]
    assert scalars['round/images_changed'] == [(10, 7.0)]


def test_only_process_zero_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(parallel, 'is_main_process', lambda: False)
    writer, offset = tensorboard_writer.open_phase(str(tmp_path / 'tb'), str(tmp_path / 'ck'), 8, 0, 8)
    writer.scalars(1, {'train/loss': 1.0})
    writer.close()
    tensorboard_writer.write_scalars(str(tmp_path), 1, {'final/x': 1.0})
    assert offset == 0 and not os.listdir(tmp_path)
