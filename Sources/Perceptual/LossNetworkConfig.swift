import Foundation
import PercepCore
import PercepNN

/// The loss-network families of the paper's Table 1.
public enum LossNetworkFamily: String, CaseIterable, Codable, Sendable {
    /// VGG-style blocks of N_b convolutions (bias, ReLU) each ending in a 2×2 max-pool.
    case vgg
    /// torchvision's ResNet-18 trunk (conv1 … layer4), BN in eval mode.
    case resnet18
    /// torchvision's AlexNet `features`.
    case alexnet
    /// torchvision's MobileNetV2 `features`, BN in eval mode.
    case mobilenetv2
    /// torchvision's GoogLeNet without auxiliary classifiers, BN in eval mode.
    case googlenet
}

/// How the frozen loss network's convolution weights are drawn (biases are 0).
public enum LossNetworkInit: Equatable, Codable, Sendable, CustomStringConvertible {
    /// The paper's scheme: N(0, 2/(s²·c_in)), i.e. Kaiming-normal with fan-in.
    case he
    /// N(0, 2/(fan_in + fan_out)).
    case xavierNormal
    /// N(0, σ²).
    case normal(Float)
    /// U[−a, a].
    case uniform(Float)

    /// Parses `he`, `xavier_normal`, `normal:σ` or `uniform:a`.
    public init(parsing text: String) throws {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        // An empty text (a damaged file's attribute, `--init ""`) has no parts at all.
        guard !parts.isEmpty else { throw LossNetworkError.invalidOption("init", text, "expected he, xavier_normal, normal:σ or uniform:a") }
        func number() throws -> Float {
            guard parts.count == 2, let v = Float(parts[1]), v.isFinite, v > 0 else {
                throw LossNetworkError.invalidOption("init", text, "expected \(parts[0]):<positive number>")
            }
            return v
        }
        switch parts[0] {
        case "he": self = .he
        case "xavier_normal": self = .xavierNormal
        case "normal": self = .normal(try number())
        case "uniform": self = .uniform(try number())
        default: throw LossNetworkError.invalidOption("init", text, "expected he, xavier_normal, normal:σ or uniform:a")
        }
    }

    /// The text form accepted by `init(parsing:)`.
    public var description: String {
        switch self {
        case .he: return "he"
        case .xavierNormal: return "xavier_normal"
        case .normal(let s): return "normal:\(s)"
        case .uniform(let a): return "uniform:\(a)"
        }
    }

    /// The engine initialiser for convolution weights.
    var initializer: Initializer {
        switch self {
        case .he: return .kaimingNormal()
        case .xavierNormal: return .xavierNormal
        case .normal(let s): return .normal(std: s)
        case .uniform(let a): return .uniform(bound: a)
        }
    }
}

/// Everything that defines a perceptual-loss network: the same config builds bit-identical
/// weights in every process on every machine.
public struct LossNetworkConfig: Equatable, Codable, Sendable {
    /// Network family.
    public var family: LossNetworkFamily = .vgg
    /// Convolutions per block, N_1 … N_k (VGG only). VGG16 is 2,2,3,3,3.
    public var structure: [Int] = [2, 2, 3, 3, 3]
    /// Output channels of each block's convolutions (VGG only).
    public var widths: [Int] = [64, 128, 256, 512, 512]
    /// Convolution kernel size s (VGG only): 1, 3, 5 or 7 with "same" padding.
    public var kernelSize: Int = 3
    /// Channels of the task output the network embeds (classes, 1 for depth or masks).
    public var inChannels: Int = 19
    /// Weight initialisation scheme.
    public var initScheme: LossNetworkInit = .he
    /// Seed of the weights.
    public var seed: UInt64 = 0
    /// Weight of each level's squared distance (one per level; default: last level only).
    public var levelWeights: [Float]? = nil
    /// λ: weight of the perceptual term in the total loss.
    public var lambda: Float = 0.1

