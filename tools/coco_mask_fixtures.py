"""Writes Tests/COCOTests/Fixtures/mask_vectors.json: golden COCO mask-API vectors and per-category
AP from pycocotools (pip install pycocotools). CI does not need pycocotools; the JSON is committed.

    python3 tools/coco_mask_fixtures.py
"""
import contextlib, io, json, os, random
import numpy as np
import pycocotools
from pycocotools import mask as mu
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
rng = random.Random(7)


def rle_out(r):
    r = dict(r)
    counts = r["counts"].decode() if isinstance(r["counts"], bytes) else r["counts"]
    return {"size": list(r["size"]), "string": counts}


polygons = []
for n in range(60):
    h, w = rng.randint(1, 24), rng.randint(1, 24)
    k = rng.randint(3, 7)
    lo, hi = (-3.0, max(h, w) + 3.0) if n % 3 == 0 else (0.0, float(min(h, w)))
    poly = [round(rng.uniform(lo, hi), rng.choice([0, 1, 2])) for _ in range(2 * k)]
    r = mu.frPyObjects([poly], h, w)[0]
    polygons.append({"h": h, "w": w, "polygon": poly, **rle_out(r),
                     "area": int(mu.area(r)), "bbox": [float(v) for v in mu.toBbox(r)]})

boxes = []
for n in range(20):
    h, w = rng.randint(1, 20), rng.randint(1, 20)
    box = [round(rng.uniform(-2, w), 2), round(rng.uniform(-2, h), 2), round(rng.uniform(0, w), 2), round(rng.uniform(0, h), 2)]
    r = mu.frPyObjects(np.array([box], dtype=np.float64), h, w)[0]
    boxes.append({"h": h, "w": w, "box": box, **rle_out(r)})

masks = []
for n in range(30):
    h, w = rng.randint(1, 12), rng.randint(1, 12)
    p = rng.random()
    m = np.array([[1 if rng.random() < p else 0 for _ in range(w)] for _ in range(h)], dtype=np.uint8)
    r = mu.encode(np.asfortranarray(m))
    masks.append({"h": h, "w": w, "rows": m.reshape(-1).tolist(), **rle_out(r),
                  "area": int(mu.area(r)), "bbox": [float(v) for v in mu.toBbox(r)]})

# IoU and merge on pairs of same-size random masks; crowd flags alternate.
pairs = []
for n in range(30):
    h, w = rng.randint(2, 12), rng.randint(2, 12)
    ms = [np.asfortranarray((np.array([[rng.random() < 0.4 for _ in range(w)] for _ in range(h)])).astype(np.uint8)) for _ in range(2)]
    a, b = mu.encode(ms[0]), mu.encode(ms[1])
    crowd = n % 2
    pairs.append({"h": h, "w": w, "a": rle_out(a)["string"], "b": rle_out(b)["string"], "crowd": crowd,
                  "iou": float(mu.iou([a], [b], [crowd])[0][0]) if True else None,
                  "union": rle_out(mu.merge([a, b], intersect=False))["string"],
                  "intersection": rle_out(mu.merge([a, b], intersect=True))["string"]})

box_ious = []
for n in range(30):
    d = [round(rng.uniform(0, 20), 1), round(rng.uniform(0, 20), 1), round(rng.uniform(0, 15), 1), round(rng.uniform(0, 15), 1)]
    g = [round(rng.uniform(0, 20), 1), round(rng.uniform(0, 20), 1), round(rng.uniform(0, 15), 1), round(rng.uniform(0, 15), 1)]
    crowd = n % 3 == 0
    box_ious.append({"dt": d, "gt": g, "crowd": int(crowd),
                     "iou": float(mu.iou(np.array([d]), np.array([g]), [int(crowd)])[0][0])})

data = os.path.join(os.path.dirname(root), "shared", "data", "coco-val2014-100")
per_category = {}
for kind, res in [("bbox", "instances_val2014_fakebbox100_results.json"), ("segm", "instances_val2014_fakesegm100_results.json")]:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(os.path.join(data, "instances_val2014_100.json"))
        dt = gt.loadRes(os.path.join(data, res))
        ev = COCOeval(gt, dt, kind)
        ev.evaluate(); ev.accumulate(); ev.summarize()
    pr = ev.eval["precision"]
    out = {}
    for k, cid in enumerate(ev.params.catIds):
        s = pr[:, :, k, 0, -1]
        out[str(cid)] = float(np.mean(s[s > -1])) if (s > -1).any() else -1.0
    per_category[kind] = out

# Box results evaluated as masks: the results' box polygons are rasterised (loadRes bbox branch).
with contextlib.redirect_stdout(io.StringIO()):
    gt = COCO(os.path.join(data, "instances_val2014_100.json"))
    dt = gt.loadRes(os.path.join(data, "instances_val2014_fakebbox100_results.json"))
    ev = COCOeval(gt, dt, "segm")
    ev.evaluate(); ev.accumulate(); ev.summarize()
bbox_results_as_segm = [float(v) for v in ev.stats]

fixture = {"generator": "tools/coco_mask_fixtures.py, pycocotools %s, numpy %s" % (getattr(pycocotools, "__version__", "2.0.11"), np.__version__),
           "polygons": polygons, "boxes": boxes, "masks": masks, "pairs": pairs, "box_ious": box_ious,
           "per_category_ap": per_category, "bbox_results_as_segm_stats": bbox_results_as_segm}
path = os.path.join(root, "Tests", "COCOTests", "Fixtures", "mask_vectors.json")
with open(path, "w") as f:
    json.dump(fixture, f, indent=0)
print("wrote", path)
