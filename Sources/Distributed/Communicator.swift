import CMPI
import Foundation
import PercepCore

/// Errors of the data-parallel runtime; each names the rank and what failed.
public struct DistributedError: Error, CustomStringConvertible {
    /// The rank that saw the problem.
    public let rank: Int
    /// What went wrong (MPI's message included when MPI reported it).
    public let message: String
    /// An error seen on `rank`.
    public init(rank: Int, message: String) { self.rank = rank; self.message = message }
    /// "rank R: message".
    public var description: String { "rank \(rank): \(message)" }
}

/// The world of ranks and the one thread that talks to MPI.
///
/// After `MPI_Init_thread(SERIALIZED)`, every collective runs on a dedicated communication
/// thread, in the order the main thread submits them: gradient buckets enqueued during backward
/// and synchronous collectives (sync-BN statistics, replica checks) share one FIFO, so every
/// rank issues the same collectives in the same order even while communication overlaps
/// backward. A watchdog aborts the job when a collective waits longer than `timeout`.
public final class Communicator {
    /// This process's rank, 0 ..< size.
    public let rank: Int
    /// Number of ranks in the job (1 without a launcher).
    public let size: Int
    /// Rank among the ranks on this machine.
    public let localRank: Int
    /// Ranks on this machine.
    public let localSize: Int
    /// Seconds a collective may wait before the watchdog aborts the job.
    public let timeout: Double

    private let queue = JobQueue()
    private var thread: Thread?
    private var watchdogThread: Thread?
    private let state = NSLock()
    private var running: (name: String, since: Double)?
    private var failed = false
    private var totals = CommunicationTotals()

    /// The world, once `start` has run.
    public private(set) static var world: Communicator?

