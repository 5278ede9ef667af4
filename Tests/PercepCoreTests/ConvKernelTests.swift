import XCTest
import TestSupport
import CKernels
import CDNNLConv
@testable import PercepCore

/// Each fast convolution path against the naive reference kernels.
final class ConvKernelTests: XCTestCase {
    static let geometries: [ConvGeometry] = [
        ConvGeometry(n: 2, cIn: 3, h: 9, w: 7, cOut: 5, kh: 3, kw: 3, padding: (1, 1)),
        ConvGeometry(n: 1, cIn: 4, h: 11, w: 10, cOut: 6, kh: 3, kw: 3, stride: (2, 2), padding: (1, 1)),
        ConvGeometry(n: 1, cIn: 4, h: 12, w: 12, cOut: 4, kh: 3, kw: 3, padding: (2, 2), dilation: (2, 2)),
        ConvGeometry(n: 2, cIn: 4, h: 6, w: 6, cOut: 6, kh: 3, kw: 3, padding: (1, 1), groups: 2),
        ConvGeometry(n: 1, cIn: 6, h: 8, w: 8, cOut: 6, kh: 3, kw: 3, padding: (1, 1), groups: 6),
        ConvGeometry(n: 2, cIn: 5, h: 7, w: 6, cOut: 3, kh: 1, kw: 1),
        ConvGeometry(n: 1, cIn: 8, h: 9, w: 9, cOut: 4, kh: 1, kw: 1, stride: (2, 2)),
        ConvGeometry(n: 1, cIn: 3, h: 20, w: 18, cOut: 4, kh: 7, kw: 7, stride: (2, 2), padding: (3, 3)),
        ConvGeometry(n: 1, cIn: 2, h: 9, w: 9, cOut: 3, kh: 5, kw: 3, padding: (2, 1)),
        ConvGeometry(n: 2, cIn: 19, h: 40, w: 36, cOut: 16, kh: 3, kw: 3, padding: (1, 1)),
        ConvGeometry(n: 1, cIn: 6, h: 5, w: 7, cOut: 4, kh: 1, kw: 1),
        ConvGeometry(n: 3, cIn: 6, h: 5, w: 7, cOut: 4, kh: 1, kw: 1, groups: 2),
        // A tiny ResNet-50 at output stride 16 (layer3/layer4 on 3×3 maps, batch 2, 1×1 and
        // dilated 3×3 kernels larger than the map).
        ConvGeometry(n: 2, cIn: 32, h: 3, w: 3, cOut: 8, kh: 1, kw: 1),
        ConvGeometry(n: 2, cIn: 8, h: 3, w: 3, cOut: 8, kh: 3, kw: 3, padding: (1, 1)),
        ConvGeometry(n: 2, cIn: 8, h: 3, w: 3, cOut: 32, kh: 1, kw: 1),
        ConvGeometry(n: 2, cIn: 16, h: 3, w: 3, cOut: 16, kh: 3, kw: 3, padding: (2, 2), dilation: (2, 2)),
    ]

    func assertClose(_ a: Tensor, _ b: Tensor, _ what: String, rtol: Float = 1e-4, atol: Float = 1e-5) {
        var worst: Float = 0, at = 0
        for i in 0..<a.count {
            let excess = abs(a.data[i] - b.data[i]) - (atol + rtol * abs(b.data[i]))
            if !(excess <= worst) { worst = excess.isNaN ? .infinity : excess; at = i }
        }
        XCTAssertEqual(worst, 0, "\(what): element \(at) is \(a.data[at]), reference \(b.data[at])")
    }

    /// Checks a float32 result against a reference accumulated in double, with the error bound of
    /// float32 arithmetic instead of a tolerance read off one machine. Each element is a sum of at
    /// most `terms` products, and any summation order, blocking, thread split or FMA use keeps
    /// |computed − exact| ≤ γ(terms)·Σ|products| with γ(k) = k·u/(1 − k·u), u = 2⁻²⁴ (Higham,
    /// "Accuracy and Stability of Numerical Algorithms", §3.1). `magnitude` holds Σ|products| per
    /// element (the reference kernel on absolute values); the reference itself was rounded once
    /// to float32 (u·|reference| more). A wrong index or a missed term is off by a whole product,
    /// which this bound does not admit except for reductions so long that a single term is below
    /// γ of their sum. Non-finite values (outputs a pass failed to overwrite) always fail.
    func assertWithinRoundingBound(_ a: Tensor, _ reference: Tensor, magnitude: Tensor, terms: Int, _ what: String) {
        let u = Double(Float.ulpOfOne) / 2
        let gamma = Double(terms) * u / (1 - Double(terms) * u)
        var worst = 0.0, at = 0
        for i in 0..<a.count {
            let bound = gamma * Double(magnitude.data[i]) * (1 + u) + u * Double(abs(reference.data[i]))
            let excess = abs(Double(a.data[i]) - Double(reference.data[i])) - bound
            if !(excess <= worst) { worst = excess.isNaN ? .infinity : excess; at = i }
        }
        XCTAssertEqual(worst, 0, "\(what): element \(at) is \(a.data[at]), reference \(reference.data[at]), "
                       + "allowed ±\(gamma * Double(magnitude.data[at])) for \(terms) terms of total magnitude \(magnitude.data[at])")
    }

    func check(_ algorithm: ConvAlgorithm) {
        for (i, g) in Self.geometries.enumerated() { checkOne(algorithm, g, seed: UInt64(i)) }
    }

    func checkOne(_ algorithm: ConvAlgorithm, _ g: ConvGeometry, seed i: UInt64) {
        ConvDispatch.force(algorithm)
        defer { ConvDispatch.force(nil) }
        XCTAssertNil(g.problem)
        do {
            let x = randomTensor([g.n, g.cIn, g.h, g.w], seed: i, requiresGrad: false)
            let w = randomTensor([g.cOut, g.cInPerGroup, g.kh, g.kw], seed: 100 + i, requiresGrad: false)
            let b = randomTensor([g.cOut], seed: 200 + i, requiresGrad: false)
            let dy = randomTensor([g.n, g.cOut, g.outH, g.outW], seed: 300 + i, requiresGrad: false)
            let yRef = Tensor(uninitialized: dy.shape), y = Tensor(uninitialized: dy.shape)
            y.fill(.nan)
            ConvIm2col.forwardNaive(yRef.data, x.data, w.data, b.data, g)
            ConvDispatch.forward(y.data, x.data, w.data, b.data, g)
            // Σ|products| per output element: the reference kernels on absolute values.
            let absX = x.copy(), absW = w.copy(), absB = b.copy(), absDy = dy.copy()
            for t in [absX, absW, absB, absDy] { for i in 0..<t.count { t.data[i] = abs(t.data[i]) } }
            let yMag = Tensor(uninitialized: dy.shape)
            ConvIm2col.forwardNaive(yMag.data, absX.data, absW.data, absB.data, g)
            assertWithinRoundingBound(y, yRef, magnitude: yMag, terms: g.cInPerGroup * g.kh * g.kw + 1, "\(algorithm) forward \(g)")
            let dxRef = Tensor(uninitialized: x.shape), dwRef = Tensor(uninitialized: w.shape), dbRef = Tensor(uninitialized: b.shape)
            ConvIm2col.backwardNaive(dxRef.data, dwRef.data, dbRef.data, x.data, w.data, dy.data, g)
            let dxMag = Tensor(uninitialized: x.shape), dwMag = Tensor(uninitialized: w.shape), dbMag = Tensor(uninitialized: b.shape)
            ConvIm2col.backwardNaive(dxMag.data, dwMag.data, dbMag.data, absX.data, absW.data, absDy.data, g)
            let dx = Tensor(uninitialized: x.shape), dw = Tensor(uninitialized: w.shape), db = Tensor(uninitialized: b.shape)
            // Reused allocations hold old values: every pass must overwrite all of its output.
            for t in [dx, dw, db] { t.fill(.nan) }
            // A call on other data first: a cached primitive must not carry anything over.
            let other = randomTensor(dy.shape, seed: 400 + i, requiresGrad: false), otherW = randomTensor(w.shape, seed: 500 + i, requiresGrad: false)
            let scratchY = Tensor(uninitialized: dy.shape), scratchX = Tensor(uninitialized: x.shape)
            ConvDispatch.forward(scratchY.data, x.data, otherW.data, nil, g)
            ConvDispatch.backwardData(scratchX.data, other.data, otherW.data, g)
            ConvDispatch.backwardData(dx.data, dy.data, w.data, g)
            ConvDispatch.backwardWeight(dw.data, db.data, x.data, dy.data, g)
            // An input element receives at most one product per output channel of its group and
            // kernel tap; a weight or bias element one per output position of the batch.
            assertWithinRoundingBound(dx, dxRef, magnitude: dxMag, terms: g.cOutPerGroup * g.kh * g.kw, "\(algorithm) backward data \(g)")
            let positions = g.n * g.outH * g.outW
            assertWithinRoundingBound(dw, dwRef, magnitude: dwMag, terms: positions, "\(algorithm) backward weight \(g)")
            assertWithinRoundingBound(db, dbRef, magnitude: dbMag, terms: positions, "\(algorithm) backward bias \(g)")
        }
    }

