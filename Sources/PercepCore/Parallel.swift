import Foundation
import CBLAS
import COpenMP

/// The per-process thread budget shared by BLAS, oneDNN and the engine's own loops.
///
/// A rank is given a number of cores; every pool must stay within it so that ranks on one machine
/// never oversubscribe the cores. There is one pool: libgomp's, which OpenBLAS (OpenMP build),
/// oneDNN and `parallelChunks` all run on.
public enum ThreadBudget {
    /// Worker count for the engine, OpenBLAS and oneDNN.
    public private(set) static var threads: Int = {
        let n = defaultThreads()
        pd_omp_set_num_threads(Int32(n))
        return n
    }()

    /// Sets the thread count for the engine, OpenBLAS and oneDNN (call it from the thread that
    /// runs the model: OpenMP's default team size is per thread).
    public static func set(_ n: Int) {
        threads = min(max(1, n), maxThreads)
        pd_omp_set_num_threads(Int32(threads))
        openblas_set_num_threads(Int32(threads))
        ConvDispatch.threadsChanged()
    }

    static func defaultThreads() -> Int {
        if let s = ProcessInfo.processInfo.environment["PERCEP_THREADS"], let n = Int(s), n > 0 { return min(n, maxThreads) }
        if let s = ProcessInfo.processInfo.environment["OMP_NUM_THREADS"], let n = Int(s), n > 0 { return min(n, maxThreads) }
        return min(ProcessInfo.processInfo.activeProcessorCount, maxThreads)
    }

    /// The most threads a team gets: more than any machine has, and far inside OpenMP's Int32.
    static let maxThreads = 4096
}

/// A range split over an OpenMP team; passed to the C trampoline by pointer.
private struct ChunkJob {
    let count: Int
    let body: (Range<Int>) -> Void
}

/// Splits `0..<count` into contiguous chunks run on up to `ThreadBudget.threads` threads of the
/// shared OpenMP pool (the caller takes the first chunk).
///
/// Loops smaller than `grain` elements run on the calling thread, where starting a parallel
/// region would cost more than it saves.
@inline(__always)
public func parallelChunks(_ count: Int, grain: Int = 32_768, _ body: (Range<Int>) -> Void) {
    let workers = min(ThreadBudget.threads, max(1, count / max(grain, 1)))
    if workers <= 1 { body(0..<count); return }
    withoutActuallyEscaping(body) { escapable in
        var job = ChunkJob(count: count, body: escapable)
        withUnsafeMutablePointer(to: &job) { ptr in
            pd_omp_parallel({ context, thread, threads in
                let job = context!.assumingMemoryBound(to: ChunkJob.self).pointee
                let n = Int(threads), t = Int(thread)
                let chunk = (job.count + n - 1) / n
                let lo = t * chunk, hi = min(job.count, lo + chunk)
                if lo < hi { job.body(lo..<hi) }
            }, ptr, Int32(workers))
        }
    }
}

/// Runs `body(i)` for each `i` in `0..<count` across the thread budget.
@inline(__always)
public func parallelFor(_ count: Int, _ body: (Int) -> Void) {
    parallelChunks(count, grain: 1) { range in for i in range { body(i) } }
}
