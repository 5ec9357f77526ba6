#!/usr/bin/env bash
# The label-quality benchmark (benchmarks/relabel_quality.py) on one GPU machine: the default relabel recipe
# on the built-in digit scenes and on digit scenes of another composition read from label files, 3 seeds each,
# all six runs at once (tiny models leave the GPU mostly idle). Quality figures only: the wall times are a
# GPU's, not the 2-core CPU's of the targets. Writes $OUT/quality_digits.json, $OUT/quality_json.json and logs.
#
#   bash benchmarks/relabel_quality_gpu.sh            # on the GPU machine, with .whl/ carried
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false XLA_PYTHON_CLIENT_MEM_FRACTION=0.1
if ! "$PY" -c 'import grain, ml_collections' 2>/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
OUT=${OUT:-/tmp/quality_out}
mkdir -p "$OUT"
LIMIT=${QUALITY_TIMEOUT:-500}
for data in digits json_digits; do
  timeout -k 10 "$LIMIT" "$PY" benchmarks/relabel_quality.py --data=$data --seeds=0,1,2 --parallel=3 \
    --workdir=/tmp/quality --out="$OUT/quality_${data}.json" "$@" >"$OUT/quality_${data}.log" 2>&1 &
done
wait
nvidia-smi --query-gpu=name,memory.used --format=csv >"$OUT/gpu.txt" 2>&1
tail -n 3 "$OUT"/quality_*.log
tar -czf "$OUT/runs.tgz" -C /tmp/quality --exclude='checkpoints' --exclude='*.npz' --exclude='data*' . 2>/dev/null
ls -la "$OUT"
