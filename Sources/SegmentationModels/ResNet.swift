import Foundation
import PercepCore
import PercepNN

/// The four ResNet depths the segmentation models use.
public enum ResNetDepth: Int, CaseIterable, Sendable {
    case r18 = 18, r34 = 34, r50 = 50, r101 = 101

    /// Blocks per stage (layer1 … layer4).
    public var blocks: [Int] {
        switch self {
        case .r18: return [2, 2, 2, 2]
        case .r34: return [3, 4, 6, 3]
        case .r50: return [3, 4, 6, 3]
        case .r101: return [3, 4, 23, 3]
        }
    }

    /// Whether the stages are built from Bottleneck (R50, R101) rather than BasicBlock.
    public var usesBottleneck: Bool { rawValue >= 50 }

    /// Output channels per `planes` of one block (4 for Bottleneck, 1 for BasicBlock).
    public var expansion: Int { usesBottleneck ? Bottleneck.expansion : BasicBlock.expansion }
}

/// Strides and dilations of layer1 … layer4 for an output stride, as mmseg's dilated ResNets
/// set them: OS8 removes the stride of layer3 and layer4 and dilates them by 2 and 4 (the "d8"
/// configs), OS16 only layer4 (dilation 2), OS32 is the plain classification ResNet.
public func resNetStridesAndDilations(outputStride: Int) -> (strides: [Int], dilations: [Int])? {
    switch outputStride {
    case 8: return ([1, 2, 1, 1], [1, 1, 2, 4])
    case 16: return ([1, 2, 2, 1], [1, 1, 1, 2])
    case 32: return ([1, 2, 2, 2], [1, 1, 1, 1])
    default: return nil
    }
}

/// A dilated ResNet backbone (mmseg's `ResNet` with a torchvision-style 7×7 stem, names `conv1`,
/// `bn1`, `layer1.0.conv1`, `layer1.0.downsample.0`, …) that returns the four stage outputs.
///
/// input: [N, inChannels, H, W] → [layer1: [N, 1·e·b, H/4, W/4], layer2: [N, 2·e·b, H/8, W/8],
/// layer3: [N, 4·e·b, H/s3, W/s3], layer4: [N, 8·e·b, H/OS, W/OS]] with b = baseChannels,
/// e = the block expansion (1 or 4), and s3 = 8 at OS8, 16 otherwise (sizes rounded as the
/// strided convolutions round: ⌈H/2⌉ per stride-2 step).
///
/// With `contractDilation` (mmseg's d8/d16 configs) the first block of a dilated stage uses half
/// the dilation, so the receptive field grows smoothly from the previous stage.
public final class ResNetBackbone: Module, SegmentationBackbone {
    /// The depth it was built with.
    public let depth: ResNetDepth
    /// Stem: 7×7/2 convolution (no bias) and its BN; a 3×3/2 max-pool follows.
    public let conv1: Conv2d, bn1: BatchNorm2d
    /// layer1 … layer4.
    public let stages: [Sequential]
    /// Output channels of layer1 … layer4.
    public let stageChannels: [Int]
    /// Strides and dilations of layer1 … layer4.
    public let strides: [Int], dilations: [Int]

    /// A backbone with convolutions drawn Kaiming-normal (fan_out, ReLU gain) as mmseg and
    /// torchvision initialise them, BN γ = 1, β = 0. `outputStride` is 8, 16 or 32.
    public init(depth: ResNetDepth, outputStride: Int = 8, baseChannels: Int = 64, inChannels: Int = 3,
                contractDilation: Bool = true, rng: inout SeededRNG) {
        guard let (strides, dilations) = resNetStridesAndDilations(outputStride: outputStride) else {
            preconditionFailure("ResNetBackbone: output stride \(outputStride) is not 8, 16 or 32")
        }
        precondition(baseChannels > 0, "ResNetBackbone: baseChannels \(baseChannels) must be positive")
        let initializer = Initializer.kaimingNormal(fanOut: true)
        self.depth = depth
        self.strides = strides
        self.dilations = dilations
        conv1 = Conv2d(inChannels, baseChannels, kernel: (7, 7), stride: (2, 2), padding: (3, 3), bias: false,
                       initializer: initializer, rng: &rng)
        bn1 = BatchNorm2d(baseChannels)
        var stages: [Sequential] = [], channels: [Int] = [], cin = baseChannels
        for (i, count) in depth.blocks.enumerated() {
            let planes = baseChannels << i, d = dilations[i]
            var blocks: [any Layer] = []
            for b in 0..<count {
                let dilation = b == 0 && contractDilation && d > 1 ? d / 2 : d
                let stride = b == 0 ? strides[i] : 1
                if depth.usesBottleneck {
                    blocks.append(Bottleneck(cin, planes, stride: stride, dilation: dilation, initializer: initializer, rng: &rng))
                } else {
                    blocks.append(BasicBlock(cin, planes, stride: stride, dilation: dilation, initializer: initializer, rng: &rng))
                }
                cin = planes * depth.expansion
            }
            stages.append(Sequential(blocks))
            channels.append(cin)
        }
        self.stages = stages
        stageChannels = channels
        super.init()
        registerModule("conv1", conv1); registerModule("bn1", bn1)
        for (i, s) in stages.enumerated() { registerModule("layer\(i + 1)", s) }
    }

    /// The four stage outputs (see the type's documentation for shapes).
    public func callAsFunction(_ x: Tensor) -> [Tensor] {
        var h = bn1(conv1(x)).relu().maxPool2d(kernel: (3, 3), stride: (2, 2), padding: (1, 1))
        var out: [Tensor] = []
        for stage in stages { h = stage(h); out.append(h) }
        return out
    }
}
