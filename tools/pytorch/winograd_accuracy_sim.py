#!/usr/bin/env python3
"""How often a float32 Winograd convolution moves the VGG16 loss network's gradient away from float64.

Simulates, in PyTorch, the loss network of `lossnet_accuracy.py` (the weights `percep-dist lossnet
export` writes, 19-channel softmax inputs, batch 2, 128², last level) with every 3x3 convolution
computed as Winograd F(m x m, 3x3) in float32, for several sets of interpolation points, and prints
d loss / d pred against float64 (relative norm) per input: direct float32 as the baseline, F(4,3)
with the points of `winograd.c` (0, ±1, ±2), two other point sets, F(2,3), and F(4,3) on the
target's branch only (whose ReLU and max-pool switches do not enter the gradient). The transform
matrices are built from the points (Toom-Cook, Lavin & Gray's construction), so other sets can be
tried. The simulation's summation order is PyTorch's, not `winograd.c`'s: it shows the algorithm's
rounding, not our kernel's bits.

Run: PERCEP_BIN=.build/release/percep-dist python3 tools/pytorch/winograd_accuracy_sim.py [inputs] ["set;set"]
(sets: "0,±1,±2", "0,±1,1/2,-2", "0,±1,±1/2", "F(2,3)"; all by default)
"""
import os
import sys
import tempfile
from fractions import Fraction as Fr

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vgg_lossnet  # noqa: E402

def polymul(p, q):
    """Product of two polynomials given as coefficient lists, lowest power first."""
    r = [Fr(0)] * (len(p) + len(q) - 1)
    for i, a in enumerate(p):
        for j, b in enumerate(q):
            r[i + j] += a * b
    return r


def matrices(points, m=4, r=3):
    """A^T [m, n], G [n, r], B^T [n, n] of Winograd F(m, r) on the finite `points` (n - 1 of them)
    and infinity: y = A^T ((G g) * (B^T d)) is the correlation y_i = sum_k d_(i+k) g_k."""
    n = m + r - 1
    a = [Fr(x) for x in points]
    assert len(a) == n - 1
    AT = [[a[j] ** i for j in range(n - 1)] + [Fr(1 if i == m - 1 else 0)] for i in range(m)]
    G = []
    for j in range(n - 1):
        N = Fr(1)
        for l in range(n - 1):
            if l != j:
                N *= a[j] - a[l]
        G.append([a[j] ** k / N for k in range(r)])
    G.append([Fr(0)] * (r - 1) + [Fr(1)])
    BT = []
    for j in range(n - 1):
        p = [Fr(1)]
        for l in range(n - 1):
            if l != j:
                p = polymul(p, [-a[l], Fr(1)])
        BT.append(p + [Fr(0)] * (n - len(p)))
    p = [Fr(1)]
    for l in range(n - 1):
        p = polymul(p, [-a[l], Fr(1)])
    BT.append(p)
    as_array = lambda M: np.array([[float(x) for x in row] for row in M])
    AT, G, BT = as_array(AT), as_array(G), as_array(BT)
    # The construction must compute the correlation (float64, random data), or nothing below means anything.
    rng = np.random.default_rng(0)
    d, g = rng.standard_normal(n), rng.standard_normal(r)
    direct = np.array([sum(d[i + k] * g[k] for k in range(r)) for i in range(m)])
    assert np.abs(AT @ ((G @ g) * (BT @ d)) - direct).max() < 1e-12, points
    return AT, G, BT


torch.set_num_threads(1)
BIN = os.environ.get("PERCEP_BIN", ".build/release/percep-dist")
_, structure, weights = vgg_lossnet.exported(BIN, tempfile.mkdtemp(prefix="winograd-sim-"))
shape = (2, 19, 128, 128)


def wconv(x, w, b, T):
    """conv2d(x, w, b, padding=1) as Winograd F(m x m, 3x3) with the transforms T = (A^T, G, B^T)."""
    AT, G, BT = T
    N, C, H, W = x.shape
    m = AT.shape[0]; t = m + 2
    d = F.unfold(F.pad(x, (1, 1, 1, 1)), t, stride=m).view(N, C, t, t, -1)
    V = torch.einsum('ij,ncjkt,lk->ncilt', BT, d, BT)
    U = torch.einsum('ij,kcjl,ml->kcim', G, w, G)
    M = torch.einsum('kcil,ncilt->nkilt', U, V)
    Y = torch.einsum('ij,nkjlt,ml->nkimt', AT, M, AT)
    K = w.shape[0]
    return F.fold(Y.reshape(N, K * m * m, -1), (H, W), m, stride=m) + b.view(1, -1, 1, 1)

def embed(x, dtype, T=None):
    """The loss network's last level: conv-ReLU blocks and 2x2 max-pools, the convs by T if given."""
    k = 0
    for n in structure:
        for _ in range(n):
            w, b = weights[k]; k += 1
            z = F.conv2d(x, w.to(dtype), b.to(dtype), padding=1) if T is None else wconv(x, w.to(dtype), b.to(dtype), T)
            x = z * (z > 0)
        x = F.max_pool2d(x, 2)
    return x

def grad(pred, target, dtype, T=None, target_T=None):
    """d mean((embed(pred) - embed(target))^2) / d pred; T for the prediction's convs, target_T the target's."""
    p = pred.to(dtype).clone().requires_grad_(True)
    with torch.no_grad():
        t = embed(target.to(dtype), dtype, target_T)
    loss = torch.mean((embed(p, dtype, T) - t) ** 2)
    loss.backward()
    return p.grad.double()


rel = lambda a, b: ((a - b).norm() / b.norm()).item()
sets = {"0,±1,±2": [0, 1, -1, 2, -2], "0,±1,1/2,-2": [0, -1, 1, 0.5, -2], "0,±1,±1/2": [0, 1, -1, 0.5, -0.5]}
only = sys.argv[2].split(";") if len(sys.argv) > 2 else list(sets) + ["F(2,3)"]
Ts = {k: tuple(torch.tensor(m, dtype=torch.float32) for m in matrices(v)) for k, v in sets.items() if k in only}
if "F(2,3)" in only:
    Ts["F(2,3)"] = tuple(torch.tensor(m, dtype=torch.float32) for m in matrices([0, 1, -1], m=2))
target_only = "0,±1,±2" in Ts
print("| input | direct f32 | " + " | ".join(f"Winograd {k}" for k in Ts) + (" | Winograd 0,±1,±2 on the target only" if target_only else "") + " |")
print("|---|---|" + "---|" * (len(Ts) + target_only))
for seed in range(int(sys.argv[1]) if len(sys.argv) > 1 else 7):
    gen = torch.Generator().manual_seed(seed)
    pred = torch.softmax(torch.randn(shape, generator=gen) * 2, 1)
    target = torch.softmax(torch.randn(shape, generator=gen) * 2, 1)
    g64 = grad(pred, target, torch.float64)
    cells = [rel(grad(pred, target, torch.float32), g64)]
    cells += [rel(grad(pred, target, torch.float32, T), g64) for T in Ts.values()]
    if target_only:
        cells.append(rel(grad(pred, target, torch.float32, None, Ts["0,±1,±2"]), g64))
    print(f"| {seed} | " + " | ".join(f"{c:.2e}" for c in cells) + " |", flush=True)
