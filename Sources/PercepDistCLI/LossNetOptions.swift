import ArgumentParser
import Foundation
import Perceptual

/// Loss-network options shared by every command that builds one (`lossnet export`,
/// `bench lossnet`, and the training configs' equivalents).
struct LossNetOptions: ParsableArguments {
    @Option(help: "Network family: vgg, resnet18, alexnet, mobilenetv2 or googlenet.")
    var family: String = "vgg"
    @Option(help: "Convolutions per block, N_1,…,N_k (VGG). VGG16 is 2,2,3,3,3.")
    var structure: String = "2,2,3,3,3"
    @Option(help: "Output channels per block (VGG).")
    var widths: String = "64,128,256,512,512"
    @Option(help: "Kernel size s: 1, 3, 5 or 7, 'same' padding (VGG).")
    var kernelSize: Int = 3
    @Option(help: "Channels of the task output the network embeds.")
    var inChannels: Int = 19
    @Option(help: "Weight init: he, xavier_normal, normal:σ or uniform:a.")
    var `init`: String = "he"
    @Option(help: "Seed of the weights.")
    var seed: UInt64 = 0
    @Option(help: "Weight per level, w_1,…,w_k (default 0,…,0,1), or 'geometric' (…,1/4,1/2,1) or 'equal'.")
    var levelWeights: String?

    /// Parses a comma-separated list of integers, naming the option on error.
    static func integers(_ text: String, option: String) throws -> [Int] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        let values = parts.compactMap { Int($0) }
        guard !parts.isEmpty, values.count == parts.count else {
            throw ValidationError("invalid --\(option) '\(text)': expected comma-separated integers")
        }
        return values
    }

    /// The config these options describe, validated.
    func config() throws -> LossNetworkConfig {
        var c = LossNetworkConfig(inChannels: inChannels)
        guard let fam = LossNetworkFamily(rawValue: family) else {
            throw ValidationError("invalid --family '\(family)': expected \(LossNetworkFamily.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        c.family = fam
        c.structure = try Self.integers(structure, option: "structure")
        c.widths = try Self.integers(widths, option: "widths")
        c.kernelSize = kernelSize
        c.initScheme = try LossNetworkInit(parsing: self.`init`)
        c.seed = seed
        switch levelWeights {
        case nil: break
        case "geometric": c.levelWeights = LossNetworkConfig.geometricLevelWeights(c.levelCount)
        case "equal": c.levelWeights = LossNetworkConfig.equalLevelWeights(c.levelCount)
        case let text?:
            let parts = text.split(separator: ",").map { Float($0.trimmingCharacters(in: .whitespaces)) }
            guard !parts.isEmpty, parts.allSatisfy({ $0 != nil }) else {
                throw ValidationError("invalid --level-weights '\(text)': expected comma-separated numbers, 'geometric' or 'equal'")
            }
            c.levelWeights = parts.map { $0! }
        }
        try c.validate()
        return c
    }
}
