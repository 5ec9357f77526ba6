#!/usr/bin/env bash
# One machine, all (or GPUS=0,1,...) of its GPUs: a single process; batches split over a 1-D device mesh.
#   launch/single_node_gpu.sh --config=configs/imagenet_resnet50.py --workdir=runs/r50
#   GPUS=0,1 DRY_RUN=1 launch/single_node_gpu.sh ...    (or --dry-run): print the command, run nothing
set -euo pipefail
DRY_RUN=${DRY_RUN:-0}
args=()
for a in "$@"; do
  if [[ "$a" == "--dry-run" ]]; then DRY_RUN=1; else args+=("$a"); fi
done
if [[ ${#args[@]} -eq 0 ]]; then
  echo "usage: [GPUS=0,1,...] $0 --config=configs/<recipe>.py [--workdir=DIR] [--config.field=value ...] [--dry-run]" >&2
  exit 2
fi
cd "$(dirname "$0")/.."
env_vars=(XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}")
if [[ -n "${GPUS:-}" ]]; then env_vars+=(CUDA_VISIBLE_DEVICES="$GPUS"); fi
cmd=(env "${env_vars[@]}" python -m mlrelabel.main "${args[@]}")
if [[ "$DRY_RUN" == "1" ]]; then
  printf '%q ' "${cmd[@]}"; echo
  exit 0
fi
exec "${cmd[@]}"