    /// Initialises MPI (a one-rank world without mpirun), checks the launcher, and starts the
    /// communication and watchdog threads. Call once per process, from the main thread.
    public static func start(timeout: Double = 600) throws -> Communicator {
        if let world { return world }
        var provided: Int32 = 0
        var err = [CChar](repeating: 0, count: 512)
        if pd_mpi_init(Int32(PD_MPI_THREAD_SERIALIZED), &provided, &err, err.count) != 0 {
            throw DistributedError(rank: 0, message: String(cString: err))
        }
        let c = Communicator(rank: Int(pd_mpi_rank()), size: Int(pd_mpi_size()), localRank: Int(pd_mpi_local_rank()),
                             localSize: Int(pd_mpi_local_size()), timeout: timeout)
        guard provided >= PD_MPI_THREAD_SERIALIZED else {
            throw DistributedError(rank: c.rank, message: "MPI provides thread level \(provided), the runtime needs MPI_THREAD_SERIALIZED (2)")
        }
        // A misconfigured launcher starts N singletons that each believe they are alone.
        if let s = ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"], let launched = Int(s), launched != c.size {
            throw DistributedError(rank: c.rank, message: "mpirun started \(launched) processes but this one sees a world of \(c.size): the launcher and the MPI library do not match (each process is a singleton)")
        }
        Log.rank = c.rank
        let fixed = ThreadBudget.isFixed
        let hostCores = ThreadBudget.shareHost(localRanks: c.localSize)
        if c.size > 1 {
            let why = fixed ? "fixed by PERCEP_THREADS, OMP_NUM_THREADS or the command"
                            : "\(hostCores) host cores / \(c.localSize) local ranks"
            Log.everyRank("host \(hostName()): local rank \(c.localRank) of \(c.localSize), \(ThreadBudget.threads) threads (\(why))")
        }
        c.startThreads()
        world = c
        return c
    }

    private init(rank: Int, size: Int, localRank: Int, localSize: Int, timeout: Double) {
        self.rank = rank; self.size = size; self.localRank = localRank; self.localSize = localSize; self.timeout = timeout
    }

    private func startThreads() {
        let t = Thread { [unowned self] in
            while let job = self.queue.next() { job() }
        }
        t.name = "percep-dist.mpi"
        t.start()
        thread = t
        let w = Thread { [unowned self] in self.watch() }
        w.name = "percep-dist.watchdog"
        w.start()
        watchdogThread = w
    }

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    /// CPU seconds used so far by the calling thread (user + system).
    static func threadCPUSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    /// What the communication thread has spent on collectives since start-up; take differences
    /// around a phase to see whether its communication waits or computes (copies and adds).
    public var communicationTotals: CommunicationTotals {
        state.lock(); defer { state.unlock() }
        return totals
    }

    /// Runs `body` (MPI calls) on the communication thread under the watchdog; returns at once.
    /// Failures abort the job with the rank and the collective named.
    public func submit(_ name: String, _ body: @escaping (inout [CChar]) -> Int32) -> JobQueue.Ticket {
        queue.submit { [unowned self] in
            let start = Communicator.now(), cpuStart = Communicator.threadCPUSeconds()
            self.state.lock(); self.running = (name, start); self.state.unlock()
            var err = [CChar](repeating: 0, count: 1024)
            let rc = body(&err)
            let end = Communicator.now(), cpu = Communicator.threadCPUSeconds() - cpuStart
            self.state.lock()
            self.running = nil
            self.totals.collectives += 1
            self.totals.wallSeconds += end - start
            self.totals.cpuSeconds += cpu
            self.state.unlock()
            if rc != 0 { self.fail("\(name): \(String(cString: err))") }
        }
    }

    /// Runs a collective on the communication thread and waits for it.
    public func perform(_ name: String, _ body: @escaping (inout [CChar]) -> Int32) {
        queue.wait(submit(name, body))
    }

    /// Waits until the job with `ticket`, and every job submitted before it, has run.
    public func wait(_ ticket: JobQueue.Ticket) { queue.wait(ticket) }

    /// Waits until every job submitted so far has run.
    public func drain() { queue.wait(queue.submit {}) }

    /// In-place sum of floats across ranks.
    public func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int, name: String = "allreduce") {
        perform(name) { pd_mpi_allreduce_sum_f32(buffer, Int64(count), &$0, $0.count) }
    }

    /// In-place sum of doubles across ranks.
    public func allreduceSum(_ values: inout [Double], name: String = "allreduce(f64)") {
        let n = values.count
        values.withUnsafeMutableBufferPointer { p in
            let base = p.baseAddress!
            perform(name) { pd_mpi_allreduce_sum_f64(base, Int64(n), &$0, $0.count) }
        }
    }

    /// In-place maximum of doubles across ranks (timings: the slowest rank decides).
    public func allreduceMax(_ values: inout [Double]) {
        // max(a, b) = −min(−a, −b) is not available as a sum; gather and reduce instead.
        let all = allgather(values.map { Int64(bitPattern: $0.bitPattern) }, name: "allreduce(max)")
        values = values.indices.map { i in all.map { Double(bitPattern: UInt64(bitPattern: $0[i])) }.max()! }
    }

    /// Broadcasts bytes from rank `root`.
    public func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int = 0, name: String = "broadcast") {
        perform(name) { pd_mpi_broadcast(buffer, Int64(bytes), Int32(root), &$0, $0.count) }
    }

    /// Every rank's `values` (same count on every rank), indexed by rank.
    public func allgather(_ values: [Int64], name: String = "allgather") -> [[Int64]] {
        var received = [Int64](repeating: 0, count: values.count * size)
        let n = values.count
        values.withUnsafeBufferPointer { v in
            received.withUnsafeMutableBufferPointer { r in
                let (vp, rp) = (v.baseAddress!, r.baseAddress!)
                perform(name) { pd_mpi_allgather_i64(vp, Int32(n), rp, &$0, $0.count) }
            }
        }
        return (0..<size).map { Array(received[($0 * n)..<(($0 + 1) * n)]) }
    }

    /// Every rank's bytes, in rank order, on rank `root` (empty elsewhere): one allgather of the
    /// lengths, then MPI_Gatherv. Variable-length results (detections) reach the evaluating rank.
    public func gather(_ bytes: [UInt8], root: Int = 0, name: String = "gather") throws -> [[UInt8]] {
        let counts = allgather([Int64(bytes.count)], name: "\(name) (lengths)").map { Int($0[0]) }
        let total = counts.reduce(0, +)
        guard total <= Int(Int32.max) else {
            throw DistributedError(rank: rank, message: "\(name): \(total) bytes to gather exceed 2 GiB")
        }
        var received = [UInt8](repeating: 0, count: rank == root ? max(total, 1) : 0)
        let counts32 = counts.map { Int32($0) }
        bytes.withUnsafeBytes { send in
            received.withUnsafeMutableBytes { recv in
                counts32.withUnsafeBufferPointer { c in
                    let (sp, rp, cp, n) = (send.baseAddress, recv.baseAddress, c.baseAddress, Int32(bytes.count))
                    perform(name) { pd_mpi_gatherv_bytes(sp, n, rp, cp, Int32(root), &$0, $0.count) }
                }
            }
        }
        guard rank == root else { return [] }
        var out: [[UInt8]] = [], at = 0
        for c in counts { out.append(Array(received[at..<(at + c)])); at += c }
        return out
    }

    /// Waits for every rank.
    public func barrier() { perform("barrier") { pd_mpi_barrier(&$0, $0.count) } }

    /// Logs the failure with the rank and terminates every process of the job (MPI_Abort; never
    /// MPI_Finalize after an error).
    public func fail(_ message: String) -> Never {
        state.lock(); let first = !failed; failed = true; state.unlock()
        if first { Log.error("\(message); aborting the job") }
        pd_mpi_abort(1)
        exit(1)
    }

    /// Starts the world, runs `body` on it and finalises; an error thrown by `body` ends the whole
    /// job through `fail` (logged with the rank, MPI_Abort), so no rank waits on a dead one.
    public static func run(timeout: Double, _ body: (Communicator) throws -> Void) throws {
        let world = try start(timeout: timeout)
        do { try body(world) } catch let error as DistributedError where error.rank == world.rank {
            world.fail(error.message)   // the log line names the rank already
        } catch { world.fail("\(error)") }
        world.finish()
    }

    /// Drains the queue and finalises MPI (after success only).
    public func finish() {
        drain()
        queue.close()
        var err = [CChar](repeating: 0, count: 512)
        if pd_mpi_finalize(&err, err.count) != 0 { Log.warning("rank \(rank): \(String(cString: err))") }
    }

    private func watch() {
        while true {
            Thread.sleep(forTimeInterval: min(0.25, timeout / 4))
            state.lock(); let r = running; state.unlock()
            if let r, Communicator.now() - r.since > timeout {
                fail(String(format: "collective '%@' has waited %.1f s, longer than the %.0f s timeout (DIST.TIMEOUT_SECONDS); a rank is stopped, hung or has died",
                            r.name, Communicator.now() - r.since, timeout))
            }
        }
    }
}

