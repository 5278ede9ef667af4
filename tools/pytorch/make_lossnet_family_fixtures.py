#!/usr/bin/env python3
"""Reference loss and gradient of the perceptual loss for the ResNet-18, AlexNet, MobileNetV2 and
GoogLeNet loss networks, computed with PyTorch (tools/pytorch/lossnet_families.py) and written with h5py.

The sibling of make_lossnet_fixtures.py (the VGG cases). These networks have torchvision's full
widths (ResNet-18's trunk alone is 11.2 M weights, 45 MB), so their weights are not stored:
both sides generate them from a counter-based formula that gives bit-identical float32 values in
NumPy and Swift (integer SplitMix64 and exactly rounded arithmetic only), and the file stores the
FNV-1a fingerprint of the result so the Swift test proves it built the very same weights.

Each case writes Tests/PerceptualTests/Fixtures/lossnet_<family>.h5 with
  datasets  pred, target [N, C, H, W] float32, loss [] float32 (the float64 reference, rounded),
            grad [N, C, H, W] float32 (d loss / d pred, float64 reference, rounded)
            — the datasets of the VGG cases' <case>.case.h5;
  root attributes as the VGG cases' <case>.lossnet.h5 (the `percep-dist lossnet export` layout,
            read by LossNetworkFile's config reader): family, structure, widths, kernel_size (the
            config defaults; unused by these families), in_channels, init ("he": the formula's
            convolution weights have He variance), seed (the formula's seed), level_weights,
            fingerprint (of the formula weights, in state-dict order);
            plus weights = "splitmix64-uniform-v1" naming the formula below and loss64 (the
            float64 loss before rounding).

The formula (`fixture_weights`): state-dict entry `name` (shape s, n elements) gets
  key   = FNV-1a-64(name's UTF-8 bytes) ^ seed
  x_i   = key + (i + 1) · 0x9E3779B97F4A7C15        (mod 2⁶⁴), i = 0 … n − 1
  z_i   = SplitMix64's finaliser of x_i
  u_i   = ((z_i >> 40) − 2²³) · 2⁻²³                 (exact double in [−1, 1))
  v_i   = Float(center + Double(half) · u_i)         (the product is exact: 24 × 24 bits)
with (center, half) by the name's last component:
  weight, rank 4 (conv)  0, Float(√(6 / fan_in)), fan_in = s[1]·s[2]·s[3]   (He-uniform)
  weight, rank 1 (BN γ)  1, 0.5
  bias (conv or BN β)    0, 0.25
  running_mean           0, 0.25
  running_var            1.25, 0.75
  num_batches_tracked    0 (constant)
The reference is computed in float64 from these float32 weights and the float32 inputs; the
script also runs PyTorch in float32 and refuses a case whose float32 loss or gradient is not
within a tenth of the Swift test's tolerance (loss 1e-4 relative, gradient 1e-3 relative norm),
so that the test measures the engine, not ill-conditioning (ReLU/ReLU6 kinks, max-pool ties).
It also checks that every level contributes to the loss and to the gradient.

Run: python3 tools/pytorch/make_lossnet_family_fixtures.py   (needs torch, numpy and h5py)
     python3 tools/pytorch/make_lossnet_family_fixtures.py --only googlenet   (one family's fixture)
     python3 tools/pytorch/make_lossnet_family_fixtures.py --gradcheck        (+ autograd.gradcheck,
                                                                    fast mode, seconds)
     python3 tools/pytorch/make_lossnet_family_fixtures.py --gradcheck-full   (full Jacobians, ~5 min)
"""
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lossnet_families as families  # noqa: E402
from make_lossnet_fixtures import OUT, fingerprint  # noqa: E402

CASES = [
    # family, in_channels, level weights, batch, height, width, seed
    ("resnet18", 3, [1, 1, 1, 1], 2, 35, 41, 18),
    ("alexnet", 2, [1, 1, 1], 2, 67, 75, 11),
    ("mobilenetv2", 5, [1, 1, 1, 1, 1], 2, 33, 37, 2),
    ("googlenet", 3, [1, 1, 1], 2, 35, 41, 22),
]
WEIGHTS_FORMULA = "splitmix64-uniform-v1"
# The Swift test's tolerances; PyTorch's own float32 result must be within a tenth of them.
LOSS_RTOL, GRAD_RTOL = 1e-4, 1e-3

