#!/usr/bin/env bash
# Cloud TPU VM (single host or pod slice): runs the same command on every worker over gcloud ssh.
#   TPU_NAME=my-v4-32 ZONE=us-central2-b launch/tpu_vm.sh --config=configs/imagenet_resnet50.py --workdir=gs://b/r50
#   DRY_RUN=1 ... (or --dry-run): print the gcloud command, run nothing
# Each worker's jax.distributed.initialize() finds the pod from the TPU VM environment
# (mlrelabel.parallel.initialize_distributed); REPO is the checkout path on the workers (same on all).
set -euo pipefail
source "$(dirname "$0")/common.sh"
parse_args "TPU_NAME=... ZONE=... $0 --config=configs/<recipe>.py [--workdir=DIR] [--config.field=value ...] [--dry-run]" "$@"
: "${TPU_NAME:?set TPU_NAME to the TPU VM name}"
: "${ZONE:?set ZONE to the TPU VM zone}"
REPO=${REPO:-\~/mlrelabel}
remote="cd $REPO && python3 -m mlrelabel.main $(printf '%q ' "${args[@]}")"
run_or_print gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" ${PROJECT:+--project="$PROJECT"} --worker=all --command="$remote"
