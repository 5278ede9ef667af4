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

    func testReluOverwritesOnlyItsOwnGradient() {
        // relu's backward writes over the gradient it receives. add hands one gradient to both
        // operands, and a reshape passes its gradient's storage on: in either operand order, the
        // other operand's gradient must stay intact.
        for reluFirst in [true, false] {
            let x = Tensor(shape: [4], values: [-1, 2, -3, 4], requiresGrad: true)
            let b = Tensor(shape: [2, 2], values: [0, 0, 0, 0], requiresGrad: true)
            let r = x.relu().reshaped([2, 2])
            let s = reluFirst ? r + b : b + r
            (s * Tensor(shape: [2, 2], values: [1, 2, 3, 4])).sum().backward()
            XCTAssertEqual(x.grad?.values, [0, 2, 0, 4], "relu first: \(reluFirst)")
            XCTAssertEqual(b.grad?.values, [1, 2, 3, 4], "relu first: \(reluFirst)")
        }
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

    /// Gradients marked unwritten (a flat buffer holding the last step's values) come out as if
    /// the buffer had been zeroed: the conv writes its first weight and bias gradient over the
    /// slice, a second use of the same weight adds, and a leaf reached by other ops is copied
    /// over. Compared with the same graph on fresh gradients.
    func testUnwrittenGradientsAreOverwrittenNotAdded() {
        let x = randomTensor([2, 3, 6, 6], seed: 1, requiresGrad: false)
        let w = randomTensor([3, 3, 3, 3], seed: 2), b = randomTensor([3], seed: 3), s = randomTensor([2, 3, 6, 6], seed: 4)
        func loss() -> Tensor {
            // w and b serve twice (a head shared across levels); s only through elementwise ops.
            let h = x.conv2d(weight: w, bias: b, padding: (1, 1)).relu()
            let twice = h.conv2d(weight: w, bias: b, padding: (1, 1))
            return ((twice * s) * twice).sum()
        }
        loss().backward()
        let expected = [w, b, s].map { $0.grad!.values }
        let stale = Storage(count: w.count + b.count + s.count)
        stale.base.update(repeating: .nan, count: stale.count)
        var offset = 0
        for p in [w, b, s] {
            p.grad = Tensor(shape: p.shape, storage: stale, offset: offset)
            p.gradIsUnwritten = true
            offset += p.count
        }
        loss().backward()
        for (p, want) in zip([w, b, s], expected) {
            XCTAssertFalse(p.gradIsUnwritten)
            XCTAssertTrue(p.grad!.storage === stale, "the gradient must stay a view into the flat buffer")
            XCTAssertEqual(p.grad!.values, want)
        }
        // Marked again, the next step overwrites what this one left.
        for p in [w, b, s] { p.gradIsUnwritten = true }
        loss().backward()
        for (p, want) in zip([w, b, s], expected) { XCTAssertEqual(p.grad!.values, want) }
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

/// PackedBits, the max-pool argmax kept in it, and Storage's mapped blocks.
final class PackedBitsTests: XCTestCase {
    func testEveryEntryWidthRoundTrips() {
        for valueCount in [2, 3, 4, 9, 16, 200, 1 << 12, 1 << 20] {
            let bits = PackedBits(rows: 3, entriesPerRow: 70, valueCount: valueCount)
            XCTAssertTrue([1, 2, 4, 8, 16, 32].contains(bits.bitsPerEntry))
            XCTAssertLessThanOrEqual(valueCount, 1 << bits.bitsPerEntry)
            XCTAssertTrue(bits.bitsPerEntry == 1 || valueCount > 1 << (bits.bitsPerEntry / 2), "\(valueCount) values in \(bits.bitsPerEntry) bits")
            var rng = SeededRNG(seed: UInt64(valueCount))
            var expected: [[Int]] = []
            for row in 0..<3 {
                expected.append((0..<70).map { _ in Int(rng.next() % UInt64(valueCount)) })
                for (i, v) in expected[row].enumerated() { bits.set(row: row, index: i, to: v) }
            }
            for row in 0..<3 { XCTAssertEqual((0..<70).map { bits.get(row: row, index: $0) }, expected[row], "\(valueCount) values") }
        }
    }

    func testSignBitsMaskAGradient() {
        let values = randomTensor([3, 130], seed: 4, requiresGrad: false), g = randomTensor([3, 130], seed: 5, requiresGrad: false)
        values.data[7] = 0   // zero is not positive: ReLU's gradient there is 0, as PyTorch's
        let signs = PackedBits.positive(values.data, rows: 3, entriesPerRow: 130)
        let out = Tensor(uninitialized: [3, 130])
        signs.maskGradient(out.data, g.data)
        for i in 0..<values.count { XCTAssertEqual(out.data[i], values.data[i] > 0 ? g.data[i] : 0) }
    }

    func testArgmaxPicksTheFirstMaximumOfEachWindow() {
        // Ties inside 3×3/2 windows with padding: the first maximum in row-major order gets it.
        let x = Tensor(shape: [1, 1, 4, 4], values: [1, 5, 5, 0,
                                                   5, 2, 0, 5,
                                                   0, 0, 9, 9,
                                                   3, 0, 9, 1])
        let window = MaxPoolWindow(kernel: (3, 3), stride: (2, 2), padding: (1, 1))
        let (out, argmax) = window.forward(x, keepArgmax: true)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: out.data, count: 4)), [5, 5, 5, 9])
        XCTAssertEqual(argmax!.bitsPerEntry, 4)
        let g = Tensor(shape: [1, 1, 2, 2], values: [1, 10, 100, 1000])
        let dx = window.backward(g, argmax: argmax!, inputShape: x.shape)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: dx.data, count: 16)), [0, 11, 0, 0,
                                                                                 100, 0, 0, 0,
                                                                                 0, 0, 1000, 0,
                                                                                 0, 0, 0, 0])
    }

    func testTwoByTwoPoolMatchesTheGeneralRule() {
        // Ties everywhere (values 0…3) and a few NaNs: the 2×2/2 fast path must pick what the
        // general window loop picks (first maximum; a NaN ends its window row). 8 columns: the
        // per-output loop only; 43: two groups of eight outputs per row, a tail of five, an
        // unused last column and row, and groups whose argmax bits straddle two words.
        for (shape, nans) in [([2, 3, 6, 8], [5, 17, 18, 100, 101, 108, 109, 200]),
                              ([2, 3, 7, 43], [0, 1, 43, 44, 87, 130, 173, 301, 302, 345, 346, 900])] {
            var rng = SeededRNG(seed: 5)
            let x = Tensor(uninitialized: shape)
            for i in 0..<x.count { x.data[i] = Float(rng.next() % 4) }
            for i in nans { x.data[i] = .nan }
            let (h, w, oh, ow) = (shape[2], shape[3], shape[2] / 2, shape[3] / 2)
            let window = MaxPoolWindow(kernel: (2, 2), stride: (2, 2))
            let (out, argmax) = window.forward(x, keepArgmax: true)
            let g = randomTensor([2, 3, oh, ow], seed: 6, requiresGrad: false)
            let dx = window.backward(g, argmax: argmax!, inputShape: x.shape)
            let expectedDx = Tensor.zeros(x.shape)
            for plane in 0..<6 {
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        var best = -Float.infinity, at = -1
                        for ky in 0..<2 {
                            for kx in 0..<2 {
                                let i = plane * h * w + (2 * oy + ky) * w + 2 * ox + kx, v = x.data[i]
                                if v > best || v.isNaN || at < 0 { best = v; at = i; if v.isNaN { break } }
                            }
                        }
                        let o = out.data[plane * oh * ow + oy * ow + ox]
                        XCTAssertTrue(o == best || (o.isNaN && best.isNaN), "\(shape) plane \(plane) (\(oy), \(ox)): \(o) vs \(best)")
                        expectedDx.data[at] += g.data[plane * oh * ow + oy * ow + ox]
                    }
                }
            }
            XCTAssertEqual(Array(UnsafeBufferPointer(start: dx.data, count: dx.count)),
                           Array(UnsafeBufferPointer(start: expectedDx.data, count: dx.count)), "\(shape)")
        }
    }

    /// A max-pool backward with the sign bits of the ReLU in front (`mask`) equals the plain
    /// backward followed by the ReLU's mask: the 2×2/2 path and the general window loop (3×3,
    /// stride 2, padding 1, where windows overlap and gradients add up).
    func testPoolBackwardWithReLUMaskEqualsTwoPasses() {
        let shape = [2, 3, 9, 70]
        let x = randomTensor(shape, seed: 11, requiresGrad: false)
        let signs = PackedBits.positive(x.data, rows: 6, entriesPerRow: 9 * 70)
        for window in [MaxPoolWindow(kernel: (2, 2), stride: (2, 2)), MaxPoolWindow(kernel: (3, 3), stride: (2, 2), padding: (1, 1))] {
            let (out, argmax) = window.forward(x, keepArgmax: true)
            let g = randomTensor(out.shape, seed: 12, requiresGrad: false)
            let expected = window.backward(g, argmax: argmax!, inputShape: shape)
            signs.maskGradient(expected.data, expected.data)
            let fused = window.backward(g, argmax: argmax!, inputShape: shape, mask: signs)
            XCTAssertEqual(memcmp(fused.data, expected.data, fused.count * 4), 0, "\(window.kernel) window")
            var dropped = 0
            for i in 0..<x.count where !(x.data[i] > 0) && fused.data[i] == 0 { dropped += 1 }
            XCTAssertGreaterThan(dropped, x.count / 4, "the mask must have dropped gradient for the test to mean anything")
        }
    }

    func testMappedBlocksStartZeroAndAreCounted() {
        let before = StorageStatistics.liveBytes
        StorageStatistics.resetPeak()
        do {
            let big = Storage(zeros: Storage.mappingThreshold)   // mapped: 4 MiB
            XCTAssertEqual(StorageStatistics.liveBytes - before, Storage.mappingThreshold * 4)
            XCTAssertTrue((0..<big.count).allSatisfy { big.base[$0] == 0 })
            big.base[big.count - 1] = 3
        }
        XCTAssertEqual(StorageStatistics.liveBytes, before)
        XCTAssertGreaterThanOrEqual(StorageStatistics.peakBytes - before, Storage.mappingThreshold * 4)
    }
}
