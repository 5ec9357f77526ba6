#!/usr/bin/env bash
# One machine, all (or GPUS=0,1,...) of its GPUs: a single process; batches split over a 1-D device mesh.
#   launch/single_node_gpu.sh --config=configs/imagenet_resnet50.py --workdir=runs/r50
#   GPUS=0,1 DRY_RUN=1 launch/single_node_gpu.sh ...    (or --dry-run): print the command, run nothing
set -euo pipefail
source "$(dirname "$0")/common.sh"
parse_args "[GPUS=0,1,...] $0 --config=configs/<recipe>.py [--workdir=DIR] [--config.field=value ...] [--dry-run]" "$@"
cd "$(dirname "$0")/.."
env_vars=(XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}")
if [[ -n "${GPUS:-}" ]]; then env_vars+=(CUDA_VISIBLE_DEVICES="$GPUS"); fi
run_or_print env "${env_vars[@]}" python -m mlrelabel.main "${args[@]}"
