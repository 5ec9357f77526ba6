"""The review server: the page, its thumbnails and the decisions file, on 127.0.0.1 only, behind a token.

Every request must carry `?token=<token>` (a random one per start; compared in constant time), else 403. GET
`/` serves the page, `/img/<i>.png` a thumbnail, `/api/decisions` every decision record; POST `/api/decisions`
appends one record to `review/decisions.jsonl` (`decisions.append_decision`: one O_APPEND write, fsynced,
under a lock) and answers with every record, so each tab sees the others' decisions.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import secrets
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from mlrelabel import decisions

HOST = '127.0.0.1'
MAX_BODY = 65536
_IMAGE = re.compile(r'/img/([0-9]+\.png)')


class ReviewServer(ThreadingHTTPServer):
    """Serves `directory` (WORKDIR/review) on 127.0.0.1:`port` (0: a free port) with a random token."""

    daemon_threads = True

    def __init__(self, directory: str, port: int = 0):
        self.directory = os.path.abspath(directory)
        self.token = secrets.token_urlsafe(24)
        self.decisions_path = os.path.join(self.directory, 'decisions.jsonl')
        self.lock = threading.Lock()  # one decision written at a time
        super().__init__((HOST, int(port)), _Handler)

    @property
    def url(self) -> str:
        return f'http://{HOST}:{self.server_address[1]}/?token={self.token}'


class _Handler(BaseHTTPRequestHandler):
    server: ReviewServer

    def log_message(self, format, *args):  # noqa: A002 - the base class's name; quiet: the URL is the output
        pass

    def _authorised(self) -> bool:
        token = parse_qs(urlparse(self.path).query).get('token', [''])[0]
        if hmac.compare_digest(token.encode(), self.server.token.encode()):
            return True
        self._send(403, b'forbidden: the URL needs the token mlrelabel-review printed\n', 'text/plain')
        return False

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header('Content-Type', kind)
        self.send_header('Content-Length', str(len(body)))
        self.send_header('Cache-Control', 'no-store')
        self.send_header('X-Content-Type-Options', 'nosniff')
        self.end_headers()
        self.wfile.write(body)

    def _records(self) -> None:
        body = json.dumps(decisions.read_records(self.server.decisions_path)).encode()
        self._send(200, body, 'application/json')

    def do_GET(self):  # noqa: N802 - http.server's name
        if not self._authorised():
            return
        path = urlparse(self.path).path
        if path in ('/', '/index.html'):
            return self._file(os.path.join(self.server.directory, 'index.html'), 'text/html; charset=utf-8')
        if path == '/api/decisions':
            return self._records()
        image = _IMAGE.fullmatch(path)
        if image:
            return self._file(os.path.join(self.server.directory, 'img', image.group(1)), 'image/png')
        self._send(404, b'not found\n', 'text/plain')

    def do_POST(self):  # noqa: N802 - http.server's name
        if not self._authorised():
            return
        if urlparse(self.path).path != '/api/decisions':
            return self._send(404, b'not found\n', 'text/plain')
        length = int(self.headers.get('Content-Length') or 0)
        if not 0 < length <= MAX_BODY:
            return self._send(400, b'a decision is one small JSON object\n', 'text/plain')
        try:
            record = _checked(json.loads(self.rfile.read(length)))
        except ValueError as e:
            return self._send(400, f'{e}\n'.encode(), 'text/plain')
        with self.server.lock:  # a stale tab's different decision replaces the standing one: undo it first
            standing = _standing(decisions.read_records(self.server.decisions_path), record)
            if standing and record['action'] != 'undo' and standing != record['action']:
                undo = dict(record, action='undo')
                decisions.append_decision(self.server.decisions_path, undo)
            decisions.append_decision(self.server.decisions_path, record)
        self._records()

    def _file(self, path: str, kind: str) -> None:
        if not os.path.isfile(path):
            return self._send(404, b'not found\n', 'text/plain')
        with open(path, 'rb') as f:
            self._send(200, f.read(), kind)


def _standing(records: list, record: dict) -> str | None:
    """The standing action on `record`'s image and class after `records` (None: undecided)."""
    action = None
    for r in records:
        if (r.get('image'), r.get('class')) == (record['image'], record['class']):
            action = None if r.get('action') == 'undo' else r.get('action')
    return action


def _checked(record) -> dict:
    """The record to append: an object with a string image, an int class, a known action and kind."""
    if not isinstance(record, dict):
        raise ValueError('expected a JSON object')
    if not isinstance(record.get('image'), str) or not isinstance(record.get('class'), int):
        raise ValueError('expected "image" (a path) and "class" (an index)')
    if record.get('action') not in decisions.ACTIONS or record.get('kind', 'add') not in decisions.KINDS:
        raise ValueError(f'expected "action" in {decisions.ACTIONS} and "kind" in {decisions.KINDS}')
    keep = ('image', 'class', 'action', 'kind', 'replacement', 'time')
    out = {k: record[k] for k in keep if k in record}
    out.setdefault('time', datetime.now(timezone.utc).isoformat(timespec='seconds'))
    return out
