"""The partial-label method: per-example losses, group softmax heads, class-balanced sampling, frozen
backbones, and tiny end-to-end runs (selective with its prior phase; attribute CSV with group heads,
a frozen imported backbone and predictions)."""

import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from mlrelabel.errors import ConfigError
from mlrelabel.partial import class_prior, method
from mlrelabel.partial import losses as P
from tests.helpers import recipe


def _config(**partial):
    c = recipe('partial.py', 'smoke')
    c.data.num_train, c.data.num_val, c.data.image_size = 64, 32, 16
    c.data.min_scale, c.data.max_scale = 6, 9
    c.model.width = 8
    c.train.batch_size, c.train.epochs, c.train.checkpoint_every_steps = 16, 2, 2
    c.eval.batch_size = 16
    for k, v in partial.items():
        setattr(c.partial, k, v)
    return c


def test_loss_fn_is_per_example_with_batch_level_selection():
    cfg = _config(mode='selective', likelihood_topk=1, prior_threshold=0.5)
    z = jnp.array([[2.0, -1.0, 0.5], [-0.3, 1.5, -2.0]])
    t = jnp.array([[-1.0, -1.0, -1.0], [-1.0, 1.0, -1.0]])
    prior = np.array([0.9, 0.1, 0.2])
    per = method.make_loss_fn(cfg, 3, [], prior)(z, t, {})
    assert per.shape == (2,)
    total = P.partial_asymmetric_loss(
        z, t, 'selective', likelihood_topk=1, prior=prior, prior_threshold=0.5, gamma_neg=1.0, gamma_unann=2.0
    )
    np.testing.assert_allclose(per.sum(), total, rtol=1e-6)
    # Class 0 is ignored by the prior; the top-2 of all unknowns by likelihood, (0,0) and (0,2), are ignored
    # too (the CSL reference ranks all unknowns). Row 0 keeps (0,1) as a negative, row 1 its positive and
    # (1,2) as a negative: each unknown-as-negative term is -log(1 - p) * p^2.
    p01 = 1 / (1 + math.exp(1.0))
    np.testing.assert_allclose(per[0], -math.log(1 - p01) * p01**2, rtol=1e-5)
    p12 = 1 / (1 + math.exp(2.0))
    np.testing.assert_allclose(
        per[1], -math.log(1 / (1 + math.exp(-1.5))) - math.log(1 - p12) * p12**2, rtol=1e-5
    )
    with pytest.raises(ConfigError, match='mode'):
        method.make_loss_fn(_config(mode='drop'), 3, [])


