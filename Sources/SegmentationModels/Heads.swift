import Foundation
import PercepCore
import PercepNN

// mmseg's decode heads. Each applies channel dropout (`dropout`, mmseg's `dropout_ratio`, 0.1 in
// its configs) before `conv_seg` in training; it has no parameters, so state dicts are unchanged.

/// A segmentation head: maps the backbone's stage outputs to class logits.
public protocol DecodeHead: Module {
    /// features: the backbone's four outputs ([layer1 … layer4] of a ResNet, an HRNet's branches),
    /// [N, C_i, H_i, W_i]; returns logits [N, classes, H_h, W_h] at the resolution of the stage the
    /// head reads (layer4 for PSP, layer1 for DeepLabV3+ with its low-level branch, layer3 for the
    /// FCN aux, the first branch for HRNet's FCN).
    func callAsFunction(_ features: [Tensor]) -> Tensor
}

/// Bilinear resize without corner alignment, mmseg's `resize(…, mode='bilinear',
/// align_corners=False)`. input: [N, C, H, W] → [N, C, size.0, size.1].
func resizeLike(_ x: Tensor, _ size: (Int, Int)) -> Tensor {
    (x.shape[2], x.shape[3]) == size ? x : x.resizeBilinear(size, alignCorners: false)
}

/// mmseg's `PSPHead`: pyramid pooling over `poolScales` (adaptive average pool to s×s → 1×1
/// ConvModule → bilinear upsample), concatenated with the input, a 3×3 `bottleneck`
/// ConvModule and `conv_seg`. Names: `conv_seg`, `psp_modules.<i>.1.{conv,bn}`, `bottleneck`.
///
/// Reads layer4: [N, inChannels, h, w] → logits [N, classes, h, w].
public final class PSPHead: Module, DecodeHead {
    /// 1×1 classifier with bias.
    public let convSeg: Conv2d
    /// One (pool, ConvModule) branch per scale.
    public let pspModules: ModuleList<Sequential>
    /// 3×3 ConvModule over [input, branches].
    public let bottleneck: ConvModule
    /// Pyramid bin sizes (mmseg: 1, 2, 3, 6).
    public let poolScales: [Int]
    /// Channel dropout before `conv_seg`.
    public let dropout: Dropout2d

    /// A head with `channels` per branch and in the bottleneck, and channel dropout
    /// `dropoutRatio` before `conv_seg`.
    public init(inChannels: Int, channels: Int, classes: Int, poolScales: [Int] = [1, 2, 3, 6], dropoutRatio: Float = 0,
                rng: inout SeededRNG) {
        self.poolScales = poolScales
        dropout = Dropout2d(dropoutRatio)
        convSeg = makeConvSeg(channels, classes, rng: &rng)
        pspModules = ModuleList(poolScales.map { s in
            Sequential([AdaptiveAvgPool2d((s, s)), ConvModule(inChannels, channels, kernel: 1, rng: &rng)])
        })
        bottleneck = ConvModule(inChannels + poolScales.count * channels, channels, kernel: 3, rng: &rng)
        super.init()
        registerModule("conv_seg", convSeg)
        registerModule("psp_modules", pspModules)
        registerModule("bottleneck", bottleneck)
        registerModule("dropout", dropout)
    }

    /// Logits from layer4 (`features[3]`).
    public func callAsFunction(_ features: [Tensor]) -> Tensor {
        let x = features[3], size = (x.shape[2], x.shape[3])
        let branches = pspModules.elements.map { resizeLike($0(x), size) }
        return convSeg(dropout(bottleneck(Tensor.concat([x] + branches, axis: 1))))
    }
}

/// mmseg's `DepthwiseSeparableASPPHead` (DeepLabV3+): an image-pool branch (global average pool
/// → 1×1 ConvModule → upsample), ASPP branches (1×1 ConvModule for rate 1, depthwise-separable
/// 3×3 with dilation r otherwise), a 3×3 `bottleneck` ConvModule over the concatenation, then the
/// decoder: upsample to layer1's size, concatenate the 1×1 `c1_bottleneck` of layer1, two
/// separable 3×3 `sep_bottleneck` modules and `conv_seg`.
///
/// Reads layer1 [N, c1In, H/4, W/4] and layer4 [N, inChannels, h, w] → logits [N, classes, H/4, W/4].
public final class DepthwiseSeparableASPPHead: Module, DecodeHead {
    /// 1×1 classifier with bias.
    public let convSeg: Conv2d
    /// (global pool, 1×1 ConvModule), names `image_pool.1.{conv,bn}`.
    public let imagePool: Sequential
    /// ASPP branches, `aspp_modules.<i>` (ConvModule or DepthwiseSeparableConvModule).
    public let asppModules: ModuleList<Module>
    /// The same branches, callable.
    let asppLayers: [any Layer]
    /// 3×3 ConvModule over the (1 + rates) concatenated branches.
    public let bottleneck: ConvModule
    /// 1×1 ConvModule on the low-level (layer1) features.
    public let c1Bottleneck: ConvModule
    /// Two separable 3×3 modules after the low-level concatenation.
    public let sepBottleneck: Sequential
    /// ASPP dilation rates (mmseg: 1, 12, 24, 36 at OS8; 1, 6, 12, 18 at OS16).
    public let dilations: [Int]
    /// Channel dropout before `conv_seg`.
    public let dropout: Dropout2d

