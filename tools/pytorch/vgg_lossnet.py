"""The perceptual loss's VGG-style network in PyTorch, for the benchmark twins.

Block b has structure[b] convolutions (kernel k, "same" padding, He-normal weights, zero bias),
each followed by ReLU, then a 2x2 max-pool; frozen and in eval mode, as percep-dist builds it.
"""
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
