"""Every method and loss on the built-in data over several seeds: `compare.json` and `compare.md`.

  python -m mlrelabel.compare                                  # every entry, seeds 0,1,2, in runs/compare
  python -m mlrelabel.compare --entries=softmax,an,mile --seeds=0,1,2,3,4
  python -m mlrelabel.compare --variant=smoke --set=data.num_train=256   # seconds per run (tests)

Seed-to-seed noise on the built-in digit scenes is about 0.03 in F1, so one seed per method decides nothing.
Each entry (a recipe plus overrides, `ENTRIES`) runs once per seed in `<workdir>/<entry>/seed_<s>`; a finished
run is not run again (its figures are kept in `compare_run.json` beside it) and an unfinished one resumes from
its checkpoints, so a killed comparison continues where it stopped. The table gives mean ± sd over the seeds of
val mAP, val mAP on crop evidence (every entry's output model scored on the relabel grid of crops,
`label_sets.crop_scores`: single-label models rank small objects low on whole images, and crops make each object
some window's main one), val sample-F1, ReaL-style accuracy (the prediction's top class is in the image's full
set), the training labels' F1 against the hidden sets where a method writes labels (relabel), and wall time.
Below the tables, compare.md gives the best single-positive loss's mAP as a share of the full-label model's, on
whole images and on crops. An entry
*beats its baseline* when its mean val mAP exceeds the baseline's by more than 2 sd (the larger of the two
entries' sds; `beats`). `full` trains on the hidden full sets: the upper bound, which no single-label method
can reach. `partial_*` are given more than single labels (half of all image-class entries, simulated).
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import sys
import time

import numpy as np

from mlrelabel.console import report
from mlrelabel.errors import ConfigError

METRICS = ('val_map', 'val_crop_map', 'val_f1', 'val_real_accuracy', 'labels_f1', 'wall_s')
HEADERS = {
    'val_map': 'val mAP',
    'val_crop_map': 'val mAP (crops)',
    'val_f1': 'val F1',
    'val_real_accuracy': 'ReaL acc.',
    'labels_f1': 'training-label F1',
    'wall_s': 'wall time (s)',
}


@dataclasses.dataclass(frozen=True)
class Entry:
    """One row of the comparison: `recipe` (a `configs/` name) with `overrides` (dotted field → value)."""

    name: str
    recipe: str
    overrides: tuple = ()
    baseline: str | None = None
    setting: str = 'single positive label'
    note: str = ''
    # An entry whose run at the same seed teaches this one (`relabel_maps.teacher_workdir`); it runs first when
    # it has not, and its wall time is counted in this entry's.
    teacher: str | None = None


def _sp(kind: str, **hparams) -> Entry:
    """A single-positive loss on the supervised recipe; its baseline is `an` (every unobserved class negative)."""
    fields = (('train.loss', kind),) + tuple((f'train.single_positive.{k}', v) for k, v in hparams.items())
    return Entry(kind, 'supervised', fields, 'an', note=', '.join(f'{k}={v}' for k, v in hparams.items()))


ENTRIES = (
    Entry('softmax', 'supervised', (), None, note='softmax cross-entropy on the single label'),
    Entry('sigmoid_bce', 'supervised', (('train.loss', 'sigmoid_bce'),), 'softmax'),
    Entry('an', 'supervised', (('train.loss', 'an'),), 'softmax', note='assume negative'),
    _sp('an_ls'),
    _sp('wan'),
    _sp('epr', expected_positives=2.0),
    _sp('em'),
    _sp('em_apl'),
    _sp('ll_r'),
    _sp('ll_ct'),
    _sp('ll_cp'),
    Entry(
        'mile_sigmoid',
        'mile',
        (('mile.schema', 'sigmoid'),),
        None,
        note="sigmoid BCE on the single label at MILe's budget (configs/mile.py)",
    ),
    Entry('mile', 'mile', (), 'mile_sigmoid', note='teacher/student iterated learning'),
    Entry(
        'relabel_maps',
        'relabel_maps',
        (),
        'softmax',
        note="ReLabel label maps from the relabel job's model (the recipe's teacher; its time included)",
        teacher='relabel',
    ),
    Entry(
        'relabel_maps_visible_teacher',
        'relabel_maps',
        (('relabel_maps.teacher_recipe', ''),),
        'softmax',
        note='ReLabel label maps, teacher trained on the single labels',
    ),
    Entry('relabel', 'mc_dropout', (), 'softmax', note='crop → MC dropout → label, iterated (the main job)'),
    Entry(
        'partial_negative',
        'partial',
        (('partial.mode', 'negative'),),
        None,
        'partial labels (half the entries known)',
        'unknown = negative',
    ),
    Entry('partial_selective', 'partial', (), 'partial_negative', 'partial labels (half the entries known)'),
    Entry(
        'full',
        'supervised',
        (('data.train_labels', 'full'), ('train.loss', 'sigmoid_bce')),
        None,
        'full labels (upper bound)',
        'trained on the hidden full sets',
    ),
)
BY_NAME = {e.name: e for e in ENTRIES}


def entry_metrics(result: dict) -> dict:
    """`{metric: value}` of a method's result (`mlrelabel.main.run`'s return value): the final validation
    metrics, and for relabel runs the chosen round's row (its val metrics and its labels' F1)."""
    if 'rounds' in result:  # relabel: the summary; the chosen round's model and labels are the output
        rows = result['rounds']
        row = rows[int(result.get('best_round') or 0)]
    else:
        row = result.get('final') or {}
    return {m: float(row[m]) for m in METRICS if m in row and row[m] is not None}


def run_entry(entry: Entry, seed: int, workdir: str, variant: str = '', extra: dict | None = None) -> dict:
    """Runs (or resumes, or reads back) one entry at one seed; returns its metrics with `wall_s`."""
    from mlrelabel import run as run_api
    from mlrelabel.io_utils import atomic_write_json

    done_path = os.path.join(workdir, 'compare_run.json')
    if os.path.exists(done_path):
        with open(done_path) as f:
            done = json.load(f)
        if 'val_crop_map' not in done['metrics']:  # finished before the crop column existed
            done['metrics']['val_crop_map'] = crop_map(workdir)
            atomic_write_json(done_path, done)
        return done['metrics']
    recipe = entry.recipe + (f':{variant}' if variant else '')
    overrides = {'seed': seed, **dict(entry.overrides), **_applicable(extra, recipe)}
    t0 = time.time()
    result = run_api.run_config(recipe, workdir, **{k.replace('.', '__'): v for k, v in overrides.items()})
    metrics = dict(entry_metrics(result), wall_s=round(time.time() - t0, 1))
    metrics['val_crop_map'] = crop_map(workdir)  # after the wall time: evaluation, not the method's cost
    atomic_write_json(done_path, {'entry': entry.name, 'seed': seed, 'recipe': recipe, 'metrics': metrics})
    return metrics


def crop_map(workdir: str) -> float:
    """Val mAP of a finished run's output model on crop evidence (`label_sets.crop_scores`: the run's own crop
    settings, or the relabel recipe's grid with one naive pass) against the validation images' hidden sets."""
    from mlrelabel.eval import metrics
    from mlrelabel.predict import validation_crop_evidence
    from mlrelabel.run import load_run

    val, scores = validation_crop_evidence(load_run(workdir))
    truth = val.truth if val.truth is not None else val.labels
    return float(metrics.mean_average_precision(scores, truth.dense(np.arange(len(val)))))


def best_against_full(summary: dict, metric: str) -> dict | None:
    """The single-positive loss (`single_positive.KINDS` on the supervised recipe) with the best mean `metric`,
    and that mean as a share of the full-label model's (`full`): the #17 target is >= 95 %. None without both."""
    from mlrelabel.losses.single_positive import KINDS

    full = summary.get('full', {}).get(metric)
    losses = {n: s[metric] for n, s in summary.items() if n in KINDS and metric in s}
    if not full or not losses:
        return None
    name = max(losses, key=lambda n: losses[n]['mean'])
    return {
        'entry': name,
        'mean': losses[name]['mean'],
        'full': full['mean'],
        'share': losses[name]['mean'] / full['mean'],
    }


