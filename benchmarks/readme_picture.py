"""Draws the README's picture from a finished relabel run: a row of training images, each with its given label
and the labels the run added (green; red where the data's hidden truth, when it has one, says the label is
wrong).

    python benchmarks/readme_picture.py --workdir=runs/mc_dropout-... --out=docs/images/relabel_examples.png

The images are the first `--count` training images, in the order of labels.json, to which the run added at least
one label: no choosing by eye. On data without hidden truth (your own), every addition is drawn green.
"""

from __future__ import annotations

import argparse
import os

import numpy as np


def picked_rows(given: list[list[int]], final: list[list[int]], count: int) -> list[int]:
    """The first `count` rows whose final labels add a class to the given ones."""
    rows = [i for i, (g, f) in enumerate(zip(given, final)) if set(f) - set(g)]
    return rows[:count]


def draw(workdir: str, out: str, count: int = 6) -> str:
    """Writes the picture of `count` images of the run in `workdir` to `out`; returns `out`."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from mlrelabel.manifest import read_config
    from mlrelabel.methods import common
    from mlrelabel.review import build

    _, final, names = build.run_labels(workdir)
    train = common.load_datasets(read_config(workdir), workdir)['train']
    given = train.labels.to_lists()
    truth = None if train.truth is None else train.truth.to_lists()
    rows = picked_rows(given, final, count)
    fig, axes = plt.subplots(1, len(rows), figsize=(1.9 * len(rows), 2.6))
    for ax, i in zip(np.atleast_1d(axes), rows):
        image = np.asarray(train.images[i], np.uint8)
        ax.imshow(image, interpolation='nearest')
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title('given: ' + ', '.join(names[c] for c in given[i]), fontsize=11)
        added = [c for c in final[i] if c not in given[i]]
        for k, c in enumerate(added):
            wrong = truth is not None and c not in truth[i]
            ax.text(
                0.5,
                -0.1 - 0.14 * k,
                f'+ {names[c]}' + (' (wrong)' if wrong else ''),
                transform=ax.transAxes,
                ha='center',
                va='top',
                fontsize=11,
                fontweight='bold',
                color='#c62828' if wrong else '#2e7d32',
            )
    fig.subplots_adjust(left=0.01, right=0.99, top=0.86, bottom=0.2, wspace=0.08)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, format='png', dpi=80)
    plt.close(fig)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--workdir', required=True, help='a finished relabel run')
    parser.add_argument('--out', default='docs/images/relabel_examples.png')
    parser.add_argument('--count', type=int, default=6)
    args = parser.parse_args()
    print(draw(args.workdir, args.out, args.count))


if __name__ == '__main__':
    main()
