import Foundation

extension Tensor {
    /// Views the tensor as [outer, n, inner] around `axis`.
    func axisLayout(_ axis: Int) -> (outer: Int, n: Int, inner: Int) {
        let a = Shape.axis(axis, rank: rank)
        return (shape[..<a].reduce(1, *), shape[a], shape[(a + 1)...].reduce(1, *))
    }

    /// Softmax along `axis` (default: channels of NCHW). Same shape as the input.
    public func softmax(axis: Int = 1) -> Tensor {
        let (outer, n, inner) = axisLayout(axis)
        let out = Tensor(uninitialized: shape)
        Tensor.softmaxKernel(out.data, data, outer: outer, n: n, inner: inner, log: false)
        Tape.record(out, inputs: [self]) { g in
            // dx = y ⊙ (g − Σ g·y), written over g (the tape hands each backward its own
            // output gradient): at a [2, 150, 256, 256] prediction that saves 75 MiB at the peak.
            let dx = g
            let py = out.data, pg = g.data, pd = dx.data
            Tensor.forEachPositionBlock(outer: outer, n: n, inner: inner) { base, len, dot in
                for k in 0..<n { let o = base + k * inner; for j in 0..<len { dot[j] += pg[o + j] * py[o + j] } }
                for k in 0..<n { let o = base + k * inner; for j in 0..<len { pd[o + j] = py[o + j] * (pg[o + j] - dot[j]) } }
            }
            return [dx]
        }
        return out
    }

    /// log(softmax) along `axis`, computed stably. Same shape as the input.
    public func logSoftmax(axis: Int = 1) -> Tensor {
        let (outer, n, inner) = axisLayout(axis)
        let out = Tensor(uninitialized: shape)
        Tensor.softmaxKernel(out.data, data, outer: outer, n: n, inner: inner, log: true)
        Tape.record(out, inputs: [self]) { g in
            // dx = g − softmax · Σ g, written over g as above.
            let dx = g
            let py = out.data, pg = g.data, pd = dx.data
            Tensor.forEachPositionBlock(outer: outer, n: n, inner: inner) { base, len, sum in
                for k in 0..<n { let o = base + k * inner; for j in 0..<len { sum[j] += pg[o + j] } }
                withUnsafeTemporaryAllocation(of: Float.self, capacity: len) { e in
                    for k in 0..<n {
                        let o = base + k * inner
                        Kernels.exp(e.baseAddress!, py + o, count: len)
                        for j in 0..<len { pd[o + j] = pg[o + j] - e[j] * sum[j] }
                    }
                }
            }
            return [dx]
        }
        return out
    }

    /// Log-softmax of x: [outer, n, inner] along n into out, off the tape (fused losses use it).
    /// out must not be x: the kernel writes exp(x − max) into out and then reads x again.
    public static func logSoftmaxRaw(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, outer: Int, n: Int, inner: Int) {
        precondition(UnsafePointer(out) != x, "logSoftmaxRaw cannot run in place")
        softmaxKernel(out, x, outer: outer, n: n, inner: inner, log: true)
    }

    /// Runs `body(base, len, acc)` over blocks of up to 256 consecutive positions of an
    /// [outer, n, inner] layout, in parallel: `base` is the flat index of the block's first
    /// position in row k = 0 (row k starts at base + k·inner), `acc` a zeroed per-position
    /// scratch of `len` floats. Sweeping rows of a block keeps every inner loop contiguous (see
    /// `softmaxKernel`); with inner = 1 a block is a single position.
    static func forEachPositionBlock(outer: Int, n: Int, inner: Int,
                                     _ body: (Int, Int, UnsafeMutablePointer<Float>) -> Void) {
        let block = Swift.min(256, inner)
        let blocksPerRow = (inner + block - 1) / block
        parallelChunks(outer * blocksPerRow, grain: Swift.max(1, 8192 / Swift.max(n * block, 1))) { r in
            let acc = UnsafeMutablePointer<Float>.allocate(capacity: block)
            defer { acc.deallocate() }
            for task in r {
                let o = task / blocksPerRow, j0 = (task % blocksPerRow) * block
                let len = Swift.min(block, inner - j0)
                acc.update(repeating: 0, count: len)
                body(o * n * inner + j0, len, acc)
            }
        }
    }

    /// Softmax or log-softmax of x: [outer, n, inner] along n, into out.
    ///
    /// With inner > 1 (channels of NCHW) the n values of one position are `inner` floats apart,
    /// so walking them position by position touches n cache lines per pixel (for 150 classes at
    /// 256² that made this kernel a quarter of a training step). Instead each task takes a block
    /// of up to 256 consecutive positions and sweeps the n rows of that block three times (max,
    /// exp and sum, normalise): every inner loop is contiguous and the block (n·1 KiB) stays in
    /// cache between sweeps. Per position the arithmetic and its order are unchanged.
    static func softmaxKernel(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, outer: Int, n: Int, inner: Int, log: Bool) {
        if inner == 1 {
            parallelChunks(outer, grain: Swift.max(1, 8192 / Swift.max(n, 1))) { r in
                for o in r {
                    let src = x + o * n, dst = out + o * n
                    var mx = -Float.infinity
                    for k in 0..<n { mx = Swift.max(mx, src[k]) }
                    for k in 0..<n { dst[k] = src[k] - mx }
                    Kernels.exp(dst, dst, count: n)
                    var sum: Float = 0
                    for k in 0..<n { sum += dst[k] }
                    if log {
                        let lse = mx + Foundation.log(sum)
                        for k in 0..<n { dst[k] = src[k] - lse }
                    } else {
                        let inv = 1 / sum
                        for k in 0..<n { dst[k] *= inv }
                    }
                }
            }
            return
        }
        let block = 256
        let blocksPerRow = (inner + block - 1) / block
        parallelChunks(outer * blocksPerRow, grain: Swift.max(1, 8192 / Swift.max(n * block, 1))) { r in
            var mx = [Float](repeating: 0, count: block), acc = [Float](repeating: 0, count: block)
            mx.withUnsafeMutableBufferPointer { mxb in
                acc.withUnsafeMutableBufferPointer { accb in
                    let m = mxb.baseAddress!, s = accb.baseAddress!
                    for task in r {
                        let o = task / blocksPerRow, j0 = (task % blocksPerRow) * block
                        let len = Swift.min(block, inner - j0)
                        softmaxBlock(x + o * n * inner + j0, out + o * n * inner + j0, n: n, stride: inner, outStride: inner,
                                     count: len, max: m, sum: s, log: log)
                    }
                }
            }
        }
    }

