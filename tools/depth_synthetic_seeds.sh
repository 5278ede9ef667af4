#!/usr/bin/env bash
# Table 7's four rows at small scale (configs/synthetic/depth_wce.yaml, depth_wce_percep.yaml,
# depth.yaml, depth_percep.yaml) over
# several seeds on `synth depth --tiny --images 240` (192 training, 48 test frames), one rank,
# then a table of the final abs_rel and delta1 (mean ± std) and wall time per run, for
# docs/benchmarks.md. Runs that finished are kept (delete output/depth-seeds to redo).
# Usage: tools/depth_synthetic_seeds.sh [seeds…]   (default: 0 1 2)
# PERCEP_DIST=path/to/percep-dist uses that binary instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=("$@"); [ ${#seeds[@]} -gt 0 ] || seeds=(0 1 2)
bin=${PERCEP_DIST:-}
if [ -z "$bin" ]; then swift build -c release --product percep-dist >/dev/null; bin=.build/release/percep-dist; fi
data=output/synth-depth-240
[ -f "$data/splits.mat" ] || "$bin" synth depth --out "$data" --seed 0 --tiny --images 240
variants=(depth_wce depth_wce_percep depth depth_percep)
for seed in "${seeds[@]}"; do
  for variant in "${variants[@]}"; do
    out=output/depth-seeds/$variant-$seed
    [ -f "$out/seconds" ] && continue
    rm -rf "$out"; mkdir -p "$out"
    start=$(date +%s)
    "$bin" train-depth --config "configs/synthetic/$variant.yaml" SEED "$seed" DATASETS.ROOT "$data" OUTPUT_DIR "$out" > "$out.log" 2>&1
    echo $(( $(date +%s) - start )) > "$out/seconds"
  done
done
python3 - "${seeds[@]}" <<'PY'
import json, statistics, sys
seeds = sys.argv[1:]
rows = {"depth_wce": "WCE", "depth_wce_percep": "WCE + perceptual", "depth": "WCE + VNL", "depth_percep": "WCE + VNL + perceptual"}
print("| row (`configs/synthetic/…`) | abs_rel (%) | delta1 (%) | abs_rel per seed | delta1 per seed | minutes per run |")
print("|---|---|---|---|---|---|")
for variant, name in rows.items():
    rel, d1, minutes = [], [], []
    for s in seeds:
        d = f"output/depth-seeds/{variant}-{s}"
        last = [r for r in map(json.loads, open(f"{d}/metrics.jsonl")) if "eval/abs_rel" in r][-1]
        rel.append(100 * last["eval/abs_rel"]); d1.append(100 * last["eval/delta1"])
        minutes.append(int(open(f"{d}/seconds").read()) / 60)
    f = lambda v, p=1: f"{statistics.mean(v):.{p}f} ± {statistics.stdev(v):.{p}f}" if len(v) > 1 else f"{v[0]:.{p}f}"
    each = lambda v: ", ".join(f"{x:.1f}" for x in v)
    print(f"| {name} (`{variant}.yaml`) | {f(rel)} | {f(d1)} | {each(rel)} | {each(d1)} | {f(minutes)} |")
PY
