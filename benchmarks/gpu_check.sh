#!/usr/bin/env bash
# Every GPU figure of issue 18 in one run (about 5-6 minutes on one H100; at most 460 s, killed then):
# training img/s of mlrelabel's JAX step and of torchvision's ResNet-50 (AMP bf16, channels_last,
# torch.compile), the relabel pass naive vs MC dropout (T=16), and the grain input pipeline on every core.
# Writes benchmarks/results/<date>-<device>.json and, when $OUT is set, $OUT/gpu_check.json plus the logs.
#
#   bash benchmarks/gpu_check.sh                          # on the GPU machine (needs no network)
#   GPU_CHECK_PRESET=tiny bash benchmarks/gpu_check.sh    # the same parts at toy size on a CPU (minutes)
#
# Packages the GPU image lacks (grain and what it needs, ml-collections) travel as wheels in .whl/
# (benchmarks/fetch_gpu_wheels.sh); they are installed into /tmp/site unless they import already.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
if ! "$PY" -c 'import grain, ml_collections' 2>/dev/null; then
  if ls .whl/*.whl >/dev/null 2>&1 \
    && "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl; then
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  else
    echo "gpu_check: grain is missing and .whl/ could not be installed; the input part will fail" >&2
  fi
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
LOG=/dev/null
if [ -n "${OUT:-}" ]; then LOG=$OUT/gpu_check.log; fi
timeout -k 10 "${GPU_CHECK_TIMEOUT:-460}" "$PY" benchmarks/gpu_check.py --preset="${GPU_CHECK_PRESET:-gpu}" "$@" 2>&1 | tee "$LOG"
exit "${PIPESTATUS[0]}"
