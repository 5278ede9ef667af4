#!/usr/bin/env bash
# The quick-start job: installs what is missing, builds percep-dist in release and runs the
# training loop on built-in synthetic scenes with configs/demo/tiny-synthetic.yaml (CE + λ·
# perceptual loss, checkpoints and metrics in ./output/tiny-synthetic). Extra arguments are config
# overrides (KEY VALUE …) or options such as --resume.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup.sh
swift build -c release --product percep-dist
.build/release/percep-dist train-demo --config configs/demo/tiny-synthetic.yaml "$@"
