#!/usr/bin/env python3
"""PyTorch side of `percep-dist bench step`: the same model (tools/pytorch/seg_models.py, mmseg's
structure, Kaiming init), the same step and the same timing rule (mean of --steps steps after
--warmup untimed ones), with the same JSON keys.

Step: forward in training mode on x [B, 3, S, S]; cross-entropy (ignore 255) on the logits
upsampled to S×S (bilinear, align_corners=False), + 0.4 × the auxiliary head's; with
--perceptual, + 0.1 × mean((f(softmax(up)) − f(target))²) through a frozen VGG loss network
(conv 3×3 with bias + ReLU per conv, 2×2 max-pool per block, widths 64…512, He init, last
level), target = softmax of fixed random logits embedded under no_grad; backward; SGD (lr 0.01,
momentum 0.9, weight decay 5e-4).

Run: python3 tools/bench_step.py --model pspnet_r18 --size 256 --batch 2 --classes 150 [--perceptual 1,1,1,1,1] --threads 2 --json
"""
import argparse
import json
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "pytorch"))
import seg_models  # noqa: E402
import vgg_lossnet  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="pspnet_r18")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--classes", type=int, default=150)
    ap.add_argument("--output-stride", type=int, default=8)
    ap.add_argument("--no-aux", action="store_true")
    ap.add_argument("--perceptual", default=None)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--profile-ops", action="store_true",
                    help="torch.profiler's table of the timed steps, by op (stderr), beside `bench step --profile-ops`")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = seg_models.build(a.model, a.classes, output_stride=a.output_stride, aux=not a.no_aux)
    seg_models.init_like_mmseg(model)
    model.train()
    lossnet = vgg_lossnet.build(list(map(int, a.perceptual.split(","))), (64, 128, 256, 512, 512), a.classes) if a.perceptual else None
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    s = a.size
    x = torch.randn(a.batch, 3, s, s)
    labels = torch.randint(0, a.classes, (a.batch, s, s))
    labels[torch.rand(a.batch, s, s) < 0.05] = 255
    target = torch.softmax(torch.randn(a.batch, a.classes, s, s) * 2, 1)
    up = lambda t: F.interpolate(t, size=(s, s), mode="bilinear", align_corners=False)

    def step():
        t0 = time.perf_counter()
        logits, aux = model(x)
        u = up(logits)
        loss = F.cross_entropy(u, labels, ignore_index=255)
        if aux is not None:
            loss = loss + 0.4 * F.cross_entropy(up(aux), labels, ignore_index=255)
        if lossnet is not None:
            with torch.no_grad():
                t = lossnet(target)
            loss = loss + 0.1 * torch.mean((lossnet(torch.softmax(u, 1)) - t) ** 2)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0, loss.item()

    for _ in range(a.warmup):
        step()
    if a.profile_ops:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            runs = [step() for _ in range(a.steps)]
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30), file=sys.stderr)
    else:
        runs = [step() for _ in range(a.steps)]
    times = [t for t, _ in runs]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = dict(seconds_per_step=sum(times) / len(times), min_seconds=min(times), peak_rss_mb=rss, threads=a.threads,
               model=a.model, size=s, batch=a.batch, classes=a.classes, output_stride=a.output_stride, aux=hasattr(model, "auxiliary_head"),
               perceptual=a.perceptual or "none", steps=a.steps, loss=runs[-1][1],
               parameters=sum(p.numel() for p in model.parameters()), torch=torch.__version__)
    if a.json:
        print(json.dumps(out, sort_keys=True))
    else:
        print(f"{a.model} {s}×{s} batch {a.batch}, {a.classes} classes, perceptual {a.perceptual or 'none'}: "
              f"{out['seconds_per_step']:.3f} s/step (min {min(times):.3f}), peak RSS {rss:.0f} MiB, {a.threads} threads")


if __name__ == "__main__":
    main()
