"""Predictions of a finished run on a folder of images: label sets (names and ids) and their evidence.

  mlrelabel-predict --workdir=RUN --images=DIR [--out=preds.csv] [--out=preds.json] [--recursive] [--round=K]
                    [--threshold=T] [--evidence=crops|image]
  python -m mlrelabel.predict ...   (the same)

The run is opened with `mlrelabel.load_run` (its run.json manifest; runs without one are read from
config.json and their checkpoints), so every method and data source works and the class count and names come
from the run. The model is the run's chosen round unless --round=K. Images are every JPEG/PNG/BMP/WebP file
directly in DIR (with --recursive, in its subfolders too), sorted by path, resized and centre-cropped like
training images; unreadable files are skipped with a warning. Without --out, a table of each image's labels and
their scores is printed.

The label sets follow the rule the run's own labels were made with (`mlrelabel.relabel.label_sets`): a relabel round
saved per-class thresholds on the crop evidence (each crop's log-odds aggregated over the crops by the run's
`relabel.aggregate`), so its sets are the classes whose crop evidence reaches them, computed with that round's
model (--round=K: round K's thresholds.json); other runs use whole-image probabilities p > threshold (the run's
per-class thresholds.json, else config.eval.threshold); a group-softmax head predicts each group's argmax. --threshold=T replaces the
thresholds by one probability on the same evidence. --evidence=crops scores any run's model on the relabel
grid of crops (a single-label model ranks small objects low on whole images; on crops each is some window's main
object): for a run whose rounds fitted no crop thresholds, per-class ones are fitted once on its validation images
and given labels and saved as <workdir>/crop_thresholds.json (--threshold=T: one threshold instead, with a note);
--evidence=image asks a relabel round for whole-image probabilities. An image where nothing passes gets the argmax. The p_<class>
columns are that evidence as probabilities. Outputs are written atomically; the format follows the extension.
Quiet unless --verbosity=0 or more. A checkpoint with NaN or infinite weights is refused. A mistake (no run in
--workdir, no images, an unknown --round, a misspelt flag) ends in one paragraph and exit status 2.
"""

from __future__ import annotations

import csv
import io
import os
import sys
import warnings

import numpy as np

from mlrelabel.errors import ConfigError, DataError
from mlrelabel.io_utils import atomic_write_json, atomic_write_text

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')
CHUNK = 1024  # images decoded at a time
RULE_WORDS = {
    'crops': 'crop evidence as in the relabel rounds',
    'image': 'whole-image probabilities',
    'groups': 'argmax per attribute group',
}


def _readable(path: str) -> bool:
    from mlrelabel.data.images import open_image

    try:
        open_image(path)  # decoded as training decodes it (mlrelabel.read_image)
        return True
    except Exception:  # noqa: BLE001 - any decoder failure means the file is unusable
        return False


def list_images(images_dir: str, recursive: bool = False) -> list[str]:
    """The readable image files in `images_dir` (with `recursive`, in its subfolders too), as paths relative to
    it, sorted; unreadable ones are skipped with a warning."""
    if not os.path.isdir(images_dir):
        raise FileNotFoundError(f'--images={images_dir}: no such folder')
    if recursive:
        files = sorted(
            os.path.relpath(os.path.join(folder, f), images_dir)
            for folder, _, names in os.walk(images_dir)
            for f in names
            if f.lower().endswith(IMAGE_EXTENSIONS)
        )
    else:
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
        where = ' or its subfolders' if recursive else ' (--recursive for subfolders)'
        raise FileNotFoundError(
            f'--images={images_dir}: no readable images ({", ".join(IMAGE_EXTENSIONS)}) in it{where}'
        )
    return files


