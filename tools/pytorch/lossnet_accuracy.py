#!/usr/bin/env python3
"""How far a float32 gradient of the VGG16 loss network can be from float64, and why.

Issue 17 saw the default path's d loss / d pred differ from a float64 reference by 2.3e-3
(relative norm) on an AVX-512 machine. This measures, on the machine at hand, with the weights
`percep-dist lossnet export` writes (VGG16, 19 channels, last level) and softmax inputs
(batch 2, 128²):
  - PyTorch float32 against float64, and against float64 run with float32's own switches (the
    ReLU signs and max-pool argmaxes of the float32 forward imposed), which leaves only rounding;
  - how many switches float32 and float64 resolve differently;
  - PyTorch float32 on the same function with the hidden channels permuted (another summation
    order, nothing else);
  - ours, `percep-dist lossnet eval --grad-out`, by default and with each algorithm forced
    (Winograd on the prediction's forward too, and oneDNN's own Winograd, which oneDNN 2.x runs
    on AVX-512 machines only).

Run: PERCEP_BIN=.build/release/percep-dist python3 tools/pytorch/lossnet_accuracy.py [--inputs N]
(--inputs N repeats the float64 comparison on N more random inputs.)
"""
import json
import os
import subprocess
import sys
import tempfile

import h5py
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vgg_lossnet  # noqa: E402

BIN = os.environ.get("PERCEP_BIN", ".build/release/percep-dist")
torch.set_num_threads(2)
work = tempfile.mkdtemp(prefix="lossnet-accuracy-")
net_file, structure, weights = vgg_lossnet.exported(BIN, work)

gen = torch.Generator().manual_seed(0)
shape = (2, 19, 128, 128)
pred = torch.softmax(torch.randn(shape, generator=gen) * 2, 1)
target = torch.softmax(torch.randn(shape, generator=gen) * 2, 1)


def embed(x, ws, dtype, imposed=None, record=None):
    """conv-ReLU blocks, 2x2 max-pool after each; the switches recorded or imposed, in order."""
    k = s = 0
    for n in structure:
        for _ in range(n):
            w, b = ws[k]
            k += 1
            z = F.conv2d(x, w.to(dtype), b.to(dtype), padding=1)
            mask = (z > 0) if imposed is None else imposed[s]
            s += 1
            if record is not None:
                record.append(mask)
            x = z * mask
        _, index = F.max_pool2d(x.detach(), 2, return_indices=True)
        if imposed is not None:
            index = imposed[s]
        s += 1
        if record is not None:
            record.append(index)
        x = x.flatten(2).gather(2, index.flatten(2)).view(index.shape)
    return x


def gradient(dtype, ws=weights, imposed=(None, None), record=(None, None)):
    p = pred.to(dtype).clone().requires_grad_(True)
    with torch.no_grad():
        t = embed(target.to(dtype), ws, dtype, imposed[1], record[1])
    loss = torch.mean((embed(p, ws, dtype, imposed[0], record[0]) - t) ** 2)
    loss.backward()
    return loss.item(), p.grad.double()


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


l64, g64 = gradient(torch.float64, record=(s64 := [], None))
l32, g32 = gradient(torch.float32, record=(s32p := [], s32t := []))
_, g64m = gradient(torch.float64, imposed=(s32p, s32t))
print(f"PyTorch float32 vs float64: loss {abs(l32 - l64) / l64:.2e}, gradient {rel(g32, g64):.2e}")
print(f"PyTorch float32 vs float64 with float32's switches: gradient {rel(g32, g64m):.2e}")
names = []
for n, blocks in enumerate(structure):
    names += [f"relu{n + 1}_{i + 1}" for i in range(blocks)] + [f"pool{n + 1}"]
flips = {name: int((a != b).sum()) for name, a, b in zip(names, s32p, s64) if (a != b).any()}
print(f"switches float32 and float64 resolve differently (prediction): {flips or 'none'}")

for seed in range(4):
    g = torch.Generator().manual_seed(200 + seed)
    permuted, previous = [], None
    for w, b in weights:
        order = torch.randperm(w.shape[0], generator=g)
        w = w[order] if previous is None else w[order][:, previous]
        permuted.append((w.contiguous(), b[order].contiguous()))
        previous = order
    _, gp = gradient(torch.float32, ws=permuted)
    print(f"PyTorch float32, hidden channels permuted (seed {seed}): gradient {rel(gp, g64):.2e}")

with h5py.File(os.path.join(work, "pred.h5"), "w") as f:
    f["pred"] = pred.numpy()
with h5py.File(os.path.join(work, "target.h5"), "w") as f:
    f["target"] = target.numpy()


def ours(env):
    """Our loss and d loss / d pred on the current pred and target, with `env` forcing an algorithm."""
    out = subprocess.run([BIN, "lossnet", "eval", "--lossnet", net_file, "--pred", os.path.join(work, "pred.h5"),
                          "--target", os.path.join(work, "target.h5"), "--grad-out", os.path.join(work, "grad.h5"), "--json"],
                         env={**os.environ, **env}, capture_output=True, text=True, check=True)
    with h5py.File(os.path.join(work, "grad.h5")) as f:
        return json.loads(out.stdout)["loss"], torch.from_numpy(f["grad"][()]).double()


ALGORITHMS = [("default", {}), ("oneDNN only", {"PERCEP_CONV": "dnnl", "PERCEP_WINOGRAD": "0"}),
              ("im2col only", {"PERCEP_CONV": "im2col", "PERCEP_WINOGRAD": "0"}),
              # Winograd on the prediction's forward too (the default before 2026-12-04 evening).
              ("Winograd everywhere", {"PERCEP_WINOGRAD": "all"}),
              # oneDNN's own Winograd (AVX-512 only; elsewhere the same as "oneDNN only").
              ("oneDNN Winograd", {"PERCEP_CONV": "dnnl", "PERCEP_WINOGRAD": "0", "PERCEP_DNNL_WINOGRAD": "1"})]
for label, env in ALGORITHMS:
    loss, g = ours(env)
    print(f"ours, {label}: loss {abs(loss - l64) / l64:.2e}, gradient {rel(g, g64):.2e} "
          f"(against PyTorch float32 {rel(g, g32):.2e})")

# --inputs N: the same comparison on N more inputs (generator seeds 1..N), to see how often each
# float32 computation lands beyond 5e-4, i.e. resolves a near-tie differently from float64.
if "--inputs" in sys.argv:
    count = int(sys.argv[sys.argv.index("--inputs") + 1])
    print("\n| input seed | PyTorch float32 | " + " | ".join(f"ours, {label}" for label, _ in ALGORITHMS[:4]) + " |")
    print("|---|---|" + "---|" * 4)
    for seed in range(1, count + 1):
        gen = torch.Generator().manual_seed(seed)
        pred = torch.softmax(torch.randn(shape, generator=gen) * 2, 1)
        target = torch.softmax(torch.randn(shape, generator=gen) * 2, 1)
        _, g64 = gradient(torch.float64)
        _, g32 = gradient(torch.float32)
        with h5py.File(os.path.join(work, "pred.h5"), "w") as f:
            f["pred"] = pred.numpy()
        with h5py.File(os.path.join(work, "target.h5"), "w") as f:
            f["target"] = target.numpy()
        cells = [f"{rel(ours(env)[1], g64):.2e}" for _, env in ALGORITHMS[:4]]
        print(f"| {seed} | {rel(g32, g64):.2e} | " + " | ".join(cells) + " |")
