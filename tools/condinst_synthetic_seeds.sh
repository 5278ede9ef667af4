#!/usr/bin/env bash
# The synthetic CondInst recipe, baseline and + perceptual mask term, over several seeds on
# 2 ranks (launch/mpirun-local.sh), then a table of final box and mask AP (mean ± std) and wall
# time per run, for docs/benchmarks.md. Runs that finished are kept (delete output/seeds to redo).
# Usage: tools/condinst_synthetic_seeds.sh [seeds…]   (default: 0 1 2)
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=("$@"); [ ${#seeds[@]} -gt 0 ] || seeds=(0 1 2)
swift build -c release --product percep-dist >/dev/null
bin=.build/release/percep-dist
[ -f output/synth-coco/annotations/instances_train.json ] || "$bin" synth coco --out output/synth-coco --images 400 --seed 0 --size 128,128 --split train
[ -f output/synth-coco/annotations/instances_val.json ] || "$bin" synth coco --out output/synth-coco --images 50 --seed 1 --size 128,128 --split val
for variant in condinst condinst_percep; do
  for seed in "${seeds[@]}"; do
    out=output/seeds/$variant-$seed
    [ -f "$out/seconds" ] && continue
    rm -rf "$out"; mkdir -p "$out"
    start=$(date +%s)
    bash launch/mpirun-local.sh 2 train-inst --config "configs/synthetic/$variant.yaml" SEED "$seed" OUTPUT_DIR "$out" > "$out.log" 2>&1
    echo $(( $(date +%s) - start )) > "$out/seconds"
  done
done
python3 - "${seeds[@]}" <<'PY'
import json, statistics, sys
seeds = sys.argv[1:]
print("| variant | seeds | box AP | mask AP | minutes per run |")
print("|---|---|---|---|---|")
for variant in ("condinst", "condinst_percep"):
    box, mask, minutes = [], [], []
    for s in seeds:
        d = f"output/seeds/{variant}-{s}"
        evals = [r for r in map(json.loads, open(f"{d}/metrics.jsonl")) if "eval/segm/AP" in r]
        box.append(evals[-1]["eval/bbox/AP"]); mask.append(evals[-1]["eval/segm/AP"])
        minutes.append(int(open(f"{d}/seconds").read()) / 60)
    f = lambda v: f"{statistics.mean(v):.1f} ± {statistics.stdev(v):.1f}" if len(v) > 1 else f"{v[0]:.1f}"
    print(f"| {variant} | {' '.join(seeds)} | {f(box)} | {f(mask)} | {f(minutes)} |")
    print(f"|  | per seed | {', '.join(f'{v:.1f}' for v in box)} | {', '.join(f'{v:.1f}' for v in mask)} | {', '.join(f'{v:.1f}' for v in minutes)} |")
PY
