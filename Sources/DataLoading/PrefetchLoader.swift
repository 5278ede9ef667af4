import Foundation

/// One training step of this rank: the epoch (for augmentation) and the data set indices of its
/// share of the global batch, as the trainer's sampler gives them.
public struct LoaderStep: Equatable, Sendable {
    /// The epoch the step belongs to.
    public let epoch: Int
    /// Data set indices of this rank's samples.
    public let indices: [Int]
    /// A step.
    public init(epoch: Int, indices: [Int]) { self.epoch = epoch; self.indices = indices }
}

/// The prepared samples of one step, in step order.
public struct LoadedStep<Sample> {
    /// The step's position in the loader's step list.
    public let step: Int
    /// The samples that loaded, with their data set indices, in the step's order.
    public let samples: [(index: Int, sample: Sample)]
    /// The step's samples skipped as broken, with the problem.
    public let broken: [(index: Int, message: String)]
}

/// Why a loader stopped.
public struct LoaderError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The message, naming the last broken file.
    public let message: String
    /// Creates an error.
    public init(_ message: String) { self.message = message }
    /// The message.
    public var description: String { message }
}

/// Prepares samples (decode, augment) on background threads, ahead of the trainer, into a
/// bounded window, and hands them out strictly in step order — the one loader every task uses.
///
/// Threads claim whole steps in order but at most `prefetch` steps beyond the one the trainer is
/// waiting for, so memory stays bounded. Preparation must depend only on (index, epoch), so which
/// thread handles a step changes nothing. A sample whose preparation throws is left out of its
/// step, reported through `log` (index and problem) and counted, in step order; once the broken
/// samples exceed `maxBrokenFraction` of those seen (and, for a positive fraction, one sample),
/// `next()` throws. `close()` (also run on
/// deinit) wakes and joins every thread. One consumer thread calls `next()`.
public final class PrefetchLoader<Sample>: @unchecked Sendable {
    /// Every step of the run (for this rank); the loader starts at `startStep`.
    public var steps: [LoaderStep] { core.steps }
    /// Largest tolerated share of broken samples among those seen (0 = none).
    public let maxBrokenFraction: Double
    /// Name used in log lines and thread names ("seg-loader", "inst-loader").
    public let name: String

    // The threads retain the core, not the loader, so dropping the last reference to the loader
    // runs deinit → close() even while workers wait for room in the window.
    private let core: Core
    private let log: @Sendable (String) -> Void

    /// Samples seen so far (delivered or skipped).
    public private(set) var seenCount = 0
    /// Broken samples skipped so far.
    public private(set) var brokenCount = 0
    private var failure: LoaderError?

