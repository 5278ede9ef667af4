#!/usr/bin/env python3
"""VNL's depth losses in float64 PyTorch, written from ../shared/specs/evaluation.md §4 and
depth.md §3 (VNL @10dd987: lib/models/{WCEL_loss,VNL_loss,image_transfer}.py), and the fixture
Tests/DepthDataTests/Fixtures/depth_losses.h5 they produce.

  python3 tools/pytorch/depth_twin.py make [OUT.h5]
  python3 tools/pytorch/depth_twin.py model [OUT.h5]
  python3 tools/pytorch/depth_twin.py check DUMP.h5

`check` reads a `percep-dist train-depth --dump-step` file (logits, clamped gt, triplets, focal
length, weights), recomputes WCE, the virtual-normal loss and d(WCE + w·VNL)/d logits here, and
prints the relative differences (losses ≤ 1e-5, gradient ≤ 1e-4 relative L2 pass).

`model` builds VNL's network (depth.md §1, with VNL's state-dict names) at narrow widths, in
float64 with random weights, and stores its state dict, a batch of 2 images, the logits (BatchNorm
in training mode), and the gradients of sum(logits · R) for a fixed random R with respect to the
input and every parameter: Tests/DepthDataTests/Fixtures/vnl_model.h5.

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


def points(z, idx, h, w, f=None, dtype=np.float64):
    f = FOCAL if f is None else f
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


def vnl(pred, clamped, triplets, trim=0.25, used=None):
    """The trimmed mean; with `used` ([N, n] booleans, a dump's vnl_used) the mean runs over those
    triplets instead of the twin's own trim (near-equal losses can cross the cut between float32
    and float64, which moves whole triplets in or out of the gradient)."""
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
    if used is not None:
        mask = torch.from_numpy(np.concatenate([used[i][kept[i]] for i in range(n_img)]))
        return all_losses[mask].mean(), np.stack(kept)
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


# ---- the network (depth.md §1) ----
import torch.nn as nn
import torch.nn.functional as F


class FTB(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=2, dilation=2, bias=True)
        self.bn1 = nn.BatchNorm2d(cout, momentum=0.5)
        self.conv3 = nn.Conv2d(cout, cout, 3, padding=2, dilation=2, bias=False)

    def forward(self, x):
        r = self.conv1(x)
        return F.relu(r + self.conv3(F.relu(self.bn1(self.conv2(r)))))


class AFA(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(2 * c, max(1, c // 8), 1, bias=False)
        self.conv2 = nn.Conv2d(max(1, c // 8), c, 1, bias=False)

    def forward(self, lateral, top):
        w = torch.sigmoid(self.conv2(F.relu(self.conv1(F.adaptive_avg_pool2d(torch.cat([lateral, top], 1), 1)))))
        return w * lateral + top


class Fcn(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.afa_block = AFA(cin)
        self.ftb_block = FTB(cin, cout)

    def forward(self, lateral, top):
        if top.shape != lateral.shape:
            top = F.interpolate(top, size=lateral.shape[2:], mode="bilinear", align_corners=True)
        return self.ftb_block(self.afa_block(lateral, top))


class ASPP(nn.Module):
    def __init__(self, cin, c, dilations=(2, 4, 6)):
        super().__init__()
        self.aspp_conv1x1 = nn.Conv2d(cin, c, 1, bias=False)
        self.aspp_bn1x1 = nn.BatchNorm2d(c, momentum=0.5)
        for k, d in enumerate(dilations):
            setattr(self, f"aspp_conv3_{k + 1}", nn.Conv2d(cin, c, 3, padding=d, dilation=d, bias=False))
            setattr(self, f"aspp_bn3_{k + 1}", nn.BatchNorm2d(c, momentum=0.5))
        self.globalpool_conv1x1 = nn.Conv2d(cin, c, 1, bias=False)
        self.globalpool_bn = nn.BatchNorm2d(c, momentum=0.5)

    def forward(self, x):
        g = self.globalpool_bn(self.globalpool_conv1x1(F.adaptive_avg_pool2d(x, 1)))
        g = F.interpolate(g, size=x.shape[2:], mode="bilinear", align_corners=True)
        parts = [self.aspp_bn1x1(self.aspp_conv1x1(x))]
        parts += [getattr(self, f"aspp_bn3_{k}")(getattr(self, f"aspp_conv3_{k}")(x)) for k in (1, 2, 3)]
        return torch.cat(parts + [g], 1)


class Shortcut(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return self.bn(self.conv(x))


class Bottleneck(nn.Module):
    def __init__(self, cin, planes, stride, dilation, shortcut):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        if shortcut:
            self.shortcut = Shortcut(cin, planes * 4, stride)

    def forward(self, x):
        y = self.bn3(self.conv3(F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))))
        return F.relu(y + (self.shortcut(x) if hasattr(self, "shortcut") else x))


class Res1(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(3, c, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(c)

    def forward(self, x):
        return F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)


class Body(nn.Module):
    def __init__(self, base, blocks):
        super().__init__()
        self.res1 = Res1(base)
        cin = base
        for k, n in enumerate(blocks):
            planes, stride, dilation = base << k, (2 if k in (1, 2) else 1), (2 if k == 3 else 1)
            layers = []
            for b in range(n):
                layers.append(Bottleneck(cin, planes, stride if b == 0 else 1, dilation, b == 0))
                cin = planes * 4
            setattr(self, f"res{k + 2}", nn.Sequential(*layers))

    def forward(self, x):
        y = self.res1(x)
        outs = []
        for k in range(2, 6):
            y = getattr(self, f"res{k}")(y)
            outs.append(y)
        return outs


class Holder(nn.Module):
    def __init__(self, **children):
        super().__init__()
        for k, v in children.items():
            setattr(self, k, v)


class VNLNet(nn.Module):
    def __init__(self, base=64, blocks=(3, 4, 6, 3), lateral=(512, 256, 256, 256), aspp=512,
                 fcn_in=(512, 256, 256, 256, 256, 256), fcn_out=(256, 256, 256, 256, 256), bins=150):
        super().__init__()
        outs = [(base << k) * 4 for k in range(4)]
        encoder = Holder(bottomup=Body(base, blocks),
                         topdown_lateral_modules=nn.ModuleList([Holder(lateral=FTB(outs[3 - i], lateral[i])) for i in range(4)]),
                         bottomup_top=ASPP(outs[3], aspp))
        decoder = Holder(top=nn.Sequential(nn.Conv2d(5 * aspp, fcn_in[0], 1, bias=False), nn.BatchNorm2d(fcn_in[0], eps=0.5)),
                         **{f"topdown_fcn{i + 1}": Fcn(fcn_in[i], fcn_out[i]) for i in range(4)},
                         topdown_fcn5=Holder(ftb=FTB(fcn_in[4], fcn_out[4])),
                         topdown_predict=Holder(conv1=nn.Conv2d(fcn_out[4], bins, 3, padding=2, dilation=2, bias=True)))
        self.depth_model = Holder(encoder_modules=encoder, decoder_modules=decoder)

    def forward(self, x):
        e, d = self.depth_model.encoder_modules, self.depth_model.decoder_modules
        h, w = x.shape[2:]
        res = e.bottomup(x)
        lat = [e.topdown_lateral_modules[i].lateral(res[3 - i]) for i in range(4)]
        y = d.top(e.bottomup_top(res[3]))
        for i in range(4):
            y = getattr(d, f"topdown_fcn{i + 1}")(lat[i], y)
        y = F.interpolate(y, size=((h + 1) // 2, (w + 1) // 2), mode="bilinear", align_corners=True)
        y = d.topdown_fcn5.ftb(y)
        y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=True)
        return d.topdown_predict.conv1(y)


NARROW = dict(base=4, blocks=(2, 1, 1, 2), lateral=(16, 8, 8, 8), aspp=8, fcn_in=(16, 8, 8, 8, 8, 8), fcn_out=(8, 8, 8, 8, 8), bins=40)


def model(out):
    torch.manual_seed(0)
    net = VNLNet(**NARROW).train()
    with torch.no_grad():  # BN affine parameters away from 1/0 so that they matter
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    x = torch.randn(2, 3, 21, 23, requires_grad=True)
    logits = net(x)
    r = torch.randn_like(logits)
    (logits * r).sum().backward()
    with h5py.File(out, "w") as f:
        for k, v in net.state_dict().items():
            f["state/" + k] = v.detach().numpy().astype(np.float32 if v.is_floating_point() else np.int64)
        for k, p in net.named_parameters():
            f["grad/" + k] = p.grad.numpy().astype(np.float32)
        f["input"] = x.detach().numpy().astype(np.float32)
        f["input_grad"] = x.grad.numpy().astype(np.float32)
        f["logits"] = logits.detach().numpy().astype(np.float32)
        f["r"] = r.numpy().astype(np.float32)
    full = VNLNet()
    print(f"wrote {out}: logits {tuple(logits.shape)}; full-width trainable parameters {sum(p.numel() for p in full.parameters())}")


def check(dump):
    global FOCAL
    with h5py.File(dump, "r") as f:
        logits = f["logits"][:].astype(np.float64)
        gt = f["gt"][:]
        triplets = f["triplets"][:].astype(np.int64)
        keep_ours = f["vnl_keep"][:].astype(bool)
        used_ours = f["vnl_used"][:].astype(bool)
        grad_ours = f["grad_logits"][:].astype(np.float64)
        attrs = dict(f.attrs)
    FOCAL = float(attrs["focal_length"])
    bins, clamped = depth_to_bins(gt)
    z = torch.from_numpy(logits).requires_grad_(True)
    loss_w = wce(z, bins, clamped, coef=float(attrs["wce_coef"]))
    loss_v, keep = vnl(bins_to_depth(z), clamped, triplets)
    # The gradient with the dump's own trim: near-equal triplet losses may sit on either side of
    # the 25 % cut in float32 and float64; the loss value is the same either way.
    loss_same, _ = vnl(bins_to_depth(z), clamped, triplets, used=used_ours)
    (float(attrs["wce_weight"]) * loss_w + float(attrs["vnl_weight"]) * loss_same).backward()
    g = z.grad.numpy()
    rel = lambda a, b: abs(a - b) / abs(b)
    res = {"loss_wce": rel(float(attrs["loss_wce"]), loss_w.item()), "loss_vnl": rel(float(attrs["loss_vnl"]), loss_v.item()),
           "grad_logits": float(np.linalg.norm(grad_ours - g) / np.linalg.norm(g)),
           "vnl_keep_mismatches": int((keep != keep_ours).sum()), "trim_vs_own": rel(loss_same.item(), loss_v.item())}
    ok = res["loss_wce"] <= 1e-5 and res["loss_vnl"] <= 1e-5 and res["grad_logits"] <= 1e-4
    print(("PASS " if ok else "FAIL ") + "  ".join(f"{k} {v:.3g}" for k, v in res.items()))
    return ok


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("make", "model", "check"):
        sys.exit(__doc__)
    if sys.argv[1] == "check":
        sys.exit(0 if check(sys.argv[2]) else 1)
    if sys.argv[1] == "make":
        make(sys.argv[2] if len(sys.argv) > 2 else "Tests/DepthDataTests/Fixtures/depth_losses.h5")
    else:
        model(sys.argv[2] if len(sys.argv) > 2 else "Tests/DepthDataTests/Fixtures/vnl_model.h5")
