import ArgumentParser
import Foundation
import PercepCore
import PercepHDF5
import Perceptual

/// `percep-dist lossnet …`: write and evaluate perceptual-loss networks.
struct LossNet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lossnet", abstract: "Export and evaluate perceptual-loss networks.",
        subcommands: [Export.self, Eval.self])

    /// `lossnet export`: builds the network from the options and writes it.
    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write a seeded loss network to an HDF5 file.")
        @OptionGroup var network: LossNetOptions
        @Option(help: "Pretrained 3-channel weights behind a seeded 1×1 C→3 conv: torchvision's .pth (e.g. vgg16-397923af.pth) or HDF5 with torchvision names.")
        var pretrained: String?
        @Option(help: "Output file.") var out: String

        func run() throws {
            let config = try network.config()
            let loss = try pretrained.map { try LossNetworkFile.pretrained(config, weights: $0, report: { print($0) }) } ?? PerceptualLoss(config)
            try LossNetworkFile.export(loss, to: out)
            print(String(format: "wrote %@: %@ network, %d tensors, fingerprint %016llx", out, config.family.rawValue,
                         loss.network.stateDict().count, loss.fingerprint))
        }
    }

    /// `lossnet eval`: the loss between two maps and, optionally, its gradient.
    struct Eval: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Evaluate the perceptual loss between datasets 'pred' and 'target' (N×C×H×W float32).")
        @Option(help: "Loss-network file written by 'lossnet export'.") var lossnet: String
        @Option(help: "HDF5 file with dataset 'pred'.") var pred: String
        @Option(help: "HDF5 file with dataset 'target'.") var target: String
        @Option(help: "Write d loss / d pred as dataset 'grad' to this file.") var gradOut: String?
        @Flag(help: "Print {\"loss\": …}.") var json = false

        func run() throws {
            let loss = try LossNetworkFile.load(lossnet)
            let p = try HDF5File.openChecked(reading: pred).readTensor(at: "pred")
            let t = try HDF5File.openChecked(reading: target).readTensor(at: "target")
            try loss.check(prediction: p, target: t)
            p.requiresGrad = gradOut != nil
            let value = loss(p, t)
            if let gradOut {
                value.backward()
                let file = try HDF5File(creating: gradOut)
                try file.write(p.grad ?? Tensor.zeros(p.shape), at: "grad")
                try file.close()
            }
            if json {
                let data = try JSONSerialization.data(withJSONObject: ["loss": Double(value.item)])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print("loss \(value.item)")
            }
        }
    }
}
