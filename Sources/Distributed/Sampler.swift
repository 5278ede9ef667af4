import Foundation
import PercepCore

/// Which samples each rank reads: a global permutation per epoch from (seed, epoch), cut into
/// global batches; rank r takes elements r, r + W, … of each global batch.
///
/// Position is a global sample cursor (samples consumed by the whole job), independent of the
/// world size, so a checkpointed run resumes exactly where it stopped. Every rank runs the same
/// number of steps: an epoch is ⌊N / B⌋ global batches and the tail is dropped.
public struct DistributedSampler {
    /// Dataset size N.
    public let datasetSize: Int
    /// Global batch B (split across ranks; SOLVER.IMS_PER_BATCH).
    public let globalBatch: Int
    /// Seed of the permutations.
    public let seed: UInt64
    /// World size W and this rank.
    public let worldSize: Int, rank: Int

    /// A sampler; B must be a positive multiple of W and at most N.
    public init(datasetSize: Int, globalBatch: Int, seed: UInt64, worldSize: Int, rank: Int) throws {
        guard globalBatch > 0, globalBatch % worldSize == 0 else {
            throw DistributedError(rank: rank, message: "the global batch \(globalBatch) must be a positive multiple of the world size \(worldSize)")
        }
        guard datasetSize >= globalBatch else {
            throw DistributedError(rank: rank, message: "the dataset has \(datasetSize) samples, fewer than one global batch of \(globalBatch)")
        }
        self.datasetSize = datasetSize; self.globalBatch = globalBatch; self.seed = seed
        self.worldSize = worldSize; self.rank = rank
    }

    /// Global batches per epoch.
    public var stepsPerEpoch: Int { datasetSize / globalBatch }

    /// The permutation of epoch `epoch`, the same on every rank.
    public func permutation(epoch: Int) -> [Int] {
        var rng = SeededRNG(seed: seed &+ UInt64(epoch), stream: "data-order")
        return rng.permutation(datasetSize)
    }

    /// This rank's sample indices for the global batch that starts at `cursor` (a multiple of B),
    /// and the epoch it belongs to.
    public func batch(atCursor cursor: Int) -> (epoch: Int, indices: [Int]) {
        let step = cursor / globalBatch
        let epoch = step / stepsPerEpoch, offset = (step % stepsPerEpoch) * globalBatch
        let perm = permutation(epoch: epoch)
        return (epoch, Array(stride(from: offset + rank, to: offset + globalBatch, by: worldSize)).map { perm[$0] })
    }
}
