"""A run's work directory: claimed with its resolved config (`config.json`), refused when it holds another run.

A run resumes in the directory that holds its config.json; fields that do not change results
(`RESUMABLE_DIFFERENCES`) or that were added after a run was made, at the value that behaves as the code before
them did (`ADDED_FIELDS`), do not stop a resumption.
"""

from __future__ import annotations

import json
import logging
import os

from mlrelabel.io_utils import atomic_write_text, remove_stale_temp_files

# Fields that may change between a run and its resumption without changing its results.
RESUMABLE_DIFFERENCES = ('parallel', 'compile_cache')
# Fields added after runs were made, with the value that behaves as the code before them did: a run whose
# config.json lacks one resumes when the new config holds that value.
ADDED_FIELDS = {
    'train.augment.mixup': 0.0,
    'train.augment.zoom_out': 0.0,
    'train.augment.zoom_out_prob': 0.5,
    'relabel.round0_models': 1,
    'relabel.round0_models_min_top1': 0.0,
    'relabel.round0_checkpoint': '',
    'relabel.round1_margin': 0.0,
    'relabel_maps.teacher_recipe': '',
}


def _differences(old: dict, new: dict, prefix: str = '') -> list[str]:
    out = []
    for k in sorted(set(old) | set(new)):
        if not prefix and k in RESUMABLE_DIFFERENCES:
            continue
        a, b = old.get(k), new.get(k)
        if k not in old and ADDED_FIELDS.get(prefix + k, object()) == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f'{prefix}{k}.')
        elif a != b:
            out.append(f'{prefix}{k}: {a!r} → {b!r}')
    return out


def _run_leftovers(workdir: str) -> list[str]:
    """Checkpoint folders of a run in `workdir`: `checkpoints/`, `round_*/`, `<phase>/checkpoints/`."""
    if not os.path.isdir(workdir):
        return []
    found = []
    for name in sorted(os.listdir(workdir)):
        path = os.path.join(workdir, name)
        if os.path.isdir(path) and (
            name in ('checkpoints',)
            or name.startswith('round_')
            or os.path.isdir(os.path.join(path, 'checkpoints'))
        ):
            found.append(name + '/')
    return found


def prepare_workdir(config, workdir: str) -> None:
    """Creates `workdir` and records the resolved config; refuses a workdir that holds another config, or
    checkpoints without the config.json that made them. A resumed run's stale temporary files are removed."""
    from mlrelabel import parallel

    path = os.path.join(workdir, 'config.json')
    text = config.to_json_best_effort(sort_keys=True, indent=2)
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        diff = _differences(old, json.loads(text))
        if diff:
            raise SystemExit(
                f'{path} holds a run with another config ({"; ".join(diff[:5])}). Resume it with the '
                f'same config, or choose a new --workdir.'
            )
    else:
        leftovers = _run_leftovers(workdir)
        if leftovers:
            raise SystemExit(
                f'{workdir} holds checkpoints ({", ".join(leftovers[:3])}) but no config.json, so the config '
                'that made them is unknown: restore its config.json to resume, or choose a new --workdir.'
            )
    os.makedirs(workdir, exist_ok=True)
    if parallel.is_main_process():
        removed = remove_stale_temp_files(workdir)
        if removed:
            logging.info('removed %d stale temporary files (%s, ...)', len(removed), removed[0])
        if not os.path.exists(path):
            atomic_write_text(path, text)
