import Foundation
import CKernels

/// Winograd F(4×4, 3×3) for stride-1, undilated, ungrouped 3×3 convolutions: each 4×4 output
/// tile costs 36 multiplies per channel pair instead of 144.
///
/// Per block of tiles: the input transform (`pd_wino43_input`, CKernels) gives V[36][C][tiles], 36
/// GEMMs M_ξ = U_ξ · V_ξ (U[36][K][C], the transformed weights, kept in the GEMM kernel's
/// panels) run one per thread (`pd_wino43_gemm`), and the output transform
/// (`pd_wino43_output`) writes the tiles with bias and ReLU. Backward-data of such a
/// convolution is the same algorithm on dy with the weights transposed and rotated (padding
/// 2 − pad), so the frozen loss network runs both of its passes this way. Rounding is a little
/// larger than a direct convolution's (the transforms mix values with weights up to 8 and
/// 1/24); ConvKernelTests bounds it, and the loss-network fixtures check the whole network
/// against float64.
public enum ConvWinograd {
    /// Whether `g` is a convolution this algorithm computes (forward or backward-data).
    public static func applies(_ g: ConvGeometry) -> Bool {
        g.kh == 3 && g.kw == 3 && g.strideH == 1 && g.strideW == 1 && g.dilH == 1 && g.dilW == 1 && g.groups == 1
            && g.padH == g.padW && g.padH <= 2 && g.outH == g.h + 2 * g.padH - 2
    }

