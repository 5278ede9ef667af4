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
    /// The parameters of each bucket.
    private let bucketParameters: [[Tensor]]
    private var pending: [Int] = []
    private var nextBucket = 0
    private var lastTicket: JobQueue.Ticket?
    private let bucketTimes = BucketTimes()
    /// The timeline of the last `backward` (nil before the first).
    public private(set) var lastProfile: OverlapProfile?

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
        bucketParameters = ranges.indices.map { b in order.filter { owner[ObjectIdentifier($0)] == b } }
        pending = ranges.indices.map { b in owner.values.filter { $0 == b }.count }
    }

    /// Starts a step's gradients at zero without touching the buffer: every parameter's
    /// gradient is marked unwritten (`Tensor.gradIsUnwritten`), so its first gradient of the
    /// step is written over its slice (a conv writes its weight gradient there itself) rather
    /// than added, and `backward` zeroes the slices no gradient reached before their bucket is
    /// reduced. Read gradients after `backward`, not between the two calls. A parameter whose
    /// `grad` was replaced or cleared (e.g. by `SGD.zeroGrad()`) is pointed back into the buffer.
    public func zeroGrads() {
        var offset = 0
        for p in parameters.reversed() {
            if p.grad?.storage !== buffer || p.grad?.offset != offset {
                p.grad = Tensor(shape: p.shape, storage: buffer, offset: offset)
            }
            p.gradIsUnwritten = true
            offset += p.count
        }
    }

    /// Backpropagates `loss` through the current tape and leaves the averaged gradient of every
    /// parameter in the flat buffer (identical on every rank).
    public func backward(_ loss: Tensor) {
        var remaining = pending
        nextBucket = 0
        let seed = Tensor.full(loss.shape, 1 / Float(communicator.size))
        let start = Communicator.now()
        bucketTimes.reset(count: buckets.count)
        Tape.current.backward(from: loss, seed: seed) { leaf in
            guard self.overlap, let b = self.bucketOf[ObjectIdentifier(leaf)] else { return }
            remaining[b] -= 1
            while self.nextBucket < self.buckets.count && remaining[self.nextBucket] == 0 { self.launch(self.nextBucket) }
        }
        let walkEnd = Communicator.now()
        // Parameters the loss did not reach keep zero gradients; their buckets still go, in order.
        while nextBucket < buckets.count { launch(nextBucket) }
        waitForBuckets()
        let (starts, ends) = bucketTimes.read()
        lastProfile = OverlapProfile(walkSeconds: walkEnd - start, totalSeconds: Communicator.now() - start,
                                     bucketStarts: starts.map { $0 - start }, bucketEnds: ends.map { $0 - start })
    }

    /// Sums every bucket across ranks now and waits (the buffer must hold gradients already
    /// divided by the world size, as `backward` leaves them): the plain "one all-reduce after
    /// backward" path, also used to time communication alone.
    public func reduceAll() {
        nextBucket = 0
        while nextBucket < buckets.count { launch(nextBucket) }
        waitForBuckets()
    }

    /// Waits for the last bucket handed over (the queue runs jobs in order, so for all of them).
    private func waitForBuckets() {
        if let ticket = lastTicket { communicator.wait(ticket) }
        lastTicket = nil
    }

    private func launch(_ b: Int) {
        // A parameter the loss did not reach (or whose gradient the walk never produced) reads
        // as zero: its slice still holds the last step's gradient.
        for p in bucketParameters[b] where p.gradIsUnwritten {
            p.grad!.fill(0)
            p.gradIsUnwritten = false
        }
        let range = buckets[b], base = buffer.base + range.lowerBound, n = range.count
        let size = communicator.size, times = bucketTimes
        lastTicket = communicator.submit("gradient bucket \(b) (\(n * 4 / 1024) KiB)") { err in
            let start = Communicator.now()
            let rc = size > 1 ? pd_mpi_allreduce_sum_f32(base, Int64(n), &err, err.count) : 0
            times.record(b, start: start, end: Communicator.now())
            return rc
        }
        nextBucket += 1
    }
}

/// The timeline of one `GradientSynchronizer.backward`, in seconds from the start of the walk.
public struct OverlapProfile: Sendable {
    /// The tape's reverse walk (backward compute, including launching buckets).
    public let walkSeconds: Double
    /// The walk plus waiting for the last bucket's all-reduce.
    public let totalSeconds: Double
    /// When each bucket's all-reduce started on the communication thread.
    public let bucketStarts: [Double]
    /// When each bucket's all-reduce finished.
    public let bucketEnds: [Double]

    /// Share of the buckets' all-reduce time that ran while the walk was still going. With a
    /// core free for the communication thread this is the share hidden behind backward; where
    /// every core computes, the overlapped communication instead slows the walk down.
    public var communicationDuringWalkShare: Double {
        var during = 0.0, total = 0.0
        for (s, e) in zip(bucketStarts, bucketEnds) {
            total += e - s
            during += max(0, min(e, walkSeconds) - s)
        }
        return total > 0 ? during / total : 0
    }
}

/// Start and end times of each bucket's all-reduce, written by the communication thread.
private final class BucketTimes: @unchecked Sendable {
    private let lock = NSLock()
    private var starts: [Double] = [], ends: [Double] = []

    func reset(count: Int) {
        lock.lock(); starts = Array(repeating: 0, count: count); ends = starts; lock.unlock()
    }

    func record(_ bucket: Int, start: Double, end: Double) {
        lock.lock()
        if bucket < starts.count { starts[bucket] = start; ends[bucket] = end }
        lock.unlock()
    }

    func read() -> ([Double], [Double]) { lock.lock(); defer { lock.unlock() }; return (starts, ends) }
}
