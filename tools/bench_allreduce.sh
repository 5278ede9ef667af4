#!/usr/bin/env bash
# Reproduces the all-reduce section of docs/benchmarks.md: the ResNet-18 step on 1 rank × 1
# thread, then `bench allreduce` on 2 ranks × 1 thread with that time for weak scaling.
# Usage: tools/bench_allreduce.sh [ranks] [repeats] [image size] [per-rank batch] [shm|netns]
# shm (default): all ranks on this machine (Open MPI's shared-memory transport); netns: one rank
# per emulated host of launch/netns-cluster.sh (TCP through a bridge, needs root).
# PERCEP_BIN=path uses that binary instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."
ranks=${1:-2}; repeats=${2:-9}; size=${3:-64}; batch=${4:-2}; transport=${5:-shm}
export OMP_NUM_THREADS=1
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
bin=${PERCEP_BIN:-}
if [ -z "$bin" ]; then swift build -c release --product percep-dist >/dev/null; bin=.build/release/percep-dist; fi
single=$("$bin" bench allreduce --mb 1 --repeats "$repeats" --size "$size" --batch "$batch" --json | tail -1 |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["step_seconds"])')
echo "$(date -u +%Y-%m-%d), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc --all) cores; 1-rank ResNet-18 step (${size}², batch $batch): $single s; transport $transport"
args=(bench allreduce --mb 1,25,100 --repeats "$repeats" --size "$size" --batch "$batch" --single-rank-step "$single" --json)
case $transport in
  shm) mpirun -np "$ranks" --oversubscribe --bind-to none "$bin" "${args[@]}" | tail -1 ;;
  netns) launch/netns-cluster.sh up "$ranks" >/dev/null
         PERCEP_BIN=$bin launch/netns-cluster.sh run "${args[@]}" | tail -1 ;;
  *) echo "transport must be shm or netns, got '$transport'" >&2; exit 2 ;;
esac
