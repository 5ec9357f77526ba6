"""The relabel loop: Crop → Confidence → Label, iterated, and the best round's labels as the output.

The method of the CS570 "multi-labeling ImageNet" project, with MC dropout (Gal & Ghahramani, 2016) and
test-time perturbation as confidence estimates. Round 0 trains on the given single labels (`relabel.round0_models`
models, `relabel_models`). Each later round k scores crops of every training image (and, held out, of every
validation image) with round k-1's model (round 1: with each of round 0's), adds
that evidence (float32 log-odds) to the mean over the rounds so far, assigns labels (per-class Gaussian
mixtures by default), retrains on the multi-hot labels and validates.

Nothing here reads multi-label truth: thresholds come from the training images' own evidence, and the round
whose labels become the output is chosen by a truth-free metric (`relabel.metric`, see `relabel.select`); a
round whose labels per image exceed the guard's bound is flagged and never chosen. When no relabeled round
beats the given labels, the output is the given labels and the run says so. The rounds stop when the metric
stops improving (`select.stop_reason`); a round whose labels' statistics (known before its training) already say
that it ends the run and is not the output trains no model (`relabel.train_last_round`). Truth, when the data has it, only
scores the rows (`labels_*`, `val_f1`, ...).

Every stage is resumable: a round's evidence records, `labels.json` and `metrics.json` are written atomically
once complete, training resumes from the round's Orbax checkpoint, and the relabel pass saves its progress every
`save_every_batches` batches. Rerunning the same command after a kill at any point gives the same files.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import sys
import time
from typing import Any

import jax
import numpy as np

from mlrelabel import decisions, parallel, progress, report, tensorboard_writer
from mlrelabel.data.checks import skipped_count
from mlrelabel.data.label_table import LabelTable
from mlrelabel.data.labels import read_label_file, write_label_file
from mlrelabel.eval import evaluate, metrics
from mlrelabel.io_utils import atomic_write_json, record_timing
from mlrelabel.methods import common
from mlrelabel.relabel import phases, rule, select, stream
from mlrelabel.relabel import review_outputs as relabel_review
from mlrelabel.relabel import round_models as relabel_models
from mlrelabel.relabel.evidence import RoundEvidence

ASSIGN_METHODS = ('gmm', 'threshold', 'topk', 'calibrated')
SUMMARY_KEYS = (
    'val_top1', 'val_given_map', 'heldout_pu_score', 'heldout_mixture_f1', 'labels_f1', 'val_f1', 'labels_per_image',
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class RelabelRun:
    """What every stage of one relabel run shares: its config, work directory, device mesh, model, the training
    and validation datasets, the given label of each training image (`[N]`) and the image paths written to the
    label files."""

    config: Any
    workdir: str
    mesh: Any
    model: Any
    train: Any
    val: Any
    given: np.ndarray
    paths: list
    round0_init: dict | None = None  # round 0's variables when taken from `relabel.round0_checkpoint`

    def round_dir(self, k: int) -> str:
        return os.path.join(self.workdir, f'round_{k}')


def _context(config, workdir: str) -> RelabelRun:
    """The run's mesh, datasets and model."""
    mesh = common.mesh_from_config(config)
    data = common.load_datasets(config, workdir)
    train, val = data['train'], data['val']
    model = common.build_model(config, train.num_classes)
    # label files and the review list show the paths as the user wrote them (relative ones stay relative)
    paths = train.label_paths() or [f'{train.name}/{i:07d}' for i in range(len(train))]
    return RelabelRun(
        config=config,
        workdir=workdir,
        mesh=mesh,
        model=model,
        train=train,
        val=val,
        given=evaluate.first_labels(train.labels),
        paths=paths,
    )