    func testIm2colMatchesReference() { check(.im2col) }

    func testIm2colInSampleChunksMatchesReference() {
        // A budget of two samples' columns splits batches of 3 into chunks of 2 and 1.
        let saved = ConvIm2col.columnBudget
        defer { ConvIm2col.columnBudget = saved }
        for g in Self.geometries {
            ConvIm2col.columnBudget = 2 * g.colRows * g.outH * g.outW
            var h = g
            h.n = 3
            checkOne(.im2col, h, seed: 7)
        }
    }
    func testDNNLMatchesReference() { check(.dnnl) }

    func testDNNLInImageChunksMatchesReference() {
        // A budget below one image's blocked copies runs forward and backward-data image by image.
        let saved = ConvDispatch.workspaceBudget
        defer { ConvDispatch.workspaceBudget = saved }
        ConvDispatch.workspaceBudget = 1
        var split = 0
        for g in Self.geometries {
            var h = g
            h.n = 3
            // Shapes oneDNN runs in the plain layout need no workspace and stay whole.
            if let handle = ConvDispatch.dnnlHandle(h, bias: false) {
                let perCall = ConvDispatch.imagesPerCall(h, .forward, handle)
                XCTAssertTrue(perCall == 1 || perCall == 3, "\(h): \(perCall) images per call")
                if perCall == 1 { split += 1 }
            }
            checkOne(.dnnl, h, seed: 9)
        }
        XCTAssertGreaterThan(split, Self.geometries.count / 2, "most test shapes need blocked copies and split")
    }

    /// Winograd F(4×4, 3×3), forward, backward-data and backward-weight, against the
    /// double-accumulated reference.
    ///
    /// Its rounding is not that of a sum of products: the transforms add and scale values by up
    /// to 8 (and 1/24) before and after the products are summed, so the bound of
    /// `assertWithinRoundingBound` is widened by κ = 8. Measured on these shapes, the worst
    /// element was at 0.05–0.47 of the unwidened bound γ(terms)·Σ|products|; κ leaves room for
    /// other CPUs (the baseline clone has no FMA). A wrong tile offset, a missed border or a
    /// swapped channel is off by whole products, far outside it.
    func testWinogradMatchesReference() {
        let kappa = 8.0
        let shapes = [
            ConvGeometry(n: 2, cIn: 19, h: 40, w: 36, cOut: 16, kh: 3, kw: 3, padding: (1, 1)),
            ConvGeometry(n: 1, cIn: 3, h: 9, w: 7, cOut: 5, kh: 3, kw: 3, padding: (1, 1)),     // partial tiles
            ConvGeometry(n: 3, cIn: 8, h: 6, w: 13, cOut: 4, kh: 3, kw: 3),                    // no padding
            ConvGeometry(n: 1, cIn: 4, h: 5, w: 5, cOut: 7, kh: 3, kw: 3, padding: (2, 2)),     // backward-data pads 0
            ConvGeometry(n: 2, cIn: 64, h: 33, w: 30, cOut: 72, kh: 3, kw: 3, padding: (1, 1)), // several tile blocks
            // U over `sharedTransformBudget` both ways: made in chunks of 6 panels per thread (7
            // backward), the last chunk of each thread shorter, the last panel 4 rows (340 = 56·6 + 4)
            ConvGeometry(n: 1, cIn: 384, h: 8, w: 8, cOut: 340, kh: 3, kw: 3, padding: (1, 1)),
        ]
        XCTAssertGreaterThan(36 * 57 * 6 * 384 * 4, ConvWinograd.sharedTransformBudget)
        XCTAssertGreaterThan(36 * 64 * 6 * 340 * 4, ConvWinograd.sharedTransformBudget)
        XCTAssertEqual(ConvWinograd.panelChunkBudget / (36 * 6 * 384 * 4), 6)
        XCTAssertFalse(ConvWinograd.applies(ConvGeometry(n: 1, cIn: 4, h: 11, w: 10, cOut: 6, kh: 3, kw: 3, stride: (2, 2), padding: (1, 1))))
        XCTAssertFalse(ConvWinograd.applies(ConvGeometry(n: 1, cIn: 4, h: 12, w: 12, cOut: 4, kh: 3, kw: 3, padding: (2, 2), dilation: (2, 2))))
        XCTAssertFalse(ConvWinograd.applies(ConvGeometry(n: 2, cIn: 5, h: 7, w: 6, cOut: 3, kh: 1, kw: 1)))
        for (i, g) in shapes.enumerated() {
            XCTAssertTrue(ConvWinograd.applies(g), "\(g)")
            let seed = UInt64(40 + i)
            let x = randomTensor([g.n, g.cIn, g.h, g.w], seed: seed, requiresGrad: false)
            let w = randomTensor([g.cOut, g.cIn, 3, 3], seed: 100 + seed, requiresGrad: false)
            let b = randomTensor([g.cOut], seed: 200 + seed, requiresGrad: false)
            let dy = randomTensor([g.n, g.cOut, g.outH, g.outW], seed: 300 + seed, requiresGrad: false)
            let absX = x.copy(), absW = w.copy(), absB = b.copy(), absDy = dy.copy()
            for t in [absX, absW, absB, absDy] { for i in 0..<t.count { t.data[i] = abs(t.data[i]) } }
            for relu in [false, true] {
                let yRef = Tensor(uninitialized: dy.shape), yMag = Tensor(uninitialized: dy.shape), y = Tensor(uninitialized: dy.shape)
                y.fill(.nan)
                ConvIm2col.forwardNaive(yRef.data, x.data, w.data, b.data, g)
                ConvIm2col.forwardNaive(yMag.data, absX.data, absW.data, absB.data, g)
                if relu { for i in 0..<yRef.count { yRef.data[i] = max(yRef.data[i], 0) } }
                ConvWinograd.forward(y.data, x.data, w.data, b.data, g, relu: relu)
                for i in 0..<yMag.count { yMag.data[i] *= Float(kappa) }
                assertWithinRoundingBound(y, yRef, magnitude: yMag, terms: g.cIn * 9 + 1, "winograd forward relu \(relu) \(g)")
            }
            let dxRef = Tensor(uninitialized: x.shape), dwRef = Tensor(uninitialized: w.shape), dbRef = Tensor(uninitialized: b.shape)
            ConvIm2col.backwardNaive(dxRef.data, dwRef.data, dbRef.data, x.data, w.data, dy.data, g)
            let dxMag = Tensor(uninitialized: x.shape), dwMag = Tensor(uninitialized: w.shape)
            ConvIm2col.backwardNaive(dxMag.data, dwMag.data, dbRef.data, absX.data, absW.data, absDy.data, g)
            for t in [dxMag, dwMag] { for i in 0..<t.count { t.data[i] *= Float(kappa) } }
            let dx = Tensor(uninitialized: x.shape)
            dx.fill(.nan)
            ConvWinograd.backwardData(dx.data, dy.data, w.data, g)
            assertWithinRoundingBound(dx, dxRef, magnitude: dxMag, terms: g.cOut * 9, "winograd backward data \(g)")
            // The weight gradient with the default budget (one chunk of output channels, one
            // block of tiles, except the 384×340 layer: two chunks) and with 64 KiB (several
            // chunks and blocks, the last of each shorter).
            let budget = ConvWinograd.weightGradientBudget
            defer { ConvWinograd.weightGradientBudget = budget }
            for small in [false, true] {
                ConvWinograd.weightGradientBudget = small ? 64 << 10 : budget
                let dw = Tensor(uninitialized: w.shape)
                dw.fill(.nan)
                ConvWinograd.backwardWeight(dw.data, x.data, dy.data, g)
                assertWithinRoundingBound(dw, dwRef, magnitude: dwMag, terms: g.n * g.outH * g.outW,
                                          "winograd backward weight, budget \(ConvWinograd.weightGradientBudget) \(g)")
            }
        }
    }

