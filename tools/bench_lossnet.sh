#!/usr/bin/env bash
# Reproduces the loss-network table of docs/benchmarks.md: every structure of the paper's Table 2
# and every kernel size of Table 3, ours and PyTorch's twin run alternately on the same settings.
# Needs PyTorch (pip install torch). Usage: tools/bench_lossnet.sh [threads] [iters] [rounds] [rows]
# rows: space-separated STRUCTURE/KERNEL of the rows to run (e.g. "2,2,3,3,3/3 1,1,1,1,1/3"); all by default.
# Each row runs `rounds` alternating pairs (ours, then PyTorch's) and reports the medians: the
# step time and the ratio of each pair, so a burst of noise on a shared machine moves one pair,
# not the row.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}; iters=${2:-5}; rounds=${3:-3}; rows=${4:-}
# PERCEP_BIN: an already built binary (e.g. the test build's .build/release/percep-dist); else build one.
bin=${PERCEP_BIN:-}
if [ -z "$bin" ]; then swift build -c release --product percep-dist >/dev/null; bin=.build/release/percep-dist; fi
echo "$(date -u +%Y-%m-%d), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $threads threads, PyTorch $(python3 -c 'import torch; print(torch.__version__)'), 19 input channels, 128×128, batch 2, mean of $iters steps after a warm-up, median of $rounds alternating pairs"
echo
echo "| network | structure | kernel | ours s/step | PyTorch s/step | ours ÷ PyTorch time (median of pairs) | ours peak RSS MiB | PyTorch peak RSS MiB |"
echo "|---|---|---|---|---|---|---|---|"
run() {
  local name=$1 structure=$2 kernel=$3
  if [ -n "$rows" ] && [[ " $rows " != *" $structure/$kernel "* ]]; then return; fi
  local args=(--structure "$structure" --kernel-size "$kernel" --in-channels 19 --size 128 --batch 2 --iters "$iters" --threads "$threads" --json)
  local ours=() torch=()
  for _ in $(seq "$rounds"); do
    ours+=("$("$bin" bench lossnet "${args[@]}")")
    torch+=("$(python3 tools/pytorch/bench_lossnet.py "${args[@]}")")
  done
  # One JSON object per line for each side.
  python3 - "$name" "$structure" "$kernel" "$(printf '%s\n' "${ours[@]}")" "$(printf '%s\n' "${torch[@]}")" <<'PY'
import json, statistics, sys
name, structure, kernel = sys.argv[1], sys.argv[2], sys.argv[3]
ours = [json.loads(line) for line in sys.argv[4].splitlines()]
torch = [json.loads(line) for line in sys.argv[5].splitlines()]
med = lambda rows, key: statistics.median(r[key] for r in rows)
ratio = statistics.median(o["seconds_per_iter"] / t["seconds_per_iter"] for o, t in zip(ours, torch))
print(f"| {name} | {structure} | {kernel} | {med(ours, 'seconds_per_iter'):.3f} | {med(torch, 'seconds_per_iter'):.3f} | "
      f"{ratio:.2f} | {med(ours, 'peak_rss_mb'):.0f} | {med(torch, 'peak_rss_mb'):.0f} |")
PY
}
run VGG11 1,1,2,2,2 3
run VGG13 2,2,2,2,2 3
run VGG16 2,2,3,3,3 3
run VGG19 2,2,4,4,4 3
run "(1,1,1,1,1)" 1,1,1,1,1 3
run "(3,3,4,4,4)" 3,3,4,4,4 3
run "(1,1,1,1,1)" 1,1,1,1,1 1
run "(1,1,1,1,1)" 1,1,1,1,1 5
run "(1,1,1,1,1)" 1,1,1,1,1 7
