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

    /// Whether the budget was fixed by the caller (`set`) or by PERCEP_THREADS / OMP_NUM_THREADS,
    /// in which case `shareHost` leaves it alone.
    public private(set) static var isFixed: Bool = environmentThreads() != nil

    /// Sets the thread count for the engine, OpenBLAS and oneDNN (call it from the thread that
    /// runs the model: OpenMP's default team size is per thread).
    public static func set(_ n: Int) {
        isFixed = true
        apply(n)
    }

    /// Gives this rank its share of its own host's cores: host cores / `localRanks` (at least 1),
    /// where host cores are PERCEP_HOST_CORES when a launcher sets it (a share of a machine, as
    /// `launch/netns-cluster.sh` gives each emulated host), else the cores this process may run
    /// on. `localRanks` is the launcher's count of ranks on this host, not the world size, so
    /// hosts with different core or rank counts each fill their own cores. Does nothing when the
    /// budget is fixed (`isFixed`). Returns the host cores it divided.
    @discardableResult
    public static func shareHost(localRanks: Int) -> Int {
        let env = ProcessInfo.processInfo.environment
        let hostCores = env["PERCEP_HOST_CORES"].flatMap { Int($0) }.flatMap { $0 > 0 ? $0 : nil }
            ?? ProcessInfo.processInfo.activeProcessorCount
        if !isFixed { apply(hostCores / max(1, localRanks)) }
        return hostCores
    }

    private static func apply(_ n: Int) {
        threads = min(max(1, n), maxThreads)
        pd_omp_set_num_threads(Int32(threads))
        openblas_set_num_threads(Int32(threads))
        ConvDispatch.threadsChanged()
    }

    static func defaultThreads() -> Int {
        min(environmentThreads() ?? ProcessInfo.processInfo.activeProcessorCount, maxThreads)
    }

    /// PERCEP_THREADS, else OMP_NUM_THREADS, when set to a positive number.
    static func environmentThreads() -> Int? {
        let env = ProcessInfo.processInfo.environment
        for key in ["PERCEP_THREADS", "OMP_NUM_THREADS"] {
            if let s = env[key], let n = Int(s), n > 0 { return n }
        }
        return nil
    }

    /// The most threads a team gets: more than any machine has, and far inside OpenMP's Int32.
    static let maxThreads = 4096
}

/// A range split over an OpenMP team; passed to the C trampoline by pointer.
private struct ChunkJob {
    let count: Int
    let body: (Range<Int>, Int) -> Void
}

/// Splits `0..<count` into contiguous chunks run on up to `ThreadBudget.threads` threads of the
/// shared OpenMP pool (the caller takes the first chunk).
///
/// Loops smaller than `grain` elements run on the calling thread, where starting a parallel
/// region would cost more than it saves.
@inline(__always)
public func parallelChunks(_ count: Int, grain: Int = 32_768, _ body: (Range<Int>) -> Void) {
    parallelChunksOnThreads(count, grain: grain) { range, _ in body(range) }
}

/// `parallelChunks` that also tells each chunk its thread's index in the team (0 for the
/// caller's chunk, always below `ThreadBudget.threads`), so a kernel can give every thread its own
/// slice of a preallocated scratch buffer.
public func parallelChunksOnThreads(_ count: Int, grain: Int = 32_768, _ body: (Range<Int>, Int) -> Void) {
    let workers = min(ThreadBudget.threads, max(1, count / max(grain, 1)))
    if workers <= 1 { body(0..<count, 0); return }
    withoutActuallyEscaping(body) { escapable in
        var job = ChunkJob(count: count, body: escapable)
        withUnsafeMutablePointer(to: &job) { ptr in
            pd_omp_parallel({ context, thread, threads in
                let job = context!.assumingMemoryBound(to: ChunkJob.self).pointee
                let n = Int(threads), t = Int(thread)
                let chunk = (job.count + n - 1) / n
                let lo = t * chunk, hi = min(job.count, lo + chunk)
                if lo < hi { job.body(lo..<hi, t) }
            }, ptr, Int32(workers))
        }
    }
}

/// Runs `body(i)` for each `i` in `0..<count` across the thread budget.
@inline(__always)
public func parallelFor(_ count: Int, _ body: (Int) -> Void) {
    parallelChunks(count, grain: 1) { range in for i in range { body(i) } }
}