    /// A head with `channels` per branch; `c1Channels` is the low-level projection width
    /// (mmseg: 48 for R50/R101, 12 for R18); channel dropout `dropoutRatio` before `conv_seg`.
    public init(inChannels: Int, channels: Int, c1InChannels: Int, c1Channels: Int, classes: Int, dilations: [Int],
                dropoutRatio: Float = 0, rng: inout SeededRNG) {
        self.dilations = dilations
        dropout = Dropout2d(dropoutRatio)
        convSeg = makeConvSeg(channels, classes, rng: &rng)
        imagePool = Sequential([AdaptiveAvgPool2d((1, 1)), ConvModule(inChannels, channels, kernel: 1, rng: &rng)])
        asppLayers = dilations.map { d -> any Layer in
            d == 1 ? ConvModule(inChannels, channels, kernel: 1, rng: &rng)
                   : DepthwiseSeparableConvModule(inChannels, channels, kernel: 3, padding: d, dilation: d, rng: &rng)
        }
        asppModules = ModuleList(asppLayers.map { $0 as Module })
        bottleneck = ConvModule((dilations.count + 1) * channels, channels, kernel: 3, rng: &rng)
        c1Bottleneck = ConvModule(c1InChannels, c1Channels, kernel: 1, rng: &rng)
        sepBottleneck = Sequential([DepthwiseSeparableConvModule(channels + c1Channels, channels, kernel: 3, rng: &rng),
                                    DepthwiseSeparableConvModule(channels, channels, kernel: 3, rng: &rng)])
        super.init()
        // PyTorch's attribute order: BaseDecodeHead (conv_seg), ASPPHead (image_pool,
        // aspp_modules, bottleneck), then the separable head's c1_bottleneck, sep_bottleneck.
        registerModule("conv_seg", convSeg)
        registerModule("image_pool", imagePool)
        registerModule("aspp_modules", asppModules)
        registerModule("bottleneck", bottleneck)
        registerModule("c1_bottleneck", c1Bottleneck)
        registerModule("sep_bottleneck", sepBottleneck)
        registerModule("dropout", dropout)
    }

    /// Logits at layer1's resolution from layer1 (`features[0]`) and layer4 (`features[3]`).
    public func callAsFunction(_ features: [Tensor]) -> Tensor {
        let x = features[3], size = (x.shape[2], x.shape[3])
        var branches = [resizeLike(imagePool(x), size)]
        for m in asppLayers { branches.append(m(x)) }
        let aspp = bottleneck(Tensor.concat(branches, axis: 1))
        let c1 = c1Bottleneck(features[0])
        let merged = Tensor.concat([resizeLike(aspp, (c1.shape[2], c1.shape[3])), c1], axis: 1)
        return convSeg(dropout(sepBottleneck(merged)))
    }
}

/// mmseg's `FCNHead` with `concat_input=False`: `numConvs` kernel×kernel ConvModules (`convs.<i>`)
/// and `conv_seg`. As the ResNet recipes' auxiliary head it reads one stage (layer3, 3×3, one
/// conv); as HRNetV2's decode head it reads all four branches (`input_transform='resize_concat'`:
/// each resized bilinearly to the first's size and concatenated, then one 1×1 conv).
///
/// Reads `features[inIndices]`: [N, inChannels, h, w] (the concatenation's channels when several)
/// → [N, classes, h, w] at the first selected feature's size.
public final class FCNHead: Module, DecodeHead {
    /// 1×1 classifier with bias.
    public let convSeg: Conv2d
    /// The ConvModules.
    public let convs: Sequential
    /// Which backbone outputs it reads (0-based; [2] = layer3; several are resized and concatenated).
    public let inIndices: [Int]
    /// Channel dropout before `conv_seg`.
    public let dropout: Dropout2d

    /// A head with `numConvs` ConvModules of `channels` (kernel `kernel`, "same" padding) and
    /// channel dropout `dropoutRatio` before `conv_seg`.
    public init(inChannels: Int, channels: Int, classes: Int, numConvs: Int = 1, kernel: Int = 3, inIndices: [Int] = [2],
                dropoutRatio: Float = 0, rng: inout SeededRNG) {
        precondition(numConvs > 0 && !inIndices.isEmpty, "FCNHead: numConvs and the input indices must be positive/non-empty")
        self.inIndices = inIndices
        dropout = Dropout2d(dropoutRatio)
        convSeg = makeConvSeg(channels, classes, rng: &rng)
        convs = Sequential((0..<numConvs).map { i in ConvModule(i == 0 ? inChannels : channels, channels, kernel: kernel, rng: &rng) })
        super.init()
        registerModule("conv_seg", convSeg)
        registerModule("convs", convs)
        registerModule("dropout", dropout)
    }

    /// Logits from the selected features.
    public func callAsFunction(_ features: [Tensor]) -> Tensor {
        let first = features[inIndices[0]]
        let input = inIndices.count == 1 ? first
            : Tensor.concat(inIndices.map { resizeLike(features[$0], (first.shape[2], first.shape[3])) }, axis: 1)
        return convSeg(dropout(convs(input)))
    }
}
