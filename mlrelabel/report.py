"""What a person looks at: plots of training and rounds, image grids with boxes and labels, text tables.

Figures are written atomically (rendered to a temporary file in the target folder, then renamed).
"""

from __future__ import annotations

import dataclasses
import textwrap
from typing import Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from mlrelabel.io_utils import atomic_write_file


def save_figure(fig, path: str) -> None:
    """Renders `fig` to PNG (the Agg canvas of a bare `Figure`: no pyplot, no global backend state)."""
    atomic_write_file(path, lambda f: fig.savefig(f, format='png', dpi=100, bbox_inches='tight'))


_save = save_figure


def plot_history(history: Sequence[dict], path: str, title: str = '') -> None:
    """Training loss (left) and every evaluated metric in [0, 1] (right) per epoch."""
    epochs = [row['epoch'] for row in history]
    fig = Figure(figsize=(11, 4))
    ax_loss, ax_metric = fig.subplots(1, 2)
    ax_loss.plot(epochs, [row['train_loss'] for row in history], 'o-', label='train loss')
    val_loss = [(row['epoch'], row['val_loss']) for row in history if 'val_loss' in row]
    if val_loss:
        ax_loss.plot(*zip(*val_loss), 'o-', label='val loss')
    ax_loss.set_xlabel('epoch')
    ax_loss.set_ylabel('loss')
    ax_loss.legend()
    keys = sorted(
        {
            k
            for row in history
            for k in row
            if (k.startswith(('val_', 'test_')) and not k.endswith('_loss')) or k == 'train_accuracy'
        }
    )
    for k in keys:
        pts = [(row['epoch'], row[k]) for row in history if k in row]
        ax_metric.plot(*zip(*pts), 'o-', label=k, markersize=3)
    ax_metric.set_xlabel('epoch')
    ax_metric.set_ylim(0, 1)
    ax_metric.legend(fontsize=7, ncol=2)
    fig.suptitle(title)
    _save(fig, path)


def plot_rounds(
    rows: Sequence[dict], keys: Sequence[str], path: str, title: str = '', chosen: int | None = None
) -> None:
    """`rounds_figure` as a PNG at `path`."""
    _save(rounds_figure(rows, keys, title, chosen), path)


def rounds_figure(
    rows: Sequence[dict], keys: Sequence[str], title: str = '', chosen: int | None = None
) -> Figure:
    """One line per metric over relabel rounds: metrics in [0, 1] on the left axis, any other (a score such as
    `heldout_pu_score`) on a right axis of its own; the `chosen` round (the output labels) is marked."""
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    rounds = [row['round'] for row in rows]
    series = {k: np.array([row.get(k, np.nan) for row in rows], dtype=float) for k in keys}

    def unit(v):
        finite = v[np.isfinite(v)]
        return finite.size == 0 or (finite.min() >= 0 and finite.max() <= 1)

    other = [k for k in keys if not unit(series[k])]
    right = ax.twinx() if other else None
    lines = []
    for i, k in enumerate(keys):
        target, style = (right, 's--') if k in other else (ax, 'o-')
        label = k + (' (right axis)' if k in other else '')
        lines += target.plot(rounds, series[k], style, color=f'C{i}', label=label)
    if chosen is not None:
        ax.axvline(chosen, color='k', alpha=0.3, linewidth=6)
        ax.annotate(
            'output' if chosen else 'output: the given labels',
            (chosen, 0.97),
            xytext=(-7, 0) if chosen == max(rounds) else (7, 0),
            textcoords='offset points',
            ha='right' if chosen == max(rounds) else 'left',
            va='top',
            fontsize=8,
        )
    ax.set_xlabel('round')
    ax.set_xticks(rounds)
    ax.set_xlim(min(rounds) - 0.4, max(rounds) + 0.4)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    legend_x = 1.12 if right is not None else 1.02  # beside the plot (and its right axis): it covers no line
    ax.legend(
        lines,
        [line.get_label() for line in lines],
        fontsize=8,
        loc='upper left',
        bbox_to_anchor=(legend_x, 1),
    )
    ax.set_title(title)
    return fig


