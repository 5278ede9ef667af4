#!/usr/bin/env python3
"""Plain-PyTorch twins of percep-dist's SegmentationModels, with mmseg's module structure and
state_dict names (mmseg itself is not needed):

  * ResNet (mmseg `ResNet`, torchvision-style 7×7 stem `conv1`/`bn1`, style 'pytorch': the stride
    of a Bottleneck on its 3×3 conv; BasicBlock dilates conv1 only) with dilations for output
    stride 8/16/32 and `contract_dilation` (first block of a dilated stage at half the dilation);
  * ConvModule (conv without bias → `bn` → ReLU), DepthwiseSeparableConvModule
    (`depthwise_conv`, `pointwise_conv`, both with BN and ReLU);
  * PSPHead, DepthwiseSeparableASPPHead (DeepLabV3+), FCNHead (num_convs=1, concat_input=False);
  * EncoderDecoder (`backbone`, `decode_head`, `auxiliary_head`).

Dropout2d(0.1) before conv_seg is left out, as in the Swift engine (it has no dropout op).
`build(name, classes, ...)` mirrors `makeSegmentationModel`: head widths scaled by base/64.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

STRIDES_DILATIONS = {8: ((1, 2, 1, 1), (1, 1, 2, 4)), 16: ((1, 2, 2, 1), (1, 1, 1, 2)), 32: ((1, 2, 2, 2), (1, 1, 1, 1))}
BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride=1, dilation=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        y = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(y + (self.downsample(x) if self.downsample is not None else x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride=1, dilation=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + (self.downsample(x) if self.downsample is not None else x))


class ResNet(nn.Module):
    def __init__(self, depth, output_stride=8, base=64, in_channels=3, contract_dilation=True):
        super().__init__()
        block = Bottleneck if depth >= 50 else BasicBlock
        strides, dilations = STRIDES_DILATIONS[output_stride]
        self.conv1 = nn.Conv2d(in_channels, base, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = base
        for i, n in enumerate(BLOCKS[depth]):
            planes, d = base << i, dilations[i]
            cout = planes * block.expansion
            downsample = None
            if strides[i] != 1 or cin != cout:
                downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, strides[i], bias=False), nn.BatchNorm2d(cout))
            layers = [block(cin, planes, strides[i], d // 2 if contract_dilation and d > 1 else d, downsample)]
            layers += [block(cout, planes, 1, d) for _ in range(n - 1)]
            cin = cout
            self.add_module(f"layer{i + 1}", nn.Sequential(*layers))

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for i in range(4):
            x = getattr(self, f"layer{i + 1}")(x)
            outs.append(x)
        return outs


class ConvModule(nn.Module):
    def __init__(self, cin, cout, k, padding=None, dilation=1, groups=1):
        super().__init__()
        p = k // 2 * dilation if padding is None else padding
        self.conv = nn.Conv2d(cin, cout, k, padding=p, dilation=dilation, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.activate = nn.ReLU()

    def forward(self, x):
        return self.activate(self.bn(self.conv(x)))


class DepthwiseSeparableConvModule(nn.Module):
    def __init__(self, cin, cout, k, padding=None, dilation=1):
        super().__init__()
        self.depthwise_conv = ConvModule(cin, cin, k, padding, dilation, groups=cin)
        self.pointwise_conv = ConvModule(cin, cout, 1)

    def forward(self, x):
        return self.pointwise_conv(self.depthwise_conv(x))


def resize(x, size):
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class PSPHead(nn.Module):
    def __init__(self, cin, channels, classes, pool_scales=(1, 2, 3, 6)):
        super().__init__()
        self.conv_seg = nn.Conv2d(channels, classes, 1)
        self.psp_modules = nn.ModuleList(
            [nn.Sequential(nn.AdaptiveAvgPool2d(s), ConvModule(cin, channels, 1)) for s in pool_scales])
        self.bottleneck = ConvModule(cin + len(pool_scales) * channels, channels, 3)

    def forward(self, feats):
        x = feats[3]
        outs = [x] + [resize(m(x), x.shape[2:]) for m in self.psp_modules]
        return self.conv_seg(self.bottleneck(torch.cat(outs, 1)))


class DepthwiseSeparableASPPHead(nn.Module):
    def __init__(self, cin, channels, c1_in, c1_channels, classes, dilations):
        super().__init__()
        self.conv_seg = nn.Conv2d(channels, classes, 1)
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), ConvModule(cin, channels, 1))
        self.aspp_modules = nn.ModuleList([
            ConvModule(cin, channels, 1) if d == 1 else DepthwiseSeparableConvModule(cin, channels, 3, d, d)
            for d in dilations])
        self.bottleneck = ConvModule((len(dilations) + 1) * channels, channels, 3)
        self.c1_bottleneck = ConvModule(c1_in, c1_channels, 1)
        self.sep_bottleneck = nn.Sequential(DepthwiseSeparableConvModule(channels + c1_channels, channels, 3),
                                            DepthwiseSeparableConvModule(channels, channels, 3))

    def forward(self, feats):
        x = feats[3]
        outs = [resize(self.image_pool(x), x.shape[2:])] + [m(x) for m in self.aspp_modules]
        out = self.bottleneck(torch.cat(outs, 1))
        c1 = self.c1_bottleneck(feats[0])
        out = torch.cat([resize(out, c1.shape[2:]), c1], 1)
        return self.conv_seg(self.sep_bottleneck(out))


class FCNHead(nn.Module):
    def __init__(self, cin, channels, classes, in_index=2):
        super().__init__()
        self.in_index = in_index
        self.conv_seg = nn.Conv2d(channels, classes, 1)
        self.convs = nn.Sequential(ConvModule(cin, channels, 3))

    def forward(self, feats):
        return self.conv_seg(self.convs(feats[self.in_index]))


class EncoderDecoder(nn.Module):
    def __init__(self, backbone, decode_head, auxiliary_head=None):
        super().__init__()
        self.backbone = backbone
        self.decode_head = decode_head
        if auxiliary_head is not None:
            self.auxiliary_head = auxiliary_head

    def forward(self, x):
        feats = self.backbone(x)
        aux = self.auxiliary_head(feats) if hasattr(self, "auxiliary_head") else None
        return self.decode_head(feats), aux


def build(name, classes, output_stride=8, aux=True, base=64, aspp_dilations=None, in_channels=3):
    head, depth = name.split("_")
    depth = int(depth[1:])
    big = depth >= 50
    scaled = lambda c: max(1, c * base // 64)
    backbone = ResNet(depth, output_stride, base, in_channels)
    c4 = (base << 3) * (4 if big else 1)
    c3 = (base << 2) * (4 if big else 1)
    c1 = base * (4 if big else 1)
    if head == "pspnet":
        dh = PSPHead(c4, scaled(512 if big else 128), classes)
    else:
        rates = aspp_dilations or ((1, 12, 24, 36) if output_stride == 8 else (1, 6, 12, 18))
        dh = DepthwiseSeparableASPPHead(c4, scaled(512 if big else 128), c1, scaled(48 if big else 12), classes, rates)
    ah = FCNHead(c3, scaled(256 if big else 64), classes) if aux else None
    return EncoderDecoder(backbone, dh, ah)


def init_like_mmseg(model):
    """Kaiming-normal (fan_out, ReLU) convs, BN γ=1 β=0, conv_seg N(0, 0.01²) with bias 0."""
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            if name.endswith("conv_seg"):
                nn.init.normal_(m.weight, std=0.01)
            else:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
