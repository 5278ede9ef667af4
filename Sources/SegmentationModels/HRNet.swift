import Foundation
import PercepCore
import PercepNN

/// The stage layout of an HRNetV2 variant, as mmseg's `extra` dict spells it for its `fcn_hr*`
/// configs: a stem, a Bottleneck stage 1, then stages 2–4 of HRModules with 2, 3 and 4 parallel
/// branches of BasicBlocks at strides 4, 8, 16, 32.
public struct HRNetSpec: Sendable, Equatable {
    /// Bottleneck blocks of stage 1 (`layer1`; 4, or 2 for W18-Small).
    public var stage1Blocks: Int
    /// Branch widths C, 2C, 4C, 8C at full size ([18, 36, 72, 144] for W18).
    public var branchWidths: [Int]
    /// HRModules in stages 2, 3 and 4 ([1, 4, 3], or [1, 3, 2] for W18-Small).
    public var modulesPerStage: [Int]
    /// BasicBlocks per branch in every HRModule (4, or 2 for W18-Small).
    public var blocksPerBranch: Int

    /// HRNetV2-W18-Small (mmseg's `fcn_hr18s`).
    public static let w18Small = HRNetSpec(stage1Blocks: 2, branchWidths: [18, 36, 72, 144], modulesPerStage: [1, 3, 2], blocksPerBranch: 2)
    /// HRNetV2-W18 (`fcn_hr18`).
    public static let w18 = HRNetSpec(stage1Blocks: 4, branchWidths: [18, 36, 72, 144], modulesPerStage: [1, 4, 3], blocksPerBranch: 4)
    /// HRNetV2-W48 (`fcn_hr48`), the paper's teacher for HRNetV2-W18-Small.
    public static let w48 = HRNetSpec(stage1Blocks: 4, branchWidths: [48, 96, 192, 384], modulesPerStage: [1, 4, 3], blocksPerBranch: 4)
}

/// Convolution (no bias) + BatchNorm, optionally + ReLU, as a `Sequential` named `0`, `1`(, `2`)
/// like mmseg's `nn.Sequential(build_conv_layer(…), build_norm_layer(…)[1], nn.ReLU())`.
/// input: [N, cin, H, W] → [N, cout, ⌈H/stride⌉, ⌈W/stride⌉] (padding kernel/2).
private func convBN(_ cin: Int, _ cout: Int, kernel: Int, stride: Int, relu: Bool, rng: inout SeededRNG) -> Sequential {
    let conv = Conv2d(cin, cout, kernel: (kernel, kernel), stride: (stride, stride), padding: (kernel / 2, kernel / 2),
                      bias: false, initializer: .kaimingNormal(fanOut: true), rng: &rng)
    return Sequential(relu ? [conv, BatchNorm2d(cout), ReLU()] : [conv, BatchNorm2d(cout)])
}

/// A list of optional layers registered under their indices, so absent entries leave gaps in the
/// names exactly as a PyTorch `ModuleList` holding `None` does (`fuse_layers.1.0`, no
/// `fuse_layers.1.1`).
final class SparseLayerList: Module {
    /// The entries; nil where PyTorch holds `None`.
    let entries: [Sequential?]

    init(_ entries: [Sequential?]) {
        self.entries = entries
        super.init()
        for (i, e) in entries.enumerated() { if let e { registerModule("\(i)", e) } }
    }
}

/// mmseg's `HRModule`: one BasicBlock chain per branch (`branches.<i>`), then every output
/// branch i sums all branches brought to its resolution (`fuse_layers.<i>.<j>`): a lower-resolution
/// branch j > i through a 1×1 conv + BN and a bilinear upsample by 2^(j−i) (then resized to branch
/// i's exact size, as mmseg does for odd sizes); a higher-resolution one j < i through i − j
/// stride-2 3×3 conv + BN steps (ReLU between them, not after the last); ReLU after the sum.
///
/// input: branch i [N, w_i, H_i, W_i] → the same shapes.
public final class HRModule: Module {
    /// One Sequential of BasicBlocks per branch.
    public let branches: ModuleList<Sequential>
    /// fuse[i][j]: the path from branch j to output i; nil for i == j.
    let fuse: [SparseLayerList]

    /// A module over branches of `widths` with `blocks` BasicBlocks each (Kaiming-normal fan_out).
    public init(widths: [Int], blocks: Int, rng: inout SeededRNG) {
        let initializer = Initializer.kaimingNormal(fanOut: true)
        branches = ModuleList(widths.map { w in
            Sequential((0..<blocks).map { _ in BasicBlock(w, w, initializer: initializer, rng: &rng) })
        })
        var fuse: [SparseLayerList] = []
        for i in widths.indices {
            fuse.append(SparseLayerList(widths.indices.map { j -> Sequential? in
                if j > i { return convBN(widths[j], widths[i], kernel: 1, stride: 1, relu: false, rng: &rng) }
                if j == i { return nil }
                return Sequential((0..<(i - j)).map { k -> any Layer in
                    let last = k == i - j - 1
                    return convBN(widths[j], last ? widths[i] : widths[j], kernel: 3, stride: 2, relu: !last, rng: &rng)
                })
            }))
        }
        self.fuse = fuse
        super.init()
        registerModule("branches", branches)
        // mmseg builds no fuse layers for a single branch; stages 2–4 always have several.
        if widths.count > 1 { registerModule("fuse_layers", ModuleList(fuse)) }
    }

