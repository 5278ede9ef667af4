#!/usr/bin/env python3
"""Reference fixtures for the perceptual loss, computed with PyTorch and written with h5py.

For each case it writes two files into Tests/PerceptualTests/Fixtures/:
  <case>.lossnet.h5  a VGG-style loss network in the `percep-dist lossnet export` layout
                     (datasets features.<i>.weight/.bias in OIHW, torchvision's indexing; root
                     attributes structure, widths, kernel_size, in_channels, init, seed,
                     level_weights, fingerprint, family)
  <case>.case.h5     datasets pred, target (N×C×H×W), loss (scalar) and grad (d loss / d pred)

The weights are drawn here with torch (He init, bias 0), not by the project's RNG, so the test
checks the loss and its gradient independently of weight generation. The fingerprint attribute is
the project's FNV-1a over names, shapes and float bits, recomputed here. Each reference is
computed in float32 and checked against a float64 run before it is written.

Run: python3 tools/pytorch/make_lossnet_fixtures.py     (needs torch and h5py)
The ResNet-18, AlexNet and MobileNetV2 cases (lossnet_<family>.h5): make_lossnet_family_fixtures.py.
"""
import os
import struct
import sys

import h5py
import numpy as np
import torch

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "PerceptualTests", "Fixtures")

CASES = [
    # name, structure, widths, kernel, channels, level weights, size
    ("vgg16_k3_last", [2, 2, 3, 3, 3], [8, 16, 16, 24, 24], 3, 5, [0, 0, 0, 0, 1], 32),
    ("vgg_11111_k7_geometric", [1, 1, 1, 1, 1], [8, 8, 16, 16, 16], 7, 3, [1 / 16, 1 / 8, 1 / 4, 1 / 2, 1], 32),
    ("vgg11_k1_equal", [1, 1, 2, 2, 2], [6, 8, 8, 12, 12], 1, 4, [1, 1, 1, 1, 1], 32),
    ("vgg_3blocks_k5_mid", [2, 1, 2], [8, 8, 16], 5, 2, [0, 1, 0.5], 16),
]


def build(structure, widths, k, cin, gen, dtype):
    """Modules in torchvision's order and the state dict the project exports."""
    layers, state, c = [], {}, cin
    for convs, w in zip(structure, widths):
        for _ in range(convs):
            conv = torch.nn.Conv2d(c, w, k, padding=k // 2).to(dtype)
            std = (2.0 / (k * k * c)) ** 0.5
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen, dtype=torch.float64).to(dtype) * std)
                conv.bias.zero_()
            state[f"features.{len(layers)}.weight"] = conv.weight
            state[f"features.{len(layers)}.bias"] = conv.bias
            layers += [conv, torch.nn.ReLU()]
            c = w
        layers.append(torch.nn.MaxPool2d(2, 2))
    return layers, state


def levels(layers, x):
    out = []
    for m in layers:
        x = m(x)
        if isinstance(m, torch.nn.MaxPool2d):
            out.append(x)
    return out


def loss_and_grad(layers, pred, target, weights):
    pred = pred.clone().requires_grad_(True)
    with torch.no_grad():
        t_levels = levels(layers, target)
    p_levels = levels(layers, pred)
    loss = sum(w * torch.mean((p - t) ** 2) for w, p, t in zip(weights, p_levels, t_levels) if w > 0)
    loss.backward()
    return loss.detach(), pred.grad.detach()


def fingerprint(state):
    h = 0xCBF29CE484222325
    def mix(data):
        nonlocal h
        for b in data:
            h = ((h ^ b) * 0x100000001B3) & ((1 << 64) - 1)
    for name, t in state.items():
        mix(name.encode())
        for d in t.shape:
            mix(struct.pack("<Q", d))
        mix(t.detach().numpy().astype("<f4").tobytes())
    return h


