"""ReLabel: train on localized multi-labels, dense label maps pooled over each random crop.

Yun, Oh, Heo, Han, Choe & Chun, "Re-labeling ImageNet: from Single to Multi-Labels, from Global to
Localized Labels", CVPR 2021. Three phases, each resumable:

1. Teacher: the chosen model of a relabel run (`config.relabel_maps.teacher_recipe`, e.g. 'mc_dropout', run on
   the same data and seed in `<workdir>/teacher/`: ReLabel needs a teacher that sees every object, and from
   single labels the relabel loop makes the best one), a model trained there on the visible labels
   (`teacher_recipe` ''), or the checkpoint of a previous run named by `config.relabel_maps.teacher_workdir`.
2. Label maps: the teacher's dense class scores on every whole training image, top-k per location at
   `map_size × map_size`, written to the sharded store `<workdir>/label_maps/` (or an existing store,
   e.g. ReLabel's imported maps, via `config.relabel_maps.store`).
3. Student: trained from scratch with soft-target cross-entropy on LabelPooling targets (the map pooled
   over each random-resized-crop box), optionally with CutMix whose pasted region is labelled by pooling
   the partner's map over that region; CutMix stops for the last `cutmix_off_epochs` epochs.

Leaves `teacher/` (checkpoints, metrics.json), `label_maps/` (index.json, order.json, shards),
`checkpoints/` (the student), `metrics.json` (teacher and student metrics, per-epoch history),
`training.png`, `examples.png` (training images with their map argmax and crops with pooled targets),
`tensorboard/` (teacher, then student) and `run.json` (the manifest; the student is the run's model).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from mlrelabel import parallel, report
from mlrelabel.config.schema import migrate
from mlrelabel.errors import ConfigError, DataError
from mlrelabel.io_utils import atomic_write_json
from mlrelabel.label_maps import maps as label_maps
from mlrelabel.label_maps import pooling as label_pooling
from mlrelabel.label_maps.store import LabelMapSource, LabelMapStore, LabelMapWriter, MapShape
from mlrelabel.manifest import has_steps, read_manifest
from mlrelabel.methods import common, launch
from mlrelabel.ops import boxes as ops_boxes
from mlrelabel.train import inference, optim
from mlrelabel.train.checkpoint import Checkpointer
from mlrelabel.train.state import TrainState


def run(config, workdir: str) -> dict:
    if config.train.loss not in ('soft_ce', 'softmax_ce'):
        raise ConfigError(
            f"config.train.loss={config.train.loss!r}: label-map targets are distributions, use "
            f"'soft_ce' (or 'softmax_ce')"
        )
    mesh = common.mesh_from_config(config)
    data = common.load_datasets(config, workdir)
    train = data['train']
    num_classes = train.num_classes
    ids = train.paths or [f'{train.name}/{i:07d}' for i in range(len(train))]

    store_dir, teacher_metrics = _label_maps(config, workdir, data, mesh, ids)
    store = LabelMapStore(store_dir)
    if store.num_classes != num_classes:
        raise DataError(f'{store_dir}: maps over {store.num_classes} classes, the data has {num_classes}')
    source = LabelMapSource(store, store.rows_for(ids))

    model = common.build_model(config, num_classes)
    variables = common.init_variables(model, config, config.seed)
    transform = _pooling_transform(config, num_classes, len(train))
    setup = common.ModelSetup(model, data, config, mesh)
    state, history, head = common.fit_validated(
        setup,
        variables,
        os.path.join(workdir, 'checkpoints'),
        labels=source,
        desc='student',
        seed_offset=1,
        transform_fn=transform,
    )
    final = common.final_metrics(setup, state, history, head, workdir)
    result = {
        'teacher': teacher_metrics,
        'history': history,
        'final': final,
        'label_maps': _store_summary(store, store_dir),
    }
    if parallel.is_main_process():
        _write_outputs(config, workdir, result, train, source)
    common.record_run(
        workdir,
        config,
        final,
        num_classes=num_classes,
        head=head,
        class_names=train.class_names,
        groups=train.groups,
    )
    return result


def _pooling_transform(config, num_classes: int, num_train: int):
    """The student's train-step transform: LabelPooling targets, with CutMix until `cutmix_off_epochs` before
    the end."""
    rm = config.relabel_maps
    steps_per_epoch = num_train // config.train.batch_size
    return label_maps.make_pooling_transform(
        num_classes,
        cutmix=label_maps.CutMixOptions(
            enabled=rm.cutmix,
            alpha=rm.cutmix_alpha,
            prob=rm.cutmix_prob,
            until_step=steps_per_epoch * max(config.train.epochs - rm.cutmix_off_epochs, 0),
        ),
        transpose_boxes=rm.transpose_boxes,
        offset=rm.offset,
    )


def _label_maps(config, workdir: str, data: dict, mesh, ids: list) -> tuple[str, dict]:
    """`(store folder, teacher's final metrics)`: `relabel_maps.store`, or the maps the teacher writes here to
    `<workdir>/label_maps` (resumable)."""
    rm = config.relabel_maps
    if rm.store:
        return rm.store, {}
    store_dir = os.path.join(workdir, 'label_maps')
    teacher_model, teacher_cfg, variables, teacher_metrics = _teacher(
        config, workdir, data['train'], data['val'], mesh
    )
    _generate(Teacher(teacher_model, teacher_cfg, variables), data['train'], ids, config, mesh, store_dir)
    return store_dir, teacher_metrics


def _store_summary(store: LabelMapStore, store_dir: str) -> dict:
    """Where the maps are and their size per image (float16 scores and int16/int32 classes)."""
    k, h, w = store.shape
    return {
        'store': os.path.abspath(store_dir),
        'k': k,
        'height': h,
        'width': w,
        'bytes_per_image': k * h * w * (2 + (2 if store.num_classes < 2**15 else 4)),  # fp16 + int16/int32
    }


def _write_outputs(config, workdir: str, result: dict, train, source: LabelMapSource) -> None:
    """`metrics.json`, `training.png`, `examples.png` and the final table on stdout (main process)."""
    rm, history, final, teacher_metrics = (
        config.relabel_maps,
        result['history'],
        result['final'],
        result['teacher'],
    )
    atomic_write_json(os.path.join(workdir, 'metrics.json'), result)
    report.plot_history(
        history,
        os.path.join(workdir, 'training.png'),
        title=f'{config.model.name} on {train.name}: label maps{" + CutMix" if rm.cutmix else ""}',
    )
    _draw_examples(train, source, config, os.path.join(workdir, 'examples.png'))
    keys = ['val_top1', 'val_real_accuracy', 'val_f1', 'val_map']
    rows = ([dict(teacher_metrics, phase='teacher')] if teacher_metrics else []) + [
        dict(final, phase='student')
    ]
    print(report.format_table(rows, ['phase'] + [key for key in keys if key in final]))


# ----------------------------------------------------------------------------------------------------------
# Phase 1: the teacher.
# ----------------------------------------------------------------------------------------------------------


def _teacher(config, workdir, train, val, mesh):
    """`(model, teacher config, variables, final metrics)`: restored from `teacher_workdir`, from the relabel run
    of `teacher_recipe` made here, or trained here on the visible labels (`teacher_recipe` '')."""
    rm = config.relabel_maps
    if rm.teacher_workdir:
        return _load_teacher(rm.teacher_workdir, train.num_classes)
    if rm.teacher_recipe:
        tdir = os.path.join(workdir, 'teacher')
        if read_manifest(tdir) is None:  # run.json is written last: a finished teacher is not run again
            if parallel.is_main_process():
                print(
                    f'mlrelabel: the teacher first: {rm.teacher_recipe} in {tdir} (a relabel run of its own; '
                    "relabel_maps.teacher_recipe='' for a teacher trained on the visible labels)",
                    file=sys.stderr,
                )
            launch.run_method(teacher_config(config), tdir)
        return _load_teacher(tdir, train.num_classes)
    cfg = config.copy_and_resolve_references()
    cfg.train.epochs = rm.teacher_epochs or config.train.epochs
    model = common.build_model(config, train.num_classes)
    variables = common.init_variables(model, config, config.seed)
    tdir = os.path.join(workdir, 'teacher')
    # Same seed and data order as `configs/supervised.py`: with equal settings the teacher *is* that baseline.
    state, history, _ = common.fit_validated(
        common.ModelSetup(model, {'train': train, 'val': val}, cfg, mesh),
        variables,
        os.path.join(tdir, 'checkpoints'),
        loss=rm.teacher_loss,
        desc='teacher',
    )
    final = {key: v for key, v in history[-1].items() if key.startswith('val_') or key == 'epoch'}
    if parallel.is_main_process():
        atomic_write_json(os.path.join(tdir, 'metrics.json'), {'history': history, 'final': final})
    return model, cfg, jax.tree.map(np.asarray, state.variables), final


def teacher_config(config) -> ml_collections.ConfigDict:
    """The config of the relabel run that teaches (`relabel_maps.teacher_recipe`, e.g. 'mc_dropout'): that
    recipe on this run's data, seed, devices and network; the recipe keeps its own dropout (its confidence needs
    it), training budget and relabel rounds."""
    from mlrelabel.config import recipes

    cfg = recipes.load(config.relabel_maps.teacher_recipe)  # a relabel recipe: validation checked it
    mine = config.copy_and_resolve_references()
    for section in ('data', 'parallel', 'compile_cache'):
        if section in mine:
            cfg[section] = mine[section]
    cfg.seed = mine.seed
    dropout = cfg.model.dropout_rate
    cfg.model = mine.model
    cfg.model.dropout_rate = dropout
    return cfg


def _checkpoint_dir(path: str) -> str:
    """The Orbax directory of a run: `path` itself, the model its run.json names (a relabel run: the chosen
    round's), `path/checkpoints`, or the last `path/round_<k>/checkpoints`."""
    if has_steps(path):
        return path
    manifest = read_manifest(path) if os.path.isdir(path) else None
    if manifest and has_steps(os.path.join(path, manifest['checkpoint'])):
        return os.path.join(path, manifest['checkpoint'])
    if has_steps(os.path.join(path, 'checkpoints')):
        return os.path.join(path, 'checkpoints')
    rounds = sorted(
        (
            int(n.split('_')[1])
            for n in (os.listdir(path) if os.path.isdir(path) else [])
            if n.startswith('round_') and n.split('_')[1].isdigit()
        ),
        reverse=True,
    )
    for k in rounds:
        if has_steps(os.path.join(path, f'round_{k}', 'checkpoints')):
            return os.path.join(path, f'round_{k}', 'checkpoints')
    raise ConfigError(
        f'config.relabel_maps.teacher_workdir={path!r}: no Orbax checkpoint in it, in '
        f'{path}/checkpoints or in {path}/round_<k>/checkpoints'
    )


def _load_teacher(path: str, num_classes: int):
    """Restores a previous run's final model: its config.json gives the model and normalisation."""
    ckpt_dir = _checkpoint_dir(path)
    candidates = [
        os.path.join(path, 'config.json'),
        os.path.join(os.path.dirname(ckpt_dir), 'config.json'),
        os.path.join(os.path.dirname(os.path.dirname(ckpt_dir)), 'config.json'),
    ]
    config_path = next((p for p in candidates if os.path.exists(p)), None)
    if config_path is None:
        raise ConfigError(f'config.relabel_maps.teacher_workdir={path!r}: no config.json next to {ckpt_dir}')
    with open(config_path) as f:
        cfg = migrate(json.load(f))
    if cfg.data.num_classes != num_classes:
        raise DataError(
            f'{config_path}: the teacher has {cfg.data.num_classes} classes, the data {num_classes}'
        )
    model = common.build_model(cfg, num_classes)
    tx, _ = optim.make_optimizer(cfg.optim, 1, cfg.train.epochs, cfg.train.batch_size)
    template = TrainState.create(
        common.init_variables(model, cfg, cfg.seed, pretrained=False), tx, jax.random.PRNGKey(0)
    )
    ckpt = Checkpointer(ckpt_dir)
    state, meta = ckpt.restore(template)
    ckpt.close()
    history = meta.get('history') or [{}]
    final = {key: v for key, v in history[-1].items() if key.startswith('val_') or key == 'epoch'}
    logging.info('teacher: %s step %d', ckpt_dir, int(state.step))
    return model, cfg, jax.tree.map(np.asarray, state.variables), final


# ----------------------------------------------------------------------------------------------------------
# Phase 2: label maps.
# ----------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Teacher:
    """The network whose maps the student learns from: its model, its config (normalisation) and variables."""

    model: Any
    config: Any
    variables: Any


def _generate(teacher: Teacher, train, ids, config, mesh, store_dir):
    """Writes the teacher's top-k maps of every training image to `store_dir`, shard by shard (resumable)."""
    model, teacher_cfg, variables = teacher.model, teacher.config, teacher.variables
    rm = config.relabel_maps
    bs = rm.batch_size
    parallel.check_batch_size(bs, mesh, 'config.relabel_maps.batch_size')
    image_size = rm.teacher_image_size or config.data.image_size
    generate = label_maps.make_generate_fn(
        model,
        k=rm.topk,
        map_size=rm.map_size,
        image_size=image_size,
        mean=teacher_cfg.data.mean,
        std=teacher_cfg.data.std,
    )
    rep, dat = parallel.replicated(mesh), parallel.data_sharding(mesh)
    fn = jax.jit(generate, in_shardings=(rep, dat), out_shardings=(dat, dat))
    made = (
        f'the {rm.teacher_recipe} run in teacher/' if rm.teacher_recipe else 'trained on the visible labels'
    )
    meta = {'teacher': rm.teacher_workdir or made, 'image_size': image_size}
    shape = MapShape(k=rm.topk, height=rm.map_size, width=rm.map_size, num_classes=train.num_classes)
    store = dict(shape=shape, shard_size=rm.shard_size, meta=meta)
    main = parallel.is_main_process()
    writer = LabelMapWriter(store_dir, ids, **store) if main else None
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices('label_maps_index')
        writer = writer or LabelMapWriter(store_dir, ids, **store)  # reads the index process 0 wrote
    if writer.complete():
        return
    variables = parallel.replicate(variables, mesh)
    bar = parallel.progress_bar(len(ids), 'label maps', 'img', initial=writer.num_done())
    for shard in writer.missing_shards():
        start, stop = writer.shard_range(shard)
        parts = ([], [])
        for out in inference.batched_outputs(fn, variables, train.images, range(start, stop), bs, mesh):
            for part, array in zip(parts, out):
                part.append(array)
            bar.update(len(out[0]))
        if main:
            writer.write_shard(shard, np.concatenate(parts[0]), np.concatenate(parts[1]))
    bar.close()
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices('label_maps_written')


# ----------------------------------------------------------------------------------------------------------
# Report.
# ----------------------------------------------------------------------------------------------------------


def _palette(num_classes: int) -> np.ndarray:
    """`[C, 3]` uint8: one colour per class (tab10 up to 10 classes, else hues)."""
    import matplotlib

    if num_classes <= 10:
        palette = matplotlib.colormaps['tab10'](np.arange(num_classes))
    else:
        palette = matplotlib.colormaps['hsv'](np.arange(num_classes) / num_classes)
    return (np.asarray(palette)[:, :3] * 255).astype(np.uint8)


def _pooled_target(dense, box, rm) -> np.ndarray:
    """`[C]`: the LabelPooling target of one image's dense map `[1, ...]` over one crop box `[1, 4]`."""
    pooled = label_pooling.label_pooling(dense, box, transpose_boxes=rm.transpose_boxes, offset=rm.offset)
    return np.asarray(pooled)[0]


def _draw_examples(train, source, config, path):
    """Per image: the image with two random crops captioned by their pooled target's top classes, then its
    label map's argmax (one colour per class) captioned with the classes it contains."""
    n = min(config.report.num_examples, len(train), 8)
    idx = np.arange(n)
    images = np.asarray(train.images[idx])
    maps = source.batch(idx)
    argmax = np.asarray(label_maps.map_argmax(maps['map_scores'], maps['map_classes']))  # [n, r, r]
    num_classes = source.num_classes
    palette = _palette(num_classes)
    size = images.shape[1]
    boxes = np.asarray(
        ops_boxes.random_boxes(
            jax.random.PRNGKey(config.seed),
            n,
            2,
            scale=tuple(config.train.augment.scale),
            ratio=tuple(config.train.augment.ratio),
        )
    )
    dense = label_pooling.topk_to_dense(maps['map_scores'], maps['map_classes'], num_classes)
    tiles, captions, tile_boxes, box_captions = [], [], [], []
    truth = train.truth if train.truth is not None else train.labels
    for i in range(n):
        targets = [
            _pooled_target(dense[i : i + 1], boxes[i, j : j + 1], config.relabel_maps) for j in range(2)
        ]
        tiles.append(images[i])
        names = train.class_names
        captions.append(
            f'visible {report.label_text(sorted(train.labels.labels_of(i).tolist()), names)}\n'
            f'truth {report.label_text(sorted(truth.labels_of(i).tolist()), names)}'
        )
        tile_boxes.append(boxes[i])
        box_captions.append(
            [
                ' '.join(f'{report.class_text(c, names)}:{t[c]:.2f}' for c in np.argsort(-t)[:2])
                for t in targets
            ]
        )
        cells = argmax[i]
        reps = -(-size // cells.shape[0])
        tiles.append(np.repeat(np.repeat(palette[cells], reps, 0), reps, 1)[:size, :size])
        captions.append(f'map argmax {report.label_text(sorted(set(cells.ravel().tolist())), names)}')
        tile_boxes.append(np.zeros((0, 4)))
        box_captions.append([])
    report.draw_examples(
        np.stack(tiles),
        captions,
        path,
        boxes=tile_boxes,
        box_captions=box_captions,
        columns=8,
        title='training images: crops with their pooled targets (top-2) | label-map argmax',
    )
