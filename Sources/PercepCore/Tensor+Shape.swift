import Foundation

// Movement ops: every one produces a new contiguous tensor (reshape aside), so kernels never
// deal with strided inputs.

extension Tensor {
    /// Reorders dimensions: output dimension i is input dimension `order[i]`.
    public func permuted(_ order: [Int]) -> Tensor {
        precondition(order.sorted() == Array(0..<rank), "permute: \(order) is not a permutation of 0..<\(rank)")
        let outShape = order.map { shape[$0] }
        let out = Tensor(uninitialized: outShape)
        Tensor.permuteKernel(out.data, data, inShape: shape, order: order)
        var inverse = [Int](repeating: 0, count: order.count)
        for (i, o) in order.enumerated() { inverse[o] = i }
        Tape.record(out, inputs: [self]) { g in [g.permuted(inverse)] }
        return out
    }

    static func permuteKernel(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, inShape: [Int], order: [Int]) {
        let r = inShape.count
        if r == 0 { out[0] = x[0]; return }
        let inStrides = Shape.strides(inShape)
        let outShape = order.map { inShape[$0] }
        let srcStride = order.map { inStrides[$0] }
        let inner = outShape[r - 1], innerStride = srcStride[r - 1]
        let outer = outShape.dropLast().reduce(1, *)
        parallelChunks(outer, grain: Swift.max(1, 16_384 / Swift.max(inner, 1))) { range in
            for o in range {
                var rem = o, src = 0
                var k = r - 2
                while k >= 0 { src += (rem % outShape[k]) * srcStride[k]; rem /= outShape[k]; k -= 1 }
                let dst = out + o * inner
                for j in 0..<inner { dst[j] = x[src + j * innerStride] }
            }
        }
    }

    /// Swaps two dimensions.
    public func transposed(_ a: Int = -2, _ b: Int = -1) -> Tensor {
        var order = Array(0..<rank)
        order.swapAt(Shape.axis(a, rank: rank), Shape.axis(b, rank: rank))
        return permuted(order)
    }

    /// Elements `start..<end` (step `step`) along `axis`, as PyTorch's `x.narrow`/slicing.
    public func slice(axis: Int, start: Int, end: Int, step: Int = 1) -> Tensor {
        let a = Shape.axis(axis, rank: rank)
        precondition(step >= 1 && 0 <= start && start <= end && end <= shape[a], "slice \(start)..<\(end) out of range for axis \(a) of \(shape)")
        let n = (end - start + step - 1) / step
        var outShape = shape
        outShape[a] = n
        let outer = shape[..<a].reduce(1, *), inner = shape[(a + 1)...].reduce(1, *), len = shape[a]
        let out = Tensor(uninitialized: outShape)
        let px = data, po = out.data
        for o in 0..<outer {
            for k in 0..<n {
                (po + (o * n + k) * inner).update(from: px + (o * len + start + k * step) * inner, count: inner)
            }
        }
        let inShape = shape
        Tape.record(out, inputs: [self]) { g in
            let dx = Tensor.zeros(inShape)
            for o in 0..<outer {
                for k in 0..<n {
                    (dx.data + (o * len + start + k * step) * inner).update(from: g.data + (o * n + k) * inner, count: inner)
                }
            }
            return [dx]
        }
        return out
    }

    /// Concatenates tensors along `axis`; all other dimensions must agree.
    public static func concat(_ parts: [Tensor], axis: Int) -> Tensor {
        precondition(!parts.isEmpty, "concat of no tensors")
        let a = Shape.axis(axis, rank: parts[0].rank)
        var outShape = parts[0].shape
        outShape[a] = parts.map { $0.shape[a] }.reduce(0, +)
        for p in parts {
            var s = p.shape; s[a] = outShape[a]
            precondition(s == outShape, "concat: \(p.shape) does not fit \(parts[0].shape) along axis \(a)")
        }
        let outer = outShape[..<a].reduce(1, *), inner = outShape[(a + 1)...].reduce(1, *)
        let out = Tensor(uninitialized: outShape)
        var offset = 0
        for p in parts {
            let len = p.shape[a] * inner
            for o in 0..<outer {
                (out.data + o * outShape[a] * inner + offset).update(from: p.data + o * len, count: len)
            }
            offset += len
        }
        let sizes = parts.map { $0.shape[a] }
        Tape.record(out, inputs: parts) { g in
            var start = 0
            return zip(parts, sizes).map { p, n in
                defer { start += n }
                return p.requiresGrad ? g.slice(axis: a, start: start, end: start + n) : nil
            }
        }
        return out
    }

    /// Constant padding of the last dimensions, PyTorch's `F.pad` order: `[left, right, top,
    /// bottom, …]` pads the last dimension by (left, right), the one before by (top, bottom).
    /// Negative amounts crop.
    public func padded(_ pads: [Int], value: Float = 0) -> Tensor {
        precondition(pads.count % 2 == 0 && pads.count / 2 <= rank, "pad: \(pads) does not fit rank \(rank)")
        var before = [Int](repeating: 0, count: rank), after = before
        for i in 0..<(pads.count / 2) {
            before[rank - 1 - i] = pads[2 * i]
            after[rank - 1 - i] = pads[2 * i + 1]
        }
        let outShape = (0..<rank).map { shape[$0] + before[$0] + after[$0] }
        precondition(outShape.allSatisfy { $0 >= 0 }, "pad: \(pads) makes a negative size from \(shape)")
        let out = Tensor.full(outShape, value)
        Tensor.copyRegion(from: self, to: out, offset: before, intoOut: true)
        let inShape = shape
        Tape.record(out, inputs: [self]) { g in
            let dx = Tensor.zeros(inShape)
            Tensor.copyRegion(from: g, to: dx, offset: before, intoOut: false)
            return [dx]
        }
        return out
    }