def mean_sd(values) -> dict:
    """`{'mean', 'sd', 'n'}` of a list (sample sd, ddof=1; 0 for one value)."""
    v = np.asarray(values, np.float64)
    return {'mean': float(v.mean()), 'sd': float(v.std(ddof=1)) if v.size > 1 else 0.0, 'n': int(v.size)}


def beats(entry: dict, baseline: dict, metric: str = 'val_map') -> bool:
    """True when `entry`'s mean `metric` exceeds `baseline`'s by more than 2 sd, with sd the larger of the two
    entries' seed-to-seed sds (both `mean_sd` dicts over at least 2 seeds; one seed proves nothing)."""
    a, b = entry.get(metric), baseline.get(metric)
    if not a or not b or min(a['n'], b['n']) < 2:
        return False
    return a['mean'] - b['mean'] > 2.0 * max(a['sd'], b['sd'])


def summarize(runs: dict, entries=ENTRIES) -> dict:
    """`runs[name][seed] = metrics` → per entry: mean ± sd of each metric and whether it beats its baseline."""
    out = {}
    for e in entries:
        if e.name not in runs:
            continue
        per_seed = list(runs[e.name].values())
        stats = {
            m: mean_sd([r[m] for r in per_seed])
            for m in METRICS
            if per_seed and all(m in r for r in per_seed)
        }
        out[e.name] = {'setting': e.setting, 'baseline': e.baseline, 'note': e.note, **stats}
    for e in entries:
        if e.name in out and e.baseline in out:
            out[e.name]['beats_baseline'] = beats(out[e.name], out[e.baseline])
    return out


