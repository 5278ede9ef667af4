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
            // dx = y ⊙ (g − Σ g·y)
            let dx = Tensor(uninitialized: g.shape)
            let py = out.data, pg = g.data, pd = dx.data
            parallelChunks(outer * inner, grain: Swift.max(1, 8192 / Swift.max(n, 1))) { r in
                for idx in r {
                    let base = (idx / inner) * n * inner + idx % inner
                    var dot: Float = 0
                    for k in 0..<n { dot += pg[base + k * inner] * py[base + k * inner] }
                    for k in 0..<n { let o = base + k * inner; pd[o] = py[o] * (pg[o] - dot) }
                }
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
            // dx = g − softmax · Σ g
            let dx = Tensor(uninitialized: g.shape)
            let py = out.data, pg = g.data, pd = dx.data
            parallelChunks(outer * inner, grain: Swift.max(1, 8192 / Swift.max(n, 1))) { r in
                for idx in r {
                    let base = (idx / inner) * n * inner + idx % inner
                    var sum: Float = 0
                    for k in 0..<n { sum += pg[base + k * inner] }
                    for k in 0..<n { let o = base + k * inner; pd[o] = pg[o] - Foundation.exp(py[o]) * sum }
                }
            }
            return [dx]
        }
        return out
    }

    /// Log-softmax of x: [outer, n, inner] along n into out, off the tape (fused losses use it).
    public static func logSoftmaxRaw(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, outer: Int, n: Int, inner: Int) {
        softmaxKernel(out, x, outer: outer, n: n, inner: inner, log: true)
    }

    /// Softmax or log-softmax of x: [outer, n, inner] along n, into out.
    static func softmaxKernel(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, outer: Int, n: Int, inner: Int, log: Bool) {
        parallelChunks(outer * inner, grain: Swift.max(1, 8192 / Swift.max(n, 1))) { r in
            for idx in r {
                let base = (idx / inner) * n * inner + idx % inner
                var mx = -Float.infinity
                for k in 0..<n { mx = Swift.max(mx, x[base + k * inner]) }
                var sum: Float = 0
                for k in 0..<n { let e = Foundation.exp(x[base + k * inner] - mx); out[base + k * inner] = e; sum += e }
                if log {
                    let lse = mx + Foundation.log(sum)
                    for k in 0..<n { out[base + k * inner] = x[base + k * inner] - lse }
                } else {
                    let inv = 1 / sum
                    for k in 0..<n { out[base + k * inner] *= inv }
                }
            }
        }
    }
}