    /// The default dispatch runs Winograd wherever `usesWinograd` says so, trainable layers
    /// included: `Tensor.conv2d` gives Winograd's bits (bias and fused ReLU too, dx through the
    /// ReLU, dw from 128 tiles and 32 channels up where OpenBLAS is as wide as oneDNN), F(2×2, 3×3)'s
    /// inside `withSwitchingForward` (the direct algorithm's there on a shape F(2×2, 3×3) does not
    /// take), the direct algorithm's with a forced algorithm and on shapes Winograd does not take
    /// (strided, dilated, few channels, few tiles).
    func testDefaultDispatchRunsWinogradWhereItApplies() {
        // Where oneDNN is wider than AVX2 Winograd's passes are timed; this test checks the rule.
        ConvDispatch.withWinogradByRule {
            let few = ConvGeometry(n: 2, cIn: 16, h: 12, w: 10, cOut: 24, kh: 3, kw: 3, padding: (1, 1))   // 2·3·3 = 18 tiles
            XCTAssertEqual(ConvPass.allCases.map { ConvDispatch.algorithmName(for: few, pass: $0) },
                           ["winograd", "winograd", ConvDispatch.algorithm(for: few, pass: .backwardWeight).rawValue])
            let g = ConvGeometry(n: 2, cIn: 32, h: 30, w: 32, cOut: 40, kh: 3, kw: 3, padding: (1, 1))     // 2·8·8 = 128 tiles
            // Winograd's weight gradient runs on OpenBLAS's GEMM: not where oneDNN is wider.
            let weightsByWinograd = Gemm.vectorBits >= ConvDispatch.dnnlVectorBits
            XCTAssertEqual(ConvPass.allCases.map { ConvDispatch.algorithmName(for: g, pass: $0) },
                           ["winograd", "winograd", weightsByWinograd ? "winograd" : ConvDispatch.algorithm(for: g, pass: .backwardWeight).rawValue])
            for other in [ConvGeometry(n: 2, cIn: 16, h: 12, w: 10, cOut: 24, kh: 3, kw: 3, stride: (2, 2), padding: (1, 1)),
                          ConvGeometry(n: 2, cIn: 16, h: 12, w: 10, cOut: 24, kh: 3, kw: 3, padding: (2, 2), dilation: (2, 2)),
                          ConvGeometry(n: 2, cIn: 8, h: 12, w: 10, cOut: 24, kh: 3, kw: 3, padding: (1, 1)),
                          ConvGeometry(n: 1, cIn: 16, h: 4, w: 4, cOut: 24, kh: 3, kw: 3, padding: (1, 1))] {
                XCTAssertNotEqual(ConvDispatch.algorithmName(for: other, pass: .forward), "winograd", "\(other)")
                XCTAssertFalse(ConvDispatch.usesWinogradTwo(other), "\(other)")
            }
            ConvDispatch.force(.dnnl)
            XCTAssertEqual(ConvPass.allCases.map { ConvDispatch.algorithmName(for: g, pass: $0) }, ["dnnl", "dnnl", "dnnl"])
            XCTAssertFalse(ConvDispatch.usesWinogradTwo(g))
            ConvDispatch.force(nil)
            // Where F(2×2, 3×3) declines (8 input channels), the switching forward is direct.
            do {
                let narrow = ConvGeometry(n: 2, cIn: 8, h: 12, w: 10, cOut: 24, kh: 3, kw: 3, padding: (1, 1))
                let x = randomTensor([narrow.n, narrow.cIn, narrow.h, narrow.w], seed: 65, requiresGrad: false)
                let w = randomTensor([narrow.cOut, narrow.cIn, 3, 3], seed: 66, requiresGrad: false)
                let direct = Tensor(uninitialized: [narrow.n, narrow.cOut, narrow.outH, narrow.outW])
                ConvDispatch.directForward(direct.data, x.data, w.data, nil, narrow)
                let y = ConvDispatch.withSwitchingForward { x.conv2d(weight: w, padding: (1, 1)) }
                XCTAssertEqual(memcmp(y.data, direct.data, y.count * 4), 0, "withSwitchingForward on \(narrow)")
            }

            let x = randomTensor([g.n, g.cIn, g.h, g.w], seed: 61)
            let w = randomTensor([g.cOut, g.cIn, 3, 3], seed: 62)
            let b = randomTensor([g.cOut], seed: 63, requiresGrad: false)
            let dy = randomTensor([g.n, g.cOut, g.outH, g.outW], seed: 64, requiresGrad: false)
            func bits(_ t: Tensor) -> [UInt32] { (0..<t.count).map { t.data[$0].bitPattern } }
            for relu in [false, true] {
                let expected = Tensor(uninitialized: dy.shape), direct = Tensor(uninitialized: dy.shape)
                ConvWinograd.forward(expected.data, x.data, w.data, b.data, g, relu: relu)
                ConvDispatch.force(.dnnl)
                ConvDispatch.forward(direct.data, x.data, w.data, b.data, g, relu: relu)
                ConvDispatch.force(nil)
                XCTAssertNotEqual(bits(expected), bits(direct), "the two algorithms must round differently for this test to see which ran")
                x.grad = nil; w.grad = nil
                let y = x.conv2d(weight: w, bias: b, padding: (1, 1), fusedReLU: relu)
                XCTAssertEqual(bits(y), bits(expected), "conv2d forward, relu \(relu)")
                XCTAssertTrue(ConvDispatch.usesWinogradTwo(g))
                let two = Tensor(uninitialized: dy.shape)
                ConvWinograd.forward(two.data, x.data, w.data, b.data, g, relu: relu, tile: .two)
                XCTAssertNotEqual(bits(two), bits(direct), "F(2×2, 3×3) must round differently for this test to see which ran")
                XCTAssertEqual(bits(Tape.withoutGrad { ConvDispatch.withSwitchingForward { x.conv2d(weight: w, bias: b, padding: (1, 1), fusedReLU: relu) } }),
                               bits(two), "withSwitchingForward, relu \(relu)")
                y.backward(seed: dy)
                let maskedDy = dy.copy()
                if relu { for i in 0..<maskedDy.count where y.data[i] <= 0 { maskedDy.data[i] = 0 } }
                let dx = Tensor(uninitialized: x.shape), dw = Tensor(uninitialized: w.shape)
                ConvWinograd.backwardData(dx.data, maskedDy.data, w.data, g)
                XCTAssertEqual(bits(x.grad!), bits(dx), "conv2d backward-data, relu \(relu)")
                if weightsByWinograd {
                    ConvWinograd.backwardWeight(dw.data, x.data, maskedDy.data, g)
                    XCTAssertEqual(bits(w.grad!), bits(dw), "conv2d backward-weight, relu \(relu)")
                }
            }
        }
    }

