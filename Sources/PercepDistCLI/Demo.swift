import ArgumentParser
import Foundation
import PercepCore
import PercepNN

/// `percep-dist demo`: a small segmentation network trained on built-in synthetic data.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Train a tiny segmentation net on built-in synthetic shapes.")
    @Option(help: "Training iterations.") var iters = 60
    @Option(help: "Random seed.") var seed: UInt64 = 0
    func run() throws {
        print("demo: not yet")
    }
}
