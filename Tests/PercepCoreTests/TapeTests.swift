import XCTest
import TestSupport
@testable import PercepCore

/// Semantics of the tape: what is recorded, what is computed, what is released.
final class TapeTests: XCTestCase {
    override func setUp() { Tape.current.reset() }

    func testReusedTensorAccumulates() {
        let x = Tensor(shape: [3], values: [1, 2, 3], requiresGrad: true)
        let y = (x * x + x).sum()       // dy/dx = 2x + 1
        y.backward()
        XCTAssertEqual(x.grad?.values, [3, 5, 7])
    }

    func testAddPassesIndependentGradients() {
        // add hands one gradient to both operands; mutating one must not change the other.
        let a = Tensor(shape: [2], values: [1, 2], requiresGrad: true)
        let b = Tensor(shape: [2], values: [3, 4], requiresGrad: true)
        let s = a + b
        let loss = (s * 2).sum() + (a * 3).sum()
        loss.backward()
        XCTAssertEqual(a.grad?.values, [5, 5])
        XCTAssertEqual(b.grad?.values, [2, 2])
    }

    func testNoGradScopeRecordsNothing() {
        let x = Tensor(shape: [2], values: [1, 2], requiresGrad: true)
        let y = Tape.withoutGrad { (x * 3).exp() }
        XCTAssertFalse(y.requiresGrad)
        XCTAssertEqual(Tape.current.count, 0)
    }

    func testTensorsWithoutGradNeverEnterTheTape() {
        let x = Tensor(shape: [2], values: [1, 2])
        _ = (x * 3 + 1).relu()
        XCTAssertEqual(Tape.current.count, 0)
    }

    func testFrozenConvComputesOnlyInputGradient() {
        let x = randomTensor([1, 2, 5, 5], seed: 1)
        let w = randomTensor([3, 2, 3, 3], seed: 2, requiresGrad: false)
        let b = randomTensor([3], seed: 3, requiresGrad: false)
        x.conv2d(weight: w, bias: b, padding: (1, 1)).sum().backward()
        XCTAssertNotNil(x.grad)
        XCTAssertNil(w.grad)
        XCTAssertNil(b.grad)
    }

    func testInputWithoutGradGetsNone() {
        let x = randomTensor([1, 2, 5, 5], seed: 1, requiresGrad: false)
        let w = randomTensor([3, 2, 3, 3], seed: 2)
        x.conv2d(weight: w).sum().backward()
        XCTAssertNil(x.grad)
        XCTAssertNotNil(w.grad)
    }

    func testBackwardClearsTapeAndIntermediateGradients() {
        let x = Tensor(shape: [2], values: [1, 2], requiresGrad: true)
        let h = x * 2
        let y = h.exp().sum()
        y.backward()
        XCTAssertEqual(Tape.current.count, 0)
        XCTAssertNil(h.grad)
        XCTAssertNotNil(x.grad)
    }

    func testSavedTensorsAreReleasedAfterBackward() {
        weak var saved: Tensor?
        let x = Tensor(shape: [4], values: [1, 2, 3, 4], requiresGrad: true)
        do {
            let h = x.exp()     // exp's backward saves its output
            saved = h
            h.sum().backward()
        }
        XCTAssertNil(saved, "the tape must not keep saved tensors alive after backward")
    }

    func testGradientAccumulatesIntoPreallocatedView() {
        // A parameter's gradient may be a view into a flat buffer: backward adds into it in place.
        let flat = Storage(zeros: 10)
        let w = Tensor(shape: [3], values: [1, 2, 3], requiresGrad: true)
        w.grad = Tensor(shape: [3], storage: flat, offset: 4)
        (w * 2).sum().backward()
        (w * 3).sum().backward()
        XCTAssertEqual(Array(UnsafeBufferPointer(start: flat.base, count: 10)), [0, 0, 0, 0, 5, 5, 5, 0, 0, 0])
    }

    func testLeafReadyHookFiresOncePerLeafAfterItsLastUse() {
        let a = Tensor(shape: [2], values: [1, 2], requiresGrad: true)
        let b = Tensor(shape: [2], values: [3, 4], requiresGrad: true)
        let h = a * b          // first use of a and b
        let y = (h * a).sum()  // a used again
        var ready: [ObjectIdentifier] = []
        var gradAtReady: [Float] = []
        Tape.current.backward(from: y) { leaf in
            ready.append(ObjectIdentifier(leaf))
            if leaf === a { gradAtReady = leaf.grad!.values }
        }
        XCTAssertEqual(Set(ready), [ObjectIdentifier(a), ObjectIdentifier(b)])
        XCTAssertEqual(ready.count, 2)
        XCTAssertEqual(gradAtReady, [6, 16])   // d(a²b)/da = 2ab, final when reported
    }
}
