import ArgumentParser
import BuildInfo
import Distributed
import PercepHDF5
import Foundation
import PercepCore
import PercepNN

/// The percep-dist command line.
struct PercepDist: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "percep-dist",
        abstract: "Data-parallel training with the generic perceptual loss.",
        version: "percep-dist \(BuildInfo.description)",
        subcommands: [LossNet.self, TrainDemo.self, TrainSeg.self, TrainInst.self, EvalInst.self, Dist.self, Bench.self, COCOEval.self, EvalSeg.self, TrainDepth.self, EvalDepth.self, Synth.self,
                      CheckpointCommand.self, WeightsCommand.self, PlotCommand.self, Visualize.self, HDF5ProbeCommand.self, StudyCommand.self])
}

// With --json, stdout carries the command's JSON only: progress lines go to stderr.
if CommandLine.arguments.contains("--json") { Log.quiet = true }
// HDF5 files from elsewhere are read by a child process first (a malformed file that crashes the
// HDF5 library ends the child, not the job); the probe itself does not probe.
if CommandLine.arguments.dropFirst().first != "hdf5-probe" {
    HDF5Probe.command = [URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path, "hdf5-probe"]
}
PercepDist.main()
