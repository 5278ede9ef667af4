import XCTest
import TestSupport
import CKernels
@testable import PercepCore

/// Winograd F(2×2, 3×3) (`ConvWinograd.Tile.two`), the forward for ReLU signs and max-pool
/// argmaxes that route a gradient: within a direct convolution's rounding of the exact result, as
/// accurate as a direct float32 convolution where F(4×4, 3×3) is not, exact ties of flat regions
/// kept, and the same bits from every path through it.
extension ConvKernelTests {
    /// Forward with bias, with and without ReLU, against the double-accumulated reference within
    /// twice a direct convolution's bound (the transforms add the few roundings of sums of two or
    /// three terms): partial tiles, no padding, padding 2, several tile blocks, and a U over
    /// `sharedTransformBudget` (made in chunks of panels per thread).
    func testWinogradTwoMatchesReference() {
        let shapes = [
            ConvGeometry(n: 2, cIn: 19, h: 40, w: 36, cOut: 16, kh: 3, kw: 3, padding: (1, 1)),
            ConvGeometry(n: 1, cIn: 3, h: 9, w: 7, cOut: 5, kh: 3, kw: 3, padding: (1, 1)),     // partial tiles
            ConvGeometry(n: 3, cIn: 8, h: 6, w: 13, cOut: 4, kh: 3, kw: 3),                    // no padding
            ConvGeometry(n: 1, cIn: 4, h: 5, w: 5, cOut: 7, kh: 3, kw: 3, padding: (2, 2)),
            ConvGeometry(n: 2, cIn: 64, h: 33, w: 30, cOut: 72, kh: 3, kw: 3, padding: (1, 1)), // several tile blocks
            ConvGeometry(n: 1, cIn: 512, h: 8, w: 8, cOut: 520, kh: 3, kw: 3, padding: (1, 1)),
            ConvGeometry(n: 2, cIn: 17, h: 12, w: 21, cOut: 18, kh: 3, kw: 3, padding: (0, 1)),  // a row band's padding
            ConvGeometry(n: 1, cIn: 16, h: 9, w: 10, cOut: 16, kh: 3, kw: 3, padding: (2, 0)),
        ]
        XCTAssertGreaterThan(16 * 87 * 6 * 512 * 4, ConvWinograd.sharedTransformBudget, "the last shape's U is made in chunks")
        for (i, g) in shapes.enumerated() {
            let seed = UInt64(80 + i)
            let x = randomTensor([g.n, g.cIn, g.h, g.w], seed: seed, requiresGrad: false)
            let w = randomTensor([g.cOut, g.cIn, 3, 3], seed: 100 + seed, requiresGrad: false)
            let b = randomTensor([g.cOut], seed: 200 + seed, requiresGrad: false)
            let absX = x.copy(), absW = w.copy(), absB = b.copy()
            for t in [absX, absW, absB] { for i in 0..<t.count { t.data[i] = abs(t.data[i]) } }
            let shape = [g.n, g.cOut, g.outH, g.outW]
            let yMag = Tensor(uninitialized: shape)
            ConvIm2col.forwardNaive(yMag.data, absX.data, absW.data, absB.data, g)
            for i in 0..<yMag.count { yMag.data[i] *= 2 }
            for relu in [false, true] {
                let yRef = Tensor(uninitialized: shape), y = Tensor(uninitialized: shape)
                y.fill(.nan)
                ConvIm2col.forwardNaive(yRef.data, x.data, w.data, b.data, g)
                if relu { for i in 0..<yRef.count { yRef.data[i] = max(yRef.data[i], 0) } }
                ConvWinograd.forward(y.data, x.data, w.data, b.data, g, relu: relu, tile: .two)
                assertWithinRoundingBound(y, yRef, magnitude: yMag, terms: g.cIn * 9 + 1, "F(2×2, 3×3) forward relu \(relu) \(g)")
            }
        }
    }

