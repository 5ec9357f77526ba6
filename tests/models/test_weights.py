"""Published weights by name (`mlrelabel.models.weights`): downloaded once from a local HTTP server on 127.0.0.1
into a cache folder, hash-checked, loaded exactly as the same local file; failures leave nothing in the cache.
No test reaches the internet: every name used here is pointed at the local server."""

import hashlib
import http.server
import os
import re
import socket
import threading

import jax
import numpy as np
import pytest

from mlrelabel.config import base_config
from mlrelabel.errors import ConfigError
from mlrelabel.methods import common
from mlrelabel.models import MODEL_NAMES, to_torchvision, weights
from mlrelabel.validation import problems, validate_config

NAME = weights.PREFIX + 'test_tiny'


def _tiny_config():
    c = base_config('smoke')
    c.data.num_train, c.data.num_val, c.data.image_size = 64, 32, 16
    c.model.name, c.model.width = 'resnet_tiny', 8
    return c


class _Server:
    """Serves `files` (URL path → bytes); `short` paths announce their full length but send half and close."""

    def __init__(self):
        self.files, self.short, self.requests = {}, set(), []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if self.path in server.short else body)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f'http://127.0.0.1:{self.httpd.server_address[1]}{path}'

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope='module')
def tiny_weights(tmp_path_factory):
    """A resnet_tiny (width 8, 1000 classes) torchvision-layout state_dict as .npz bytes, its file and sha256."""
    path = tmp_path_factory.mktemp('weights') / 'tiny.npz'
    c = _tiny_config()
    variables = common.init_variables(common.build_model(c, 1000), c, seed=123)
    np.savez(path, **to_torchvision(variables))
    body = path.read_bytes()
    return body, str(path), hashlib.sha256(body).hexdigest()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """The default cache folder, moved into tmp_path through $MLRELABEL_CACHE."""
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / 'cache'))
    return tmp_path / 'cache' / 'weights'


def _publish(monkeypatch, server, body, sha256, filename='tiny-weights.npz', short=False):
    server.files['/' + filename] = body
    if short:
        server.short.add('/' + filename)
    entry = weights.PublishedWeights('resnet_tiny', server.url('/' + filename), sha256)
    monkeypatch.setitem(weights.REGISTRY, NAME, entry)
    return entry


