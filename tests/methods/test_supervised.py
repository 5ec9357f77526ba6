"""The supervised method (`mlrelabel.methods.supervised`): a smoke run with each single-positive kind and the
switch to full labels."""

import os

import numpy as np
import pytest

from mlrelabel.errors import ConfigError
from mlrelabel.losses import single_positive


# About 20 s per kind on a shared 2-core machine: 'an' always runs, the others with the slow tests.
@pytest.mark.parametrize(
    'kind', [k if k == 'an' else pytest.param(k, marks=pytest.mark.slow) for k in single_positive.KINDS]
)
def test_supervised_smoke_run_with_each_kind(kind, tiny_config, tmp_path):
    from mlrelabel.methods import supervised

    cfg = tiny_config
    cfg.train.loss = kind
    cfg.train.single_positive.expected_positives = 2.0
    cfg.train.single_positive.warmup_epochs = 1
    cfg.train.single_positive.delta_rel = 0.05
    result = supervised.run(cfg, str(tmp_path))
    final = result['final']
    assert len(result['history']) == 2 and np.isfinite(final['train_loss'])
    assert 0.0 <= final['val_map'] <= 1.0 and 0.0 <= final['val_f1'] <= 1.0
    assert (kind in single_positive.LABEL_REWRITING_KINDS) == os.path.isdir(tmp_path / 'checkpoints_labels')


def test_full_label_switch(tiny_config, tmp_path):
    from mlrelabel.methods import common

    tiny_config.data.train_labels = 'full'
    data = common.load_datasets(tiny_config, str(tmp_path))
    np.testing.assert_array_equal(data['train'].labels.dense() > 0, data['train'].truth.dense() > 0)
    assert data['train'].labels.num_labels().mean() > 1.5
    tiny_config.data.train_labels = 'all'
    with pytest.raises(ConfigError, match='config.data.train_labels'):
        common.load_datasets(tiny_config, str(tmp_path))
    tiny_config.data.train_labels = 'visible'
    tiny_config.data.given_noise = 0.25  # label noise: a quarter of the given labels become wrong ones
    noisy = common.load_datasets(tiny_config, str(tmp_path))['train']
    wrong = [row[0] not in t for row, t in zip(noisy.labels.to_lists(), noisy.truth.to_lists())]
    assert sum(wrong) == round(0.25 * len(noisy))
    tiny_config.data.source = 'json'
    with pytest.raises(ConfigError, match='only the digit_scenes source simulates label noise'):
        common.load_datasets(tiny_config, str(tmp_path))
