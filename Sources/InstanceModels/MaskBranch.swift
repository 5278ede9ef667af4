import Foundation
import PercepCore
import PercepNN

/// CondInst's mask branch (AdelaiDet `mask_branch.py`, semantic loss off): P3, P4, P5 each
/// refined by 3×3 conv (no bias) → BN → ReLU to `channels`, P4 and P5 upsampled to P3's size
/// with `alignedBilinear` and added, then a tower of `numConvs` × [3×3 conv → BN → ReLU] and a
/// 1×1 convolution (bias) to `outChannels` mask features. 3×3 convolutions Kaiming-uniform
/// (a = 1), the 1×1 PyTorch's default init. Names `refine.{i}.{0,1}`, `tower.{i}.{0,1}`,
/// `tower.{numConvs}`.
///
/// input: P3 [N, C, H/8, W/8], P4 [N, C, H/16, W/16], P5 [N, C, H/32, W/32] → [N, outChannels, H/8, W/8].
public final class MaskBranch: Module {
    /// The per-level refinement blocks.
    public let refine: ModuleList<Sequential>
    /// The tower, ending in the 1×1 output convolution.
    public let tower: Sequential
    /// Every BatchNorm of the branch (its statistics are per group of images).
    public let batchNorms: [BatchNorm2d]

    /// A branch over `inChannels`-channel levels.
    public init(inChannels: Int, channels: Int = 128, numConvs: Int = 4, outChannels: Int = 8, rng: inout SeededRNG) {
        var norms: [BatchNorm2d] = []
        func block(_ cin: Int, _ rng: inout SeededRNG) -> Sequential {
            let bn = BatchNorm2d(channels)
            norms.append(bn)
            return Sequential([Conv2d(cin, channels, kernel: (3, 3), padding: (1, 1), bias: false, initializer: .kaimingUniform(a: 1), rng: &rng),
                               bn, ReLU()])
        }
        refine = ModuleList((0..<3).map { _ in block(inChannels, &rng) })
        var layers: [any Layer] = (0..<numConvs).map { _ in block(channels, &rng) }
        layers.append(Conv2d(channels, outChannels, kernel: (1, 1), rng: &rng))
        tower = Sequential(layers)
        batchNorms = norms
        super.init()
        registerModule("refine", refine)
        registerModule("tower", tower)
    }

    /// The mask features of P3, P4, P5 (`levels[0...2]`).
    public func callAsFunction(_ levels: [Tensor]) -> Tensor {
        var x = refine.elements[0](levels[0])
        for i in 1...2 {
            let p = refine.elements[i](levels[i])
            x = x + p.alignedBilinear(factor: x.shape[2] / p.shape[2])
        }
        return tower(x)
    }
}
