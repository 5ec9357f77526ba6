#!/usr/bin/env bash
# The label-quality benchmark (benchmarks/relabel_quality.py) on one GPU machine, several recipes side by side:
# each variant below runs 3 seeds of the built-in digit scenes (and 'json' ones digit scenes of another
# composition read from label files), every run at once (tiny models leave the GPU mostly idle; compiled
# programs are shared through the compilation cache). Quality figures only: wall times are the GPU's, not the
# 2-core CPU's of the targets. Writes $OUT/quality_<variant>.json, the logs, and runs.tgz (every run's JSON
# files: labels per round, metrics, summaries) for scoring afterwards, also of runs cut off by the time limit.
#
#   bash benchmarks/relabel_quality_gpu.sh            # on the GPU machine, with .whl/ carried
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false XLA_PYTHON_CLIENT_MEM_FRACTION=0.05
if ! "$PY" -c 'import grain, ml_collections' 2>/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
OUT=${OUT:-/tmp/quality_out}
mkdir -p "$OUT" /tmp/quality
LIMIT=${QUALITY_TIMEOUT:-400}
FAST="--config.train.eval_every_epochs=1000 --config.relabel.epochs=6 --config.train.min_steps=600"
run() {  # name data flags...
  local name=$1 data=$2
  shift 2
  timeout -k 5 "$LIMIT" "$PY" benchmarks/relabel_quality.py --data="$data" --seeds=0,1,2 --parallel=3 \
    --workdir="/tmp/quality/$name" --out="$OUT/quality_$name.json" -- "$@" >"$OUT/quality_$name.log" 2>&1 &
}
run default digits
run fast digits $FAST
run fast6 digits $FAST --config.relabel.max_rounds=6
run json_fast json_digits $FAST
wait
nvidia-smi --query-gpu=name,memory.used --format=csv >"$OUT/gpu.txt" 2>&1
(cd /tmp/quality && find . \( -name '*.json' -o -name '*.log' \) -not -path '*checkpoints*' -not -path '*/images/*' \
  | tar -czf "$OUT/runs.tgz" -T -)
tail -n 2 "$OUT"/quality_*.log
ls -la "$OUT"
