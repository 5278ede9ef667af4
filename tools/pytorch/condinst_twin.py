#!/usr/bin/env python3
"""A float64 PyTorch twin of AdelaiDet's CondInst (R-50-FPN) training maths and inference pieces.

It re-implements, from /work/shared/specs/condinst.md and AdelaiDet's code (read, not imported:
AdelaiDet needs detectron2 and CUDA builds), everything percep-dist's `train-inst` computes in one
training step, so the Swift engine can be checked against it without PyTorch in CI:

  backbone   ResNet (bottleneck, STRIDE_IN_1X1, FrozenBN everywhere, FREEZE_AT) + FPN P3-P7
             (P6 = conv(P5), P7 = conv(ReLU(P6)), nearest top-down, sum fuse)
  FCOS head  shared over levels; GN towers; ReLU(Scale_l * bbox_pred) in stride units; ctrness and
             the controller (dynamic-head parameters) on the box tower
  mask       mask branch (refine P3-P5 conv-BN-ReLU, aligned_bilinear merge, tower, 1x1) with
             BatchNorm batch statistics per group of `ims_per_group` images (ghost batches); the
             dynamic mask head (relative coordinates first, then the features; aligned x2 to
             stride 4)
  targets    FCOS targets with center sampling around the mask centre of mass, inclusive size
             ranges, smallest-box-area ambiguity rule and AdelaiDet's first-centre-x == 0 quirk
  losses     sigmoid focal / N_pos, GIoU(+1) weighted by centerness / sum ctr, ctrness BCE / N_pos
             (N_pos and sum ctr over the whole batch), dice per instance (mean per group, then mean
             over groups) and, optionally, the generic perceptual loss on the stride-4 masks
  inference  aligned_bilinear, class-aware NMS (torchvision's batched_nms on float32 boxes) and
             the mask/box postprocess

Library: build_model / load_state_strict / training_losses / compute_targets / ... (see below).

CLI (run from anywhere; needs torch, numpy and h5py):
  python3 tools/pytorch/condinst_twin.py check DUMP.h5
      recompute losses and gradients from the dump's /model and /input; print each loss's relative
      error and the worst per-parameter relative-norm gradient error; exit 1 if a loss is off by
      more than 1e-4 (relative) or a gradient by more than 1e-3 (relative norm)
  python3 tools/pytorch/condinst_twin.py expect DUMP.h5 --out FILE.h5
      write a copy of the dump whose losses and /grad come from the twin
  python3 tools/pytorch/condinst_twin.py selftest
      gradcheck the small pieces in float64 (aligned_bilinear, dynamic head, losses)

Dump layout: see tools/pytorch/README_condinst.md.
"""
import argparse
import math
import shutil
import sys
from dataclasses import dataclass, field, fields

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DTYPE = torch.float64
FPN_STRIDES = (8, 16, 32, 64, 128)
# SIZES_OF_INTEREST [64, 128, 256, 512] -> per-level [lo, hi], both bounds inclusive.
SIZE_RANGES = ((-1.0, 64.0), (64.0, 128.0), (128.0, 256.0), (256.0, 512.0), (512.0, 1e8))
INF = 1e8                      # AdelaiDet's INF = 100000000
POS_RADIUS = 1.5
FOCAL_ALPHA, FOCAL_GAMMA = 0.25, 2.0
PRIOR_PROB = 0.01
MASK_OUT_STRIDE = 4
MASK_FEAT_STRIDE = 8           # the mask branch works on P3
DICE_EPS = 1e-5
BN_EPS = 1e-5
GN_EPS = 1e-5
NMS_THRESH = 0.6
RESNET_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
LOSS_NAMES = ("loss_fcos_cls", "loss_fcos_loc", "loss_fcos_ctr", "loss_mask")


# ---------------------------------------------------------------------------------------------
# Configuration (the dump's root attributes)
# ---------------------------------------------------------------------------------------------

@dataclass
class Config:
    num_classes: int = 80
    resnet_depth: int = 50
    resnet_width_per_group: int = 64
    fpn_channels: int = 256
    fcos_num_convs: int = 4
    gn_groups: int = 32
    mask_branch_channels: int = 128
    mask_branch_num_convs: int = 4
    mask_branch_out_channels: int = 8
    mask_head_channels: int = 8
    mask_head_layers: int = 3
    freeze_at: int = 2
    ims_per_group: int = 2

    @classmethod
    def from_attrs(cls, attrs):
        kw = {}
        for f in fields(cls):
            if f.name not in attrs:
                raise KeyError(f"root attribute `{f.name}` is missing")
            kw[f.name] = int(np.asarray(attrs[f.name]).reshape(()))
        return cls(**kw)

    def to_attrs(self):
        return {f.name: np.int64(getattr(self, f.name)) for f in fields(self)}


@dataclass
class LossNetConfig:
    structure: list
    widths: list
    kernel_size: int = 3
    level_weights: list = field(default_factory=list)
    lam: float = 0.1

    @classmethod
    def from_attrs(cls, attrs):
        return cls(structure=[int(v) for v in np.atleast_1d(attrs["lossnet_structure"])],
                   widths=[int(v) for v in np.atleast_1d(attrs["lossnet_widths"])],
                   kernel_size=int(np.asarray(attrs["lossnet_kernel_size"]).reshape(())),
                   level_weights=[float(v) for v in np.atleast_1d(attrs["lossnet_level_weights"])],
                   lam=float(np.asarray(attrs["lossnet_lambda"]).reshape(())))

    def to_attrs(self):
        return {"lossnet_structure": np.asarray(self.structure, np.int64),
                "lossnet_widths": np.asarray(self.widths, np.int64),
                "lossnet_kernel_size": np.int64(self.kernel_size),
                "lossnet_level_weights": np.asarray(self.level_weights, np.float64),
                "lossnet_lambda": np.float64(self.lam)}


# ---------------------------------------------------------------------------------------------
# Small functional pieces
# ---------------------------------------------------------------------------------------------

