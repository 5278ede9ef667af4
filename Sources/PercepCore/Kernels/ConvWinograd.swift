import Foundation
import CKernels

/// Winograd F(4×4, 3×3) for stride-1, undilated, ungrouped 3×3 convolutions: each 4×4 output
/// tile costs 36 multiplies per channel pair instead of 144. F(2×2, 3×3) (`Tile.two`, forward
/// only) runs through the same tile loop with 16 positions per 2×2 tile (`pd_wino23_*`).
///
/// Per block of tiles: the input transform (`pd_wino43_input`, CKernels) gives V[36][C][tiles], 36
/// GEMMs M_ξ = U_ξ · V_ξ (`pd_wino43_gemm`; U[36][K][C], the transformed weights, in the GEMM
/// kernel's panels, made once per call when small, otherwise a few panels at a time by the
/// thread whose GEMMs read them: `sharedTransformBudget`), and the output transform
/// (`pd_wino43_output`) writes the tiles with bias and ReLU. Backward-data of such a
/// convolution is the same algorithm on dy with the weights transposed and rotated (padding
/// 2 − pad), so the frozen loss network runs both of its passes this way. Rounding is a little
/// larger than a direct convolution's (the transforms mix values with weights up to 8 and
/// 1/24); ConvKernelTests bounds it, and the loss-network fixtures check the whole network
/// against float64.
public enum ConvWinograd {
    /// Whether `g` is a convolution this algorithm computes (forward or backward-data).
    public static func applies(_ g: ConvGeometry) -> Bool {
        appliesTwo(g) && g.padH == g.padW
    }

    /// Whether `g` is a convolution F(2×2, 3×3) (`Tile.two`) computes: as `applies`, with row and
    /// column padding that may differ (the row bands of `ConvDispatch.forwardInRowBands` pad
    /// columns only).
    public static func appliesTwo(_ g: ConvGeometry) -> Bool {
        g.kh == 3 && g.kw == 3 && g.strideH == 1 && g.strideW == 1 && g.dilH == 1 && g.dilW == 1 && g.groups == 1
            && g.padH <= 2 && g.padW <= 2 && g.outH == g.h + 2 * g.padH - 2 && g.outW == g.w + 2 * g.padW - 2
    }

