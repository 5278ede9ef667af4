#!/usr/bin/env bash
# The quick-start job, end to end on two ranks: installs what is missing, builds percep-dist in
# release, then
#   1. writes a synthetic segmentation set in the ADE20K layout (output/synth-seg),
#   2. trains the teacher (DeepLabV3+, configs/synthetic/teacher.yaml),
#   3. trains the student (PSPNet) with CE + 0.1·perceptual loss against the teacher's soft
#      labels under `mpirun -np 2` (configs/synthetic/percep.yaml),
#   4. evaluates the student's best checkpoint (mmseg mIoU) and
#   5. renders its loss and mIoU curves to output/synthetic/percep/*.png and *.svg.
# Extra arguments are config overrides for the student (KEY VALUE …). Steps whose output exists
# are skipped, so a second run only retrains the student.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup.sh
swift build -c release --product percep-dist
bin=.build/release/percep-dist

[ -f output/synth-seg/ADEChallengeData2016/classes.txt ] ||
  "$bin" synth seg --out output/synth-seg --train 400 --val 50 --size 96,96 --seed 0
[ -f output/synthetic/teacher/model_best.h5 ] ||
  "$bin" train-seg --config configs/synthetic/teacher.yaml
rm -rf output/synthetic/percep
bash launch/mpirun-local.sh 2 train-seg --config configs/synthetic/percep.yaml "$@"
overrides=(); [ $# -eq 0 ] || overrides=(--set "$@")
"$bin" eval-seg --config configs/synthetic/percep.yaml --checkpoint output/synthetic/percep/model_best.h5 "${overrides[@]}"
"$bin" plot output/synthetic/percep
