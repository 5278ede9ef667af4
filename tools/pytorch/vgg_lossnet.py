"""The perceptual loss's VGG-style network in PyTorch, for the benchmark twins.

Block b has structure[b] convolutions (kernel k, "same" padding, He-normal weights, zero bias),
each followed by ReLU, then a 2x2 max-pool; frozen and in eval mode, as percep-dist builds it.
`exported` reads the very weights percep-dist uses, for the accuracy tools.
"""
import os
import subprocess

import torch


def build(structure, widths, in_channels, kernel_size=3):
    layers, c = [], in_channels
    for n, w in zip(structure, widths):
        for _ in range(n):
            conv = torch.nn.Conv2d(c, w, kernel_size, padding=kernel_size // 2)
            torch.nn.init.kaiming_normal_(conv.weight)
            torch.nn.init.zeros_(conv.bias)
            layers += [conv, torch.nn.ReLU()]
            c = w
        layers.append(torch.nn.MaxPool2d(2, 2))
    net = torch.nn.Sequential(*layers)
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


def exported(binary, folder, name="vgg16.h5"):
    """The default loss network as `percep-dist lossnet export` writes it into `folder`: its path,
    its structure and its convolutions' (weight, bias) tensors in order."""
    import h5py  # only the accuracy tools need it, not the benchmark twins

    path = os.path.join(folder, name)
    subprocess.run([binary, "lossnet", "export", "--out", path], check=True, capture_output=True)
    with h5py.File(path) as f:
        structure = [int(n) for n in f.attrs["structure"]]
        layers = sorted({int(k.split(".")[1]) for k in f.keys() if k.startswith("features.")})
        weights = [(torch.from_numpy(f[f"features.{i}.weight"][()]), torch.from_numpy(f[f"features.{i}.bias"][()]))
                   for i in layers]
    return path, structure, weights