    /// y = conv(x, w) + b (overwritten), then max(y, 0) when `relu`. x: [N, C, H, W],
    /// w: [K, C, 3, 3], y: [N, K, OH, OW].
    public static func forward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                               _ b: UnsafePointer<Float>?, _ g: ConvGeometry, relu: Bool = false) {
        forward([(y: y, x: x)], w, b, g, relu: relu)
    }

    /// The same convolution of several inputs of geometry `g` with one weight transform: each
    /// yᵢ = conv(xᵢ, w) + b (overwritten), then max(yᵢ, 0) when `relu`. Their tiles share the
    /// tile blocks, so on small maps one GEMM covers the tiles of all the inputs.
    /// xᵢ: [N, C, H, W], w: [K, C, 3, 3], yᵢ: [N, K, OH, OW].
    public static func forward(_ pairs: [(y: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>)], _ w: UnsafePointer<Float>,
                               _ b: UnsafePointer<Float>?, _ g: ConvGeometry, relu: Bool = false) {
        precondition(applies(g), "Winograd F(4,3) does not apply to \(g)")
        let u = transformedWeights(w, g, transposeFlip: false)
        run(ys: pairs.map(\.y), xs: pairs.map(\.x), u: u.base, bias: b, relu: relu, n: g.n, cIn: g.cIn, h: g.h, w: g.w,
            cOut: g.cOut, pad: g.padH, oh: g.outH, ow: g.outW)
    }

    /// dx = convᵀ(dy, w) (overwritten): the stride-1 convolution of dy [N, K, OH, OW] with
    /// w'[c][k] = w[k][c] rotated by 180° and padding 2 − pad, giving dx [N, C, H, W].
    public static func backwardData(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                                    _ g: ConvGeometry) {
        precondition(applies(g), "Winograd F(4,3) does not apply to \(g)")
        let u = transformedWeights(w, g, transposeFlip: true)
        run(ys: [dx], xs: [dy], u: u.base, bias: nil, relu: false, n: g.n, cIn: g.cOut, h: g.outH, w: g.outW, cOut: g.cIn,
            pad: 2 - g.padH, oh: g.h, ow: g.w)
    }

    /// U = G w Gᵀ per (row, column) channel pair as GEMM panels (`pd_wino43_weights`),
    /// [36][⌈rows / 6⌉][columns][6], in parallel over panels. Computed on every call, not cached:
    /// U is 4× the weights (235 MB for VGG16 at full width). Writing it is memory-bound (11–13 %
    /// of the VGG16 loss step before it was streamed, docs/benchmarks.md), which is why the
    /// target's and the prediction's forward share one.
    private static func transformedWeights(_ w: UnsafePointer<Float>, _ g: ConvGeometry, transposeFlip: Bool) -> Storage {
        let rows = transposeFlip ? g.cIn : g.cOut, columns = transposeFlip ? g.cOut : g.cIn
        let panels = panelCount(rows)
        let u = Storage(count: 36 * panels * Int(PD_WINO_MR) * columns)
        let pu = u.base
        let streaming: Int32 = u.count * MemoryLayout<Float>.stride > streamingThreshold ? 1 : 0
        parallelChunks(panels, grain: Swift.max(1, 512 / Swift.max(columns, 1))) { r in
            pd_wino43_weights(w, Int32(g.cOut), Int32(g.cIn), transposeFlip ? 1 : 0, streaming, Int32(r.lowerBound), Int32(r.upperBound), pu)
        }
        return u
    }

    /// The vector width of the tile GEMM: 8 floats (`pd_wino43_gemm`, AVX2's register) or 16
    /// (`pd_wino43_gemm_wide`, AVX-512's). The two give bit-identical results, so the choice
    /// changes only the speed.
    public enum GemmLanes: Int, Sendable {
        case eight = 8, sixteen = 16

        var kernel: @convention(c) (UnsafePointer<Float>?, UnsafePointer<Float>?, Int32, Int32, Int32, Int32,
                                    UnsafeMutablePointer<Float>?) -> Void {
            self == .eight ? pd_wino43_gemm : pd_wino43_gemm_wide
        }
    }

    /// The GEMM width this process uses: `PERCEP_WINOGRAD_GEMM=8` or `16` if set; 8 on CPUs
    /// without AVX-512; on AVX-512 CPUs, whichever ran a VGG-sized position's GEMM faster when
    /// first needed (`measureGemmLanes`): a CPU that splits 512-bit operations in two (Zen 4)
    /// gains nothing from the wider registers, so width alone does not decide.
    nonisolated(unsafe) public static var gemmLanes: GemmLanes = {
        if let forced = ProcessInfo.processInfo.environment["PERCEP_WINOGRAD_GEMM"].flatMap(Int.init).flatMap(GemmLanes.init) {
            return forced
        }
        return pd_cpu_has_avx512f() != 0 ? measureGemmLanes() : .eight
    }()

    /// Times both GEMM widths on one transform position of a 128-channel layer over 256 tiles
    /// (8.4 MFLOP, about 50 µs), interleaved over 5 rounds, and returns the one with the smaller
    /// best time.
    public static func measureGemmLanes() -> GemmLanes {
        let rows = 128, cols = 128, count = 256
        let u = Storage(count: panelCount(rows) * Int(PD_WINO_MR) * cols), v = Storage(count: cols * count)
        let m = Storage(count: panelCount(rows) * Int(PD_WINO_MR) * count)
        for i in 0..<u.count { u.base[i] = Float(i % 7) * 0.125 }
        for i in 0..<v.count { v.base[i] = Float(i % 5) * 0.25 }
        var best: [GemmLanes: Double] = [.eight: .infinity, .sixteen: .infinity]
        for round in 0..<5 {
            for lanes in round % 2 == 0 ? [GemmLanes.eight, .sixteen] : [.sixteen, .eight] {
                let start = DispatchTime.now().uptimeNanoseconds
                for _ in 0..<3 {
                    lanes.kernel(u.base, v.base, Int32(rows), Int32(cols), Int32(count), Int32(count), m.base)
                }
                best[lanes] = Swift.min(best[lanes]!, Double(DispatchTime.now().uptimeNanoseconds - start))
            }
        }
        return best[.sixteen]! < best[.eight]! ? .sixteen : .eight
    }

    /// Bytes of U above which it is written with non-temporal stores: a U this large leaves the
    /// caches before its GEMMs read it anyway (VGG16's 256- and 512-channel layers, 9–38 MB).
    static let streamingThreshold = 8 << 20

    /// GEMM panels of `PD_WINO_MR` rows needed for `rows` rows.
    private static func panelCount(_ rows: Int) -> Int { (rows + Int(PD_WINO_MR) - 1) / Int(PD_WINO_MR) }

    /// V and M of one block, kept between calls (at most `blockBudget` bytes, more only when a
    /// layer is so wide that 64 tiles exceed it): fresh pages would be faulted in on every call.
    nonisolated(unsafe) private static var scratch = Storage(count: 0)
    private static let scratchLock = NSLock()

    /// Bytes of transformed input and output one block may hold (V and M together).
    static let blockBudget = 4 << 20

    /// The shared tile loop: each xs[i]: [n, cIn, h, w] → ys[i]: [n, cOut, oh, ow] with U from
    /// `transformedWeights` (cOut rows, cIn columns, in GEMM panels). The inputs' tiles are
    /// numbered one after another, so a block may hold tiles of several inputs.
    private static func run(ys: [UnsafeMutablePointer<Float>], xs: [UnsafePointer<Float>], u: UnsafePointer<Float>,
                            bias: UnsafePointer<Float>?, relu: Bool, n: Int, cIn: Int, h: Int, w: Int, cOut: Int,
                            pad: Int, oh: Int, ow: Int) {
        precondition(ys.count == xs.count && !xs.isEmpty, "Winograd F(4,3): \(xs.count) inputs for \(ys.count) outputs")
        let tilesH = (oh + 3) / 4, tilesW = (ow + 3) / 4
        let tilesPerInput = n * tilesH * tilesW, tiles = xs.count * tilesPerInput
        // Tiles per block: V and M within the budget, a multiple of 8 (the transforms' group), and
        // at least 64 so each GEMM is wide enough to run near full speed.
        var block = blockBudget / (36 * (cIn + cOut) * MemoryLayout<Float>.stride)
        block = Swift.min(Swift.max(64, block / 8 * 8), (tiles + 7) / 8 * 8)
        scratchLock.lock()
        defer { scratchLock.unlock() }
        if scratch.count < 36 * (cIn + cOut) * block { scratch = Storage(count: 36 * (cIn + cOut) * block) }
        let pv = scratch.base, pm = scratch.base + 36 * cIn * block
        var t0 = 0
        while t0 < tiles {
            let count = Swift.min(block, tiles - t0)
            // The block's runs of tiles within one input: (input, its first tile, tiles, column).
            var segments: [(input: Int, first: Int, count: Int, column: Int)] = []
            var t = t0
            while t < t0 + count {
                let input = t / tilesPerInput, first = t % tilesPerInput
                let length = Swift.min(tilesPerInput - first, t0 + count - t)
                segments.append((input, first, length, t - t0))
                t += length
            }
            parallelChunks(cIn, grain: 1) { r in
                for s in segments {
                    pd_wino43_input(xs[s.input], Int32(cIn), Int32(h), Int32(w), Int32(pad), Int32(tilesH), Int32(tilesW),
                                    s.first, Int32(s.count), Int32(r.lowerBound), Int32(r.upperBound), pv + s.column, Int32(block))
                }
            }
            // One GEMM per transform position, each on one thread: U is already in the kernel's
            // panels and V's rows are contiguous, so nothing is packed per call.
            let uPerPosition = panelCount(cOut) * Int(PD_WINO_MR) * cIn
            let gemm = gemmLanes.kernel
            parallelChunks(36, grain: 1) { r in
                for p in r {
                    gemm(u + p * uPerPosition, pv + p * cIn * block, Int32(cOut), Int32(cIn), Int32(count), Int32(block),
                         pm + p * cOut * block)
                }
            }
            parallelChunks(cOut, grain: 1) { r in
                for s in segments {
                    pd_wino43_output(pm + s.column, Int32(cOut), Int32(block), s.first, Int32(s.count), Int32(oh), Int32(ow),
                                     Int32(tilesH), Int32(tilesW), bias, relu ? 1 : 0, Int32(r.lowerBound), Int32(r.upperBound),
                                     ys[s.input])
                }
            }
            t0 += count
        }
    }
}
