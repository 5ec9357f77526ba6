#!/usr/bin/env bash
# Multi-node GPU training under SLURM: one process per node, each driving all of its GPUs.
#   sbatch --nodes=4 launch/slurm_multinode_gpu.sh --config=configs/imagenet_resnet50.py --workdir=runs/r50
#   DRY_RUN=1 launch/slurm_multinode_gpu.sh ...    (or --dry-run): print what would run, run nothing
# jax.distributed.initialize() reads the coordinator, process count and rank from SLURM's environment
# (mlrelabel.parallel.initialize_distributed); data is sharded per process; only process 0 writes logs and
# label files; every process writes its part of the Orbax checkpoints (the workdir must be shared).
#SBATCH --job-name=mlrelabel
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=32
#SBATCH --time=72:00:00
#SBATCH --output=slurm-%j.out
set -euo pipefail
# Under sbatch $0 is a copy in SLURM's spool folder: the checkout is the folder sbatch was run from.
here=${SLURM_SUBMIT_DIR:+$SLURM_SUBMIT_DIR/launch}
source "${here:-$(dirname "$0")}/common.sh"
parse_args "sbatch [--nodes=N] $0 --config=configs/<recipe>.py [--workdir=DIR] [--config.field=value ...] [--dry-run]" "$@"
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"
cmd=(srun --ntasks-per-node=1 --kill-on-bad-exit=1 python -m mlrelabel.main "${args[@]}")
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}
if [[ "$DRY_RUN" == "1" ]]; then
  echo "nodes: ${SLURM_JOB_NUM_NODES:-\$SLURM_JOB_NUM_NODES} (one process per node)"
  echo "XLA_PYTHON_CLIENT_MEM_FRACTION=$XLA_PYTHON_CLIENT_MEM_FRACTION ${cmd[*]}"
  exit 0
fi
exec "${cmd[@]}"
