import ArgumentParser
import Checkpoint
import Distributed
import Foundation
import PercepCore
import PercepNN
import Perceptual
import Training

/// `percep-dist train-demo`: the shared training loop on the built-in synthetic scenes.
///
/// Config → replicas that agree → sharded data → forward, CE + λ·perceptual loss → bucketed
/// gradient all-reduce → SGD with rank 0's learning rate → rank-0 logs, metrics.jsonl and atomic
/// checkpoints, with exact resume.
struct TrainDemo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-demo",
        abstract: "Train TinySegNet on synthetic scenes with the full loop (configs, MPI, checkpoints, resume).")

    @Option(help: "YAML config (e.g. configs/demo/tiny-synthetic.yaml).") var config: String
    @Flag(help: "Resume from the newest complete checkpoint in OUTPUT_DIR.") var resume = false
    @Option(help: "Stop after this iteration (as if preempted), to test resuming.") var stopAt: Int?
    @Argument(help: "Config overrides as KEY VALUE pairs (SOLVER.MAX_ITER 20 …).") var overrides: [String] = []

    func run() throws {
        let cfg = try TrainingConfig.load(file: config, overrides: overrides)
        let world = try Communicator.start(timeout: cfg.double("DIST.TIMEOUT_SECONDS"))
        do { try train(cfg, world) } catch {
            world.fail("\(error)")
        }
        world.finish()
    }

    func train(_ cfg: TrainingConfig, _ world: Communicator) throws {
        let seed = UInt64(bitPattern: Int64(cfg.int("SEED")))
        let out = cfg.string("OUTPUT_DIR")
        let maxIter = cfg.int("SOLVER.MAX_ITER"), batch = cfg.int("SOLVER.IMS_PER_BATCH")
        if world.rank == 0 {
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            Log.info("resolved config (hash \(String(cfg.hash, radix: 16))):\n\(cfg.resolvedYAML)")
        }
        var rng = SeededRNG(seed: seed, stream: "model")
        let model = TinySegNet(classes: 3, width: 8, rng: &rng)
        var perceptual: PerceptualLoss?
        if cfg.bool("LOSS.PERCEPTUAL.ENABLED") {
            var lc = LossNetworkConfig(inChannels: 3)
            lc.family = LossNetworkFamily(rawValue: cfg.string("LOSS.PERCEPTUAL.FAMILY")) ?? .vgg
            lc.structure = cfg.ints("LOSS.PERCEPTUAL.STRUCTURE")
            lc.widths = cfg.ints("LOSS.PERCEPTUAL.WIDTHS")
            lc.kernelSize = cfg.int("LOSS.PERCEPTUAL.KERNEL_SIZE")
            lc.initScheme = try LossNetworkInit(parsing: cfg.string("LOSS.PERCEPTUAL.INIT"))
            lc.seed = UInt64(bitPattern: Int64(cfg.int("LOSS.PERCEPTUAL.SEED")))
            let w = cfg.doubles("LOSS.PERCEPTUAL.LEVEL_WEIGHTS")
            lc.levelWeights = w.isEmpty ? nil : w.map(Float.init)
            lc.lambda = Float(cfg.double("LOSS.PERCEPTUAL.LAMBDA"))
            perceptual = try PerceptualLoss(lc)
        }
        try world.verifyReplicas([
            ("parameter count", Int64(model.namedParameters().count)), ("shapes", shapesHash(model)),
            ("resolved config", Int64(bitPattern: cfg.hash)),
            ("loss-network fingerprint", Int64(bitPattern: perceptual?.fingerprint ?? 0)), ("code version", 1),
        ])
        world.broadcastState(of: model)
        if cfg.bool("MODEL.SYNC_BN") { world.synchronizeBatchNorm(in: model) }
        let named = model.namedParameters()
        let isNorm = { (name: String) in name.contains(".1.") }   // TinySegNet's BatchNorm2d children
        let sgd = SGD(groups: [(named.filter { !isNorm($0.0) }.map(\.1), Float(cfg.double("SOLVER.WEIGHT_DECAY"))),
                               (named.filter { isNorm($0.0) }.map(\.1), Float(cfg.double("SOLVER.WEIGHT_DECAY_NORM")))],
                      learningRate: Float(cfg.double("SOLVER.BASE_LR")), momentum: Float(cfg.double("SOLVER.MOMENTUM")))
        let params = named.map(\.1)
        let sync = GradientSynchronizer(parameters: params, communicator: world,
                                        bucketBytes: Int(cfg.double("DIST.BUCKET_MB") * 1_048_576), overlap: cfg.bool("DIST.OVERLAP"))
        let schedule = LRSchedule(config: cfg)
        let sampler = try DistributedSampler(datasetSize: 512, globalBatch: batch, seed: seed, worldSize: world.size, rank: world.rank)
        var start = 0
        if resume {
            var header = [Int64](repeating: 0, count: 1)
            if world.rank == 0 {
                let (checkpoint, source) = try CheckpointLoader.latest(in: out)
                if case .fallback(let reason) = source { Log.warning(reason) }
                guard checkpoint.state.configHash == cfg.hash else {
                    throw DistributedError(rank: 0, message: "\(checkpoint.path) was written with another config (hash \(String(checkpoint.state.configHash, radix: 16)))")
                }
                try CheckpointLoader.restore(checkpoint, into: model, optimizer: sgd)
                header[0] = Int64(checkpoint.state.iteration)
                Log.info("resumed from \(checkpoint.path) at iteration \(checkpoint.state.iteration)")
            }
            header.withUnsafeMutableBytes { world.broadcast($0.baseAddress!, bytes: 8, name: "resume iteration") }
            start = Int(header[0])
            world.broadcastState(of: model)
            for p in params {   // momentum buffers: rank 0's, everywhere
                let buf = sgd.momentumBuffer(p)?.copy() ?? Tensor.zeros(p.shape)
                world.broadcast(UnsafeMutableRawPointer(buf.data), bytes: buf.count * 4, name: "broadcast of momentum")
                sgd.setMomentumBuffer(buf, for: p)
            }
        }
        let writer = CheckpointWriter(directory: out, keepLast: cfg.int("SOLVER.MAX_TO_KEEP"))
        let metrics = world.rank == 0 ? FileHandle(forUpdatingAtPath: try metricsFile(out)) : nil
        metrics?.seekToEndOfFile()
        let clip = cfg.bool("SOLVER.CLIP_GRADIENTS.ENABLED")
        let period = max(1, cfg.int("SOLVER.CHECKPOINT_PERIOD"))
        let side = 32
        if let perceptual {   // fail before training when the images do not fit the loss network
            let probe = Tensor.zeros([1, 3, side, side])
            try perceptual.check(prediction: probe, target: probe)
        }
        let began = Date()
        for it in start..<maxIter {
            // Rank 0 owns the schedule; every rank uses its value.
            var lr = [Float(schedule.lr(at: it))]
            lr.withUnsafeMutableBytes { world.broadcast($0.baseAddress!, bytes: 4, name: "learning rate") }
            sgd.learningRate = lr[0]
            let t0 = Date()
            let (epoch, indices) = sampler.batch(atCursor: it * batch)
            let (x, y) = scenes(indices, size: side)
            let logits = model(x)
            let ce = Loss.crossEntropy(logits, target: y)
            var terms: [(String, Tensor)] = [("loss_ce", ce)]
            if let perceptual {
                let onehot = Tensor.zeros(logits.shape)
                let plane = side * side
                for (i, label) in y.enumerated() { onehot.data[((i / plane) * 3 + Int(label)) * plane + i % plane] = 1 }
                terms.append(("loss_perceptual", perceptual.weighted(logits.softmax(axis: 1), onehot)))
            }
            for (name, value) in terms where !value.item.isFinite {
                throw DistributedError(rank: world.rank, message: "non-finite \(name) (\(value.item)) at iteration \(it); the last good checkpoint is kept")
            }
            let total = terms.dropFirst().reduce(ce) { $0 + $1.1 }
            sync.zeroGrads()
            sync.backward(total)
            if clip { GradientClipping.clipValue(params, Float(cfg.double("SOLVER.CLIP_GRADIENTS.CLIP_VALUE"))) }
            sgd.step()
            let dt = Date().timeIntervalSince(t0)
            if world.rank == 0 && (it % 20 == 0 || it == maxIter - 1) {
                let eta = Date().timeIntervalSince(began) / Double(it - start + 1) * Double(maxIter - it - 1)
                let termText = terms.map { String(format: "%@: %.4f", $0.0, $0.1.item) }.joined(separator: "  ")
                Log.info(String(format: "eta: %.0fs  iter: %d  total_loss: %.4f  %@  time: %.4f  lr: %.5g  max_mem: %.0fM",
                                eta, it, total.item, termText, dt, lr[0], peakRSSMegabytes()))
                var record: [String: Any] = ["iteration": it, "total_loss": Double(total.item), "lr": Double(lr[0]), "time": dt, "epoch": epoch]
                for (name, value) in terms { record[name] = Double(value.item) }
                let line = try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys])
                metrics?.write(line + Data("\n".utf8))
            }
            if (it + 1) % period == 0 || it + 1 == maxIter {
                if world.rank == 0 {
                    let state = CheckpointState(iteration: it + 1, epoch: epoch, sampleCursor: Int64((it + 1) * batch), rngState: [],
                                                learningRate: Double(lr[0]), scheduleIteration: it + 1, worldSize: world.size,
                                                configText: cfg.resolvedYAML, configHash: cfg.hash,
                                                lossNetworkFingerprint: perceptual?.fingerprint ?? 0)
                    _ = try writer.write(model: model, optimizer: sgd, state: state)
                }
                world.barrier()
            }
            if let stopAt, it + 1 >= stopAt { Log.info("stopping at iteration \(it + 1) (--stop-at)"); break }
        }
        try metrics?.close()
    }

    func metricsFile(_ out: String) throws -> String {
        let path = (out as NSString).appendingPathComponent("metrics.jsonl")
        if !FileManager.default.fileExists(atPath: path) && !FileManager.default.createFile(atPath: path, contents: nil) {
            throw DistributedError(rank: 0, message: "cannot create \(path)")
        }
        return path
    }
}
