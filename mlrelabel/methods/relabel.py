"""The relabel loop: Crop → Confidence → Label, iterated until the validation metric converges.

The method of the CS570 "multi-labeling ImageNet" project, with MC dropout (Gal & Ghahramani, 2016) and
test-time perturbation as confidence estimates. Round 0 trains on the given single labels. Each later
round scores crops of the training images with the previous round's model, assigns labels (threshold,
top-k, per-class Gaussian mixtures, or thresholds calibrated on validation sets), writes the new label
file, retrains on the multi-hot labels with sigmoid BCE and validates. It stops when the metric has not
improved by `min_delta` for `patience` rounds, or after `max_rounds`.

Every stage is resumable: a round's `labels.json` and `metrics.json` are written atomically once complete,
training resumes from the round's Orbax checkpoint, and the relabel pass saves its per-image record every
`save_every_batches` batches. Rerunning the same command after a kill at any point gives the same files.
"""

from __future__ import annotations

import json
import logging
import os
import time

import jax
import numpy as np

from mlrelabel import evaluate, metrics, parallel, report
from mlrelabel.data import pipeline
from mlrelabel.data.labels import LabelTable, read_label_file, write_label_file
from mlrelabel.io_utils import atomic_save_npz, atomic_write_json
from mlrelabel.methods import common
from mlrelabel.relabel import assign, score
from mlrelabel.train import loop

ASSIGN_METHODS = ('calibrated', 'gmm', 'threshold', 'topk')
SUMMARY_KEYS = ('val_top1', 'val_real_accuracy', 'val_f1', 'val_map', 'labels_f1', 'labels_per_image')


def run(config, workdir: str) -> dict:
    mesh = common.mesh_from_config(config)
    data = common.load_datasets(config, workdir)
    train, val = data['train'], data['val']
    model = common.build_model(config, train.num_classes)
    rc = config.relabel
    if rc.assign not in ASSIGN_METHODS:
        raise SystemExit(f'config.relabel.assign={rc.assign!r}: expected one of {", ".join(ASSIGN_METHODS)}')
    paths = train.paths or [f'{train.name}/{i:07d}' for i in range(len(train))]
    given = evaluate.first_labels(train.labels)
    labels = train.labels
    rows, best, stale, state, timings = [], -np.inf, 0, None, {}
    for k in range(rc.max_rounds + 1):
        rdir = os.path.join(workdir, f'round_{k}')
        t0 = time.time()
        changed = 0
        if k > 0:
            new_labels = _relabel_round(k, model, state, train, val, labels, given, paths, config, mesh, rdir)
            changed = int(sum(set(a) != set(b) for a, b in zip(labels.to_lists(), new_labels.to_lists())))
            labels = new_labels
        t1 = time.time()
        loss = config.train.loss if k == 0 else rc.loss
        state, history = _train_round(k, model, state, train, labels, val, loss, config, mesh, rdir)
        row = _round_metrics(k, model, state, train, val, labels, loss, changed, history, config, mesh, rdir)
        timings[k] = {'relabel_s': round(t1 - t0, 1), 'train_s': round(time.time() - t1, 1)}
        rows.append(row)
        if rc.metric not in row:
            numeric = sorted(key for key, v in row.items() if isinstance(v, float))
            raise SystemExit(f'config.relabel.metric={rc.metric!r} is not measured; choose one of {numeric}')
        value = row[rc.metric]
        if value > best + rc.min_delta:
            best, stale = value, 0
        else:
            stale += 1
        if parallel.is_main_process():
            atomic_write_json(os.path.join(workdir, 'summary.json'), {'rounds': rows, 'metric': rc.metric})
            report.plot_rounds(
                rows,
                [key for key in SUMMARY_KEYS if key != 'labels_per_image' and key in row],
                os.path.join(workdir, 'rounds.png'),
                title=f'{rc.confidence} relabel rounds',
            )
        if stale >= rc.patience:
            logging.info(
                'stopping after round %d: %s did not improve by %g for %d round(s)',
                k,
                rc.metric,
                rc.min_delta,
                rc.patience,
            )
            break
    if parallel.is_main_process():
        atomic_write_json(os.path.join(workdir, 'timing.json'), timings)
        cols = ['round'] + [c for c in SUMMARY_KEYS if c in rows[-1]] + ['images_changed']
        print(report.format_table(rows, cols))
    return {'rounds': rows}