def run(config, workdir: str) -> dict:
    ctx = _context(config, workdir)
    run_progress = progress.active()  # the progress line: its plan, and where each phase begins
    run_progress.plan(phases.planned(ctx))
    train, rc = ctx.train, config.relabel
    window = 1 if rc.evidence == 'last' else 0
    evidence = {'train': RoundEvidence(window), 'val': RoundEvidence(window)}
    labels, rows, state, timings = train.labels, [], None, {}
    round0 = []  # round 0's models (`relabel.round0_models`): they score round 1's crops
    for k in range(rc.max_rounds + 1):
        t0 = time.time()
        info = {}
        if k > 0:
            new_labels, info = _relabel_round(ctx, k, round0 if k == 1 else [state], evidence)
            round0 = []
            info['images_changed'] = int(
                sum(set(a) != set(b) for a, b in zip(labels.to_lists(), new_labels.to_lists()))
            )
            labels = new_labels
            if _ends_untrained(ctx, rows, k, info):  # the rounds stop here and this round is not the output
                rows.append(_untrained_row(ctx, rows, k, labels, info))
                timings[f'round_{k}'] = {'relabel_s': round(time.time() - t0, 1), 'train_s': 0.0}
                break
        t1 = time.time()
        run_progress.begin('train', k)
        loss = _round_loss(config, k)
        prev_state = state
        if k == 0 and rc.round0_checkpoint:
            state, history, info = relabel_models.take_round0(ctx, loss)
            ctx = dataclasses.replace(ctx, round0_init=state.variables)
            round0 = [state]
        elif k == 0:
            state, history, info = relabel_models.train_round0(ctx, labels, loss)
            round0 = [state] + relabel_models.round0_models(ctx, labels, loss, info, history)
        else:
            state, history = relabel_models.train_round(ctx, k, state, labels, loss)
        if k == 1 and rc.control:
            control_arm = relabel_models.RoundArm(arm='control/checkpoints')
            control = relabel_models.train_round(ctx, k, prev_state, train.labels, loss, control_arm)[1]
            info['control'] = {key: v for key, v in control[-1].items() if key.startswith('val_')}
        run_progress.begin('eval', k)
        row = _round_metrics(ctx, k, state, labels, info=info, history=history)
        for note in row.get('notes', []) if parallel.is_main_process() else ():
            print(f'mlrelabel: note: {note}', file=sys.stderr)
        timings[f'round_{k}'] = {'relabel_s': round(t1 - t0, 1), 'train_s': round(time.time() - t1, 1)}
        if k == 0 and rc.round0_checkpoint:  # round 0 was taken, not trained: train_s is its validation
            timings['round_0']['taken_from'] = rc.round0_checkpoint
        rows.append(row)
        if parallel.is_main_process():
            _write_summary(workdir, rows, config, chosen=None)
            tensorboard_writer.write_scalars(workdir, None, tensorboard_writer.scalar_tags(row, 'round'))
        reason = _stop(ctx, rows)
        if reason:
            logging.info('stopping after round %d: %s', k, reason)
            break
    return _finish(ctx, rows, timings)


def _stop(ctx: RelabelRun, rows: list) -> str | None:
    """Why the rounds stop after the last row (`select.stop_reason` with `config.relabel`), None: go on."""
    rc = ctx.config.relabel
    return select.stop_reason(
        rows, rc.metric, rc.patience, rc.stable_fraction, len(ctx.train), rc.tolerance, rc.stop_from_round
    )


def _ends_untrained(ctx: RelabelRun, rows: list, k: int, info: dict) -> bool:
    """Whether round k ends the run without training its model: its labels' truth-free statistics (`info`,
    known before training) already say the rounds stop after it (the last round, or `_stop`) and that it is not
    the output round, so its model would score no crops and be no run's model. The output is the same as with
    the model trained. Never with `relabel.train_last_round` or the control arm (round 1's gate compares trained
    models)."""
    rc = ctx.config.relabel
    if rc.train_last_round or (k == 1 and rc.control):
        return False
    provisional = rows + [{'round': k, **info, 'flags': list(info.get('flags', []))}]
    if k < rc.max_rounds and not _stop(ctx, provisional):
        return False
    return select.choose_configured_round(provisional, select.ChooseOptions.from_config(ctx.config))[0] != k


