import Foundation
import PercepCore
import PercepNN

/// What a segmentation model returns: the main logits at the decode head's resolution and the
/// auxiliary head's logits, if the model has one.
public struct SegmentationOutput {
    /// Main logits [N, classes, H/8, W/8] (PSPNet at OS8) or [N, classes, H/4, W/4] (DeepLabV3+).
    public let logits: Tensor
    /// Auxiliary FCN logits on layer3 [N, classes, H/s3, W/s3], or nil without an auxiliary head.
    public let auxLogits: Tensor?
}

/// A backbone that returns four feature maps, highest resolution first (a ResNet's layer1 …
/// layer4, an HRNet's four branches): [N, stageChannels[i], H_i, W_i].
public protocol SegmentationBackbone: Module {
    /// Channels of the four outputs.
    var stageChannels: [Int] { get }
    /// The four feature maps of input [N, C, H, W].
    func callAsFunction(_ x: Tensor) -> [Tensor]
}

/// mmseg's `EncoderDecoder`: `backbone`, `decode_head` and an optional `auxiliary_head`, with
/// mmseg's state-dict names (`backbone.layer1.0.conv1.weight`, `decode_head.conv_seg.bias`,
/// `auxiliary_head.convs.0.conv.weight`, …).
///
/// input: [N, inChannels, H, W] → `SegmentationOutput`.
public final class SegmentationModel: Module {
    /// The factory name it was built from (e.g. `pspnet_r18`).
    public let name: String
    /// Number of classes.
    public let classes: Int
    /// The dilated ResNet or the HRNet.
    public let backbone: any SegmentationBackbone
    /// The main head.
    public let decodeHead: any DecodeHead
    /// The auxiliary FCN head on layer3 (ResNet recipes), or nil.
    public let auxiliaryHead: FCNHead?

    /// Assembles a model from its parts.
    public init(name: String, classes: Int, backbone: any SegmentationBackbone, decodeHead: any DecodeHead, auxiliaryHead: FCNHead?) {
        self.name = name; self.classes = classes
        self.backbone = backbone; self.decodeHead = decodeHead; self.auxiliaryHead = auxiliaryHead
        super.init()
        registerModule("backbone", backbone as Module)
        registerModule("decode_head", decodeHead as Module)
        if let auxiliaryHead { registerModule("auxiliary_head", auxiliaryHead) }
    }

    /// Runs the backbone once and every head on its stage outputs.
    public func callAsFunction(_ x: Tensor) -> SegmentationOutput {
        let features = backbone(x)
        return SegmentationOutput(logits: decodeHead(features), auxLogits: auxiliaryHead?(features))
    }
}

/// Upsamples logits to the input size as mmseg's loss does before cross-entropy (bilinear,
/// align_corners=False). logits: [N, C, h, w] → [N, C, size.0, size.1].
public func upsampleLogits(_ logits: Tensor, to size: (Int, Int)) -> Tensor { resizeLike(logits, size) }

/// Why a model name or option was refused.
public enum SegmentationModelError: Error, CustomStringConvertible, Equatable {
    /// The name is not `<pspnet|deeplabv3plus>_r<18|34|50|101>` nor `fcn_hr18s`, `fcn_hr18`, `fcn_hr48`.
    case unknownModel(String)
    /// An option is out of range; the text says which and why.
    case badOption(String)

    /// The message shown to the user.
    public var description: String {
        switch self {
        case .unknownModel(let n):
            return "unknown segmentation model '\(n)': expected one of \(segmentationModelNames.joined(separator: ", "))"
        case .badOption(let text): return text
        }
    }
}

/// mmseg's HRNetV2 recipes (an FCN head over the four concatenated branches) by config name.
public let hrNetRecipes: [(name: String, spec: HRNetSpec)] = [("fcn_hr18s", .w18Small), ("fcn_hr18", .w18), ("fcn_hr48", .w48)]

/// Every name `makeSegmentationModel` accepts.
public let segmentationModelNames: [String] = ["pspnet", "deeplabv3plus"].flatMap { head in
    ResNetDepth.allCases.map { "\(head)_r\($0.rawValue)" }
} + hrNetRecipes.map(\.name)

