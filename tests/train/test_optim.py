"""Optimizers and schedules (`mlrelabel.train.optim`)."""

import numpy as np
import pytest

from mlrelabel.train import optim


def test_schedules_and_optimizers():
    from mlrelabel.config import schema

    cfg = schema.defaults('optim').optim  # the fields this test does not set at their defaults
    cfg.update(
        dict(
            name='sgd',
            learning_rate=0.4,
            lr_base_batch=256,
            momentum=0.9,
            nesterov=True,
            weight_decay=1e-4,
            warmup_epochs=1.0,
            schedule='cosine',
        )
    )
    tx, sched = optim.make_optimizer(cfg, steps_per_epoch=10, num_epochs=5, batch_size=128)
    assert float(sched(0)) == 0.0
    assert np.isclose(float(sched(10)), 0.2)  # peak after warm-up, scaled by 128 / 256
    assert float(sched(49)) < 0.01
    cfg.schedule = 'constant'
    _, sched = optim.make_optimizer(cfg, 10, 5, 256)
    assert np.isclose(float(sched(30)), 0.4)
    cfg.name = 'lamb'
    with pytest.raises(ValueError, match='optim.name'):
        optim.make_optimizer(cfg, 10, 5, 256)
    mask = optim.decay_mask({'conv': {'kernel': np.zeros((3, 3, 1, 2))}, 'bn': {'scale': np.zeros(2)}})
    assert mask == {'conv': {'kernel': True}, 'bn': {'scale': False}}