def to_markdown(summary: dict, seeds) -> str:
    """compare.md: one table per setting, mean ± sd over the seeds, ✓ where an entry beats its baseline."""
    lines = [
        f'# mlrelabel compare: built-in digit scenes, seeds {", ".join(map(str, seeds))}',
        '',
        'Mean ± sd over the seeds. "beats baseline": mean val mAP above the baseline\'s by more than 2 sd.',
    ]
    settings = list(dict.fromkeys(s['setting'] for s in summary.values()))
    for setting in settings:
        lines += ['', f'## {setting}', '']
        lines.append(
            '| entry | baseline | ' + ' | '.join(HEADERS[m] for m in METRICS) + ' | beats baseline | note |'
        )
        lines.append('|---' * (len(METRICS) + 4) + '|')
        for name, s in summary.items():
            if s['setting'] != setting:
                continue
            cells = []
            for m in METRICS:
                if m not in s:
                    cells.append('—')
                    continue
                digits = 0 if m == 'wall_s' else 3
                partial = f" (n={s[m]['n']})" if s[m]['n'] != len(seeds) else ''  # seeds still running
                cells.append(f"{s[m]['mean']:.{digits}f} ± {s[m]['sd']:.{digits}f}{partial}")
            verdict = {True: '✓', False: 'no'}.get(s.get('beats_baseline'), '')
            lines.append(
                f"| {name} | {s['baseline'] or ''} | " + ' | '.join(cells) + f" | {verdict} | {s['note']} |"
            )
    shares = [(m, best_against_full(summary, m)) for m in ('val_map', 'val_crop_map')]
    if any(b for _, b in shares):
        lines += ['', '## The best single-positive loss against full labels', '']
        for m, b in shares:
            if b:
                lines.append(
                    f"- {HEADERS[m]}: {b['entry']} {b['mean']:.3f} against full labels' {b['full']:.3f}: "
                    f"{100 * b['share']:.0f} % (target >= 95 %)"
                )
    return '\n'.join(lines) + '\n'


def compare(seeds, workdir: str, names=None, variant: str = '', extra: dict | None = None) -> dict:
    """Runs `names` (default: every entry) over `seeds` in `workdir`; writes and returns compare.json's dict."""
    from mlrelabel.io_utils import atomic_write_json, atomic_write_text

    entries = _select(names)
    _check_sections(extra, entries, variant)
    os.makedirs(workdir, exist_ok=True)
    runs: dict = {}
    total, k = len(entries) * len(seeds), 0
    for e in entries:
        for s in seeds:
            k += 1
            print(f'mlrelabel compare: [{k}/{total}] {e.name} seed {s}', file=sys.stderr, flush=True)
            overrides, teacher_s = dict(extra or {}), 0.0
            if e.teacher:  # the teacher's run first (read back when done): its final model writes the maps
                teacher_dir = os.path.join(workdir, e.teacher, f'seed_{s}')
                teacher_s = run_entry(BY_NAME[e.teacher], s, teacher_dir, variant, extra)['wall_s']
                overrides['relabel_maps.teacher_workdir'] = teacher_dir
            metrics = run_entry(e, s, os.path.join(workdir, e.name, f'seed_{s}'), variant, overrides)
            runs.setdefault(e.name, {})[s] = dict(metrics, wall_s=round(metrics['wall_s'] + teacher_s, 1))
            summary = summarize(runs, entries)
            doc = {
                'seeds': list(seeds),
                'variant': variant,
                'extra': extra or {},
                'runs': runs,
                'summary': summary,
                'best_against_full': {m: best_against_full(summary, m) for m in ('val_map', 'val_crop_map')},
            }
            atomic_write_json(os.path.join(workdir, 'compare.json'), _json_ready(doc))
            atomic_write_text(os.path.join(workdir, 'compare.md'), to_markdown(summary, seeds))
    return _json_ready(doc)


