"""Review decisions (`mlrelabel.decisions`): whole-line appends, a torn last line skipped, decisions fed to a
run as known positives and negatives."""

import json

import pytest

from mlrelabel import decisions

PATHS = ['a.jpg', 'b.jpg', 'c.jpg']


def _write(path, records):
    path.write_text(''.join((r if isinstance(r, str) else json.dumps(r)) + '\n' for r in records))
    return str(path)


def test_decisions_feed_a_run_as_known_positives_and_negatives(tmp_path):
    source = _write(
        tmp_path / 'd.jsonl',
        [
            {'image': 'a.jpg', 'class': 2, 'action': 'accept', 'kind': 'add'},
            {'image': 'c.jpg', 'class': 1, 'action': 'reject', 'kind': 'add'},
            '',
        ],
    )
    found = decisions.load_for_run(source, PATHS, 3)
    lists, scores = decisions.apply_to_lists([[0], [1], [0, 1]], found, [[0.9], [0.8], [0.9, 0.7]])
    assert lists == [[0, 2], [1], [0]] and scores == [[0.9, 1.0], [0.8], [0.9]]
    with pytest.raises(decisions.DecisionsError, match='no such file'):
        decisions.load_for_run(str(tmp_path / 'missing.jsonl'), PATHS, 3)


def test_appends_are_whole_lines_and_a_torn_last_line_is_skipped(tmp_path):
    path = str(tmp_path / 'decisions.jsonl')
    decisions.append_decision(path, {'image': 'a.jpg', 'class': 1, 'action': 'accept'})
    with open(path, 'a') as f:
        f.write('{"image": "b.jp')  # a writer killed mid-line
    assert [r['image'] for r in decisions.read_records(path)] == ['a.jpg']
