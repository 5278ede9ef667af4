import Distributed
import Foundation
import Perceptual
import Training

/// Peak resident set size of this process in MiB (Linux reports ru_maxrss in KiB).
public func peakRSSMegabytes() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024
}

/// The perceptual loss the config's `LOSS.PERCEPTUAL` block describes for predictions with
/// `inChannels` channels (the task's class count), or nil when the block is disabled.
public func makePerceptualLoss(_ cfg: TrainingConfig, inChannels: Int) throws -> PerceptualLoss? {
    guard cfg.bool("LOSS.PERCEPTUAL.ENABLED") else { return nil }
    var lc = LossNetworkConfig(inChannels: inChannels)
    // The schema restricts FAMILY to the enum's raw values, so this cannot fail after loading.
    lc.family = LossNetworkFamily(rawValue: cfg.string("LOSS.PERCEPTUAL.FAMILY")) ?? .vgg
    lc.structure = cfg.ints("LOSS.PERCEPTUAL.STRUCTURE")
    lc.widths = cfg.ints("LOSS.PERCEPTUAL.WIDTHS")
    lc.kernelSize = cfg.int("LOSS.PERCEPTUAL.KERNEL_SIZE")
    lc.initScheme = try LossNetworkInit(parsing: cfg.string("LOSS.PERCEPTUAL.INIT"))
    lc.seed = UInt64(bitPattern: Int64(cfg.int("LOSS.PERCEPTUAL.SEED")))
    let w = cfg.doubles("LOSS.PERCEPTUAL.LEVEL_WEIGHTS")
    lc.levelWeights = w.isEmpty ? nil : w.map(Float.init)
    lc.lambda = Float(cfg.double("LOSS.PERCEPTUAL.LAMBDA"))
    let weights = cfg.string("LOSS.PERCEPTUAL.WEIGHTS")
    guard !weights.isEmpty else { return try PerceptualLoss(lc) }
    do {
        return try LossNetworkFile.pretrained(lc, weights: weights, report: { Log.info("loss network: \($0)") })
    } catch {
        throw PerceptualWeightsError(description: "LOSS.PERCEPTUAL.WEIGHTS: \(error)")
    }
}

/// The pretrained loss network of `LOSS.PERCEPTUAL.WEIGHTS` could not be built (names the key,
/// the file and the problem).
public struct PerceptualWeightsError: Error, CustomStringConvertible {
    /// The message.
    public let description: String
}

/// `h:mm:ss`, as detectron2 prints ETAs.
func clockText(_ seconds: Double) -> String {
    let s = max(0, Int(seconds.rounded()))
    return String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
}

/// Rank 0's `OUTPUT_DIR/metrics.jsonl`: one JSON object per line, appended (a resumed run
/// continues the file), flushed per record so a crash loses at most the line being written.
final class MetricsLog {
    private let handle: FileHandle
    let path: String

    init(directory: String) throws {
        path = (directory as NSString).appendingPathComponent("metrics.jsonl")
        if !FileManager.default.fileExists(atPath: path) && !FileManager.default.createFile(atPath: path, contents: nil) {
            throw DistributedError(rank: 0, message: "cannot create \(path)")
        }
        guard let handle = FileHandle(forUpdatingAtPath: path) else {
            throw DistributedError(rank: 0, message: "cannot open \(path) for appending")
        }
        self.handle = handle
        handle.seekToEndOfFile()
    }

    func append(_ record: [String: Any]) throws {
        // NaN (a class never seen) is not JSON; null is what readers expect.
        let clean = record.mapValues { value -> Any in
            if let d = value as? Double, !d.isFinite { return NSNull() }
            return value
        }
        let line = try JSONSerialization.data(withJSONObject: clean, options: [.sortedKeys, .withoutEscapingSlashes])
        handle.write(line + Data("\n".utf8))
    }

    func close() { try? handle.close() }
}

/// A progress bar for evaluation on rank 0's stderr: redrawn in place on a terminal, a line per
/// tenth otherwise (logs stay readable in files and CI).
public final class ProgressBar {
    private let total: Int
    private let label: String
    private let enabled: Bool
    private let interactive: Bool
    private let began = Date()
    private var lastDraw = Date.distantPast
    private var lastTenth = -1

    /// A bar for `total` units labelled `label`; silent when `enabled` is false (other ranks).
    public init(total: Int, label: String, enabled: Bool) {
        self.total = max(total, 1)
        self.label = label
        self.enabled = enabled
        self.interactive = enabled && isatty(STDERR_FILENO) == 1
    }

    /// Shows `done` of the total units.
    public func update(_ done: Int) {
        guard enabled else { return }
        let done = min(done, total), now = Date()
        if interactive {
            guard done == total || now.timeIntervalSince(lastDraw) >= 0.2 else { return }
        } else {
            guard done * 10 / total != lastTenth else { return }
        }
        lastDraw = now
        lastTenth = done * 10 / total
        let width = 30, filled = done * width / total
        let elapsed = now.timeIntervalSince(began)
        let eta = done > 0 ? elapsed / Double(done) * Double(total - done) : 0
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let rate = String(format: "%.1f", Double(done) / max(elapsed, 1e-9))
        let text = "\(label) [\(bar)] \(done)/\(total)  \(rate)/s  eta \(clockText(eta))"
        let end = interactive ? (done == total ? "\n" : "") : "\n"
        FileHandle.standardError.write(Data(((interactive ? "\r" : "") + text + end).utf8))
    }
}