    /// Softmax or log-softmax along n of `count` consecutive positions: row k of the input starts
    /// at src + k·stride, of the output at dst + k·outStride. `max` and `sum` are scratch of
    /// `count` floats. Every inner loop is contiguous (see `softmaxKernel`).
    @inline(__always)
    static func softmaxBlock(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, n: Int, stride: Int, outStride: Int,
                             count len: Int, max m: UnsafeMutablePointer<Float>, sum s: UnsafeMutablePointer<Float>, log: Bool) {
        for j in 0..<len { m[j] = -Float.infinity; s[j] = 0 }
        for k in 0..<n {
            let row = src + k * stride
            for j in 0..<len { m[j] = Swift.max(m[j], row[j]) }
        }
        for k in 0..<n {
            let row = src + k * stride, o = dst + k * outStride
            Kernels.exp(o, row, shift: m, count: len)
            for j in 0..<len { s[j] += o[j] }
        }
        if log {
            for j in 0..<len { s[j] = m[j] + Foundation.log(s[j]) }
            for k in 0..<n {
                let row = src + k * stride, o = dst + k * outStride
                for j in 0..<len { o[j] = row[j] - s[j] }
            }
        } else {
            for j in 0..<len { s[j] = 1 / s[j] }
            for k in 0..<n {
                let o = dst + k * outStride
                for j in 0..<len { o[j] *= s[j] }
            }
        }
    }

    /// Softmax of x: [outer, n, inner] along n into out (which may be x), off the tape (fused
    /// losses use it).
    public static func softmaxRaw(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, outer: Int, n: Int, inner: Int) {
        softmaxKernel(out, x, outer: outer, n: n, inner: inner, log: false)
    }

    /// Softmax along n of `count` consecutive positions into out, off the tape: channel k of the
    /// input starts at x + k·stride, of the output at out + k·outStride (out must not overlap x).
    /// The same arithmetic per position as `softmaxRaw`, so a band of an image's rows gets the
    /// bits the whole image would.
    public static func softmaxRaw(_ out: UnsafeMutablePointer<Float>, outStride: Int, _ x: UnsafePointer<Float>, stride: Int,
                                  n: Int, count: Int) {
        let block = 256
        parallelChunks((count + block - 1) / block, grain: Swift.max(1, 8192 / Swift.max(n * block, 1))) { r in
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 2 * block)
            defer { scratch.deallocate() }
            for task in r {
                let j0 = task * block
                softmaxBlock(x + j0, out + j0, n: n, stride: stride, outStride: outStride, count: Swift.min(block, count - j0),
                             max: scratch, sum: scratch + block, log: false)
            }
        }
    }

    /// The softmax backward dx = y ⊙ (g − Σ g·y) written over g, with y = softmax(logits) along n
    /// recomputed block by block instead of read from a kept output: an op that folds the softmax
    /// in (the perceptual loss on a segmentation prediction) then holds nothing but the logits,
    /// which the tape keeps anyway. Per position the arithmetic matches `softmax(axis:)`'s
    /// forward and backward. g, logits: [outer, n, inner].
    public static func softmaxBackwardRecomputing(_ g: UnsafeMutablePointer<Float>, logits: UnsafePointer<Float>,
                                                  outer: Int, n: Int, inner: Int) {
        let block = Swift.min(256, inner)
        let blocksPerRow = (inner + block - 1) / block
        parallelChunks(outer * blocksPerRow, grain: Swift.max(1, 8192 / Swift.max(n * block, 1))) { r in
            let y = UnsafeMutablePointer<Float>.allocate(capacity: n * block + 2 * block)
            defer { y.deallocate() }
            let m = y + n * block, dot = m + block
            for task in r {
                let o = task / blocksPerRow, j0 = (task % blocksPerRow) * block
                let len = Swift.min(block, inner - j0), base = o * n * inner + j0
                softmaxBlock(logits + base, y, n: n, stride: inner, outStride: block, count: len, max: m, sum: dot, log: false)
                for j in 0..<len { dot[j] = 0 }
                for k in 0..<n { let row = g + base + k * inner, p = y + k * block; for j in 0..<len { dot[j] += row[j] * p[j] } }
                for k in 0..<n { let row = g + base + k * inner, p = y + k * block; for j in 0..<len { row[j] = p[j] * (row[j] - dot[j]) } }
            }
        }
    }
}
