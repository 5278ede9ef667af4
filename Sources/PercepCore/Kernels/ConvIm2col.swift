import Foundation

/// Convolution as im2col + GEMM (and 1×1 as a plain GEMM), plus the naive reference kernels the
/// tests check every fast path against.
///
/// Legend: N batch, C channels, H×W input, OH×OW output, K = C/groups·KH·KW (im2col rows),
/// P = OH·OW (im2col columns), G groups.
public enum ConvIm2col {
    /// Unfolds one image's group of channels into columns.
    /// col: [K, P] for input x: [C/groups, H, W] of one sample.
    static func im2col(_ col: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ g: ConvGeometry) {
        let oh = g.outH, ow = g.outW, p = oh * ow
        parallelChunks(g.colRows, grain: max(1, 8192 / max(p, 1))) { rows in
            for row in rows {
                let kx = row % g.kw, ky = (row / g.kw) % g.kh, c = row / (g.kw * g.kh)
                let dst = col + row * p
                let plane = x + c * g.h * g.w
                for oy in 0..<oh {
                    let iy = oy * g.strideH - g.padH + ky * g.dilH
                    let d = dst + oy * ow
                    if iy < 0 || iy >= g.h { d.update(repeating: 0, count: ow); continue }
                    let src = plane + iy * g.w
                    let x0 = kx * g.dilW - g.padW
                    if g.strideW == 1 {
                        // Contiguous run: zeros left of the image, a copy, zeros right of it.
                        let lo = min(ow, max(0, -x0)), hi = max(lo, min(ow, g.w - x0))
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
    /// dx: [C/groups, H, W] of one sample (accumulated into), col: [K, P].
    static func col2im(_ dx: UnsafeMutablePointer<Float>, _ col: UnsafePointer<Float>, _ g: ConvGeometry) {
        let oh = g.outH, ow = g.outW, p = oh * ow
        let kArea = g.kh * g.kw
        // Channels are independent, so they split across threads without write conflicts.
        parallelChunks(g.cInPerGroup, grain: 1) { channels in
            for c in channels {
                let plane = dx + c * g.h * g.w
                for k in 0..<kArea {
                    let ky = k / g.kw, kx = k % g.kw
                    let src = col + (c * kArea + k) * p
                    for oy in 0..<oh {
                        let iy = oy * g.strideH - g.padH + ky * g.dilH
                        if iy < 0 || iy >= g.h { continue }
                        let rowOut = plane + iy * g.w
                        let s = src + oy * ow
                        let x0 = kx * g.dilW - g.padW
                        for ox in 0..<ow {
                            let ix = ox * g.strideW + x0
                            if ix >= 0 && ix < g.w { rowOut[ix] += s[ox] }
                        }
                    }
                }
            }
        }
    }

    /// Forward: y = conv(x, w) + b. x: [N, C, H, W], w: [C_out, C/G, KH, KW], b: [C_out] or nil,
    /// y: [N, C_out, OH, OW] (overwritten).
    public static func forward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                               _ b: UnsafePointer<Float>?, _ g: ConvGeometry) {
        let p = g.outH * g.outW, k = g.colRows, cog = g.cOutPerGroup
        let col = g.isPointwise ? nil : Storage(count: k * p)
        for s in 0..<g.n {
            for grp in 0..<g.groups {
                let xg = x + (s * g.cIn + grp * g.cInPerGroup) * g.h * g.w
                let colPtr: UnsafePointer<Float>
                if let col { im2col(col.base, xg, g); colPtr = UnsafePointer(col.base) } else { colPtr = xg }
                Gemm.sgemm(m: cog, n: p, k: k, a: w + grp * cog * k, lda: k, b: colPtr, ldb: p,
                           c: y + (s * g.cOut + grp * cog) * p, ldc: p)
            }
        }
        if let b { addBias(y, b, g) }
    }

    /// Adds the per-channel bias to y: [N, C_out, P].
    static func addBias(_ y: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, _ g: ConvGeometry) {
        let p = g.outH * g.outW
        parallelChunks(g.n * g.cOut, grain: max(1, 32_768 / max(p, 1))) { r in
            for nc in r {
                let bv = b[nc % g.cOut], row = y + nc * p
                for i in 0..<p { row[i] += bv }
            }
        }
    }

    /// Backward to the input: dx = convᵀ(dy, w). dx: [N, C, H, W] (overwritten).
    public static func backwardData(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                                    _ g: ConvGeometry) {
        let p = g.outH * g.outW, k = g.colRows, cog = g.cOutPerGroup
        if g.isPointwise {
            for s in 0..<g.n {
                for grp in 0..<g.groups {
                    Gemm.sgemm(transA: true, m: k, n: p, k: cog, a: w + grp * cog * k, lda: k,
                               b: dy + (s * g.cOut + grp * cog) * p, ldb: p,
                               c: dx + (s * g.cIn + grp * g.cInPerGroup) * g.h * g.w, ldc: p)
                }
            }
            return
        }
        dx.update(repeating: 0, count: g.n * g.cIn * g.h * g.w)
        let col = Storage(count: k * p)
        for s in 0..<g.n {
            for grp in 0..<g.groups {
                Gemm.sgemm(transA: true, m: k, n: p, k: cog, a: w + grp * cog * k, lda: k,
                           b: dy + (s * g.cOut + grp * cog) * p, ldb: p, c: col.base, ldc: p)
                col2im(dx + (s * g.cIn + grp * g.cInPerGroup) * g.h * g.w, col.base, g)
            }
        }
    }

    /// Backward to the weights and bias: dw = Σ_n dy · colᵀ, db = Σ dy. dw: [C_out, C/G, KH, KW],
    /// db: [C_out] (both overwritten; either may be nil).
    public static func backwardWeight(_ dw: UnsafeMutablePointer<Float>?, _ db: UnsafeMutablePointer<Float>?,
                                      _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ g: ConvGeometry) {
        let p = g.outH * g.outW, k = g.colRows, cog = g.cOutPerGroup
        if let dw {
            let col = g.isPointwise ? nil : Storage(count: k * p)
            for s in 0..<g.n {
                for grp in 0..<g.groups {
                    let xg = x + (s * g.cIn + grp * g.cInPerGroup) * g.h * g.w
                    let colPtr: UnsafePointer<Float>
                    if let col { im2col(col.base, xg, g); colPtr = UnsafePointer(col.base) } else { colPtr = xg }
                    Gemm.sgemm(transB: true, m: cog, n: k, k: p, a: dy + (s * g.cOut + grp * cog) * p, lda: p,
                               b: colPtr, ldb: p, beta: s == 0 ? 0 : 1, c: dw + grp * cog * k, ldc: k)
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