    /// Winograd's per-position GEMMs (`pd_wino43_gemm` and its 16-lane twin `pd_wino43_gemm_wide`,
    /// U in 6-row panels) against a plain double loop: rows not a multiple of 6, widths with
    /// 32-, 16- and 8-column parts, ld > width, and nothing written past the computed columns or
    /// the valid rows. The two kernels agree bit for bit.
    func testWinogradGemmMatchesPlainProduct() {
        for (rows, cols, count, ld) in [(13, 7, 21, 32), (6, 64, 16, 16), (64, 19, 344, 344), (1, 1, 3, 8), (7, 10, 53, 64)] {
            let mr = Int(PD_WINO_MR), panels = (rows + mr - 1) / mr, groups = (cols + 7) / 8
            let a = randomTensor([rows, cols], seed: UInt64(rows * 31 + cols), requiresGrad: false)
            let v = randomTensor([cols, ld], seed: UInt64(count), requiresGrad: false)
            // pd_wino43_weights's layout: per panel, groups of eight columns of mr rows each.
            let packed = Tensor.zeros([panels * groups * mr * 8])
            for r in 0..<rows {
                for c in 0..<cols { packed.data[((r / mr) * groups + c / 8) * mr * 8 + (r % mr) * 8 + c % 8] = a.data[r * cols + c] }
            }
            let m = Tensor(uninitialized: [rows + 1, ld]), wide = Tensor(uninitialized: [rows + 1, ld])
            m.fill(.nan)
            wide.fill(.nan)
            pd_wino43_gemm(packed.data, v.data, Int32(rows), Int32(cols), Int32(count), Int32(ld), m.data)
            pd_wino43_gemm_wide(packed.data, v.data, Int32(rows), Int32(cols), Int32(count), Int32(ld), wide.data)
            XCTAssertEqual(memcmp(m.data, wide.data, m.count * 4), 0, "\(rows)×\(cols)·\(count): the 16-lane GEMM differs")
            let width = (count + 7) / 8 * 8
            for r in 0..<rows {
                for t in 0..<width {
                    var exact = 0.0, magnitude = 0.0
                    for c in 0..<cols {
                        exact += Double(a.data[r * cols + c]) * Double(v.data[c * ld + t])
                        magnitude += abs(Double(a.data[r * cols + c]) * Double(v.data[c * ld + t]))
                    }
                    let bound = Double(cols + 1) * Double(Float.ulpOfOne) * magnitude
                    XCTAssertLessThanOrEqual(abs(Double(m.data[r * ld + t]) - exact), bound, "\(rows)×\(cols)·\(count): [\(r), \(t)]")
                }
                for t in width..<ld { XCTAssertTrue(m.data[r * ld + t].isNaN, "column \(t) of \(width) written") }
            }
            for t in 0..<ld { XCTAssertTrue(m.data[rows * ld + t].isNaN, "row \(rows) of \(rows) written") }
        }
    }

    /// The transforms' tile-row path (eight tiles of one tile row read and written as row segments
    /// with vector shuffles) gives the bits of the per-tile path, which each tile alone takes:
    /// interior and zero-padded segments, groups that straddle tile rows and images, a cropped
    /// last column of tiles, bias and ReLU; and with sign bits (a ReLU's backward), the bits of
    /// writing without them and masking after, on rows whose 32 bits straddle two words.
    func testWinogradTileRowPathMatchesSingleTiles() {
        // (images, channels, height, width, padding)
        for (n, c, h, w, pad) in [(1, 2, 12, 100, 1), (2, 3, 20, 40, 1), (1, 2, 13, 35, 0), (1, 1, 9, 64, 2), (2, 2, 8, 32, 1)] {
            let oh = h + 2 * pad - 2, ow = w + 2 * pad - 2
            let tilesH = (oh + 3) / 4, tilesW = (ow + 3) / 4, count = n * tilesH * tilesW, ld = (count + 7) / 8 * 8
            let label = "\(n)×\(c)×\(h)×\(w) pad \(pad)"
            let x = randomTensor([n, c, h, w], seed: UInt64(h * 1000 + w), requiresGrad: false)
            let grouped = Tensor(uninitialized: [36, c, ld]), single = Tensor(uninitialized: [36, c, ld])
            grouped.fill(.nan)
            single.fill(.nan)
            pd_wino43_input(x.data, Int32(c), Int32(h), Int32(w), Int32(pad), Int32(tilesH), Int32(tilesW), 0, Int32(count), 0, Int32(c),
                            grouped.data, Int32(ld))
            for t in 0..<count {
                pd_wino43_input(x.data, Int32(c), Int32(h), Int32(w), Int32(pad), Int32(tilesH), Int32(tilesW), t, 1, 0, Int32(c),
                                single.data + t, Int32(ld))
            }
            XCTAssertEqual(memcmp(grouped.data, single.data, grouped.count * 4), 0, "input transform \(label)")
            // Groups of sixteen, gathered eight at a time: their halves straddle tile rows and
            // images apart, and the last group may hold one or two halves.
            let wide = Tensor(uninitialized: [36, c, ld])
            wide.fill(.nan)
            pd_wino43_input_wide(x.data, Int32(c), Int32(h), Int32(w), Int32(pad), Int32(tilesH), Int32(tilesW), 0, Int32(count), 0,
                                 Int32(c), wide.data, Int32(ld))
            XCTAssertEqual(memcmp(wide.data, single.data, wide.count * 4), 0, "16-lane input transform \(label)")
            let m = randomTensor([36, c, ld], seed: UInt64(count), requiresGrad: false)
            let bias = randomTensor([c], seed: UInt64(c + 5), requiresGrad: false)
            // Sign bits over y for the masked writes (a ReLU's backward in the output transform).
            let signSource = randomTensor([n, c, oh, ow], seed: UInt64(count + 9), requiresGrad: false)
            let signs = PackedBits.positive(signSource.data, rows: n * c, entriesPerRow: oh * ow)
            var unmasked: [Int32: Tensor] = [:]
            for masked in [false, true] {
                for relu: Int32 in [0, 1] {
                    let yGrouped = Tensor(uninitialized: [n, c, oh, ow]), ySingle = Tensor(uninitialized: [n, c, oh, ow])
                    yGrouped.fill(.nan)
                    ySingle.fill(.nan)
                    let words = masked ? UnsafePointer(signs.words) : nil, rowWords = Int32(signs.wordsPerRow)
                    pd_wino43_output(m.data, Int32(c), Int32(ld), 0, Int32(count), Int32(oh), Int32(ow), Int32(tilesH), Int32(tilesW),
                                     bias.data, relu, words, rowWords, 0, Int32(c), yGrouped.data)
                    for t in 0..<count {
                        pd_wino43_output(m.data + t, Int32(c), Int32(ld), t, 1, Int32(oh), Int32(ow), Int32(tilesH), Int32(tilesW),
                                         bias.data, relu, words, rowWords, 0, Int32(c), ySingle.data)
                    }
                    XCTAssertFalse((0..<ySingle.count).contains { ySingle.data[$0].isNaN }, "output \(label): a pixel not written")
                    XCTAssertEqual(memcmp(yGrouped.data, ySingle.data, yGrouped.count * 4), 0,
                                   "output transform \(label) relu \(relu) masked \(masked)")
                    let yWide = Tensor(uninitialized: [n, c, oh, ow])
                    yWide.fill(.nan)
                    pd_wino43_output_wide(m.data, Int32(c), Int32(ld), 0, Int32(count), Int32(oh), Int32(ow), Int32(tilesH), Int32(tilesW),
                                          bias.data, relu, words, rowWords, 0, Int32(c), yWide.data)
                    XCTAssertEqual(memcmp(yWide.data, ySingle.data, yWide.count * 4), 0,
                                   "16-lane output transform \(label) relu \(relu) masked \(masked)")
                    if !masked { unmasked[relu] = yGrouped; continue }
                    let expected = unmasked[relu]!
                    signs.maskGradient(expected.data, expected.data)
                    XCTAssertEqual(memcmp(yGrouped.data, expected.data, yGrouped.count * 4), 0,
                                   "output transform \(label) relu \(relu): masked writes differ from writing then masking")
                }
            }
        }
    }

    /// A whole Winograd convolution gives the same bits with either GEMM width, whichever this
    /// process measured faster (`ConvWinograd.gemmLanes`).
    func testWinogradGemmWidthDoesNotChangeResults() {
        let g = ConvGeometry(n: 2, cIn: 24, h: 30, w: 27, cOut: 40, kh: 3, kw: 3, padding: (1, 1))
        let x = randomTensor([g.n, g.cIn, g.h, g.w], seed: 71, requiresGrad: false)
        let w = randomTensor([g.cOut, g.cIn, 3, 3], seed: 72, requiresGrad: false)
        let b = randomTensor([g.cOut], seed: 73, requiresGrad: false)
        let chosen = ConvWinograd.gemmLanes
        defer { ConvWinograd.gemmLanes = chosen }
        let outputs = [ConvWinograd.GemmLanes.eight, .sixteen].map { lanes -> Tensor in
            ConvWinograd.gemmLanes = lanes
            let y = Tensor(uninitialized: [g.n, g.cOut, g.outH, g.outW])
            ConvWinograd.forward(y.data, x.data, w.data, b.data, g, relu: true)
            return y
        }
        XCTAssertEqual(memcmp(outputs[0].data, outputs[1].data, outputs[0].count * 4), 0)
        if pd_cpu_has_avx512f() == 0 && ProcessInfo.processInfo.environment["PERCEP_WINOGRAD_GEMM"] == nil {
            XCTAssertEqual(chosen, .eight, "without AVX-512 the 8-lane GEMM is used untimed")
        }
    }

