import Foundation
import PercepCore

/// Channel dropout (`nn.Dropout2d`): in training, each (sample, channel) plane is zeroed with
/// probability `p` and the kept ones are scaled by 1 / (1 − p); in evaluation it is the identity.
///
/// The masks come from keys, one per sample, that the caller sets around the forward pass with
/// `Dropout2d.withSampleKeys`: a sample's mask depends only on its key and on which dropout call
/// of the forward pass it is, never on the batch it shares or the rank that runs it, so training
/// is the same at any world size and resumes exactly. Without keys (benchmarks, ad-hoc use) each
/// forward pass draws fresh keys from a process-wide counter.
///
/// input: [N, C, H, W] → [N, C, H, W].
public final class Dropout2d: Module, Layer {
    /// Probability of zeroing a channel plane.
    public let p: Float

    /// Channel dropout with probability `p` (0 ≤ p < 1).
    public init(_ p: Float) {
        precondition(p >= 0 && p < 1, "Dropout2d: p must be in [0, 1), got \(p)")
        self.p = p
        super.init()
    }

    private struct Scope { var keys: [UInt64]; var calls: Int }
    nonisolated(unsafe) private static var scope: Scope?
    nonisolated(unsafe) private static var unkeyedCalls: UInt64 = 0
    private static let lock = NSLock()

    /// Runs `body` (one forward pass) with `keys[i]` the key of sample i of every dropout layer's
    /// input; dropout calls inside are numbered in order, so each layer draws its own mask. The
    /// scope is process-wide (a training forward runs on one thread), scopes nest, and every
    /// training-mode `Dropout2d` inside must see exactly `keys.count` samples (checked).
    public static func withSampleKeys<T>(_ keys: [UInt64], _ body: () throws -> T) rethrows -> T {
        lock.lock(); let saved = scope; scope = Scope(keys: keys, calls: 0); lock.unlock()
        defer { lock.lock(); scope = saved; lock.unlock() }
        return try body()
    }

    /// Drops channel planes in training; the identity in evaluation or with p = 0.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        guard isTraining && p > 0 else { return x }
        precondition(x.shape.count == 4, "Dropout2d expects [N, C, H, W], got \(x.shape)")
        let (n, c) = (x.shape[0], x.shape[1])
        let (keys, call) = Self.nextCall(samples: n)
        let mask = Tensor(uninitialized: [n, c, 1, 1])
        let scale = 1 / (1 - p)
        for i in 0..<n {
            var rng = SeededRNG(seed: keys[i], stream: "dropout2d.\(call)")
            for j in 0..<c { mask.data[i * c + j] = rng.nextUnit() < Double(p) ? 0 : scale }
        }
        return x * mask
    }

    /// The keys for a batch of `samples` and the index of this call within the forward pass.
    private static func nextCall(samples: Int) -> ([UInt64], Int) {
        lock.lock(); defer { lock.unlock() }
        if var s = scope {
            precondition(s.keys.count == samples, "Dropout2d: \(s.keys.count) sample keys for a batch of \(samples)")
            s.calls += 1
            scope = s
            return (s.keys, s.calls - 1)
        }
        unkeyedCalls += 1
        return ((0..<samples).map { UInt64($0) &+ unkeyedCalls &* 0x9E37_79B9_7F4A_7C15 }, 0)
    }
}
