#!/usr/bin/env bash
# A cluster of N "hosts" on this machine: one network namespace per host, each with its own
# loopback, hostname (via unshare --uts) and address on a private bridge, so that Open MPI crosses
# a real TCP/IP stack between ranks, launched through a hostfile and a remote-shell agent as on a
# cluster. Needs root (ip netns, ip link). Only addresses inside the namespaces this script creates
# carry traffic: the bridge itself lives in a namespace of its own.
#
#   launch/netns-cluster.sh up N                     # hosts <prefix>-h0 … h(N-1), 10.77.0.1 … N
#   launch/netns-cluster.sh run [-r RANKS_PER_HOST] percep-dist-arguments…
#   launch/netns-cluster.sh link HOST down|up        # cut or restore host HOST's cable (0-based)
#   launch/netns-cluster.sh down                     # remove everything (idempotent)
#   launch/netns-cluster.sh check                    # exit 0 when namespaces can be created here
#
# `run` starts mpirun inside host 0 with a generated hostfile, `plm_rsh_agent` pointing at this
# script's `agent` mode (it enters the right namespace instead of ssh-ing), the TCP BTL only
# (`--mca btl tcp,self`: no shared memory between hosts) restricted to the cluster's subnet, and
# the host's core share exported as PERCEP_HOST_CORES (this machine's cores divided among the
# hosts), which each rank divides by Open MPI's local rank count. `run` always takes the cluster
# down afterwards unless KEEP_CLUSTER=1, also when the job fails.
#
# NETNS_PREFIX (default pd) names the namespaces and interfaces, so separate clusters (tests) can
# coexist; NETNS_SUBNET (default 10.77.0) is the /24 the hosts live on. PERCEP_BIN overrides the
# binary (default .build/release/percep-dist); HOST_CORES the cores each host claims (default
# this machine's cores / N); TCP_RETRIES2 the hosts' net.ipv4.tcp_retries2 (default 1, see `up`).
# Extra mpirun options go in MPIRUN_OPTIONS.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
prefix=${NETNS_PREFIX:-pd}
subnet=${NETNS_SUBNET:-10.77.0}
state=${NETNS_STATE:-/tmp/percep-netns-$prefix}
switch=$prefix-sw

die() { echo "netns-cluster: $*" >&2; exit 2; }
host_ns() { echo "$prefix-h$1"; }
host_ip() { echo "$subnet.$(( $1 + 1 ))"; }
host_count() { [ -f "$state/hosts" ] || die "no cluster '$prefix' is up (run: $0 up N)"; wc -l < "$state/hosts"; }

up() {
  local n=$1
  [[ "$n" =~ ^[1-9][0-9]{0,2}$ ]] && [ "$n" -le 200 ] || die "up: N must be 1…200 hosts, got '$n'"
  [ "$(id -u)" -eq 0 ] || die "up: needs root (ip netns add)"
  down >/dev/null 2>&1 || true
  mkdir -p "$state"
  : > "$state/hosts"
  ip netns add "$switch"
  ip -n "$switch" link add br0 type bridge
  ip -n "$switch" link set br0 up
  for ((i = 0; i < n; i++)); do
    local ns; ns=$(host_ns "$i")
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # The host's end is eth0 inside its namespace; the switch's end joins the bridge.
    ip link add "${prefix}h${i}e" netns "$ns" type veth peer name "${prefix}h${i}p" netns "$switch"
    ip -n "$ns" link set "${prefix}h${i}e" name eth0
    ip -n "$ns" addr add "$(host_ip "$i")/24" dev eth0
    ip -n "$ns" link set eth0 up
    # Linux retransmits to a dead peer for ~15 minutes (tcp_retries2 = 15), and mpirun cannot
    # finish aborting a job that lost a host until its connection to that host's daemon gives up.
    # This lossless emulated network gives up after the first retransmission instead (TCP_RETRIES2
    # overrides; docs/distributed.md has the trade-off for real clusters).
    ip netns exec "$ns" sysctl -q -w net.ipv4.tcp_retries2="${TCP_RETRIES2:-1}"
    ip -n "$switch" link set "${prefix}h${i}p" master br0 up
    echo "$(host_ip "$i") $ns $prefix-host$i" >> "$state/hosts"
  done
  echo "netns-cluster '$prefix': $n hosts on $subnet.0/24 ($(cut -d' ' -f1 "$state/hosts" | paste -sd' '))"
}

