import Foundation
import PercepCore

/// Which samples each rank reads: a global permutation per epoch from (seed, epoch), cut into
/// global batches; rank r takes elements r, r + W, … of each global batch.
///
/// Position is a global sample cursor (samples consumed by the whole job), independent of the
/// world size, so a checkpointed run resumes exactly where it stopped. Every rank runs the same
/// number of steps: an epoch is ⌊N / B⌋ global batches and the tail is dropped.
///
/// With `groups` (detectron2's aspect-ratio grouping: 0 for landscape, 1 for portrait images),
/// the permutation is walked and each sample joins its group's bucket; a full bucket becomes the
/// next global batch, so every batch holds one group only. An epoch is then Σ_g ⌊N_g / B⌋
/// batches. Batches stay a function of (seed, epoch), whatever the world size.
public final class DistributedSampler: @unchecked Sendable {
    /// Dataset size N.
    public let datasetSize: Int
    /// Global batch B (split across ranks; SOLVER.IMS_PER_BATCH).
    public let globalBatch: Int
    /// Seed of the permutations.
    public let seed: UInt64
    /// World size W and this rank.
    public let worldSize: Int, rank: Int
    /// Group of each sample, or nil for plain batches.
    public let groups: [Int]?
    /// Global batches per epoch.
    public let stepsPerEpoch: Int

    private let lock = NSLock()
    private var cachedEpoch = -1
    private var cachedBatches: [[Int]] = []

    /// A sampler; B must be a positive multiple of W, and at least one batch must fit an epoch.
    public init(datasetSize: Int, globalBatch: Int, seed: UInt64, worldSize: Int, rank: Int, groups: [Int]? = nil) throws {
        guard globalBatch > 0, globalBatch % worldSize == 0 else {
            throw DistributedError(rank: rank, message: "the global batch \(globalBatch) must be a positive multiple of the world size \(worldSize)")
        }
        if let groups { precondition(groups.count == datasetSize, "sampler: \(groups.count) groups for \(datasetSize) samples") }
        let steps = groups.map { g in Dictionary(grouping: g, by: { $0 }).values.reduce(0) { $0 + $1.count / globalBatch } } ?? datasetSize / globalBatch
        guard steps > 0 else {
            let detail = groups == nil ? "" : " of one aspect-ratio group"
            throw DistributedError(rank: rank, message: "the dataset has fewer than one global batch of \(globalBatch) samples\(detail) (\(datasetSize) samples)")
        }
        self.datasetSize = datasetSize; self.globalBatch = globalBatch; self.seed = seed
        self.worldSize = worldSize; self.rank = rank; self.groups = groups; stepsPerEpoch = steps
    }

    /// The permutation of epoch `epoch`, the same on every rank.
    public func permutation(epoch: Int) -> [Int] {
        var rng = SeededRNG(seed: seed &+ UInt64(epoch), stream: "data-order")
        return rng.permutation(datasetSize)
    }

    /// Every global batch of `epoch`, in order (cached for the latest epoch asked).
    public func globalBatches(epoch: Int) -> [[Int]] {
        lock.lock(); defer { lock.unlock() }
        if epoch == cachedEpoch { return cachedBatches }
        let perm = permutation(epoch: epoch)
        var batches: [[Int]] = []
        if let groups {
            var buckets: [Int: [Int]] = [:]
            for i in perm {
                buckets[groups[i], default: []].append(i)
                if buckets[groups[i]]!.count == globalBatch { batches.append(buckets.removeValue(forKey: groups[i])!) }
            }
        } else {
            batches = (0..<stepsPerEpoch).map { Array(perm[($0 * globalBatch)..<(($0 + 1) * globalBatch)]) }
        }
        cachedEpoch = epoch
        cachedBatches = batches
        return batches
    }

    /// The whole global batch of step `step` (every rank's samples, in global order) and its epoch.
    public func globalBatch(step: Int) -> (epoch: Int, indices: [Int]) {
        let epoch = step / stepsPerEpoch
        return (epoch, globalBatches(epoch: epoch)[step % stepsPerEpoch])
    }

    /// This rank's sample indices for the global batch that starts at `cursor` (a multiple of B),
    /// and the epoch it belongs to.
    public func batch(atCursor cursor: Int) -> (epoch: Int, indices: [Int]) {
        let (epoch, all) = globalBatch(step: cursor / globalBatch)
        return (epoch, Array(stride(from: rank, to: globalBatch, by: worldSize)).map { all[$0] })
    }
}