M64 = (1 << 64) - 1


def fnv1a(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & M64
    return h


def fixture_weights(name, shape, seed):
    """The formula's float32 values for state-dict entry `name` (see the module docstring)."""
    leaf = name.rsplit(".", 1)[-1]
    n = int(np.prod(shape, dtype=np.int64))
    if leaf == "num_batches_tracked":
        return np.zeros(shape, dtype=np.float32)
    if leaf == "weight" and len(shape) == 4:
        center, half = 0.0, float(np.float32(np.sqrt(6.0 / (shape[1] * shape[2] * shape[3]))))
    elif leaf == "weight" and len(shape) == 1:
        center, half = 1.0, 0.5
    elif leaf in ("bias", "running_mean"):
        center, half = 0.0, 0.25
    elif leaf == "running_var":
        center, half = 1.25, 0.75
    else:
        raise ValueError(f"no formula for {name} {list(shape)}")
    key = np.uint64(fnv1a(name.encode()) ^ seed)
    with np.errstate(over="ignore"):
        x = key + (np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15))
        z = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = ((z >> np.uint64(40)).astype(np.int64) - (1 << 23)).astype(np.float64) * 2.0 ** -23
    return (center + half * u).astype(np.float32).reshape(shape)


def formula_state(net, seed):
    """{name: float32 array} for every state-dict entry of `net`, in state-dict order."""
    return {k: fixture_weights(k, tuple(v.shape), seed) for k, v in net.state_dict().items()}


def load(net, state):
    net.load_state_dict({k: torch.from_numpy(v).to(net.state_dict()[k].dtype) for k, v in state.items()}, strict=True)
    return net


def loss_and_grad(net, pred, target, weights):
    pred = pred.clone().requires_grad_(True)
    loss = families.perceptual_loss(net, pred, target, weights)
    loss.backward()
    return loss.detach(), pred.grad.detach()


