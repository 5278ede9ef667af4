#!/usr/bin/env bash
# Runs the whole test suite: installs what is missing, builds in release (numeric code is ~50x
# slower in debug) with testing enabled, then runs every XCTest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup.sh
swift build --build-tests -c release -Xswiftc -enable-testing
swift test -c release -Xswiftc -enable-testing --skip-build --disable-swift-testing "$@"
