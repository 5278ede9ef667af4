#!/usr/bin/env python3
"""Plain-PyTorch twins of percep-dist's SegmentationModels, with mmseg's module structure and
state_dict names (mmseg itself is not needed):

  * ResNet (mmseg `ResNet`, torchvision-style 7×7 stem `conv1`/`bn1`, style 'pytorch': the stride
    of a Bottleneck on its 3×3 conv; BasicBlock dilates conv1 only) with dilations for output
    stride 8/16/32 and `contract_dilation` (first block of a dilated stage at half the dilation);
  * ConvModule (conv without bias → `bn` → ReLU), DepthwiseSeparableConvModule
    (`depthwise_conv`, `pointwise_conv`, both with BN and ReLU);
  * PSPHead, DepthwiseSeparableASPPHead (DeepLabV3+), FCNHead (num_convs=1, concat_input=False);
  * EncoderDecoder (`backbone`, `decode_head`, `auxiliary_head`);
  * HRNet (mmseg `HRNet`, HRNetV2: all four branches out) with the `fcn_hr*` FCN head
    (resize_concat over the branches, one 1×1 ConvModule); the stem width `base` (mmseg: 64)
    scales the branch widths for narrow variants. `check_twin_against_mmseg.py` compares it with
    mmseg 1.2.2's own classes: same state_dict names, shapes and order, same logits bit for bit.

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


# mmseg's fcn_hr* `extra`: (stage-1 Bottlenecks, branch widths, HRModules in stages 2-4, blocks per branch).
HRNET = {"fcn_hr18s": (2, (18, 36, 72, 144), (1, 3, 2), 2),
         "fcn_hr18": (4, (18, 36, 72, 144), (1, 4, 3), 4),
         "fcn_hr48": (4, (48, 96, 192, 384), (1, 4, 3), 4)}


def conv_bn(cin, cout, k, stride, relu):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*(layers + [nn.ReLU()] if relu else layers))


class HRModule(nn.Module):
    def __init__(self, widths, blocks):
        super().__init__()
        self.branches = nn.ModuleList(
            [nn.Sequential(*[BasicBlock(w, w) for _ in range(blocks)]) for w in widths])
        fuse = []
        for i in range(len(widths)):
            row = []
            for j in range(len(widths)):
                if j > i:
                    row.append(conv_bn(widths[j], widths[i], 1, 1, False))
                elif j == i:
                    row.append(None)
                else:
                    row.append(nn.Sequential(*[conv_bn(widths[j], widths[i] if k == i - j - 1 else widths[j], 3, 2,
                                                       k != i - j - 1) for k in range(i - j)]))
            fuse.append(nn.ModuleList(row))
        self.fuse_layers = nn.ModuleList(fuse)
        self.relu = nn.ReLU()   # a module, so the fixture script's ReLU-margin hooks see it

    def forward(self, xs):
        xs = [b(x) for b, x in zip(self.branches, xs)]
        out = []
        for i, row in enumerate(self.fuse_layers):
            y = 0
            for j, x in enumerate(xs):
                if j == i:
                    y = y + x
                elif j > i:
                    t = row[j](x)
                    # mmseg: Upsample(scale_factor=2**(j-i)) to int sizes, then resize to branch i.
                    t = resize(t, [int(d * 2 ** (j - i)) for d in t.shape[2:]])
                    y = y + resize(t, xs[i].shape[2:])
                else:
                    y = y + row[j](x)
            out.append(self.relu(y))
        return out


class HRNet(nn.Module):
    def __init__(self, name, base=64, in_channels=3):
        super().__init__()
        stage1_blocks, widths, modules, blocks = HRNET[name]
        widths = [max(1, w * base // 64) for w in widths]
        self.conv1 = nn.Conv2d(in_channels, base, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        self.conv2 = nn.Conv2d(base, base, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(base)
        cout = base * 4
        down = nn.Sequential(nn.Conv2d(base, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.layer1 = nn.Sequential(Bottleneck(base, base, downsample=down),
                                    *[Bottleneck(cout, base) for _ in range(stage1_blocks - 1)])
        previous = [cout]
        for k, count in enumerate(modules):
            current = widths[:k + 2]
            trans = []
            for i, w in enumerate(current):
                if i < len(previous):
                    trans.append(None if w == previous[i] else conv_bn(previous[i], w, 3, 1, True))
                else:
                    steps = i + 1 - len(previous)
                    trans.append(nn.Sequential(*[conv_bn(previous[-1], w if s == steps - 1 else previous[-1], 3, 2, True)
                                                 for s in range(steps)]))
            self.add_module(f"transition{k + 1}", nn.ModuleList(trans))
            self.add_module(f"stage{k + 2}", nn.Sequential(*[HRModule(current, blocks) for _ in range(count)]))
            previous = current
        self.widths = widths
        self.relu = nn.ReLU()

    def forward(self, x):
        x = self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))
        ys = [self.layer1(x)]
        for k in range(3):
            trans = getattr(self, f"transition{k + 1}")
            xs = [ys[i] if t is None else t(ys[i] if i < len(ys) else ys[-1]) for i, t in enumerate(trans)]
            for m in getattr(self, f"stage{k + 2}"):
                xs = m(xs)
            ys = xs
        return ys


class FCNConcatHead(nn.Module):
    """mmseg's FCNHead with input_transform='resize_concat', kernel_size=1, num_convs=1."""

    def __init__(self, cin, classes):
        super().__init__()
        self.conv_seg = nn.Conv2d(cin, classes, 1)
        self.convs = nn.Sequential(ConvModule(cin, cin, 1))

    def forward(self, feats):
        x = torch.cat([resize(f, feats[0].shape[2:]) for f in feats], 1)
        return self.conv_seg(self.convs(x))


def build(name, classes, output_stride=8, aux=True, base=64, aspp_dilations=None, in_channels=3):
    if name in HRNET:   # no auxiliary head and no output stride in mmseg's HRNet recipes
        backbone = HRNet(name, base, in_channels)
        return EncoderDecoder(backbone, FCNConcatHead(sum(backbone.widths), classes))
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
