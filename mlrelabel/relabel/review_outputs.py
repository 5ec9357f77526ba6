"""What a person looks at after a relabel run: the ranked review list and the pictures of changed labels.

`write_review` writes `review.csv`, `review.json` and `review.png` (rows from `mlrelabel.relabel.review`);
`draw_relabel_examples` draws a round's `examples.png` (given → new labels, with the crop behind each label).
"""

from __future__ import annotations

import json
import logging
import os

import jax
import numpy as np

from mlrelabel import parallel, report
from mlrelabel.eval import evaluate
from mlrelabel.io_utils import atomic_write_json, atomic_write_text
from mlrelabel.relabel import review, rule, stream
from mlrelabel.relabel.evidence import RoundEvidence, to_probability
from mlrelabel.train import inference
from mlrelabel.train.checkpoint import assert_finite

# `ctx` below is the run's `mlrelabel.relabel.method.RelabelRun` (config, workdir, mesh, model, train, paths).
CHUNK = 8192  # rows densified at a time: memory grows with the chunk, not the dataset


def write_review(ctx, final, chosen: int) -> None:
    """`review.csv`, `review.json` and `review.png`: the run's additions and suspect given labels, ranked by the
    evidence the run assigned them from (the crops' log-odds averaged over rounds 1..chosen; round 1's when the
    given labels were kept).

    Measured on the built-in digit scenes (seed 0): ranking additions by this evidence separates right from wrong
    ones with ROC AUC 0.79, and with 10% of the given labels made wrong (`data.given_noise=0.1`) it finds them
    with AUC 0.97 (0.96 of the rows it lists are wrong labels; 6 rows on clean labels). Two models cross-fitted on
    halves of the images, the classic out-of-sample estimate, reached AUC 0.54 on the additions and 0.54 (5
    epochs) to 0.79 (13 epochs) on the wrong given labels: trained on half the data for a review budget, they read
    the images much worse than the run's own models, whose crop evidence is averaged over rounds (BENCHMARKS.md).
    """
    config, workdir, train, paths = ctx.config, ctx.workdir, ctx.train, ctx.paths
    rc = config.relabel
    upto = chosen if chosen > 0 else 1
    evidence = RoundEvidence(1 if rc.evidence == 'last' else 0)
    for j in range(1, upto + 1):
        path = stream.evidence_path(workdir, j, 'train')
        if not os.path.exists(path):
            logging.info('no review list: round %d has no relabel evidence', j)
            return
        stream.add_record(evidence, stream.load_record(path), train.num_classes)
    names = getattr(train, 'class_names', None) or [str(c) for c in range(train.num_classes)]
    given, final_lists = evaluate.first_labels(train.labels), final.to_lists()
    thresholds = _round_thresholds(workdir, chosen)
    rows = []
    for start in range(0, len(train), CHUNK):
        chunk = np.arange(start, min(start + CHUNK, len(train)))
        rows += review.candidate_rows(
            [final_lists[i] for i in chunk],
            given[chunk],
            evidence.dense(chunk),
            names,
            [paths[i] for i in chunk],
            thresholds,
        )
    rows = review.rank_rows(rows, chosen)
    top = review.pictured_rows(rows, config.report.num_examples)
    crops_of = _review_crops(ctx, upto, [r['image'] for r in top])
    if not parallel.is_main_process():
        return
    atomic_write_text(os.path.join(workdir, 'review.csv'), review.to_csv(rows))
    atomic_write_json(os.path.join(workdir, 'review.json'), {'fields': list(review.FIELDS), 'rows': rows})
    _draw_review(train, top, paths, crops_of, chosen, workdir)


def _round_thresholds(workdir: str, chosen: int):
    """`[C]` log-odds thresholds that made round `chosen`'s labels (None: round 0, top-k or no file); the
    review's scores are the additions' margins over them."""
    path = os.path.join(workdir, f'round_{chosen}', 'thresholds.json')
    if chosen < 1 or not os.path.exists(path):
        return None
    with open(path) as f:
        values = json.load(f).get('log_odds')
    return None if values is None else rule.thresholds_from_json(values)