    /// A VGG16 configuration for `inChannels`.
    public init(inChannels: Int = 19) { self.inChannels = inChannels }

    /// Number of levels (block outputs) the family exposes.
    public var levelCount: Int {
        switch family {
        case .vgg: return structure.count
        case .resnet18: return 4
        case .alexnet: return 3
        case .mobilenetv2: return 5
        case .googlenet: return 3
        }
    }

    /// The level weights in force: the configured ones, or 0, …, 0, 1.
    public var resolvedLevelWeights: [Float] {
        levelWeights ?? (0..<levelCount).map { $0 == levelCount - 1 ? 1 : 0 }
    }

    /// The paper's multi-level weights 1/16, 1/8, 1/4, 1/2, 1 (first to last), for k levels.
    public static func geometricLevelWeights(_ k: Int) -> [Float] { (0..<k).map { Float(1) / Float(1 << (k - 1 - $0)) } }

    /// Equal weights over k levels.
    public static func equalLevelWeights(_ k: Int) -> [Float] { [Float](repeating: 1, count: k) }

    /// Bounds a network must stay within (a file or command line asking for more is refused
    /// before anything is built): blocks, convolutions per block, channels.
    public static let maxBlocks = 8, maxConvolutionsPerBlock = 16, maxChannels = 4096

    /// Checks every field; the error names the option and the problem.
    public func validate() throws {
        guard inChannels > 0, inChannels <= Self.maxChannels else {
            throw LossNetworkError.invalidOption("in-channels", "\(inChannels)", "must be 1…\(Self.maxChannels)")
        }
        if family == .vgg {
            guard !structure.isEmpty, structure.count <= Self.maxBlocks, structure.allSatisfy({ $0 > 0 && $0 <= Self.maxConvolutionsPerBlock }) else {
                throw LossNetworkError.invalidOption("structure", structure.map(String.init).joined(separator: ","),
                                                     "needs 1…\(Self.maxBlocks) blocks, each with 1…\(Self.maxConvolutionsPerBlock) convolutions")
            }
            guard widths.count == structure.count, widths.allSatisfy({ $0 > 0 && $0 <= Self.maxChannels }) else {
                throw LossNetworkError.invalidOption("widths", widths.map(String.init).joined(separator: ","), "needs one width of 1…\(Self.maxChannels) per block (\(structure.count) blocks)")
            }
            guard [1, 3, 5, 7].contains(kernelSize) else {
                throw LossNetworkError.invalidOption("kernel-size", "\(kernelSize)", "must be 1, 3, 5 or 7")
            }
        }
        let w = resolvedLevelWeights
        guard w.count == levelCount else {
            throw LossNetworkError.invalidOption("level-weights", w.map { "\($0)" }.joined(separator: ","), "needs one weight per level (\(levelCount) for \(family.rawValue) with this structure)")
        }
        guard w.allSatisfy({ $0.isFinite && $0 >= 0 }), w.contains(where: { $0 > 0 }) else {
            throw LossNetworkError.invalidOption("level-weights", w.map { "\($0)" }.joined(separator: ","), "must be finite, non-negative and not all zero")
        }
        guard lambda.isFinite && lambda >= 0 else { throw LossNetworkError.invalidOption("lambda", "\(lambda)", "must be finite and non-negative") }
    }
}

/// Problems with a loss network's configuration, inputs or file; each names what is wrong.
public enum LossNetworkError: Error, CustomStringConvertible, Equatable {
    /// An option has a value that cannot be used.
    case invalidOption(String, String, String)
    /// A tensor does not fit the network or its partner.
    case badInput(String)
    /// A loss-network file lacks weights or holds misshapen ones.
    case badFile(String, String)

    /// One-line message for the command line.
    public var description: String {
        switch self {
        case .invalidOption(let name, let value, let why): return "invalid --\(name) '\(value)': \(why)"
        case .badInput(let why): return why
        case .badFile(let path, let why): return "\(path): \(why)"
        }
    }
}
