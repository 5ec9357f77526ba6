"""Predictions of a trained run on a folder of images: per-image probabilities, the predicted label set
and, for attribute data, each group's argmax.

  python -m mlrelabel.predict --workdir=RUN --images=DIR --out=preds.csv [--out=preds.json] [--threshold=0.5]

Reads the run's `config.json` and its latest Orbax checkpoint (`<workdir>/checkpoints`), plus
`partial_labels.json` (class names, attribute groups) when the run wrote one. Images are every
JPEG/PNG/BMP/WebP file directly in DIR, sorted by name, resized and centre-cropped like training data;
unreadable files are skipped with a warning. The predicted set is {classes with p > threshold}
(sigmoid head; the argmax is added when nothing passes, as in the evaluation protocol) or each
group's argmax (group-softmax head). Outputs are written atomically; the format follows the extension.
"""

from __future__ import annotations

import csv
import io
import json
import os
import warnings

import ml_collections
import numpy as np
from PIL import Image

from mlrelabel import evaluate
from mlrelabel.io_utils import atomic_write_json, atomic_write_text

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')


def load_run(workdir: str):
    """`(config, model, variables, info)` of a finished (or interrupted) run; `info` holds
    `class_names`, `groups` and `head`."""
    import orbax.checkpoint as ocp

    from mlrelabel.methods import common

    path = os.path.join(workdir, 'config.json')
    if not os.path.exists(path):
        raise SystemExit(f'{workdir}: no config.json (is it a run directory?)')
    with open(path) as f:
        config = ml_collections.ConfigDict(json.load(f))
    info_path = os.path.join(workdir, 'partial_labels.json')
    info = {}
    if os.path.exists(info_path):
        with open(info_path) as f:
            info = json.load(f)
    num_classes = int(info.get('classes', config.data.num_classes))
    names = info.get('class_names') or [str(c) for c in range(num_classes)]
    groups = [tuple(g) for g in info.get('groups', [])]
    from mlrelabel.methods.relabel_maps import _checkpoint_dir

    # The run's checkpoint: `checkpoints/`, or the last `round_<k>/checkpoints` of a relabel run.
    ckpt_dir = os.path.abspath(_checkpoint_dir(workdir))
    loss = config.train.loss  # the link of the model that was trained last
    if 'mile' in config:
        from mlrelabel.methods.mile import SCHEMA_LOSSES

        loss = SCHEMA_LOSSES[config.mile.schema]
    elif 'relabel' in config and os.path.basename(os.path.dirname(ckpt_dir)) not in ('round_0', ''):
        if os.path.basename(os.path.dirname(ckpt_dir)).startswith('round_'):
            loss = config.relabel.loss
    head = config.get('partial', {}).get('head', evaluate.head_of(loss))
    manager = ocp.CheckpointManager(ckpt_dir, item_names=('state', 'meta'))
    step = manager.latest_step()
    if step is None:
        raise SystemExit(f'{ckpt_dir}: no checkpoint')
    state = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))['state']
    manager.close()
    if 'student' in state:  # MILe: the student is the evaluated model
        state = state['student']
    variables = {'params': state['params'], 'batch_stats': state['batch_stats']}
    model = common.build_model(config, num_classes)
    if config.model.get('freeze_backbone', False):
        from mlrelabel.models.frozen import FrozenBackbone

        variables = FrozenBackbone.merge(variables)
    info = {'class_names': names, 'groups': groups, 'head': head, 'step': int(step)}
    return config, model, variables, info


def _readable(path: str) -> bool:
    try:
        with Image.open(path) as img:
            img.convert('RGB')
        return True
    except Exception:  # noqa: BLE001 - any decoder failure means the file is unusable
        return False


