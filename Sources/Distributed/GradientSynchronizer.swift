import CMPI
import Foundation
import PercepCore

/// Gradients in one flat buffer, all-reduced in buckets while backward is still running.
///
/// Each trainable parameter's `grad` becomes a view into one contiguous buffer, laid out in
/// reverse registration order (the order backward finishes them). The buffer is cut into buckets
/// of about `bucketBytes`; when the tape's reverse walk passes a parameter's first use its
/// gradient is final, and when every parameter of the next bucket is final that bucket is handed
/// to the communication thread, so all-reduce overlaps the rest of backward. Buckets are handed
/// over strictly in index order, the same on every rank. Backward is seeded with 1/W instead
/// of 1, so every gradient arrives pre-divided by the world size and the all-reduce SUM leaves
/// the average without another pass over the buffer.
public final class GradientSynchronizer {
    /// The parameters, in registration order.
    public let parameters: [Tensor]
    /// The flat gradient buffer.
    public let buffer: Storage
    /// Bucket boundaries as element ranges of `buffer`.
    public let buckets: [Range<Int>]
    /// Overlap communication with backward (false: one pass over all buckets after backward).
    public let overlap: Bool
    private let communicator: Communicator
    private let bucketOf: [ObjectIdentifier: Int]
    private var pending: [Int] = []
    private var nextBucket = 0

    /// Lays out the buffer and points every parameter's gradient into it.
    public init(parameters: [Tensor], communicator: Communicator, bucketBytes: Int = 25 << 20, overlap: Bool = true) {
        self.parameters = parameters
        self.communicator = communicator
        self.overlap = overlap
        let order = parameters.reversed()
        buffer = Storage(zeros: parameters.map(\.count).reduce(0, +))
        var offset = 0, bucketStart = 0
        var ranges: [Range<Int>] = [], owner: [ObjectIdentifier: Int] = [:]
        let cap = max(1, bucketBytes / MemoryLayout<Float>.stride)
        for p in order {
            if offset > bucketStart && offset - bucketStart + p.count > cap {
                ranges.append(bucketStart..<offset); bucketStart = offset
            }
            p.grad = Tensor(shape: p.shape, storage: buffer, offset: offset)
            owner[ObjectIdentifier(p)] = ranges.count
            offset += p.count
        }
        if offset > bucketStart || ranges.isEmpty { ranges.append(bucketStart..<offset) }
        buckets = ranges
        bucketOf = owner
        pending = ranges.indices.map { b in owner.values.filter { $0 == b }.count }
    }

    /// Zeroes every gradient (one memset over the flat buffer). A parameter whose `grad` was
    /// replaced or cleared (e.g. by `SGD.zeroGrad()`) is pointed back into the buffer.
    public func zeroGrads() {
        buffer.base.update(repeating: 0, count: buffer.count)
        var offset = 0
        for p in parameters.reversed() {
            if p.grad?.storage !== buffer || p.grad?.offset != offset {
                p.grad = Tensor(shape: p.shape, storage: buffer, offset: offset)
            }
            offset += p.count
        }
    }

    /// Backpropagates `loss` through the current tape and leaves the averaged gradient of every
    /// parameter in the flat buffer (identical on every rank).
    public func backward(_ loss: Tensor) {
        var remaining = pending
        nextBucket = 0
        let seed = Tensor.full(loss.shape, 1 / Float(communicator.size))
        Tape.current.backward(from: loss, seed: seed) { leaf in
            guard self.overlap, let b = self.bucketOf[ObjectIdentifier(leaf)] else { return }
            remaining[b] -= 1
            while self.nextBucket < self.buckets.count && remaining[self.nextBucket] == 0 { self.launch(self.nextBucket) }
        }
        // Parameters the loss did not reach keep zero gradients; their buckets still go, in order.
        while nextBucket < buckets.count { launch(nextBucket) }
        communicator.drain()
    }

    /// Sums every bucket across ranks now and waits (the buffer must hold gradients already
    /// divided by the world size, as `backward` leaves them): the plain "one all-reduce after
    /// backward" path, also used to time communication alone.
    public func reduceAll() {
        nextBucket = 0
        while nextBucket < buckets.count { launch(nextBucket) }
        communicator.drain()
    }

    private func launch(_ b: Int) {
        let range = buckets[b], base = buffer.base + range.lowerBound, n = range.count
        let size = communicator.size
        _ = communicator.submit("gradient bucket \(b) (\(n * 4 / 1024) KiB)") { err in
            size > 1 ? pd_mpi_allreduce_sum_f32(base, Int64(n), &err, err.count) : 0
        }
        nextBucket += 1
    }
}