down() {
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$prefix-(h[0-9]+|sw)$" || true); do
    # Processes left in a namespace (a killed job's orted) keep it alive: end them first.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$state"
}

# Open MPI's plm_rsh_agent: called as `agent HOST COMMAND…` like ssh; runs COMMAND with a shell
# inside HOST's namespace under its own hostname.
agent() {
  [ $# -ge 2 ] || die "agent: usage: agent HOST COMMAND…"
  local target=$1; shift
  local line; line=$(awk -v h="$target" '$1 == h || $3 == h' "$state/hosts" | head -1)
  [ -n "$line" ] || die "agent: unknown host '$target' (known: $(cut -d' ' -f1 "$state/hosts" | paste -sd' '))"
  set -- "$*"
  read -r _ ns name <<< "$line"
  exec ip netns exec "$ns" unshare --uts sh -c "hostname $name && $1"
}

run() {
  local per_host=1
  if [ "${1:-}" = "-r" ]; then [ $# -ge 2 ] || die "run: -r needs a number of ranks per host"; per_host=$2; shift 2; fi
  [[ "$per_host" =~ ^[1-9][0-9]*$ ]] || die "run: -r needs a positive number of ranks per host"
  [ $# -ge 1 ] || die "run: give percep-dist's arguments"
  local n; n=$(host_count)
  local bin=${PERCEP_BIN:-$here/../.build/release/percep-dist}
  [ -x "$bin" ] || die "run: no binary at $bin (swift build -c release, or set PERCEP_BIN)"
  bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
  awk -v s="$per_host" '{ print $1 " slots=" s }' "$state/hosts" > "$state/hostfile"
  local cores; cores=$(nproc)   # the cores this process may use (cpuset and affinity included)
  local host_cores=${HOST_CORES:-$(( cores / n > 0 ? cores / n : 1 ))}
  if [ "${KEEP_CLUSTER:-0}" != 1 ]; then trap 'down' EXIT; fi
  if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
  local status=0
  # mpirun runs in the background and is waited for, so a TERM or INT reaches this shell at once
  # and is passed on (the EXIT trap then removes whatever is left in the namespaces).
  # shellcheck disable=SC2086
  ip netns exec "$(host_ns 0)" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$prefix-host0" \
    mpirun -np $(( n * per_host )) --hostfile "$state/hostfile" --oversubscribe --bind-to none \
      --mca plm_rsh_agent "$here/netns-cluster.sh agent" --mca plm_rsh_no_tree_spawn 1 \
      --mca btl tcp,self --mca btl_tcp_if_include "$subnet.0/24" --mca oob_tcp_if_include "$subnet.0/24" \
      -x NETNS_PREFIX="$prefix" -x NETNS_SUBNET="$subnet" -x NETNS_STATE="$state" \
      -x PERCEP_HOST_CORES="$host_cores" ${MPIRUN_OPTIONS:-} "$bin" "$@" &
  local child=$!
  trap 'kill -TERM "$child" 2>/dev/null; exit 143' TERM INT
  wait "$child" || status=$?
  return "$status"
}

link() {
  [ $# -eq 2 ] || die "link: give HOST (0-based) and down|up"
  local ns; ns=$(host_ns "$1")
  case $2 in down|up) ;; *) die "link: state must be down or up, got '$2'" ;; esac
  ip -n "$ns" link set eth0 "$2"
}

check() {
  [ "$(id -u)" -eq 0 ] || { echo "netns-cluster: not root, network namespaces cannot be created" >&2; return 1; }
  command -v ip >/dev/null || { echo "netns-cluster: no 'ip' command (iproute2)" >&2; return 1; }
  command -v unshare >/dev/null || { echo "netns-cluster: no 'unshare' command (util-linux)" >&2; return 1; }
  local probe=$prefix-probe$$
  ip netns add "$probe" 2>/dev/null || { echo "netns-cluster: 'ip netns add' is not permitted here" >&2; return 1; }
  ip netns del "$probe"
}

mode=${1:-}; [ $# -gt 0 ] && shift
case $mode in
  up) [ $# -eq 1 ] || die "usage: $0 up N"; up "$1" ;;
  down) down ;;
  run) run "$@" ;;
  link) link "$@" ;;
  agent) agent "$@" ;;
  check) check ;;
  *) die "usage: $0 up N | run [-r RANKS_PER_HOST] ARGS… | link HOST down|up | down | check" ;;
esac
