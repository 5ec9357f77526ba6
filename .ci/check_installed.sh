#!/usr/bin/env bash
# CI: the package as a user gets it. A non-editable install into a fresh virtual environment (the pinned
# versions of constraints.txt), then, from an unrelated folder: both console scripts' --help, the main
# recipe's smoke variant by name, its TensorBoard scalars read with TensorBoard's own reader, the Python
# API's load_run(W).predict(images), and mlrelabel-predict on a folder. A few minutes on 2 cores.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
python3 -m venv "$TMP/venv"
export VIRTUAL_ENV="$TMP/venv" PATH="$TMP/venv/bin:$PATH"
start=$(date +%s)
# Build from a copy of what the build reads, so the checkout gets no build/ folder (whose stale files
# setuptools would pack into later wheels). tensorboard only reads the events back (dev extra).
mkdir "$TMP/src"
cp -r "$REPO/pyproject.toml" "$REPO/README.md" "$REPO/mlrelabel" "$REPO/configs" "$TMP/src/"
python -m pip install -q --no-compile -c "$REPO/constraints.txt" "$TMP/src" tensorboard
echo "check_installed: install took $(( $(date +%s) - start )) s, $(du -sm "$TMP/venv" | cut -f1) MB"
python -m pip check

mkdir "$TMP/elsewhere"
cd "$TMP/elsewhere"
mlrelabel --help > help.txt
grep -q -- '--config: A recipe name' help.txt
mlrelabel-predict --help > help.txt
grep -q -- '--images: Folder of images' help.txt
if mlrelabel --config=no_such_recipe 2> err.txt; then echo 'an unknown recipe was accepted' >&2; exit 1; fi
grep -q 'no recipe named' err.txt
mlrelabel --config=mc_dropout:smoke --workdir=W

python - <<'PY'
import os
import numpy as np
import mlrelabel
from tensorboard.backend.event_processing import event_accumulator

assert mlrelabel.__file__.startswith(os.environ['VIRTUAL_ENV']), mlrelabel.__file__  # not the checkout
acc = event_accumulator.EventAccumulator('W/tensorboard')
acc.Reload()
tags = acc.Tags()['scalars']
for tag in ('train/loss', 'train/learning_rate', 'epoch/val_f1'):
    assert tag in tags, (tag, tags)
steps = [e.step for e in acc.Scalars('train/loss')]
assert steps == list(range(1, len(steps) + 1)), steps  # rounds follow each other, every step once
run = mlrelabel.load_run('W')
images = np.random.default_rng(0).integers(0, 256, (5, 57, 43, 3), np.uint8)
probs = run.predict(images)
assert probs.shape == (5, run.num_classes) and probs.dtype == np.float32, probs.shape
assert np.all((probs >= 0) & (probs <= 1)), probs
print(f'check_installed: {run}; {len(steps)} steps in TensorBoard; predict -> {probs.shape}')
for i, image in enumerate(images[:3]):
    from PIL import Image
    os.makedirs('images', exist_ok=True)
    Image.fromarray(image).save(f'images/{i}.png')
PY
mlrelabel-predict --workdir=W --images=images --out=preds.csv --out=preds.json
test "$(wc -l < preds.csv)" -eq 4
echo 'check_installed: OK'
