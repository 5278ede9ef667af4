import ArgumentParser
import CMPI
import Distributed
import Foundation
import PercepCore
import Perceptual

/// `percep-dist bench allreduce`: the runtime's gradient synchronisation against a raw
/// MPI_Allreduce of the same bytes, and the overlap and weak scaling of a ResNet-18 step.
struct BenchAllreduce: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "allreduce",
        abstract: "Gradient sync time vs raw MPI_Allreduce, overlap share and weak scaling (run under mpirun).")

    @Option(help: "Buffer sizes in MB.") var mb: String = "1,25,100"
    @Option(help: "Timed repetitions (median kept).") var repeats = 7
    @Option(help: "Bucket size in MB (DIST.BUCKET_MB).") var bucketMb = 25
    @Option(help: "Per-rank batch of the ResNet-18 step (0 skips the step benchmark).") var batch = 2
    @Option(help: "Image size of the ResNet-18 step.") var size = 64
    @Option(help: "Single-rank step time to compare against (seconds), for weak scaling.") var singleRankStep: Double?
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        ThreadBudget.set(1)
        let world = try Communicator.start()
        var results: [[String: Double]] = []
        func median(_ body: () -> Void) -> Double { slowestRankMedian(world, body) * 1e3 }
        for text in mb.split(separator: ",") {
            guard let megabytes = Double(text.trimmingCharacters(in: .whitespaces)), megabytes > 0 else {
                throw ValidationError("invalid --mb '\(mb)': expected comma-separated positive numbers")
            }
            let count = Int(megabytes * 1_048_576 / 4)
            // The project's path: parameter-sized gradients in the flat buffer, bucketed, averaged.
            let params = stride(from: 0, to: count, by: 262_144).map { Tensor.zeros([min(262_144, count - $0)], requiresGrad: true) }
            let sync = GradientSynchronizer(parameters: params, communicator: world, bucketBytes: bucketMb << 20)
            let project = median { sync.reduceAll() }
            let raw = Storage(zeros: count)
            let rawMs = median {
                world.perform("raw allreduce") { pd_mpi_allreduce_sum_f32(raw.base, Int64(count), &$0, $0.count) }
            }
            results.append(["mb": megabytes, "project_ms": project, "raw_ms": rawMs, "ratio": project / rawMs])
            Log.info(String(format: "%6.1f MB: project %.2f ms, raw MPI_Allreduce %.2f ms, ratio %.3f", megabytes, project, rawMs, project / rawMs))
        }
        var report: [String: Any] = ["results": results, "ranks": world.size]
        if batch > 0 { report.merge(try stepBenchmark(world), uniquingKeysWith: { $1 }) }
        if json && world.rank == 0 {
            let data = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        }
        world.finish()
    }

    /// Seconds of `body`: each rank's median over `repeats` runs (each after a barrier), then the
    /// slowest rank's, since a collective step is as slow as its slowest rank.
    func slowestRankMedian(_ world: Communicator, _ body: () -> Void) -> Double {
        var times: [Double] = []
        for _ in 0..<repeats {
            world.barrier()
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        var m = [times.sorted()[times.count / 2]]
        world.allreduceMax(&m)
        return m[0]
    }

    /// One training step of a ResNet-18 trunk (11.2 M parameters): backward alone, communication
    /// alone and the overlapped step, giving the share of communication hidden behind backward.
    func stepBenchmark(_ world: Communicator) throws -> [String: Any] {
        var config = LossNetworkConfig(inChannels: 3)
        config.family = .resnet18
        let net = try makeLossNetwork(config)
        net.unfreeze()
        net.train()
        let params = net.namedParameters().map(\.1)
        let sync = GradientSynchronizer(parameters: params, communicator: world, bucketBytes: bucketMb << 20)
        var rng = SeededRNG(seed: UInt64(world.rank), stream: "bench")
        let x = Tensor(uninitialized: [batch, 3, size, size])
        rng.fillNormal(x, std: 1)
        func forwardLoss() -> Tensor { net.levels(x, upTo: 3)[3].pow(2).mean() }
        func timed(_ body: () -> Void) -> Double { slowestRankMedian(world, body) }
        // Backward without communication: plain tape backward into the same flat buffer.
        let forwardOnly = timed { _ = Tape.withoutGrad { forwardLoss() } }
        let compute = timed { sync.zeroGrads(); forwardLoss().backward() }
        let communication = timed { sync.reduceAll() }
        let step = timed { sync.zeroGrads(); sync.backward(forwardLoss()) }
        let backward = compute - forwardOnly
        let hidden = max(0, min(1, (compute + communication - step) / communication))
        var out: [String: Any] = [
            "step_seconds": step, "compute_seconds": compute, "backward_seconds": backward,
            "communication_seconds": communication, "hidden_communication_share": hidden,
            "parameters": params.map(\.count).reduce(0, +), "per_rank_batch": batch,
        ]
        if let single = singleRankStep { out["weak_scaling_efficiency"] = single / step }
        Log.info(String(format: "ResNet-18 step (batch %d/rank, %d²): %.3f s; compute %.3f s (backward %.3f s), communication alone %.3f s, hidden %.0f %%",
                        batch, size, step, compute, backward, communication, hidden * 100))
        return out
    }
}
