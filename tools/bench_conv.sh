#!/usr/bin/env bash
# Reproduces the conv table of docs/benchmarks.md: runs `percep-dist bench conv` and the PyTorch
# twin alternately (`rounds` times each, default 2; same threads and repeats) and merges them with
# conv_table.py, which keeps each pass's best run per side. Needs PyTorch (pip install torch).
# Usage: tools/bench_conv.sh [threads] [repeats] [rounds] [per-shape]
# With `per-shape`, the two programs alternate shape by shape (`rounds` times each, one process per
# shape and side) instead of table by table, so a slow spell of a noisy VM lands on both sides of
# the shapes it covers rather than on one side of the whole table.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}; repeats=${2:-8}; rounds=${3:-2}; mode=${4:-table}
out=$(mktemp -d)
# PERCEP_BIN: an already built binary (e.g. the test build's .build/release/percep-dist); else build one.
bin=${PERCEP_BIN:-}
if [ -z "$bin" ]; then swift build -c release --product percep-dist >/dev/null; bin=.build/release/percep-dist; fi
if [ "$mode" = per-shape ]; then
  i=0
  for shape in $(python3 tools/pytorch/bench_conv.py --list); do
    for run in $(seq "$rounds"); do
      i=$((i + 1))
      "$bin" bench conv --json --threads "$threads" --repeats "$repeats" --filter "$shape" > "$out/ours$i.json"
      python3 tools/pytorch/bench_conv.py --json --threads "$threads" --repeats "$repeats" --filter "$shape" > "$out/torch$i.json"
    done
  done
else
  for run in $(seq "$rounds"); do
    "$bin" bench conv --json --threads "$threads" --repeats "$repeats" > "$out/ours$run.json"
    python3 tools/pytorch/bench_conv.py --json --threads "$threads" --repeats "$repeats" > "$out/torch$run.json"
  done
fi
echo "$(date -u +%Y-%m-%d), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, PyTorch $(python3 -c 'import torch; print(torch.__version__)')"
python3 tools/conv_table.py --ours "$out"/ours*.json --torch "$out"/torch*.json
