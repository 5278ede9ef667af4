import Foundation
import PercepCore
import PercepNN

/// A learnable scalar multiplier (AdelaiDet's `Scale`, parameter `scale` [1], initialised to 1).
public final class Scale: Module {
    /// The multiplier.
    public let scale: Tensor

    /// A scale starting at `value`.
    public init(_ value: Float = 1) {
        scale = Tensor(shape: [1], values: [value])
        super.init()
        registerParameter("scale", scale)
    }

    /// x · scale (broadcast).
    public func callAsFunction(_ x: Tensor) -> Tensor { x * scale }
}

/// What the FCOS head gives for one FPN level. Shapes for a level of size h×w and N images.
public struct FCOSLevelOutput {
    /// Classification logits [N, C, h, w] (sigmoid per class, no background channel).
    public let logits: Tensor
    /// Box regression [N, 4, h, w]: ReLU(Scale·x), distances to the left, top, right and bottom
    /// sides in units of the level's stride.
    public let boxRegression: Tensor
    /// Centerness logits [N, 1, h, w].
    public let centerness: Tensor
    /// The box tower's output [N, C_fpn, h, w], which CondInst's controller reads.
    public let boxTower: Tensor
}

/// AdelaiDet's FCOS head, shared across P3–P7: a classification tower and a box tower of
/// `clsConvs` and `boxConvs` × [3×3 conv (bias) → GroupNorm → ReLU] (Sequential indices conv 0, 3, …,
/// GN 1, 4, …), `cls_logits` on the classification tower, `bbox_pred` and `ctrness` on the box
/// tower, a per-level `Scale` on the regression. Weights N(0, 0.01), biases 0, `cls_logits`
/// bias −log((1 − π)/π) with π = 0.01.
public final class FCOSHead: Module {
    /// The two towers.
    public let clsTower: Sequential, bboxTower: Sequential
    /// The output convolutions.
    public let clsLogits: Conv2d, bboxPred: Conv2d, ctrness: Conv2d
    /// One scale per level.
    public let scales: ModuleList<Scale>

    /// A head for `channels`-channel levels and `numClasses` classes.
    public init(channels: Int, numClasses: Int, clsConvs: Int = 4, boxConvs: Int = 4, gnGroups: Int = 32, levels: Int = 5,
                priorProbability: Float = 0.01, rng: inout SeededRNG) {
        func tower(_ convs: Int, _ rng: inout SeededRNG) -> Sequential {
            var layers: [any Layer] = []
            for _ in 0..<convs {
                layers.append(Conv2d(channels, channels, kernel: (3, 3), padding: (1, 1), initializer: .normal(std: 0.01), rng: &rng))
                layers.append(GroupNorm(groups: gnGroups, channels: channels))
                layers.append(ReLU())
            }
            return Sequential(layers)
        }
        clsTower = tower(clsConvs, &rng)
        bboxTower = tower(boxConvs, &rng)
        clsLogits = Conv2d(channels, numClasses, kernel: (3, 3), padding: (1, 1), initializer: .normal(std: 0.01), rng: &rng)
        clsLogits.bias!.fill(-Foundation.log((1 - priorProbability) / priorProbability))
        bboxPred = Conv2d(channels, 4, kernel: (3, 3), padding: (1, 1), initializer: .normal(std: 0.01), rng: &rng)
        ctrness = Conv2d(channels, 1, kernel: (3, 3), padding: (1, 1), initializer: .normal(std: 0.01), rng: &rng)
        scales = ModuleList((0..<levels).map { _ in Scale() })
        super.init()
        registerModule("cls_tower", clsTower); registerModule("bbox_tower", bboxTower)
        registerModule("cls_logits", clsLogits); registerModule("bbox_pred", bboxPred); registerModule("ctrness", ctrness)
        registerModule("scales", scales)
    }

    /// The head on each level (`levels[l]`: [N, C_fpn, h_l, w_l]).
    public func callAsFunction(_ levels: [Tensor]) -> [FCOSLevelOutput] {
        levels.enumerated().map { l, feature in
            let cls = clsTower(feature), box = bboxTower(feature)
            return FCOSLevelOutput(logits: clsLogits(cls), boxRegression: scales.elements[l](bboxPred(box)).relu(),
                                   centerness: ctrness(box), boxTower: box)
        }
    }
}

/// AdelaiDet's `FCOS` proposal generator as far as it holds parameters: the head, under
/// `fcos_head`.
public final class FCOSModule: Module {
    /// The shared head.
    public let head: FCOSHead

    /// Wraps `head`.
    public init(head: FCOSHead) {
        self.head = head
        super.init()
        registerModule("fcos_head", head)
    }
}