def short_name(name: str, max_chars: int = 14) -> str:
    """`name`, cut to `max_chars` with '…' when longer (captions under small images)."""
    name = str(name)
    return name if len(name) <= max_chars else name[: max_chars - 1] + '…'


def class_text(c: int, names: Sequence[str] | None = None, max_chars: int = 14) -> str:
    """Class id `c` with its name beside it (`3 cat`), or `3` when the name is just the id (unnamed classes)."""
    c = int(c)
    name = str(names[c]) if names is not None else str(c)
    return str(c) if name == str(c) else f'{c} {short_name(name, max_chars)}'


def label_text(ids: Sequence[int], names: Sequence[str] | None = None, max_chars: int = 14) -> str:
    """Class ids with their names beside them, for captions: `[3 cat, 7 dog]` (`[3, 7]` without names)."""
    return '[' + ', '.join(class_text(c, names, max_chars) for c in ids) + ']'


def _wrap(caption: str, width: int) -> str:
    return '\n'.join(textwrap.fill(line, width) if line else line for line in caption.split('\n'))


@dataclasses.dataclass(frozen=True)
class GridLayout:
    """How `draw_examples` lays out its grid.

    Attributes:
      columns: images per row.
      title: the figure's title.
      wrap: caption lines are wrapped at this many characters.
    """

    columns: int = 8
    title: str = ''
    wrap: int = 40


def draw_examples(
    images: np.ndarray,
    captions: Sequence[str],
    path: str,
    *,
    boxes: Sequence[np.ndarray] | None = None,
    box_captions: Sequence[Sequence[str]] | None = None,
    **layout,
) -> None:
    """Grid of `images [N, H, W, 3]` uint8 with a caption each and optional boxes `[K, 4]` (y0, x0, y1, x1) in
    [0, 1] fractions drawn on top (e.g. the crops that produced a new label), each with an optional caption
    (`box_captions[i][j]`). `layout`: the keywords of `GridLayout` (columns, title, wrap)."""
    grid = GridLayout(**layout)
    n = len(images)
    rows = max(1, -(-n // grid.columns))
    fig = Figure(figsize=(2.6 * grid.columns, 3.0 * rows))
    axes = fig.subplots(rows, grid.columns, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis('off')
        if i >= n:
            continue
        ax.imshow(images[i], interpolation='nearest')
        ax.set_title(_wrap(captions[i], grid.wrap), fontsize=7)
        if boxes is not None:
            _draw_boxes(
                ax, np.asarray(boxes[i]), None if box_captions is None else box_captions[i], images[i].shape
            )
    fig.suptitle(grid.title)
    _save(fig, path)


def _draw_boxes(ax, boxes: np.ndarray, captions, shape: tuple) -> None:
    """Draws `boxes` (any shape reshaping to `[K, 4]` fractions; empty ones skipped) on an image of `shape`
    in `ax`, one colour each, with `captions[j]` where given."""
    h, w = shape[:2]
    colours = matplotlib.colormaps['tab10'].colors
    for j, (y0, x0, y1, x1) in enumerate(boxes.reshape(-1, 4)):
        if y1 <= y0:
            continue
        colour = colours[j % len(colours)]
        ax.add_patch(
            Rectangle(
                (x0 * w - 0.5, y0 * h - 0.5),
                (x1 - x0) * w,
                (y1 - y0) * h,
                fill=False,
                edgecolor=colour,
                linewidth=1,
            )
        )
        if captions is not None and j < len(captions) and captions[j]:
            ax.text(x0 * w, y0 * h, captions[j], color=colour, fontsize=6, va='bottom')


def format_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """A plain-text table (floats with 4 decimals) for the terminal and logs."""

    def cell(v):
        return f'{v:.4f}' if isinstance(v, float) else str(v)

    body = [[cell(row.get(c, '')) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in body)) if body else len(c) for i, c in enumerate(columns)]
    line = lambda vals: '  '.join(v.rjust(w) for v, w in zip(vals, widths))  # noqa: E731
    return '\n'.join([line(columns), line(['-' * w for w in widths])] + [line(r) for r in body])
