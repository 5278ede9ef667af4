#!/usr/bin/env bash
# Reproduces the COCO evaluation table of docs/benchmarks.md: percep-dist, pycocotools and
# faster-coco-eval on the golden val2014 excerpt and on the same 5000-image synthetic set (the
# golden set replicated with fresh ids, written by `percep-dist bench coco-eval --write-synthetic`).
# Needs: pip install pycocotools faster-coco-eval (a missing one is reported and left out).
# Usage: tools/bench_coco_eval.sh [images] [repeats] [golden-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
images=${1:-5000}; repeats=${2:-3}; golden=${3:-../shared/data/coco-val2014-100}
swift build -c release --product percep-dist >/dev/null
synth=$(mktemp -d)
trap 'rm -rf "$synth"' EXIT
ours=$(.build/release/percep-dist bench coco-eval --json --images "$images" --repeats "$repeats" --golden "$golden" --write-synthetic "$synth")
theirs=$(python3 tools/bench_coco_eval.py --golden "$golden" --synthetic "$synth" --repeats "$repeats")
python3 - "$ours" "$theirs" "$repeats" <<'PY'
import json, subprocess, sys, datetime
ours, theirs, repeats = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
model = next((l.split(":", 1)[1].strip() for l in cpu.splitlines() if l.startswith("Model name")), "?")
nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
versions = ", ".join(f"{k} {v}" for k, v in theirs["versions"].items())
print(f"{datetime.date.today()}, {model}, {nproc} cores, percep-dist on 1 thread (its evaluator is single-threaded), {versions}, "
      f"best of {repeats}, load + evaluate + accumulate + summarize")
for name, reason in theirs["missing"].items():
    print(f"\n**{name} could not be imported** ({reason}): its columns are empty.")
print()
print("| set | images | iou type | percep-dist s | faster-coco-eval s | pycocotools s | faster-coco-eval ÷ ours | pycocotools ÷ ours |")
print("|---|---|---|---|---|---|---|---|")
fmt = lambda x: "–" if x is None else f"{x:.3f}"
ratio = lambda a, b: "–" if a is None or b is None else f"{a / b:.1f}×"
met = {"faster": True, "py": True}
for s in ("golden", "synthetic"):
    for t in ("bbox", "segm"):
        o = ours[s][f"{t}_seconds"]
        f = theirs["faster_coco_eval"][s][f"{t}_seconds"] if theirs["faster_coco_eval"] else None
        p = theirs["pycocotools"][s][f"{t}_seconds"] if theirs["pycocotools"] else None
        met["faster"] &= f is not None and o <= f
        met["py"] &= p is not None and p >= 5 * o
        print(f"| {s} | {ours[s]['images']} | {t} | {fmt(o)} | {fmt(f)} | {fmt(p)} | {ratio(f, o)} | {ratio(p, o)} |")
print()
print(f"Target at least as fast as faster-coco-eval (every row): {'met' if met['faster'] else 'NOT met'}; "
      f"≥ 5× faster than pycocotools (every row): {'met' if met['py'] else 'NOT met'}.")
PY