    /// Starts `threads` worker threads preparing `steps[startStep...]` with `prepare(index, epoch)`.
    /// - Parameters:
    ///   - prefetch: steps prepared ahead of the one being consumed (≥ 1).
    ///   - maxBrokenFraction: the loader stops once broken samples exceed this share of those seen.
    ///   - log: where broken-sample reports go (stderr by default).
    public init(name: String, steps: [LoaderStep], startStep: Int = 0, threads: Int = 2, prefetch: Int = 4, maxBrokenFraction: Double = 0.01,
                log: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) },
                prepare: @escaping @Sendable (_ index: Int, _ epoch: Int) throws -> Sample) {
        precondition(threads >= 1 && prefetch >= 1 && (0...steps.count).contains(startStep), "loader: threads, prefetch ≥ 1 and startStep in 0…\(steps.count)")
        self.maxBrokenFraction = maxBrokenFraction; self.log = log; self.name = name
        core = Core(steps: steps, startStep: startStep, prefetch: prefetch, threads: threads, prepare: prepare)
        for t in 0..<threads {
            let core = self.core
            let thread = Thread { core.work() }
            thread.name = "\(name)-\(t)"
            thread.start()
        }
    }

    deinit { core.close() }

    /// The next step in order, or nil after the last step (or after `close()`).
    /// - Throws: `LoaderError` once broken samples exceed `maxBrokenFraction` (the loader is
    ///   closed then, and every later call throws the same error).
    public func next() throws(LoaderError) -> LoadedStep<Sample>? {
        if let failure { throw failure }
        guard let (s, prepared) = core.take() else { return nil }
        seenCount += core.steps[s].indices.count
        brokenCount += prepared.broken.count
        for b in prepared.broken { log("\(name): skipped sample \(b.index) (step \(s)): \(b.message)") }
        // With a positive fraction one broken sample is always tolerated, so that the first bad
        // image of a run (1 of 16 seen) does not stop it at a 1 % setting.
        let allowed = max(maxBrokenFraction * Double(seenCount), maxBrokenFraction > 0 ? 1 : 0)
        if !prepared.broken.isEmpty && Double(brokenCount) > allowed {
            let error = LoaderError(
                "\(brokenCount) of \(seenCount) samples broken, more than the allowed fraction \(maxBrokenFraction); last: \(prepared.broken.last!.message)")
            failure = error
            core.close()
            throw error
        }
        return LoadedStep(step: s, samples: prepared.samples, broken: prepared.broken)
    }

    /// Stops the workers and waits until every one has returned. Idempotent; prepared steps not
    /// yet delivered are dropped.
    public func close() { core.close() }

    /// Number of worker threads still running (0 after `close()`).
    public var runningThreads: Int { core.runningThreads }

    /// The state the worker threads share with the consumer, behind one condition variable.
    private final class Core: @unchecked Sendable {
        struct Prepared {
            var samples: [(index: Int, sample: Sample)] = []
            var broken: [(index: Int, message: String)] = []
        }

        let steps: [LoaderStep]
        let prefetch: Int
        let prepare: @Sendable (Int, Int) throws -> Sample
        private let condition = NSCondition()
        private var results: [Int: Prepared] = [:]
        private var nextToClaim: Int
        private var nextToDeliver: Int
        private var closed = false
        private var running: Int

        init(steps: [LoaderStep], startStep: Int, prefetch: Int, threads: Int, prepare: @escaping @Sendable (Int, Int) throws -> Sample) {
            self.steps = steps; self.prefetch = prefetch; self.prepare = prepare
            nextToClaim = startStep; nextToDeliver = startStep; running = threads
        }

        /// A worker: claims the next step while it is within the prefetch window, prepares it
        /// outside the lock, publishes it; returns when closed or when every step is claimed.
        func work() {
            while true {
                condition.lock()
                while !closed && nextToClaim < steps.count && nextToClaim >= nextToDeliver + prefetch { condition.wait() }
                if closed || nextToClaim >= steps.count {
                    running -= 1
                    condition.broadcast()
                    condition.unlock()
                    return
                }
                let s = nextToClaim
                nextToClaim += 1
                condition.unlock()

                var prepared = Prepared()
                let step = steps[s]
                for index in step.indices {
                    do {
                        prepared.samples.append((index, try prepare(index, step.epoch)))
                    } catch {
                        prepared.broken.append((index, String(describing: error)))
                    }
                }
                condition.lock()
                if !closed { results[s] = prepared }
                condition.broadcast()
                condition.unlock()
            }
        }

        /// The next step's prepared samples, waiting for them; nil at the end or once closed.
        func take() -> (Int, Prepared)? {
            condition.lock()
            defer { condition.unlock() }
            guard nextToDeliver < steps.count else { return nil }
            let s = nextToDeliver
            while results[s] == nil && !closed { condition.wait() }
            guard let prepared = results.removeValue(forKey: s) else { return nil }
            nextToDeliver += 1
            condition.broadcast()
            return (s, prepared)
        }

        func close() {
            condition.lock()
            closed = true
            condition.broadcast()
            while running > 0 { condition.wait() }
            results.removeAll()
            condition.unlock()
        }

        var runningThreads: Int {
            condition.lock(); defer { condition.unlock() }
            return running
        }
    }
}
