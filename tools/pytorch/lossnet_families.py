#!/usr/bin/env python3
"""Plain-PyTorch twins of the perceptual loss's non-VGG loss networks
(Sources/Perceptual/LossNetworks.swift), written after torchvision 0.29's modules so that
`state_dict()` keys, shapes and order equal torchvision's (torchvision itself is not needed):

  * ResNet18Trunk   resnet18 without avgpool/fc: conv1, bn1, relu, maxpool, layer1 … layer4
                    (BasicBlock with a `downsample` conv1×1+BN when stride ≠ 1 or channels
                    change); levels are the outputs of layer1 … layer4 (4 levels).
  * AlexNetFeatures alexnet.features; levels are the outputs of its three max-pools
                    (features.2, .5, .12; 3 levels).
  * MobileNetV2Features
                    mobilenet_v2(width_mult=1.0).features: Conv2dNormActivation (a Sequential
                    "0" conv, "1" BN, "2" ReLU6) and InvertedResidual (children under `conv`);
                    levels are the outputs of features.1, .3, .6, .13 and .18 (strides 2, 4, 8,
                    16, 32; 5 levels).
  * GoogLeNetTrunk  googlenet(aux_logits=False, transform_input=False) without avgpool, dropout
                    and fc: BasicConv2d (conv without bias, BN eps 0.001, ReLU), Inception blocks
                    (torchvision's 3x3 "5x5" branch); levels are the outputs of inception3b,
                    inception4e and inception5b (strides 8, 16, 32; 3 levels).

`in_channels` replaces the first convolution's 3 input channels, as the Swift networks do for a
task's C channels. BN runs with its running statistics (call `.eval()`); eps 1e-5 as torchvision.
Each network's `levels(x, up_to=None)` returns the level outputs 0 … up_to, like the Swift
`levels(_:upTo:)`.
"""
import torch
import torch.nn as nn

# ---------------------------------------------------------------------------------------------
# ResNet-18 (torchvision.models.resnet)


