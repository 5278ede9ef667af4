#!/usr/bin/env python3
"""Writes the NYU-format and depth-metric fixtures of Tests/DepthDataTests (run once, commit).

Needs NumPy, SciPy and h5py (no PyTorch). The tests read everything with no Python.

  nyu_tiny.mat           MATLAB v7.3 as the official nyu_depth_v2_labeled.mat is laid out: HDF5 with
                         a 512-byte MATLAB header as user block; images (N,3,W,H) uint8, depths and
                         rawDepths (N,W,H) float32 (h5py shapes, MATLAB's reversed), one image per
                         chunk, gzip 4, MATLAB_class attributes. N=3, H=6, W=8.
  nyu_tiny.json          the same samples row-major (rgb[y][x][c], depth[y][x]) for the comparison
  splits.mat             scipy.io.savemat(do_compression=True, oned_as='column'): trainNdxs [1, 2],
                         testNdxs [3] (float64, 1-based)
  splits_plain.mat       the same without compression
  splits_out_of_range.mat  testNdxs [4] for a 3-image file
  nyu_missing_depths.mat a v7.3 file without `depths`
  nyu_nan_depth.mat      a NaN depth in image 1 at row 2, column 5
  depth_pred/, depth_gt/ 16-bit PNG pairs (3 images, 20x24) with invalid ground truth (0), exact
                         1.25 ties in both directions, and ratios just inside and outside 1.25^k
  depth_expected.json    VNL's evaluate_err on those PNGs (NumPy, float64; δ by exact integer
                         comparison, see below) with crop (2,18,3,21) and without a crop
  depth_bad/             an 8-bit PNG and a 20x23 PNG for the error tests
"""
import json
import os
import struct
import sys
import zlib

import h5py
import numpy as np
import scipy.io

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../Tests/DepthDataTests/Fixtures")
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(7)


def path(*names):
    return os.path.join(OUT, *names)


def matlab_v73(name, datasets):
    """An HDF5 file with MATLAB's 512-byte v7.3 header in the user block."""
    with h5py.File(path(name), "w", userblock_size=512) as f:
        for key, (array, cls) in datasets.items():
            d = f.create_dataset(key, data=array, chunks=(1,) + array.shape[1:], compression="gzip", compression_opts=4)
            d.attrs["MATLAB_class"] = np.bytes_(cls)
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Wed Dec  2 00:00:00 2026 HDF5 schema 1.00 ."
    header = text.ljust(116, b" ") + b"\0" * 8 + b"\x00\x02" + b"IM"
    with open(path(name), "r+b") as f:
        f.write(header.ljust(512, b"\0"))


N, H, W = 3, 6, 8
rgb = rng.integers(0, 256, size=(N, H, W, 3), dtype=np.uint8)
depth = rng.uniform(0.5, 9.5, size=(N, H, W)).astype(np.float32)
raw = depth.copy()
raw[:, 0, :] = 0
images = np.ascontiguousarray(rgb.transpose(0, 3, 2, 1))          # (N, 3, W, H): images[i,c,x,y] = rgb[i,y,x,c]
depths_cm = np.ascontiguousarray(depth.transpose(0, 2, 1))         # (N, W, H)
matlab_v73("nyu_tiny.mat", {"images": (images, "uint8"), "depths": (depths_cm, "single"),
                            "rawDepths": (np.ascontiguousarray(raw.transpose(0, 2, 1)), "single")})
with open(path("nyu_tiny.json"), "w") as f:
    json.dump({"rgb": rgb.tolist(), "depth": depth.astype(float).tolist(), "rawDepth": raw.astype(float).tolist()}, f)
matlab_v73("nyu_missing_depths.mat", {"images": (images, "uint8")})
bad = depths_cm.copy()
bad[1, 5, 2] = np.nan                                              # image 1, column 5, row 2
matlab_v73("nyu_nan_depth.mat", {"images": (images, "uint8"), "depths": (bad, "single")})

scipy.io.savemat(path("splits.mat"), {"trainNdxs": np.array([1.0, 2.0]), "testNdxs": np.array([3.0])},
                 do_compression=True, oned_as="column")
scipy.io.savemat(path("splits_plain.mat"), {"trainNdxs": np.array([1.0, 2.0]), "testNdxs": np.array([3.0])},
                 do_compression=False, oned_as="column")
scipy.io.savemat(path("splits_out_of_range.mat"), {"trainNdxs": np.array([1.0, 2.0]), "testNdxs": np.array([4.0])},
                 do_compression=True, oned_as="column")
assert scipy.io.loadmat(path("splits.mat"))["trainNdxs"].ravel().tolist() == [1.0, 2.0]


