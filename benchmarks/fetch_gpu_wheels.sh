#!/usr/bin/env bash
# Downloads the wheels of benchmarks/gpu_wheels.txt into .whl/ for the GPU machine (CPython 3.12, x86-64,
# manylinux), which has no network: benchmarks/gpu_check.sh installs them there. Needs PyPI here.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
  manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
grep -v '^#' benchmarks/gpu_wheels.txt | while read -r req; do
  [ -n "$req" ] || continue
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d .whl "$req"
done
ls -l .whl
du -sh .whl