def predict_folder(workdir: str, images_dir: str, threshold: float | None = None) -> dict:
    """`{'files', 'probs' [N, C], 'labels' (lists of class names), 'groups' ({name: [N] class index}),
    'class_names', 'threshold', 'head', 'step'}` for the images in `images_dir`."""
    from mlrelabel import partial as P
    from mlrelabel.data.sources import ImageFiles
    from mlrelabel.methods import common
    from mlrelabel.train import loop

    config, model, variables, info = load_run(workdir)
    threshold = float(config.eval.threshold if threshold is None else threshold)
    if not os.path.isdir(images_dir):
        raise SystemExit(f'--images={images_dir}: no such folder')
    files = sorted(f for f in os.listdir(images_dir) if f.lower().endswith(IMAGE_EXTENSIONS))
    bad = [f for f in files if not _readable(os.path.join(images_dir, f))]
    if bad:
        warnings.warn(
            f'{images_dir}: skipped {len(bad)} unreadable images: {", ".join(bad[:20])}',
            RuntimeWarning,
            stacklevel=2,
        )
        files = [f for f in files if f not in set(bad)]
    if not files:
        raise SystemExit(f'--images={images_dir}: no readable images ({", ".join(IMAGE_EXTENSIONS)})')
    images = ImageFiles([os.path.join(images_dir, f) for f in files], config.data.image_size)
    with config.unlocked():
        config.parallel.num_devices = 1  # inference of a folder: one device, any batch size
    mesh = common.mesh_from_config(config)
    logits = loop.predict(model, variables, images, len(files), config, mesh=mesh, desc='predict')
    names, groups = info['class_names'], info['groups']
    if info['head'] == 'group_softmax':
        probs = P.group_probabilities(logits, [k for _, k in groups])
    else:
        probs = evaluate.probabilities(logits, info['head'])
    group_argmax, start = {}, 0
    for name, k in groups:
        group_argmax[name] = probs[:, start : start + k].argmax(1)
        start += k
    if info['head'] == 'group_softmax':
        offsets = np.cumsum([0] + [k for _, k in groups])[:-1]
        label_sets = [
            [names[o + group_argmax[g][i]] for (g, _), o in zip(groups, offsets)] for i in range(len(files))
        ]
    else:
        label_sets = []
        for p in probs:
            chosen = np.flatnonzero(p > threshold)
            label_sets.append([names[c] for c in (chosen if chosen.size else [int(p.argmax())])])
    return {
        'files': files,
        'probs': probs,
        'labels': label_sets,
        'groups': group_argmax,
        'class_names': names,
        'threshold': threshold,
        'head': info['head'],
        'step': info['step'],
    }


def write_predictions(path: str, preds: dict) -> None:
    """CSV (filename, labels joined by ';', one column per group, p_<class>...) or JSON, atomically."""
    names, groups = preds['class_names'], list(preds['groups'])
    if path.endswith('.json'):
        rows = []
        for i, f in enumerate(preds['files']):
            row = {
                'filename': f,
                'labels': preds['labels'][i],
                'probs': {n: round(float(p), 6) for n, p in zip(names, preds['probs'][i])},
            }
            if groups:
                row['groups'] = {g: int(preds['groups'][g][i]) for g in groups}
            rows.append(row)
        atomic_write_json(
            path,
            {
                'threshold': preds['threshold'],
                'head': preds['head'],
                'step': preds['step'],
                'classes': names,
                'predictions': rows,
            },
        )
    elif path.endswith('.csv'):
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator='\n')
        writer.writerow(['filename', 'labels', *groups, *[f'p_{n}' for n in names]])
        for i, f in enumerate(preds['files']):
            writer.writerow(
                [
                    f,
                    ';'.join(preds['labels'][i]),
                    *[int(preds['groups'][g][i]) for g in groups],
                    *[f'{float(p):.6f}' for p in preds['probs'][i]],
                ]
            )
        atomic_write_text(path, buffer.getvalue())
    else:
        raise SystemExit(f'--out={path}: expected a .csv or .json file name')


def main(argv):
    from absl import flags

    f = flags.FLAGS
    if len(argv) > 1:
        raise SystemExit(f'unexpected arguments: {argv[1:]}')
    preds = predict_folder(f.workdir, f.images, f.threshold)
    for out in f.out:
        write_predictions(out, preds)
        print(f'{out}: {len(preds["files"])} images')


if __name__ == '__main__':
    from absl import app, flags

    flags.DEFINE_string('workdir', None, 'Run directory (config.json + checkpoints/).')
    flags.DEFINE_string('images', None, 'Folder of images to label.')
    flags.DEFINE_multi_string('out', None, 'Output file(s): .csv and/or .json.')
    flags.DEFINE_float(
        'threshold', None, 'Probability threshold of the predicted set (default: config.eval.threshold).'
    )
    flags.mark_flags_as_required(['workdir', 'images', 'out'])
    app.run(main)
