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
/// over strictly in index order, the same on every rank. The sum is divided by the world size.
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
    private var tickets: [JobQueue.Ticket] = []

    /// Lays out the buffer and points every parameter's gradient into it.
    public init(parameters: [Tensor], communicator: Communicator, bucketBytes: Int = 25 << 20, overlap: Bool = true) {
        self.parameters = parameters
        self.communicator = communicator
        self.overlap = overlap
        let order = parameters.reversed()
        buffer = Storage(zeros: parameters.map(\.count).reduce(0, +))
        var offset = 0, bucketStart = 0
        var ranges: [Range<Int>] = [], owner: [ObjectIdentifier: Int] = [:], counts: [Int] = []
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
        for p in order { counts.append(0); _ = p }
        pending = ranges.indices.map { b in owner.values.filter { $0 == b }.count }
    }

    /// Zeroes every gradient (one memset over the flat buffer).
    public func zeroGrads() { buffer.base.update(repeating: 0, count: buffer.count) }

    /// Backpropagates `loss` through the current tape and leaves the averaged gradient of every
    /// parameter in the flat buffer (identical on every rank).
    public func backward(_ loss: Tensor) {
        var remaining = pending
        nextBucket = 0
        tickets.removeAll()
        Tape.current.backward(from: loss) { leaf in
            guard self.overlap, let b = self.bucketOf[ObjectIdentifier(leaf)] else { return }
            remaining[b] -= 1
            while self.nextBucket < self.buckets.count && remaining[self.nextBucket] == 0 { self.launch(self.nextBucket) }
        }
        // Parameters the loss did not reach keep zero gradients; their buckets still go, in order.
        while nextBucket < buckets.count { launch(nextBucket) }
        communicator.drain()
    }

    private func launch(_ b: Int) {
        let range = buckets[b], base = buffer.base + range.lowerBound, n = range.count
        let scale = 1 / Float(communicator.size), size = communicator.size
        tickets.append(communicator.submit("gradient bucket \(b) (\(n * 4 / 1024) KiB)") { err in
            if size > 1 {
                let rc = pd_mpi_allreduce_sum_f32(base, Int64(n), &err, err.count)
                if rc != 0 { return rc }
                for i in 0..<n { base[i] *= scale }
            }
            return 0
        })
        nextBucket += 1
    }
}