def predict_folder(
    workdir: str,
    images_dir: str,
    threshold: float | None = None,
    round: int | None = None,
    evidence: str | None = None,
    recursive: bool = False,
) -> dict:
    """`{'files', 'probs' [N, C] (the evidence the sets were decided on, as probabilities), 'labels' (class
    names per image), 'label_ids', 'groups' ({name: [N] argmax within the group}), 'class_names', 'evidence'
    ('crops' | 'image' | 'groups'), 'threshold' (a probability or a per-class list; 1.0 = never),
    'threshold_source', 'head', 'round', 'step', 'note' (a warning about the rule, or None)}` for the images in
    `images_dir` (`Run.predict_labels`)."""
    from mlrelabel.data.sources import ImageFiles
    from mlrelabel.relabel import label_sets
    from mlrelabel.relabel.evidence import to_probability
    from mlrelabel.run import load_run

    run = load_run(workdir)
    info = run.round_info(round)
    rule = run.label_rule(round, threshold, evidence)
    if rule.get('note') == label_sets.UNCALIBRATED_CROPS and round is None:
        save_crop_thresholds(run)  # once per run: <workdir>/crop_thresholds.json, then the rule reads it
        rule = run.label_rule(round, threshold, evidence)
    files = list_images(images_dir, recursive)
    reader = ImageFiles([os.path.join(images_dir, f) for f in files], run.image_size)
    ids, probs = [], []
    for s in range(0, len(files), CHUNK):
        batch = reader[np.arange(s, min(s + CHUNK, len(files)))]
        sets, scores = run.predict_labels(batch, round, threshold, evidence)
        ids += sets
        probs.append(scores)
    probs = np.concatenate(probs)
    groups = {name: probs[:, a:b].argmax(1) for name, a, b in run.groups}
    names = run.class_names
    t = rule['thresholds']
    if t is not None and rule['space'] == 'log_odds':
        t = to_probability(t)
    uniform = t is None or bool(np.all(t == t[0]))
    return {
        'files': files,
        'probs': probs,
        'labels': [[names[c] for c in row] for row in ids],
        'label_ids': ids,
        'groups': groups,
        'class_names': names,
        'evidence': rule['evidence'],
        'threshold': (None if t is None else float(t[0])) if uniform else [float(x) for x in t],
        'threshold_source': rule['source']
        if rule['topk'] is None
        else f'top-{rule["topk"]} ({rule["source"]})',
        'head': info['head'],
        'round': info['round'],
        'step': run.step(round),
        'note': rule.get('note'),
    }


def save_crop_thresholds(run) -> str:
    """Fits per-class thresholds on the crop evidence of `run`'s chosen model over its validation images and their
    given labels (`label_sets.fit_crop_thresholds`, as a relabel round fits them) and saves them atomically as
    `<workdir>/crop_thresholds.json` with the model they belong to (a file fitted for another model is replaced);
    returns its path."""
    from mlrelabel.eval import evaluate
    from mlrelabel.relabel import label_sets

    fitted, path = label_sets.read_crop_thresholds(run)
    if fitted is not None:
        return path
    val, evidence = validation_crop_evidence(run)
    thresholds, details = label_sets.fit_crop_thresholds(
        evidence, evaluate.first_labels(val.labels), label_sets.crop_settings(run.config)
    )
    atomic_write_json(
        path,
        {
            'evidence': 'crops',
            'checkpoint': run.manifest.get('checkpoint'),
            'step': run.step(),
            'classes': list(run.class_names),
            'log_odds': [float(t) if np.isfinite(t) else None for t in thresholds],
            **details,
        },
    )
    print(
        f'mlrelabel-predict: fitted per-class crop thresholds on {len(val)} validation images (their given labels) '
        f'-> {path}',
        file=sys.stderr,
    )
    return path


def validation_crop_evidence(run) -> tuple:
    """`(val Dataset, crop evidence [N, C] log-odds)` of `run`'s chosen model on its validation split, decoded
    CHUNK images at a time (`label_sets.crop_scores`)."""
    from mlrelabel.methods import common
    from mlrelabel.relabel import label_sets

    val = common.load_datasets(run.config.copy_and_resolve_references(), run.workdir)['val']
    rows = np.arange(len(val))
    evidence = np.concatenate(
        [label_sets.crop_scores(run, val.images[rows[s : s + CHUNK]]) for s in range(0, len(rows), CHUNK)]
    )
    return val, evidence


def format_predictions(preds: dict) -> str:
    """The predictions as a plain-text table for a terminal: file, label names, and each label's score."""
    names = preds['class_names']
    index = {n: c for c, n in enumerate(names)}
    rows = [('file', 'labels', 'scores')]
    for i, f in enumerate(preds['files']):
        labels = preds['labels'][i]
        scores = ' '.join(f'{float(preds["probs"][i][index[n]]):.2f}' for n in labels)
        rows.append((f, ', '.join(labels) or '-', scores or '-'))
    widths = [max(len(r[k]) for r in rows) for k in range(2)]
    return '\n'.join(f'{a:<{widths[0]}}  {b:<{widths[1]}}  {c}'.rstrip() for a, b, c in rows)


