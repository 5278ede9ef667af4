#!/usr/bin/env bash
# The quick-start jobs, end to end on two ranks. Installs what is missing and builds percep-dist
# in release first.
#
#   bash launch/demo.sh [KEY VALUE …]       instance segmentation (the main job):
#     1. writes a synthetic COCO-layout set (output/synth-coco: 400 train, 50 val images),
#     2. trains CondInst under `mpirun -np 2` (configs/synthetic/condinst.yaml on a half-length
#        schedule, 1500 iterations, about 5 minutes; extra arguments are config overrides),
#     3. evaluates the best checkpoint (COCO box and mask AP) and writes bbox.json / segm.json,
#     4. renders the loss and AP curves to output/synthetic/condinst/*.png and *.svg, and
#     5. draws predictions beside the ground truth for 8 validation images
#        (output/synthetic/condinst/visualize/*.png).
#
#   bash launch/demo.sh seg [KEY VALUE …]   semantic segmentation: synthetic ADE20K-layout set →
#     teacher (DeepLabV3+) → student (PSPNet) with CE + 0.1·perceptual loss against the teacher's
#     soft labels on 2 ranks → eval-seg → curves in output/synthetic/percep/.
#
# Data sets and the segmentation teacher are reused when they exist.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup.sh
swift build -c release --product percep-dist
bin=.build/release/percep-dist

if [ "${1:-}" = seg ]; then
  shift
  [ -f output/synth-seg/ADEChallengeData2016/classes.txt ] ||
    "$bin" synth seg --out output/synth-seg --train 400 --val 50 --size 96,96 --seed 0
  [ -f output/synthetic/teacher/model_best.h5 ] ||
    "$bin" train-seg --config configs/synthetic/teacher.yaml
  rm -rf output/synthetic/percep
  bash launch/mpirun-local.sh 2 train-seg --config configs/synthetic/percep.yaml "$@"
  overrides=(); [ $# -eq 0 ] || overrides=(--set "$@")
  "$bin" eval-seg --config configs/synthetic/percep.yaml --checkpoint output/synthetic/percep/model_best.h5 "${overrides[@]}"
  "$bin" plot output/synthetic/percep
  exit 0
fi

run=output/synthetic/condinst
[ -f output/synth-coco/annotations/instances_train.json ] ||
  "$bin" synth coco --out output/synth-coco --images 400 --seed 0 --size 128,128 --split train
[ -f output/synth-coco/annotations/instances_val.json ] ||
  "$bin" synth coco --out output/synth-coco --images 50 --seed 1 --size 128,128 --split val
rm -rf "$run"
short=(SOLVER.MAX_ITER 1500 SOLVER.STEPS "[1000, 1300]" TEST.EVAL_PERIOD 500 SOLVER.CHECKPOINT_PERIOD 500)
bash launch/mpirun-local.sh 2 train-inst --config configs/synthetic/condinst.yaml "${short[@]}" "$@"
overrides=(--set "${short[@]}" "$@")
"$bin" eval-inst --config configs/synthetic/condinst.yaml --checkpoint "$run/model_best.h5" --results-dir "$run/results" "${overrides[@]}"
"$bin" plot "$run"
"$bin" visualize --gt output/synth-coco/annotations/instances_val.json --results "$run/results/segm.json" \
  --images output/synth-coco/val --out "$run/visualize" --limit 8