    /// Runs the branches and the exchange between them.
    public func callAsFunction(_ inputs: [Tensor]) -> [Tensor] {
        let ys = zip(branches.elements, inputs).map { $0($1) }
        guard ys.count > 1 else { return ys }
        return ys.indices.map { i in
            let size = (ys[i].shape[2], ys[i].shape[3])
            var sum: Tensor?
            // The terms are added in j order, as mmseg's loop does, so float rounding matches.
            for j in ys.indices {
                var term = ys[j]
                if j > i {
                    let path = fuse[i].entries[j]!(ys[j]), factor = 1 << (j - i)
                    term = resizeLike(resizeLike(path, (path.shape[2] * factor, path.shape[3] * factor)), size)
                } else if j < i {
                    term = fuse[i].entries[j]!(ys[j])
                }
                sum = sum.map { $0 + term } ?? term
            }
            return sum!.relu()
        }
    }
}

/// mmseg's `HRNet` backbone (HRNetV2: every branch is an output): stem `conv1`/`bn1`,
/// `conv2`/`bn2` (3×3 stride-2 convolutions, ReLU after each), `layer1` (Bottlenecks), then for
/// k = 1…3 `transition<k>` (new branches by stride-2 3×3 conv + BN + ReLU from the lowest
/// resolution, and stage 1's output projected to the first branch's width) and `stage<k+1>`
/// (HRModules).
///
/// input: [N, inChannels, H, W] → 4 branches [N, w_i, H/2^(i+2), W/2^(i+2)] (sizes rounded up at
/// each stride-2 step), w_i = the spec's widths scaled by baseChannels/64.
public final class HRNetBackbone: Module, SegmentationBackbone {
    /// The layout it was built with.
    public let spec: HRNetSpec
    /// The stem.
    public let conv1: Conv2d, bn1: BatchNorm2d, conv2: Conv2d, bn2: BatchNorm2d
    /// Stage 1: Bottlenecks of `baseChannels` planes (4·baseChannels out).
    public let layer1: Sequential
    /// transition1 … transition3 (nil where a branch passes through unchanged).
    let transitions: [SparseLayerList]
    /// stage2 … stage4.
    public let stages: [ModuleList<HRModule>]
    /// Output widths of the four branches.
    public let stageChannels: [Int]

    /// A backbone drawn as mmseg initialises it without pretrained weights (Kaiming-normal
    /// fan_out convolutions, BN γ = 1, β = 0). `baseChannels` is the stem width (64 in mmseg);
    /// branch widths scale with it (at least 1), for narrow test and demo networks.
    public init(spec: HRNetSpec, baseChannels: Int = 64, inChannels: Int = 3, rng: inout SeededRNG) {
        precondition(baseChannels > 0 && spec.branchWidths.count == 4 && spec.modulesPerStage.count == 3,
                     "HRNetBackbone: need a positive base width, 4 branch widths and 3 stage module counts")
        self.spec = spec
        let initializer = Initializer.kaimingNormal(fanOut: true)
        let widths = spec.branchWidths.map { max(1, $0 * baseChannels / 64) }
        conv1 = Conv2d(inChannels, baseChannels, kernel: (3, 3), stride: (2, 2), padding: (1, 1), bias: false, initializer: initializer, rng: &rng)
        bn1 = BatchNorm2d(baseChannels)
        conv2 = Conv2d(baseChannels, baseChannels, kernel: (3, 3), stride: (2, 2), padding: (1, 1), bias: false, initializer: initializer, rng: &rng)
        bn2 = BatchNorm2d(baseChannels)
        var cin = baseChannels, blocks: [any Layer] = []
        for _ in 0..<spec.stage1Blocks {
            blocks.append(Bottleneck(cin, baseChannels, initializer: initializer, rng: &rng))
            cin = baseChannels * Bottleneck.expansion
        }
        layer1 = Sequential(blocks)
        var previous = [cin], transitions: [SparseLayerList] = [], stages: [ModuleList<HRModule>] = []
        for (k, modules) in spec.modulesPerStage.enumerated() {
            let current = Array(widths.prefix(k + 2))
            transitions.append(SparseLayerList(current.indices.map { i -> Sequential? in
                if i < previous.count {
                    return current[i] == previous[i] ? nil : convBN(previous[i], current[i], kernel: 3, stride: 1, relu: true, rng: &rng)
                }
                // A new, lower-resolution branch: stride-2 steps from the previous lowest one.
                let steps = i + 1 - previous.count
                return Sequential((0..<steps).map { s -> any Layer in
                    convBN(previous.last!, s == steps - 1 ? current[i] : previous.last!, kernel: 3, stride: 2, relu: true, rng: &rng)
                })
            }))
            stages.append(ModuleList((0..<modules).map { _ in HRModule(widths: current, blocks: spec.blocksPerBranch, rng: &rng) }))
            previous = current
        }
        self.transitions = transitions
        self.stages = stages
        stageChannels = widths
        super.init()
        registerModule("conv1", conv1); registerModule("bn1", bn1)
        registerModule("conv2", conv2); registerModule("bn2", bn2)
        registerModule("layer1", layer1)
        for k in 0..<3 {
            registerModule("transition\(k + 1)", transitions[k])
            registerModule("stage\(k + 2)", stages[k])
        }
    }

    /// The four branch outputs (see the type's documentation for shapes).
    public func callAsFunction(_ x: Tensor) -> [Tensor] {
        let stem = bn2(conv2(bn1(conv1(x)).relu())).relu()
        var ys = [layer1(stem)]
        for (transition, stage) in zip(transitions, stages) {
            // Existing branches pass through (or are projected, stage 1's output); new ones grow
            // from the lowest resolution, as mmseg's forward feeds them `y_list[-1]`.
            var xs = transition.entries.indices.map { i -> Tensor in
                guard let t = transition.entries[i] else { return ys[i] }
                return t(i < ys.count ? ys[i] : ys.last!)
            }
            for module in stage.elements { xs = module(xs) }
            ys = xs
        }
        return ys
    }
}