def _review_crops(ctx, k: int, images: list) -> dict:
    """`{path: (boxes [K, 4], crop log-odds [K, C])}` for a few images, from the model that scored round k's
    relabel pass (round k-1's)."""
    if not images:
        return {}
    config, workdir, train, paths = ctx.config, ctx.workdir, ctx.train, ctx.paths
    directory = os.path.join(workdir, f'round_{k - 1}', 'checkpoints')
    state, step = inference.restore_latest(directory)
    variables = {'params': state['params'], 'batch_stats': state['batch_stats']}
    assert_finite(variables, f'{directory} (step {step})')
    head = evaluate.head_of(config.train.loss if k == 1 else config.relabel.loss)
    index = {p: i for i, p in enumerate(paths)}
    rows = np.asarray([index[p] for p in images], np.int64)
    scorer = stream.ScorePass(
        ctx.model, head, stream.StreamOptions.from_config(config), ctx.mesh, jax.random.PRNGKey(config.seed)
    )
    out = {}
    for start in range(0, len(rows), config.relabel.batch_size):
        chunk = rows[start : start + config.relabel.batch_size]
        _, first = stream.score_images(scorer, variables, train.images, chunk)
        for j, i in enumerate(chunk):
            out[paths[i]] = (first['boxes'][j], first['crop_log_odds'][j])
    return out


def _draw_review(train, rows, paths, crops_of, chosen, workdir) -> None:
    """review.png: the top review rows, each image with the crop that holds the most evidence for its class."""
    if not rows:
        return
    index = {p: i for i, p in enumerate(paths)}
    images = np.asarray([train.images[index[r['image']]] for r in rows])
    boxes, captions, box_captions = [], [], []
    for r in rows:
        captions.append(
            f"#{r['rank']} {r['suggestion']} {r['class_name']}"
            + (f" → {r['replacement_name']}" if r['replacement_name'] else '')
            + f"\nscore {r['score']:.2f}; given {r['given']}"
        )
        crop_boxes, crop_ev = crops_of[r['image']]
        shown = r['replacement'] if r['replacement'] != '' else r['class']
        best = int(np.argmax(crop_ev[:, shown]))
        boxes.append(crop_boxes[best : best + 1])
        box_captions.append(
            [f'{r["replacement_name"] or r["class_name"]}:{to_probability(crop_ev[best, shown]):.2f}']
        )
    report.draw_examples(
        images,
        captions,
        os.path.join(workdir, 'review.png'),
        boxes=boxes,
        box_captions=box_captions,
        columns=min(8, len(rows)),
        title=f'review: the most certain suggestions (labels of round {chosen}; the run\'s crop evidence)',
    )


def draw_relabel_examples(ctx, k: int, new, first: dict, path: str) -> None:
    """Round k's `examples.png`: training images with given → `new` labels and, per new label, the crop with the
    most evidence for it (`first`: the relabel pass's boxes and crop log-odds of the first images)."""
    config, train, old = ctx.config, ctx.train, ctx.train.labels
    m = min(config.report.num_examples, len(first['boxes']))
    idx = np.arange(m)
    images = np.asarray(train.images[idx])
    captions, boxes, box_captions = [], [], []
    for j, i in enumerate(idx):
        labels = sorted(new.labels_of(i).tolist())
        names = train.class_names
        text = f'{report.label_text(sorted(old.labels_of(i).tolist()), names)} → {report.label_text(labels, names)}'
        if train.truth is not None:
            text += f'\ntruth {report.label_text(sorted(train.truth.labels_of(i).tolist()), names)}'
        captions.append(text)
        crop_ev = first['crop_log_odds'][j]  # [K, C]
        best = [int(crop_ev[:, c].argmax()) for c in labels]
        boxes.append(first['boxes'][j][best])
        probs = [to_probability(crop_ev[b, c]) for c, b in zip(labels, best)]
        box_captions.append([f'{report.class_text(c, names)}:{p:.2f}' for c, p in zip(labels, probs)])
    report.draw_examples(
        images,
        captions,
        path,
        boxes=boxes,
        box_captions=box_captions,
        columns=8,
        title=f'round {k}: given → new labels; box = the crop with the most evidence for each label',
    )