def conv3x3(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out = out + identity
        return self.relu(out)


class ResNet18Trunk(nn.Module):
    LEVELS = 4

    def __init__(self, in_channels=3):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, 2)
        self.layer2 = self._make_layer(128, 2, stride=2)
        self.layer3 = self._make_layer(256, 2, stride=2)
        self.layer4 = self._make_layer(512, 2, stride=2)

    def _make_layer(self, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * BasicBlock.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * BasicBlock.expansion, stride),
                                       nn.BatchNorm2d(planes * BasicBlock.expansion))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * BasicBlock.expansion
        layers += [BasicBlock(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def levels(self, x, up_to=None):
        up_to = self.LEVELS - 1 if up_to is None else up_to
        h = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out = []
        for stage in [self.layer1, self.layer2, self.layer3, self.layer4][:up_to + 1]:
            h = stage(h)
            out.append(h)
        return out


# ---------------------------------------------------------------------------------------------
# AlexNet (torchvision.models.alexnet), `features` only


class AlexNetFeatures(nn.Module):
    LEVELS = 3
    LEVEL_ENDS = (2, 5, 12)

    def __init__(self, in_channels=3):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )

    def levels(self, x, up_to=None):
        return _sequential_levels(self.features, self.LEVEL_ENDS, x, up_to)


# ---------------------------------------------------------------------------------------------
# MobileNetV2 (torchvision.models.mobilenetv2 + torchvision.ops.misc.Conv2dNormActivation)


def _make_divisible(v, divisor, min_value=None):
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class Conv2dNormActivation(nn.Sequential):
    """conv (no bias) → BN → ReLU6, children "0", "1", "2" (torchvision.ops.misc)."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, groups=1):
        padding = (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU6(inplace=True),
        )
        self.out_channels = out_channels


class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        self.stride = stride
        hidden_dim = int(round(inp * expand_ratio))
        self.use_res_connect = self.stride == 1 and inp == oup
        layers = []
        if expand_ratio != 1:
            layers.append(Conv2dNormActivation(inp, hidden_dim, kernel_size=1))
        layers.extend([
            Conv2dNormActivation(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim),
            nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        ])
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup

    def forward(self, x):
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2Features(nn.Module):
    LEVELS = 5
    LEVEL_ENDS = (1, 3, 6, 13, 18)
    SETTING = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, in_channels=3, width_mult=1.0, round_nearest=8):
        super().__init__()
        input_channel = _make_divisible(32 * width_mult, round_nearest)
        last_channel = _make_divisible(1280 * max(1.0, width_mult), round_nearest)
        features = [Conv2dNormActivation(in_channels, input_channel, stride=2)]
        for t, c, n, s in self.SETTING:
            output_channel = _make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                features.append(InvertedResidual(input_channel, output_channel, s if i == 0 else 1, expand_ratio=t))
                input_channel = output_channel
        features.append(Conv2dNormActivation(input_channel, last_channel, kernel_size=1))
        self.features = nn.Sequential(*features)

    def levels(self, x, up_to=None):
        return _sequential_levels(self.features, self.LEVEL_ENDS, x, up_to)


# ---------------------------------------------------------------------------------------------
# GoogLeNet (torchvision.models.googlenet, aux_logits=False, transform_input=False)


class BasicConv2d(nn.Module):
    def __init__(self, in_channels, out_channels, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)
        self.relu = nn.ReLU()   # torchvision calls F.relu; a module (no state) lets hooks see it

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    def __init__(self, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(BasicConv2d(in_channels, ch3x3red, kernel_size=1),
                                     BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
        # torchvision's "5x5" branch has a 3x3 kernel (kept there for its pretrained weights).
        self.branch3 = nn.Sequential(BasicConv2d(in_channels, ch5x5red, kernel_size=1),
                                     BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
                                     BasicConv2d(in_channels, pool_proj, kernel_size=1))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class GoogLeNetTrunk(nn.Module):
    """Levels: the outputs of inception3b, inception4e and inception5b (strides 8, 16, 32)."""
    LEVELS = 3

    def __init__(self, in_channels=3):
        super().__init__()
        self.conv1 = BasicConv2d(in_channels, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)

    def levels(self, x, up_to=None):
        up_to = self.LEVELS - 1 if up_to is None else up_to
        x = self.maxpool2(self.conv3(self.conv2(self.maxpool1(self.conv1(x)))))
        stages = [[self.inception3a, self.inception3b],
                  [self.maxpool3, self.inception4a, self.inception4b, self.inception4c, self.inception4d, self.inception4e],
                  [self.maxpool4, self.inception5a, self.inception5b]]
        out = []
        for stage in stages[:up_to + 1]:
            for m in stage:
                x = m(x)
            out.append(x)
        return out


# ---------------------------------------------------------------------------------------------


def _sequential_levels(seq, ends, x, up_to):
    up_to = len(ends) - 1 if up_to is None else up_to
    out = []
    for i, m in enumerate(seq):
        x = m(x)
        if i in ends:
            out.append(x)
            if len(out) > up_to:
                break
    return out


FAMILIES = {"resnet18": ResNet18Trunk, "alexnet": AlexNetFeatures, "mobilenetv2": MobileNetV2Features,
            "googlenet": GoogLeNetTrunk}
# The smallest input side each accepts (Swift `minimumInputSize`).
MINIMUM_INPUT_SIZE = {"resnet18": 32, "alexnet": 63, "mobilenetv2": 32, "googlenet": 31}


def build(family, in_channels, dtype=torch.float64):
    """The frozen network of `family` in eval mode (weights as torch initialises them)."""
    net = FAMILIES[family](in_channels).to(dtype)
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


def perceptual_loss(net, pred, target, weights):
    """Σ_j w_j · mean((f_j(pred) − f_j(target))²) over levels with w_j > 0, the target embedded
    without gradient; levels after the last positive weight are not computed (as in Swift)."""
    last = max(j for j, w in enumerate(weights) if w > 0)
    with torch.no_grad():
        t_levels = net.levels(target, last)
    p_levels = net.levels(pred, last)
    total = None
    for j in range(last + 1):
        if weights[j] > 0:
            term = torch.mean((p_levels[j] - t_levels[j]) ** 2) * weights[j]
            total = term if total is None else total + term
    return total
