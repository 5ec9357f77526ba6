"""A person's review decisions (`mlrelabel-review`): the decisions file, its checks, and what it does to labels.

`decisions.jsonl` holds one JSON object per line: `image` (the path as in labels.json), `class` (index),
`action` ('accept' | 'reject' | 'undo': the page's undo clears the image's earlier decision on that class),
`kind` ('add' | 'remove' | 'replace': the proposal decided), `time` (ISO 8601) and, for 'replace', the
`replacement` class. Lines are appended one write each (`append_decision`), so a killed writer loses at most
the line in flight.

Each decision makes some classes known positives and others known negatives of its image (`known_labels`):
accepting an addition keeps the class, rejecting it drops it; accepting a removal drops the given class,
rejecting it keeps it; accepting a replacement drops the given class and adds the replacement. `curate` applies
them to the run's labels (`mlrelabel-review --apply`), `apply_to_lists` to a new run's rounds
(`config.relabel.decisions`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading

from mlrelabel.errors import DataError

ACTIONS = ('accept', 'reject', 'undo')
KINDS = ('add', 'remove', 'replace')
_LOCK = threading.Lock()  # one writer at a time within a process (the review server's threads)


class DecisionsError(DataError):
    """A decisions file that cannot be applied; the message lists every problem with its line number."""


@dataclasses.dataclass(frozen=True)
class Decision:
    """One standing decision: the image's index in labels.json, the class, the action, the kind, the line."""

    index: int
    cls: int
    action: str
    kind: str
    replacement: int | None
    line: int


def append_decision(path: str, record: dict) -> None:
    """Appends `record` as one line of `path` in a single O_APPEND write, flushed to disk before returning."""
    data = (json.dumps(record, sort_keys=True) + '\n').encode()
    with _LOCK:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)


def read_records(path: str) -> list[dict]:
    """The parsable lines of a decisions file (a torn last line, from a killed writer, is left out)."""
    if not os.path.exists(path):
        return []
    out = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                out.append(record)
    return out


def read_decisions(path: str, paths: list[str], num_classes: int) -> list[Decision]:
    """The standing decisions of `path` against the images `paths` (labels.json order) and `num_classes`.

    Raises DecisionsError listing every malformed line, unknown image or class, bad action or kind, and every
    conflict (a different action on the same image and class with no 'undo' between)."""
    index = {p: i for i, p in enumerate(paths)}
    problems, standing = [], {}
    with open(path, encoding='utf-8') as f:
        lines = f.read().splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        decision, why = _parse(line, n, index, num_classes)
        if why:
            problems.append(f'line {n}: {why}')
            continue
        key = (decision.index, decision.cls)
        if decision.action == 'undo':
            standing.pop(key, None)
            continue
        earlier = standing.get(key)
        if earlier and (earlier.action, earlier.kind) != (decision.action, decision.kind):
            problems.append(
                f'line {n}: {decision.action} {decision.kind} of class {decision.cls} on {paths[decision.index]} '
                f'conflicts with line {earlier.line} ({earlier.action} {earlier.kind}; undo it first)'
            )
            continue
        standing.setdefault(key, decision)
    if problems:
        raise DecisionsError(f'{path}: {len(problems)} problem(s):\n  ' + '\n  '.join(problems))
    return sorted(standing.values(), key=lambda d: d.line)


def _parse(line: str, n: int, index: dict, num_classes: int) -> tuple[Decision | None, str | None]:
    try:
        r = json.loads(line)
    except json.JSONDecodeError as e:
        return None, f'not JSON ({e.msg})'
    if not isinstance(r, dict):
        return None, 'not a JSON object'
    missing = [k for k in ('image', 'class', 'action') if k not in r]
    if missing:
        return None, f'missing {", ".join(missing)}'
    action, kind = r['action'], r.get('kind', 'add')
    if action not in ACTIONS:
        return None, f'action {action!r}: expected one of {ACTIONS}'
    if kind not in KINDS:
        return None, f'kind {kind!r}: expected one of {KINDS}'
    if r['image'] not in index:
        return None, f'unknown image {r["image"]!r} (not in the run\'s labels.json)'
    classes = [r['class']] + ([r['replacement']] if kind == 'replace' and action != 'undo' else [])
    for c in classes:
        if not isinstance(c, int) or isinstance(c, bool) or not 0 <= c < num_classes:
            return None, f'unknown class {c!r} (expected an index in [0, {num_classes}))'
    replacement = classes[1] if len(classes) > 1 else None
    return Decision(index[r['image']], r['class'], action, kind, replacement, n), None


def known_labels(decision: Decision) -> tuple[set, set]:
    """`(known positives, known negatives)` of the decision's image."""
    accept = decision.action == 'accept'
    if decision.kind == 'add':
        return ({decision.cls}, set()) if accept else (set(), {decision.cls})
    if not accept:  # the given label stays; a rejected replacement is not added
        return {decision.cls}, ({decision.replacement} if decision.replacement is not None else set())
    return ({decision.replacement} if decision.replacement is not None else set()), {decision.cls}


def apply_to_lists(lists: list, decisions: list[Decision], scores: list | None = None) -> tuple[list, list]:
    """`(lists, scores)` with every decision's known positives added (score 1.0) and known negatives removed;
    `scores` (per image, aligned with `lists`) defaults to 1.0 for every label. The inputs are not modified."""
    scores = scores if scores is not None else [[1.0] * len(x) for x in lists]
    lists, scores = [list(x) for x in lists], [list(s) for s in scores]
    for d in decisions:
        pos, neg = known_labels(d)
        pairs = [(c, s) for c, s in zip(lists[d.index], scores[d.index]) if c not in neg]
        pairs += [(c, 1.0) for c in sorted(pos) if c not in {p for p, _ in pairs}]
        lists[d.index], scores[d.index] = [c for c, _ in pairs], [s for _, s in pairs]
    return lists, scores


def curate(lists: list, decisions: list[Decision], rows: list[dict], paths: list[str], accepted_only: bool):
    """The curated label lists: the run's `lists` with the decisions applied; with `accepted_only`, the
    additions of review `rows` that were not accepted are dropped too."""
    lists, _ = apply_to_lists(lists, decisions)
    if accepted_only:
        accepted = {(d.index, d.cls) for d in decisions if d.kind == 'add' and d.action == 'accept'}
        index = {p: i for i, p in enumerate(paths)}
        for r in rows:
            i = index.get(r['image'])
            if r['suggestion'] == 'add' and i is not None and (i, int(r['class'])) not in accepted:
                lists[i] = [c for c in lists[i] if c != int(r['class'])]
    return lists


def load_for_run(path: str, paths: list[str], num_classes: int) -> list[Decision]:
    """`config.relabel.decisions` for a relabel run: its decisions, checked against the run's images."""
    if not os.path.isfile(path):
        raise DecisionsError(f'config.relabel.decisions={path!r}: no such file')
    return read_decisions(path, paths, num_classes)
