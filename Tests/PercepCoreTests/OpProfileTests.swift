import XCTest
@testable import PercepCore

/// `OpProfile` (behind `bench step --profile-ops`): every recorded op is charged once forward and
/// once backward under its function's name, and nothing is charged while it is off.
final class OpProfileTests: XCTestCase {
    override func setUp() { Tape.current.reset(); OpProfile.reset() }
    override func tearDown() { OpProfile.enabled = false; OpProfile.reset() }

    func testOpsAreChargedByNameForwardAndBackward() {
        let x = Tensor(shape: [4], values: [-1, 2, -3, 4], requiresGrad: true)
        OpProfile.enabled = true
        OpProfile.startStep()
        let loss = (x.relu() * x.relu()).sum()
        loss.backward()
        OpProfile.measure("optimizer") { _ = x.grad }
        OpProfile.enabled = false
        let rows = Dictionary(uniqueKeysWithValues: OpProfile.rows().map { ($0.op, $0) })
        XCTAssertEqual(rows["relu"]?.forward.calls, 2)
        XCTAssertEqual(rows["relu"]?.backward.calls, 2)
        XCTAssertEqual(rows["sum"]?.forward.calls, 1)
        XCTAssertEqual(rows["sum"]?.backward.calls, 1)
        XCTAssertEqual(rows["*"]?.backward.calls, 1)
        XCTAssertEqual(rows["optimizer"]?.forward.calls, 1)
        XCTAssertEqual(rows["optimizer"]?.backward.calls, 0)
        XCTAssertTrue(rows.values.allSatisfy { $0.seconds >= 0 })
        XCTAssertEqual(x.grad?.values, [0, 4, 0, 8])
    }

    func testNothingIsChargedWhileOff() {
        let x = Tensor(shape: [2], values: [1, 2], requiresGrad: true)
        (x.relu()).sum().backward()
        XCTAssertTrue(OpProfile.rows().isEmpty)
    }
}