    /// The reason F(2×2, 3×3) runs the forward whose switches route a gradient: on a VGG-like
    /// layer its error against the exact result (float64) is that of a direct float32
    /// convolution (the dispatch's direct algorithm; within 2×, RMS over the outputs), while
    /// F(4×4, 3×3)'s is several times larger.
    func testWinogradTwoRoundsAsADirectConvolution() {
        let g = ConvGeometry(n: 2, cIn: 64, h: 32, w: 32, cOut: 64, kh: 3, kw: 3, padding: (1, 1))
        let x = randomTensor([g.n, g.cIn, g.h, g.w], seed: 91, lo: 0, hi: 1, requiresGrad: false)   // ReLU outputs
        let w = randomTensor([g.cOut, g.cIn, 3, 3], seed: 92, lo: -0.06, hi: 0.06, requiresGrad: false)
        let shape = [g.n, g.cOut, g.outH, g.outW]
        // The exact convolution, summed in float64 and kept there (float32 products are exact in it).
        var exact = [Double](repeating: 0, count: shape.reduce(1, *))
        for n in 0..<g.n {
            for k in 0..<g.cOut {
                for oy in 0..<g.outH {
                    for ox in 0..<g.outW {
                        var sum = 0.0
                        for c in 0..<g.cIn {
                            for ky in 0..<3 where oy + ky - 1 >= 0 && oy + ky - 1 < g.h {
                                for kx in 0..<3 where ox + kx - 1 >= 0 && ox + kx - 1 < g.w {
                                    sum += Double(x.data[((n * g.cIn + c) * g.h + oy + ky - 1) * g.w + ox + kx - 1])
                                        * Double(w.data[((k * g.cIn + c) * 3 + ky) * 3 + kx])
                                }
                            }
                        }
                        exact[((n * g.cOut + k) * g.outH + oy) * g.outW + ox] = sum
                    }
                }
            }
        }
        func rmsError(_ run: (UnsafeMutablePointer<Float>) -> Void) -> Double {
            let y = Tensor(uninitialized: shape)
            run(y.data)
            return sqrt((0..<y.count).reduce(0.0) { $0 + pow(Double(y.data[$1]) - exact[$1], 2) } / Double(y.count))
        }
        let direct = rmsError { ConvDispatch.directForward($0, x.data, w.data, nil, g) }
        let two = rmsError { ConvWinograd.forward($0, x.data, w.data, nil, g, tile: .two) }
        let four = rmsError { ConvWinograd.forward($0, x.data, w.data, nil, g, tile: .four) }
        XCTAssertLessThanOrEqual(two, 2 * direct, "F(2×2, 3×3) \(two) against direct \(direct)")
        XCTAssertGreaterThan(four, 3 * two, "F(4×4, 3×3) \(four) against F(2×2, 3×3) \(two)")
    }

    /// A patch constant along its rows or columns gives bit-equal outputs where a direct
    /// convolution's are (the same inputs under the 3×3 window): in a per-channel constant map
    /// every output away from the border, in a map that varies across columns only every output
    /// of a column away from the top and bottom rows, and likewise for rows. F(4×4, 3×3) breaks
    /// such ties (shown on the same maps, so the check can fail).
    func testWinogradTwoKeepsTheExactTiesOfFlatRegions() {
        let g = ConvGeometry(n: 3, cIn: 24, h: 22, w: 26, cOut: 16, kh: 3, kw: 3, padding: (1, 1))
        let values = randomTensor([g.cIn, g.w + g.h], seed: 93, requiresGrad: false)
        let x = Tensor(uninitialized: [g.n, g.cIn, g.h, g.w])
        for c in 0..<g.cIn {
            for r in 0..<g.h {
                for col in 0..<g.w {
                    // Image 0 constant per channel, image 1 varying across columns, image 2 across rows.
                    let plane = g.h * g.w, at = c * plane + r * g.w + col
                    x.data[at] = values.data[c * (g.w + g.h)]
                    x.data[(g.cIn + c) * plane + r * g.w + col] = values.data[c * (g.w + g.h) + col]
                    x.data[(2 * g.cIn + c) * plane + r * g.w + col] = values.data[c * (g.w + g.h) + g.w + r]
                }
            }
        }
        let w = randomTensor([g.cOut, g.cIn, 3, 3], seed: 94, requiresGrad: false)
        let b = randomTensor([g.cOut], seed: 95, requiresGrad: false)
        /// Pairs of outputs that a direct convolution gives equal bits, not equal here.
        func brokenTies(_ tile: ConvWinograd.Tile) -> Int {
            let y = Tensor(uninitialized: [g.n, g.cOut, g.outH, g.outW])
            ConvWinograd.forward(y.data, x.data, w.data, b.data, g, relu: true, tile: tile)
            let oh = g.outH, ow = g.outW
            func at(_ n: Int, _ k: Int, _ r: Int, _ c: Int) -> UInt32 { y.data[((n * g.cOut + k) * oh + r) * ow + c].bitPattern }
            var broken = 0
            for k in 0..<g.cOut {
                for r in 1..<(oh - 1) {
                    for c in 1..<(ow - 1) {
                        if at(0, k, r, c) != at(0, k, 1, 1) { broken += 1 }
                        if at(1, k, r, c) != at(1, k, 1, c) { broken += 1 }
                        if at(2, k, r, c) != at(2, k, r, 1) { broken += 1 }
                    }
                }
            }
            return broken
        }
        XCTAssertEqual(brokenTies(.two), 0)
        XCTAssertGreaterThan(brokenTies(.four), 0, "F(4×4, 3×3) rounds such ties apart")
    }