/// Builds one of mmseg's recipes, `<head>_r<depth>` with head `pspnet` or `deeplabv3plus` and
/// depth 18, 34, 50 or 101, or an HRNetV2 `fcn_hr18s`, `fcn_hr18`, `fcn_hr48`, with
/// Kaiming-normal convolutions, BN γ = 1, β = 0 and `conv_seg` N(0, 0.01²), all drawn from `rng`.
///
/// The HRNet recipes are mmseg's `fcn_hr*` configs: the HRNet backbone, and an FCN decode head
/// over the four branches resized to stride 4 and concatenated (one 1×1 ConvModule of as many
/// channels as the concatenation, then `conv_seg`); logits at H/4. They have no auxiliary head
/// (`auxiliaryHead` asks for the recipe's, so it is ignored) and no output stride to choose
/// (`outputStride` and `asppDilations` are not used).
///
/// Head widths follow mmseg's configs, scaled by `baseChannels`/64 (at least 1): PSP channels 512
/// (Bottleneck backbones) or 128 (BasicBlock, mmseg's r18 configs), auxiliary FCN 256 or 64,
/// DeepLabV3+ low-level projection 48 or 12. `baseChannels` is the stem width (64 for the real
/// networks; tests and demos use tiny widths). `asppDilations` defaults to 1, 12, 24, 36 at OS8 and
/// 1, 6, 12, 18 at OS16/32. The auxiliary head (mmseg's FCNHead on layer3, loss weight 0.4 in
/// its recipes) is built when `auxiliaryHead` is true. `dropoutRatio` is the channel dropout every
/// head applies before `conv_seg` in training (mmseg's `dropout_ratio`, 0.1 in its configs; 0 here
/// by default, as in the PyTorch twin the tests compare against).
///
/// input of the model: [N, inChannels, H, W]; logits at H/OS (PSPNet) or H/4 (DeepLabV3+, HRNet).
public func makeSegmentationModel(name: String, classes: Int, rng: inout SeededRNG, outputStride: Int = 8,
                                  auxiliaryHead: Bool = true, baseChannels: Int = 64, asppDilations: [Int]? = nil,
                                  inChannels: Int = 3, dropoutRatio: Float = 0) throws -> SegmentationModel {
    let parts = name.split(separator: "_")
    let hrNet = hrNetRecipes.first { $0.name == name }?.spec
    let depth = parts.count == 2 && ["pspnet", "deeplabv3plus"].contains(String(parts[0])) && parts[1].hasPrefix("r")
        ? Int(parts[1].dropFirst()).flatMap(ResNetDepth.init(rawValue:)) : nil
    guard hrNet != nil || depth != nil else { throw SegmentationModelError.unknownModel(name) }
    guard classes > 0 else { throw SegmentationModelError.badOption("classes must be positive, got \(classes)") }
    guard dropoutRatio >= 0 && dropoutRatio < 1 else {
        throw SegmentationModelError.badOption("dropout ratio must be in [0, 1), got \(dropoutRatio)")
    }
    guard baseChannels > 0 else { throw SegmentationModelError.badOption("baseChannels must be positive, got \(baseChannels)") }
    if let hrNet {
        let backbone = HRNetBackbone(spec: hrNet, baseChannels: baseChannels, inChannels: inChannels, rng: &rng)
        let width = backbone.stageChannels.reduce(0, +)
        let head = FCNHead(inChannels: width, channels: width, classes: classes, kernel: 1, inIndices: [0, 1, 2, 3],
                           dropoutRatio: dropoutRatio, rng: &rng)
        return SegmentationModel(name: name, classes: classes, backbone: backbone, decodeHead: head, auxiliaryHead: nil)
    }
    guard let depth else { throw SegmentationModelError.unknownModel(name) }
    guard resNetStridesAndDilations(outputStride: outputStride) != nil else {
        throw SegmentationModelError.badOption("output stride must be 8, 16 or 32, got \(outputStride)")
    }
    let rates = asppDilations ?? (outputStride == 8 ? [1, 12, 24, 36] : [1, 6, 12, 18])
    guard !rates.isEmpty, rates.allSatisfy({ $0 > 0 }) else {
        throw SegmentationModelError.badOption("ASPP dilations must be positive, got \(rates)")
    }
    func scaled(_ c: Int) -> Int { max(1, c * baseChannels / 64) }
    let big = depth.usesBottleneck
    let backbone = ResNetBackbone(depth: depth, outputStride: outputStride, baseChannels: baseChannels, inChannels: inChannels, rng: &rng)
    let c = backbone.stageChannels
    let head: any DecodeHead
    if parts[0] == "pspnet" {
        head = PSPHead(inChannels: c[3], channels: scaled(big ? 512 : 128), classes: classes, dropoutRatio: dropoutRatio, rng: &rng)
    } else {
        head = DepthwiseSeparableASPPHead(inChannels: c[3], channels: scaled(big ? 512 : 128), c1InChannels: c[0],
                                          c1Channels: scaled(big ? 48 : 12), classes: classes, dilations: rates,
                                          dropoutRatio: dropoutRatio, rng: &rng)
    }
    let aux = auxiliaryHead ? FCNHead(inChannels: c[2], channels: scaled(big ? 256 : 64), classes: classes,
                                      dropoutRatio: dropoutRatio, rng: &rng) : nil
    return SegmentationModel(name: name, classes: classes, backbone: backbone, decodeHead: head, auxiliaryHead: aux)
}
