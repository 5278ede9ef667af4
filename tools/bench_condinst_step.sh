#!/usr/bin/env bash
# The CondInst rows of docs/benchmarks.md: one training step of AdelaiDet's CondInst R-50-FPN,
# ours (`percep-dist bench step --model condinst_r50`) and PyTorch's twin
# (tools/bench_condinst_step.py) alternately, twice each, without and with the VGG16 perceptual
# mask term. Needs PyTorch. Usage: tools/bench_condinst_step.sh [threads] [steps] [size H,W] [batch]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}; steps=${2:-2}; size=${3:-512,640}; batch=${4:-2}
# PERCEP_BIN: an already built binary (as in launch/mpirun-local.sh), skipping the build.
bin=${PERCEP_BIN:-.build/release/percep-dist}
[ -n "${PERCEP_BIN:-}" ] || swift build -c release --product percep-dist >/dev/null
echo "$(date -u +%Y-%m-%d), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $threads threads, PyTorch $(python3 -c 'import torch; print(torch.__version__)'), condinst_r50 ${size}, batch $batch, mean of $steps steps after one warm-up"
echo
echo "| perceptual mask term | run | ours s/step | PyTorch s/step | ours ÷ PyTorch time | ours peak RSS MiB | PyTorch peak RSS MiB |"
echo "|---|---|---|---|---|---|---|"
for label in none vgg16; do
  extra=(); [ "$label" = vgg16 ] && extra=(--perceptual 2,2,3,3,3)
  for run in 1 2; do
    args=(--model condinst_r50 --size "$size" --batch "$batch" --steps "$steps" --threads "$threads" --json "${extra[@]}")
    ours=$("$bin" bench step "${args[@]}")
    torch=$(python3 tools/bench_condinst_step.py "${args[@]}")
    python3 - "$label" "$run" "$ours" "$torch" <<'PY'
import json, sys
label, run, ours, torch = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
print(f"| {label} | {run} | {ours['seconds_per_step']:.2f} | {torch['seconds_per_step']:.2f} | "
      f"{ours['seconds_per_step'] / torch['seconds_per_step']:.2f} | {ours['peak_rss_mb']:.0f} | {torch['peak_rss_mb']:.0f} |")
PY
  done
done
