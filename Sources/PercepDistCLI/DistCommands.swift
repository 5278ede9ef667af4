import BuildInfo
import ArgumentParser
import CMPI
import Distributed
import Foundation
import PercepCore
import PercepNN
import Perceptual

/// `percep-dist dist …`: checks of the data-parallel runtime, run under mpirun.
struct Dist: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the data-parallel runtime (run under mpirun).", subcommands: [DistCheck.self])
}

/// The samples of global indices `indices`: synthetic scenes whose content depends only on the
/// index, so a global batch is the same data at any world size.
func scenes(_ indices: [Int], size: Int) -> (Tensor, [Int32]) {
    let images = Tensor(uninitialized: [indices.count, 3, size, size])
    var labels: [Int32] = []
    for (k, i) in indices.enumerated() {
        var rng = SeededRNG(seed: UInt64(i), stream: "scene")
        let (x, y) = syntheticScenes(count: 1, size: size, rng: &rng)
        (images.data + k * x.count).update(from: x.data, count: x.count)
        labels += y
    }
    return (images, labels)
}

/// `percep-dist dist check`: one scenario of the runtime's contract; exits 0 when it holds.
struct DistCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Run one check of the runtime: allreduce, overlap, train (world-size equivalence), replicas, or failure handling.")

    enum Scenario: String, ExpressibleByArgument, CaseIterable { case allreduce, overlap, train, replicas }
    @Option(help: "allreduce | overlap | train | replicas") var scenario: Scenario = .allreduce
    @Option(help: "Global batch for 'train'.") var globalBatch = 4
    @Option(help: "SGD steps for 'train'.") var steps = 5
    @Option(help: "Write the trained parameters (raw float32, state-dict order) here (rank 0).") var out: String?
    @Option(help: "Bucket size in KiB.") var bucketKb = 1
    @Flag(help: "One all-reduce after backward instead of overlapping buckets.") var noOverlap = false
    @Option(help: "Collective timeout in seconds (DIST.TIMEOUT_SECONDS).") var timeout = 600.0
    @Option(help: "This rank throws at this step ('train').") var failRank: Int?
    @Option(help: "Step at which --fail-rank or --stop-rank acts.") var atStep = 3
    @Option(help: "This rank stops itself (SIGSTOP) at --at-step ('train').") var stopRank: Int?
    @Option(help: "Give this rank a different loss-network seed ('replicas').") var mismatchRank: Int?

    func run() throws {
        ThreadBudget.set(1)
        try Communicator.run(timeout: timeout) { world in
            switch scenario {
            case .allreduce: try checkAllreduce(world)
            case .overlap: try checkOverlap(world)
            case .train: try train(world)
            case .replicas: try replicas(world)
            }
        }
    }

    /// Exact sums for odd sizes and several buckets.
    func checkAllreduce(_ world: Communicator) throws {
        let w = world.size, r = world.rank
        for n in [1, 7, 1000, 65_537] {
            let t = Tensor(uninitialized: [n])
            for i in 0..<n { t.data[i] = Float((i % 97) * (r + 1)) }
            world.allreduceSum(t.data, count: n)
            let factor = w * (w + 1) / 2
            for i in 0..<n where t.data[i] != Float((i % 97) * factor) {
                throw DistributedError(rank: r, message: "allreduce of \(n): element \(i) is \(t.data[i]), expected \((i % 97) * factor)")
            }
        }
        // Gradient buckets: parameters with rank-dependent gradients, averaged exactly.
        let params = (0..<5).map { k in Tensor.zeros([k * 300 + 13], requiresGrad: true) }
        let sync = GradientSynchronizer(parameters: params, communicator: world, bucketBytes: bucketKb << 10, overlap: !noOverlap)
        guard sync.buckets.count > 1 else { throw DistributedError(rank: r, message: "expected several buckets") }
        let loss = params.enumerated().map { k, p in (p * Float((k + 1) * (r + 1))).sum() }.reduce(Tensor(scalar: 0)) { $0 + $1 }
        sync.zeroGrads()
        sync.backward(loss)
        for (k, p) in params.enumerated() {
            // Mean over ranks of (k+1)(r+1); backward is seeded with 1/W, which is inexact for
            // W = 3, so allow float rounding.
            let expected = Float((k + 1) * (w + 1)) / 2
            if let bad = p.grad!.values.first(where: { abs($0 - expected) > 1e-6 * expected }) {
                throw DistributedError(rank: r, message: "bucketed gradient of parameter \(k) is \(bad), expected \(expected)")
            }
        }
        // A second step over the buffer the first one left: zeroGrads only marks it unwritten, so
        // parameter 2, which this loss does not reach, must still come out zero, and parameter 4,
        // reached twice, the sum of both uses (not the first step's value plus this one's).
        let second = params.enumerated().filter { $0.offset != 2 }.map { k, p in (p * Float(k + 1)).sum() }
            .reduce((params[4] * Float(r + 1)).sum()) { $0 + $1 }
        sync.zeroGrads()
        sync.backward(second)
        for (k, p) in params.enumerated() {
            let expected = k == 2 ? 0 : Float(k + 1) + (k == 4 ? Float(w + 1) / 2 : 0)
            if let bad = p.grad!.values.first(where: { abs($0 - expected) > 1e-6 * expected }) {
                throw DistributedError(rank: r, message: "second step: gradient of parameter \(k) is \(bad), expected \(expected)")
            }
        }
        Log.info("allreduce: exact for sizes 1, 7, 1000, 65537 and \(sync.buckets.count) gradient buckets on \(w) ranks")
    }

    /// Buckets go to the communication thread while backward is still running. Backward here is
    /// a chain of ops whose gradient step sleeps instead of computing, as on a machine with a
    /// core free for communication; the check reads the synchroniser's timeline. With overlap,
    /// every bucket but the last (whose parameter the walk reaches at its very end) must finish
    /// its all-reduce before the walk ends; with `--no-overlap`, none may start before it.
    func checkOverlap(_ world: Communicator) throws {
        let r = world.rank, parts = 5, elements = 65_536, sleepMicroseconds: UInt32 = 150_000
        let params = (0..<parts).map { _ in Tensor.zeros([elements], requiresGrad: true) }
        let sync = GradientSynchronizer(parameters: params, communicator: world, bucketBytes: elements * 4, overlap: !noOverlap)
        guard sync.buckets.count == parts else { throw DistributedError(rank: r, message: "expected \(parts) buckets, got \(sync.buckets.count)") }
        // h_k = slow(h_{k−1} + Σ p_k·(r+1)): the walk reaches p_{K−1} first and p_0 last.
        var h = Tensor(scalar: 0)
        for p in params {
            let sum = h + (p * Float(r + 1)).sum()
            h = sum.copy()
            Tape.record(h, inputs: [sum]) { g in usleep(sleepMicroseconds); return [g] }
        }
        sync.zeroGrads()
        world.barrier()
        sync.backward(h)
        guard let profile = sync.lastProfile else { throw DistributedError(rank: r, message: "no overlap profile recorded") }
        let expected = Float(world.size + 1) / 2
        if let bad = params.first(where: { $0.grad!.values.contains { abs($0 - expected) > 1e-6 * expected } }) {
            throw DistributedError(rank: r, message: "a bucketed gradient is \(bad.grad!.values[0]), expected \(expected)")
        }
        let timeline = zip(profile.bucketStarts, profile.bucketEnds).enumerated()
            .map { String(format: "bucket %d %.1f–%.1f ms", $0, $1.0 * 1e3, $1.1 * 1e3) }.joined(separator: ", ")
        Log.info(String(format: "overlap: walk %.1f ms, step %.1f ms; %@", profile.walkSeconds * 1e3, profile.totalSeconds * 1e3, timeline))
        if noOverlap {
            if let b = profile.bucketStarts.firstIndex(where: { $0 < profile.walkSeconds }) {
                throw DistributedError(rank: r, message: "bucket \(b) started before the walk ended without overlap")
            }
        } else if let b = profile.bucketEnds.dropLast().firstIndex(where: { $0 > profile.walkSeconds }) {
            throw DistributedError(rank: r, message: String(format: "bucket %d finished at %.1f ms, after the walk ended at %.1f ms: communication did not overlap backward",
                                                            b, profile.bucketEnds[b] * 1e3, profile.walkSeconds * 1e3))
        }
        Log.info(String(format: "overlap: %.0f %% of the all-reduce time ran during backward on %d ranks", profile.communicationDuringWalkShare * 100, world.size))
    }

    /// A small conv net with synchronized BN trained for `steps` SGD steps on the global batch.
    func train(_ world: Communicator) throws {
        var rng = SeededRNG(seed: 0, stream: "model")
        let model = TinySegNet(classes: 3, width: 8, rng: &rng)
        try world.verifyReplicas([("parameter count", Int64(model.namedParameters().count)), ("shapes", shapesHash(model))])
        world.broadcastState(of: model)
        world.synchronizeBatchNorm(in: model)
        let params = model.namedParameters().map(\.1)
        let sync = GradientSynchronizer(parameters: params, communicator: world, bucketBytes: bucketKb << 10, overlap: !noOverlap)
        let sgd = SGD(params, learningRate: 0.05, momentum: 0.9, weightDecay: 1e-4)
        let sampler = try DistributedSampler(datasetSize: 64, globalBatch: globalBatch, seed: 1, worldSize: world.size, rank: world.rank)
        for step in 0..<steps {
            if step == atStep && failRank == world.rank {
                throw DistributedError(rank: world.rank, message: "injected failure at step \(step)")
            }
            if step == atStep && stopRank == world.rank { kill(getpid(), SIGSTOP) }
            let (_, indices) = sampler.batch(atCursor: step * globalBatch)
            let (x, y) = scenes(indices, size: 16)
            let loss = Loss.crossEntropy(model(x), target: y)
            sync.zeroGrads()
            sync.backward(loss)
            sgd.step()
            Log.info("step \(step) local loss \(loss.item)")
        }
        if world.rank == 0, let out {
            var bytes = Data()
            for (_, t) in model.stateDict() { bytes.append(Data(bytes: t.data, count: t.count * 4)) }
            try bytes.write(to: URL(fileURLWithPath: out))
        }
    }

    /// Start-up agreement on the loss network.
    func replicas(_ world: Communicator) throws {
        var c = LossNetworkConfig(inChannels: 3)
        c.structure = [1, 1]; c.widths = [4, 4]
        c.seed = world.rank == mismatchRank ? 99 : 1
        let loss = try PerceptualLoss(c)
        try world.verifyReplicas([("loss-network fingerprint", Int64(bitPattern: loss.fingerprint)),
                                  ("build", BuildInfo.identityHash)])
        Log.info("replicas agree on \(world.size) ranks")
    }
}
