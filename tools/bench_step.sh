#!/usr/bin/env bash
# Reproduces the training-step table of docs/benchmarks.md: one full step of a segmentation model
# (forward, CE + 0.4·aux CE, optional λ=0.1 perceptual loss, backward, SGD), ours and PyTorch's
# twin (tools/bench_step.py) run back to back on the same settings, for the baseline and two VGG
# loss networks. Needs PyTorch. Usage: tools/bench_step.sh [model] [threads] [steps] [size] [batch] [classes]
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-pspnet_r18}; threads=${2:-2}; steps=${3:-3}; size=${4:-256}; batch=${5:-2}; classes=${6:-150}
# PERCEP_BIN: an already built binary (e.g. the test build's .build/release/percep-dist); else build one.
bin=${PERCEP_BIN:-}
if [ -z "$bin" ]; then swift build -c release --product percep-dist >/dev/null; bin=.build/release/percep-dist; fi
echo "$(date -u +%Y-%m-%d), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $threads threads, PyTorch $(python3 -c 'import torch; print(torch.__version__)'), $model ${size}×${size}, batch $batch, $classes classes, mean of $steps steps after one warm-up"
echo
echo "| perceptual loss | ours s/step | PyTorch s/step | ours ÷ PyTorch time | ours peak RSS MiB | PyTorch peak RSS MiB |"
echo "|---|---|---|---|---|---|"
run() {
  local label=$1; shift
  local args=(--model "$model" --size "$size" --batch "$batch" --classes "$classes" --steps "$steps" --threads "$threads" --json "$@")
  local ours torch
  ours=$("$bin" bench step "${args[@]}")
  torch=$(python3 tools/bench_step.py "${args[@]}")
  python3 - "$label" "$ours" "$torch" <<'PY'
import json, sys
label, ours, torch = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
print(f"| {label} | {ours['seconds_per_step']:.2f} | {torch['seconds_per_step']:.2f} | "
      f"{ours['seconds_per_step'] / torch['seconds_per_step']:.2f} | {ours['peak_rss_mb']:.0f} | {torch['peak_rss_mb']:.0f} |")
PY
}
run "none (baseline)"
run "(1,1,1,1,1)" --perceptual 1,1,1,1,1
run "VGG16 (2,2,3,3,3)" --perceptual 2,2,3,3,3
