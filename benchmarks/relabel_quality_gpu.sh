#!/usr/bin/env bash
# The label-quality benchmark (benchmarks/relabel_quality.py) on one GPU machine, several recipes side by side:
# each variant below runs 3 seeds of the built-in digit scenes (and 'json' ones digit scenes of another
# composition read from label files), every run at once (tiny models leave the GPU mostly idle; compiled
# programs are shared through the compilation cache). Quality figures only: wall times are the GPU's, not the
# 2-core CPU's of the targets. Writes $OUT/runs.tgz (each variant's quality_<variant>.json and log, and every
# run's JSON files: labels per round, metrics, summaries, for scoring afterwards, also of runs cut off by the
# time limit) and $OUT/summary.txt (the last lines of each variant's log).
#
#   bash benchmarks/relabel_quality_gpu.sh                 # on the GPU machine, with .whl/ carried
#   bash benchmarks/relabel_quality_gpu.sh VARIANTS_FILE   # other variants: one per line, 'name data flags...'
#                                                          # (data: digits | json_digits | photos; '#' comments;
#                                                          # flags before a lone '--' go to relabel_quality.py)
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
run() {  # name data [benchmark flags --] run flags...
  local name=$1 data=$2
  shift 2
  case " $* " in *' -- '*) ;; *) set -- -- "$@" ;; esac
  timeout -k 5 "$LIMIT" "$PY" benchmarks/relabel_quality.py --data="$data" --seeds=0,1,2 --parallel=3 \
    --workdir="/tmp/quality/$name" --out="/tmp/quality/quality_$name.json" "$@" >"/tmp/quality/quality_$name.log" 2>&1 &
}
if [ $# -ge 1 ]; then
  while read -r name data flags; do
    case "$name" in '' | '#'*) continue ;; esac
    # shellcheck disable=SC2086  # flags split into words on purpose
    run "$name" "$data" $flags
  done <"$1"
else
  run default digits
  run fast digits $FAST
  run fast6 digits $FAST --config.relabel.max_rounds=6
  run json_fast json_digits $FAST
fi
wait
nvidia-smi --query-gpu=name,memory.used --format=csv >/tmp/quality/gpu.txt 2>&1
(cd /tmp/quality && find . \( -name '*.json' -o -name '*.log' -o -name '*.txt' \) -not -path '*checkpoints*' -not -path '*/images/*' \
  | tar -czf "$OUT/runs.tgz" -T -)
tail -n 2 /tmp/quality/quality_*.log | tee "$OUT/summary.txt"
ls -la "$OUT"
