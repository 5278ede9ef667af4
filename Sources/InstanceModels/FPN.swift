import Foundation
import PercepCore
import PercepNN

/// AdelaiDet's `LastLevelP6P7` on "p5": P6 = conv3×3/2(P5), P7 = conv3×3/2(ReLU(P6)), both with
/// bias and detectron2's `c2_xavier_fill`. Names `p6`, `p7`.
public final class LastLevelP6P7: Module {
    /// The two extra levels' convolutions.
    public let p6: Conv2d, p7: Conv2d

    /// Both convolutions `channels` → `channels`.
    public init(channels: Int, rng: inout SeededRNG) {
        p6 = Conv2d(channels, channels, kernel: (3, 3), stride: (2, 2), padding: (1, 1), initializer: .kaimingUniform(a: 1), rng: &rng)
        p7 = Conv2d(channels, channels, kernel: (3, 3), stride: (2, 2), padding: (1, 1), initializer: .kaimingUniform(a: 1), rng: &rng)
        super.init()
        registerModule("p6", p6); registerModule("p7", p7)
    }

    /// [P6, P7] from P5; the P6 returned is not ReLU'd.
    public func callAsFunction(_ p5: Tensor) -> [Tensor] {
        let p6 = self.p6(p5)
        return [p6, p7(p6.relu())]
    }
}

/// detectron2's FPN over a ResNet (AdelaiDet's `build_fcos_resnet_fpn_backbone`): lateral 1×1
/// and output 3×3 convolutions with bias, no norm, sum fusion with nearest ×2 upsampling, and
/// P6/P7 from P5. Names `fpn_lateral3` … `fpn_output5`, `top_block.p6/p7`, `bottom_up.*`.
///
/// input: [N, 3, H, W] with H, W multiples of 32 → P3 … P7: [N, C, H/8, W/8] … [N, C, ⌈H/128⌉, ⌈W/128⌉].
public final class FPN: Module {
    /// The lateral and output convolutions of res3, res4, res5.
    public let laterals: [Conv2d], outputs: [Conv2d]
    /// P6 and P7.
    public let topBlock: LastLevelP6P7
    /// The ResNet.
    public let bottomUp: DetectronResNet
    /// Output channels of every level (MODEL.FPN.OUT_CHANNELS).
    public let channels: Int

    /// An FPN of `channels` over `bottomUp`'s res3–res5.
    public init(bottomUp: DetectronResNet, channels: Int, rng: inout SeededRNG) {
        let inChannels = Array(bottomUp.spec.stageChannels.dropFirst())
        laterals = inChannels.map { Conv2d($0, channels, kernel: (1, 1), initializer: .kaimingUniform(a: 1), rng: &rng) }
        outputs = inChannels.map { _ in
            Conv2d(channels, channels, kernel: (3, 3), padding: (1, 1), initializer: .kaimingUniform(a: 1), rng: &rng)
        }
        topBlock = LastLevelP6P7(channels: channels, rng: &rng)
        self.bottomUp = bottomUp
        self.channels = channels
        super.init()
        for (i, (lateral, output)) in zip(laterals, outputs).enumerated() {
            registerModule("fpn_lateral\(i + 3)", lateral)
            registerModule("fpn_output\(i + 3)", output)
        }
        registerModule("top_block", topBlock)
        registerModule("bottom_up", bottomUp)
    }

    /// P3, P4, P5, P6, P7.
    public func callAsFunction(_ x: Tensor) -> [Tensor] {
        let c = bottomUp(x)
        var prev = laterals[2](c[2])
        var levels = [outputs[2](prev)]
        for i in [1, 0] {
            let topDown = prev.resizeNearest((prev.shape[2] * 2, prev.shape[3] * 2))
            prev = laterals[i](c[i]) + topDown
            levels.insert(outputs[i](prev), at: 0)
        }
        return levels + topBlock(levels[2])
    }
}
