import ArgumentParser
import BuildInfo
import Distributed
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

// With --json, stdout carries the command's JSON only: progress lines go to stderr.
if CommandLine.arguments.contains("--json") { Log.quiet = true }
PercepDist.main()