    /// A whole Winograd convolution gives the same bits with either transform width, whichever
    /// this process measured faster (`ConvWinograd.transformLanes`): forward with bias and ReLU
    /// (several inputs sharing blocks, maps whose tile rows are not a multiple of 16 wide, both
    /// block schedules), backward-data through a ReLU's sign bits, and the weight gradient (its
    /// input and output-gradient transforms over tile groups, its last transform over groups of
    /// input channels, 40 = 16 + 16 + 8).
    func testWinogradTransformWidthDoesNotChangeResults() {
        let chosen = ConvWinograd.transformLanes, budget = ConvWinograd.threadBlockBudget
        defer { ConvWinograd.transformLanes = chosen; ConvWinograd.threadBlockBudget = budget }
        // Tiles per input: 98 (7 × 7 per image; groups of 16 end in a group of 2) and 270 (15 × 18,
        // ending in 14: one whole half and 6), in blocks of 64 per thread or one shared block.
        for (g, blockKB) in [(ConvGeometry(n: 2, cIn: 40, h: 26, w: 27, cOut: 24, kh: 3, kw: 3, padding: (1, 1)), 384),
                             (ConvGeometry(n: 1, cIn: 16, h: 58, w: 70, cOut: 16, kh: 3, kw: 3, padding: (1, 1)), 384),
                             (ConvGeometry(n: 1, cIn: 16, h: 58, w: 70, cOut: 16, kh: 3, kw: 3, padding: (1, 1)), 0)] {
            ConvWinograd.threadBlockBudget = blockKB << 10
            let seed = UInt64(g.w * 10 + blockKB)
            let xs = (0..<2).map { randomTensor([g.n, g.cIn, g.h, g.w], seed: seed + UInt64($0), requiresGrad: false) }
            let w = randomTensor([g.cOut, g.cIn, 3, 3], seed: seed + 2, requiresGrad: false)
            let b = randomTensor([g.cOut], seed: seed + 3, requiresGrad: false)
            let dy = randomTensor([g.n, g.cOut, g.outH, g.outW], seed: seed + 4, requiresGrad: false)
            let signs = PackedBits.positive(xs[1].data, rows: g.n * g.cIn, entriesPerRow: g.h * g.w)
            let results = [ConvWinograd.TransformLanes.eight, .sixteen].map { lanes -> [Tensor] in
                ConvWinograd.transformLanes = lanes
                let ys = xs.map { _ in Tensor(uninitialized: [g.n, g.cOut, g.outH, g.outW]) }
                ConvWinograd.forward(zip(ys, xs).map { (y: $0.data, x: UnsafePointer($1.data)) }, w.data, b.data, g, relu: true)
                let dx = Tensor(uninitialized: xs[0].shape), dw = Tensor(uninitialized: w.shape)
                ConvWinograd.backwardData(dx.data, dy.data, w.data, g, mask: signs)
                ConvWinograd.backwardWeight(dw.data, xs[0].data, dy.data, g)
                return ys + [dx, dw]
            }
            for (name, (a, b)) in zip(["forward 1", "forward 2", "backward data", "backward weight"], zip(results[0], results[1])) {
                XCTAssertEqual(memcmp(a.data, b.data, a.count * 4), 0, "\(name) of \(g), thread blocks \(blockKB) KiB")
            }
        }
    }

    /// oneDNN's passes compute in full float32 even when its process default allows bfloat16
    /// operands (what ONEDNN_DEFAULT_FPMATH_MODE=BF16 sets), which CPUs with bf16 instructions
    /// (Zen 4/5, Sapphire Rapids) would use.
    func testDNNLPassesStayStrictFloat32() throws {
        XCTAssertEqual(pd_dnnl_set_default_fpmath_bf16(1), 0)
        defer { XCTAssertEqual(pd_dnnl_set_default_fpmath_bf16(0), 0) }
        for relu in [false, true] {
            var geom = pd_conv_geometry(n: 1, c_in: 8, h: 9, w: 9, c_out: 8, kh: 3, kw: 3, stride_h: 1, stride_w: 1,
                                        pad_h: 1, pad_w: 1, dil_h: 1, dil_w: 1, groups: 1, out_h: 9, out_w: 9)
            var err = [CChar](repeating: 0, count: 512)
            let h = try XCTUnwrap(pd_conv_create(&geom, 1, relu ? 1 : 0, &err, err.count), String(cString: err))
            defer { pd_conv_destroy(h) }
            for pass in ConvPass.allCases {
                XCTAssertEqual(pd_conv_is_strict_f32(h, Int32(pass.rawValue)), 1, "\(pass) relu \(relu): \(String(cString: pd_conv_last_error(h)))")
            }
        }
    }

    /// The weight transform made a few panels at a time into a small buffer (what each thread
    /// does for a large U) holds the same bits as the same panels of the whole U, for both
    /// directions and with padding rows.
    func testWinogradWeightChunksEqualWholeTransform() {
        for (kOut, cIn) in [(20, 16), (13, 24), (16, 12)] {
            let w = randomTensor([kOut, cIn, 3, 3], seed: UInt64(kOut * 7 + cIn), requiresGrad: false)
            for flip: Int32 in [0, 1] {
                let rows = flip == 1 ? cIn : kOut, cols = flip == 1 ? kOut : cIn
                let panels = (rows + Int(PD_WINO_MR) - 1) / Int(PD_WINO_MR), panelFloats = Int(PD_WINO_MR) * ((cols + 7) / 8 * 8)
                let whole = Storage(count: 36 * panels * panelFloats)
                pd_wino43_weights(w.data, Int32(kOut), Int32(cIn), flip, 0, Int32(panels), Int32(panels), whole.base)
                for first in 0..<panels {
                    let count = min(2, panels - first)
                    let chunk = Storage(count: 36 * count * panelFloats)
                    pd_wino43_weights(w.data, Int32(kOut), Int32(cIn), flip, Int32(first), Int32(first + count), Int32(count), chunk.base)
                    for p in 0..<36 {
                        XCTAssertEqual(memcmp(chunk.base + p * count * panelFloats, whole.base + (p * panels + first) * panelFloats,
                                              count * panelFloats * 4), 0, "\(kOut)×\(cIn) flip \(flip) panels \(first)..<\(first + count) position \(p)")
                    }
                }
            }
        }
    }

    /// The weight transform with eight columns per vector (kernels loaded as rows of taps and
    /// transposed) gives the bits of the one-kernel-at-a-time reference, both directions: column
    /// counts with and without a partial group of eight, row counts with a partial last panel,
    /// a range of panels written into a smaller buffer.
    func testWinogradWeightTransformMatchesReference() {
        for (kOut, cIn) in [(16, 16), (13, 24), (20, 19), (7, 5), (64, 40)] {
            let w = randomTensor([kOut, cIn, 3, 3], seed: UInt64(kOut * 13 + cIn), requiresGrad: false)
            for flip: Int32 in [0, 1] {
                let rows = flip == 1 ? cIn : kOut, cols = flip == 1 ? kOut : cIn
                let panels = (rows + Int(PD_WINO_MR) - 1) / Int(PD_WINO_MR), panelFloats = Int(PD_WINO_MR) * ((cols + 7) / 8 * 8)
                for range in [0..<panels, (panels / 2)..<panels] {
                    let fast = Storage(count: 36 * range.count * panelFloats), reference = Storage(count: fast.count)
                    fast.base.update(repeating: .nan, count: fast.count)
                    reference.base.update(repeating: .nan, count: fast.count)
                    pd_wino43_weights(w.data, Int32(kOut), Int32(cIn), flip, Int32(range.lowerBound), Int32(range.upperBound),
                                      Int32(range.count), fast.base)
                    pd_wino43_weights_reference(w.data, Int32(kOut), Int32(cIn), flip, Int32(range.lowerBound), Int32(range.upperBound),
                                                Int32(range.count), reference.base)
                    XCTAssertFalse((0..<fast.count).contains { reference.base[$0].isNaN }, "\(kOut)×\(cIn) flip \(flip): U not all written")
                    XCTAssertEqual(memcmp(fast.base, reference.base, fast.count * 4), 0, "\(kOut)×\(cIn) flip \(flip) panels \(range)")
                }
            }
        }
    }