    /// The transforms' tile-row path (eight tiles of one tile row read and written as row segments
    /// with vector shuffles) gives the bits of the per-tile path, and so do the 16-tile groups:
    /// interior and zero-padded segments, groups that straddle tile rows and images, a cropped last
    /// column and row of tiles, row and column padding that differ (a row band's), bias and ReLU.
    func testWinogradTwoTileRowPathMatchesSingleTiles() {
        // (images, channels, height, width, row padding, column padding)
        for (n, c, h, w, padH, padW) in [(1, 2, 12, 50, 1, 1), (2, 3, 20, 40, 1, 1), (1, 2, 13, 35, 0, 0), (1, 1, 9, 34, 2, 2),
                                         (2, 2, 8, 16, 1, 1), (1, 3, 11, 37, 0, 1), (2, 2, 10, 18, 2, 0)] {
            let oh = h + 2 * padH - 2, ow = w + 2 * padW - 2
            let tilesH = (oh + 1) / 2, tilesW = (ow + 1) / 2, count = n * tilesH * tilesW, ld = (count + 7) / 8 * 8
            let label = "\(n)×\(c)×\(h)×\(w) pad \(padH), \(padW)"
            let x = randomTensor([n, c, h, w], seed: UInt64(h * 1000 + w), requiresGrad: false)
            let grouped = Tensor(uninitialized: [16, c, ld]), single = Tensor(uninitialized: [16, c, ld]), wide = Tensor(uninitialized: [16, c, ld])
            for t in [grouped, single, wide] { t.fill(.nan) }
            pd_wino23_input(x.data, Int32(c), Int32(h), Int32(w), Int32(padH), Int32(padW), Int32(tilesH), Int32(tilesW), 0, Int32(count), 0, Int32(c),
                            grouped.data, Int32(ld))
            pd_wino23_input_wide(x.data, Int32(c), Int32(h), Int32(w), Int32(padH), Int32(padW), Int32(tilesH), Int32(tilesW), 0, Int32(count), 0,
                                 Int32(c), wide.data, Int32(ld))
            for t in 0..<count {
                pd_wino23_input(x.data, Int32(c), Int32(h), Int32(w), Int32(padH), Int32(padW), Int32(tilesH), Int32(tilesW), t, 1, 0, Int32(c),
                                single.data + t, Int32(ld))
            }
            XCTAssertEqual(memcmp(grouped.data, single.data, grouped.count * 4), 0, "input transform \(label)")
            XCTAssertEqual(memcmp(wide.data, single.data, wide.count * 4), 0, "16-lane input transform \(label)")
            let m = randomTensor([16, c, ld], seed: UInt64(count), requiresGrad: false)
            let bias = randomTensor([c], seed: UInt64(c + 5), requiresGrad: false)
            for relu: Int32 in [0, 1] {
                let outputs = (0..<3).map { _ in Tensor(uninitialized: [n, c, oh, ow]) }
                for y in outputs { y.fill(.nan) }
                pd_wino23_output(m.data, Int32(c), Int32(ld), 0, Int32(count), Int32(oh), Int32(ow), Int32(tilesH), Int32(tilesW),
                                 bias.data, relu, 0, Int32(c), outputs[0].data)
                pd_wino23_output_wide(m.data, Int32(c), Int32(ld), 0, Int32(count), Int32(oh), Int32(ow), Int32(tilesH), Int32(tilesW),
                                      bias.data, relu, 0, Int32(c), outputs[1].data)
                for t in 0..<count {
                    pd_wino23_output(m.data + t, Int32(c), Int32(ld), t, 1, Int32(oh), Int32(ow), Int32(tilesH), Int32(tilesW),
                                     bias.data, relu, 0, Int32(c), outputs[2].data)
                }
                XCTAssertFalse((0..<outputs[2].count).contains { outputs[2].data[$0].isNaN }, "output \(label): a pixel not written")
                XCTAssertEqual(memcmp(outputs[0].data, outputs[2].data, outputs[0].count * 4), 0, "output transform \(label) relu \(relu)")
                XCTAssertEqual(memcmp(outputs[1].data, outputs[2].data, outputs[1].count * 4), 0,
                               "16-lane output transform \(label) relu \(relu)")
            }
        }
    }

