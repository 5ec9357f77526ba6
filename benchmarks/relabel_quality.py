"""Label quality of the default relabel recipe from single labels alone, over several seeds.

  python benchmarks/relabel_quality.py --seeds=0,1,2 [--out=quality.json] [-- extra --config.x=y flags]
  python benchmarks/relabel_quality.py --data=json_digits ...   # the same, through label files on disk
  python benchmarks/relabel_quality.py --data=photos ...        # photo scenes (JPEG, 96-224 px)
  python benchmarks/relabel_quality.py --data=photos --photo_train=3000 --photo_val=600 --photo_scale=0.3,0.55

Each seed runs `python -m mlrelabel.main --config=configs/mc_dropout.py --config.seed=S` in its own work
directory (the built-in digit scenes give only the visible label in val too), then scores the final
`<workdir>/labels.json` against the hidden sets (benchmarks/score_labels.py; the run never sees them).
`json_digits` exports digit scenes of a different composition (2-5 digits, 10-22 px) to PNG files and label
files with one label per image, and runs with `--config.data.source=json`; `photos` does the same with
`mlrelabel.data.photo_scenes`. Prints per seed and mean ± sd: final label F1 vs the given labels' F1,
labels per image vs the truth's, the chosen round vs the best round by F1, wall time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'benchmarks'))

from score_labels import score_run  # noqa: E402

_SEEDS = flags.DEFINE_list('seeds', ['0', '1', '2'], 'Training seeds.')
_DATA = flags.DEFINE_enum('data', 'digits', ['digits', 'json_digits', 'photos'], 'Which data.')
_WORKDIR = flags.DEFINE_string('workdir', 'runs/quality', 'Parent folder of the runs.')
_OUT = flags.DEFINE_string('out', '', 'Write the figures as JSON here (after every finished run).')
_PHOTO_TRAIN = flags.DEFINE_integer('photo_train', 1200, 'photos: training images.')
_PHOTO_VAL = flags.DEFINE_integer('photo_val', 300, 'photos: validation images.')
_PHOTO_OBJECTS = flags.DEFINE_list('photo_objects', ['1', '3'], 'photos: fewest, most objects per image.')
_PHOTO_SCALE = flags.DEFINE_list(
    'photo_scale', ['0.25', '0.5'], 'photos: smallest, largest object side (fraction of the image side).'
)
_PARALLEL = flags.DEFINE_integer(
    'parallel', 1, 'Runs at once (a GPU or many cores); logs go to <workdir>/*.log.'
)


def export_digit_scenes_json(out_dir: str, seed: int) -> dict:
    """Digit scenes of another composition as PNG files + label files (one label per image) + truth files."""
    from PIL import Image

    from mlrelabel.data import sources
    from mlrelabel.io_utils import atomic_write_json

    os.makedirs(os.path.join(out_dir, 'images'), exist_ok=True)
    paths = {}
    for i, (split, n) in enumerate((('train', 3000), ('val', 600))):
        ds = sources.digit_scenes_dataset(
            split, None, num_images=n, seed=100 + seed + i, image_size=40, min_digits=2, max_digits=5,
            min_scale=10, max_scale=22, visible='largest', layout='scenes',
        )  # fmt: skip
        given, truth = [], []
        for j in range(n):
            name = f'images/{split}_{j:05d}.png'
            Image.fromarray(np.asarray(ds.images[j])).save(os.path.join(out_dir, name))
            given.append({'img_path': name, 'labels': ds.labels.labels_of(j)[:1].tolist()})
            truth.append({'img_path': name, 'labels': sorted(ds.truth.labels_of(j).tolist())})
        for kind, entries in (('', given), ('_truth', truth)):
            atomic_write_json(os.path.join(out_dir, f'{split}{kind}.json'), {'data': entries}, indent=None)
        paths[split] = os.path.join(out_dir, f'{split}.json')
    paths['truth'] = os.path.join(out_dir, 'train_truth.json')
    return paths


def _data_flags(kind: str, seed: int, parent: str) -> tuple[list[str], str]:
    if kind == 'digits':
        return [], ''
    folder = os.path.join(parent, f'data_{kind}_{seed}')
    if kind == 'json_digits':
        files = export_digit_scenes_json(folder, seed)
    else:
        from mlrelabel.data.photo_scenes import PhotoSceneOptions, make_photo_scenes

        options = PhotoSceneOptions(
            objects=tuple(int(v) for v in _PHOTO_OBJECTS.value),
            object_scale=tuple(float(v) for v in _PHOTO_SCALE.value),
        )
        made = make_photo_scenes(
            folder, num_train=_PHOTO_TRAIN.value, num_val=_PHOTO_VAL.value, options=options, seed=seed
        )
        files = {
            'train': made['train']['labels'],
            'val': made['val']['labels'],
            'truth': made['train']['truth'],
        }
    return [
        '--config.data.source=json',
        f'--config.data.train_json={files["train"]}',
        f'--config.data.val_json={files["val"]}',
        '--config.data.num_classes=10',
    ], files['truth']


def _summary(rows: list[dict]) -> dict:
    summary = {}
    for key in (
        'final_f1',
        'given_f1',
        'final_labels_per_image',
        'truth_labels_per_image',
        'wall_s',
        'chosen_minus_best',
    ):
        values = [r[key] for r in rows if key in r]
        if values:
            summary[key] = {
                'mean': round(float(np.mean(values)), 4),
                'sd': round(float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, 4),
            }
    return summary


def main(argv):
    extra = argv[1:]
    jobs = []
    for seed in map(int, _SEEDS.value):
        workdir = os.path.join(_WORKDIR.value, f'{_DATA.value}_seed{seed}')
        data_flags, truth = _data_flags(_DATA.value, seed, _WORKDIR.value)
        command = [
            sys.executable,
            '-m',
            'mlrelabel.main',
            '--config=configs/mc_dropout.py',
            f'--workdir={workdir}',
        ]
        command += [f'--config.seed={seed}'] + data_flags + list(extra)
        jobs.append((seed, workdir, truth, command))
    rows, running = [], []

    def finish(job):
        seed, workdir, truth, process, log, t0 = job
        code = process.wait()
        log.close()
        if code != 0:
            print(f'seed {seed}: exit {code}, see {log.name}', flush=True)
            return
        row = score_run(workdir, truth)
        row['seed'], row['wall_s'] = seed, round(time.time() - t0, 1)
        row['chosen_minus_best'] = round(row['final_f1'] - max(row['round_labels_f1']), 4)
        rows.append(row)
        print(json.dumps(row), flush=True)
        if _OUT.value:  # after every run: a run cut short still leaves the finished ones
            atomic_write_json(_OUT.value, {'data': _DATA.value, 'runs': rows, 'summary': _summary(rows)})

    from mlrelabel.io_utils import atomic_write_json

    for seed, workdir, truth, command in jobs:
        while len(running) >= _PARALLEL.value:
            finish(running.pop(0))
        os.makedirs(_WORKDIR.value, exist_ok=True)
        log = open(os.path.join(_WORKDIR.value, f'{_DATA.value}_seed{seed}.log'), 'w')
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        running.append((seed, workdir, truth, process, log, time.time()))
    for job in running:
        finish(job)
    print('summary', json.dumps(_summary(rows)))


if __name__ == '__main__':
    app.run(main)