    /// The per-thread tile blocks (`threadBlockBudget`) give the bits of the shared blocks: each
    /// tile's transforms and products are the same whichever thread runs them and whichever
    /// block holds them. Two inputs, so blocks span both; 16-tile blocks, the last one short;
    /// forward with bias and ReLU, and backward-data.
    func testWinogradThreadBlocksMatchSharedBlocks() {
        let saved = ConvWinograd.threadBlockBudget
        defer { ConvWinograd.threadBlockBudget = saved }
        let g = ConvGeometry(n: 2, cIn: 24, h: 38, w: 41, cOut: 20, kh: 3, kw: 3, padding: (1, 1))  // 10×11 tiles per image
        let w = randomTensor([g.cOut, g.cIn, 3, 3], seed: 71, requiresGrad: false)
        let b = randomTensor([g.cOut], seed: 72, requiresGrad: false)
        let xs = (0..<2).map { randomTensor([g.n, g.cIn, g.h, g.w], seed: 73 + UInt64($0), requiresGrad: false) }
        let dy = randomTensor([g.n, g.cOut, g.outH, g.outW], seed: 75, requiresGrad: false)
        func run(budget: Int) -> [Tensor] {
            ConvWinograd.threadBlockBudget = budget
            let ys = xs.map { _ in Tensor(uninitialized: [g.n, g.cOut, g.outH, g.outW]) }
            let dx = Tensor(uninitialized: xs[0].shape)
            for t in ys + [dx] { t.fill(.nan) }
            ConvWinograd.forward(zip(ys, xs).map { (y: $0.data, x: UnsafePointer($1.data)) }, w.data, b.data, g, relu: true)
            ConvWinograd.backwardData(dx.data, dy.data, w.data, g)
            return ys + [dx]
        }
        // 1 byte: the narrowest per-thread block (16 tiles); 0: every block shared by the threads.
        let perThread = run(budget: 1), shared = run(budget: 0)
        for (name, (a, b)) in zip(["forward 0", "forward 1", "backward-data"], zip(perThread, shared)) {
            XCTAssertFalse((0..<a.count).contains { a.data[$0].isNaN }, "\(name): an element was never written")
            XCTAssertEqual(memcmp(a.data, b.data, a.count * 4), 0, "\(name): per-thread blocks differ from shared blocks")
        }
    }

    /// A convolution over bands of output rows whose input is filled band by band
    /// (`forwardInRowBands`) gives the whole convolution's output: bands of one row and of a
    /// few rows with a shorter last one, kernels 1, 3 and 5 (row padding 0, 1, 2 made of explicit
    /// zero rows), bias and ReLU; the fill is asked only for rows inside the image.
    func testConvolutionInRowBandsMatchesWhole() {
        let saved = ConvDispatch.rowBandBudget
        defer { ConvDispatch.rowBandBudget = saved }
        for (i, (k, pad)) in [(1, 0), (3, 1), (5, 2)].enumerated() {
            let g = ConvGeometry(n: 2, cIn: 10, h: 17, w: 13, cOut: 9, kh: k, kw: k, padding: (pad, pad))
            let x = randomTensor([g.n, g.cIn, g.h, g.w], seed: 80 + UInt64(i), requiresGrad: false)
            let w = randomTensor([g.cOut, g.cIn, k, k], seed: 90 + UInt64(i), requiresGrad: false)
            let b = randomTensor([g.cOut], seed: 95, requiresGrad: false)
            for relu in [false, true] {
                let whole = Tensor(uninitialized: [g.n, g.cOut, g.outH, g.outW])
                ConvDispatch.forward(whole.data, x.data, w.data, b.data, g, relu: relu)
                let bytesPerRow = (2 * g.cIn * g.w + g.cOut * g.outW) * 4
                for budget in [1, bytesPerRow * (5 + k - 1)] {
                    ConvDispatch.rowBandBudget = budget
                    let banded = Tensor(uninitialized: whole.shape)
                    banded.fill(.nan)
                    ConvDispatch.forwardInRowBands(banded.data, w.data, b.data, g, relu: relu) { band, channelStride, image, rows in
                        XCTAssertTrue(rows.lowerBound >= 0 && rows.upperBound <= g.h, "rows \(rows) asked of \(g.h)")
                        for c in 0..<g.cIn {
                            (band + c * channelStride).update(from: x.data + ((image * g.cIn + c) * g.h + rows.lowerBound) * g.w,
                                                              count: rows.count * g.w)
                        }
                    }
                    var scale: Float = 0
                    for j in 0..<whole.count { scale = max(scale, abs(whole.data[j])) }
                    // "Not within", so an element never written (NaN) counts as off.
                    let off = (0..<whole.count).filter { !(abs(banded.data[$0] - whole.data[$0]) <= 1e-6 * scale) }.count
                    XCTAssertEqual(off, 0, "kernel \(k) relu \(relu) budget \(budget): \(off) elements differ")
                }
            }
        }
    }

    /// Several inputs through one weight transform (the loss network's target and prediction in
    /// lockstep): each output as the single-input call's, including where one tile block holds
    /// tiles of two inputs and where an input ends inside a group of 8 tiles.
    func testWinogradSharedTransformMatchesSingleCalls() {
        let shapes = [
            ConvGeometry(n: 1, cIn: 3, h: 9, w: 7, cOut: 5, kh: 3, kw: 3, padding: (1, 1)),     // 6 tiles per input
            ConvGeometry(n: 2, cIn: 64, h: 33, w: 30, cOut: 72, kh: 3, kw: 3, padding: (1, 1)), // blocks span both inputs
        ]
        for (i, g) in shapes.enumerated() {
            let seed = UInt64(60 + i)
            let w = randomTensor([g.cOut, g.cIn, 3, 3], seed: seed, requiresGrad: false)
            let b = randomTensor([g.cOut], seed: 100 + seed, requiresGrad: false)
            let xs = (0..<3).map { randomTensor([g.n, g.cIn, g.h, g.w], seed: 200 + seed + UInt64($0), requiresGrad: false) }
            let shared = xs.map { _ in Tensor(uninitialized: [g.n, g.cOut, g.outH, g.outW]) }
            for y in shared { y.fill(.nan) }
            ConvWinograd.forward(zip(shared, xs).map { (y: $0.data, x: UnsafePointer($1.data)) }, w.data, b.data, g, relu: true)
            for (x, y) in zip(xs, shared) {
                let single = Tensor(uninitialized: y.shape)
                ConvWinograd.forward(single.data, x.data, w.data, b.data, g, relu: true)
                var scale: Float = 0
                for k in 0..<y.count { scale = max(scale, abs(single.data[k])) }
                // Written as "not within" so a NaN (an element never written) counts as off.
                let off = (0..<y.count).filter { !(abs(y.data[$0] - single.data[$0]) <= 1e-5 * scale) }.count
                XCTAssertEqual(off, 0, "\(g): \(off) elements differ from the single-input call")
            }
        }
    }

    func testTunedDecisionsPersistPerMachine() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("percep-tune-\(UUID().uuidString)")
        let file = dir.appendingPathComponent("conv-dispatch.json").path
        defer { ConvDispatch.setMeasuring(all: false, ties: true, cacheFile: ConvTuneCache.path); try? FileManager.default.removeItem(at: dir) }
        let g = ConvGeometry(n: 1, cIn: 8, h: 12, w: 12, cOut: 8, kh: 3, kw: 3, padding: (1, 1))
        let machine = ConvTuneCache.machineKey

        // Measured once, written under this machine's key.
        ConvDispatch.setMeasuring(all: true, ties: true, cacheFile: file)
        let measured = ConvDispatch.algorithm(for: g, pass: .forward)
        XCTAssertEqual(ConvTuneCache.load(path: file, machine: machine)[ConvTuneCache.key(g, .forward)], measured.rawValue)

        // A later process takes a stored decision as it is, without measuring: plant the other one.
        let other: ConvAlgorithm = measured == .dnnl ? .im2col : .dnnl
        var table = ConvTuneCache.load(path: file, machine: machine)
        table[ConvTuneCache.key(g, .forward)] = other.rawValue
        ConvTuneCache.store(table, path: file, machine: machine)
        ConvTuneCache.store([ConvTuneCache.key(g, .backwardData): "im2col"], path: file, machine: "another CPU | other libraries")
        ConvDispatch.setMeasuring(all: true, ties: true, cacheFile: file)
        XCTAssertEqual(ConvDispatch.algorithm(for: g, pass: .forward), other)
        // Another machine's tables stay in the file but are not this machine's decisions.
        _ = ConvDispatch.algorithm(for: g, pass: .backwardData)
        XCTAssertEqual(ConvTuneCache.load(path: file, machine: "another CPU | other libraries").count, 1)
        XCTAssertNotNil(ConvTuneCache.load(path: file, machine: machine)[ConvTuneCache.key(g, .backwardData)])