def aligned_bilinear(x, factor):
    """AdelaiDet's aligned upsampling: output index k reads input coordinate (k - f//2)/f, clamped."""
    assert x.dim() == 4 and factor >= 1 and int(factor) == factor
    factor = int(factor)
    if factor == 1:
        return x
    h, w = x.shape[2:]
    x = F.pad(x, (0, 1, 0, 1), mode="replicate")
    x = F.interpolate(x, size=(factor * h + 1, factor * w + 1), mode="bilinear", align_corners=True)
    x = F.pad(x, (factor // 2, 0, factor // 2, 0), mode="replicate")
    return x[:, :, :factor * h, :factor * w]


def compute_locations(h, w, stride, dtype=DTYPE):
    """[h*w, 2] (x, y) = (j*s + s//2, i*s + s//2), row-major."""
    xs = torch.arange(w, dtype=dtype) * stride + stride // 2
    ys = torch.arange(h, dtype=dtype) * stride + stride // 2
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


def conv_out(n):
    """Spatial size after a 3x3, stride-2, pad-1 convolution."""
    return (n + 2 - 3) // 2 + 1


def level_shapes(height, width):
    """(h, w) of P3-P7 for a padded input of height x width (multiples of 32)."""
    assert height % 32 == 0 and width % 32 == 0, "the padded input must be a multiple of 32"
    p3, p4, p5 = (height // 8, width // 8), (height // 16, width // 16), (height // 32, width // 32)
    p6 = (conv_out(p5[0]), conv_out(p5[1]))
    p7 = (conv_out(p6[0]), conv_out(p6[1]))
    return [p3, p4, p5, p6, p7]


def mask_centroids(bitmasks):
    """Centre of mass (x, y) of each full-resolution bitmask [K, H, W]; m00 clamped to >= 1e-6."""
    k, h, w = bitmasks.shape
    bm = bitmasks.to(DTYPE)
    xs = torch.arange(w, dtype=DTYPE)
    ys = torch.arange(h, dtype=DTYPE)
    m00 = bm.sum(dim=(1, 2)).clamp(min=1e-6)
    m10 = (bm * xs).sum(dim=(1, 2))
    m01 = (bm * ys[:, None]).sum(dim=(1, 2))
    return torch.stack([m10 / m00, m01 / m00], dim=1)


def box_centers(boxes):
    return torch.stack([(boxes[:, 0] + boxes[:, 2]) * 0.5, (boxes[:, 1] + boxes[:, 3]) * 0.5], dim=1)


def sigmoid_focal_loss_sum(logits, targets, alpha=FOCAL_ALPHA, gamma=FOCAL_GAMMA):
    """fvcore's sigmoid_focal_loss with reduction="sum" (targets one-hot, 0 rows = background)."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * ((1 - p_t) ** gamma)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return (alpha_t * loss).sum()


def focal_loss_from_labels(logits, labels):
    """Sum of the sigmoid focal loss with labels in 0..C (C = background)."""
    num_classes = logits.shape[1]
    target = torch.zeros_like(logits)
    pos = labels != num_classes
    target[pos.nonzero().squeeze(1), labels[pos]] = 1.0
    return sigmoid_focal_loss_sum(logits, target)


def compute_ious(pred, target):
    """AdelaiDet's compute_ious on (l, t, r, b): IoU with +1 smoothing and GIoU.
    torch.min/torch.max of two tensors: at a tie PyTorch sends half the gradient to each side."""
    pl, pt, pr, pb = pred.unbind(1)
    tl, tt, tr, tb = target.unbind(1)
    target_area = (tl + tr) * (tt + tb)
    pred_area = (pl + pr) * (pt + pb)
    w_int = torch.min(pl, tl) + torch.min(pr, tr)
    h_int = torch.min(pb, tb) + torch.min(pt, tt)
    g_w = torch.max(pl, tl) + torch.max(pr, tr)
    g_h = torch.max(pb, tb) + torch.max(pt, tt)
    ac_union = g_w * g_h
    area_int = w_int * h_int
    area_union = target_area + pred_area - area_int
    ious = (area_int + 1.0) / (area_union + 1.0)
    gious = ious - (ac_union - area_union) / ac_union
    return ious, gious


def giou_loss_sum(pred, target, weight):
    _, gious = compute_ious(pred, target)
    return ((1 - gious) * weight).sum()


def ctrness_targets(reg_targets):
    if len(reg_targets) == 0:
        return reg_targets.new_zeros(0)
    lr = reg_targets[:, [0, 2]]
    tb = reg_targets[:, [1, 3]]
    c = (lr.min(dim=-1)[0] / lr.max(dim=-1)[0]) * (tb.min(dim=-1)[0] / tb.max(dim=-1)[0])
    return torch.sqrt(c)


def dice_loss(scores, gt):
    """1 - 2 sum(P G) / (sum P^2 + sum G^2 + 1e-5) per instance; scores, gt: [n, 1, h, w]."""
    n = scores.shape[0]
    x = scores.reshape(n, -1)
    t = gt.reshape(n, -1)
    inter = (x * t).sum(dim=1)
    union = (x ** 2.0).sum(dim=1) + (t ** 2.0).sum(dim=1) + DICE_EPS
    return 1.0 - 2 * inter / union


def dynamic_param_sizes(in_channels, channels, num_layers):
    """AdelaiDet's weight_nums / bias_nums (relative coordinates on)."""
    weight_nums, bias_nums = [], []
    for l in range(num_layers):
        if l == 0:
            weight_nums.append((in_channels + 2) * channels)
            bias_nums.append(channels)
        elif l == num_layers - 1:
            weight_nums.append(channels * 1)
            bias_nums.append(1)
        else:
            weight_nums.append(channels * channels)
            bias_nums.append(channels)
    return weight_nums, bias_nums


def dynamic_mask_logits(mask_feats, params, im_inds, locations, levels, sizes_of_interest,
                        channels=8, num_layers=3, mask_feat_stride=MASK_FEAT_STRIDE,
                        mask_out_stride=MASK_OUT_STRIDE, trace=None):
    """Dynamic mask head: [n, 1, H*f, W*f] logits (f = mask_feat_stride / mask_out_stride).

    mask_feats [N, C, H, W] at stride `mask_feat_stride`; params [n, P] split as all weights
    (row-major [out][in]) then all biases; input channels [rel_x, rel_y, f0..f{C-1}] with
    rel = (instance location - pixel position) / sizes_of_interest[level]."""
    n = params.shape[0]
    N, C, H, W = mask_feats.shape
    weight_nums, bias_nums = dynamic_param_sizes(C, channels, num_layers)
    assert params.shape[1] == sum(weight_nums) + sum(bias_nums), (params.shape, weight_nums, bias_nums)
    locs = compute_locations(H, W, mask_feat_stride, mask_feats.dtype)              # [HW, 2]
    rel = locations.to(mask_feats.dtype).reshape(-1, 1, 2) - locs.reshape(1, -1, 2)  # [n, HW, 2]
    rel = rel.permute(0, 2, 1)
    soi = sizes_of_interest.to(mask_feats.dtype)[levels.long()]
    rel = rel / soi.reshape(-1, 1, 1)
    x = torch.cat([rel, mask_feats[im_inds.long()].reshape(n, C, H * W)], dim=1)     # [n, C+2, HW]
    splits = list(torch.split(params, weight_nums + bias_nums, dim=1))
    ws, bs = splits[:num_layers], splits[num_layers:]
    for l in range(num_layers):
        out_c = channels if l < num_layers - 1 else 1
        w = ws[l].reshape(n, out_c, -1)
        x = torch.bmm(w, x) + bs[l].reshape(n, out_c, 1)
        if l < num_layers - 1:
            if trace is not None:       # the fixture generator inspects the pre-activations
                trace(l, x)
            x = F.relu(x)
    logits = x.reshape(n, 1, H, W)
    assert mask_feat_stride % mask_out_stride == 0
    return aligned_bilinear(logits, mask_feat_stride // mask_out_stride)


# ---------------------------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------------------------

def compute_targets(boxes, classes, centers, shapes, num_classes, strides=FPN_STRIDES,
                    size_ranges=SIZE_RANGES, radius=POS_RADIUS):
    """FCOS targets of one image over all locations of all levels (level by level, row-major).

    boxes [K, 4] (x1, y1, x2, y2), classes [K], centers [K, 2] (the sampling centres: mask centres
    of mass); shapes: [(h, w)] per level. Returns labels [L] (num_classes = background),
    reg [L, 4] (stride-normalised l, t, r, b to the chosen GT; 0 for background),
    ctr [L] (0 for background), gt_inds [L] (-1 for background), plus per-location
    locations [L, 2], level [L] and stride [L]."""
    locs, lvl, strd, lo, hi = [], [], [], [], []
    for l, (h, w) in enumerate(shapes):
        loc = compute_locations(h, w, strides[l])
        locs.append(loc)
        lvl.append(torch.full((len(loc),), l, dtype=torch.long))
        strd.append(torch.full((len(loc),), float(strides[l]), dtype=DTYPE))
        lo.append(torch.full((len(loc),), size_ranges[l][0], dtype=DTYPE))
        hi.append(torch.full((len(loc),), size_ranges[l][1], dtype=DTYPE))
    locs, lvl, strd, lo, hi = (torch.cat(v) for v in (locs, lvl, strd, lo, hi))
    L = len(locs)
    out = {"locations": locs, "level": lvl, "stride": strd,
           "labels": torch.full((L,), num_classes, dtype=torch.long),
           "reg": torch.zeros(L, 4, dtype=DTYPE), "ctr": torch.zeros(L, dtype=DTYPE),
           "gt_inds": torch.full((L,), -1, dtype=torch.long)}
    boxes = boxes.to(DTYPE)
    K = boxes.shape[0]
    if K == 0:                          # no GT: all background, never reaches center sampling
        return out
    centers = centers.to(DTYPE)
    xs, ys = locs[:, 0:1], locs[:, 1:2]
    l_ = xs - boxes[:, 0][None]
    t_ = ys - boxes[:, 1][None]
    r_ = boxes[:, 2][None] - xs
    b_ = boxes[:, 3][None] - ys
    reg = torch.stack([l_, t_, r_, b_], dim=2)                                         # [L, K, 4]

    if float(centers[0, 0]) == 0.0:     # AdelaiDet's `center_x[..., 0].sum() == 0` quirk
        inside = torch.zeros(L, K, dtype=torch.bool)
    else:
        rad = (strd * radius)[:, None]
        cx, cy = centers[:, 0][None], centers[:, 1][None]
        xmin, ymin, xmax, ymax = cx - rad, cy - rad, cx + rad, cy + rad
        bx1, by1, bx2, by2 = (boxes[:, i][None].expand(L, K) for i in range(4))
        gx1 = torch.where(xmin > bx1, xmin, bx1)
        gy1 = torch.where(ymin > by1, ymin, by1)
        gx2 = torch.where(xmax > bx2, bx2, xmax)
        gy2 = torch.where(ymax > by2, by2, ymax)
        sample = torch.stack([xs - gx1, ys - gy1, gx2 - xs, gy2 - ys], dim=2)
        inside = sample.min(dim=2)[0] > 0

    m = reg.max(dim=2)[0]
    cared = (m >= lo[:, None]) & (m <= hi[:, None])
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    A = area[None].repeat(L, 1)
    A[~inside] = INF
    A[~cared] = INF
    # smallest area wins; first index on ties (torch.min(dim) returns the first minimum)
    min_area = A.min(dim=1)[0]
    idx = torch.from_numpy(np.argmin(A.numpy(), axis=1)).long()
    pos = min_area != INF
    chosen = reg[torch.arange(L), idx] / strd[:, None]
    out["labels"] = torch.where(pos, classes.long()[idx], torch.full_like(idx, num_classes))
    out["reg"] = torch.where(pos[:, None], chosen, torch.zeros_like(chosen))
    out["gt_inds"] = torch.where(pos, idx, torch.full_like(idx, -1))
    ctr = torch.zeros(L, dtype=DTYPE)
    if pos.any():
        ctr[pos] = ctrness_targets(chosen[pos])
    out["ctr"] = ctr
    return out


# ---------------------------------------------------------------------------------------------
# Modules (state-dict names exactly as AdelaiDet's)
# ---------------------------------------------------------------------------------------------

class FrozenBN(nn.Module):
    """detectron2 FrozenBatchNorm2d: y = x * s + b, s = w / sqrt(var + eps), b = bias - mean * s."""

    def __init__(self, c):
        super().__init__()
        self.register_buffer("weight", torch.ones(c, dtype=DTYPE))
        self.register_buffer("bias", torch.zeros(c, dtype=DTYPE))
        self.register_buffer("running_mean", torch.zeros(c, dtype=DTYPE))
        self.register_buffer("running_var", torch.ones(c, dtype=DTYPE) - BN_EPS)

    def forward(self, x):
        scale = self.weight * (self.running_var + BN_EPS).rsqrt()
        bias = self.bias - self.running_mean * scale
        return x * scale.reshape(1, -1, 1, 1) + bias.reshape(1, -1, 1, 1)


class ConvFrozenBN(nn.Module):
    """detectron2 Conv2d (no bias) with a FrozenBN `norm`."""

    def __init__(self, cin, cout, k, stride=1, padding=0):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(cout, cin, k, k, dtype=DTYPE))
        self.norm = FrozenBN(cout)
        self.stride, self.padding = stride, padding
        self.calibrate = None           # used by the fixture generator only

    def forward(self, x):
        y = F.conv2d(x, self.weight, None, self.stride, self.padding)
        if self.calibrate is not None:
            self.calibrate(self, y)
        return self.norm(y)


class Bottleneck(nn.Module):
    def __init__(self, cin, cout, bottleneck, stride):
        super().__init__()
        if cin != cout:
            self.shortcut = ConvFrozenBN(cin, cout, 1, stride=stride)
        else:
            self.shortcut = None
        # STRIDE_IN_1X1 = True: the stride sits in the first 1x1 conv
        self.conv1 = ConvFrozenBN(cin, bottleneck, 1, stride=stride)
        self.conv2 = ConvFrozenBN(bottleneck, bottleneck, 3, stride=1, padding=1)
        self.conv3 = ConvFrozenBN(bottleneck, cout, 1)

    def forward(self, x):
        out = F.relu(self.conv1(x))
        out = F.relu(self.conv2(out))
        out = self.conv3(out)
        sc = self.shortcut(x) if self.shortcut is not None else x
        return F.relu(out + sc)


class Stem(nn.Module):
    def __init__(self, cout):
        super().__init__()
        self.conv1 = ConvFrozenBN(3, cout, 7, stride=2, padding=3)

    def forward(self, x):
        return F.max_pool2d(F.relu(self.conv1(x)), kernel_size=3, stride=2, padding=1)


class ResNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        w = cfg.resnet_width_per_group
        self.stem = Stem(w)
        cin, bott, cout = w, w, 4 * w
        for i, n in enumerate(RESNET_BLOCKS[cfg.resnet_depth]):
            blocks = []
            for b in range(n):
                stride = (1 if i == 0 else 2) if b == 0 else 1
                blocks.append(Bottleneck(cin, cout, bott, stride))
                cin = cout
            self.add_module(f"res{i + 2}", nn.Sequential(*blocks))
            bott, cout = bott * 2, cout * 2
        self.out_channels = [4 * w * 2, 4 * w * 4, 4 * w * 8]     # C3, C4, C5

    def forward(self, x):
        x = self.stem(x)
        x = self.res2(x)
        c3 = self.res3(x)
        c4 = self.res4(c3)
        c5 = self.res5(c4)
        return c3, c4, c5


class TopBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.p6 = nn.Conv2d(c, c, 3, 2, 1).to(DTYPE)
        self.p7 = nn.Conv2d(c, c, 3, 2, 1).to(DTYPE)

    def forward(self, p5):
        p6 = self.p6(p5)
        p7 = self.p7(F.relu(p6))
        return p6, p7


class FPNBackbone(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        c = cfg.fpn_channels
        w = cfg.resnet_width_per_group
        for stage, cin in zip((3, 4, 5), (8 * w, 16 * w, 32 * w)):
            self.add_module(f"fpn_lateral{stage}", nn.Conv2d(cin, c, 1).to(DTYPE))
            self.add_module(f"fpn_output{stage}", nn.Conv2d(c, c, 3, 1, 1).to(DTYPE))
        self.top_block = TopBlock(c)
        self.bottom_up = ResNet(cfg)

    def forward(self, x):
        c3, c4, c5 = self.bottom_up(x)
        prev = self.fpn_lateral5(c5)
        p5 = self.fpn_output5(prev)
        prev = self.fpn_lateral4(c4) + F.interpolate(prev, scale_factor=2.0, mode="nearest")
        p4 = self.fpn_output4(prev)
        prev = self.fpn_lateral3(c3) + F.interpolate(prev, scale_factor=2.0, mode="nearest")
        p3 = self.fpn_output3(prev)
        p6, p7 = self.top_block(p5)
        return [p3, p4, p5, p6, p7]


class Scale(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1, dtype=DTYPE))

    def forward(self, x):
        return x * self.scale


class FCOSHead(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        c = cfg.fpn_channels
        for name in ("cls", "bbox"):
            layers = []
            for _ in range(cfg.fcos_num_convs):
                layers += [nn.Conv2d(c, c, 3, 1, 1).to(DTYPE), nn.GroupNorm(cfg.gn_groups, c, eps=GN_EPS).to(DTYPE),
                           nn.ReLU()]
            self.add_module(f"{name}_tower", nn.Sequential(*layers))
        self.cls_logits = nn.Conv2d(c, cfg.num_classes, 3, 1, 1).to(DTYPE)
        self.bbox_pred = nn.Conv2d(c, 4, 3, 1, 1).to(DTYPE)
        self.ctrness = nn.Conv2d(c, 1, 3, 1, 1).to(DTYPE)
        self.scales = nn.ModuleList([Scale() for _ in FPN_STRIDES])

    def forward(self, feats, controller):
        logits, regs, ctrs, tops = [], [], [], []
        for l, f in enumerate(feats):
            cls_t = self.cls_tower(f)
            box_t = self.bbox_tower(f)
            logits.append(self.cls_logits(cls_t))
            ctrs.append(self.ctrness(box_t))
            regs.append(F.relu(self.scales[l](self.bbox_pred(box_t))))
            tops.append(controller(box_t))
        return logits, regs, ctrs, tops


class ProposalGenerator(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.fcos_head = FCOSHead(cfg)


class BatchNorm(nn.Module):
    """BatchNorm2d with PyTorch's names; batch statistics in training mode (the running buffers
    are not updated: the twin reproduces one step's losses and gradients only)."""

    def __init__(self, c):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c, dtype=DTYPE))
        self.bias = nn.Parameter(torch.zeros(c, dtype=DTYPE))
        self.register_buffer("running_mean", torch.zeros(c, dtype=DTYPE))
        self.register_buffer("running_var", torch.ones(c, dtype=DTYPE))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x):
        if self.training:
            return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, BN_EPS)
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, BN_EPS)


