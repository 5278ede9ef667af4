#!/usr/bin/env python3
"""PyTorch side of `percep-dist bench step --model condinst_r50`: one CondInst training step with
the same network (AdelaiDet's R-50-FPN through tools/pytorch/condinst_twin.py, in float32), the
same instances (the formula of `condinstBenchInstances` in Sources/PercepDistCLI/BenchStep.swift),
the same losses without a proposal cap (and, with --perceptual, the VGG mask term on every
instance), backward and SGD (lr 0.01, momentum 0.9, weight decay 1e-4); the same timing rule
(mean of --steps steps after --warmup untimed ones) and JSON keys.

Run: python3 tools/bench_condinst_step.py --size 512,640 --batch 2 [--perceptual 2,2,3,3,3] --threads 2 --json
"""
import argparse
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "pytorch"))
import condinst_twin as twin  # noqa: E402


def instances(b, count, h, w, classes):
    boxes, labels = [], []
    masks = torch.zeros(count, h, w)
    for k in range(count):
        cx = (k * 97 + b * 53) % (w - 160) + 80
        cy = (k * 71 + b * 29) % (h - 160) + 80
        half = 24 + (k * 13) % 40
        boxes.append([cx - half, cy - half, cx + half, cy + half])
        labels.append((k + b) % classes)
        masks[k, cy - half:cy + half, cx - half:cx + half] = 1
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "classes": torch.tensor(labels, dtype=torch.long),
            "bitmasks": masks}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="condinst_r50")
    ap.add_argument("--size", default="512,640")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--classes", type=int, default=80)
    ap.add_argument("--instances", type=int, default=6)
    ap.add_argument("--perceptual", default=None)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    h, w = (int(v) for v in a.size.split(",")) if "," in a.size else (int(a.size),) * 2
    cfg = twin.Config(num_classes=a.classes, ims_per_group=a.batch)
    model = twin.build_model(cfg).float()
    with torch.no_grad():   # AdelaiDet's head init (section 2 of condinst.md), as percep-dist draws it
        head = model.proposal_generator.fcos_head
        for m in list(head.cls_tower) + list(head.bbox_tower) + [head.cls_logits, head.bbox_pred, head.ctrness, model.controller]:
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.normal_(m.weight, std=0.01)
                torch.nn.init.zeros_(m.bias)
        head.cls_logits.bias.fill_(-4.59512)
    model.mask_head.sizes_of_interest = model.mask_head.sizes_of_interest.float()
    lossnet = None
    if a.perceptual:
        structure = [int(v) for v in a.perceptual.split(",")]
        lcfg = twin.LossNetConfig(structure=structure, widths=[64, 128, 256, 512, 512][:len(structure)], kernel_size=3,
                                  level_weights=[0.0] * (len(structure) - 1) + [1.0], lam=0.1)
        lossnet = twin.LossNet(lcfg).float()
    params = [p for _, p in twin.trainable_parameters(model)]
    # detectron2's ResNet.freeze(): the frozen stem and res2 take no gradient, so autograd neither
    # keeps their activations nor runs their backward (percep-dist's tape skips them the same way).
    trainable = {id(p) for p in params}
    for p in model.parameters():
        if id(p) not in trainable:
            p.requires_grad_(False)
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(7)
    images = torch.randn(a.batch, 3, h, w, generator=gen) * 50
    gts = [instances(b, a.instances, h, w, a.classes) for b in range(a.batch)]

    def step():
        t0 = time.perf_counter()
        losses = twin.training_losses(model, images, gts, lossnet)
        total = sum(losses.values())
        opt.zero_grad()
        total.backward()
        opt.step()
        return time.perf_counter() - t0, {k: float(v.detach()) for k, v in losses.items()}

    for _ in range(a.warmup):
        step()
    times, last = [], {}
    for _ in range(a.steps):
        t, last = step()
        times.append(t)
    report = {"seconds_per_step": sum(times) / len(times), "min_seconds": min(times),
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, "threads": a.threads,
              "model": a.model, "size": [h, w], "batch": a.batch, "classes": a.classes, "instances": a.instances,
              "perceptual": a.perceptual or "none", "steps": a.steps, "parameters": sum(p.numel() for p in params), **last}
    if a.json:
        print(json.dumps(report, sort_keys=True))
    else:
        print(f"condinst_r50 {h}x{w} batch {a.batch}: {report['seconds_per_step']:.3f} s/step, peak RSS {report['peak_rss_mb']:.0f} MiB")


if __name__ == "__main__":
    main()