def main():
    os.makedirs(OUT, exist_ok=True)
    for seed, (name, structure, widths, k, cin, weights, size) in enumerate(CASES):
        gen = torch.Generator().manual_seed(1000 + seed)
        layers32, state = build(structure, widths, k, cin, gen, torch.float32)
        layers64 = [m.double() if isinstance(m, torch.nn.Conv2d) else m for m in
                    [type(m)(m.in_channels, m.out_channels, m.kernel_size, padding=m.padding) if isinstance(m, torch.nn.Conv2d) else m for m in layers32]]
        for a, b in zip(layers32, layers64):
            if isinstance(a, torch.nn.Conv2d):
                with torch.no_grad():
                    b.weight.copy_(a.weight.double()); b.bias.copy_(a.bias.double())
        g = torch.Generator().manual_seed(2000 + seed)
        pred = torch.softmax(torch.randn(2, cin, size, size, generator=g) * 2, dim=1)
        target = torch.softmax(torch.randn(2, cin, size, size, generator=g) * 2, dim=1)
        loss, grad = loss_and_grad(layers32, pred, target, weights)
        loss64, grad64 = loss_and_grad(layers64, pred.double(), target.double(), weights)
        assert abs(loss.item() - loss64.item()) <= 1e-5 * abs(loss64.item()), (name, loss.item(), loss64.item())
        assert torch.allclose(grad.double(), grad64, rtol=1e-4, atol=1e-4 * grad64.abs().max().item()), name
        assert grad.abs().max() > 0 and loss > 0, name
        with h5py.File(os.path.join(OUT, f"{name}.lossnet.h5"), "w") as f:
            for key, t in state.items():
                f.create_dataset(key, data=t.detach().numpy().astype(np.float32))
            f.attrs["family"] = "vgg"
            f.attrs["structure"] = np.array(structure, dtype=np.int64)
            f.attrs["widths"] = np.array(widths, dtype=np.int64)
            f.attrs["kernel_size"] = np.int64(k)
            f.attrs["in_channels"] = np.int64(cin)
            f.attrs["init"] = "he"
            f.attrs["seed"] = np.uint64(1000 + seed)
            f.attrs["level_weights"] = np.array(weights, dtype=np.float64)
            f.attrs["fingerprint"] = np.uint64(fingerprint(state))
        with h5py.File(os.path.join(OUT, f"{name}.case.h5"), "w") as f:
            f.create_dataset("pred", data=pred.numpy().astype(np.float32))
            f.create_dataset("target", data=target.numpy().astype(np.float32))
            f.create_dataset("loss", data=np.float32(loss64.item()))
            f.create_dataset("grad", data=grad64.numpy().astype(np.float32))
        print(f"{name}: loss {loss64.item():.6g}, |grad|max {grad64.abs().max().item():.3g}")


def torchvision_names():
    """State-dict names and shapes of torchvision's ResNet-18 trunk, AlexNet features,
    MobileNetV2 features and GoogLeNet (no auxiliary classifiers, no fc) with a C-channel first
    layer: the project's networks must match them
    exactly (weights are not committed: ResNet-18 alone is 45 MB)."""
    import json
    try:
        import torchvision
    except RuntimeError:
        # A torchvision wheel built for another torch fails registering its C++ operators; the
        # model definitions this needs do not use them.
        import types
        for name in [n for n in sys.modules if n.startswith("torchvision")]:
            del sys.modules[name]
        sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
        import torchvision
    cin = 19
    out = {}
    m = torchvision.models.resnet18()
    m.conv1 = torch.nn.Conv2d(cin, 64, 7, 2, 3, bias=False)
    out["resnet18"] = [[k, list(v.shape)] for k, v in m.state_dict().items() if not k.startswith("fc.")]
    m = torchvision.models.alexnet()
    m.features[0] = torch.nn.Conv2d(cin, 64, 11, 4, 2)
    out["alexnet"] = [[k, list(v.shape)] for k, v in m.state_dict().items() if k.startswith("features.")]
    m = torchvision.models.mobilenet_v2()
    m.features[0][0] = torch.nn.Conv2d(cin, 32, 3, 2, 1, bias=False)
    out["mobilenetv2"] = [[k, list(v.shape)] for k, v in m.state_dict().items() if k.startswith("features.")]
    m = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False)
    m.conv1.conv = torch.nn.Conv2d(cin, 64, 7, 2, 3, bias=False)
    out["googlenet"] = [[k, list(v.shape)] for k, v in m.state_dict().items() if not k.startswith("fc.")]
    m = torchvision.models.vgg16()
    m.features[0] = torch.nn.Conv2d(cin, 64, 3, 1, 1)
    out["vgg16"] = [[k, list(v.shape)] for k, v in m.state_dict().items() if k.startswith("features.")]
    with open(os.path.join(OUT, "torchvision_names.json"), "w") as f:
        json.dump({"torchvision": torchvision.__version__, "in_channels": cin, "families": out}, f, indent=0)
    print("torchvision names:", {k: len(v) for k, v in out.items()})


if __name__ == "__main__":
    main()
    torchvision_names()
