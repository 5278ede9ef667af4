#!/usr/bin/env bash
# Runs the whole test suite: installs what is missing, builds in release (numeric code is ~50x
# slower in debug) with testing enabled, then runs every XCTest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup.sh
# h5py, for the test that reads a checkpoint the way PyTorch users will (test-only: the build
# never needs Python). pip first, as users install it; Debian's package when pip is unavailable.
if ! python3 -c "import h5py" 2>/dev/null; then
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  python3 -m pip --version >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends python3-pip >/dev/null || true
  python3 -m pip install --quiet --break-system-packages h5py 2>/dev/null || python3 -m pip install --quiet h5py 2>/dev/null \
    || DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends python3-h5py >/dev/null \
    || echo "test: h5py could not be installed; the h5py interop test will be skipped" >&2
fi
swift build --build-tests -c release -Xswiftc -enable-testing
swift test -c release -Xswiftc -enable-testing --skip-build --disable-swift-testing "$@"
# Machines differ: oneDNN runs AVX-512 kernels where the CPU has them and AVX2 ones elsewhere,
# with other summation orders and another dispatch rule branch. On an AVX-512 machine the
# numeric suites run a second time with oneDNN held to AVX2 (DNNL_MAX_CPU_ISA), so every run
# checks both kinds. Skipped when a filter or other arguments were given.
if [ "$#" -eq 0 ] && grep -q -w avx512f /proc/cpuinfo 2>/dev/null; then
  echo "test: repeating the numeric suites with oneDNN held to AVX2 (DNNL_MAX_CPU_ISA=AVX2)"
  DNNL_MAX_CPU_ISA=AVX2 swift test -c release -Xswiftc -enable-testing --skip-build --disable-swift-testing \
    --filter 'PercepCoreTests|PercepNNTests|PerceptualTests|SegmentationModelsTests'
fi