def write_predictions(path: str, preds: dict) -> None:
    """CSV (filename, labels and label_ids joined by ';', one column per group, p_<class>...) or JSON."""
    names, groups = preds['class_names'], list(preds['groups'])
    if path.endswith('.json'):
        rows = []
        for i, f in enumerate(preds['files']):
            row = {
                'filename': f,
                'labels': preds['labels'][i],
                'label_ids': preds['label_ids'][i],
                'probs': {n: round(float(p), 6) for n, p in zip(names, preds['probs'][i])},
            }
            if groups:
                row['groups'] = {g: int(preds['groups'][g][i]) for g in groups}
            rows.append(row)
        meta = {k: preds[k] for k in ('evidence', 'threshold', 'threshold_source', 'head', 'round', 'step')}
        if preds.get('note'):
            meta['note'] = preds['note']
        atomic_write_json(path, {**meta, 'classes': names, 'predictions': rows})
    elif path.endswith('.csv'):
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator='\n')
        writer.writerow(['filename', 'labels', 'label_ids', *groups, *[f'p_{n}' for n in names]])
        for i, f in enumerate(preds['files']):
            writer.writerow(
                [
                    f,
                    ';'.join(preds['labels'][i]),
                    ';'.join(str(c) for c in preds['label_ids'][i]),
                    *[int(preds['groups'][g][i]) for g in groups],
                    *[f'{float(p):.6f}' for p in preds['probs'][i]],
                ]
            )
        atomic_write_text(path, buffer.getvalue())
    else:
        raise ValueError(f'--out={path}: expected a .csv or .json file name')


def main(argv):
    from absl import flags
    from absl import logging as absl_logging

    f = flags.FLAGS
    if len(argv) > 1:
        raise ConfigError(f'unexpected arguments {argv[1:]}: every option is a --flag=value')
    if not f['verbosity'].present:
        absl_logging.set_verbosity(absl_logging.WARNING)  # Orbax logs every restore at INFO
    bad = [out for out in f.out or () if not out.endswith(('.csv', '.json'))]
    if bad:
        raise ConfigError(f'--out={bad[0]}: expected a .csv or .json file name')
    if f.threshold is not None and not 0.0 < f.threshold < 1.0:
        raise ConfigError(f'--threshold={f.threshold}: expected a probability in (0, 1)')
    try:
        evidence = None if f.evidence == 'auto' else f.evidence
        preds = predict_folder(f.workdir, f.images, f.threshold, f.round, evidence, f.recursive)
    except DataError:  # e.g. a checkpoint with NaN weights
        raise
    except (FileNotFoundError, ValueError) as e:  # no run / no images / bad round: the user's arguments
        raise DataError(str(e)) from e
    if preds['note']:
        print(f'mlrelabel-predict: note: {preds["note"]}', file=sys.stderr)
    rule = f'{RULE_WORDS[preds["evidence"]]}, thresholds: {preds["threshold_source"]}'
    if not f.out:  # no file asked for: the table on stdout, the rule on stderr
        print(format_predictions(preds))
        print(
            f'{len(preds["files"])} images (round {preds["round"]}, step {preds["step"]}; {rule})',
            file=sys.stderr,
        )
    for out in f.out or ():
        write_predictions(out, preds)
        print(f'{out}: {len(preds["files"])} images (round {preds["round"]}, step {preds["step"]}; {rule})')


def _define_flags():
    from absl import flags

    flags.DEFINE_string('workdir', None, 'Run directory (what mlrelabel --workdir wrote).')
    flags.DEFINE_string('images', None, 'Folder of images to label (JPEG, PNG, BMP, WebP).')
    flags.DEFINE_multi_string(
        'out', None, 'Output file(s): .csv and/or .json (repeat --out for both); none: a table on stdout.'
    )
    flags.DEFINE_boolean('recursive', False, 'Label the images in the subfolders of --images too.')
    flags.DEFINE_float(
        'threshold',
        None,
        'One probability threshold for every class, on the evidence the run decides with (default: the '
        "round's per-class thresholds.json, else config.eval.threshold).",
    )
    flags.DEFINE_integer('round', None, "Round whose model predicts (default: the run's chosen round).")
    flags.DEFINE_enum(
        'evidence',
        'auto',
        ['auto', 'image', 'crops'],
        "What the sets are decided on: 'auto' (the run's own rule), 'crops' (the relabel grid of crops, any "
        "run), 'image' (whole-image probabilities).",
    )
    flags.mark_flags_as_required(['workdir', 'images'])


def cli():
    """The `mlrelabel-predict` console script (the same as `python -m mlrelabel.predict`)."""
    from mlrelabel.console import run_app

    _define_flags()
    keys = ['workdir', 'images', 'out', 'recursive', 'threshold', 'round', 'evidence', 'verbosity']
    sys.exit(run_app(main, __doc__, keys))


if __name__ == '__main__':
    cli()
