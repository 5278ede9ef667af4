#!/usr/bin/env bash
# The reproduction study (docs/reproduction.md): the paper's claims at CPU scale on synthetic
# data, several seeds per row, one training job at a time: segmentation (Tables 1-4) on
# structured synthetic scenes, instance segmentation (Table 5) and depth (Table 7) with --tasks.
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
#   bash launch/reproduce.sh --tasks instance,depth --seeds 3
#                                              Table 5 (CondInst +- perceptual, 2 ranks, about
#                                              10-14 minutes a run) and Table 7 (WCE, WCE + VNL,
#                                              each +- perceptual, about 8 minutes a run), 3 seeds
#   bash launch/reproduce.sh --only vgg19,k7   some rows of any task (names: percep-dist study run --help)
#   bash launch/reproduce.sh ... KEY VALUE     config overrides for every training run
#
# Runs live in output/study (--out); finished runs are skipped and interrupted ones resume, so
# the same command continues a study. At the end the report (docs/reproduction.md), its figures
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