def _untrained_row(ctx: RelabelRun, rows: list, k: int, labels, info: dict) -> dict:
    """Round k's row when its model is not trained (`_ends_untrained`): its labels' statistics, no model
    metrics; `trained` False. Written like a trained round's `metrics.json` (read back on a resumed run)."""
    path = os.path.join(ctx.round_dir(k), 'metrics.json')
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    loss = _round_loss(ctx.config, k)
    row = {'round': k, 'loss': loss, 'head': evaluate.head_of(loss), 'trained': False}
    row['labels_per_image'] = float(labels.num_labels().mean())
    row.update(info)
    row['flags'] = list(row.get('flags', []))
    row.update(_scored_by_truth(labels, ctx.train.truth))
    if parallel.is_main_process():
        atomic_write_json(path, row)
        _write_summary(ctx.workdir, [*rows, row], ctx.config, chosen=None)
    logging.info(
        'stopping after round %d, its model not trained: %s', k, _stop(ctx, [*rows, row]) or 'the last'
    )
    return row


def _finish(ctx: RelabelRun, rows, timings) -> dict:
    """Chooses the output round, writes `labels.json`, `thresholds.json`, `summary.json`, the review list;
    says what happened."""
    config, workdir, train, paths = ctx.config, ctx.workdir, ctx.train, ctx.paths
    rc = config.relabel
    progress.active().begin('finish')
    chosen, reason = select.choose_configured_round(rows, select.ChooseOptions.from_config(config))
    final = (
        train.labels
        if chosen == 0
        else read_label_file(os.path.join(workdir, f'round_{chosen}', 'labels.json'), train.num_classes)[1]
    )
    if rc.review:
        t0 = time.time()
        relabel_review.write_review(ctx, final, chosen)
        timings['review'] = {'review_s': round(time.time() - t0, 1)}
    if parallel.is_main_process():
        left_out = skipped_count(workdir)  # images skipped as unreadable (skipped.json)
        write_label_file(
            os.path.join(workdir, 'labels.json'), paths, final, train.class_names, train.root, left_out
        )
        thresholds_src = os.path.join(workdir, f'round_{chosen}', 'thresholds.json')
        if chosen > 0 and os.path.exists(thresholds_src):
            with open(thresholds_src) as f:
                atomic_write_json(os.path.join(workdir, 'thresholds.json'), json.load(f))
        summary = _write_summary(workdir, rows, config, chosen={'round': chosen, 'reason': reason})
        for k, seconds in timings.items():
            record_timing(workdir, k, seconds)
        common.record_run(
            workdir,
            config,
            {key: v for key, v in rows[chosen].items() if isinstance(v, (int, float))},
            num_classes=train.num_classes,
            head=rows[chosen]['head'],
            class_names=getattr(train, 'class_names', None),
            groups=getattr(train, 'groups', None),
            checkpoint=f'round_{chosen}/checkpoints',
            chosen_round=chosen,
            rounds=[
                {'round': r['round'], 'checkpoint': f'round_{r["round"]}/checkpoints', 'head': r['head']}
                for r in rows
                if r.get('trained', True)
            ],
            labels='labels.json',
            thresholds='thresholds.json' if chosen > 0 else None,
        )
        cols = (
            ['round'] + [c for c in SUMMARY_KEYS if any(c in r for r in rows)] + ['images_changed', 'flags']
        )
        print(report.format_table(rows, cols))
        if chosen == 0:
            print(
                f'relabeling did not help: {reason}. The final labels ({workdir}/labels.json) are the given '
                'labels, unchanged.',
                file=sys.stderr,
            )
        else:
            print(f'final labels: round {chosen} → {workdir}/labels.json ({reason})', file=sys.stderr)
        for note in (n for r in rows for n in r.get('notes', [])):
            print(f'note: {note}', file=sys.stderr)
        return summary
    return {'rounds': rows, 'best_round': chosen}


