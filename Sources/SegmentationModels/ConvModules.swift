import Foundation
import PercepCore
import PercepNN

/// mmcv's `ConvModule` with BN and ReLU: conv (no bias, since BN follows) → BN → ReLU, children
/// named `conv` and `bn`. input: [N, cin, H, W] → [N, cout, OH, OW].
public final class ConvModule: Module, Layer {
    /// The convolution and its batch norm.
    public let conv: Conv2d, bn: BatchNorm2d

    /// A kernel×kernel convolution with mmcv's ConvModule initialisation (Kaiming-normal,
    /// fan_out, ReLU gain); `padding` defaults to kernel/2·dilation ("same" at stride 1).
    public init(_ cin: Int, _ cout: Int, kernel: Int, padding: Int? = nil, dilation: Int = 1, groups: Int = 1,
                rng: inout SeededRNG) {
        let p = padding ?? kernel / 2 * dilation
        conv = Conv2d(cin, cout, kernel: (kernel, kernel), padding: (p, p), dilation: (dilation, dilation), groups: groups,
                      bias: false, initializer: .kaimingNormal(fanOut: true), rng: &rng)
        bn = BatchNorm2d(cout)
        super.init()
        registerModule("conv", conv); registerModule("bn", bn)
    }

    /// relu(bn(conv(x))).
    public func callAsFunction(_ x: Tensor) -> Tensor { bn(conv(x)).relu() }
}

/// mmcv's `DepthwiseSeparableConvModule`: a depthwise kernel×kernel ConvModule (groups = cin,
/// with its own BN and ReLU, as mmcv's defaults give) followed by a pointwise 1×1 ConvModule.
/// Children `depthwise_conv` and `pointwise_conv`. input: [N, cin, H, W] → [N, cout, H, W].
public final class DepthwiseSeparableConvModule: Module, Layer {
    /// The depthwise and pointwise halves.
    public let depthwiseConv: ConvModule, pointwiseConv: ConvModule

    /// A separable convolution; `padding` defaults to kernel/2·dilation.
    public init(_ cin: Int, _ cout: Int, kernel: Int, padding: Int? = nil, dilation: Int = 1, rng: inout SeededRNG) {
        depthwiseConv = ConvModule(cin, cin, kernel: kernel, padding: padding, dilation: dilation, groups: cin, rng: &rng)
        pointwiseConv = ConvModule(cin, cout, kernel: 1, rng: &rng)
        super.init()
        registerModule("depthwise_conv", depthwiseConv); registerModule("pointwise_conv", pointwiseConv)
    }

    /// pointwise(depthwise(x)).
    public func callAsFunction(_ x: Tensor) -> Tensor { pointwiseConv(depthwiseConv(x)) }
}

/// The classifier every mmseg decode head ends with (`conv_seg`): a 1×1 convolution with bias,
/// weight N(0, 0.01²) and bias 0 (mmseg's `normal_init(conv_seg, std=0.01)`).
func makeConvSeg(_ channels: Int, _ classes: Int, rng: inout SeededRNG) -> Conv2d {
    Conv2d(channels, classes, kernel: (1, 1), bias: true, initializer: .normal(std: 0.01), rng: &rng)
}