def rel_norm(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def per_level(net, pred, target, weights):
    """Each level's loss term and the norm of its gradient (float64)."""
    out = []
    for j, w in enumerate(weights):
        if w == 0:
            continue
        one = [0] * len(weights)
        one[j] = w
        loss, grad = loss_and_grad(net, pred, target, one)
        out.append((j, loss.item(), grad.norm().item()))
    return out


def activation_report(net, x):
    """Fraction of ReLU/ReLU6 inputs on the flat parts (≤ 0, ≥ 6 for ReLU6) over the network."""
    stats = {"relu_dead": [0, 0], "relu6_top": [0, 0]}

    def hook(m, inp, _out):
        v = inp[0].detach()
        stats["relu_dead"][0] += int((v <= 0).sum()); stats["relu_dead"][1] += v.numel()
        if isinstance(m, torch.nn.ReLU6):
            stats["relu6_top"][0] += int((v >= 6).sum()); stats["relu6_top"][1] += v.numel()

    # In-place activations overwrite their input: hook before they run.
    handles = [m.register_forward_pre_hook(lambda m, inp: hook(m, inp, None))
               for m in net.modules() if isinstance(m, (torch.nn.ReLU, torch.nn.ReLU6))]
    with torch.no_grad():
        net.levels(x)
    for h in handles:
        h.remove()
    return {k: v[0] / max(v[1], 1) for k, v in stats.items()}


def make_case(family, cin, weights, n, h, w, seed):
    assert min(h, w) >= families.MINIMUM_INPUT_SIZE[family]
    net64 = families.build(family, cin, torch.float64)
    net32 = families.build(family, cin, torch.float32)
    state = formula_state(net64, seed)
    load(net64, state); load(net32, state)
    g = torch.Generator().manual_seed(3000 + seed)
    pred = torch.softmax(torch.randn(n, cin, h, w, generator=g) * 2, dim=1)
    target = torch.softmax(torch.randn(n, cin, h, w, generator=g) * 2, dim=1)
    loss64, grad64 = loss_and_grad(net64, pred.double(), target.double(), weights)
    loss32, grad32 = loss_and_grad(net32, pred, target, weights)
    loss_err = abs(loss32.item() - loss64.item()) / abs(loss64.item())
    grad_err = rel_norm(grad32, grad64)
    levels = per_level(net64, pred.double(), target.double(), weights)
    act = activation_report(net64, pred.double())
    shapes = [list(t.shape) for t in net64.levels(pred.double())]
    print(f"{family}: C={cin} input {n}x{cin}x{h}x{w}, level shapes {shapes}")
    print(f"  loss {loss64.item():.10g} (float32 off by {loss_err:.2e}), |grad| {grad64.norm().item():.4g} "
          f"(float32 off by {grad_err:.2e} relative norm), |grad|max {grad64.abs().max().item():.3g}")
    print("  per level (j, loss term, |d term / d pred|): " + ", ".join(f"({j}, {l:.4g}, {gn:.3g})" for j, l, gn in levels))
    print(f"  activations on flat parts: ReLU(6) ≤ 0 {act['relu_dead']:.2f}, ReLU6 ≥ 6 {act['relu6_top']:.3f}")
    assert loss_err <= 0.1 * LOSS_RTOL, (family, loss_err)
    assert grad_err <= 0.1 * GRAD_RTOL, (family, grad_err)
    assert all(l > 0 and gn > 0 for _, l, gn in levels), (family, levels)
    fp = fingerprint({k: torch.from_numpy(v) for k, v in state.items()})
    path = os.path.join(OUT, f"lossnet_{family}.h5")
    with h5py.File(path, "w") as f:
        f.create_dataset("pred", data=pred.numpy().astype(np.float32))
        f.create_dataset("target", data=target.numpy().astype(np.float32))
        f.create_dataset("loss", data=np.float32(loss64.item()))
        f.create_dataset("grad", data=grad64.numpy().astype(np.float32))
        f.attrs["family"] = family
        f.attrs["structure"] = np.array([2, 2, 3, 3, 3], dtype=np.int64)
        f.attrs["widths"] = np.array([64, 128, 256, 512, 512], dtype=np.int64)
        f.attrs["kernel_size"] = np.int64(3)
        f.attrs["in_channels"] = np.int64(cin)
        f.attrs["init"] = "he"
        f.attrs["seed"] = np.uint64(seed)
        f.attrs["level_weights"] = np.array(weights, dtype=np.float64)
        f.attrs["fingerprint"] = np.uint64(fp)
        f.attrs["weights"] = WEIGHTS_FORMULA
        f.attrs["loss64"] = np.float64(loss64.item())
    print(f"  wrote {os.path.relpath(path)} ({os.path.getsize(path)} bytes), fingerprint {fp}")


def gradcheck(full=False):
    """autograd.gradcheck of the loss w.r.t. the prediction on a tiny case per family (float64,
    formula weights, batch 1, the smallest input side, equal level weights). Fast mode (one
    random projection, seconds): 2 channels; full mode (every Jacobian entry, ~5 min): 1 channel."""
    for family, *_ in CASES:
        cin = 1 if full else 2
        net = families.build(family, cin, torch.float64)
        load(net, formula_state(net, 7))
        s = families.MINIMUM_INPUT_SIZE[family]
        g = torch.Generator().manual_seed(5)
        pred = torch.rand(1, cin, s, s, generator=g, dtype=torch.float64).requires_grad_(True)
        target = torch.rand(1, cin, s, s, generator=g, dtype=torch.float64)
        weights = [1.0] * net.LEVELS
        ok = torch.autograd.gradcheck(lambda p: families.perceptual_loss(net, p, target, weights), (pred,),
                                      eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=not full)
        print(f"gradcheck ({'full' if full else 'fast'}) {family} 1x{cin}x{s}x{s}: {ok}")


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    # `--only FAMILY[,FAMILY…]` regenerates just those fixtures.
    only = sys.argv[sys.argv.index("--only") + 1].split(",") if "--only" in sys.argv else None
    for case in CASES:
        if only is None or case[0] in only:
            make_case(*case)
    if "--gradcheck" in sys.argv or "--gradcheck-full" in sys.argv:
        gradcheck(full="--gradcheck-full" in sys.argv)


if __name__ == "__main__":
    main()