def _same(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(np.array_equal(x, y) for x, y in zip(la, lb))


def test_downloads_once_then_uses_the_cache(tiny_weights, server, cache, monkeypatch):
    body, _, sha = tiny_weights
    entry = _publish(monkeypatch, server, body, sha[:8])  # the published 8-digit prefix, as torchvision's
    path = weights.fetch_weights(NAME)
    assert path == str(cache / entry.filename) and open(path, 'rb').read() == body
    assert server.requests == ['/tiny-weights.npz'] and os.listdir(cache) == [entry.filename]
    assert weights.fetch_weights(NAME) == path and len(server.requests) == 1  # the server is not asked again
    other = weights.fetch_weights(
        NAME, cache_dir=cache.parent / 'elsewhere'
    )  # the argument overrides the env
    assert open(other, 'rb').read() == body and len(server.requests) == 2
    # A cached file that no longer matches is refused, naming the file, the URL and the expected hash.
    with open(path, 'r+b') as f:
        f.write(b'X')
    with pytest.raises(weights.WeightsDownloadError, match=re.escape(entry.url) + '.*' + sha[:8]):
        weights.fetch_weights(NAME)


def test_a_wrong_hash_leaves_nothing_in_the_cache(tiny_weights, server, cache, monkeypatch):
    body, _, sha = tiny_weights
    wrong = ('0' if sha[0] != '0' else '1') + sha[1:]
    entry = _publish(monkeypatch, server, body, wrong)  # the full digest, one digit off
    with pytest.raises(weights.WeightsDownloadError) as e:
        weights.fetch_weights(NAME)
    text = str(e.value)
    assert entry.url in text and wrong in text and sha in text and str(cache / entry.filename) in text
    assert os.listdir(cache) == []
    assert isinstance(e.value, OSError)  # the entry point's operating-system exit code (4)


def test_a_dropped_connection_leaves_nothing_in_the_cache(tiny_weights, server, cache, monkeypatch):
    body, _, sha = tiny_weights
    entry = _publish(monkeypatch, server, body, sha, short=True)
    with pytest.raises(
        weights.WeightsDownloadError, match=rf'closed after {len(body) // 2} of {len(body)} bytes'
    ):
        weights.fetch_weights(NAME)
    assert server.requests and os.listdir(cache) == []
    missing = _publish(monkeypatch, server, body, sha)
    server.files.clear()  # HTTP 404
    with pytest.raises(weights.WeightsDownloadError, match=re.escape(missing.url) + '.*HTTP 404'):
        weights.fetch_weights(NAME)
    assert os.listdir(cache) == [] and entry.filename == missing.filename


def test_offline_names_the_url_the_hash_and_the_manual_path(tiny_weights, cache, monkeypatch):
    _, _, sha = tiny_weights
    with socket.socket() as s:  # a port nothing listens on: the connection is refused
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    url = f'http://127.0.0.1:{port}/tiny-weights.npz'
    monkeypatch.setitem(weights.REGISTRY, NAME, weights.PublishedWeights('resnet_tiny', url, sha[:8]))
    with pytest.raises(weights.WeightsDownloadError) as e:
        weights.fetch_weights(NAME)
    text = str(e.value)
    assert 'no connection' in text and url in text and sha[:8] in text
    assert str(cache / 'tiny-weights.npz') in text
    assert not cache.exists() or os.listdir(cache) == []


def test_a_named_config_validates_and_loads_as_the_local_file(tiny_weights, server, cache, monkeypatch):
    body, local, sha = tiny_weights
    _publish(monkeypatch, server, body, sha[:8])
    c = _tiny_config()
    c.model.pretrained = NAME
    validate_config(c)
    model = common.build_model(c, 10)
    named = common.init_variables(model, c, 0)
    c.model.pretrained = local
    assert _same(named, common.init_variables(model, c, 0))
    assert len(server.requests) == 1


def test_validation_of_names():
    c = base_config('smoke')
    c.model.name, c.model.pretrained = 'resnet18', 'torchvision:resnet_what'
    with pytest.raises(
        ConfigError, match=r"unknown published weights.*torchvision:resnet152, torchvision:resnet18"
    ):
        validate_config(c)
    c.model.pretrained = 'torchvision:resnet50'
    found = [p for p in problems(c) if 'pretrained' in p]
    assert any("holds resnet50 weights, but config.model.name='resnet18'" in p for p in found)
    c.model.name = 'resnet50'
    found = [p for p in problems(c) if 'pretrained' in p]
    import importlib.util

    assert bool(found) == (importlib.util.find_spec('torch') is None)  # a .pth file: torch reads it
    assert all('needs torch' in p for p in found)


def test_the_published_table_and_the_cache_folder(monkeypatch):
    """Each built-in name is torchvision's V1 file of one of our networks; its hash is the file name's suffix."""
    assert set(weights.REGISTRY) == {weights.PREFIX + n for n in MODEL_NAMES if not n.startswith('resnet_')}
    for name, entry in weights.REGISTRY.items():
        assert name == weights.PREFIX + entry.network and entry.network in MODEL_NAMES
        # torchvision's file names: the network, a source tag for some (inception_v3_google, ..._rwightman), the hash
        assert re.fullmatch(
            rf'https://download\.pytorch\.org/models/{entry.network}(_google|_rwightman)?-[0-9a-f]{{8}}\.pth',
            entry.url,
        )
        assert entry.filename.startswith(entry.network) and entry.filename.endswith(f'-{entry.sha256}.pth')
    with pytest.raises(ValueError, match='known names: torchvision:efficientnet_b0, .*torchvision:resnet101'):
        weights.fetch_weights('torchvision:nope')
    monkeypatch.delenv(weights.CACHE_ENV, raising=False)
    monkeypatch.setenv('XDG_CACHE_HOME', '/x/cache')
    assert weights.default_cache_dir() == '/x/cache/mlrelabel/weights'
    monkeypatch.delenv('XDG_CACHE_HOME')
    assert weights.default_cache_dir() == os.path.expanduser('~/.cache/mlrelabel/weights')
    monkeypatch.setenv(weights.CACHE_ENV, '/y')
    assert weights.default_cache_dir() == '/y/weights'


def test_a_failed_download_stops_the_run_before_its_workdir_is_claimed(
    tiny_weights, server, cache, monkeypatch, tmp_path
):
    """`launch.run_method` fetches the weights right after the preflight: offline, nothing is written, and the
    `mlrelabel` command would end with its operating-system exit code naming the URL."""
    from mlrelabel import errors, main

    body, _, sha = tiny_weights
    entry = _publish(monkeypatch, server, body, sha, short=True)
    c = _tiny_config()
    c.model.pretrained = NAME
    with pytest.raises(weights.WeightsDownloadError) as e:
        main.run(c, str(tmp_path / 'run'))
    assert not (tmp_path / 'run').exists() and os.listdir(cache) == []
    code, message = errors.describe_failure(e.value)
    assert code == errors.EXIT_OS_ERROR and entry.url in message and str(cache / entry.filename) in message


@pytest.mark.slow
def test_a_run_starts_from_the_named_weights(tiny_weights, server, cache, monkeypatch, tmp_path):
    """`mlrelabel.main.run` with a name: one download, and (a vanishing learning rate) the trained parameters
    are the published ones."""
    from mlrelabel import main
    from mlrelabel.models.torchvision import from_torchvision
    from mlrelabel.run import load_run

    body, local, sha = tiny_weights
    _publish(monkeypatch, server, body, sha[:8])
    c = _tiny_config()
    c.train.batch_size, c.train.epochs, c.eval.batch_size = 16, 1, 16
    c.model.pretrained = NAME
    c.optim.learning_rate, c.optim.weight_decay = 1e-30, 0.0
    main.run(c, str(tmp_path / 'run'))
    assert len(server.requests) == 1
    published = from_torchvision(local, 'resnet_tiny')['params']
    trained = load_run(str(tmp_path / 'run')).variables()['params']
    backbone = [k for k in published if k != 'fc']  # 1000 classes published, 10 here: a new classifier
    for key in backbone:
        for a, b in zip(jax.tree.leaves(trained[key]), jax.tree.leaves(published[key])):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-20)
