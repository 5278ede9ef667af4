#!/usr/bin/env python3
"""VNL's depth losses in float64 PyTorch, written from ../shared/specs/evaluation.md §4 and
depth.md §3 (VNL @10dd987: lib/models/{WCEL_loss,VNL_loss,image_transfer}.py), and the fixture
Tests/DepthDataTests/Fixtures/depth_losses.h5 they produce.

  python3 tools/pytorch/depth_twin.py make [OUT.h5]

The fixture holds the inputs (logits [N,150,H,W], raw ground truth [N,1,H,W] in normalised depth
with a padded band (−1) and a zero, the triplets [n,3]) and what the twin computes from them: bins,
the clamped ground truth, the predicted depth, the kept-triplet mask, loss_wce, loss_vnl and
grad_logits = d(WCE + 6·VNL)/d logits by autograd. As in VNL, the triplet filter is evaluated in
float32; everything else here is float64.
"""
import math
import sys

import h5py
import numpy as np
import torch

torch.set_default_dtype(torch.float64)
C, D_MIN, D_MAX = 150, 0.01, 1.7
INTERVAL = (np.log10(D_MAX) - np.log10(D_MIN)) / C
# VNL keeps the bin centres as a float32 tensor (image_transfer.py bins_to_depth).
CENTRES = (np.log10(D_MIN) + INTERVAL * (np.arange(C) + 0.5)).astype(np.float32).astype(np.float64)


def depth_to_bins(depth):
    """(bins, clamped) as VNL: padding (< 0) → bin C+1 and −1; else clamp, truncate, fold C."""
    d = depth.astype(np.float32)
    invalid = d < 0
    clamped = np.clip(d, np.float32(D_MIN), np.float32(D_MAX))
    bins = ((np.log10(clamped) - np.float32(np.log10(D_MIN))) / np.float32(INTERVAL)).astype(np.int32)
    bins[bins == C] = C - 1
    bins[invalid] = C + 1
    clamped[invalid] = -1
    return bins, clamped


def wce(logits, bins, clamped, coef=0.2):
    j = np.arange(C)
    w = np.exp(-coef * (j[None, :] - j[:, None]) ** 2)
    w = w / w.sum(axis=1, keepdims=True)
    weight = np.zeros(bins.shape[:1] + (C,) + bins.shape[2:])
    for n in range(bins.shape[0]):
        b = bins[n, 0]
        valid = b < C
        weight[n][:, valid] = w[b[valid]].T
    valid_pixels = (clamped > 0).sum()
    return -(torch.log_softmax(logits, 1) * torch.from_numpy(weight)).sum() / valid_pixels


def bins_to_depth(logits):
    return 10 ** (torch.softmax(logits, 1) * torch.from_numpy(CENTRES)[None, :, None, None]).sum(1, keepdim=True)


FOCAL = 10.0  # small images: VNL's 519 px would make every triplet 'near'


def points(z, idx, h, w, f=FOCAL, dtype=np.float64):
    u = (idx % w).astype(dtype) - dtype(w // 2)
    v = (idx // w).astype(dtype) - dtype(h // 2)
    if isinstance(z, torch.Tensor):
        uu, vv = torch.from_numpy(u.astype(np.float64)), torch.from_numpy(v.astype(np.float64))
        return torch.stack([uu * z.abs() / f, vv * z.abs() / f, z], -1)
    return np.stack([u * np.abs(z) / dtype(f), v * np.abs(z) / dtype(f), z], -1)


def keep_mask(gt_flat, triplets, h, w, cos_t=0.867, near_t=0.005, min_z=1e-4):
    """VNL's filter on the ground truth, in float32."""
    f32 = np.float32
    p = [points(gt_flat[triplets[:, k]].astype(f32), triplets[:, k], h, w, dtype=f32) for k in range(3)]
    e = np.stack([p[1] - p[0], p[2] - p[0], p[2] - p[1]], 1)          # [n, 3 edges, xyz]
    norms = np.linalg.norm(e, axis=2).astype(f32)
    cos = np.einsum("nij,nkj->nik", e, e) / (norms[:, :, None] * norms[:, None, :] + f32(1e-8))
    colinear = (np.abs(cos) > f32(cos_t)).sum(axis=(1, 2)) > 3
    near = (np.abs(e[:, :, 0]) < near_t).any(1) & (np.abs(e[:, :, 1]) < near_t).any(1) & (np.abs(e[:, :, 2]) < near_t).any(1)
    z_ok = (gt_flat[triplets] > min_z).all(1)
    return z_ok & ~near & ~colinear


def unit_normals(p):
    n = torch.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0], dim=1)
    norm = n.norm(dim=1, keepdim=True)
    return n / torch.where(norm == 0, torch.full_like(norm, 0.01), norm)


def vnl(pred, clamped, triplets, trim=0.25):
    n_img, _, h, w = pred.shape
    losses, kept = [], []
    for i in range(n_img):
        g = clamped[i, 0].reshape(-1)
        keep = keep_mask(g, triplets, h, w)
        kept.append(keep)
        t = triplets[keep]
        pg = torch.stack([points(torch.from_numpy(g[t[:, k]].astype(np.float64)), t[:, k], h, w) for k in range(3)], 1)
        pp = torch.stack([points(pred[i, 0].reshape(-1)[torch.from_numpy(t[:, k])], t[:, k], h, w) for k in range(3)], 1)
        losses.append((unit_normals(pg) - unit_normals(pp)).abs().sum(1))
    all_losses = torch.cat(losses)
    ordered, _ = torch.sort(all_losses)
    return ordered[int(all_losses.numel() * trim):].mean(), np.stack(kept)


def make(out):
    rng = np.random.default_rng(3)
    n, h, w = 2, 12, 16
    logits = rng.normal(0, 2, size=(n, C, h, w))
    # Ground truth: two tilted planes (so the virtual normals mean something), a padded band
    # (−1) on image 1, and a zero depth (clamped to d_min) on image 0.
    yy, xx = np.mgrid[0:h, 0:w]
    gt = np.stack([0.3 + 0.01 * xx + 0.005 * yy, 0.6 - 0.008 * xx + 0.012 * yy])[:, None].astype(np.float32)
    gt[1, 0, :3, :] = -1
    gt[0, 0, 4, 7] = 0
    triplets = rng.integers(0, h * w, size=(200, 3))
    bins, clamped = depth_to_bins(gt)
    z = torch.from_numpy(logits).requires_grad_(True)
    loss_w = wce(z, bins, clamped)
    pred = bins_to_depth(z)
    loss_v, kept = vnl(pred, clamped, triplets)
    (loss_w + 6 * loss_v).backward()
    with h5py.File(out, "w") as f:
        f["logits"] = logits.astype(np.float32)
        f["gt"] = gt
        f["triplets"] = triplets.astype(np.int64)
        f["bins"] = bins.astype(np.int64)
        f["clamped"] = clamped
        f["pred_depth"] = pred.detach().numpy().astype(np.float32)
        f["kept"] = kept.astype(np.int64)
        f["grad_logits"] = z.grad.numpy().astype(np.float32)
        f.attrs["loss_wce"] = loss_w.item()
        f.attrs["loss_vnl"] = loss_v.item()
        f.attrs["focal_length"] = FOCAL
    print(f"wrote {out}: wce {loss_w.item():.6f}, vnl {loss_v.item():.6f}, kept {kept.sum(1).tolist()} of {len(triplets)}")


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] != "make":
        sys.exit(__doc__)
    make(sys.argv[2] if len(sys.argv) > 2 else "Tests/DepthDataTests/Fixtures/depth_losses.h5")