def png16(file, a):
    """A grey PNG of uint16 `a` (8-bit when a.dtype is uint8), written with zlib only."""
    h, w = a.shape
    depth_bits = 16 if a.dtype == np.uint16 else 8
    rows = a.astype(">u2").tobytes() if depth_bits == 16 else a.tobytes()
    stride = w * depth_bits // 8
    raw_rows = b"".join(b"\0" + rows[y * stride:(y + 1) * stride] for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    with open(file, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth_bits, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw_rows)) + chunk(b"IEND", b""))


os.makedirs(path("depth_pred"), exist_ok=True)
os.makedirs(path("depth_gt"), exist_ok=True)
os.makedirs(path("depth_bad"), exist_ok=True)
preds, gts = [], []
for i in range(3):
    g = rng.integers(500, 9000, size=(20, 24)).astype(np.int64)
    p = (g * rng.uniform(0.6, 1.6, size=g.shape)).astype(np.int64).clip(1, 65535)
    g[rng.uniform(size=g.shape) < 0.1] = 0                          # invalid ground truth
    if i == 0:
        g[5, 5], p[5, 5] = 1000, 1250                               # exact tie at 1.25, p > g
        g[5, 6], p[5, 6] = 1250, 1000                               # exact tie at 1.25, g > p
        g[6, 5], p[6, 5] = 1000, 1249                               # just inside
        g[6, 6], p[6, 6] = 1000, 1251                               # just outside
        g[7, 5], p[7, 5] = 1600, 1000                               # exact tie at 1.25²
        g[7, 6], p[7, 6] = 1000, 1953                               # just inside 1.25³ (1.953125)
        g[0, 0], p[0, 0] = 0, 0                                     # invalid GT, zero prediction: ignored
    png16(path("depth_pred", f"{i:04d}.png"), p.astype(np.uint16))
    png16(path("depth_gt", f"{i:04d}.png"), g.astype(np.uint16))
    preds.append(p)
    gts.append(g)
png16(path("depth_bad", "eight_bit.png"), (gts[0] // 64).clip(0, 255).astype(np.uint8))
png16(path("depth_bad", "narrow.png"), gts[0][:, :23].astype(np.uint16))


def evaluate_err(pred_int, gt_int, crop, scale=1000.0):
    """VNL's lib/utils/evaluate_depth_error.py evaluate_err, pooled sums, in metres.

    δ is decided on the integers (max·4 < min·5 …): a ratio of exactly 1.25 never counts, the rule
    stated for PNG evaluation (VNL's float path can round such ties either way)."""
    sums = dict(n=0, abs_rel=0.0, sq_rel=0.0, sq=0.0, sq_log=0.0, log10=0.0, d1=0, d2=0, d3=0, d=0.0, d2s=0.0)
    for p, g in zip(pred_int, gt_int):
        if crop is not None:
            r0, r1, c0, c1 = crop
            p, g = p[r0:r1, c0:c1], g[r0:r1, c0:c1]
        m = g > 0
        pi, gi = p[m], g[m]
        pm, gm = pi / scale, gi / scale
        sums["n"] += int(m.sum())
        sums["abs_rel"] += float(np.sum(np.abs(gm - pm) / gm))
        sums["sq_rel"] += float(np.sum((gm - pm) ** 2 / gm ** 2))
        sums["sq"] += float(np.sum((gm - pm) ** 2))
        sums["sq_log"] += float(np.sum((np.log(gm) - np.log(pm)) ** 2))
        sums["log10"] += float(np.sum(np.abs(np.log10(gm) - np.log10(pm))))
        hi, lo = np.maximum(gi, pi), np.minimum(gi, pi)
        sums["d1"] += int(np.sum(hi * 4 < lo * 5))
        sums["d2"] += int(np.sum(hi * 16 < lo * 25))
        sums["d3"] += int(np.sum(hi * 64 < lo * 125))
        d = np.log(pm) - np.log(gm)
        sums["d"] += float(d.sum())
        sums["d2s"] += float((d ** 2).sum())
    n = sums["n"]
    return {"pixels": n, "abs_rel": sums["abs_rel"] / n, "sq_rel": sums["sq_rel"] / n, "rms": (sums["sq"] / n) ** 0.5,
            "rms_log": (sums["sq_log"] / n) ** 0.5, "log10": sums["log10"] / n, "delta1": sums["d1"] / n,
            "delta2": sums["d2"] / n, "delta3": sums["d3"] / n,
            "silog": (sums["d2s"] / n - (sums["d"] / n) ** 2) ** 0.5}


# Sanity: the tie pixels are where they should be (exactly at 1.25, not counted).
assert max(1250 / 1000, 1000 / 1250) == 1.25
with open(path("depth_expected.json"), "w") as f:
    json.dump({"crop_2_18_3_21": evaluate_err(preds, gts, (2, 18, 3, 21)), "no_crop": evaluate_err(preds, gts, None)}, f, indent=1)
print("wrote", sorted(os.listdir(OUT)))
