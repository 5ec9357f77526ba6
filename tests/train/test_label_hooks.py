"""Label hooks (`mlrelabel.train.label_hooks`): the rewritten-labels source, corrections and pseudo-labels
applied, and a label-rewriting run that resumes exactly."""

import os

import jax.numpy as jnp
import numpy as np
import pytest

from mlrelabel import parallel
from mlrelabel.data.label_table import LabelTable
from mlrelabel.losses import single_positive
from mlrelabel.train import label_hooks
from tests.helpers import leaves_close


def test_rewritten_labels_source():
    base = LabelTable.from_lists([[0], [2], [1, 3]], 4)
    src = label_hooks.RewrittenLabels(base)
    np.testing.assert_array_equal(src.dense([2, 0]), base.dense([2, 0]))
    src.update([0 * 4 + 1, 2 * 4 + 0], [-0.25, 1.0])
    src.update([0 * 4 + 1], [1.0])  # later values win
    d = src.batch(np.array([0, 1, 2]))['target']
    np.testing.assert_array_equal(d, [[1, 1, 0, 0], [0, 0, 1, 0], [1, 1, 0, 1]])
    src.update([1 * 4 + 3], -0.5)
    assert src.dense([1])[0, 3] == -0.5 and src.dense().shape == (3, 4)


def test_hooks_apply_corrections_and_pseudo_labels(tmp_path):
    base = LabelTable.from_lists([[0], [1], [2], [0]], 3)
    hook = label_hooks.make_label_hook('ll_cp', {}, base, 2, None, str(tmp_path / 'ck'))
    metrics = {'loss': 1.0, 'corrections': jnp.array([[False, True, False], [False, False, False]])}
    hook.after_step(np.array([3, 1]), metrics)
    assert 'corrections' not in metrics
    record = hook.save(4)
    assert record['num_rewritten'] == 1 and hook.labels.dense([3])[0].tolist() == [1, 1, 0]
    assert os.path.exists(tmp_path / 'ck_labels' / record['file'])
    fresh = label_hooks.make_label_hook('ll_cp', {}, base, 2, None, str(tmp_path / 'ck'))
    fresh.restore(record)
    np.testing.assert_array_equal(fresh.labels.dense(), hook.labels.dense())

    logits = np.log(np.array([[0.9, 0.2, 0.3], [0.1, 0.8, 0.2], [0.4, 0.3, 0.9], [0.6, 0.05, 0.1]]))
    logits = logits - np.log1p(-np.exp(logits))  # probabilities -> logits
    hp = {'neg_proportion': 1.0, 'warmup_epochs': 1}
    apl = label_hooks.make_label_hook('em_apl', hp, base, 3, lambda state: logits, str(tmp_path / 'apl'))
    assert apl.counts.tolist() == [1, 1, 1]  # ⌊1.0 · 2..3 unobserved / (3 − 1)⌋
    apl.end_epoch(1, None)
    d = apl.labels.dense()
    # the lowest unobserved probability of each class: 0.1 (row 1), 0.05 (row 3), 0.1 (row 3)
    np.testing.assert_allclose(d, [[1, 0, 0], [-0.1, 1, 0], [0, 0, 1], [1, -0.05, -0.1]], rtol=1e-5)
    apl.end_epoch(3, None)  # after the last epoch: nothing (it could not be used)
    np.testing.assert_array_equal(apl.labels.dense(), d)
    with pytest.raises(ValueError, match='config.train.single_positive.warmup_epochs'):
        label_hooks.make_label_hook('em_apl', {'warmup_epochs': 3}, base, 3, None, str(tmp_path / 'x'))


def _fit(cfg, data, ckpt_dir, **kw):
    from mlrelabel.methods import common
    from mlrelabel.train import loop

    mesh = parallel.make_mesh(1)
    model = common.build_model(cfg, 10)
    variables = common.init_variables(model, cfg, cfg.seed)
    return loop.fit(model, variables, data['train'], cfg, mesh=mesh, ckpt_dir=ckpt_dir, **kw)


def _latest_labels(ckpt_dir):
    """The label record of the latest checkpoint's JSON meta and the label file it names."""
    import json

    step = max(int(n) for n in os.listdir(ckpt_dir) if n.isdigit())
    with open(os.path.join(ckpt_dir, str(step), 'meta', 'metadata')) as f:
        record = json.load(f)['label_hook']
    with np.load(os.path.join(ckpt_dir + '_labels', record['file'])) as f:
        return record, f['keys'], f['values']


@pytest.mark.parametrize(
    'kind,hp',
    [('ll_cp', {'delta_rel': 0.05}), ('em_apl', {'warmup_epochs': 1, 'neg_proportion': 0.9, 'beta': 0.5})],
)
def test_label_rewriting_run_resumes_exactly(kind, hp, tiny_config, tiny_data, tmp_path):
    cfg = tiny_config
    cfg.train.epochs = 3  # 4 steps an epoch; checkpoints every 2 steps
    cfg.train.loss = kind
    cfg.train.single_positive.update(hp)
    full_state, full_hist = _fit(cfg, tiny_data, str(tmp_path / 'full'))
    # killed after step 7: the last checkpoint is step 6, inside the third epoch (labels rewritten before)
    _fit(cfg, tiny_data, str(tmp_path / 'cut'), stop_at_step=7)
    cut_record = _latest_labels(str(tmp_path / 'cut'))[0]
    assert cut_record['num_rewritten'] > 0
    state, hist = _fit(cfg, tiny_data, str(tmp_path / 'cut'))
    assert int(state.step) == int(full_state.step) == 12
    assert leaves_close(state.params, full_state.params, atol=0, rtol=0)
    assert hist == full_hist
    rec_full, keys_full, values_full = _latest_labels(str(tmp_path / 'full'))
    rec_cut, keys_cut, values_cut = _latest_labels(str(tmp_path / 'cut'))
    np.testing.assert_array_equal(keys_full, keys_cut)
    np.testing.assert_array_equal(values_full, values_cut)
    if kind == 'll_cp':  # positives added: 7 per step from the second epoch on (minus repeats)
        assert np.all(values_full == 1.0) and 7 < keys_full.size <= 7 * 8
    else:  # one selection (after epoch 1; epoch 3 is the last): ⌊0.9·U_c / 2⌋ pseudo-negatives per class
        assert np.all((values_full < 0) & (values_full > -1))
        base = tiny_data['train'].labels
        counts = single_positive.apl_counts(len(base) - np.bincount(base.classes, minlength=10), 0.9, 3, 1)
        assert keys_full.size == 2 * counts.sum()
    # the rewritten labels changed training: the plain kinds give other parameters
    cfg.train.loss = 'll_ct' if kind == 'll_cp' else 'em'
    other, _ = _fit(cfg, tiny_data, str(tmp_path / 'other'))
    assert not leaves_close(other.params, full_state.params)
