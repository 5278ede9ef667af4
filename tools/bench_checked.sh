#!/usr/bin/env bash
# Does -Ounchecked on the numeric kernels pay? The table in docs/reliability.md: the release build
# (kernels -Ounchecked, every other target -O) against one built with PERCEP_CHECKED_KERNELS=1
# (everything -O), alternately, on a conv-bound step (the VGG16 loss network), a segmentation
# training step and a CondInst training step (whose losses, mask head and resampling are Swift
# loops). Usage: tools/bench_checked.sh [threads] [repeats]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}; repeats=${2:-2}
swift build -c release --product percep-dist >/dev/null
PERCEP_CHECKED_KERNELS=1 swift build -c release --scratch-path .build-checked --product percep-dist >/dev/null
echo "$(date -u +%Y-%m-%d), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $threads threads"
echo
echo "| benchmark | run | kernels -Ounchecked s/step | kernels -O s/step | -O ÷ -Ounchecked |"
echo "|---|---|---|---|---|"
row() {
  local name=$1; shift
  for run in $(seq 1 "$repeats"); do
    local fast checked
    fast=$(.build/release/percep-dist bench "$@" --threads "$threads" --json)
    checked=$(.build-checked/release/percep-dist bench "$@" --threads "$threads" --json)
    python3 - "$name" "$run" "$fast" "$checked" <<'PY'
import json, sys
name, run, fast, checked = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
key = "seconds_per_iter" if "seconds_per_iter" in fast else "seconds_per_step"
print(f"| {name} | {run} | {fast[key]:.3f} | {checked[key]:.3f} | {checked[key] / fast[key]:.3f} |")
PY
  done
}
row "lossnet VGG16, 19×128², batch 2" lossnet --structure 2,2,3,3,3 --in-channels 19 --size 128 --batch 2 --iters 5
row "step pspnet_r18, 256², batch 2" step --model pspnet_r18 --size 256 --batch 2 --steps 3
row "step condinst_r50, 384×512, batch 2" step --model condinst_r50 --size 384,512 --batch 2 --steps 2