    /// y = conv(x, w) + b (overwritten), then max(y, 0) when `relu`. x: [N, C, H, W],
    /// w: [K, C, 3, 3], y: [N, K, OH, OW].
    public static func forward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                               _ b: UnsafePointer<Float>?, _ g: ConvGeometry, relu: Bool = false, tile: Tile = .four) {
        forward([(y: y, x: x)], w, b, g, relu: relu, tile: tile)
    }

    /// The output tile of the algorithm: F(4×4, 3×3) (`four`: 36 transform positions per tile, a
    /// quarter of a direct convolution's multiplies, every pass) or F(2×2, 3×3) (`two`: 16
    /// positions, 4/9 of the multiplies, forward only). F(4×4, 3×3)'s transforms multiply by up to
    /// 8 and 1/24 and cancel again, so it rounds several times more than a direct convolution;
    /// F(2×2, 3×3)'s hold only 0, ±1 and ½ and round about as a direct convolution does, and a
    /// patch constant along its rows or columns gives bit-equal outputs, as a direct
    /// convolution's: the forward for ReLU signs and max-pool argmaxes that route a gradient
    /// (`ConvDispatch.switchingForward`).
    public enum Tile: Int, Sendable {
        case two = 2, four = 4
        /// Transform positions per tile, (m + 2)² for m×m outputs.
        public var positions: Int { (rawValue + 2) * (rawValue + 2) }
    }

    /// The same convolution of several inputs of geometry `g` with one weight transform: each
    /// yᵢ = conv(xᵢ, w) + b (overwritten), then max(yᵢ, 0) when `relu`. Their tiles share the
    /// tile blocks, so on small maps one GEMM covers the tiles of all the inputs.
    /// xᵢ: [N, C, H, W], w: [K, C, 3, 3], yᵢ: [N, K, OH, OW].
    public static func forward(_ pairs: [(y: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>)], _ w: UnsafePointer<Float>,
                               _ b: UnsafePointer<Float>?, _ g: ConvGeometry, relu: Bool = false, tile: Tile = .four) {
        precondition(tile == .two ? appliesTwo(g) : applies(g), "Winograd does not apply to \(g)")
        run(ys: pairs.map(\.y), xs: pairs.map(\.x), weights: Weights(w: w, kOut: g.cOut, cIn: g.cIn, transposeFlip: false, tile: tile),
            bias: b, relu: relu, n: g.n, cIn: g.cIn, h: g.h, w: g.w, cOut: g.cOut, padH: g.padH, padW: g.padW, oh: g.outH, ow: g.outW)
    }

    /// dx = convᵀ(dy, w) (overwritten): the stride-1 convolution of dy [N, K, OH, OW] with
    /// w'[c][k] = w[k][c] rotated by 180° and padding 2 − pad, giving dx [N, C, H, W]. With
    /// `mask`, sign bits over dx ([N·C rows of H·W], those of a ReLU whose output is this
    /// convolution's input), dx is 0 wherever the bit is clear: the ReLU's backward done as dx is
    /// written.
    public static func backwardData(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                                    _ g: ConvGeometry, mask: PackedBits? = nil) {
        precondition(applies(g), "Winograd does not apply to \(g)")
        if let mask {
            precondition(mask.bitsPerEntry == 1 && mask.rows == g.n * g.cIn && mask.entriesPerRow == g.h * g.w,
                         "Winograd backward-data: the mask does not match dx of \(g)")
        }
        run(ys: [dx], xs: [dy], weights: Weights(w: w, kOut: g.cOut, cIn: g.cIn, transposeFlip: true), bias: nil, relu: false,
            mask: mask, n: g.n, cIn: g.cOut, h: g.outH, w: g.outW, cOut: g.cIn, padH: 2 - g.padH, padW: 2 - g.padW, oh: g.h, ow: g.w)
    }

    /// dw = ∂L/∂w (overwritten) for y = conv(x, w) given dy, through the same algorithm: the
    /// forward's y = Aᵀ (U ⊙ V) A per tile with U = G w Gᵀ and V = Bᵀ d B gives, summed over the
    /// tiles, ∂L/∂U = Σ (A dy Aᵀ) ⊙ V and dw = Gᵀ (∂L/∂U) G. Per block of tiles: the input
    /// transform (`pd_wino43_input`, as the forward's) and the output gradient's
    /// (`pd_wino43_output_grad`), then per transform position one GEMM over the block's tiles
    /// (OpenBLAS, accumulating over the blocks: its sums are as long as the direct algorithm's,
    /// so its shapes suit a library GEMM, which Winograd's per-position forward GEMMs do not);
    /// at the end `pd_wino43_weight_grad`. A quarter of the direct algorithm's multiplies, with
    /// the transforms' extra rounding (ConvKernelTests bounds it). x: [N, C, H, W],
    /// dy: [N, K, OH, OW], dw: [K, C, 3, 3].
    public static func backwardWeight(_ dw: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                                      _ g: ConvGeometry) {
        precondition(applies(g), "Winograd does not apply to \(g)")
        let tilesH = (g.outH + 3) / 4, tilesW = (g.outW + 3) / 4, tiles = g.n * tilesH * tilesW
        let floatBytes = MemoryLayout<Float>.stride
        // ∂L/∂U for at most `weightGradientBudget` bytes of output channels at a time (a 512×512
        // layer's is 38 MB); the input transform is then redone per chunk.
        let chunkRows = Swift.max(1, Swift.min(g.cOut, weightGradientBudget / (36 * g.cIn * floatBytes)))
        // Tiles per block: V and A dy Aᵀ within the same budget, at least 64 so each GEMM's sums
        // are long enough to run near full speed, a multiple of 8 (the transforms' group).
        let block = Swift.min(Swift.max(64, weightGradientBudget / (36 * (g.cIn + chunkRows) * floatBytes) / 8 * 8), (tiles + 7) / 8 * 8)
        let v = Storage(count: 36 * g.cIn * block), m = Storage(count: 36 * chunkRows * block), du = Storage(count: 36 * chunkRows * g.cIn)
        let pv = v.base, pm = m.base, pu = du.base
        let transforms = transformLanes
        for k0 in stride(from: 0, to: g.cOut, by: chunkRows) {
            let rows = Swift.min(chunkRows, g.cOut - k0)
            var t0 = 0
            while t0 < tiles {
                let count = Swift.min(block, tiles - t0)
                parallelChunks(g.cIn, grain: 1) { r in
                    transforms.input(x, Int32(g.cIn), Int32(g.h), Int32(g.w), Int32(g.padH), Int32(tilesH), Int32(tilesW),
                                    t0, Int32(count), Int32(r.lowerBound), Int32(r.upperBound), pv, Int32(block))
                }
                parallelChunks(rows, grain: 1) { r in
                    transforms.outputGrad(dy, Int32(g.cOut), Int32(g.outH), Int32(g.outW), Int32(tilesH), Int32(tilesW), t0, Int32(count),
                                          Int32(k0 + r.lowerBound), Int32(k0 + r.upperBound), Int32(k0), Int32(rows), pm, Int32(block))
                }
                for p in 0..<36 {
                    Gemm.sgemm(transB: true, m: rows, n: g.cIn, k: count, a: pm + p * rows * block, lda: block,
                               b: pv + p * g.cIn * block, ldb: block, beta: t0 == 0 ? 0 : 1, c: pu + p * rows * g.cIn, ldc: g.cIn)
                }
                t0 += count
            }
            parallelChunks(rows, grain: 1) { r in
                transforms.weightGrad(pu, Int32(rows), Int32(g.cIn), Int32(r.lowerBound), Int32(r.upperBound), dw + k0 * g.cIn * 9)
            }
        }
        withExtendedLifetime((v, m, du)) {}
    }

    /// Bytes of ∂L/∂U, and of V with A dy Aᵀ, one weight-gradient call holds (`backwardWeight`).
    /// Settable for tests (a small budget makes small shapes run several chunks and blocks).
    nonisolated(unsafe) static var weightGradientBudget = 16 << 20

    /// The weights of one call and the direction of their transform U = G w Gᵀ
    /// (`pd_wino43_weights`): w: [kOut, cIn, 3, 3]; with `transposeFlip` the backward-data
    /// convolution's, w'[c][k] = w[k][c] rotated by 180°.
    private struct Weights {
        let w: UnsafePointer<Float>
        let kOut: Int, cIn: Int
        let transposeFlip: Bool
        var tile: Tile = .four

        /// Writes U's panels `panels` of every position to u: [positions][uPanels][columns][6].
        func transform(panels: Range<Int>, uPanels: Int, into u: UnsafeMutablePointer<Float>) {
            if tile == .two {
                precondition(!transposeFlip, "Winograd F(2,3) runs forwards only")
                pd_wino23_weights(w, Int32(kOut), Int32(cIn), Int32(panels.lowerBound), Int32(panels.upperBound), Int32(uPanels), u)
                return
            }
            pd_wino43_weights(w, Int32(kOut), Int32(cIn), transposeFlip ? 1 : 0, Int32(panels.lowerBound), Int32(panels.upperBound),
                              Int32(uPanels), u)
        }
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
    /// (8.4 MFLOP, about 50 µs), taking turns over 5 rounds (`TakingTurns`), and returns the one
    /// with the smaller best time.
    public static func measureGemmLanes() -> GemmLanes {
        let rows = 128, cols = 128, count = 256
        let u = Storage(count: panelCount(rows) * Int(PD_WINO_MR) * cols), v = Storage(count: cols * count)
        let m = Storage(count: panelCount(rows) * Int(PD_WINO_MR) * count)
        for i in 0..<u.count { u.base[i] = Float(i % 7) * 0.125 }
        for i in 0..<v.count { v.base[i] = Float(i % 5) * 0.25 }
        let widths: [GemmLanes] = [.eight, .sixteen]
        return widths[TakingTurns.fastest(count: 2, rounds: 5) { k in
            for _ in 0..<3 {
                widths[k].kernel(u.base, v.base, Int32(rows), Int32(cols), Int32(count), Int32(count), m.base)
            }
        }]
    }

    /// The group width of the tile transforms (input, output, and the weight gradient's two):
    /// 8 tiles or channels per group (`pd_wino43_input`, …: 8-float vectors, AVX2's register) or
    /// 16 (the `_wide` functions, AVX-512's). Every lane does the same arithmetic, so the choice
    /// changes only the speed.
    public enum TransformLanes: Int, Sendable {
        case eight = 8, sixteen = 16

        typealias Input = @convention(c) (UnsafePointer<Float>?, Int32, Int32, Int32, Int32, Int32, Int32, Int, Int32, Int32, Int32,
                                          UnsafeMutablePointer<Float>?, Int32) -> Void
        typealias Output = @convention(c) (UnsafePointer<Float>?, Int32, Int32, Int, Int32, Int32, Int32, Int32, Int32,
                                           UnsafePointer<Float>?, Int32, UnsafePointer<UInt64>?, Int32, Int32, Int32,
                                           UnsafeMutablePointer<Float>?) -> Void
        typealias OutputGrad = @convention(c) (UnsafePointer<Float>?, Int32, Int32, Int32, Int32, Int32, Int, Int32, Int32, Int32, Int32,
                                               Int32, UnsafeMutablePointer<Float>?, Int32) -> Void
        typealias WeightGrad = @convention(c) (UnsafePointer<Float>?, Int32, Int32, Int32, Int32, UnsafeMutablePointer<Float>?) -> Void

        var input: Input { self == .eight ? pd_wino43_input : pd_wino43_input_wide }
        var output: Output { self == .eight ? pd_wino43_output : pd_wino43_output_wide }
        var outputGrad: OutputGrad { self == .eight ? pd_wino43_output_grad : pd_wino43_output_grad_wide }
        var weightGrad: WeightGrad { self == .eight ? pd_wino43_weight_grad : pd_wino43_weight_grad_wide }

        typealias Output23 = @convention(c) (UnsafePointer<Float>?, Int32, Int32, Int, Int32, Int32, Int32, Int32, Int32,
                                             UnsafePointer<Float>?, Int32, Int32, Int32, UnsafeMutablePointer<Float>?) -> Void
        typealias Input23 = @convention(c) (UnsafePointer<Float>?, Int32, Int32, Int32, Int32, Int32, Int32, Int32, Int, Int32, Int32,
                                            Int32, UnsafeMutablePointer<Float>?, Int32) -> Void
        /// F(2×2, 3×3)'s input and output transforms (`Tile.two`; its input transform pads rows
        /// and columns each their own way).
        var input23: Input23 { self == .eight ? pd_wino23_input : pd_wino23_input_wide }
        var output23: Output23 { self == .eight ? pd_wino23_output : pd_wino23_output_wide }
    }

    /// The transform width this process uses: `PERCEP_WINOGRAD_TRANSFORMS=8` or `16` if set, else
    /// whichever ran a VGG-sized layer's input and output transforms faster when first needed
    /// (`measureTransformLanes`, about 10 ms), on every CPU: unlike the GEMM, whose 16-lane block
    /// needs AVX-512's 32 registers, Winograd passes with many tiles ran 5–18 % faster with
    /// 16-lane transforms on an AVX2 EPYC (docs/benchmarks.md), presumably from two independent
    /// halves per row and each position's V and M moved a whole cache line at a time.
    nonisolated(unsafe) public static var transformLanes: TransformLanes = {
        if let forced = ProcessInfo.processInfo.environment["PERCEP_WINOGRAD_TRANSFORMS"].flatMap(Int.init)
            .flatMap(TransformLanes.init) {
            return forced
        }
        return measureTransformLanes()
    }()

    /// Times both transform widths on a 64-channel 64×64 map (256 tiles in blocks of 64, the
    /// per-thread block of such a layer): the input transform, then the output transform of the
    /// result read as 64 output channels, taking turns over 5 rounds (about 1 ms each); returns
    /// the width with the smaller best time.
    public static func measureTransformLanes() -> TransformLanes {
        let channels = 64, side = 64, tilesSide = side / 4, block = 64
        let x = Storage(count: channels * side * side), y = Storage(count: channels * side * side)
        let v = Storage(count: 36 * channels * block)
        for i in 0..<x.count { x.base[i] = Float(i % 11) * 0.125 - 0.5 }
        let widths: [TransformLanes] = [.eight, .sixteen]
        return widths[TakingTurns.fastest(count: 2, rounds: 5) { k in
            for t0 in stride(from: 0, to: tilesSide * tilesSide, by: block) {
                widths[k].input(x.base, Int32(channels), Int32(side), Int32(side), 1, Int32(tilesSide), Int32(tilesSide), t0,
                                Int32(block), 0, Int32(channels), v.base, Int32(block))
                widths[k].output(v.base, Int32(channels), Int32(block), t0, Int32(block), Int32(side), Int32(side), Int32(tilesSide),
                                 Int32(tilesSide), nil, 1, nil, 0, 0, Int32(channels), y.base)
            }
        }]
    }

    /// Bytes of U up to which one call makes it once and its tile blocks share it (the GEMMs then
    /// split the 36 (or 16) positions between the threads). A larger U is made a few panels at a time by
    /// the thread that multiplies them, right before its GEMMs read them, in every tile block: U
    /// is 4× the weights (38 MB for a 512×512 layer), so written whole it went out to memory and
    /// came back once per 16 tile columns, and on VGG16's 16×16 maps (one block of 32 tiles per
    /// image pair) those layers' GEMMs waited on memory.
    static let sharedTransformBudget = 16 << 20

    /// Bytes of U one thread makes at a time when U is above `sharedTransformBudget`: a few
    /// panels for all positions, so one position's share stays in L2 while its GEMM runs.
    static let panelChunkBudget = 2 << 20

    /// GEMM panels of `PD_WINO_MR` rows needed for `rows` rows.
    private static func panelCount(_ rows: Int) -> Int { (rows + Int(PD_WINO_MR) - 1) / Int(PD_WINO_MR) }

    /// V and M of the blocks, kept between calls (at most `blockBudget` bytes, or one
    /// `threadBlockBudget` per thread, more only when a layer is so wide that the narrowest block
    /// exceeds it): fresh pages would be faulted in on every call.
    nonisolated(unsafe) private static var scratch = Storage(count: 0)
    private static let scratchLock = NSLock()

    /// Bytes of transformed input and output one block may hold (V and M together) when the
    /// threads share a block.
    static let blockBudget = 4 << 20

    /// Bytes of V and M of one thread's own block when each thread runs whole blocks: they stay
    /// in its L2 cache from the input transform through the GEMMs to the output transform, while
    /// the shared U streams from L3. `PERCEP_WINOGRAD_THREAD_BLOCK_KB` sets another budget (0:
    /// the threads share every block, the schedule before); tests set it directly.
    nonisolated(unsafe) static var threadBlockBudget: Int = {
        guard let text = ProcessInfo.processInfo.environment["PERCEP_WINOGRAD_THREAD_BLOCK_KB"], let kb = Int(text), kb >= 0 else {
            return 384 << 10
        }
        return kb << 10
    }()

    /// The tiles t0..<t0+count as runs within one input each: (input, its first tile, tiles,
    /// column of the block), the inputs' tiles numbered one after another.
    private static func segments(t0: Int, count: Int, tilesPerInput: Int) -> [(input: Int, first: Int, count: Int, column: Int)] {
        var runs: [(input: Int, first: Int, count: Int, column: Int)] = []
        var t = t0
        while t < t0 + count {
            let input = t / tilesPerInput, first = t % tilesPerInput
            let length = Swift.min(tilesPerInput - first, t0 + count - t)
            runs.append((input, first, length, t - t0))
            t += length
        }
        return runs
    }

    /// The shared tile loop: each xs[i]: [n, cIn, h, w] → ys[i]: [n, cOut, oh, ow], the GEMMs'
    /// rows the cOut output channels and their columns the cIn input channels of U (`weights`).
    /// The inputs' tiles are numbered one after another, so a block may hold tiles of several
    /// inputs.
    ///
    /// Two schedules, the same arithmetic per tile (so the same bits):
    /// - many tiles and a U made once (`sharedTransformBudget`): each thread runs whole blocks of
    ///   its own tiles (`threadBlockBudget`): input transform, the 36 (16) GEMMs, output transform,
    ///   with its V and M in its own cache. On VGG16's conv1_2 at 128² (2048 tiles per call) this
    ///   ran 1.0–1.4× the shared schedule's rate over four rounds on a noisy VM, where V and M went
    ///   from one core to the other through L3 between the three steps (docs/benchmarks.md);
    /// - otherwise the threads share each block: the input transform split by input channels, the
    ///   GEMMs by position (U made once) or by U's panels (U made in chunks), the output
    ///   transform by output channels.
    private static func run(ys: [UnsafeMutablePointer<Float>], xs: [UnsafePointer<Float>], weights: Weights,
                            bias: UnsafePointer<Float>?, relu: Bool, mask: PackedBits? = nil, n: Int, cIn: Int, h: Int, w: Int,
                            cOut: Int, padH: Int, padW: Int, oh: Int, ow: Int) {
        precondition(ys.count == xs.count && !xs.isEmpty, "Winograd: \(xs.count) inputs for \(ys.count) outputs")
        precondition(weights.tile == .four || mask == nil, "Winograd F(2,3) writes no masked outputs")
        precondition(weights.tile == .two || padH == padW, "Winograd F(4,3) pads rows and columns alike")
        let side = weights.tile.rawValue, positions = weights.tile.positions
        let tilesH = (oh + side - 1) / side, tilesW = (ow + side - 1) / side
        let tilesPerInput = n * tilesH * tilesW, tiles = xs.count * tilesPerInput
        let floatsPerTile = positions * (cIn + cOut), threads = ThreadBudget.threads
        // U whole (shared by the blocks), or per thread a chunk of panels (`sharedTransformBudget`).
        let panels = panelCount(cOut), panelFloats = Int(PD_WINO_MR) * ((cIn + 7) / 8 * 8)   // columns in groups of 8 (pd_wino43_weights)
        let shared = positions * panels * panelFloats * MemoryLayout<Float>.stride <= sharedTransformBudget
        let chunkPanels = Swift.max(1, panelChunkBudget / (positions * panelFloats * MemoryLayout<Float>.stride))
        let uFloats = shared ? positions * panels * panelFloats : threads * positions * chunkPanels * panelFloats
        // Tiles per thread-owned block: V and M within `threadBlockBudget`, a multiple of 8 (the
        // transforms' group), 16 to 64 (the GEMM's register block is 16 columns wide). That
        // schedule needs two blocks per thread, so the threads' shares stay even.
        let ownBlock = Swift.min(64, Swift.max(16, threadBlockBudget / (floatsPerTile * MemoryLayout<Float>.stride) / 8 * 8))
        let perThread = shared && threadBlockBudget > 0 && tiles >= 2 * threads * ownBlock
        // Tiles per shared block: V and M within `blockBudget`, a multiple of 8, and at least 64
        // so each GEMM is wide enough to run near full speed.
        var block = blockBudget / (floatsPerTile * MemoryLayout<Float>.stride)
        block = perThread ? ownBlock : Swift.min(Swift.max(64, block / 8 * 8), (tiles + 7) / 8 * 8)
        // U lives for this call only, like the activations (the mapped-block cache reuses it), so
        // the largest layer's U is not held for the rest of the step.
        let u = Storage(count: uFloats), pu = u.base
        defer { withExtendedLifetime(u) {} }   // pu is used until the last GEMM
        let scratchFloats = (perThread ? threads : 1) * floatsPerTile * block
        scratchLock.lock()
        defer { scratchLock.unlock() }
        if scratch.count < scratchFloats { scratch = Storage(count: scratchFloats) }
        let gemm = gemmLanes.kernel, transforms = transformLanes
        let maskWords = mask.map { UnsafePointer($0.words) }, maskRowWords = Int32(mask?.wordsPerRow ?? 0)
        /// Input transform of one run of tiles `s` (V into `v`) for the input channels `channels`.
        func input(_ v: UnsafeMutablePointer<Float>, _ s: (input: Int, first: Int, count: Int, column: Int), _ channels: Range<Int>) {
            if weights.tile == .four {
                transforms.input(xs[s.input], Int32(cIn), Int32(h), Int32(w), Int32(padH), Int32(tilesH), Int32(tilesW), s.first,
                                 Int32(s.count), Int32(channels.lowerBound), Int32(channels.upperBound), v, Int32(block))
            } else {
                transforms.input23(xs[s.input], Int32(cIn), Int32(h), Int32(w), Int32(padH), Int32(padW), Int32(tilesH), Int32(tilesW),
                                   s.first, Int32(s.count), Int32(channels.lowerBound), Int32(channels.upperBound), v, Int32(block))
            }
        }
        /// Output transform of one run of tiles `s` (M from `m`) for the output channels `channels`.
        func output(_ m: UnsafePointer<Float>, _ s: (input: Int, first: Int, count: Int, column: Int), _ channels: Range<Int>) {
            if weights.tile == .four {
                transforms.output(m, Int32(cOut), Int32(block), s.first, Int32(s.count), Int32(oh), Int32(ow), Int32(tilesH), Int32(tilesW),
                                  bias, relu ? 1 : 0, maskWords, maskRowWords, Int32(channels.lowerBound), Int32(channels.upperBound), ys[s.input])
            } else {
                transforms.output23(m, Int32(cOut), Int32(block), s.first, Int32(s.count), Int32(oh), Int32(ow), Int32(tilesH), Int32(tilesW),
                                    bias, relu ? 1 : 0, Int32(channels.lowerBound), Int32(channels.upperBound), ys[s.input])
            }
        }
        if shared {
            parallelChunks(panels, grain: Swift.max(1, 512 / Swift.max(cIn, 1))) { r in
                weights.transform(panels: r, uPanels: panels, into: pu + r.lowerBound * panelFloats)
            }
        }
        let base = scratch.base
        if perThread {
            let blocks = (tiles + block - 1) / block
            parallelChunksOnThreads(blocks, grain: 1) { r, thread in
                let pv = base + thread * floatsPerTile * block, pm = pv + positions * cIn * block
                for b in r {
                    let t0 = b * block, count = Swift.min(block, tiles - t0)
                    let runs = segments(t0: t0, count: count, tilesPerInput: tilesPerInput)
                    for s in runs {
                        input(pv + s.column, s, 0..<cIn)
                    }
                    for p in 0..<positions {
                        gemm(pu + p * panels * panelFloats, pv + p * cIn * block, Int32(cOut), Int32(cIn), Int32(count), Int32(block),
                             pm + p * cOut * block)
                    }
                    for s in runs {
                        output(pm + s.column, s, 0..<cOut)
                    }
                }
            }
            return
        }
        let pv = base, pm = pv + positions * cIn * block
        var t0 = 0
        while t0 < tiles {
            let count = Swift.min(block, tiles - t0)
            let runs = segments(t0: t0, count: count, tilesPerInput: tilesPerInput)
            parallelChunks(cIn, grain: 1) { r in
                for s in runs {
                    input(pv + s.column, s, r)
                }
            }
            // U is already in the kernel's panels and V's rows are contiguous, so nothing is
            // packed per GEMM. M's rows of panel i start at row 6i.
            if shared {
                // One GEMM per transform position, each on one thread.
                parallelChunks(positions, grain: 1) { r in
                    for p in r {
                        gemm(pu + p * panels * panelFloats, pv + p * cIn * block, Int32(cOut), Int32(cIn), Int32(count), Int32(block),
                             pm + p * cOut * block)
                    }
                }
            } else {
                // Each thread makes its panels' U a chunk at a time and runs the GEMMs of all positions for
                // that chunk's rows while the chunk is in cache.
                parallelChunksOnThreads(panels, grain: 1) { r, thread in
                    let chunkU = pu + thread * positions * chunkPanels * panelFloats
                    for first in stride(from: r.lowerBound, to: r.upperBound, by: chunkPanels) {
                        let chunk = first..<Swift.min(first + chunkPanels, r.upperBound)
                        weights.transform(panels: chunk, uPanels: chunk.count, into: chunkU)
                        let row0 = first * Int(PD_WINO_MR), rows = Swift.min(cOut, chunk.upperBound * Int(PD_WINO_MR)) - row0
                        for p in 0..<positions {
                            gemm(chunkU + p * chunk.count * panelFloats, pv + p * cIn * block, Int32(rows), Int32(cIn), Int32(count),
                                 Int32(block), pm + (p * cOut + row0) * block)
                        }
                    }
                }
            }
            parallelChunks(cOut, grain: 1) { r in
                for s in runs {
                    output(pm + s.column, s, r)
                }
            }
            t0 += count
        }
    }
}
