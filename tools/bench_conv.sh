#!/usr/bin/env bash
# Reproduces the conv table of docs/benchmarks.md: runs `percep-dist bench conv` and the PyTorch
# twin alternately (`rounds` times each, default 2; same threads and repeats) and merges them with
# conv_table.py, which keeps each pass's best run per side. Needs PyTorch (pip install torch).
# Usage: tools/bench_conv.sh [threads] [repeats] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}; repeats=${2:-8}; rounds=${3:-2}
out=$(mktemp -d)
# PERCEP_BIN: an already built binary (e.g. the test build's .build/release/percep-dist); else build one.
bin=${PERCEP_BIN:-}
if [ -z "$bin" ]; then swift build -c release --product percep-dist >/dev/null; bin=.build/release/percep-dist; fi
for run in $(seq "$rounds"); do
  "$bin" bench conv --json --threads "$threads" --repeats "$repeats" > "$out/ours$run.json"
  python3 tools/pytorch/bench_conv.py --json --threads "$threads" --repeats "$repeats" > "$out/torch$run.json"
done
echo "$(date -u +%Y-%m-%d), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, PyTorch $(python3 -c 'import torch; print(torch.__version__)')"
python3 tools/conv_table.py --ours "$out"/ours*.json --torch "$out"/torch*.json
