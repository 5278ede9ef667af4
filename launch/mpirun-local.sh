#!/usr/bin/env bash
# Runs percep-dist data-parallel on this machine: N ranks, each with cores/N threads, so the
# ranks' thread pools never oversubscribe the cores.
#
#   launch/mpirun-local.sh 2 dist check --scenario train
#   launch/mpirun-local.sh 4 bench allreduce --mb 1,25,100
#
# As root it sets Open MPI's root-allow variables; it always allows more ranks than cores
# (--oversubscribe) and leaves binding to the OS (--bind-to none) because each rank runs its own
# OpenMP pool. PERCEP_BIN overrides the binary (default .build/release/percep-dist);
# THREADS_PER_RANK overrides cores/N (e.g. one fewer, to leave the communication threads a core).
set -euo pipefail
if [ $# -lt 2 ]; then echo "usage: $0 RANKS percep-dist-arguments…" >&2; exit 2; fi
ranks=$1; shift
cd "$(dirname "$0")/.."
bin=${PERCEP_BIN:-.build/release/percep-dist}
[ -x "$bin" ] || swift build -c release --product percep-dist
cores=$(nproc --all)
threads=${THREADS_PER_RANK:-$(( cores / ranks ))}
[[ "${THREADS_PER_RANK:-1}" =~ ^[1-9][0-9]*$ ]] || { echo "$0: THREADS_PER_RANK must be a positive integer, got '$THREADS_PER_RANK'" >&2; exit 2; }
[ "$threads" -ge 1 ] 2>/dev/null || threads=1   # fewer cores than ranks
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
exec mpirun -np "$ranks" --oversubscribe --bind-to none -x OMP_NUM_THREADS="$threads" -x PERCEP_THREADS="$threads" "$bin" "$@"