def _train_round(k, model, prev_state, train, labels, val, loss, config, mesh, rdir):
    """Trains round k's model on `labels` (resuming its checkpoint); returns `(state, history)`.

    A warm start begins from round k-1's final weights (`prev_state`), else from the seed's fresh init.
    """
    rc = config.relabel
    cfg = config.copy_and_resolve_references()
    if k > 0 and rc.epochs:
        cfg.train.epochs = rc.epochs
    if k > 0 and rc.warm_start:
        variables = prev_state.variables
    else:
        variables = common.init_variables(model, config, config.seed)
    eval_fn = common.make_eval_fn(model, val, config, mesh, evaluate.head_of(loss))
    return loop.fit(
        model,
        variables,
        train,
        cfg,
        mesh=mesh,
        ckpt_dir=os.path.join(rdir, 'checkpoints'),
        labels=labels,
        eval_fn=eval_fn,
        loss=loss,
        desc=f'round {k} train',
        seed_offset=1000 * k,
    )


def _round_metrics(k, model, state, train, val, labels, loss, changed, history, config, mesh, rdir) -> dict:
    """Round k's row: validation metrics of its model and, when the truth is known, training-label quality."""
    path = os.path.join(rdir, 'metrics.json')
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    row = {'round': k, 'loss': loss, 'head': evaluate.head_of(loss), 'epochs': history[-1]['epoch']}
    row.update({key: v for key, v in history[-1].items() if key.startswith('val_')})
    row['labels_per_image'] = float(labels.num_labels().mean())
    row['images_changed'] = changed
    if train.truth is not None:
        row.update(
            {
                f'labels_{key}': float(v)
                for key, v in metrics.label_quality(labels, train.truth).items()
                if key != 'labels_per_image'
            }
        )
    row.update(
        common.imagenet_eval_sets(
            model, state.variables, config, mesh, row['head'], os.path.dirname(os.path.abspath(rdir))
        )
    )
    row['history'] = history
    if parallel.is_main_process():
        atomic_write_json(path, row)
    return row