def _write_summary(workdir, rows, config, chosen) -> dict:
    summary = {'rounds': rows, 'metric': config.relabel.metric, 'skipped_images': skipped_count(workdir)}
    if chosen is not None:
        summary['best_round'] = chosen['round']
        summary['best_round_reason'] = chosen['reason']
        summary['relabeling_helped'] = chosen['round'] > 0
    atomic_write_json(os.path.join(workdir, 'summary.json'), summary)
    keys = [key for key in SUMMARY_KEYS if key != 'labels_per_image' and any(key in r for r in rows)]
    report.plot_rounds(
        rows,
        keys,
        os.path.join(workdir, 'rounds.png'),
        title=f'{config.relabel.confidence} relabel rounds',
        chosen=None if chosen is None else chosen['round'],
    )
    return summary


def _round_loss(config, k: int) -> str:
    """The loss round k's model trains with: round 0's on the given labels, the relabel rounds' on theirs."""
    return config.train.loss if k == 0 else config.relabel.loss


def _scored_by_truth(labels, truth) -> dict:
    """`labels_*`: the training labels' quality against the multi-label truth when the data has it (scoring
    only), else nothing."""
    if truth is None:
        return {}
    quality = metrics.label_quality(labels, truth)
    return {f'labels_{key}': float(v) for key, v in quality.items() if key != 'labels_per_image'}


def _round_metrics(ctx: RelabelRun, k: int, state, labels, *, info: dict, history: list) -> dict:
    """Round k's row: its model's validation metrics, the held-out statistics of its labels and, when the data
    has multi-label truth, the quality of its training labels (scoring only)."""
    config, train = ctx.config, ctx.train
    loss = _round_loss(config, k)
    path = os.path.join(ctx.round_dir(k), 'metrics.json')
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    row = {'round': k, 'loss': loss, 'head': evaluate.head_of(loss), 'epochs': history[-1]['epoch']}
    row.update({key: v for key, v in history[-1].items() if key.startswith('val_')})
    row['labels_per_image'] = float(labels.num_labels().mean())
    row.update(info)
    row.setdefault('images_changed', 0)
    row['flags'] = list(row.get('flags', []))
    if k == 0:
        note = select.chance_note(
            row.get('val_top1'), evaluate.first_labels(ctx.val.labels), train.num_classes
        )
        if note:
            row['notes'] = list(row.get('notes', [])) + [note]
    if k == 1:
        failed = select.gate(row, config.relabel.gate_metric, config.relabel.min_delta)
        if failed:
            row['flags'].append(failed)
    row.update(_scored_by_truth(labels, train.truth))
    row.update(
        common.imagenet_eval_sets(
            ctx.model, state.variables, config, ctx.mesh, row['head'], os.path.abspath(ctx.workdir)
        )
    )
    row['history'] = history
    if parallel.is_main_process():
        atomic_write_json(path, row)
    return row


def _relabel_round(ctx: RelabelRun, k: int, states: list, evidence: dict):
    """Scores crops of the training and validation images with round k-1's model (round 0's: each of its
    `states`), carries the evidence over rounds, assigns labels and checks them against the guard. Returns
    `(labels, info)`."""
    config, train, val, given, rdir = ctx.config, ctx.train, ctx.val, ctx.given, ctx.round_dir(k)
    rc = config.relabel
    os.makedirs(rdir, exist_ok=True)
    num_classes = train.num_classes
    progress.active().begin('score', k)
    first = _score_round(ctx, k, states, evidence)
    progress.active().begin('assign', k)
    val_given = evaluate.first_labels(val.labels)
    evidence_val = evidence['val'].dense(np.arange(len(val)))
    fixed = None
    if rc.assign == 'calibrated':  # multi-label validation labels given by the user
        fixed = rule.calibrated_thresholds(evidence_val, val.labels, config.seed)
    grouped = bool(train.groups and rc.exclusive_groups)
    decided = rule.assign_round(
        rule.RoundEvidenceArrays(
            train_dense=evidence['train'].dense,
            num_train=len(train),
            evidence_val=evidence_val,
            train_given=given,
            val_given=val_given,
            fixed_thresholds=fixed,
            group_bounds=tuple(train.group_bounds) if grouped else (),
            given_dense=train.labels.dense if grouped else None,
        ),
        rule.AssignOptions.from_config(config),
    )
    thresholds, details, info = decided.thresholds, decided.details, decided.info
    lists, scores = decided.labels, decided.scores
    if rc.decisions:  # a person's review: accepted labels kept, rejected ones never added
        found = decisions.load_for_run(rc.decisions, ctx.paths, num_classes)
        lists, scores = decisions.apply_to_lists(lists, found, scores)
    table = LabelTable.from_lists(lists, num_classes, scores=scores)
    for flag in info['flags']:
        logging.warning('round %d flagged: %s (it will not become the final labels)', k, flag)
    label_path = os.path.join(rdir, 'labels.json')
    if parallel.is_main_process():
        atomic_write_json(
            os.path.join(rdir, 'thresholds.json'),
            rule.thresholds_json(thresholds, details, _class_names(train), rc.assign),
        )
        if not os.path.exists(label_path):
            write_label_file(
                label_path, ctx.paths, table, train.class_names, train.root, skipped_count(ctx.workdir)
            )
        examples = os.path.join(rdir, 'examples.png')
        if not os.path.exists(examples):
            relabel_review.draw_relabel_examples(ctx, k, table, first, examples)
    return table, info


