import Foundation
import CKernels

/// Winograd F(4×4, 3×3) for stride-1, undilated, ungrouped 3×3 convolutions: each 4×4 output
/// tile costs 36 multiplies per channel pair instead of 144.
///
/// Per block of tiles: the input transform (`pd_wino43_input`, CKernels) gives V[36][C][tiles], 36
/// GEMMs M_ξ = U_ξ · V_ξ (U[36][K][C], the transformed weights) run one per thread on
/// single-threaded OpenBLAS, and the output transform (`pd_wino43_output`) writes the tiles with
/// bias and ReLU. Backward-data of such a convolution is the same algorithm on dy with the
/// weights transposed and rotated (padding 2 − pad), so the frozen loss network runs both of its
/// passes this way. Rounding is a little larger than a direct convolution's (the transforms mix
/// values with weights up to 8 and 1/24); ConvKernelTests bounds it, and the loss-network
/// fixtures check the whole network against float64.
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
        precondition(applies(g), "Winograd F(4,3) does not apply to \(g)")
        let u = transformedWeights(w, g, transposeFlip: false)
        run(y: y, x: x, u: u.base, bias: b, relu: relu, n: g.n, cIn: g.cIn, h: g.h, w: g.w, cOut: g.cOut,
            pad: g.padH, oh: g.outH, ow: g.outW)
    }

    /// dx = convᵀ(dy, w) (overwritten): the stride-1 convolution of dy [N, K, OH, OW] with
    /// w'[c][k] = w[k][c] rotated by 180° and padding 2 − pad, giving dx [N, C, H, W].
    public static func backwardData(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                                    _ g: ConvGeometry) {
        precondition(applies(g), "Winograd F(4,3) does not apply to \(g)")
        let u = transformedWeights(w, g, transposeFlip: true)
        run(y: dx, x: dy, u: u.base, bias: nil, relu: false, n: g.n, cIn: g.cOut, h: g.outH, w: g.outW, cOut: g.cIn,
            pad: 2 - g.padH, oh: g.h, ow: g.w)
    }

    /// U = G w Gᵀ per (row, column) channel pair, [36][rows][columns], in parallel over rows.
    /// Computed on every call, not cached: U is 4× the weights (235 MB for VGG16 at full
    /// width), and the transform is ~36 flops per weight, a few percent of the convolution.
    private static func transformedWeights(_ w: UnsafePointer<Float>, _ g: ConvGeometry, transposeFlip: Bool) -> Storage {
        let u = Storage(count: 36 * g.cOut * g.cIn)
        let rows = transposeFlip ? g.cIn : g.cOut, pu = u.base
        parallelChunks(rows, grain: Swift.max(1, 4096 / Swift.max(transposeFlip ? g.cOut : g.cIn, 1))) { r in
            pd_wino43_weights(w, Int32(g.cOut), Int32(g.cIn), transposeFlip ? 1 : 0, Int32(r.lowerBound), Int32(r.upperBound), pu)
        }
        return u
    }

    /// V and M of one block, kept between calls (at most `blockBudget` bytes, more only when a
    /// layer is so wide that 64 tiles exceed it): fresh pages would be faulted in on every call.
    nonisolated(unsafe) private static var scratch = Storage(count: 0)
    private static let scratchLock = NSLock()

    /// Bytes of transformed input and output one block may hold (V and M together).
    static let blockBudget = 4 << 20

    /// The shared tile loop: x: [n, cIn, h, w] → y: [n, cOut, oh, ow] with U: [36][cOut][cIn].
    private static func run(y: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, u: UnsafePointer<Float>,
                            bias: UnsafePointer<Float>?, relu: Bool, n: Int, cIn: Int, h: Int, w: Int, cOut: Int,
                            pad: Int, oh: Int, ow: Int) {
        let tilesH = (oh + 3) / 4, tilesW = (ow + 3) / 4
        let tiles = n * tilesH * tilesW
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
            parallelChunks(cIn, grain: 1) { r in
                pd_wino43_input(x, Int32(cIn), Int32(h), Int32(w), Int32(pad), Int32(tilesH), Int32(tilesW),
                                t0, Int32(count), Int32(r.lowerBound), Int32(r.upperBound), pv, Int32(block))
            }
            // One GEMM per transform position; inside the parallel region OpenBLAS runs each on
            // one thread.
            parallelChunks(36, grain: 1) { r in
                for p in r {
                    Gemm.sgemm(m: cOut, n: count, k: cIn, a: u + p * cOut * cIn, lda: cIn,
                               b: pv + p * cIn * block, ldb: block, c: pm + p * cOut * block, ldc: block)
                }
            }
            parallelChunks(cOut, grain: 1) { r in
                pd_wino43_output(pm, Int32(cOut), Int32(block), t0, Int32(count), Int32(oh), Int32(ow),
                                 Int32(tilesH), Int32(tilesW), bias, relu ? 1 : 0, Int32(r.lowerBound), Int32(r.upperBound), y)
            }
            t0 += count
        }
    }
}
