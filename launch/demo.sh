#!/usr/bin/env bash
# The quick-start job: installs what is missing, builds percep-dist in release and trains a small
# segmentation network on built-in synthetic scenes. Extra arguments go to `percep-dist demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup.sh
swift build -c release --product percep-dist
.build/release/percep-dist demo "$@"