def test_group_softmax_loss_and_probabilities_by_hand():
    z = jnp.array([[1.0, 0.0, 2.0, 0.5, -0.5], [0.0, 0.0, 0.0, 3.0, 1.0]])
    # Groups of 3 and 2 classes; row 0 knows both groups, row 1 only the second.
    t = jnp.array([[0.0, 0.0, 1.0, 1.0, 0.0], [-1.0, -1.0, -1.0, 0.0, 1.0]])
    got = P.group_softmax_loss(z, t, (3, 2))

    def ce(logits, k):
        return -(logits[k] - math.log(sum(math.exp(v) for v in logits)))

    np.testing.assert_allclose(got, [ce([1, 0, 2], 2) + ce([0.5, -0.5], 0), ce([3, 1], 1)], rtol=1e-6)
    grad = jax.grad(lambda z: P.group_softmax_loss(z, t, (3, 2)).sum())(z)
    assert np.all(grad[1, :3] == 0.0)  # the unknown group gets no gradient
    probs = P.group_probabilities(z, [3, 2])
    np.testing.assert_allclose(probs[:, :3].sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(probs[:, 3:].sum(1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match='sum to 4'):
        P.group_softmax_loss(z, t, (3, 1))


def test_balanced_sampling_equalises_class_frequencies():
    # Class 0 is in 90 images, class 1 in 10 (none in both).
    t = np.zeros((100, 2), np.int8)
    t[:90, 0] = 1
    t[90:, 1] = 1
    idx = method.balanced_indices(t, seed=0)
    assert idx.shape == (100,)
    share = t[idx, 1].mean()
    assert 0.35 < share < 0.65  # ~0.5 instead of 0.1
    np.testing.assert_array_equal(idx, method.balanced_indices(t, seed=0))
    assert not np.array_equal(idx, method.balanced_indices(t, seed=1))


def test_selective_run_with_prior_phase_resumes_and_predicts(tmp_path):
    from mlrelabel import main, predict

    cfg = _config(mode='selective', prior_epochs=1, likelihood_topk=1)
    cfg.train.epochs = 2
    work = str(tmp_path / 'run')
    result = main.run(cfg, work)
    final = result['final']
    assert 0.0 <= final['val_map'] <= 1.0 and len(final['val_ap_per_class']) == 10
    assert final['train_unknown_fraction'] == pytest.approx(0.5, abs=0.1)  # RPS 0.5
    prior = class_prior.load_prior_csv(os.path.join(work, 'prior.csv'), [str(c) for c in range(10)])
    np.testing.assert_allclose(prior, result['prior'], rtol=1e-6)
    assert np.all((prior > 0) & (prior < 1))
    assert os.path.getsize(os.path.join(work, 'training.png')) > 1000
    stats = json.load(open(os.path.join(work, 'partial_labels.json')))
    assert stats['images'] == 64 and len(stats['unknown']) == 10
    # Rerunning the finished run resumes both phases from their checkpoints: same numbers.
    again = main.run(cfg, work)
    assert again['final']['val_map'] == final['val_map'] and again['prior'] == result['prior']
    # Predictions on a folder, CSV and JSON.
    images = tmp_path / 'images'
    images.mkdir()
    for i in range(3):
        Image.fromarray(np.full((20, 20, 3), 60 * i, np.uint8)).save(images / f'{i}.png')
    preds = predict.predict_folder(work, str(images), threshold=0.5)
    assert preds['files'] == ['0.png', '1.png', '2.png'] and preds['probs'].shape == (3, 10)
    for row, labels, ids in zip(preds['probs'], preds['labels'], preds['label_ids']):
        expected = [int(c) for c in np.flatnonzero(row > 0.5)] or [int(row.argmax())]
        assert ids == expected and labels == [str(c) for c in expected]
    predict.write_predictions(str(tmp_path / 'p.csv'), preds)
    predict.write_predictions(str(tmp_path / 'p.json'), preds)
    lines = (tmp_path / 'p.csv').read_text().splitlines()
    assert lines[0].startswith('filename,labels,label_ids,p_0') and len(lines) == 4
    doc = json.load(open(tmp_path / 'p.json'))
    assert doc['predictions'][2]['filename'] == '2.png' and doc['classes'] == [str(c) for c in range(10)]
    assert doc['predictions'][2]['label_ids'] == preds['label_ids'][2] and doc['round'] is None


def test_attribute_csv_group_heads_with_frozen_imported_backbone(tmp_path):
    from mlrelabel import main, predict
    from mlrelabel.methods import common
    from mlrelabel.models.torchvision import to_torchvision
    from mlrelabel.run import load_run

    rng = np.random.default_rng(0)
    colours = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200]])
    (tmp_path / 'images').mkdir()
    rows = ['filename,colour,size']
    for i in range(48):
        c, s = i % 3, (i // 3) % 2
        img = rng.integers(0, 20, (16, 16, 3), np.uint8)  # a noisy background: no two files alike
        w = 12 if s else 6
        img[:w, :w] = colours[c]
        Image.fromarray(img).save(tmp_path / 'images' / f'{i}.png')
        rows.append(f'{i}.png,{c if rng.random() > 0.3 else "#N/A"},{s if rng.random() > 0.3 else ""}')
    (tmp_path / 'attrs.csv').write_text('\n'.join(rows) + '\n')
    cfg = _config(head='group_softmax', balanced_sampling=True)
    cfg.data.source = 'attribute_csv'
    cfg.data.train_path = str(tmp_path / 'attrs.csv')
    cfg.data.val_fraction = 0.25
    cfg.data.attribute_groups = 'colour:3,size:2'
    # "Pretrained" weights: a torchvision-layout file from another seed, with a 1000-class head.
    pre_cfg = _config()
    pre_cfg.data.image_size = 16
    pre = common.init_variables(common.build_model(pre_cfg, 1000), pre_cfg, 123)
    np.savez(tmp_path / 'pre.npz', **to_torchvision(pre))
    cfg.model.pretrained = str(tmp_path / 'pre.npz')
    cfg.model.freeze_backbone = True
    work = str(tmp_path / 'run')
    result = main.run(cfg, work)
    final = result['final']
    assert {'val_acc_colour', 'val_acc_size', 'val_group_accuracy', 'val_map'} <= set(final)
    assert len(final['val_ap_per_class']) == 5
    run = load_run(work)
    assert run.groups == [('colour', 0, 3), ('size', 3, 5)] and run.head == 'group_softmax'
    variables = run.variables()  # the merged (plain) variables predict uses
    # The backbone and its statistics are the imported ones; the new 5-class classifier was trained.
    for a, b in zip(
        jax.tree.leaves({k: v for k, v in pre['params'].items() if k != 'fc'}),
        jax.tree.leaves({k: v for k, v in variables['params'].items() if k != 'fc'}),
    ):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(jax.tree.leaves(pre['batch_stats']), jax.tree.leaves(variables['batch_stats'])):
        np.testing.assert_array_equal(a, b)
    assert variables['params']['fc']['kernel'].shape == (64, 5)  # width 8 * 2**3
    preds = predict.predict_folder(work, str(tmp_path / 'images'))
    assert len(preds['files']) == 48 and set(preds['groups']) == {'colour', 'size'}
    assert all(len(labels) == 2 and labels[0].startswith('colour=') for labels in preds['labels'])
    np.testing.assert_array_equal(preds['groups']['colour'], preds['probs'][:, :3].argmax(1))


def test_transfer_optimizer_scales_the_backbone_learning_rate():
    """Fine-tuning: `fc` moves at the configured rate, every other parameter at backbone_lr_scale times it."""
    import jax

    cfg = _config(mode='ignore')
    cfg.optim.name, cfg.optim.learning_rate, cfg.optim.momentum = 'sgd', 0.1, 0.0
    cfg.optim.weight_decay, cfg.optim.warmup_epochs, cfg.optim.schedule = 0.0, 0.0, 'constant'
    cfg.model.backbone_lr_scale = 0.1
    params = {
        'conv1': {'kernel': jnp.ones((3, 3, 3, 4))},
        'fc': {'kernel': jnp.ones((4, 3)), 'bias': jnp.ones(3)},
    }
    tx = method.transfer_optimizer(cfg, params, steps_per_epoch=10, epochs=1)
    grads = jax.tree.map(jnp.ones_like, params)
    updates, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(updates['fc']['kernel'], -0.1, rtol=1e-6)
    np.testing.assert_allclose(updates['fc']['bias'], -0.1, rtol=1e-6)
    np.testing.assert_allclose(updates['conv1']['kernel'], -0.01, rtol=1e-6)
