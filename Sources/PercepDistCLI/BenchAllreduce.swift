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
        for text in mb.split(separator: ",") {
            guard let megabytes = Double(text.trimmingCharacters(in: .whitespaces)), megabytes >= 0.001, megabytes <= 16384 else {
                throw ValidationError("invalid --mb '\(mb)': expected comma-separated sizes of 0.001…16384 MB")
            }
            let count = Int(megabytes * 1_048_576 / 4)
            // The project's path: parameter-sized gradients in the flat buffer, bucketed, averaged.
            let params = stride(from: 0, to: count, by: 262_144).map { Tensor.zeros([min(262_144, count - $0)], requiresGrad: true) }
            let sync = GradientSynchronizer(parameters: params, communicator: world, bucketBytes: bucketMb << 20)
            // The raw call reduces the very same buffer, so memory placement cannot favour either.
            let raw = sync.buffer
            // Sub-millisecond collectives need many repetitions for a stable median.
            let medians = slowestRankMedians(world, repeats: max(repeats, min(200, Int(500 / megabytes))), [
                { sync.reduceAll() },
                { world.perform("raw allreduce") { pd_mpi_allreduce_sum_f32(raw.base, Int64(count), &$0, $0.count) } },
            ])
            let (project, rawMs) = (medians[0] * 1e3, medians[1] * 1e3)
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

    /// Seconds of each of `bodies`: they run in turn, each after a barrier, `repeats` times
    /// (`--repeats` by default), in alternating order, so drift on a noisy machine affects all
    /// of them alike; each rank's median per body, then the
    /// slowest rank's, since a collective step is as slow as its slowest rank.
    func slowestRankMedians(_ world: Communicator, repeats: Int? = nil, _ bodies: [() -> Void]) -> [Double] {
        var times = Array(repeating: [Double](), count: bodies.count)
        for r in 0..<(repeats ?? self.repeats) {
            // Listed order on even repetitions, reversed on odd ones: no body always goes first.
            for k in r % 2 == 0 ? Array(bodies.indices) : bodies.indices.reversed() {
                let body = bodies[k]
                world.barrier()
                let t0 = DispatchTime.now().uptimeNanoseconds
                body()
                times[k].append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            }
        }
        var medians = times.map { $0.sorted()[$0.count / 2] }
        world.allreduceMax(&medians)
        return medians
    }

    /// One training step of a ResNet-18 trunk (11.2 M parameters): compute alone (forward +
    /// backward), communication alone, the overlapped step and the step with one all-reduce after
    /// backward, giving the share of communication hidden behind backward.
    func stepBenchmark(_ world: Communicator) throws -> [String: Any] {
        var config = LossNetworkConfig(inChannels: 3)
        config.family = .resnet18
        let net = try makeLossNetwork(config)
        net.unfreeze()
        net.train()
        let params = net.namedParameters().map(\.1)
        let sync = GradientSynchronizer(parameters: params, communicator: world, bucketBytes: bucketMb << 20)
        let plain = GradientSynchronizer(parameters: params, communicator: world, bucketBytes: bucketMb << 20, overlap: false)
        var rng = SeededRNG(seed: UInt64(world.rank), stream: "bench")
        let x = Tensor(uninitialized: [batch, 3, size, size])
        rng.fillNormal(x, std: 1)
        func forwardLoss() -> Tensor { net.levels(x, upTo: 3)[3].pow(2).mean() }
        // The communication thread's CPU time inside the buckets' all-reduces: close to their
        // wall time when the transport copies and adds on the CPU, so on a machine where every
        // core computes that time cannot be hidden, only moved.
        var alone = CommunicationTotals(), duringWalk: [Double] = []
        let medians = slowestRankMedians(world, [
            { _ = Tape.withoutGrad { forwardLoss() } },
            { sync.zeroGrads(); forwardLoss().backward() },  // plain tape backward, no communication
            {
                let before = world.communicationTotals
                sync.reduceAll()
                let spent = world.communicationTotals.since(before)
                alone.wallSeconds += spent.wallSeconds; alone.cpuSeconds += spent.cpuSeconds
            },
            {
                sync.zeroGrads()
                sync.backward(forwardLoss())
                duringWalk.append(sync.lastProfile?.communicationDuringWalkShare ?? 0)
            },
            { plain.zeroGrads(); plain.backward(forwardLoss()) },
        ])
        let (forwardOnly, compute, communication, step, stepWithoutOverlap) = (medians[0], medians[1], medians[2], medians[3], medians[4])
        // The busiest communication thread, and the rank that overlapped least (max of −share).
        var shares = [alone.cpuSeconds / max(alone.wallSeconds, 1e-12), -duringWalk.sorted()[duringWalk.count / 2]]
        world.allreduceMax(&shares)
        let (cpuShare, duringBackward) = (shares[0], -shares[1])
        let hidden = max(0, min(1, (compute + communication - step) / communication))
        var out: [String: Any] = [
            "step_seconds": step, "step_without_overlap_seconds": stepWithoutOverlap,
            "compute_seconds": compute, "backward_seconds": compute - forwardOnly,
            "communication_seconds": communication, "hidden_communication_share": hidden,
            "communication_cpu_share": cpuShare, "communication_during_backward_share": duringBackward,
            "parameters": params.map(\.count).reduce(0, +), "per_rank_batch": batch, "image_size": size,
            "cores": ProcessInfo.processInfo.activeProcessorCount,
        ]
        if let single = singleRankStep { out["weak_scaling_efficiency"] = single / step }
        Log.info(String(format: "ResNet-18 step (batch %d/rank, %d²): %.3f s (%.3f s without overlap); compute %.3f s, communication alone %.3f s (communication thread on the CPU %.0f %% of it); hidden %.0f %% (%.0f %% of the all-reduce time ran during backward)",
                        batch, size, step, stepWithoutOverlap, compute, communication, cpuShare * 100, hidden * 100, duringBackward * 100))
        return out
    }
}
