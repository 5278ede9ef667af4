#!/usr/bin/env python3
"""PyTorch side of `percep-dist bench conv`: the same shapes, passes and timing rule (best of
`--repeats` after one warm-up), so docs/benchmarks.md can put the two tables side by side.

Run: python3 tools/pytorch/bench_conv.py --threads 2 [--json]
Needs PyTorch (pip install torch); CI does not run this.
"""
import argparse
import json
import time

import torch


def cases():
    """The shape list of Sources/PercepDistCLI/BenchConv.swift, in the same order."""
    out = []

    def conv(name, cin, cout, size, width=None, k=3, s=1, n=2, d=1):
        out.append(dict(name=name, n=n, cin=cin, cout=cout, h=size, w=width or size, k=k, s=s, p=d * (k // 2), d=d))

    for size in (128, 256):
        for cin in (19, 150):
            conv(f"vgg16.c{cin}.conv1_1@{size}", cin, 64, size)
        for name, cin, cout, div in [("conv1_2", 64, 64, 1), ("conv2_1", 64, 128, 2), ("conv2_2", 128, 128, 2),
                                     ("conv3_1", 128, 256, 4), ("conv3_x", 256, 256, 4), ("conv4_1", 256, 512, 8),
                                     ("conv4_x", 512, 512, 8), ("conv5_x", 512, 512, 16)]:
            conv(f"vgg16.{name}@{size}", cin, cout, size // div)
    conv("resnet.conv1_7x7s2", 3, 64, 224, k=7, s=2)
    conv("resnet18.layer1_3x3", 64, 64, 56)
    conv("resnet18.layer2_3x3", 128, 128, 28)
    conv("resnet18.layer3_3x3", 256, 256, 14)
    conv("resnet18.layer4_3x3", 512, 512, 7)
    conv("resnet18.layer2_3x3s2", 64, 128, 56, s=2)
    conv("resnet50.layer1_1x1_reduce", 256, 64, 56, k=1)
    conv("resnet50.layer1_1x1_expand", 64, 256, 56, k=1)
    conv("resnet50.layer2_1x1_reduce", 512, 128, 28, k=1)
    conv("resnet50.layer3_1x1_reduce", 1024, 256, 14, k=1)
    conv("resnet50.layer4_1x1_expand", 512, 2048, 7, k=1)
    conv("dilated_resnet.layer3_3x3d2", 256, 256, 64, d=2)
    conv("dilated_resnet.layer4_3x3d4", 512, 512, 64, d=4)
    conv("condinst.tower@P3", 256, 256, 64, width=80)
    conv("condinst.tower@P4", 256, 256, 32, width=40)
    conv("condinst.res2_3x3", 64, 64, 128, width=160)
    conv("condinst.res3_3x3", 128, 128, 64, width=80)
    conv("condinst.res5_3x3", 512, 512, 16, width=20)
    return out


def best(repeats, fn):
    fn()
    t = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        t = min(t, time.perf_counter() - t0)
    return t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--filter", default="", help="only shapes whose name contains this text (as `bench conv --filter`)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    with torch.no_grad():
        for c in cases():
            if args.filter not in c["name"]:
                continue
            x = torch.rand(c["n"], c["cin"], c["h"], c["w"]) * 2 - 1
            w = (torch.rand(c["cout"], c["cin"], c["k"], c["k"]) * 2 - 1) * 0.1
            y = torch.nn.functional.conv2d(x, w, stride=c["s"], padding=c["p"], dilation=c["d"])
            dy = torch.rand_like(y) * 2 - 1
            oh, ow = y.shape[2], y.shape[3]
            gflop = 2.0 * c["n"] * c["cout"] * oh * ow * c["cin"] * c["k"] * c["k"] / 1e9
            s, p, d = [c["s"]] * 2, [c["p"]] * 2, [c["d"]] * 2

            def bwd(mask):
                return lambda: torch.ops.aten.convolution_backward(dy, x, w, None, s, p, d, False, [0, 0], 1, mask)

            tf = best(args.repeats, lambda: torch.nn.functional.conv2d(x, w, stride=c["s"], padding=c["p"], dilation=c["d"]))
            td = best(args.repeats, bwd([True, False, False]))
            tw = best(args.repeats, bwd([False, True, False]))
            rows.append(dict(name=c["name"], fwd_gflops=gflop / tf, bwd_data_gflops=gflop / td,
                             bwd_weight_gflops=gflop / tw, combined_gflops=3 * gflop / (tf + td + tw)))
            if not args.json:
                r = rows[-1]
                print(f"{r['name']:34s} fwd {r['fwd_gflops']:6.1f}  bwd-data {r['bwd_data_gflops']:6.1f}  "
                      f"bwd-weight {r['bwd_weight_gflops']:6.1f} GFLOP/s  combined {r['combined_gflops']:6.1f}")
    if args.json:
        print(json.dumps(dict(torch=torch.__version__, threads=args.threads, shapes=rows), indent=1))


if __name__ == "__main__":
    main()
