"""The run manifest `<workdir>/run.json`: its schema, and writing it (every method does, at its end).

run.json (format 1), written atomically:
  method, num_classes, class_names (str(i) when unknown), head ('softmax' | 'sigmoid' | 'group_softmax'),
  groups (optional [[start, stop], ...] of a group-softmax head), image_size, mean, std, model (the
  model config), checkpoint (the chosen model's Orbax directory, relative to the workdir), chosen_round
  (int or null), rounds ([{round, checkpoint, head}], [] for single-model methods), labels (the final
  label file, relative, or null) and thresholds ('thresholds.json' or null: {"classes", "thresholds"
  [C] in the head's probability space, "space": "probability"}; relabel rounds add "evidence": "crops" and
  "log_odds" [C], thresholds on the crop evidence, see `mlrelabel.relabel.label_sets`) and network (MILe: which of
  the checkpoint's 'teacher' and 'student' the run returned; null elsewhere).
`mlrelabel.run.load_run` reads it (predict, the Python API; `read_manifest` below); nothing reads a method's
internals.
"""

from __future__ import annotations

import json
import os

import ml_collections
import numpy as np

from mlrelabel.io_utils import atomic_write_json

MANIFEST = 'run.json'
FORMAT = 1
HEADS = ('softmax', 'sigmoid', 'group_softmax')
# run.json's fields in order; `REQUIRED` must be given, the rest default to null / [].
FIELDS = (
    'method', 'num_classes', 'class_names', 'head', 'groups', 'image_size', 'mean', 'std', 'model',
    'checkpoint', 'chosen_round', 'rounds', 'labels', 'thresholds', 'network',
)  # fmt: skip
REQUIRED = tuple(
    k for k in FIELDS if k not in ('groups', 'chosen_round', 'rounds', 'labels', 'thresholds', 'network')
)


def has_steps(directory: str) -> bool:
    """True when `directory` holds at least one Orbax step (a folder named by its step number)."""
    return os.path.isdir(directory) and any(n.isdigit() for n in os.listdir(directory))


def model_folder(source: str) -> str | None:
    """The Orbax folder a model source names: a finished run's work directory (its chosen model, from run.json),
    one of its round folders (`W/round_<k>/checkpoints`) or an Orbax folder itself; None for anything else
    (a run without a finished run.json included)."""
    if os.path.isfile(os.path.join(source, 'config.json')):
        manifest = read_manifest(source)
        return (
            os.path.join(source, manifest['checkpoint']) if manifest and manifest.get('checkpoint') else None
        )
    if has_steps(os.path.join(source, 'checkpoints')):
        return os.path.join(source, 'checkpoints')
    return source if has_steps(source) else None


def write_manifest(workdir: str, manifest: dict) -> None:
    """Checks `manifest` against the schema above and writes `<workdir>/run.json` atomically (process 0)."""
    from mlrelabel import parallel  # jax: imported only when a run is written

    unknown = sorted(set(manifest) - set(FIELDS) - {'format'})
    if unknown:
        raise ValueError(f'{workdir}/{MANIFEST}: unknown fields {unknown}; expected {FIELDS}')
    m = {'format': FORMAT, **{k: manifest.get(k, [] if k == 'rounds' else None) for k in FIELDS}}
    missing = [k for k in REQUIRED if m[k] is None]
    if missing:
        raise ValueError(f'{workdir}/{MANIFEST}: missing fields {missing}')
    if m['head'] not in HEADS:
        raise ValueError(f'{workdir}/{MANIFEST}: head={m["head"]!r}: expected one of {HEADS}')
    if len(m['class_names']) != m['num_classes']:
        raise ValueError(f'{workdir}/{MANIFEST}: {len(m["class_names"])} class names for {m["num_classes"]}')
    if parallel.is_main_process():
        atomic_write_json(os.path.join(workdir, MANIFEST), m)


def manifest_fields(config, *, num_classes: int, head: str, class_names=None, groups=None, **fields) -> dict:
    """The manifest of a run of `config` whose chosen model is `fields['checkpoint']` (default
    'checkpoints'); `groups` as `[(name, size)]` (partial labels) or `[[start, stop]]`."""
    if groups and not isinstance(groups[0][0], (int, np.integer)):
        bounds = np.cumsum([0] + [int(k) for _, k in groups])
        groups = [[int(a), int(b)] for a, b in zip(bounds[:-1], bounds[1:])]
    m = {
        'method': config.method,
        'num_classes': int(num_classes),
        'class_names': [str(n) for n in class_names] if class_names else [str(i) for i in range(num_classes)],
        'head': head,
        'groups': [list(map(int, g)) for g in groups] if groups else None,
        'image_size': int(config.data.image_size),
        'mean': [float(x) for x in config.data.mean],
        'std': [float(x) for x in config.data.std],
        'model': config.model.to_dict(),
        'checkpoint': 'checkpoints',
        'chosen_round': None,
        'rounds': [],
        'labels': None,
        'thresholds': None,
        'network': None,
    }
    m.update(fields)
    return {'format': FORMAT, **{k: m[k] for k in FIELDS}, **{k: v for k, v in m.items() if k not in FIELDS}}


def read_manifest(workdir: str) -> dict | None:
    """`<workdir>/run.json` as a dict (None when the run has none); a format this version cannot read raises."""
    path = os.path.join(workdir, MANIFEST)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        manifest = json.load(f)
    if manifest.get('format') != FORMAT:
        raise ValueError(f'{path}: format {manifest.get("format")!r}, this mlrelabel reads format {FORMAT}')
    return manifest


def read_config(workdir: str) -> ml_collections.ConfigDict:
    """The config of the run in `workdir`, brought up to this version (`schema.migrate`)."""
    from mlrelabel.config.schema import migrate

    path = os.path.join(workdir, 'config.json')
    if not os.path.exists(path):
        raise FileNotFoundError(f'{workdir}: no config.json (is it a run directory?)')
    with open(path) as f:
        return migrate(json.load(f))