def _relabel_round(k, model, state, train, val, labels, given, paths, config, mesh, rdir) -> LabelTable:
    """Scores crops of (a seeded subset of) the training images with round k-1's model and assigns labels."""
    rc = config.relabel
    label_path = os.path.join(rdir, 'labels.json')
    if os.path.exists(label_path):
        return read_label_file(label_path, train.num_classes)[1]
    os.makedirs(rdir, exist_ok=True)
    n, num_classes = len(train), train.num_classes
    head = evaluate.head_of(config.train.loss if k == 1 else rc.loss)
    selected = np.arange(n)
    if rc.num_relabel and rc.num_relabel < n:
        selected = np.sort(np.random.default_rng([config.seed, k]).choice(n, rc.num_relabel, replace=False))
    key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 7919 * k)
    record, first = _score_stream(
        model,
        state.variables,
        train.images,
        selected,
        head,
        config,
        mesh,
        os.path.join(rdir, 'relabel_record.npz'),
        key,
        desc=f'round {k} relabel',
    )
    thresholds = None
    method = rc.assign
    if method == 'calibrated' and val.truth is None and val.labels.num_labels().max() <= 1:
        logging.warning(
            "relabel.assign='calibrated' needs multi-label validation sets, and %s has one label "
            "per image: using 'gmm' instead",
            val.name or 'the validation set',
        )
        method = 'gmm'
    if method == 'calibrated':
        val_record, _ = _score_stream(
            model,
            state.variables,
            val.images,
            np.arange(len(val)),
            head,
            config,
            mesh,
            None,
            jax.random.fold_in(key, 1),
            desc=f'round {k} calibrate',
        )
        truth = val.truth if val.truth is not None else val.labels
        thresholds = assign.calibrate_thresholds(
            _dense(val_record, num_classes), truth.dense(np.arange(len(val)))
        )
    mixtures = None
    if method == 'gmm':
        sample = np.random.default_rng([config.seed, k, 1]).permutation(len(selected))[: rc.gmm_max_samples]
        mixtures = assign.fit_class_gmms(
            _dense(record, num_classes, np.sort(sample)),
            max_samples=rc.gmm_max_samples,
            seed=config.seed,
            space=rc.gmm_space,
        )
    lists, scores = [], []
    for start in range(0, len(selected), 8192):  # stream: memory grows with the chunk, not the dataset
        rows = np.arange(start, min(start + 8192, len(selected)))
        conf = _dense(record, num_classes, rows)
        assigned = _assign(method, conf, rc, mixtures, thresholds)
        if rc.max_uncertainty:
            unc = (
                _dense(record, num_classes, rows, 'std')
                if rc.uncertainty == 'std'
                else record[rc.uncertainty][rows]
            )
            assigned = assign.uncertainty_filter(assigned, unc, rc.max_uncertainty)
        chunk_lists, chunk_scores = assign.finalize_labels(
            np.asarray(assigned),
            given[selected[rows]],
            keep_given=rc.keep_given,
            conf=conf,
            max_labels=rc.max_labels or None,
        )
        lists += chunk_lists
        scores += chunk_scores
    new = LabelTable.from_lists(lists, num_classes, scores=scores)
    base = labels if labels.scores is not None else _with_unit_scores(labels)
    table = base.replace_rows(selected, new) if len(selected) < n else new
    if parallel.is_main_process():
        write_label_file(label_path, paths, table)
        _draw_relabel_examples(
            train, labels, table, first, selected, config, os.path.join(rdir, 'examples.png'), k
        )
    return table


def _with_unit_scores(table: LabelTable) -> LabelTable:
    return LabelTable(
        table.num_classes, table.offsets, table.classes, np.ones(len(table.classes), np.float32)
    )


def _assign(method, conf, rc, mixtures, thresholds):
    if method == 'gmm':
        return assign.assign_gmm(conf, mixtures, rc.gmm_min_posterior)
    if method == 'threshold':
        return assign.assign_threshold(conf, rc.threshold)
    if method == 'calibrated':
        return assign.assign_threshold(conf, thresholds)
    if method == 'topk':
        return assign.assign_topk(conf, rc.topk, rc.min_conf)
    raise SystemExit(f'config.relabel.assign={method!r}: expected one of {", ".join(ASSIGN_METHODS)}')


def _dense(record: dict, num_classes: int, rows=None, field: str = 'scores') -> np.ndarray:
    """`[R, C]` float32 from the compact top-k record (classes outside an image's top-k get 0)."""
    classes = record['classes'] if rows is None else record['classes'][rows]
    values = record[field] if rows is None else record[field][rows]
    out = np.zeros((classes.shape[0], num_classes), np.float32)
    np.put_along_axis(out, classes.astype(np.int64), values.astype(np.float32), axis=1)
    return out


