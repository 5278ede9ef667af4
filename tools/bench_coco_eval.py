#!/usr/bin/env python3
"""Python twins of `percep-dist bench coco-eval`: pycocotools and faster-coco-eval timed on the
same files (load ground truth + loadRes + evaluate + accumulate + summarize, best of N).

Usage: tools/bench_coco_eval.py --golden DIR --synthetic DIR [--repeats 3]
  --synthetic is the folder `percep-dist bench coco-eval --write-synthetic DIR` wrote.
Prints one JSON object: {"pycocotools": {...} or null, "faster_coco_eval": {...} or null,
"missing": {name: reason}} with the same keys as the Swift benchmark's JSON.
Install the libraries with: pip install pycocotools faster-coco-eval
"""
import argparse
import contextlib
import io
import json
import os
import sys
import time


def package_version(dist, module):
    """The installed distribution's version (pycocotools has no __version__)."""
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:
        return getattr(module, "__version__", "?")


def load_libraries():
    """Each library's (COCO, COCOeval class, version), or the reason it could not be imported."""
    libs, missing = {}, {}
    try:
        import pycocotools
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
        libs["pycocotools"] = (COCO, COCOeval, package_version("pycocotools", pycocotools))
    except ImportError as e:
        missing["pycocotools"] = str(e)
    try:
        import faster_coco_eval
        from faster_coco_eval import COCO as FCOCO, COCOeval_faster
        libs["faster_coco_eval"] = (FCOCO, COCOeval_faster, package_version("faster-coco-eval", faster_coco_eval))
    except ImportError as e:
        missing["faster_coco_eval"] = str(e)
    return libs, missing


def best_seconds(lib, gt, results, iou_type, repeats):
    COCO, COCOeval, _ = lib
    best = float("inf")
    for _ in range(repeats):
        # Both libraries print progress and the summary; the printing is part of summarize, so it
        # is done (into a buffer) and timed, as our side formats its 12 lines.
        with contextlib.redirect_stdout(io.StringIO()):
            t0 = time.perf_counter()
            coco_gt = COCO(gt)
            coco_dt = coco_gt.loadRes(results)
            e = COCOeval(coco_gt, coco_dt, iou_type)
            e.evaluate()
            e.accumulate()
            e.summarize()
            dt = time.perf_counter() - t0
        assert len(e.stats) == 12
        best = min(best, dt)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--golden", required=True)
    ap.add_argument("--synthetic", required=True)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    libs, missing = load_libraries()
    for name, reason in missing.items():
        print(f"bench_coco_eval.py: could not import {name} ({reason}); pip install pycocotools faster-coco-eval",
              file=sys.stderr)
    sets = {
        "golden": (os.path.join(args.golden, "instances_val2014_100.json"),
                   {"bbox": os.path.join(args.golden, "instances_val2014_fakebbox100_results.json"),
                    "segm": os.path.join(args.golden, "instances_val2014_fakesegm100_results.json")}),
        "synthetic": (os.path.join(args.synthetic, "instances.json"),
                      {t: os.path.join(args.synthetic, f"results_{t}.json") for t in ("bbox", "segm")}),
    }
    for gt, results in sets.values():
        for path in [gt, *results.values()]:
            if not os.path.exists(path):
                sys.exit(f"bench_coco_eval.py: missing {path}")

    out = {"missing": missing, "versions": {}}
    for name in ("pycocotools", "faster_coco_eval"):
        if name not in libs:
            out[name] = None
            continue
        out["versions"][name] = libs[name][2]
        out[name] = {
            set_name: {f"{t}_seconds": best_seconds(libs[name], gt, results[t], t, args.repeats) for t in ("bbox", "segm")}
            for set_name, (gt, results) in sets.items()
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
