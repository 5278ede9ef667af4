#!/usr/bin/env bash
# Packs a release binary and every shared library it loads except glibc's own into
# .build-device/percep-dist.tar.xz (ignored, like all .build*), for a machine that has neither the
# Swift toolchain nor this project's Debian packages: the device machine of docs/benchmarks.md,
# where tools/device/avx512_benchmarks.sh unpacks and runs it. Carry `.build-device` with the run.
# Usage: tools/device/bundle.sh [binary] (default: PERCEP_BIN, else .build/release/percep-dist)
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-${PERCEP_BIN:-.build/release/percep-dist}}
[ -x "$bin" ] || { echo "bundle.sh: no binary at $bin (build with: swift build -c release --product percep-dist)" >&2; exit 2; }
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib" .build-device
cp "$bin" "$stage/bin/percep-dist"
# The libraries the loader resolves here; glibc's stay the target's own (it must be as new).
ldd "$bin" | awk '$3 ~ /^\// { print $3 }' | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so.*|libm.so.*|libpthread.so.*|libdl.so.*|librt.so.*|ld-linux*) ;;
    *) cp -L "$lib" "$stage/lib/" ;;
  esac
done
# The sources the binary says it was built from (`--version`: the commit, "-dirty.N" for
# uncommitted changes), not this checkout's HEAD: the binary may be older than HEAD.
built_from=$("$bin" --version 2>/dev/null | sed -n 's/.*(\(.*\)).*/\1/p')
echo "${built_from:-unknown}" > "$stage/commit"
head=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
[ "$built_from" = "$head" ] || echo "bundle.sh: warning: the binary was built from $built_from, HEAD is $head (rebuild to measure HEAD)" >&2
tar -C "$stage" -cf - . | xz -9 -T2 > .build-device/percep-dist.tar.xz
echo "$(du -h .build-device/percep-dist.tar.xz | cut -f1) .build-device/percep-dist.tar.xz ($(ls "$stage/lib" | wc -l) libraries, commit $(cat "$stage/commit"))"