    /// `forwardInRowBands` (the prediction's first layer, its softmax made band by band) runs each
    /// band as a `switchingForward`: F(2×2, 3×3) on bands of an even number of rows, padded along
    /// columns only, gives the whole map's bits (bands of two rows, and of a few rows with a shorter
    /// last one; an odd map height).
    func testRowBandsRunWinogradTwoWithTheWholeMapsBits() {
        let saved = ConvDispatch.rowBandBudget
        defer { ConvDispatch.rowBandBudget = saved }
        ConvDispatch.withWinogradByRule {
            let g = ConvGeometry(n: 2, cIn: 19, h: 15, w: 20, cOut: 16, kh: 3, kw: 3, padding: (1, 1))
            let x = randomTensor([g.n, g.cIn, g.h, g.w], seed: 99, requiresGrad: false)
            let w = randomTensor([g.cOut, g.cIn, 3, 3], seed: 100, requiresGrad: false)
            let b = randomTensor([g.cOut], seed: 101, requiresGrad: false)
            let whole = Tensor(uninitialized: [g.n, g.cOut, g.outH, g.outW])
            XCTAssertTrue(ConvDispatch.usesWinogradTwo(g))
            ConvDispatch.switchingForward(whole.data, x.data, w.data, b.data, g, relu: true)
            let direct = Tensor(uninitialized: whole.shape)
            ConvDispatch.directForward(direct.data, x.data, w.data, b.data, g, relu: true)
            XCTAssertNotEqual(memcmp(whole.data, direct.data, whole.count * 4), 0, "the algorithms must round apart for this test to see which ran")
            let bytesPerRow = (2 * g.cIn * g.w + g.cOut * g.outW) * 4
            for budget in [1, bytesPerRow * 7] {   // bands of 2 rows; of 6 rows, the last 3
                ConvDispatch.rowBandBudget = budget
                let banded = Tensor(uninitialized: whole.shape)
                banded.fill(.nan)
                ConvDispatch.forwardInRowBands(banded.data, w.data, b.data, g, relu: true) { band, channelStride, image, rows in
                    for c in 0..<g.cIn {
                        (band + c * channelStride).update(from: x.data + ((image * g.cIn + c) * g.h + rows.lowerBound) * g.w, count: rows.count * g.w)
                    }
                }
                XCTAssertEqual(memcmp(banded.data, whole.data, whole.count * 4), 0, "budget \(budget)")
            }
            let band = ConvGeometry(n: 1, cIn: g.cIn, h: 4, w: g.w, cOut: g.cOut, kh: 3, kw: 3, padding: (0, 1))
            XCTAssertTrue(ConvDispatch.usesWinogradTwo(band), "a two-row band runs F(2×2, 3×3)")
        }
    }

    /// The whole F(2×2, 3×3) forward gives the same bits with either transform width and either
    /// block schedule (per-thread blocks or shared ones).
    func testWinogradTwoWidthsAndSchedulesGiveTheSameBits() {
        let chosen = ConvWinograd.transformLanes, budget = ConvWinograd.threadBlockBudget
        defer { ConvWinograd.transformLanes = chosen; ConvWinograd.threadBlockBudget = budget }
        let g = ConvGeometry(n: 2, cIn: 40, h: 58, w: 70, cOut: 24, kh: 3, kw: 3, padding: (1, 1))   // 29 × 35 tiles per image
        let x = randomTensor([g.n, g.cIn, g.h, g.w], seed: 96, requiresGrad: false)
        let w = randomTensor([g.cOut, g.cIn, 3, 3], seed: 97, requiresGrad: false)
        let b = randomTensor([g.cOut], seed: 98, requiresGrad: false)
        var outputs: [(String, Tensor)] = []
        for lanes in [ConvWinograd.TransformLanes.eight, .sixteen] {
            for blockKB in [384, 0] {
                ConvWinograd.transformLanes = lanes
                ConvWinograd.threadBlockBudget = blockKB << 10
                let y = Tensor(uninitialized: [g.n, g.cOut, g.outH, g.outW])
                ConvWinograd.forward(y.data, x.data, w.data, b.data, g, relu: true, tile: .two)
                outputs.append(("\(lanes.rawValue) lanes, thread blocks \(blockKB) KiB", y))
            }
        }
        for (name, y) in outputs.dropFirst() {
            XCTAssertEqual(memcmp(y.data, outputs[0].1.data, y.count * 4), 0, "\(name) against \(outputs[0].0)")
        }
    }
}
