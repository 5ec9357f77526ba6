"""Published weights by name: `torchvision:resnet50` → the official file, downloaded once into a cache folder
and checked against its published hash; `methods.common.pretrained_variables` then loads it as a local path.

    path = fetch_weights('torchvision:resnet50')   # ~/.cache/mlrelabel/weights/resnet50-0676ba61.pth

The cache folder is `$MLRELABEL_CACHE/weights`, else `$XDG_CACHE_HOME/mlrelabel/weights`, else
`~/.cache/mlrelabel/weights` (`cache_dir=` overrides all three); where the file lies changes no result, since
its hash is checked on every use. A download is streamed into a temporary file in the cache folder, hashed,
and renamed over its final name only when the hash matches (`io_utils.atomic_write_file`), so an interrupted
or corrupt download leaves nothing behind. Every failure (offline, HTTP error, dropped connection, wrong
hash) raises `WeightsDownloadError` naming the URL, the expected hash and where to put the file by hand.

`REGISTRY` (name → `PublishedWeights`) is a plain dict: tests point a name at a local server. This module
imports no JAX (config validation reads `REGISTRY` before JAX is loaded).
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

from mlrelabel.io_utils import atomic_write_file

__all__ = [
    'CACHE_ENV',
    'PREFIX',
    'REGISTRY',
    'PublishedWeights',
    'WeightsDownloadError',
    'default_cache_dir',
    'fetch_weights',
    'is_weights_name',
    'lookup',
]

PREFIX = 'torchvision:'
CACHE_ENV = 'MLRELABEL_CACHE'
TIMEOUT_S = 60  # seconds without a byte before a download counts as failed
_CHUNK = 1 << 20


class WeightsDownloadError(OSError):
    """Published weights could not be fetched, or their file fails the published hash: a system / network
    problem, so the `mlrelabel` command ends with its operating-system exit code (4)."""


@dataclasses.dataclass(frozen=True)
class PublishedWeights:
    """One published weights file: the network it belongs to, where it lies, and its published hash."""

    network: str  # the `models.get_model` name the weights fit
    url: str
    sha256: str  # the file's sha256 in hex, or its published leading digits

    @property
    def filename(self) -> str:
        return os.path.basename(urllib.parse.urlparse(self.url).path)


# torchvision's ResNet{18,34,50,101,152}_Weights.IMAGENET1K_V1 (torchvision/models/resnet.py): the classic
# ImageNet weights of the original training recipe (V1, torchvision's `pretrained=True`). The 8 hex digits in
# each file name are the published leading digits of the file's sha256, checked as torch.hub checks them.
# wide_resnet*_2 and resnext* are not offered: models.resnet has neither wider bottlenecks nor grouped convs.
REGISTRY: dict[str, PublishedWeights] = {
    PREFIX + 'resnet18': PublishedWeights(
        'resnet18', 'https://download.pytorch.org/models/resnet18-f37072fd.pth', 'f37072fd'
    ),
    PREFIX + 'resnet34': PublishedWeights(
        'resnet34', 'https://download.pytorch.org/models/resnet34-b627a593.pth', 'b627a593'
    ),
    PREFIX + 'resnet50': PublishedWeights(
        'resnet50', 'https://download.pytorch.org/models/resnet50-0676ba61.pth', '0676ba61'
    ),
    PREFIX + 'resnet101': PublishedWeights(
        'resnet101', 'https://download.pytorch.org/models/resnet101-63fe2227.pth', '63fe2227'
    ),
    PREFIX + 'resnet152': PublishedWeights(
        'resnet152', 'https://download.pytorch.org/models/resnet152-394f9c45.pth', '394f9c45'
    ),
    # torchvision's VGG16_Weights, VGG16_BN_Weights, Inception_V3_Weights and EfficientNet_B0_Weights
    # .IMAGENET1K_V1 (torchvision/models/vgg.py, inception.py, efficientnet.py of torchvision 0.29): the same
    # published leading sha256 digits in the file names. Inception-v3's are Google's weights (inputs
    # re-normalised: models.inception `transform_input`); EfficientNet-B0's are ported from timm.
    PREFIX + 'vgg16': PublishedWeights(
        'vgg16', 'https://download.pytorch.org/models/vgg16-397923af.pth', '397923af'
    ),
    PREFIX + 'vgg16_bn': PublishedWeights(
        'vgg16_bn', 'https://download.pytorch.org/models/vgg16_bn-6c64b313.pth', '6c64b313'
    ),
    PREFIX + 'inception_v3': PublishedWeights(
        'inception_v3', 'https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth', '0cc3c7bd'
    ),
    PREFIX + 'efficientnet_b0': PublishedWeights(
        'efficientnet_b0',
        'https://download.pytorch.org/models/efficientnet_b0_rwightman-7f5810bc.pth',
        '7f5810bc',
    ),
}


def is_weights_name(value) -> bool:
    """Whether `value` (a `model.pretrained` value) names published weights rather than a file."""
    return isinstance(value, str) and value.startswith(PREFIX)


def lookup(name: str) -> PublishedWeights:
    """The registry entry of `name`; ValueError naming the known names when there is none."""
    if name not in REGISTRY:
        raise ValueError(
            f'name={name!r}: unknown published weights; known names: {", ".join(sorted(REGISTRY))}'
        )
    return REGISTRY[name]


def default_cache_dir() -> str:
    """`$MLRELABEL_CACHE/weights`, else `$XDG_CACHE_HOME/mlrelabel/weights`, else `~/.cache/mlrelabel/weights`."""
    if os.environ.get(CACHE_ENV):
        return os.path.join(os.path.expanduser(os.environ[CACHE_ENV]), 'weights')
    root = os.environ.get('XDG_CACHE_HOME') or os.path.join('~', '.cache')
    return os.path.join(os.path.expanduser(root), 'mlrelabel', 'weights')


def fetch_weights(name: str, cache_dir: str | os.PathLike | None = None) -> str:
    """The path of the published weights `name` in the cache folder, downloaded first when absent.

    The file's sha256 is checked against the published one on every call (a file put there by hand too).
    Raises ValueError for an unknown name, `WeightsDownloadError` when the download fails or the hash differs.
    """
    entry = lookup(name)
    directory = os.path.expanduser(os.fspath(cache_dir)) if cache_dir else default_cache_dir()
    path = os.path.join(directory, entry.filename)
    if os.path.exists(path):
        digest = _sha256_of_file(path)
        if not digest.startswith(entry.sha256):
            raise WeightsDownloadError(
                f'{path}: its sha256 is {digest}, but the published weights {name!r} ({entry.url}) have a sha256 '
                f'starting with {entry.sha256}; delete the file (it is downloaded again) or replace it by hand'
            )
        return path
    print(f'mlrelabel: downloading {name} from {entry.url} into {directory}', file=sys.stderr)
    atomic_write_file(path, lambda f: _download(name, entry, path, f))
    return path


def _sha256_of_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(_CHUNK), b''):
            digest.update(chunk)
    return digest.hexdigest()


def _failure(name: str, entry: PublishedWeights, path: str, reason: str) -> WeightsDownloadError:
    return WeightsDownloadError(
        f'could not fetch the weights {name!r} from {entry.url}: {reason}. Nothing was kept in '
        f'{os.path.dirname(path)}. To install them by hand, download that URL elsewhere, check that the '
        f"file's sha256 starts with {entry.sha256} (expected hash), and put it at {path} (or set "
        f'${CACHE_ENV}, or config.model.pretrained to a local copy)'
    )


def _download(name: str, entry: PublishedWeights, path: str, out) -> None:
    """Streams `entry.url` into the open file `out`, then checks its length and hash; a failure raises (and
    `atomic_write_file` removes the temporary file). Errors writing `out` (disk full) stay plain OSErrors."""
    digest, received = hashlib.sha256(), 0
    try:
        with urllib.request.urlopen(entry.url, timeout=TIMEOUT_S) as response:
            length = response.headers.get('Content-Length')
            while True:
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                digest.update(chunk)
                received += len(chunk)
                out.write(chunk)
    except urllib.error.HTTPError as e:
        raise _failure(name, entry, path, f'HTTP {e.code} {e.reason}') from e
    except urllib.error.URLError as e:
        raise _failure(name, entry, path, f'no connection ({e.reason})') from e
    except (http.client.HTTPException, ConnectionError, TimeoutError) as e:
        raise _failure(name, entry, path, f'the transfer broke off after {received} bytes ({e!r})') from e
    if length is not None and length.isdigit() and received != int(length):
        raise _failure(name, entry, path, f'the connection closed after {received} of {length} bytes')
    if not digest.hexdigest().startswith(entry.sha256):
        raise _failure(
            name,
            entry,
            path,
            f'the file received has sha256 {digest.hexdigest()}, expected {entry.sha256}...',
        )
