import Foundation
import PercepCore
import PercepNN

/// The generic perceptual loss: ℓ = Σ_j w_j · mean((f_j(pred) − f_j(target))²) over the frozen
/// network's levels j, added to the task loss as λ·ℓ.
///
/// The network's weights never change and never get a gradient: they are frozen at build time,
/// so each convolution's backward computes only the input gradient. The target is embedded with
/// recording off; the gradient flows to the prediction only.
public final class PerceptualLoss {
    /// The config the network was built from.
    public let config: LossNetworkConfig
    /// The frozen loss network.
    public let network: any LossNetwork
    /// w_j per level.
    public let levelWeights: [Float]
    /// A 1×1 convolution C → 3 in front of a network with pretrained 3-channel weights, or nil.
    public let adapter: Conv2d?

    /// Builds the network from `config` (seeded random weights).
    public init(_ config: LossNetworkConfig) throws {
        self.config = config
        network = try makeLossNetwork(config)
        levelWeights = config.resolvedLevelWeights
        adapter = nil
    }

    /// Wraps an already built network (e.g. loaded from a file), with an optional adapter.
    public init(config: LossNetworkConfig, network: any LossNetwork, adapter: Conv2d? = nil) throws {
        try config.validate()
        self.config = config
        self.network = network
        levelWeights = config.resolvedLevelWeights
        self.adapter = adapter
        network.freeze(); network.eval()
        adapter?.freeze()
    }

    /// Checks that prediction and target fit the network; the error says what does not.
    public func check(prediction: Tensor, target: Tensor) throws {
        guard prediction.shape == target.shape else {
            throw LossNetworkError.badInput("prediction \(prediction.shape) and target \(target.shape) differ in shape")
        }
        guard prediction.rank == 4 else { throw LossNetworkError.badInput("prediction \(prediction.shape) must be [N, C, H, W]") }
        guard prediction.shape[1] == config.inChannels else {
            throw LossNetworkError.badInput("prediction has \(prediction.shape[1]) channels; the loss network takes \(config.inChannels)")
        }
        let side = min(prediction.shape[2], prediction.shape[3])
        guard side >= network.minimumInputSize else {
            throw LossNetworkError.badInput("input \(prediction.shape[2])×\(prediction.shape[3]) is too small for this network (at least \(network.minimumInputSize)×\(network.minimumInputSize))")
        }
        for (name, t) in [("prediction", prediction), ("target", target)] {
            if let i = (0..<t.count).first(where: { !t.data[$0].isFinite }) {
                throw LossNetworkError.badInput("\(name) holds a non-finite value (\(t.data[i])) at flat index \(i)")
            }
        }
    }

    /// ℓ(pred, target) as a scalar; differentiable with respect to `prediction` only.
    /// prediction, target: [N, C, H, W].
    public func callAsFunction(_ prediction: Tensor, _ target: Tensor) -> Tensor {
        loss(prediction, softmaxOfPrediction: false, target)
    }

    /// λ·ℓ, the term added to the task loss.
    public func weighted(_ prediction: Tensor, _ target: Tensor) -> Tensor {
        self(prediction, target) * config.lambda
    }

    /// λ·ℓ(softmax(logits) over channels, target): the segmentation form. For a chain network
    /// (VGG, AlexNet) without an adapter the softmax runs inside the loss op, which then keeps no
    /// probabilities for the backward (it recomputes them from the logits); otherwise it is an
    /// ordinary softmax on the tape. logits, target: [N, C, H, W].
    public func weighted(softmaxOf logits: Tensor, _ target: Tensor) -> Tensor {
        loss(logits, softmaxOfPrediction: true, target) * config.lambda
    }

    private func loss(_ input: Tensor, softmaxOfPrediction: Bool, _ target: Tensor) -> Tensor {
        let last = levelWeights.lastIndex(where: { $0 > 0 }) ?? levelWeights.count - 1
        // The softmax folds into the chain op only where it feeds the chain directly.
        let folded = softmaxOfPrediction && adapter == nil && network.layerChain != nil
        let prediction = softmaxOfPrediction && !folded ? input.softmax(axis: 1) : input
        if let chain = network.layerChain {
            let adaptedTarget = Tape.withoutGrad { adapter.map { $0(target) } ?? target }
            return LayerChainLoss.loss(chain, adapter.map { $0(prediction) } ?? prediction, softmaxOfInput: folded,
                                       target: adaptedTarget, levelWeights: levelWeights, last: last)
        }
        let targetLevels = Tape.withoutGrad { embed(target, upTo: last) }
        // The prediction's switches route the gradient: `switchingForward`, as in the chain op.
        let predLevels = ConvDispatch.withSwitchingForward { embed(prediction, upTo: last) }
        var total: Tensor?
        for j in 0...last where levelWeights[j] > 0 {
            let term = Loss.mse(predLevels[j], targetLevels[j]) * levelWeights[j]
            total = total.map { $0 + term } ?? term
        }
        return total!
    }

    func embed(_ x: Tensor, upTo last: Int) -> [Tensor] {
        network.levels(adapter.map { $0(x) } ?? x, upTo: last)
    }

    /// A 64-bit fingerprint of the weights (FNV-1a over names, shapes and float bits, in
    /// state-dict order). Equal configs give equal fingerprints on every machine; ranks compare
    /// it to prove they hold the same network.
    public var fingerprint: UInt64 { Self.fingerprint(of: network, adapter: adapter) }

    /// The fingerprint of a network's state (and its adapter's).
    public static func fingerprint(of network: Module, adapter: Module?) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        func mix(_ byte: UInt8) { h = (h ^ UInt64(byte)) &* 0x100_0000_01B3 }
        func mix64(_ v: UInt64) { for k in 0..<8 { mix(UInt8(truncatingIfNeeded: v >> (8 * k))) } }
        let entries = network.stateDict() + (adapter?.stateDict(prefix: "adapter.") ?? [])
        for (name, t) in entries {
            for b in name.utf8 { mix(b) }
            for d in t.shape { mix64(UInt64(d)) }
            for i in 0..<t.count { let bits = t.data[i].bitPattern; for k in 0..<4 { mix(UInt8(truncatingIfNeeded: bits >> (8 * k))) } }
        }
        return h
    }
}