    /// Copies the overlap of `small` placed at `offset` inside `big` (offsets may be negative):
    /// `intoOut` copies small → big, otherwise big → small.
    static func copyRegion(from src: Tensor, to dst: Tensor, offset: [Int], intoOut: Bool) {
        let small = intoOut ? src : dst, big = intoOut ? dst : src
        let r = small.rank
        if r == 0 { dst.data[0] = src.data[0]; return }
        let ss = small.strides, bs = big.strides
        let lastLo = Swift.max(0, -offset[r - 1]), lastHi = Swift.min(small.shape[r - 1], big.shape[r - 1] - offset[r - 1])
        guard lastHi > lastLo else { return }
        let outerShape = Array(small.shape.dropLast())
        let outer = outerShape.reduce(1, *)
        for o in 0..<outer {
            var rem = o, sOff = 0, bOff = 0, inside = true
            var k = r - 2
            while k >= 0 {
                let i = rem % outerShape[k]; rem /= outerShape[k]
                let bi = i + offset[k]
                if bi < 0 || bi >= big.shape[k] { inside = false; break }
                sOff += i * ss[k]; bOff += bi * bs[k]
                k -= 1
            }
            guard inside else { continue }
            let sp = small.data + sOff + lastLo, bp = big.data + bOff + lastLo + offset[r - 1]
            if intoOut { bp.update(from: sp, count: lastHi - lastLo) } else { sp.update(from: bp, count: lastHi - lastLo) }
        }
    }

    /// Picks entries `indices` along `axis` (PyTorch's `index_select`); repeated indices add
    /// their gradients.
    public func indexSelect(axis: Int, indices: [Int]) -> Tensor {
        let a = Shape.axis(axis, rank: rank)
        let len = shape[a]
        precondition(indices.allSatisfy { $0 >= 0 && $0 < len }, "index_select: index out of range 0..<\(len)")
        let outer = shape[..<a].reduce(1, *), inner = shape[(a + 1)...].reduce(1, *), n = indices.count
        var outShape = shape
        outShape[a] = n
        let out = Tensor(uninitialized: outShape)
        for o in 0..<outer {
            for (k, idx) in indices.enumerated() {
                (out.data + (o * n + k) * inner).update(from: data + (o * len + idx) * inner, count: inner)
            }
        }
        let inShape = shape
        Tape.record(out, inputs: [self]) { g in
            let dx = Tensor.zeros(inShape)
            for o in 0..<outer {
                for (k, idx) in indices.enumerated() {
                    Kernels.addInPlace(dx.data + (o * len + idx) * inner, g.data + (o * n + k) * inner, count: inner)
                }
            }
            return [dx]
        }
        return out
    }

    /// PyTorch's `gather`: `out[i][j][k] = self[index[i][j][k]][j][k]` for axis 0, and so on.
    /// `index` has this tensor's rank and integer values; the output has `index`'s shape.
    public func gather(axis: Int, index: [Int32], indexShape: [Int]) -> Tensor {
        let a = Shape.axis(axis, rank: rank)
        precondition(indexShape.count == rank && index.count == indexShape.reduce(1, *), "gather: index shape \(indexShape) does not fit \(shape)")
        let out = Tensor(uninitialized: indexShape)
        let xs = strides, os = Shape.strides(indexShape)
        func sourceOffset(_ flat: Int) -> Int {
            var rem = flat, off = 0
            for d in 0..<rank {
                let i = rem / os[d]; rem %= os[d]
                let src = d == a ? Int(index[flat]) : i
                precondition(src >= 0 && src < shape[d], "gather: index \(src) out of range for axis \(d) of \(shape)")
                off += src * xs[d]
            }
            return off
        }
        let offsets = (0..<index.count).map(sourceOffset)
        for (k, off) in offsets.enumerated() { out.data[k] = data[off] }
        let inShape = shape
        Tape.record(out, inputs: [self]) { g in
            let dx = Tensor.zeros(inShape)
            for (k, off) in offsets.enumerated() { dx.data[off] += g.data[k] }
            return [dx]
        }
        return out
    }

    /// Broadcasts to `target` (PyTorch's `expand`, materialised).
    public func expanded(to target: [Int]) -> Tensor {
        if shape == target { return self }
        let plan = BroadcastPlan(shape, target)
        precondition(plan.outShape == target, "expand: \(shape) cannot broadcast to \(target)")
        let out = Tensor(uninitialized: target)
        let px = data, po = out.data
        // Only the source's strides matter: no second operand is materialised.
        plan.forEachRun { o, ao, _, n, sa, _ in
            if sa == 1 { (po + o).update(from: px + ao, count: n) }
            else if sa == 0 { (po + o).update(repeating: px[ao], count: n) }
            else { for j in 0..<n { po[o + j] = px[ao + j * sa] } }
        }
        let inShape = shape
        Tape.record(out, inputs: [self]) { g in [g.sumToShape(inShape)] }
        return out
    }
}
