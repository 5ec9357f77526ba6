"""The review list: every change the run suggests and every suspect given label, ranked, with the evidence.

Users judge the output, so they need to see which images changed and why. Each row is one decision a person can
check: a class the run added to an image, or a given label the evidence does not support (with the class to
put instead, when one stands out). Rows are scored with the relabel evidence itself: each image's crops scored
by the model of the round before, averaged over the rounds. In the spirit of confident learning's
self-confidence (Northcutt, Jiang & Chuang, "Confident Learning: Estimating Uncertainty in Dataset Labels",
JAIR 2021), a given label is suspect when that evidence puts its class below one half; the run's round
averaging and MC crops played the part of its cross-validation better than models fitted on halves of the data
(measured in `methods.relabel._review`).

`score` ranks the rows, most certain first: for an addition the probability of its log-odds margin over the
class's threshold (the round's thresholds.json; p(class) without thresholds), so that additions the rule took
with room to spare rank above those just past it instead of all reading 1.0; 1 - p(given) for a suspect given
label (its margin below even odds). `margin` is that log-odds margin.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mlrelabel.relabel.evidence import to_probability

FIELDS = (
    'rank',
    'image',
    'class',
    'class_name',
    'suggestion',
    'replacement',
    'replacement_name',
    'score',
    'margin',
    'label_quality',
    'given',
    'final',
    'round',
)


def candidate_rows(
    final: list[list[int]],
    given: np.ndarray,
    evidence: np.ndarray,
    class_names: list[str],
    paths: list[str],
    thresholds: np.ndarray | None = None,
) -> list[dict]:
    """Unranked review rows (dicts with FIELDS) of some images (a chunk of a large dataset can be done at a
    time); `rank_rows` ranks them.

    Args:
      final: per image, the final label list.
      given: `[N]` the given label of each image (-1: none).
      evidence: `[N, C]` log-odds per image and class.
      class_names: `[C]` names; paths: `[N]` image paths.
      thresholds: `[C]` the labels' per-class log-odds thresholds (None or not finite: 0, even odds).
    """
    p = to_probability(evidence)
    t = np.zeros(p.shape[1], np.float64) if thresholds is None else np.asarray(thresholds, np.float64)
    t = np.where(np.isfinite(t), t, 0.0)
    rows = []
    for i, labels in enumerate(final):
        g = int(given[i])
        image = _Image(paths[i], g, [class_names[c] for c in labels], class_names)
        for c in labels:
            if c == g:
                continue
            margin = float(evidence[i, c]) - t[c]
            rows.append(_row(image, c, 'add', None, margin, float(p[i, c])))
        if g < 0:
            continue
        quality = float(p[i, g])
        if quality >= 0.5:
            continue
        others = np.where(np.arange(p.shape[1]) == g, -np.inf, evidence[i])
        best = int(np.argmax(others))
        replacement = best if p[i, best] >= 0.5 and best not in labels else None
        suggestion = 'replace' if replacement is not None else 'remove'
        margin = -float(evidence[i, g])
        rows.append(_row(image, g, suggestion, replacement, margin, quality))
    return rows


def rank_rows(rows: list[dict], chosen_round: int) -> list[dict]:
    """The rows sorted by score (most certain first; ties by image and class), numbered, with the round."""
    rows = sorted(rows, key=lambda r: (-r['score'], r['image'], r['class']))
    for rank, row in enumerate(rows, 1):
        row['rank'] = rank
        row['round'] = chosen_round
    return rows


def pictured_rows(rows: list[dict], count: int) -> list[dict]:
    """The `count` rows to draw: the best-ranked additions and the best-ranked suspect given labels, half each
    when both kinds have enough (additions usually outnumber suspects and would fill the picture alone)."""
    adds = [r for r in rows if r['suggestion'] == 'add']
    suspects = [r for r in rows if r['suggestion'] != 'add']
    take = min(len(suspects), max(count // 2, count - len(adds)))
    chosen = {id(r) for r in suspects[:take] + adds[: count - take]}
    return [r for r in rows if id(r) in chosen]


@dataclasses.dataclass(frozen=True)
class _Image:
    """What every review row of one image shows: its path, given label (-1: none) and final label names; and
    the class names."""

    path: str
    given: int
    final_names: list
    class_names: list


def _row(image: _Image, c: int, suggestion: str, replacement, margin: float, quality: float) -> dict:
    """One row of `image` about class `c`; `replacement` a class or None."""
    names, given = image.class_names, image.given
    return {
        'rank': 0,
        'image': image.path,
        'class': int(c),
        'class_name': names[c],
        'suggestion': suggestion,
        'replacement': '' if replacement is None else int(replacement),
        'replacement_name': '' if replacement is None else names[replacement],
        'score': round(float(to_probability(np.float64(margin))), 6),
        'margin': round(margin, 4),
        'label_quality': round(quality, 6),
        'given': '' if given < 0 else names[given],
        'final': ' '.join(image.final_names),
        'round': 0,
    }


def to_csv(rows: list[dict]) -> str:
    """The rows as CSV text (header FIELDS)."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator='\n')
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
