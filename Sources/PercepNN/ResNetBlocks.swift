import Foundation
import PercepCore

// Residual blocks shared by the ResNet loss network (Perceptual) and the segmentation backbones
// (SegmentationModels): one implementation, torchvision/mmseg parameter names
// (`conv1`, `bn1`, …, `downsample.0`, `downsample.1`).

/// A 3×3 convolution without bias whose padding equals its dilation, so the spatial size is
/// kept at stride 1 (mmseg's `build_conv_layer(…, 3, padding=dilation, dilation=dilation)`).
func conv3x3(_ cin: Int, _ cout: Int, stride: Int, dilation: Int, _ initializer: Initializer, _ rng: inout SeededRNG) -> Conv2d {
    Conv2d(cin, cout, kernel: (3, 3), stride: (stride, stride), padding: (dilation, dilation), dilation: (dilation, dilation),
           bias: false, initializer: initializer, rng: &rng)
}

/// A 1×1 convolution without bias.
func conv1x1(_ cin: Int, _ cout: Int, stride: Int = 1, _ initializer: Initializer, _ rng: inout SeededRNG) -> Conv2d {
    Conv2d(cin, cout, kernel: (1, 1), stride: (stride, stride), bias: false, initializer: initializer, rng: &rng)
}

/// ResNet's BasicBlock (torchvision, mmseg): conv3×3(stride, dilation)–BN–ReLU–conv3×3–BN, plus
/// the identity or a 1×1 `downsample` (conv + BN), then ReLU. Output channels = `planes`.
///
/// input: [N, cin, H, W] → [N, planes, H/stride, W/stride]. Only conv1 is dilated, as in mmseg's
/// BasicBlock (conv2 keeps padding 1, dilation 1). Weights are drawn conv1, conv2, downsample
/// in that order; the ResNet-18 loss network's fingerprint depends on this order.
public final class BasicBlock: Module, Layer {
    /// Output channels per `planes` (1 for BasicBlock).
    public static let expansion = 1
    /// The block's layers, with PyTorch's names.
    public let conv1: Conv2d, bn1: BatchNorm2d, conv2: Conv2d, bn2: BatchNorm2d
    /// 1×1 conv (stride) + BN on the shortcut, or nil for the identity.
    public let downsample: Sequential?

    /// A block; `downsample` defaults to "needed" (stride ≠ 1 or cin ≠ planes), as torchvision
    /// and mmseg decide it.
    public init(_ cin: Int, _ planes: Int, stride: Int = 1, dilation: Int = 1, downsample: Bool? = nil,
                initializer: Initializer, rng: inout SeededRNG) {
        conv1 = conv3x3(cin, planes, stride: stride, dilation: dilation, initializer, &rng)
        bn1 = BatchNorm2d(planes)
        conv2 = conv3x3(planes, planes, stride: 1, dilation: 1, initializer, &rng)
        bn2 = BatchNorm2d(planes)
        let needsDownsample = downsample ?? (stride != 1 || cin != planes)
        self.downsample = needsDownsample ? Sequential([conv1x1(cin, planes, stride: stride, initializer, &rng), BatchNorm2d(planes)]) : nil
        super.init()
        registerModule("conv1", conv1); registerModule("bn1", bn1)
        registerModule("conv2", conv2); registerModule("bn2", bn2)
        if let d = self.downsample { registerModule("downsample", d) }
    }

    /// relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let y = bn2(conv2(bn1(conv1(x)).relu()))
        return Tensor.addRelu(y, downsample?(x) ?? x)
    }
}

/// ResNet's Bottleneck in the "pytorch" style (torchvision, mmseg `style='pytorch'`): 1×1
/// reduce – 3×3 (stride, dilation) – 1×1 expand to 4·planes, each followed by BN, ReLU after the
/// first two and after the residual sum. The stride sits on the 3×3 convolution.
///
/// input: [N, cin, H, W] → [N, 4·planes, H/stride, W/stride]. Weights are drawn conv1, conv2,
/// conv3, downsample.
public final class Bottleneck: Module, Layer {
    /// Output channels per `planes` (4 for Bottleneck).
    public static let expansion = 4
    /// How the projection shortcut is named: torchvision's `downsample.0` / `downsample.1`, or
    /// VNL's `shortcut.conv` / `shortcut.bn` (its ResNeXt body in the ResNet-50 configuration).
    public enum ShortcutNames: Sendable { case torchvision, vnl }
    /// The block's layers, with PyTorch's names.
    public let conv1: Conv2d, bn1: BatchNorm2d, conv2: Conv2d, bn2: BatchNorm2d, conv3: Conv2d, bn3: BatchNorm2d
    /// 1×1 conv (stride) + BN on the shortcut, or nil for the identity.
    public let downsample: (any Layer)?

    /// A block; `downsample` defaults to "needed" (stride ≠ 1 or cin ≠ 4·planes).
    public init(_ cin: Int, _ planes: Int, stride: Int = 1, dilation: Int = 1, downsample: Bool? = nil,
                shortcutNames: ShortcutNames = .torchvision, initializer: Initializer, rng: inout SeededRNG) {
        let cout = planes * Self.expansion
        conv1 = conv1x1(cin, planes, initializer, &rng)
        bn1 = BatchNorm2d(planes)
        conv2 = conv3x3(planes, planes, stride: stride, dilation: dilation, initializer, &rng)
        bn2 = BatchNorm2d(planes)
        conv3 = conv1x1(planes, cout, initializer, &rng)
        bn3 = BatchNorm2d(cout)
        let needsDownsample = downsample ?? (stride != 1 || cin != cout)
        var shortcut: (any Layer)?
        if needsDownsample {
            let conv = conv1x1(cin, cout, stride: stride, initializer, &rng), bn = BatchNorm2d(cout)
            shortcut = shortcutNames == .torchvision ? Sequential([conv, bn]) : ConvBN(conv, bn)
        }
        self.downsample = shortcut
        super.init()
        registerModule("conv1", conv1); registerModule("bn1", bn1)
        registerModule("conv2", conv2); registerModule("bn2", bn2)
        registerModule("conv3", conv3); registerModule("bn3", bn3)
        if let d = shortcut { registerModule(shortcutNames == .torchvision ? "downsample" : "shortcut", d) }
    }

    /// relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + shortcut(x)).
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let y = bn3(conv3(bn2(conv2(bn1(conv1(x)).relu())).relu()))
        return Tensor.addRelu(y, downsample?(x) ?? x)
    }
}

/// A convolution followed by BatchNorm, named `conv` and `bn` (VNL's shortcut).
/// input: [N, cin, H, W] → [N, cout, H', W'].
public final class ConvBN: Module, Layer {
    /// The two layers.
    public let conv: Conv2d, bn: BatchNorm2d

    /// The pair.
    public init(_ conv: Conv2d, _ bn: BatchNorm2d) {
        self.conv = conv; self.bn = bn
        super.init()
        registerModule("conv", conv); registerModule("bn", bn)
    }

    /// bn(conv(x)).
    public func callAsFunction(_ x: Tensor) -> Tensor { bn(conv(x)) }
}
