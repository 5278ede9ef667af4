import Foundation

/// Races candidates on a machine whose speed drifts (a shared VM, a neighbour's burst of load):
/// the candidates take turns call by call, in reverse order every other round, and each keeps its
/// best time, so a slow spell slows all of them rather than deciding the race. The one timing loop
/// behind the dispatch's timed decisions (`ConvDispatch`, `ConvWinograd`'s vector widths) and
/// `bench conv`'s comparisons.
public enum TakingTurns {
    /// Best nanoseconds of `body(k)` for each candidate k in 0..<count over `rounds` rounds, after
    /// one untimed call each when `warmUp` (else the first round also warms them up).
    public static func bestNanoseconds(count: Int, rounds: Int, warmUp: Bool = false, _ body: (Int) -> Void) -> [UInt64] {
        if warmUp { for k in 0..<count { body(k) } }
        var best = [UInt64](repeating: .max, count: count)
        for round in 0..<Swift.max(rounds, 1) {
            for k in round % 2 == 0 ? Array(0..<count) : (0..<count).reversed() {
                let t0 = DispatchTime.now().uptimeNanoseconds
                body(k)
                best[k] = Swift.min(best[k], DispatchTime.now().uptimeNanoseconds - t0)
            }
        }
        return best
    }

    /// Index of the candidate with the smallest best time (`bestNanoseconds`).
    public static func fastest(count: Int, rounds: Int, _ body: (Int) -> Void) -> Int {
        let best = bestNanoseconds(count: count, rounds: rounds, body)
        return best.indices.min { best[$0] < best[$1] }!
    }
}