/// Collectives run by the communication thread, with their wall-clock and CPU time.
public struct CommunicationTotals: Sendable {
    /// Collectives completed.
    public var collectives = 0
    /// Seconds from the start to the end of each collective, summed.
    public var wallSeconds = 0.0
    /// CPU seconds (user + system) the communication thread used inside them. Close to
    /// `wallSeconds` when the transport copies and adds on the CPU (or spins while it waits);
    /// far below it when the thread sleeps while a network card moves the data.
    public var cpuSeconds = 0.0

    /// Nothing yet.
    public init() {}

    init(collectives: Int, wallSeconds: Double, cpuSeconds: Double) {
        self.collectives = collectives; self.wallSeconds = wallSeconds; self.cpuSeconds = cpuSeconds
    }

    /// The change since `earlier`.
    public func since(_ earlier: CommunicationTotals) -> CommunicationTotals {
        CommunicationTotals(collectives: collectives - earlier.collectives, wallSeconds: wallSeconds - earlier.wallSeconds,
                            cpuSeconds: cpuSeconds - earlier.cpuSeconds)
    }
}

/// A FIFO of jobs run by one consumer thread, with tickets to wait on.
public final class JobQueue {
    /// Identifies a submitted job.
    public typealias Ticket = Int
    private let cond = NSCondition()
    private var jobs: [(Ticket, () -> Void)] = []
    private var submitted = 0, completed = 0
    private var closed = false

    /// Adds a job; returns its ticket.
    func submit(_ job: @escaping () -> Void) -> Ticket {
        cond.lock(); defer { cond.unlock() }
        submitted += 1
        jobs.append((submitted, job))
        cond.broadcast()
        return submitted
    }

    /// Blocks until the job with `ticket` (and all before it) has run.
    func wait(_ ticket: Ticket) {
        cond.lock(); defer { cond.unlock() }
        while completed < ticket { cond.wait() }
    }

    /// The next job for the consumer, or nil once closed and empty.
    func next() -> (() -> Void)? {
        cond.lock()
        while jobs.isEmpty && !closed { cond.wait() }
        guard !jobs.isEmpty else { cond.unlock(); return nil }
        let (ticket, job) = jobs.removeFirst()
        cond.unlock()
        return { job(); self.cond.lock(); self.completed = ticket; self.cond.broadcast(); self.cond.unlock() }
    }

    /// Lets the consumer exit once the queue is empty.
    func close() { cond.lock(); closed = true; cond.broadcast(); cond.unlock() }
}

/// This machine's host name (gethostname), as the launcher's hostfile knows it.
func hostName() -> String {
    var name = [CChar](repeating: 0, count: 256)
    guard gethostname(&name, name.count - 1) == 0 else { return "?" }
    return String(cString: name)
}

/// Rank-aware logging: rank 0 prints everything; other ranks print only warnings and errors,
/// prefixed with their rank.
public enum Log {
    /// This process's rank for prefixes (set by the runtime).
    nonisolated(unsafe) public static var rank = 0

    /// Sends progress messages to stderr instead of stdout, so that a command's `--json` output
    /// is the only thing on stdout.
    nonisolated(unsafe) public static var quiet = false

    /// Progress messages (rank 0 only).
    public static func info(_ message: String) {
        guard rank == 0 else { return }
        if quiet {
            FileHandle.standardError.write(Data((message + "\n").utf8))
            return
        }
        print(message)
        fflush(stdout)
    }

    /// Start-up facts worth seeing from every rank (stderr, prefixed with the rank).
    public static func everyRank(_ message: String) {
        FileHandle.standardError.write(Data("[rank \(rank)] \(message)\n".utf8))
    }

    /// Problems worth seeing from every rank.
    public static func warning(_ message: String) {
        FileHandle.standardError.write(Data("[rank \(rank)] warning: \(message)\n".utf8))
    }

    /// Failures, from every rank.
    public static func error(_ message: String) {
        FileHandle.standardError.write(Data("[rank \(rank)] error: \(message)\n".utf8))
    }
}
