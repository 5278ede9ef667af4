import Foundation

/// Convolution as im2col + GEMM (and 1×1 as a plain GEMM), plus the naive reference kernels the
/// tests check every fast path against.
///
/// Legend: N batch, C channels, H×W input, OH×OW output, K = C/groups·KH·KW (im2col rows),
/// P = OH·OW (im2col columns), G groups.
public enum ConvIm2col {
    /// Unfolds one image's group of channels into columns.
    /// x: [C/groups, H, W] of one sample → col: [K, P] with row stride `ld` (≥ P), so several
    /// samples can sit side by side in one [K, S·P] matrix.
    static func im2col(_ col: UnsafeMutablePointer<Float>, ld: Int, _ x: UnsafePointer<Float>, _ g: ConvGeometry) {
        let oh = g.outH, ow = g.outW, p = oh * ow
        if g.isPointwise {
            parallelChunks(g.colRows, grain: max(1, 8192 / max(p, 1))) { rows in
                for row in rows { (col + row * ld).update(from: x + row * p, count: p) }
            }
            return
        }
        parallelChunks(g.colRows, grain: max(1, 8192 / max(p, 1))) { rows in
            for row in rows {
                let kx = row % g.kw, ky = (row / g.kw) % g.kh, c = row / (g.kw * g.kh)
                let dst = col + row * ld
                let plane = x + c * g.h * g.w
                for oy in 0..<oh {
                    let iy = oy * g.strideH - g.padH + ky * g.dilH
                    let d = dst + oy * ow
                    if iy < 0 || iy >= g.h { d.update(repeating: 0, count: ow); continue }
                    let src = plane + iy * g.w
                    let x0 = kx * g.dilW - g.padW
                    if g.strideW == 1 {
                        // Contiguous run: zeros left of the image, a copy, zeros right of it.
                        let lo = min(ow, Swift.max(0, -x0)), hi = Swift.max(lo, min(ow, g.w - x0))
                        if lo > 0 { d.update(repeating: 0, count: lo) }
                        if hi > lo { (d + lo).update(from: src + x0 + lo, count: hi - lo) }
                        if ow > hi { (d + hi).update(repeating: 0, count: ow - hi) }
                    } else {
                        for ox in 0..<ow {
                            let ix = ox * g.strideW + x0
                            d[ox] = (ix >= 0 && ix < g.w) ? src[ix] : 0
                        }
                    }
                }
            }
        }
    }

