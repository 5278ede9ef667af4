#!/usr/bin/env bash
# The reproduction study (docs/reproduction.md): the paper's segmentation claims at CPU scale on
# structured synthetic scenes, several seeds per row, one training process at a time.
#
#   bash launch/reproduce.sh                   the target rows in about 2 hours on two cores:
#                                              baseline and + perceptual vs teacher at 6 seeds,
#                                              + perceptual vs one-hot GT at 2 (--seeds N,
#                                              --headline-seeds M)
#   bash launch/reproduce.sh --ablations       also Tables 1-4 and the level weights, 2 seeds
#                                              each: about 8-10 more hours
#   bash launch/reproduce.sh --quick           a first look in about 15 minutes: baseline, +
#                                              perceptual vs teacher, vs one-hot GT, 2 seeds,
#                                              1200 iterations (a quarter of the study's, so
#                                              undertrained), in output/study-quick with its
#                                              report there (docs/ is left alone)
#   bash launch/reproduce.sh --only vgg19,k7   some rows (names: percep-dist study run --help)
#   bash launch/reproduce.sh ... KEY VALUE     config overrides for every training run
#
# Runs live in output/study (--out); finished runs are skipped and interrupted ones resume, so
# the same command continues a study. At the end the report (docs/reproduction.md), its figure
# and docs/reproduction/results.json are rewritten from every finished run in the folder.
# PERCEP_BIN: an already built percep-dist (else this installs what is missing and builds one).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${PERCEP_BIN:-}
if [ -z "$bin" ]; then
  bash launch/setup.sh
  swift build -c release --product percep-dist
  bin=.build/release/percep-dist
fi
exec "$bin" study run "$@"
