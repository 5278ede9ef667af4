import ArgumentParser
import BuildInfo
import Foundation
import PercepCore
import PercepNN

/// The percep-dist command line.
struct PercepDist: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "percep-dist",
        abstract: "Data-parallel training with the generic perceptual loss.",
        version: "percep-dist \(BuildInfo.description)",
        subcommands: [LossNet.self, TrainDemo.self, TrainSeg.self, TrainInst.self, EvalInst.self, Dist.self, Bench.self, COCOEval.self, EvalSeg.self, Synth.self,
                      CheckpointCommand.self, PlotCommand.self, Visualize.self])
}

PercepDist.main()
