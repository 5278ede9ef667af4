import Foundation
import CBLAS

/// The per-process thread budget shared by BLAS, oneDNN and the engine's own loops.
///
/// A rank is given a number of cores; every pool must stay within it so that ranks on one machine
/// never oversubscribe the cores.
public enum ThreadBudget {
    /// Worker count for the engine's own parallel loops.
    public private(set) static var threads: Int = defaultThreads()

    /// Sets the thread count for the engine, OpenBLAS and oneDNN.
    public static func set(_ n: Int) {
        threads = max(1, n)
        openblas_set_num_threads(Int32(threads))
        setenv("OMP_NUM_THREADS", String(threads), 1)
        ConvDispatch.threadsChanged()
    }

    static func defaultThreads() -> Int {
        if let s = ProcessInfo.processInfo.environment["PERCEP_THREADS"], let n = Int(s), n > 0 { return n }
        if let s = ProcessInfo.processInfo.environment["OMP_NUM_THREADS"], let n = Int(s), n > 0 { return n }
        return ProcessInfo.processInfo.activeProcessorCount
    }
}

/// Splits `0..<count` into contiguous chunks run on up to `ThreadBudget.threads` workers.
///
/// Loops smaller than `grain` elements run on the calling thread, where a dispatch would cost
/// more than it saves.
@inline(__always)
public func parallelChunks(_ count: Int, grain: Int = 32_768, _ body: (Range<Int>) -> Void) {
    let workers = min(ThreadBudget.threads, max(1, count / max(grain, 1)))
    if workers <= 1 { body(0..<count); return }
    let chunk = (count + workers - 1) / workers
    DispatchQueue.concurrentPerform(iterations: workers) { w in
        let lo = w * chunk, hi = min(count, lo + chunk)
        if lo < hi { body(lo..<hi) }
    }
}

/// Runs `body(i)` for each `i` in `0..<count` across the thread budget (one item per task).
@inline(__always)
public func parallelFor(_ count: Int, _ body: (Int) -> Void) {
    if count <= 1 || ThreadBudget.threads <= 1 { for i in 0..<count { body(i) }; return }
    let workers = min(ThreadBudget.threads, count)
    let chunk = (count + workers - 1) / workers
    DispatchQueue.concurrentPerform(iterations: workers) { w in
        let lo = w * chunk, hi = min(count, lo + chunk)
        var i = lo
        while i < hi { body(i); i += 1 }
    }
}