        // A damaged file is ignored and replaced, never fatal.
        try "{ not json".write(toFile: file, atomically: true, encoding: .utf8)
        ConvDispatch.setMeasuring(all: true, ties: true, cacheFile: file)
        _ = ConvDispatch.algorithm(for: g, pass: .backwardWeight)
        XCTAssertEqual(ConvTuneCache.load(path: file, machine: machine).count, 1)
        checkOne(.dnnl, g, seed: 3)   // forcing still overrides
    }

    /// By default only the rule's near-ties (its im2col choices for backward-weight where
    /// oneDNN's kernels are no wider than OpenBLAS's) are timed, once per machine; every other
    /// pass is decided by the rule without timing, and `PERCEP_CONV=rule` times nothing.
    func testOnlyNearTiesAreTimedByDefault() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("percep-ties-\(UUID().uuidString)")
        let file = dir.appendingPathComponent("conv-dispatch.json").path
        defer { ConvDispatch.setMeasuring(all: false, ties: true, cacheFile: ConvTuneCache.path); try? FileManager.default.removeItem(at: dir) }
        let machine = ConvTuneCache.machineKey
        // 256 input channels: at equal widths a timed near-tie; with AVX-512 oneDNN, decided.
        let g = ConvGeometry(n: 1, cIn: 256, h: 6, w: 6, cOut: 16, kh: 3, kw: 3, padding: (1, 1))
        let tie = ConvDispatch.ruleMeasures(g, pass: .backwardWeight)
        let wider = ConvDispatch.dnnlImplementation(g, pass: .backwardWeight)
            .flatMap { ConvDispatch.vectorBits(ofImplementation: $0) }.map { $0 > Gemm.vectorBits } ?? false
        XCTAssertEqual(tie, !wider, "backward-weight is a near-tie exactly when oneDNN's kernel is no wider than OpenBLAS's")
        XCTAssertFalse(ConvDispatch.ruleMeasures(g, pass: .forward))

        ConvDispatch.setMeasuring(all: false, ties: true, cacheFile: file)
        let forward = ConvDispatch.algorithm(for: g, pass: .forward)
        XCTAssertEqual(forward, ConvDispatch.ruleAlgorithm(for: g, pass: .forward))
        let weight = ConvDispatch.algorithm(for: g, pass: .backwardWeight)
        let stored = ConvTuneCache.load(path: file, machine: machine)
        XCTAssertNil(stored[ConvTuneCache.key(g, .forward)], "a decided pass must not be timed")
        if tie {
            XCTAssertEqual(stored[ConvTuneCache.key(g, .backwardWeight)], weight.rawValue, "the near-tie is timed and remembered")
        } else {
            XCTAssertTrue(stored.isEmpty)
            XCTAssertEqual(weight, ConvDispatch.ruleAlgorithm(for: g, pass: .backwardWeight))
        }

        // Without timing, the rule's fallback runs and nothing is written.
        try? FileManager.default.removeItem(atPath: file)
        ConvDispatch.setMeasuring(all: false, ties: false, cacheFile: file)
        XCTAssertEqual(ConvDispatch.algorithm(for: g, pass: .backwardWeight), ConvDispatch.ruleAlgorithm(for: g, pass: .backwardWeight))
        XCTAssertFalse(FileManager.default.fileExists(atPath: file))
    }

    /// Where Winograd's passes are timed (by default where oneDNN's kernels are wider than AVX2;
    /// here through timing everything, as `PERCEP_CONV=tune` does), each pass its rule takes is
    /// timed once against the direct algorithm, remembered per machine on disk, and run by the
    /// winner; a stored decision is taken as it is, `withWinogradByRule` restores the rule, and a
    /// pass off the rule is never timed.
    func testWinogradIsTimedAgainstTheDirectAlgorithmWhereAsked() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("percep-wino-\(UUID().uuidString)")
        let file = dir.appendingPathComponent("conv-dispatch.json").path
        defer { ConvDispatch.setMeasuring(all: false, ties: true, cacheFile: ConvTuneCache.path); try? FileManager.default.removeItem(at: dir) }
        let machine = ConvTuneCache.machineKey
        ConvDispatch.setMeasuring(all: false, ties: true, cacheFile: file)
        let requested = ProcessInfo.processInfo.environment["PERCEP_WINOGRAD"] == "tune"
        XCTAssertEqual(ConvDispatch.winogradIsTimed, requested || ConvDispatch.dnnlVectorBits > 256,
                       "timed by default exactly where oneDNN is wider than AVX2")

        let g = ConvGeometry(n: 1, cIn: 16, h: 16, w: 16, cOut: 24, kh: 3, kw: 3, padding: (1, 1))   // 16 tiles
        XCTAssertTrue(ConvDispatch.winogradRule(g, pass: .forward))
        ConvDispatch.setMeasuring(all: true, ties: true, cacheFile: file)
        XCTAssertTrue(ConvDispatch.winogradIsTimed)
        let measured = ConvDispatch.usesWinograd(g, pass: .forward)
        let key = ConvTuneCache.winogradKey(g, .forward)
        XCTAssertEqual(ConvTuneCache.load(path: file, machine: machine)[key], measured ? "winograd" : "direct")

        // Each stored choice is taken without timing, and the forward runs it (the two algorithms
        // round differently, so the bits tell which ran).
        let x = randomTensor([g.n, g.cIn, g.h, g.w], seed: 71), w = randomTensor([g.cOut, g.cIn, 3, 3], seed: 72)
        let winograd = Tensor(uninitialized: [g.n, g.cOut, g.outH, g.outW]), direct = Tensor(uninitialized: winograd.shape)
        ConvWinograd.forward(winograd.data, x.data, w.data, nil, g)
        ConvDispatch.directForward(direct.data, x.data, w.data, nil, g)
        func bits(_ t: Tensor) -> [UInt32] { (0..<t.count).map { t.data[$0].bitPattern } }
        XCTAssertNotEqual(bits(winograd), bits(direct))
        for planted in [!measured, measured] {
            var table = ConvTuneCache.load(path: file, machine: machine)
            table[key] = planted ? "winograd" : "direct"
            ConvTuneCache.store(table, path: file, machine: machine)
            ConvDispatch.setMeasuring(all: true, ties: true, cacheFile: file)
            XCTAssertEqual(ConvDispatch.usesWinograd(g, pass: .forward), planted)
            let y = Tensor(uninitialized: winograd.shape)
            ConvDispatch.forward(y.data, x.data, w.data, nil, g)
            XCTAssertEqual(bits(y), bits(planted ? winograd : direct), "planted \(planted ? "winograd" : "direct")")
            if !planted { ConvDispatch.withWinogradByRule { XCTAssertTrue(ConvDispatch.usesWinograd(g, pass: .forward)) } }
        }

        // Inputs that share one weight transform are timed together; a pass off the rule never is.
        _ = ConvDispatch.usesWinograd(g, pass: .backwardData, inputs: 2)
        var both = g
        both.n = 2
        XCTAssertNotNil(ConvTuneCache.load(path: file, machine: machine)[ConvTuneCache.winogradKey(both, .backwardData)])
        let narrow = ConvGeometry(n: 1, cIn: 8, h: 16, w: 16, cOut: 24, kh: 3, kw: 3, padding: (1, 1))
        XCTAssertFalse(ConvDispatch.usesWinograd(narrow, pass: .forward))
        XCTAssertNil(ConvTuneCache.load(path: file, machine: machine)[ConvTuneCache.winogradKey(narrow, .forward)])

        // F(2×2, 3×3) for the switching forward: its own decision under its own key, run as stored.
        let two = Tensor(uninitialized: winograd.shape)
        ConvWinograd.forward(two.data, x.data, w.data, nil, g, tile: .two)
        XCTAssertNotEqual(bits(two), bits(direct))
        let measuredTwo = ConvDispatch.usesWinogradTwo(g)
        let keyTwo = ConvTuneCache.winogradKey(g, .forward, tile: .two)
        XCTAssertNotEqual(keyTwo, key)
        XCTAssertEqual(ConvTuneCache.load(path: file, machine: machine)[keyTwo], measuredTwo ? "winograd" : "direct")
        for planted in [!measuredTwo, measuredTwo] {
            var table = ConvTuneCache.load(path: file, machine: machine)
            table[keyTwo] = planted ? "winograd" : "direct"
            ConvTuneCache.store(table, path: file, machine: machine)
            ConvDispatch.setMeasuring(all: true, ties: true, cacheFile: file)
            let y = Tensor(uninitialized: winograd.shape)
            ConvDispatch.switchingForward(y.data, x.data, w.data, nil, g)
            XCTAssertEqual(bits(y), bits(planted ? two : direct), "F(2×2, 3×3) planted \(planted ? "winograd" : "direct")")
        }
        XCTAssertFalse(ConvDispatch.usesWinogradTwo(narrow))
        XCTAssertNil(ConvTuneCache.load(path: file, machine: machine)[ConvTuneCache.winogradKey(narrow, .forward, tile: .two)])
    }

    func testFMAPeakProbesTheWidestVectors() throws {
        // The probe picks its ISA at run time: AVX-512 where the CPU has it, else AVX2 + FMA.
        let flags = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let words = Set(flags.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).map(String.init))
        let (gflops, bits) = FMAPeak.measure(threads: 1, repeats: 1)
        XCTAssertEqual(bits, words.contains("avx512f") ? 512 : (words.contains("avx2") && words.contains("fma") ? 256 : 128))
        // One core's FMA rate is at least one vector FMA per ~2 GHz cycle and at most a few per cycle.
        XCTAssertGreaterThan(gflops, Double(bits / 32) * 2 * 1.0, "\(gflops) GFLOP/s is below one FMA per nanosecond")
        XCTAssertLessThan(gflops, Double(bits / 32) * 2 * 4 * 6.0, "\(gflops) GFLOP/s is above 4 FMAs per cycle at 6 GHz")
    }

    func testSgemmMatchesReference() {
        for (m, n, k, ta, tb) in [(5, 7, 3, false, false), (4, 6, 9, true, false), (8, 3, 5, false, true), (6, 6, 6, true, true)] {
            let a = randomTensor([m * k], seed: 1, requiresGrad: false), b = randomTensor([k * n], seed: 2, requiresGrad: false)
            let c = randomTensor([m * n], seed: 3, requiresGrad: false), cRef = c.copy()
            let lda = ta ? m : k, ldb = tb ? k : n
            Gemm.sgemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.7, a: a.data, lda: lda, b: b.data, ldb: ldb, beta: 0.3, c: c.data, ldc: n)
            Gemm.sgemmNaive(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.7, a: a.data, lda: lda, b: b.data, ldb: ldb, beta: 0.3, c: cRef.data, ldc: n)
            assertClose(c, cRef, "sgemm \(m)x\(n)x\(k) \(ta) \(tb)", rtol: 1e-5)
        }
    }

    /// The dispatch rule follows the measurements of docs/benchmarks.md in terms of what the
    /// libraries report on the machine at hand: im2col + OpenBLAS where oneDNN picks its GEMM
    /// fallback and OpenBLAS is at least as wide; oneDNN wherever its JIT kernel is wider than
    /// OpenBLAS's (AVX-512 beside `OPENBLAS_CORETYPE=Haswell`); at equal widths, the AVX2
    /// measurements (im2col for backward-weight of 3×3 layers with ≥ 256 input channels or few
    /// channels off oneDNN's 8-block). The suite runs on both kinds (launch/test.sh repeats the
    /// kernel tests with oneDNN held to AVX2 on AVX-512 machines), so each branch is checked.
    func testDispatchRuleFollowsTheMeasurements() {
        func g(_ cin: Int, _ cout: Int, _ size: Int, k: Int = 3, s: Int = 1, d: Int = 1) -> ConvGeometry {
            ConvGeometry(n: 2, cIn: cin, h: size, w: size, cOut: cout, kh: k, kw: k, stride: (s, s),
                         padding: (d * (k / 2), d * (k / 2)), dilation: (d, d))
        }
        // What the AVX2 measurements chose per pass (forward, backward-data, backward-weight)
        // where oneDNN runs a JIT kernel no wider than OpenBLAS's.
        let equalWidth: [(ConvGeometry, [ConvAlgorithm])] = [
            (g(64, 64, 56), [.dnnl, .dnnl, .dnnl]),
            (g(128, 128, 28), [.dnnl, .dnnl, .dnnl]),
            (g(256, 256, 14), [.dnnl, .dnnl, .im2col]),
            (g(512, 512, 7), [.dnnl, .dnnl, .im2col]),
            (g(19, 64, 32), [.dnnl, .dnnl, .im2col]),
            (g(256, 64, 28, k: 1), [.dnnl, .dnnl, .dnnl]),
            (g(3, 64, 224, k: 7, s: 2), [.dnnl, .dnnl, .dnnl]),
            (g(512, 512, 64, d: 4), [.dnnl, .dnnl, .im2col]),
            (g(256, 256, 64, d: 2), [.dnnl, .dnnl, .im2col]),
        ]
        var seen = Set<String>()
        for (geometry, measured) in equalWidth {
            for pass in ConvPass.allCases {
                guard let impl = ConvDispatch.dnnlImplementation(geometry, pass: pass) else {
                    XCTFail("oneDNN rejects \(geometry) \(pass)"); continue
                }
                let expected: ConvAlgorithm
                if ConvDispatch.isGemmFallback(impl) {
                    seen.insert("gemm fallback")
                    expected = Gemm.vectorBits >= ConvDispatch.dnnlVectorBits ? .im2col : .dnnl
                } else if let bits = ConvDispatch.vectorBits(ofImplementation: impl) {
                    seen.insert("\(bits)-bit JIT")
                    expected = bits > Gemm.vectorBits ? .dnnl : measured[pass.rawValue]
                } else {
                    XCTFail("\(geometry) \(pass): oneDNN's implementation \(impl) names no ISA"); continue
                }
                XCTAssertEqual(ConvDispatch.ruleAlgorithm(for: geometry, pass: pass), expected,
                               "\(geometry) \(pass): oneDNN picked \(impl), OpenBLAS runs \(Gemm.kernelFamily)")
                // Timed on the machine: the rule's im2col choices for backward-weight of a JIT
                // kernel no wider than OpenBLAS's.
                let tie = pass == .backwardWeight && !ConvDispatch.isGemmFallback(impl)
                    && (ConvDispatch.vectorBits(ofImplementation: impl) ?? 0) <= Gemm.vectorBits && expected == .im2col
                XCTAssertEqual(ConvDispatch.ruleMeasures(geometry, pass: pass), tie, "\(geometry) \(pass): \(impl)")
            }
        }
        // The implementation strings parse into the widths the rule compares.
        XCTAssertEqual(ConvDispatch.vectorBits(ofImplementation: "jit:avx512_core"), 512)
        XCTAssertEqual(ConvDispatch.vectorBits(ofImplementation: "jit_1x1:avx2"), 256)
        XCTAssertNil(ConvDispatch.vectorBits(ofImplementation: "x64:gemm:jit"))
        XCTAssertTrue(ConvDispatch.isGemmFallback("x64:gemm:jit"))
        XCTAssertFalse(ConvDispatch.isGemmFallback("brgconv:avx512_core"))
        XCTAssertTrue([128, 256, 512].contains(ConvDispatch.dnnlVectorBits), "oneDNN's ISA: \(ConvDispatch.dnnlVectorBits) bits")
        if let pinned = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"], !pinned.isEmpty {
            XCTAssertEqual(Gemm.kernelFamily.lowercased(), pinned.lowercased(), "OpenBLAS follows OPENBLAS_CORETYPE")
        }
        print("dispatch rule checked with oneDNN at \(ConvDispatch.dnnlVectorBits) bits, OpenBLAS \(Gemm.kernelFamily) (\(Gemm.vectorBits) bits): \(seen.sorted())")
    }

    func testInvalidGeometryIsReported() {
        XCTAssertNotNil(ConvGeometry(n: 1, cIn: 3, h: 2, w: 2, cOut: 4, kh: 5, kw: 5).problem)
        XCTAssertNotNil(ConvGeometry(n: 1, cIn: 3, h: 8, w: 8, cOut: 4, kh: 3, kw: 3, groups: 2).problem)
    }
}
