import Foundation

/// Wall time per op kind, forward and backward, for finding where a training step goes on a
/// machine without a sampling profiler (`bench step --profile-ops`). Off by default: then each
/// recorded op pays one branch.
///
/// Forward time is attributed by the tape: an op recorded at time t is charged the time since
/// the previous recorded op (or since `startStep`), which includes any unrecorded work in
/// between (ops on tensors without gradients, e.g. a frozen network's target branch). Backward
/// time is each tape entry's gradient closure plus the accumulation of what it returns.
public enum OpProfile {
    /// Time and count of one op kind in one direction.
    public struct Totals {
        public var seconds: Double = 0
        public var calls: Int = 0
    }

    /// Whether ops are timed. Set before the steps to profile; not thread-safe to flip while
    /// other threads record ops.
    public nonisolated(unsafe) static var enabled = false
    nonisolated(unsafe) static var forward: [String: Totals] = [:]
    nonisolated(unsafe) static var backward: [String: Totals] = [:]
    nonisolated(unsafe) static var lastMark: UInt64 = 0
    static let lock = NSLock()

    /// Starts the forward clock: the first op recorded afterwards is charged from here.
    public static func startStep() {
        guard enabled else { return }
        lastMark = DispatchTime.now().uptimeNanoseconds
    }

    /// Charges the forward time since the previous mark to `op` (called by `Tape.record`).
    static func chargeForward(_ op: StaticString) {
        let now = DispatchTime.now().uptimeNanoseconds
        add(&forward, name(op), Double(now &- lastMark) / 1e9)
        lastMark = now
    }

    /// Charges `seconds` of backward time to `op` (called by `Tape.backward`).
    static func chargeBackward(_ op: StaticString, seconds: Double) {
        add(&backward, name(op), seconds)
    }

    /// Runs `body`, charging its time to `label` as forward time (work outside the tape, an
    /// optimizer step, say); the forward clock restarts after it.
    public static func measure<T>(_ label: String, _ body: () throws -> T) rethrows -> T {
        guard enabled else { return try body() }
        let t0 = DispatchTime.now().uptimeNanoseconds
        defer {
            let now = DispatchTime.now().uptimeNanoseconds
            add(&forward, label, Double(now - t0) / 1e9)
            lastMark = now
        }
        return try body()
    }

    /// Clears every total.
    public static func reset() {
        lock.lock(); defer { lock.unlock() }
        forward = [:]; backward = [:]
    }

    /// One row of the report: an op kind's forward and backward totals.
    public struct Row {
        public let op: String
        public let forward: Totals
        public let backward: Totals
        public var seconds: Double { forward.seconds + backward.seconds }
    }

    /// Every op kind (and `measure` label) seen since `reset`, largest total first.
    public static func rows() -> [Row] {
        lock.lock(); defer { lock.unlock() }
        return Set(forward.keys).union(backward.keys).map { n in
            Row(op: n, forward: forward[n] ?? Totals(), backward: backward[n] ?? Totals())
        }.sorted { $0.seconds > $1.seconds }
    }

    /// The op's function name without its argument labels: "conv2d(weight:bias:…)" → "conv2d".
    static func name(_ op: StaticString) -> String {
        let s = op.description
        return s.firstIndex(of: "(").map { String(s[..<$0]) } ?? s
    }

    static func add(_ table: inout [String: Totals], _ key: String, _ seconds: Double) {
        lock.lock(); defer { lock.unlock() }
        table[key, default: Totals()].seconds += seconds
        table[key, default: Totals()].calls += 1
    }
}
