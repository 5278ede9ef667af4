import Foundation

// Reductions. A reduction over one axis views the tensor as [outer, n, inner] and writes
// [outer, inner]; several axes are reduced one at a time, innermost first. Sums accumulate in
// double precision so long sums stay within float32 rounding of the exact value.

extension Tensor {
    /// Sums over one axis of a contiguous tensor viewed as [outer, n, inner].
    static func sumAxisKernel(_ x: Tensor, axis: Int) -> Tensor {
        let outer = x.shape[..<axis].reduce(1, *), n = x.shape[axis]
        let inner = x.shape[(axis + 1)...].reduce(1, *)
        var outShape = x.shape
        outShape[axis] = 1
        let out = Tensor(uninitialized: outShape)
        let px = x.data, po = out.data
        if inner == 1 {
            parallelChunks(outer, grain: Swift.max(1, 16_384 / Swift.max(n, 1))) { r in
                for o in r {
                    var acc = 0.0
                    let base = px + o * n
                    for k in 0..<n { acc += Double(base[k]) }
                    po[o] = Float(acc)
                }
            }
        } else {
            parallelChunks(outer * inner, grain: Swift.max(1, 16_384 / Swift.max(n, 1))) { r in
                for idx in r {
                    let o = idx / inner, i = idx % inner
                    var s = 0.0
                    var p = px + o * n * inner + i
                    for _ in 0..<n { s += Double(p.pointee); p += inner }
                    po[idx] = Float(s)
                }
            }
        }
        return out
    }

    /// Sum over `axes` (negative axes count from the end).
    ///
    /// input: [d0, …, dk] → output with those axes removed, or kept as 1 when `keepDims`.
    public func sum(axes: [Int], keepDims: Bool = false) -> Tensor {
        let ax = Set(axes.map { Shape.axis($0, rank: rank) }).sorted(by: >)
        var cur = self.detached()
        for a in ax { cur = Tensor.sumAxisKernel(cur, axis: a) }
        let keptShape = cur.shape
        let outShape = keepDims ? keptShape : shape.enumerated().filter { !ax.contains($0.offset) }.map(\.element)
        let out = Tensor(shape: outShape, storage: cur.storage, offset: cur.offset)
        let inShape = shape
        Tape.record(out, inputs: [self]) { g in
            [g.reshaped(keptShape).expanded(to: inShape)]
        }
        return out
    }

    /// Sum of every element, as a scalar tensor of shape [].
    public func sum() -> Tensor { sum(axes: Array(0..<rank)) }

    /// Mean over `axes`.
    public func mean(axes: [Int], keepDims: Bool = false) -> Tensor {
        let n = Set(axes.map { Shape.axis($0, rank: rank) }).map { shape[$0] }.reduce(1, *)
        return sum(axes: axes, keepDims: keepDims) * (1 / Float(n))
    }

    /// Mean of every element, as a scalar tensor.
    public func mean() -> Tensor { sum() * (1 / Float(Swift.max(count, 1))) }

    /// Index of the first maximum along `axis` (a NaN counts as the maximum, as in PyTorch), with
    /// the axis removed, in row-major order: for logits [N, C, H, W] and axis 1, the class map
    /// [N·H·W]. Not recorded on the tape (indices have no gradient).
    public func argmax(axis: Int) -> [Int32] {
        let a = Shape.axis(axis, rank: rank)
        let outer = shape[..<a].reduce(1, *), n = shape[a], inner = shape[(a + 1)...].reduce(1, *)
        var indices = [Int32](repeating: 0, count: outer * inner)
        let px = data
        indices.withUnsafeMutableBufferPointer { am in
            for o in 0..<outer {
                for i in 0..<inner {
                    var best = -Float.infinity, bi = 0
                    var p = px + o * n * inner + i
                    for k in 0..<n {
                        let v = p.pointee
                        if v > best || (v.isNaN && !best.isNaN) || k == 0 { best = v; bi = k }
                        p += inner
                    }
                    am[o * inner + i] = Int32(bi)
                }
            }
        }
        return indices
    }

    /// Maximum over one axis; the gradient goes to the first maximal element, as PyTorch's
    /// `Swift.max(dim)`. Returns the values (axis removed unless `keepDims`).
    public func max(axis: Int, keepDims: Bool = false) -> Tensor {
        let a = Shape.axis(axis, rank: rank)
        let outer = shape[..<a].reduce(1, *), n = shape[a], inner = shape[(a + 1)...].reduce(1, *)
        var kept = shape
        kept[a] = 1
        let out = Tensor(uninitialized: keepDims ? kept : shape.enumerated().filter { $0.offset != a }.map(\.element))
        let argmax = self.argmax(axis: a)
        let px = data, po = out.data
        for o in 0..<outer {
            for i in 0..<inner { po[o * inner + i] = px[(o * n + Int(argmax[o * inner + i])) * inner + i] }
        }
        let inShape = shape
        Tape.record(out, inputs: [self]) { g in
            let dx = Tensor.zeros(inShape)
            let pg = g.data, pd = dx.data
            for o in 0..<outer {
                for i in 0..<inner {
                    pd[(o * n + Int(argmax[o * inner + i])) * inner + i] += pg[o * inner + i]
                }
            }
            return [dx]
        }
        return out
    }
}
