"""The review list: additions and suspect given labels, ranked by the evidence the labels came from."""

import csv
import io

import numpy as np

from mlrelabel.relabel import review


def _log_odds(p):
    p = np.asarray(p, np.float64)
    return (np.log(p) - np.log1p(-p)).astype(np.float32)


def test_rows_rank_additions_and_suspect_given_labels():
    names = ['cat', 'dog', 'fox']
    paths = ['a.jpg', 'b.jpg', 'c.jpg']
    evidence = _log_odds(
        [
            [0.9, 0.7, 0.1],  # given cat, dog added with p = 0.7
            [0.2, 0.1, 0.95],  # given cat, but fox stands out and was not assigned: replace
            [0.3, 0.4, 0.2],  # given dog, nothing stands out: remove
        ]
    )
    final = [[0, 1], [0], [1]]
    given = np.asarray([0, 0, 1])
    rows = review.rank_rows(review.candidate_rows(final, given, evidence, names, paths), chosen_round=2)
    assert [(r['image'], r['class_name'], r['suggestion']) for r in rows] == [
        ('b.jpg', 'cat', 'replace'),  # score 1 - 0.2 = 0.8
        ('a.jpg', 'dog', 'add'),  # 0.7
        ('c.jpg', 'dog', 'remove'),  # 1 - 0.4 = 0.6
    ]
    assert [r['rank'] for r in rows] == [1, 2, 3] and {r['round'] for r in rows} == {2}
    replace = rows[0]
    assert replace['replacement'] == 2 and replace['replacement_name'] == 'fox'
    assert replace['score'] == 0.8 and replace['label_quality'] == 0.2 and replace['given'] == 'cat'
    assert rows[1]['final'] == 'cat dog' and rows[2]['replacement'] == ''
    parsed = list(csv.DictReader(io.StringIO(review.to_csv(rows))))
    assert list(parsed[0]) == list(review.FIELDS) and [p['class_name'] for p in parsed] == [
        'cat',
        'dog',
        'dog',
    ]


def test_confident_given_labels_and_unlabelled_images_make_no_rows():
    evidence = _log_odds([[0.8, 0.1], [0.1, 0.2]])
    rows = review.rank_rows(
        review.candidate_rows([[0], []], np.asarray([0, -1]), evidence, ['x', 'y'], ['p', 'q']), 1
    )
    assert rows == []


def test_the_picture_shows_additions_and_suspects():
    rows = [{'suggestion': 'add', 'rank': i} for i in range(10)] + [
        {'suggestion': s, 'rank': 10 + i} for i, s in enumerate(['remove', 'replace', 'remove'])
    ]
    assert [r['rank'] for r in review.pictured_rows(rows, 4)] == [0, 1, 10, 11]
    assert [r['rank'] for r in review.pictured_rows(rows, 8)] == [0, 1, 2, 3, 4, 10, 11, 12]
    assert [r['rank'] for r in review.pictured_rows(rows[:2] + rows[10:], 4)] == [0, 1, 10, 11]
    assert [r['rank'] for r in review.pictured_rows(rows[:1] + rows[10:], 4)] == [0, 10, 11, 12]
    assert review.pictured_rows(rows[:3], 2) == rows[:2]
