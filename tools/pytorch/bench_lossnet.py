#!/usr/bin/env python3
"""PyTorch side of `percep-dist bench lossnet`: the same VGG-style loss network (conv with bias,
ReLU, 2×2 max-pool per block; He init), the same step (embed the target under no_grad, embed the
prediction with autograd, backward to the prediction; weights frozen) and the same timing rule
(mean of --iters steps after one warm-up).

Run: python3 tools/pytorch/bench_lossnet.py --structure 2,2,3,3,3 --in-channels 19 --size 128 --batch 2 --iters 5 --threads 2 [--json]
"""
import argparse
import json
import resource
import time

import torch

import vgg_lossnet


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--structure", default="2,2,3,3,3")
    ap.add_argument("--widths", default="64,128,256,512,512")
    ap.add_argument("--kernel-size", type=int, default=3)
    ap.add_argument("--in-channels", type=int, default=19)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    net = vgg_lossnet.build(list(map(int, a.structure.split(","))), list(map(int, a.widths.split(","))), a.in_channels, a.kernel_size)
    shape = (a.batch, a.in_channels, a.size, a.size)
    pred = torch.softmax(torch.randn(shape) * 2, 1).requires_grad_(True)
    target = torch.softmax(torch.randn(shape) * 2, 1)

    def step():
        pred.grad = None
        t0 = time.perf_counter()
        with torch.no_grad():
            t = net(target)
        loss = torch.mean((net(pred) - t) ** 2)
        loss.backward()
        return time.perf_counter() - t0

    step()
    times = [step() for _ in range(a.iters)]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = dict(seconds_per_iter=sum(times) / len(times), min_seconds=min(times), peak_rss_mb=rss,
               threads=a.threads, torch=torch.__version__)
    print(json.dumps(out) if a.json else f"{sum(times) / len(times):.4f} s/iter (min {min(times):.4f}), peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
