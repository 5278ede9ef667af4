#!/usr/bin/env bash
# Would -Ounchecked on the numeric kernels pay? The table in docs/reliability.md: the release build
# (every target -O, bounds checks on) against one built with PERCEP_UNCHECKED_KERNELS=1 (the numeric
# kernels -Ounchecked), alternately, on a conv-bound step (the VGG16 loss network), a segmentation
# training step and a CondInst training step (whose losses, mask head and resampling are Swift
# loops). Usage: tools/bench_checked.sh [threads] [repeats]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}; repeats=${2:-2}
# PERCEP_BIN / PERCEP_UNCHECKED_BIN: already built binaries of each kind, skipping the builds.
checked_bin=${PERCEP_BIN:-.build/release/percep-dist}; fast_bin=${PERCEP_UNCHECKED_BIN:-.build-unchecked/release/percep-dist}
[ -n "${PERCEP_BIN:-}" ] || env -u PERCEP_UNCHECKED_KERNELS swift build -c release --product percep-dist >/dev/null
[ -n "${PERCEP_UNCHECKED_BIN:-}" ] || PERCEP_UNCHECKED_KERNELS=1 swift build -c release --scratch-path .build-unchecked --product percep-dist >/dev/null
echo "$(date -u +%Y-%m-%d), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $threads threads"
echo
echo "| benchmark | run | kernels -Ounchecked s/step | kernels -O s/step | -O ÷ -Ounchecked |"
echo "|---|---|---|---|---|"
row() {
  local name=$1; shift
  for run in $(seq 1 "$repeats"); do
    local fast checked
    fast=$("$fast_bin" bench "$@" --threads "$threads" --json)
    checked=$("$checked_bin" bench "$@" --threads "$threads" --json)
    python3 - "$name" "$run" "$fast" "$checked" <<'PY'
import json, sys
name, run, fast, checked = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
key = "seconds_per_iter" if "seconds_per_iter" in fast else "seconds_per_step"
print(f"| {name} | {run} | {fast[key]:.3f} | {checked[key]:.3f} | {checked[key] / fast[key]:.3f} |")
PY
  done
}
row "lossnet VGG16, 19×128², batch 2" lossnet --structure 2,2,3,3,3 --in-channels 19 --size 128 --batch 2 --iters 20
row "step pspnet_r18, 256², batch 2" step --model pspnet_r18 --size 256 --batch 2 --steps 3
row "step condinst_r50, 384×512, batch 2" step --model condinst_r50 --size 384,512 --batch 2 --steps 2
