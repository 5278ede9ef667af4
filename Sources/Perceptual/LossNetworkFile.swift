import Checkpoint
import Foundation
import PercepCore
import PercepHDF5
import PercepNN

/// Loss-network files: one float32 dataset per weight, named as torchvision names the module
/// (`features.0.weight`, OIHW), and root attributes describing the network (`family`,
/// `structure`, `widths`, `kernel_size`, `in_channels`, `init`, `seed`, `level_weights`,
/// `fingerprint`). A pretrained network ('T' in the paper's Table 1) has 3 input channels and an
/// `adapter.weight` [3, C, 1, 1] that maps the task's C channels to them.
public enum LossNetworkFile {
    /// Writes `loss`'s network, adapter and config to `path` (replacing any file there).
    public static func export(_ loss: PerceptualLoss, to path: String) throws {
        let file = try HDF5File(creating: path, sealable: true)
        for (name, t) in loss.network.stateDict() { try file.write(t, at: name) }
        if let adapter = loss.adapter { try file.write(adapter.weight, at: "adapter.weight") }
        let c = loss.config
        try file.setAttribute("family", .string(c.family.rawValue))
        try file.setAttribute("structure", .ints(c.structure.map(Int64.init)))
        try file.setAttribute("widths", .ints(c.widths.map(Int64.init)))
        try file.setAttribute("kernel_size", .int(Int64(c.kernelSize)))
        try file.setAttribute("in_channels", .int(Int64(c.inChannels)))
        try file.setAttribute("init", .string(c.initScheme.description))
        try file.setAttribute("seed", .uint(c.seed))
        try file.setAttribute("level_weights", .doubles(loss.levelWeights.map(Double.init)))
        try file.setAttribute("fingerprint", .uint(loss.fingerprint))
        try file.close()
        try HDF5Seal.seal(path)
    }

    /// Reads the config stored in `file`'s root attributes.
    static func config(of file: HDF5File) throws -> LossNetworkConfig {
        func attr(_ name: String) throws -> HDF5AttributeValue {
            guard let v = try file.attribute(name) else { throw LossNetworkError.badFile(file.path, "missing root attribute '\(name)'") }
            return v
        }
        func ints(_ name: String) throws -> [Int] {
            guard let v = try attr(name).intsValue else { throw LossNetworkError.badFile(file.path, "attribute '\(name)' is not an integer list") }
            return v.map { Int($0) }
        }
        func int(_ name: String) throws -> Int {
            let v = try attr(name)
            guard let i = v.intValue ?? v.uintValue.flatMap({ Int64(exactly: $0) }) else { throw LossNetworkError.badFile(file.path, "attribute '\(name)' is not an integer a network can have") }
            return Int(i)
        }
        var c = LossNetworkConfig(inChannels: try int("in_channels"))
        let familyName = try attr("family").stringValue ?? ""
        guard let family = LossNetworkFamily(rawValue: familyName) else {
            throw LossNetworkError.badFile(file.path, "unknown family '\(familyName)'")
        }
        c.family = family
        c.structure = try ints("structure")
        c.widths = try ints("widths")
        c.kernelSize = try int("kernel_size")
        do { c.initScheme = try LossNetworkInit(parsing: try attr("init").stringValue ?? "") } catch let error as LossNetworkError {
            throw LossNetworkError.badFile(file.path, "attribute 'init': \(error)")
        }
        let seed = try attr("seed")
        c.seed = seed.uintValue ?? UInt64(bitPattern: seed.intValue ?? 0)
        guard let weights = try attr("level_weights").doublesValue else {
            throw LossNetworkError.badFile(file.path, "attribute 'level_weights' is not a list of numbers")
        }
        c.levelWeights = weights.map(Float.init)
        do { try c.validate() } catch { throw LossNetworkError.badFile(file.path, "invalid network description: \(error)") }
        return c
    }

    /// Loads a loss network written by `export` (or by any tool that follows the layout).
    ///
    /// Every weight the network needs must be present with the right shape (all problems are
    /// reported at once), and the weights must match the stored fingerprint.
    public static func load(_ path: String) throws -> PerceptualLoss {
        let file = try HDF5File.openChecked(reading: path)
        let config = try config(of: file)
        let names = try file.datasetNames()
        let pretrained = names.contains("adapter.weight")
        var skeleton = config
        if pretrained { skeleton.inChannels = 3 }
        // Shapes come from the skeleton; its random weights are replaced by the file's.
        let network = try makeLossNetwork(skeleton)
        var state: [String: Tensor] = [:]
        for name in names where name != "adapter.weight" { state[name] = try file.readTensor(at: name) }
        do { try network.loadStateDict(state) } catch { throw LossNetworkError.badFile(path, "\(error)") }
        var adapter: Conv2d?
        if pretrained {
            let w = try file.readTensor(at: "adapter.weight")
            guard w.shape == [3, config.inChannels, 1, 1] else {
                throw LossNetworkError.badFile(path, "adapter.weight has shape \(w.shape), expected [3, \(config.inChannels), 1, 1]")
            }
            var rng = SeededRNG(seed: 0)
            let a = Conv2d(config.inChannels, 3, kernel: (1, 1), bias: false, initializer: .constant(0), rng: &rng)
            a.weight.assign(w)
            adapter = a
        }
        let loss = try PerceptualLoss(config: config, network: network, adapter: adapter)
        if let stored = try file.attribute("fingerprint")?.uintValue, stored != loss.fingerprint {
            throw LossNetworkError.badFile(path, String(format: "weights do not match the stored fingerprint (file %016llx, weights %016llx): the file was altered or damaged", stored, loss.fingerprint))
        }
        return loss
    }

    /// The 'T' variant: a 3-channel network of `config.family` with pretrained weights read from
    /// `weightsPath` — torchvision's own `.pth` file or an HDF5 file under torchvision's names —
    /// behind a fixed 1×1 convolution C → 3 drawn from the config's seed. Every weight of the
    /// network must be in the file (classifiers are ignored); `report` receives what was loaded.
    public static func pretrained(_ config: LossNetworkConfig, weights weightsPath: String,
                                  report: (WeightLoadReport) -> Void = { _ in }) throws -> PerceptualLoss {
        var skeleton = config
        skeleton.inChannels = 3
        let network = try makeLossNetwork(skeleton)
        let loaded = try CheckpointLoader.loadWeights(from: weightsPath, into: network, remap: .lossNetwork, strict: false)
        guard loaded.missing.isEmpty, loaded.misshapen.isEmpty else {
            throw LossNetworkError.badFile(weightsPath, "not the pretrained weights of this \(config.family.rawValue) network:\n\(loaded)")
        }
        report(loaded)
        var rng = SeededRNG(seed: config.seed, stream: "adapter")
        let adapter = Conv2d(config.inChannels, 3, kernel: (1, 1), bias: false, initializer: config.initScheme.initializer, rng: &rng)
        return try PerceptualLoss(config: config, network: network, adapter: adapter)
    }
}
