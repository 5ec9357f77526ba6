"""Transfer-learning comparison of networks: one recipe, several `model.name`s on the same data, their training
and validation loss and accuracy curves in one picture and one table.

  python -m mlrelabel.compare_models --config=supervised:smoke --models=resnet18,vgg16,efficientnet_b0 \\
      --workdir=runs/models
  python -m mlrelabel.compare_models --config=supervised --models=resnet50,vgg16,inception_v3 \\
      --pretrained=torchvision --set=data.image_size=299 --workdir=runs/transfer

Each network trains in `<workdir>/<name>` (a finished or interrupted run resumes there, as `mlrelabel.main`
does) with the recipe's settings, the same seed and data; `--pretrained=torchvision` starts each from its
published ImageNet weights (`torchvision:<name>`, downloaded once), `--pretrained=name=FILE,...` from given
state_dict files, and without it every network starts from scratch. `model.width` (the stem's channels; the
smoke recipes' 8 makes every network narrow) and the ResNet-only stem fields are the recipe's; the other
networks keep torchvision's stems. Writes `model_comparison.png` (per epoch: training and
validation loss left, training and validation top-1 accuracy right, one colour per network) and
`model_comparison.json` (per network: its history rows, final metrics and wall time).
"""

from __future__ import annotations

import os
import sys
import time

from mlrelabel.console import report
from mlrelabel.errors import ConfigError

PICTURE = 'model_comparison.png'
TABLE = 'model_comparison.json'


def pretrained_sources(spec: str, names: list[str]) -> dict[str, str]:
    """`--pretrained` -> `{network: weights}`: '' none, 'torchvision' each network's published weights,
    'name=FILE,...' given files. Raises ConfigError (a ValueError) naming an entry that is not one of `names`."""
    if not spec:
        return {}
    if spec == 'torchvision':
        return {n: f'torchvision:{n}' for n in names}
    out = {}
    for item in spec.split(','):
        name, sep, path = item.partition('=')
        if not sep or name not in names:
            raise ConfigError(f'--pretrained={spec!r}: expected name=FILE with a name of --models ({item!r})')
        out[name] = path
    return out


def run_network(recipe: str, name: str, workdir: str, pretrained: str, extra: dict) -> dict:
    """Trains `recipe` with `model.name=name` in `workdir`; returns its table row."""
    from mlrelabel import run as run_api

    overrides = {**extra, 'model.name': name, 'model.pretrained': pretrained}
    t0 = time.time()
    result = run_api.run_config(recipe, workdir, **{k.replace('.', '__'): v for k, v in overrides.items()})
    history = result.get('history') or []
    if not history and result.get('rounds'):  # a relabel recipe: its round-0 curves
        history = result['rounds'][0].get('history') or []
    return {
        'workdir': workdir,
        'pretrained': pretrained,
        'wall_s': round(time.time() - t0, 1),
        'history': history,
        'final': result.get('final') or {},
    }


def plot(rows: dict, path: str, title: str) -> None:
    """`model_comparison.png`: loss (train solid, val dashed) and top-1 accuracy per epoch, a colour per network."""
    from matplotlib.figure import Figure

    from mlrelabel.report import save_figure

    fig = Figure(figsize=(11, 4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    for k, (name, row) in enumerate(rows.items()):
        colour = f'C{k}'
        for ax, keys in ((ax_loss, ('train_loss', 'val_loss')), (ax_acc, ('train_accuracy', 'val_top1'))):
            for key, style in zip(keys, ('o-', 's--')):
                pts = [(r['epoch'], r[key]) for r in row['history'] if key in r and r[key] is not None]
                if pts:
                    split = key.split('_')[0]
                    ax.plot(*zip(*pts), style, color=colour, markersize=3, label=f'{name} {split}')
    ax_loss.set(xlabel='epoch', ylabel='loss')
    ax_acc.set(xlabel='epoch', ylabel='top-1 accuracy', ylim=(0, 1))
    for ax in (ax_loss, ax_acc):
        ax.legend(fontsize=7)
    fig.suptitle(title)
    save_figure(fig, path)


def compare_models(recipe: str, names: list[str], workdir: str, pretrained: str = '', extra=None) -> dict:
    """Trains each network of `names` on `recipe` (see the module docstring); writes and returns the table."""
    from mlrelabel.io_utils import atomic_write_json
    from mlrelabel.models import MODEL_NAMES

    unknown = [n for n in names if n not in MODEL_NAMES]
    if unknown or not names:
        raise ConfigError(f'--models={",".join(names)}: expected names of {", ".join(MODEL_NAMES)}')
    sources = pretrained_sources(pretrained, names)
    os.makedirs(workdir, exist_ok=True)
    rows: dict = {}
    for k, name in enumerate(names):
        print(f'mlrelabel compare_models: [{k + 1}/{len(names)}] {name}', file=sys.stderr, flush=True)
        rows[name] = run_network(
            recipe, name, os.path.join(workdir, name), sources.get(name, ''), extra or {}
        )
        doc = {'recipe': recipe, 'extra': extra or {}, 'models': rows}
        atomic_write_json(os.path.join(workdir, TABLE), doc)
        plot(rows, os.path.join(workdir, PICTURE), f'{recipe}: ' + ', '.join(rows))
    return doc


def main(argv=None) -> None:
    import argparse

    from mlrelabel.compare import parse_set

    parser = argparse.ArgumentParser(
        prog='python -m mlrelabel.compare_models', description=__doc__.split('\n\n')[0]
    )
    parser.add_argument(
        '--config', default='supervised', help="a recipe (e.g. 'supervised:smoke') or config file"
    )
    parser.add_argument('--models', required=True, help='comma-separated model names, e.g. resnet18,vgg16')
    parser.add_argument('--workdir', default='runs/compare_models')
    parser.add_argument('--pretrained', default='', help="'' (from scratch), 'torchvision', or name=FILE,...")
    parser.add_argument('--set', action='append', default=[], help='field=value for every run (repeatable)')
    args = parser.parse_args(argv)
    from mlrelabel import parallel
    from mlrelabel.config import base_config

    parallel.split_cpu(base_config().parallel.cpu_devices)  # as mlrelabel.main does, before JAX starts
    names = [n.strip() for n in args.models.split(',') if n.strip()]
    try:
        doc = compare_models(args.config, names, args.workdir, args.pretrained, parse_set(args.set))
    except (Exception, KeyboardInterrupt) as error:  # noqa: BLE001 - expected failures become one paragraph
        code = report(error, sys.argv, 'mlrelabel compare_models')
        if code is None:
            raise
        sys.exit(code)
    for name, row in doc['models'].items():
        final = {k: round(v, 4) for k, v in row['final'].items() if k in ('val_top1', 'val_map', 'val_loss')}
        print(f'{name}: {final}, {row["wall_s"]} s')
    print(f'mlrelabel compare_models: {args.workdir}/{PICTURE}, {args.workdir}/{TABLE}', file=sys.stderr)


if __name__ == '__main__':
    main()