def _score_round(ctx: RelabelRun, k: int, states: list, evidence: dict) -> dict:
    """Scores both splits with round k-1's model (`_score_split`) and adds their records to `evidence` (a resumed
    run re-adds the earlier rounds' records from disk first). Returns the first training batch's crops."""
    config, rdir = ctx.config, ctx.round_dir(k)
    head = evaluate.head_of(_round_loss(config, k - 1))
    key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 7919 * k)
    options = stream.StreamOptions.from_config(config)
    records, first = {}, None
    for split, ds, split_key in (('train', ctx.train, key), ('val', ctx.val, jax.random.fold_in(key, 1))):
        scorer = stream.ScorePass(ctx.model, head, options, ctx.mesh, split_key)
        records[split], f = _score_split(ctx, k, states, split, ds, scorer)
        first = f if split == 'train' else first
    if len(evidence['train']) < k:  # a resumed run re-adds the earlier rounds' records from disk
        for j in range(len(evidence['train']) + 1, k + 1):
            for split in ('train', 'val'):
                rec = (
                    records[split]
                    if j == k
                    else stream.load_record(stream.evidence_path(os.path.dirname(rdir), j, split))
                )
                stream.add_record(evidence[split], rec, ctx.train.num_classes)
    return first


def _score_split(ctx: RelabelRun, k: int, states: list, split: str, ds, scorer: stream.ScorePass):
    """Round k's evidence record of one split and its first batch's crops (`stream.score_images`). Several models
    (round 0's, `relabel.round0_models`) each score the crops with the same key into a record of their own
    (`round_<k>/models/`, each resumable); `round_<k>/evidence_<split>.npz` holds their mean, round 1's one record."""
    path = stream.evidence_path(ctx.workdir, k, split)
    score = functools.partial(stream.score_images, scorer, images=ds.images, rows=np.arange(len(ds)))
    if len(states) == 1:
        return score(states[0].variables, record_path=path, desc=f'round {k} relabel {split}')
    finished = stream.finished_record(path, len(ds))
    if finished:
        return finished
    records, firsts = [], []
    for i, state in enumerate(states):
        record, f = score(
            state.variables,
            record_path=stream.member_path(ctx.workdir, k, split, i),
            desc=f'round {k} relabel {split} (model {i + 1}/{len(states)})',
        )
        records.append(record)
        firsts.append(f)
    merged = stream.merge_records(records, ctx.train.num_classes)
    first = {  # the same crops (one key); their evidence averaged like the images'
        'boxes': firsts[0]['boxes'],
        'crop_log_odds': np.mean([f['crop_log_odds'] for f in firsts], axis=0),
    }
    if parallel.is_main_process():
        stream.save_record(path, merged, first, len(ds))
    return merged, first


def _class_names(ds) -> list:
    return getattr(ds, 'class_names', None) or [str(c) for c in range(ds.num_classes)]
