import XCTest
import TestSupport
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
            if excess > worst { worst = excess; at = i }
        }
        XCTAssertEqual(worst, 0, "\(what): element \(at) is \(a.data[at]), reference \(b.data[at])")
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
            assertClose(y, yRef, "\(algorithm) forward \(g)")
            let dxRef = Tensor(uninitialized: x.shape), dwRef = Tensor(uninitialized: w.shape), dbRef = Tensor(uninitialized: b.shape)
            ConvIm2col.backwardNaive(dxRef.data, dwRef.data, dbRef.data, x.data, w.data, dy.data, g)
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
            assertClose(dx, dxRef, "\(algorithm) backward data \(g)")
            assertClose(dw, dwRef, "\(algorithm) backward weight \(g)")
            assertClose(db, dbRef, "\(algorithm) backward bias \(g)")
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

    /// The dispatch rule sends to im2col exactly the passes docs/benchmarks.md measured faster
    /// there: wherever oneDNN picks its own GEMM fallback, and backward-weight of 3×3 layers with
    /// ≥ 256 input channels or few channels off oneDNN's 8-block; oneDNN everywhere else.
    func testDispatchRuleFollowsTheMeasurements() {
        func g(_ cin: Int, _ cout: Int, _ size: Int, k: Int = 3, s: Int = 1, d: Int = 1) -> ConvGeometry {
            ConvGeometry(n: 2, cIn: cin, h: size, w: size, cOut: cout, kh: k, kw: k, stride: (s, s),
                         padding: (d * (k / 2), d * (k / 2)), dilation: (d, d))
        }
        let cases: [(ConvGeometry, [ConvAlgorithm])] = [
            (g(64, 64, 56), [.dnnl, .dnnl, .dnnl]),
            (g(128, 128, 28), [.dnnl, .dnnl, .dnnl]),
            (g(256, 256, 14), [.dnnl, .dnnl, .im2col]),
            (g(512, 512, 7), [.dnnl, .dnnl, .im2col]),
            (g(19, 64, 32), [.dnnl, .dnnl, .im2col]),
            (g(256, 64, 28, k: 1), [.dnnl, .dnnl, .dnnl]),
        ]
        for (geometry, expected) in cases {
            XCTAssertEqual(ConvPass.allCases.map { ConvDispatch.ruleAlgorithm(for: geometry, pass: $0) }, expected, "\(geometry)")
        }
        // Where oneDNN itself falls back to GEMM, the project's im2col + OpenBLAS runs instead.
        for geometry in [g(3, 64, 224, k: 7, s: 2), g(512, 512, 64, d: 4), g(256, 256, 64, d: 2)] {
            for pass in ConvPass.allCases {
                let impl = ConvDispatch.dnnlImplementation(geometry, pass: pass) ?? "none"
                if impl.split(separator: ":").contains("gemm") {
                    XCTAssertEqual(ConvDispatch.ruleAlgorithm(for: geometry, pass: pass), .im2col, "\(geometry) \(pass): oneDNN picked \(impl)")
                }
            }
        }
        XCTAssertEqual(ConvDispatch.dnnlImplementation(g(3, 64, 224, k: 7, s: 2), pass: .backwardData).map { $0.contains("gemm") }, true,
                       "the 7×7/2 stem's backward-data is oneDNN's GEMM fallback (the case the rule was measured on)")
    }

    func testInvalidGeometryIsReported() {
        XCTAssertNotNil(ConvGeometry(n: 1, cIn: 3, h: 2, w: 2, cOut: 4, kh: 5, kw: 5).problem)
        XCTAssertNotNil(ConvGeometry(n: 1, cIn: 3, h: 8, w: 8, cOut: 4, kh: 3, kw: 3, groups: 2).problem)
    }
}