def conv_bn_relu(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=False).to(DTYPE), BatchNorm(cout), nn.ReLU())


class MaskBranch(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        c = cfg.mask_branch_channels
        self.refine = nn.ModuleList([conv_bn_relu(cfg.fpn_channels, c) for _ in range(3)])
        tower = [conv_bn_relu(c, c) for _ in range(cfg.mask_branch_num_convs)]
        tower.append(nn.Conv2d(c, cfg.mask_branch_out_channels, 1).to(DTYPE))
        self.tower = nn.Sequential(*tower)

    def forward(self, p3, p4, p5):
        x = self.refine[0](p3)
        for i, f in ((1, p4), (2, p5)):
            y = self.refine[i](f)
            fh, fw = x.shape[2] // y.shape[2], x.shape[3] // y.shape[3]
            assert fh == fw and fh * y.shape[2] == x.shape[2] and fw * y.shape[3] == x.shape[3]
            x = x + aligned_bilinear(y, fh)
        return self.tower(x)


class DynamicMaskHead(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.channels = cfg.mask_head_channels
        self.num_layers = cfg.mask_head_layers
        self.in_channels = cfg.mask_branch_out_channels
        w, b = dynamic_param_sizes(self.in_channels, self.channels, self.num_layers)
        self.num_gen_params = sum(w) + sum(b)
        self.register_buffer("sizes_of_interest", torch.tensor([64, 128, 256, 512, 1024], dtype=torch.long))
        self.register_buffer("_iter", torch.zeros(1, dtype=DTYPE))

    def forward(self, mask_feats, params, im_inds, locations, levels):
        return dynamic_mask_logits(mask_feats, params, im_inds, locations, levels, self.sizes_of_interest,
                                   self.channels, self.num_layers, trace=getattr(self, "trace", None))


class CondInst(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.backbone = FPNBackbone(cfg)
        self.proposal_generator = ProposalGenerator(cfg)
        self.mask_head = DynamicMaskHead(cfg)
        self.mask_branch = MaskBranch(cfg)
        self.controller = nn.Conv2d(cfg.fpn_channels, self.mask_head.num_gen_params, 3, 1, 1).to(DTYPE)


def build_model(cfg):
    return CondInst(cfg)


def is_trainable(name, freeze_at):
    """FREEZE_AT: freeze_at >= 1 freezes the stem, freeze_at >= k the stage res{k}."""
    if not name.startswith("backbone.bottom_up."):
        return True
    part = name.split(".")[2]
    if part == "stem":
        return freeze_at < 1
    if part.startswith("res"):
        return freeze_at < int(part[3:])
    return True


def trainable_parameters(model):
    """(name, parameter) for every trainable parameter, in state-dict order."""
    return [(n, p) for n, p in model.named_parameters() if is_trainable(n, model.cfg.freeze_at)]


def load_state_strict(model, state):
    """Loads {name: array} into the model; raises listing missing, unexpected and misshapen names."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    misshapen = []
    for k, v in own.items():
        if k in state:
            got = tuple(np.asarray(state[k]).shape)
            if got != tuple(v.shape) and not (v.dim() == 0 and int(np.prod(got)) == 1):
                misshapen.append(f"{k}: expected {tuple(v.shape)}, got {got}")
    if missing or unexpected or misshapen:
        lines = []
        if missing:
            lines.append(f"missing ({len(missing)}): " + ", ".join(missing))
        if unexpected:
            lines.append(f"unexpected ({len(unexpected)}): " + ", ".join(unexpected))
        if misshapen:
            lines.append(f"misshapen ({len(misshapen)}): " + "; ".join(misshapen))
        raise ValueError("state does not fit the model:\n  " + "\n  ".join(lines))
    with torch.no_grad():
        for k, v in own.items():
            src = torch.as_tensor(np.asarray(state[k]))
            v.copy_(src.reshape(v.shape).to(v.dtype) if v.dtype != torch.long else src.reshape(v.shape).round().long())


# ---------------------------------------------------------------------------------------------
# Perceptual loss network (percep-dist's VGG family, 1 input channel)
# ---------------------------------------------------------------------------------------------

class LossNet(nn.Module):
    def __init__(self, lcfg, in_channels=1):
        super().__init__()
        layers, pools, c = [], [], in_channels
        k = lcfg.kernel_size
        for n, w in zip(lcfg.structure, lcfg.widths):
            for _ in range(n):
                layers += [nn.Conv2d(c, w, k, padding=k // 2).to(DTYPE), nn.ReLU()]
                c = w
            pools.append(len(layers))
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.pools = pools
        self.level_weights = list(lcfg.level_weights)
        self.lam = lcfg.lam
        for p in self.parameters():
            p.requires_grad_(False)

    def levels(self, x, last):
        out = []
        for i, m in enumerate(self.features):
            x = m(x)
            if i in self.pools:
                out.append(x)
                if len(out) > last:
                    break
        return out

    def term(self, pred, target):
        """sum_j w_j * mean((f_j(pred) - f_j(target))^2); no gradient through the target."""
        pos = [j for j, w in enumerate(self.level_weights) if w > 0]
        last = max(pos)
        with torch.no_grad():
            ft = self.levels(target, last)
        fp = self.levels(pred, last)
        total = None
        for j in pos:
            t = F.mse_loss(fp[j], ft[j]) * self.level_weights[j]
            total = t if total is None else total + t
        return total


# ---------------------------------------------------------------------------------------------
# One training step's losses
# ---------------------------------------------------------------------------------------------

def training_losses(model, images, gts, lossnet=None, return_details=False):
    """Losses of one training step (model in training mode; BN batch statistics per group).

    images [N, 3, Hp, Wp]; gts: per image a dict with boxes [K, 4], classes [K] (long) and
    bitmasks [K, Hp, Wp] (full resolution, padded canvas). Returns {name: scalar tensor}."""
    cfg = model.cfg
    model.train()
    N, _, Hp, Wp = images.shape
    ipg = cfg.ims_per_group
    assert Hp % 32 == 0 and Wp % 32 == 0, "padded size must be a multiple of 32"
    assert N % ipg == 0, f"batch {N} is not a multiple of ims_per_group {ipg}"
    G = N // ipg
    C = cfg.num_classes
    feats = model.backbone(images)
    head = model.proposal_generator.fcos_head
    logits, regs, ctrs, tops = head(feats, model.controller)
    mask_feats = [model.mask_branch(*(f[g * ipg:(g + 1) * ipg] for f in feats[:3])) for g in range(G)]
    shapes = [tuple(f.shape[2:]) for f in feats]
    assert shapes == level_shapes(Hp, Wp)

    per_image = []
    for gt in gts:
        bm = gt["bitmasks"]
        centers = mask_centroids(bm) if bm.shape[0] > 0 else torch.zeros(0, 2, dtype=DTYPE)
        per_image.append(compute_targets(gt["boxes"], gt["classes"], centers, shapes, C))

    # level-major flattening: (level, image, y, x)
    counts = [h * w for h, w in shapes]
    offs = np.concatenate([[0], np.cumsum(counts)])
    cat = lambda key: torch.cat([per_image[i][key][offs[l]:offs[l + 1]] for l in range(5) for i in range(N)])
    labels, reg_t, ctr_t, gt_inds = cat("labels"), cat("reg"), cat("ctr"), cat("gt_inds")
    locations, levels = cat("locations"), cat("level")
    dt = images.dtype                  # float64 normally; float32 only for conditioning checks
    reg_t, ctr_t, locations = reg_t.to(dt), ctr_t.to(dt), locations.to(dt)
    img = torch.cat([torch.full((counts[l],), i, dtype=torch.long) for l in range(5) for i in range(N)])
    flat = lambda xs, c: torch.cat([x.permute(0, 2, 3, 1).reshape(-1, c) for x in xs])
    logits_f = flat(logits, C)
    reg_f = flat(regs, 4)
    ctr_f = flat(ctrs, 1).reshape(-1)
    top_f = flat(tops, model.mask_head.num_gen_params)

    pos = labels != C
    num_pos = int(pos.sum())
    num_pos_avg = max(float(num_pos), 1.0)
    losses = {"loss_fcos_cls": focal_loss_from_labels(logits_f, labels) / num_pos_avg}
    ctr_pos = ctr_t[pos]
    loss_denorm = max(float(ctr_pos.sum()), 1e-6)
    losses["loss_fcos_loc"] = giou_loss_sum(reg_f[pos], reg_t[pos], ctr_pos) / loss_denorm
    losses["loss_fcos_ctr"] = F.binary_cross_entropy_with_logits(ctr_f[pos], ctr_pos, reduction="sum") / num_pos_avg

    zero = logits_f.sum() * 0
    mask_terms, percep_terms, group_counts = [], [], []
    for g in range(G):
        sel = pos & (img // ipg == g)
        n = int(sel.sum())
        group_counts.append(n)
        if n == 0:                     # AdelaiDet's dummy loss: zero, still on the graph
            mask_terms.append(zero + mask_feats[g].sum() * 0)
            percep_terms.append(zero)
            continue
        ims = img[sel]
        gidx = gt_inds[sel]
        gt_small = torch.stack([gts[int(i)]["bitmasks"][int(k)][MASK_OUT_STRIDE // 2::MASK_OUT_STRIDE,
                                                                MASK_OUT_STRIDE // 2::MASK_OUT_STRIDE]
                                for i, k in zip(ims, gidx)]).unsqueeze(1).to(dt)
        mlog = model.mask_head(mask_feats[g], top_f[sel], ims - g * ipg, locations[sel], levels[sel])
        assert mlog.shape == gt_small.shape, (mlog.shape, gt_small.shape)
        scores = mlog.sigmoid()
        mask_terms.append(dice_loss(scores, gt_small).mean())
        if lossnet is not None:
            percep_terms.append(lossnet.term(scores, gt_small))
    losses["loss_mask"] = sum(mask_terms) / G
    if lossnet is not None:
        losses["loss_percep"] = lossnet.lam * sum(percep_terms) / G
    if return_details:
        details = {"num_pos": num_pos, "sum_ctr": float(ctr_pos.sum().detach()), "group_instances": group_counts,
                   "pos_per_level": [int((pos & (levels == l)).sum()) for l in range(5)]}
        return losses, details
    return losses


def step(model, images, gts, lossnet=None):
    """Losses (floats) and d(total)/d(parameter) for every trainable parameter."""
    losses, details = training_losses(model, images, gts, lossnet, return_details=True)
    total = sum(losses.values())
    named = trainable_parameters(model)
    grads = torch.autograd.grad(total, [p for _, p in named], allow_unused=True)
    grads = {n: (g if g is not None else torch.zeros_like(p)).detach() for (n, p), g in zip(named, grads)}
    return {k: float(v.detach()) for k, v in losses.items()}, grads, details


def to_float32(model, lossnet, images):
    """A float32 copy of (model, lossnet, images): used to check that a case is well-conditioned
    (PyTorch's own float32 result close to the float64 one)."""
    import copy
    m = copy.deepcopy(model).float()
    m.mask_head.sizes_of_interest = model.mask_head.sizes_of_interest.clone()
    ln = copy.deepcopy(lossnet).float() if lossnet is not None else None
    return m, ln, images.float()


# ---------------------------------------------------------------------------------------------
# Inference pieces
# ---------------------------------------------------------------------------------------------

def nms_float32(boxes, scores, iou_threshold):
    """torchvision's CPU nms on float32 boxes: stable score-descending order (torch's CPU sort
    is stable for <= 16 elements; CUDA's radix sort always is), IoU in float32 arithmetic,
    suppress when IoU > threshold (the float32 IoU compared with the double threshold)."""
    b = np.asarray(boxes, np.float32)
    s = np.asarray(scores, np.float32)
    if len(b) == 0:
        return np.zeros(0, np.int64)
    order = np.argsort(-s.astype(np.float64), kind="stable")
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    suppressed = np.zeros(len(b), bool)
    keep = []
    for ii, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        for j in order[ii + 1:]:
            if suppressed[j]:
                continue
            xx1 = np.maximum(x1[i], x1[j])
            yy1 = np.maximum(y1[i], y1[j])
            xx2 = np.minimum(x2[i], x2[j])
            yy2 = np.minimum(y2[i], y2[j])
            w = np.maximum(np.float32(0), np.float32(xx2 - xx1))
            h = np.maximum(np.float32(0), np.float32(yy2 - yy1))
            inter = np.float32(w * h)
            ovr = np.float32(inter / np.float32(areas[i] + areas[j] - inter))
            if float(ovr) > iou_threshold:
                suppressed[j] = True
    return np.asarray(keep, np.int64)


def batched_nms(boxes, scores, classes, iou_threshold=NMS_THRESH, coordinate_trick=True):
    """torchvision's batched_nms (class-aware) on float32 boxes, for up to 16 boxes (CPU path:
    the coordinate trick, offsets = class * (max coordinate + 1)); keep is score-descending."""
    b = np.asarray(boxes, np.float32)
    if len(b) == 0:
        return np.zeros(0, np.int64)
    c = np.asarray(classes, np.int64)
    if coordinate_trick:
        offsets = c.astype(np.float32) * (b.max() + np.float32(1))
        return nms_float32(b + offsets[:, None], scores, iou_threshold)
    keep = []
    for k in np.unique(c):
        idx = np.nonzero(c == k)[0]
        keep += list(idx[nms_float32(b[idx], np.asarray(scores)[idx], iou_threshold)])
    keep = np.asarray(keep, np.int64)
    s = np.asarray(scores, np.float32)[keep].astype(np.float64)
    return keep[np.argsort(-s, kind="stable")]


def postprocess(mask_probs, boxes, padded, resized, original, mask_threshold=0.5):
    """CondInst.postprocess: masks [n, H0, W0] (bool) for every input instance, and the boxes
    scaled to the original size, clipped, with width/height <= 0 dropped (boxes_out, keep)."""
    Hp, Wp = padded
    h, w = resized
    H0, W0 = original
    mh, mw = mask_probs.shape[-2:]
    fh, fw = Hp // mh, Wp // mw
    assert fh == fw and fh * mh == Hp and fw * mw == Wp
    m = aligned_bilinear(mask_probs.to(DTYPE), fh)[:, :, :h, :w]
    m = F.interpolate(m, size=(H0, W0), mode="bilinear", align_corners=False)[:, 0]
    masks = m > mask_threshold
    b = boxes.to(DTYPE).clone()
    b[:, 0::2] *= W0 / w
    b[:, 1::2] *= H0 / h
    b[:, 0::2] = b[:, 0::2].clamp(min=0, max=W0)
    b[:, 1::2] = b[:, 1::2].clamp(min=0, max=H0)
    keep = ((b[:, 2] - b[:, 0]) > 0) & ((b[:, 3] - b[:, 1]) > 0)
    return masks, b[keep], keep.nonzero().squeeze(1), m


# ---------------------------------------------------------------------------------------------
# Dump I/O
# ---------------------------------------------------------------------------------------------

def read_dump(path):
    import h5py
    with h5py.File(path, "r") as f:
        attrs = {k: f.attrs[k] for k in f.attrs}
        model = {k: f["model"][k][()] for k in f["model"]}
        grad = {k: f["grad"][k][()] for k in f["grad"]} if "grad" in f else {}
        lossnet = {k: f["lossnet"][k][()] for k in f["lossnet"]} if "lossnet" in f else {}
        inp = f["input"]
        images = inp["images"][()]
        sizes = inp["image_sizes"][()]
        gts = []
        for i in range(images.shape[0]):
            gts.append({"boxes": inp[f"gt_boxes_{i}"][()], "classes": inp[f"gt_classes_{i}"][()],
                        "bitmasks": inp[f"gt_bitmasks_{i}"][()]})
    return {"attrs": attrs, "model": model, "grad": grad, "lossnet": lossnet, "images": images,
            "image_sizes": sizes, "gts": gts}


def gts_to_torch(gts):
    out = []
    for g in gts:
        boxes = np.asarray(g["boxes"], np.float64).reshape(-1, 4)
        out.append({"boxes": torch.from_numpy(boxes),
                    "classes": torch.from_numpy(np.asarray(g["classes"], np.int64).reshape(-1)),
                    "bitmasks": torch.from_numpy(np.asarray(g["bitmasks"])).to(DTYPE)})
    return out


def twin_from_dump(d):
    """(model, lossnet or None, images, gts) built from a read_dump() dict, weights loaded strictly."""
    cfg = Config.from_attrs(d["attrs"])
    model = build_model(cfg)
    load_state_strict(model, d["model"])
    lossnet = None
    if int(np.asarray(d["attrs"].get("perceptual", 0)).reshape(())) == 1:
        lcfg = LossNetConfig.from_attrs(d["attrs"])
        lossnet = LossNet(lcfg)
        own = lossnet.state_dict()
        missing = [k for k in own if k not in d["lossnet"]]
        unexpected = [k for k in d["lossnet"] if k not in own]
        bad = [k for k in own if k in d["lossnet"] and tuple(d["lossnet"][k].shape) != tuple(own[k].shape)]
        if missing or unexpected or bad:
            raise ValueError(f"/lossnet does not fit the attributes: missing {missing}, unexpected {unexpected}, "
                             f"misshapen {bad}")
        with torch.no_grad():
            for k, v in own.items():
                v.copy_(torch.from_numpy(np.asarray(d["lossnet"][k], np.float64)))
    images = torch.from_numpy(np.asarray(d["images"], np.float64))
    return model, lossnet, images, gts_to_torch(d["gts"])


def rel_err(a, b, tiny=1e-30):
    return abs(a - b) / max(abs(b), tiny)


def cmd_check(args):
    d = read_dump(args.dump)
    model, lossnet, images, gts = twin_from_dump(d)
    losses, grads, details = step(model, images, gts, lossnet)
    ok = True
    print(f"positives {details['num_pos']} (per level {details['pos_per_level']}), sum ctr {details['sum_ctr']:.6g}, "
          f"mask instances per group {details['group_instances']}")
    for name, v in losses.items():
        if name not in d["attrs"]:
            print(f"  {name}: MISSING in the dump (twin {v:.9g})")
            ok = False
            continue
        ours = float(np.asarray(d["attrs"][name]).reshape(()))
        e = rel_err(ours, v)
        flag = e > args.loss_tol
        ok &= not flag
        print(f"  {name:15s} dump {ours:.9g}  twin {v:.9g}  rel err {e:.3e}{'  FAIL' if flag else ''}")
    worst = []
    for name, g in grads.items():
        if name not in d["grad"]:
            print(f"  /grad/{name}: MISSING")
            ok = False
            continue
        ours = torch.from_numpy(np.asarray(d["grad"][name], np.float64))
        if tuple(ours.shape) != tuple(g.shape):
            print(f"  /grad/{name}: shape {tuple(ours.shape)}, expected {tuple(g.shape)}")
            ok = False
            continue
        num = float((ours - g).norm())
        den = float(g.norm())
        e = 0.0 if num == 0 else num / max(den, 1e-30)
        worst.append((e, name, den))
    extra = sorted(set(d["grad"]) - set(grads))
    if extra:
        print(f"  /grad holds {len(extra)} entries that are not trainable parameters: {', '.join(extra[:8])}"
              f"{' ...' if len(extra) > 8 else ''}")
        ok = False
    worst.sort(reverse=True)
    for e, name, den in worst[:5]:
        print(f"  grad {name}: rel norm err {e:.3e} (|g_twin| {den:.3e}){'  FAIL' if e > args.grad_tol else ''}")
    if worst and worst[0][0] > args.grad_tol:
        ok = False
    print(f"worst gradient rel norm err {worst[0][0] if worst else 0:.3e} over {len(worst)} parameters")
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


def cmd_expect(args):
    import h5py
    d = read_dump(args.dump)
    model, lossnet, images, gts = twin_from_dump(d)
    losses, grads, _ = step(model, images, gts, lossnet)
    shutil.copyfile(args.dump, args.out)
    with h5py.File(args.out, "r+") as f:
        for k, v in losses.items():
            f.attrs[k] = np.float64(v)
        if "grad" in f:
            del f["grad"]
        g = f.create_group("grad")
        for k, v in grads.items():
            g.create_dataset(k, data=v.numpy().astype(np.float32))
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v:.6g}" for k, v in losses.items()))
    return 0


def cmd_selftest(_args):
    torch.manual_seed(0)
    from torch.autograd import gradcheck
    ok = True

    def chk(name, fn, inputs):
        nonlocal ok
        r = gradcheck(fn, inputs, eps=1e-6, atol=1e-8, rtol=1e-6)
        print(f"  gradcheck {name}: {'ok' if r else 'FAIL'}")
        ok &= r

    for f, (h, w) in ((2, (3, 4)), (4, (1, 3)), (8, (2, 1))):
        x = torch.randn(2, 2, h, w, dtype=DTYPE, requires_grad=True)
        chk(f"aligned_bilinear x{f} {h}x{w}", lambda t: aligned_bilinear(t, f), (x,))
    feats = torch.randn(2, 8, 3, 4, dtype=DTYPE, requires_grad=True)
    params = (torch.randn(3, 169, dtype=DTYPE) * 0.5).requires_grad_()
    im = torch.tensor([0, 1, 1])
    locs = torch.tensor([[4.0, 12.0], [20.0, 8.0], [100.0, 50.0]], dtype=DTYPE)
    lv = torch.tensor([0, 1, 4])
    soi = torch.tensor([64, 128, 256, 512, 1024])
    chk("dynamic mask head", lambda a, b: dynamic_mask_logits(a, b, im, locs, lv, soi), (feats, params))
    logits = torch.randn(6, 3, dtype=DTYPE, requires_grad=True)
    labels = torch.tensor([0, 3, 2, 3, 1, 3])
    chk("focal", lambda z: focal_loss_from_labels(z, labels), (logits,))
    pred = (torch.rand(5, 4, dtype=DTYPE) * 3 + 0.1).requires_grad_()
    tgt = torch.rand(5, 4, dtype=DTYPE) * 3 + 0.2
    wt = torch.rand(5, dtype=DTYPE)
    chk("giou", lambda p: giou_loss_sum(p, tgt, wt), (pred,))
    z = torch.randn(3, 1, 4, 5, dtype=DTYPE, requires_grad=True)
    g = (torch.rand(3, 1, 4, 5) > 0.5).to(DTYPE)
    chk("dice", lambda t: dice_loss(t.sigmoid(), g).mean(), (z,))
    # aligned_bilinear against its closed form: index k reads (k - f//2)/f clamped at 0
    x = torch.randn(1, 1, 3, 5, dtype=DTYPE)
    for f in (2, 4, 8):
        y = aligned_bilinear(x, f)
        ref = torch.zeros_like(y)
        for i in range(y.shape[2]):
            for j in range(y.shape[3]):
                sy, sx = max((i - f // 2) / f, 0.0), max((j - f // 2) / f, 0.0)
                y0, x0 = min(int(math.floor(sy)), 2), min(int(math.floor(sx)), 4)
                y1, x1 = min(y0 + 1, 2), min(x0 + 1, 4)
                ay, ax = sy - y0, sx - x0
                ref[0, 0, i, j] = ((1 - ay) * (1 - ax) * x[0, 0, y0, x0] + (1 - ay) * ax * x[0, 0, y0, x1]
                                   + ay * (1 - ax) * x[0, 0, y1, x0] + ay * ax * x[0, 0, y1, x1])
        e = float((y - ref).abs().max())
        print(f"  aligned_bilinear x{f} closed form: max err {e:.2e}")
        ok &= e < 1e-12
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="compare a dump's losses and gradients with the twin")
    c.add_argument("dump")
    c.add_argument("--loss-tol", type=float, default=1e-4)
    c.add_argument("--grad-tol", type=float, default=1e-3)
    e = sub.add_parser("expect", help="write a copy of the dump with the twin's losses and /grad")
    e.add_argument("dump")
    e.add_argument("--out", required=True)
    sub.add_parser("selftest", help="gradcheck the small pieces")
    args = ap.parse_args(argv)
    try:
        return {"check": cmd_check, "expect": cmd_expect, "selftest": cmd_selftest}[args.cmd](args)
    except (ValueError, KeyError) as e:      # a dump that does not fit: say what, exit 1
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
