#!/usr/bin/env bash
# Issue 17's measurements on a lent device machine (16 cores, AVX-512, no Swift toolchain), in one
# call of about 8 minutes: unpacks the bundle of tools/device/bundle.sh, then runs our benchmarks
# and PyTorch's twins alternately, each program pinned to two cores with 2 threads, in two lanes
# on disjoint core pairs at the same time (the call's limit is 10 minutes):
#   cores 0,1: the VGG16 and (1,1,1,1,1) loss steps (5 pairs), the transform and GEMM widths
#              against each other, then `bench conv` (2 rounds each side), then 200 VGG16 loss
#              steps of ours alone (drift over a long run, at the end of widths.txt);
#   cores 2,3: the PSPNet-R18 step, then the CondInst R-50 step (1 step after a warm-up).
# Results go to $OUT (at most 8 files come back): machine.txt, lossnet.md, widths.txt, conv.md,
# step.md, condinst.md, conv-dispatch-a.json and -b.json (the decisions timed there, per lane).
# Usage, from the repository root there: tools/device/avx512_benchmarks.sh [--check]; --check only unpacks, writes machine.txt (with every library the binary would load
# from outside the bundle) and times one loss step: a dry run for any machine. From a session:
# `tools/device/bundle.sh` here (about 2 minutes), then the device tool's run with command
# `tools/device/avx512_benchmarks.sh`, carry [".build-device"] and timeout_s 600; the bundle
# (41 MB) and the tracked tree (16 MB) fit the 64 MiB a run carries. A dry run of the lanes with
# both on cores 0,1 and the bench scripts stubbed passed on the AVX2 VM (2026-12-06).
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp/percep-device-out}
mkdir -p "$out"
root=/tmp/percep-bundle
rm -rf "$root" && mkdir -p "$root"
if ! tar -C "$root" -xJf .build-device/percep-dist.tar.xz; then
  echo "avx512_benchmarks.sh: no bundle at .build-device/percep-dist.tar.xz (run tools/device/bundle.sh and carry .build-device)" >&2
  exit 2
fi
export LD_LIBRARY_PATH=$root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PERCEP_BIN=$root/bin/percep-dist OPENBLAS_CORETYPE=Haswell
# Every decision the dispatch times on that machine (Winograd F(4x4, 3x3) and F(2x2, 3x3) against
# oneDNN's direct convolution, the near-ties) comes back with the results, one file per lane (the
# lanes run at once, and one file rewritten by both could lose a decision).
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(cat "$root/commit")"
  lscpu | grep -E '^(Model name|CPU family|Model|Thread|Core|Socket|L2|L3)'
  echo "avx512f: $(grep -c -w avx512f /proc/cpuinfo) of $(nproc) cpus; OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE"
  "$PERCEP_BIN" --version 2>&1 | head -1
  python3 -c 'import torch; print("PyTorch", torch.__version__)' 2>&1 | tail -1
  echo "loaded from outside the bundle:"
  ldd "$PERCEP_BIN" | awk '$3 ~ /^\// { print "  " $3 }' | grep -v "$root/lib/" || true
} > "$out/machine.txt" 2>&1
if [ "${1:-}" = --check ]; then
  "$PERCEP_BIN" bench lossnet --iters 1 --threads 2 --json >> "$out/machine.txt" 2>&1
  cat "$out/machine.txt"
  exit 0
fi
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(' '.join(str(d.get(k)) for k in sys.argv[1:]))" "$@"; }

lane_a() {
  export PERCEP_CONV_CACHE=$out/conv-dispatch-a.json
  tools/bench_lossnet.sh 2 5 5 "2,2,3,3,3/3 1,1,1,1,1/3" > "$out/lossnet.md" 2>&1
  # The two widths of the Winograd transforms and GEMM, forced, against the per-process timing;
  # and the prediction's forward on oneDNN's direct convolution (PERCEP_WINOGRAD=0: no Winograd
  # at all) or F(4x4, 3x3) (all) against the default's timed choice.
  local args=(--structure 2,2,3,3,3 --iters 10 --threads 2 --json)
  for round in 1 2 3; do
    for setting in "" PERCEP_WINOGRAD_TRANSFORMS=8 PERCEP_WINOGRAD_TRANSFORMS=16 PERCEP_WINOGRAD_GEMM=8 PERCEP_WINOGRAD_GEMM=16 \
        PERCEP_WINOGRAD=0 PERCEP_WINOGRAD=all; do
      echo "round $round ${setting:-default}: $(env $setting "$PERCEP_BIN" bench lossnet "${args[@]}" \
        | field seconds_per_iter min_seconds winograd_transform_lanes winograd_gemm_lanes loss)"
    done
  done > "$out/widths.txt" 2>&1
  tools/bench_conv.sh 2 8 2 > "$out/conv.md" 2>&1
  # 200 loss steps: whether the step time drifts over a long run (seconds_by_tenth) and how many
  # page runs the mapped-block cache moves per step there.
  echo "long run, 200 steps: $("$PERCEP_BIN" bench lossnet --structure 2,2,3,3,3 --iters 200 --threads 2 --json \
    | field seconds_per_iter min_seconds moved_runs_per_step fresh_pages_mb_per_step seconds_by_tenth)" >> "$out/widths.txt" 2>&1
}

lane_b() {
  export PERCEP_CONV_CACHE=$out/conv-dispatch-b.json
  tools/bench_step.sh pspnet_r18 2 3 > "$out/step.md" 2>&1
  tools/bench_condinst_step.sh 2 1 > "$out/condinst.md" 2>&1
}

start=$(date +%s)
timeout 540 taskset -c 0,1 bash -c "$(declare -f lane_a field); out=$out; lane_a" &
timeout 540 taskset -c 2,3 bash -c "$(declare -f lane_b); out=$out; lane_b" &
wait
echo "both lanes done in $(( $(date +%s) - start )) s" >> "$out/machine.txt"
