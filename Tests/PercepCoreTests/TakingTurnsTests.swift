import XCTest
@testable import PercepCore

final class TakingTurnsTests: XCTestCase {
    /// The candidates take turns in alternating order, each called once per round (plus once
    /// more with a warm-up), and the race goes to the one whose calls take the least time.
    func testCandidatesTakeTurnsAndTheFastestWins() {
        var calls: [Int] = []
        let best = TakingTurns.bestNanoseconds(count: 3, rounds: 4, warmUp: true) { k in
            calls.append(k)
            usleep(UInt32(k == 1 ? 200 : 3000))
        }
        XCTAssertEqual(calls, [0, 1, 2] + [0, 1, 2, 2, 1, 0, 0, 1, 2, 2, 1, 0])
        XCTAssertEqual(best.count, 3)
        XCTAssertTrue(best[1] < best[0] && best[1] < best[2], "\(best)")
        XCTAssertGreaterThanOrEqual(best[0], 3_000_000)
        XCTAssertEqual(TakingTurns.fastest(count: 3, rounds: 2) { k in usleep(UInt32(k == 2 ? 200 : 3000)) }, 2)
    }
}
