"""Draws the README's picture from a finished relabel run: a row of training images, each with its given label
and the labels the run added (green; where the data has a hidden truth, which only scores: wrong additions red
and the objects the run missed grey).

    python benchmarks/readme_picture.py --workdir=runs/mc_dropout-... --out=docs/images/relabel_examples.png

The images are the first `--count` training images, in the order of labels.json, to which the run added at least
one label: no choosing by eye. On data without hidden truth (your own), every addition is drawn green and nothing is marked missed.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

RIGHT, WRONG, MISSED = '#2e7d32', '#c62828', '#757575'


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
    fig, axes = plt.subplots(1, len(rows), figsize=(1.9 * len(rows), 3.3))
    for ax, i in zip(np.atleast_1d(axes), rows):
        image = np.asarray(train.images[i], np.uint8)
        ax.imshow(image, interpolation='nearest')
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title('given: ' + ', '.join(names[c] for c in given[i]), fontsize=11)
        added = [c for c in final[i] if c not in given[i]]
        lines = [
            (f'+ {names[c]}', WRONG if truth is not None and c not in truth[i] else RIGHT) for c in added
        ]
        if truth is not None:
            lines += [(f'missed {names[c]}', MISSED) for c in truth[i] if c not in final[i]]
        for k, (text, colour) in enumerate(lines):
            ax.text(0.5, -0.06 - 0.13 * k, text, transform=ax.transAxes, ha='center', va='top', fontsize=11,
                    fontweight='bold', color=colour)  # fmt: skip
    caption = 'given label above; labels the run added below (green)'
    if truth is not None:
        caption += ', wrong ones red, objects it missed grey'
    fig.suptitle(caption, fontsize=11)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.82, bottom=0.3, wspace=0.08)
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