def _applicable(extra: dict | None, recipe: str) -> dict:
    """The `--set` fields whose section the recipe's config has (`relabel.*` reaches the relabel recipes only)."""
    from mlrelabel.config import recipes

    cfg = recipes.load(recipe)
    return {k: v for k, v in (extra or {}).items() if '.' not in k or k.split('.')[0] in cfg}


def _check_sections(extra: dict | None, entries: list[Entry], variant: str) -> None:
    """Refuses a `--set` field that no selected entry's recipe has a section for (a typo would do nothing)."""
    from mlrelabel.config import recipes

    recipes_used = {e.recipe + (f':{variant}' if variant else '') for e in entries}
    recipes_used |= {
        BY_NAME[e.teacher].recipe + (f':{variant}' if variant else '') for e in entries if e.teacher
    }
    sections = set().union(*(recipes.load(r).keys() for r in recipes_used))
    for key in extra or {}:
        if '.' in key and key.split('.')[0] not in sections:
            raise ConfigError(f'--set={key}: no selected entry has a config.{key.split(".")[0]} section')


def _select(names) -> list[Entry]:
    if not names:
        return list(ENTRIES)
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise ConfigError(f'--entries: unknown {", ".join(unknown)}; entries: {", ".join(BY_NAME)}')
    return [BY_NAME[n] for n in names]


def _json_ready(doc: dict) -> dict:
    return json.loads(json.dumps(doc, default=str))


def parse_set(items, example: str = 'data.num_train=256') -> dict:
    """`--set=field=value` flags -> `{field: value}`, each value a Python literal where it parses as one, else the
    string (also read by benchmarks/replay_rule.py)."""
    out = {}
    for item in items or ():
        key, sep, value = item.partition('=')
        if not sep:
            raise ConfigError(f'--set={item}: expected field=value, e.g. --set={example}')
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog='python -m mlrelabel.compare', description=__doc__.split('\n\n')[0])
    parser.add_argument('--seeds', default='0,1,2', help='comma-separated training seeds (default 0,1,2)')
    parser.add_argument('--workdir', default='runs/compare')
    parser.add_argument(
        '--entries', default='', help=f'comma-separated subset of: {",".join(e.name for e in ENTRIES)}'
    )
    parser.add_argument('--variant', default='', help="recipe variant for every run ('smoke': seconds each)")
    parser.add_argument('--set', action='append', default=[], help='field=value for every run (repeatable)')
    args = parser.parse_args(argv)
    from mlrelabel import parallel
    from mlrelabel.config import base_config

    parallel.split_cpu(base_config().parallel.cpu_devices)  # as mlrelabel.main does, before JAX starts
    seeds = [int(s) for s in args.seeds.split(',') if s.strip()]
    names = [n.strip() for n in args.entries.split(',') if n.strip()]
    try:
        doc = compare(seeds, args.workdir, names, args.variant, parse_set(args.set))
    except (Exception, KeyboardInterrupt) as error:  # noqa: BLE001 - expected failures become one paragraph
        code = report(error, sys.argv, 'mlrelabel compare')
        if code is None:
            raise
        sys.exit(code)
    print(to_markdown(doc['summary'], seeds))
    print(f'mlrelabel compare: {args.workdir}/compare.json, {args.workdir}/compare.md', file=sys.stderr)


if __name__ == '__main__':
    main()
