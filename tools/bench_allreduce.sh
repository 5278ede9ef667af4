#!/usr/bin/env bash
# Reproduces the all-reduce section of docs/benchmarks.md: the ResNet-18 step on 1 rank × 1
# thread, then `bench allreduce` on 2 ranks × 1 thread with that time for weak scaling.
# Usage: tools/bench_allreduce.sh [ranks] [repeats] [image size] [per-rank batch]
set -euo pipefail
cd "$(dirname "$0")/.."
ranks=${1:-2}; repeats=${2:-9}; size=${3:-64}; batch=${4:-2}
export OMP_NUM_THREADS=1
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
swift build -c release --product percep-dist >/dev/null
single=$(.build/release/percep-dist bench allreduce --mb 1 --repeats "$repeats" --size "$size" --batch "$batch" --json | tail -1 |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["step_seconds"])')
echo "$(date -u +%Y-%m-%d), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc --all) cores; 1-rank ResNet-18 step (${size}², batch $batch): $single s"
mpirun -np "$ranks" --oversubscribe --bind-to none .build/release/percep-dist bench allreduce \
  --mb 1,25,100 --repeats "$repeats" --size "$size" --batch "$batch" --single-rank-step "$single" --json | tail -1