    /// Folds columns back into an image, adding overlapping contributions.
    /// col: [K, P] with row stride `ld` → dx: [C/groups, H, W] of one sample (accumulated into).
    static func col2im(_ dx: UnsafeMutablePointer<Float>, _ col: UnsafePointer<Float>, ld: Int, _ g: ConvGeometry) {
        let oh = g.outH, ow = g.outW, p = oh * ow
        let kArea = g.kh * g.kw
        // Channels are independent, so they split across threads without write conflicts.
        parallelChunks(g.cInPerGroup, grain: Swift.max(1, 4096 / Swift.max(kArea * p, 1))) { channels in
            for c in channels {
                let plane = dx + c * g.h * g.w
                for k in 0..<kArea {
                    let ky = k / g.kw, kx = k % g.kw
                    let src = col + (c * kArea + k) * ld
                    for oy in 0..<oh {
                        let iy = oy * g.strideH - g.padH + ky * g.dilH
                        if iy < 0 || iy >= g.h { continue }
                        let rowOut = plane + iy * g.w
                        let s = src + oy * ow
                        let x0 = kx * g.dilW - g.padW
                        if g.strideW == 1 {
                            let lo = min(ow, Swift.max(0, -x0)), hi = Swift.max(lo, min(ow, g.w - x0))
                            for ox in lo..<hi { rowOut[ox + x0] += s[ox] }
                        } else {
                            for ox in 0..<ow {
                                let ix = ox * g.strideW + x0
                                if ix >= 0 && ix < g.w { rowOut[ix] += s[ox] }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Samples per GEMM: small images are batched side by side in one [K, S·P] column matrix so
    /// the GEMM's N dimension is large enough to run at full speed; the column buffer stays
    /// under 32 MiB.
    static func samplesPerChunk(_ g: ConvGeometry) -> Int {
        let perSample = g.colRows * g.outH * g.outW
        return Swift.max(1, min(g.n, columnBudget / Swift.max(perSample, 1)))
    }

    /// Column-buffer budget in floats (tests lower it to exercise the chunked path).
    static var columnBudget = 8 << 20

    /// Copies rows between an NCHW tensor's group slice and a [rows, S·P] matrix:
    /// `toMatrix` gathers t[s0+s, c0+r, :] into m[r, s·P ..< (s+1)·P], otherwise scatters back.
    static func shuffle(_ t: UnsafeMutablePointer<Float>, channels: Int, c0: Int, rows: Int, s0: Int, samples: Int,
                        p: Int, _ m: UnsafeMutablePointer<Float>, toMatrix: Bool) {
        parallelChunks(rows * samples, grain: Swift.max(1, 16_384 / Swift.max(p, 1))) { r in
            for idx in r {
                let row = idx / samples, s = idx % samples
                let tp = t + ((s0 + s) * channels + c0 + row) * p, mp = m + row * samples * p + s * p
                if toMatrix { mp.update(from: tp, count: p) } else { tp.update(from: mp, count: p) }
            }
        }
    }

    /// The [K, S·P] column matrix of samples s0 ..< s0 + samples for one group, unfolded into
    /// `col`; without a buffer (1×1 stride-1, one sample) the input itself is that matrix.
    static func columns(_ col: Storage?, _ x: UnsafePointer<Float>, s0: Int, samples: Int, group: Int,
                        _ g: ConvGeometry) -> UnsafePointer<Float> {
        let image = g.h * g.w, first = x + (s0 * g.cIn + group * g.cInPerGroup) * image
        guard let col else { return first }
        let p = g.outH * g.outW
        for s in 0..<samples {
            im2col(col.base + s * p, ld: samples * p, x + ((s0 + s) * g.cIn + group * g.cInPerGroup) * image, g)
        }
        return UnsafePointer(col.base)
    }

    /// Forward: y = conv(x, w) + b. x: [N, C, H, W], w: [C_out, C/G, KH, KW], b: [C_out] or nil,
    /// y: [N, C_out, OH, OW] (overwritten).
    public static func forward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                               _ b: UnsafePointer<Float>?, _ g: ConvGeometry) {
        let p = g.outH * g.outW, k = g.colRows, cog = g.cOutPerGroup, chunk = samplesPerChunk(g)
        let direct = g.isPointwise && chunk == 1     // the input already is the column matrix
        let col = direct ? nil : Storage(count: k * p * chunk)
        let tmp = chunk > 1 ? Storage(count: cog * p * chunk) : nil
        for s0 in stride(from: 0, to: g.n, by: chunk) {
            let ns = min(chunk, g.n - s0), ld = ns * p
            for grp in 0..<g.groups {
                let colPtr = columns(col, x, s0: s0, samples: ns, group: grp, g)
                let dst = tmp?.base ?? (y + (s0 * g.cOut + grp * cog) * p)
                Gemm.sgemm(m: cog, n: ld, k: k, a: w + grp * cog * k, lda: k, b: colPtr, ldb: ld, c: dst, ldc: ld)
                if let tmp { shuffle(y, channels: g.cOut, c0: grp * cog, rows: cog, s0: s0, samples: ns, p: p, tmp.base, toMatrix: false) }
            }
        }
        if let b { addBias(y, b, g) }
    }

    /// Adds the per-channel bias to y: [N, C_out, P].
    static func addBias(_ y: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, _ g: ConvGeometry) {
        let p = g.outH * g.outW
        parallelChunks(g.n * g.cOut, grain: Swift.max(1, 32_768 / Swift.max(p, 1))) { r in
            for nc in r {
                let bv = b[nc % g.cOut], row = y + nc * p
                for i in 0..<p { row[i] += bv }
            }
        }
    }

    /// Backward to the input: dx = convᵀ(dy, w). dx: [N, C, H, W] (overwritten).
    public static func backwardData(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                                    _ g: ConvGeometry) {
        let p = g.outH * g.outW, k = g.colRows, cog = g.cOutPerGroup, chunk = samplesPerChunk(g)
        let direct = g.isPointwise && chunk == 1
        if !g.isPointwise { dx.update(repeating: 0, count: g.n * g.cIn * g.h * g.w) }
        let col = direct ? nil : Storage(count: k * p * chunk)
        let dyMatrix = chunk > 1 ? Storage(count: cog * p * chunk) : nil
        for s0 in stride(from: 0, to: g.n, by: chunk) {
            let ns = min(chunk, g.n - s0), ld = ns * p
            for grp in 0..<g.groups {
                var dyPtr = dy + (s0 * g.cOut + grp * cog) * p
                if let dyMatrix {
                    shuffle(UnsafeMutablePointer(mutating: dy), channels: g.cOut, c0: grp * cog, rows: cog, s0: s0, samples: ns,
                            p: p, dyMatrix.base, toMatrix: true)
                    dyPtr = UnsafePointer(dyMatrix.base)
                }
                let xg = dx + (s0 * g.cIn + grp * g.cInPerGroup) * g.h * g.w
                let dst = col?.base ?? xg
                Gemm.sgemm(transA: true, m: k, n: ld, k: cog, a: w + grp * cog * k, lda: k, b: dyPtr, ldb: ld, c: dst, ldc: ld)
                guard let col else { continue }
                for s in 0..<ns {
                    let dxs = dx + ((s0 + s) * g.cIn + grp * g.cInPerGroup) * g.h * g.w
                    if g.isPointwise {
                        for row in 0..<k { (dxs + row * p).update(from: col.base + row * ld + s * p, count: p) }
                    } else {
                        col2im(dxs, col.base + s * p, ld: ld, g)
                    }
                }
            }
        }
    }

    /// Backward to the weights and bias: dw = Σ_n dy · colᵀ, db = Σ dy. dw: [C_out, C/G, KH, KW],
    /// db: [C_out] (both overwritten; either may be nil).
    public static func backwardWeight(_ dw: UnsafeMutablePointer<Float>?, _ db: UnsafeMutablePointer<Float>?,
                                      _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ g: ConvGeometry) {
        let p = g.outH * g.outW, k = g.colRows, cog = g.cOutPerGroup, chunk = samplesPerChunk(g)
        if let dw {
            let direct = g.isPointwise && chunk == 1
            let col = direct ? nil : Storage(count: k * p * chunk)
            let dyMatrix = chunk > 1 ? Storage(count: cog * p * chunk) : nil
            for s0 in stride(from: 0, to: g.n, by: chunk) {
                let ns = min(chunk, g.n - s0), ld = ns * p
                for grp in 0..<g.groups {
                    let colPtr = columns(col, x, s0: s0, samples: ns, group: grp, g)
                    var dyPtr = dy + (s0 * g.cOut + grp * cog) * p
                    if let dyMatrix {
                        shuffle(UnsafeMutablePointer(mutating: dy), channels: g.cOut, c0: grp * cog, rows: cog, s0: s0,
                                samples: ns, p: p, dyMatrix.base, toMatrix: true)
                        dyPtr = UnsafePointer(dyMatrix.base)
                    }
                    Gemm.sgemm(transB: true, m: cog, n: k, k: ld, a: dyPtr, lda: ld, b: colPtr, ldb: ld,
                               beta: s0 == 0 ? 0 : 1, c: dw + grp * cog * k, ldc: k)
                }
            }
        }
        if let db { biasGrad(db, dy, g) }
    }

    /// db[c] = Σ_{n, p} dy[n, c, p].
    static func biasGrad(_ db: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ g: ConvGeometry) {
        let p = g.outH * g.outW
        for c in 0..<g.cOut {
            var acc = 0.0
            for s in 0..<g.n { acc += Kernels.sum(dy + (s * g.cOut + c) * p, count: p) }
            db[c] = Float(acc)
        }
    }

    // MARK: - Reference kernels (tests only)

    /// Direct 7-loop convolution with double accumulation.
    public static func forwardNaive(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                                    _ b: UnsafePointer<Float>?, _ g: ConvGeometry) {
        let oh = g.outH, ow = g.outW, cig = g.cInPerGroup, cog = g.cOutPerGroup
        for s in 0..<g.n {
            for co in 0..<g.cOut {
                let grp = co / cog
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        var acc = Double(b?[co] ?? 0)
                        for ci in 0..<cig {
                            for ky in 0..<g.kh {
                                let iy = oy * g.strideH - g.padH + ky * g.dilH
                                if iy < 0 || iy >= g.h { continue }
                                for kx in 0..<g.kw {
                                    let ix = ox * g.strideW - g.padW + kx * g.dilW
                                    if ix < 0 || ix >= g.w { continue }
                                    let xv = x[((s * g.cIn + grp * cig + ci) * g.h + iy) * g.w + ix]
                                    let wv = w[((co * cig + ci) * g.kh + ky) * g.kw + kx]
                                    acc += Double(xv) * Double(wv)
                                }
                            }
                        }
                        y[((s * g.cOut + co) * oh + oy) * ow + ox] = Float(acc)
                    }
                }
            }
        }
    }

    /// Reference backward: dx (overwritten) and dw, db (overwritten), by the same loops.
    public static func backwardNaive(_ dx: UnsafeMutablePointer<Float>, _ dw: UnsafeMutablePointer<Float>,
                                     _ db: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                                     _ dy: UnsafePointer<Float>, _ g: ConvGeometry) {
        let oh = g.outH, ow = g.outW, cig = g.cInPerGroup, cog = g.cOutPerGroup
        var dxAcc = [Double](repeating: 0, count: g.n * g.cIn * g.h * g.w)
        var dwAcc = [Double](repeating: 0, count: g.cOut * cig * g.kh * g.kw)
        var dbAcc = [Double](repeating: 0, count: g.cOut)
        for s in 0..<g.n {
            for co in 0..<g.cOut {
                let grp = co / cog
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        let gv = Double(dy[((s * g.cOut + co) * oh + oy) * ow + ox])
                        dbAcc[co] += gv
                        for ci in 0..<cig {
                            for ky in 0..<g.kh {
                                let iy = oy * g.strideH - g.padH + ky * g.dilH
                                if iy < 0 || iy >= g.h { continue }
                                for kx in 0..<g.kw {
                                    let ix = ox * g.strideW - g.padW + kx * g.dilW
                                    if ix < 0 || ix >= g.w { continue }
                                    let xi = ((s * g.cIn + grp * cig + ci) * g.h + iy) * g.w + ix
                                    let wi = ((co * cig + ci) * g.kh + ky) * g.kw + kx
                                    dxAcc[xi] += gv * Double(w[wi])
                                    dwAcc[wi] += gv * Double(x[xi])
                                }
                            }
                        }
                    }
                }
            }
        }
        for i in dxAcc.indices { dx[i] = Float(dxAcc[i]) }
        for i in dwAcc.indices { dw[i] = Float(dwAcc[i]) }
        for i in dbAcc.indices { db[i] = Float(dbAcc[i]) }
    }
}
