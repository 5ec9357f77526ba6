"""`mlrelabel-review` (`mlrelabel.review.cli`): --apply accepts, rejects and leaves the undecided as proposed,
reports bad lines, refuses the run's own files; the server listens on localhost and needs its token."""

import json
import socket
import urllib.error
import urllib.request

import pytest

from mlrelabel import decisions
from mlrelabel.review import cli
from mlrelabel.review.server import ReviewServer
from tests.review.helpers import NAMES, PATHS, ROWS


@pytest.fixture
def run_dir(tmp_path):
    """A finished run's files that --apply reads: labels.json (a: cat+dog, b: cat, c: dog+fox) and review.json."""
    labels = {
        'classes': NAMES,
        'data': [
            {'img_path': 'a.jpg', 'labels': [0, 1]},
            {'img_path': 'b.jpg', 'labels': [0]},
            {'img_path': 'c.jpg', 'labels': [1, 2]},
        ],
    }
    (tmp_path / 'labels.json').write_text(json.dumps(labels))
    (tmp_path / 'review.json').write_text(json.dumps({'rows': ROWS}))
    (tmp_path / 'review').mkdir()
    return tmp_path


def _write(path, records):
    path.write_text(''.join((r if isinstance(r, str) else json.dumps(r)) + '\n' for r in records))
    return str(path)


def _curated(path):
    with open(path) as f:
        doc = json.load(f)
    assert doc['classes'] == NAMES
    return {e['img_path']: sorted(e['labels']) for e in doc['data']}


def test_apply_accepts_rejects_and_leaves_undecided_as_proposed(run_dir):
    before = (run_dir / 'labels.json').read_text()
    _write(
        run_dir / 'review' / 'decisions.jsonl',
        [
            {'image': 'a.jpg', 'class': 1, 'action': 'reject', 'kind': 'add'},
            {'image': 'b.jpg', 'class': 0, 'action': 'accept', 'kind': 'replace', 'replacement': 2},
            {'image': 'c.jpg', 'class': 1, 'action': 'accept', 'kind': 'remove'},
            {'image': 'c.jpg', 'class': 1, 'action': 'undo', 'kind': 'remove'},
            {'image': 'c.jpg', 'class': 1, 'action': 'reject', 'kind': 'remove'},
        ],
    )
    assert cli.main([str(run_dir), '--apply']) == 0
    assert _curated(run_dir / 'labels.curated.json') == {'a.jpg': [0], 'b.jpg': [2], 'c.jpg': [1, 2]}
    assert (run_dir / 'labels.json').read_text() == before
    out = run_dir / 'only.json'
    assert cli.main([str(run_dir), '--apply', f'--out={out}', '--accepted-only']) == 0
    assert _curated(out)['c.jpg'] == [1]  # the undecided addition of fox is dropped
    assert cli.main([str(run_dir), '--apply']) == 2  # exists: needs --force
    assert cli.main([str(run_dir), '--apply', '--force']) == 0


@pytest.mark.parametrize(
    'line, expected',
    [
        ('{"image": "a.jpg", "class": 1', 'line 2: not JSON'),
        ({'image': 'zz.jpg', 'class': 1, 'action': 'accept'}, "line 2: unknown image 'zz.jpg'"),
        ({'image': 'a.jpg', 'class': 7, 'action': 'accept'}, 'line 2: unknown class 7'),
        ({'image': 'a.jpg', 'class': 1, 'action': 'maybe'}, "line 2: action 'maybe'"),
        ({'image': 'a.jpg', 'class': 1, 'action': 'reject', 'kind': 'add'}, 'line 2: reject add of class 1'),
    ],
)
def test_apply_reports_bad_lines_and_writes_nothing(run_dir, capsys, line, expected):
    first = {'image': 'a.jpg', 'class': 1, 'action': 'accept', 'kind': 'add'}
    source = _write(run_dir / 'd.jsonl', [first, line])
    assert cli.main([str(run_dir), '--apply', f'--decisions={source}']) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count('mlrelabel-review:') == 1
    assert not (run_dir / 'labels.curated.json').exists()


def test_apply_refuses_the_runs_own_files_and_a_missing_decisions_file(run_dir, capsys):
    source = _write(run_dir / 'd.jsonl', [{'image': 'a.jpg', 'class': 1, 'action': 'accept'}])
    out = run_dir / 'labels.json'
    assert cli.main([str(run_dir), '--apply', f'--decisions={source}', f'--out={out}', '--force']) == 2
    assert cli.main([str(run_dir), '--apply', f'--decisions={run_dir}/none.jsonl']) == 2
    assert 'run\'s own files' in capsys.readouterr().err


def _get(url, data=None):
    request = urllib.request.Request(url, data=data, headers={'Content-Type': 'application/json'})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_server_listens_on_localhost_and_needs_the_token(run_dir):
    import threading

    (run_dir / 'review' / 'index.html').write_text('<p>page</p>')
    server = ReviewServer(str(run_dir / 'review'))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address
        assert host == '127.0.0.1' and server.url.startswith(f'http://127.0.0.1:{port}/?token=')
        base = f'http://127.0.0.1:{port}'
        assert _get(f'{base}/')[0] == 403 and _get(f'{base}/?token=wrong')[0] == 403
        assert _get(f'{base}/api/decisions', b'{}')[0] == 403
        assert _get(server.url) == (200, b'<p>page</p>')
        record = {'image': 'a.jpg', 'class': 1, 'action': 'accept', 'kind': 'add'}
        status, body = _get(f'{base}/api/decisions?token={server.token}', json.dumps(record).encode())
        assert status == 200 and json.loads(body)[0]['action'] == 'accept'
        record['action'] = 'reject'  # a stale tab's other decision: the standing one is undone first
        status, body = _get(f'{base}/api/decisions?token={server.token}', json.dumps(record).encode())
        assert [r['action'] for r in json.loads(body)] == ['accept', 'undo', 'reject']
        assert _get(f'{base}/api/decisions?token={server.token}', b'[1]')[0] == 400
        others = [a for a in _addresses() if a != '127.0.0.1']
        for address in others[:1]:  # not reachable on the machine's other addresses
            with pytest.raises(OSError):
                socket.create_connection((address, port), timeout=2).close()
    finally:
        server.shutdown()
        server.server_close()
    standing = decisions.read_decisions(str(run_dir / 'review' / 'decisions.jsonl'), PATHS, 3)
    assert [(d.index, d.cls, d.action) for d in standing] == [(0, 1, 'reject')]


def _addresses():
    try:
        return sorted({info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)})
    except OSError:
        return []