def _score_stream(model, variables, images, selected, head, config, mesh, record_path, key, desc):
    """Streams `images[selected]` through the jitted crop → confidence function, sharded over the mesh.

    Returns the compact per-image record (`classes`, `scores`, `std` `[n, k]` for the top-k classes by
    confidence; `mutual_information`, `entropy` `[n]`) and the first batch's boxes and per-crop confidences
    (for the examples figure). With `record_path`, progress is saved every `save_every_batches` batches and
    at the end (the complete record stays in the round's folder), and a restarted pass resumes from there.
    """
    rc = config.relabel
    n = len(selected)
    bs = rc.batch_size
    parallel.check_batch_size(bs, mesh, 'config.relabel.batch_size')
    score_fn = score.make_score_fn(
        model, head, rc, mean=config.data.mean, std=config.data.std, image_size=config.data.image_size
    )
    rep, dat = parallel.replicated(mesh), parallel.data_sharding(mesh)
    fn = jax.jit(score_fn, in_shardings=(rep, dat, rep), out_shardings=dat)
    num_classes = model.num_classes
    topk = min(rc.record_topk, num_classes)
    record = {
        'classes': np.zeros((n, topk), np.int16 if num_classes < 2**15 else np.int32),
        'scores': np.zeros((n, topk), np.float16),
        'std': np.zeros((n, topk), np.float16),
        'mutual_information': np.zeros(n, np.float32),
        'entropy': np.zeros(n, np.float32),
    }
    done, first = 0, None
    if record_path and os.path.exists(record_path):
        with np.load(record_path) as saved:
            done = int(saved['done'])
            for name in record:
                record[name][:done] = saved[name][:done]
            first = {'boxes': saved['first_boxes'], 'crop_conf': saved['first_crop_conf']}
    num_batches = -(-n // bs)
    start_batch = done // bs
    fetch = lambda idx: {'image': np.asarray(images[selected[idx]])}  # noqa: E731
    batches = pipeline.eval_batches(n, bs, fetch)
    bar = parallel.progress_bar(n, desc, 'img', initial=done)
    for b, (batch, valid) in enumerate(batches):
        if b < start_batch:
            continue
        out = fn(variables, parallel.host_to_global(batch['image'], mesh), jax.random.fold_in(key, b))
        out = jax.device_get(out) if jax.process_count() == 1 else _allgather(out)
        conf = np.asarray(out['conf'])[:valid]
        order = np.argsort(-conf, axis=1, kind='stable')[:, :topk]
        rows = slice(b * bs, b * bs + valid)
        record['classes'][rows] = order
        record['scores'][rows] = np.take_along_axis(conf, order, 1)
        record['std'][rows] = np.take_along_axis(np.asarray(out['std'])[:valid], order, 1)
        record['mutual_information'][rows] = np.asarray(out['mutual_information'])[:valid]
        record['entropy'][rows] = np.asarray(out['entropy'])[:valid]
        if first is None:
            first = {
                'boxes': np.asarray(out['boxes'])[:valid],
                'crop_conf': np.asarray(out['crop_conf'])[:valid],
            }
        done = b * bs + valid
        bar.update(valid)
        if (
            record_path
            and parallel.is_main_process()
            and ((b + 1) % rc.save_every_batches == 0 or b + 1 == num_batches)
        ):
            atomic_save_npz(
                record_path,
                done=np.asarray(done),
                first_boxes=first['boxes'],
                first_crop_conf=first['crop_conf'],
                **record,
            )
    bar.close()
    return record, first


def _allgather(tree):
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree, tiled=True)


def _draw_relabel_examples(train, old, new, first, selected, config, path, k):
    """Training images with old → new labels and, per new label, the crop that is most confident in it."""
    m = min(config.report.num_examples, len(first['boxes']))
    idx = selected[:m]
    images = np.asarray(train.images[idx])
    captions, boxes, box_captions = [], [], []
    for j, i in enumerate(idx):
        labels = sorted(new.labels_of(i).tolist())
        text = f'{sorted(old.labels_of(i).tolist())} → {labels}'
        if train.truth is not None:
            text += f'\ntruth {sorted(train.truth.labels_of(i).tolist())}'
        captions.append(text)
        crop_conf = first['crop_conf'][j]  # [K, C]
        best = [int(crop_conf[:, c].argmax()) for c in labels]  # the crop supporting each label
        boxes.append(first['boxes'][j][best])
        box_captions.append([f'{c}:{crop_conf[b, c]:.2f}' for c, b in zip(labels, best)])
    report.draw_examples(
        images,
        captions,
        path,
        boxes=boxes,
        box_captions=box_captions,
        columns=8,
        title=f'round {k}: old → new labels; box = the crop most confident in each new label',
    )
