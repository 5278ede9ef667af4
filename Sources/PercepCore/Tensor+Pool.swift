import Foundation
import CKernels

// Pooling over NCHW tensors; each (n, c) plane is independent, so planes split across threads.

/// Output length of a pooling window along one axis (PyTorch's formula, including ceil mode's
/// rule that the last window must start inside the input or left padding).
func poolOutputSize(_ size: Int, kernel: Int, stride: Int, pad: Int, dilation: Int = 1, ceilMode: Bool) -> Int {
    let span = size + 2 * pad - dilation * (kernel - 1) - 1
    if span < 0 { return 0 }   // the window does not fit: callers report it
    var out = (ceilMode ? (span + stride - 1) / stride : span / stride) + 1
    if ceilMode && (out - 1) * stride >= size + pad { out -= 1 }
    return out
}

extension Tensor {
    /// 2-D max pooling (PyTorch's `F.max_pool2d`; padding counts as −∞).
    /// input: [N, C, H, W] → [N, C, OH, OW]. The gradient goes to each window's first maximum.
    public func maxPool2d(kernel: (Int, Int), stride: (Int, Int)? = nil, padding: (Int, Int) = (0, 0),
                          dilation: (Int, Int) = (1, 1), ceilMode: Bool = false) -> Tensor {
        let window = MaxPoolWindow(kernel: kernel, stride: stride ?? kernel, padding: padding, dilation: dilation, ceilMode: ceilMode)
        let (out, argmax) = window.forward(self, keepArgmax: requiresGrad && Tape.current.isRecording)
        guard let argmax else { return out }
        let inShape = shape
        Tape.record(out, inputs: [self]) { g in [window.backward(g, argmax: argmax, inputShape: inShape)] }
        return out
    }

    /// 2-D average pooling (PyTorch's `F.avg_pool2d`). input: [N, C, H, W] → [N, C, OH, OW].
    /// With `countIncludePad` the divisor counts padded positions inside the padded input.
    public func avgPool2d(kernel: (Int, Int), stride: (Int, Int)? = nil, padding: (Int, Int) = (0, 0),
                          ceilMode: Bool = false, countIncludePad: Bool = true) -> Tensor {
        precondition(rank == 4, "avg_pool2d: input \(shape) must be [N, C, H, W]")
        let s = stride ?? kernel
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let oh = poolOutputSize(h, kernel: kernel.0, stride: s.0, pad: padding.0, ceilMode: ceilMode)
        let ow = poolOutputSize(w, kernel: kernel.1, stride: s.1, pad: padding.1, ceilMode: ceilMode)
        precondition(oh > 0 && ow > 0, "avg_pool2d: kernel \(kernel) does not fit input \(h)×\(w)")
        // Window bounds and divisor per output position, shared by forward and backward.
        func window(_ o: Int, _ k: Int, _ st: Int, _ pad: Int, _ size: Int) -> (Int, Int, Int) {
            let start = o * st - pad, end = min(start + k, size + pad)
            return (Swift.max(start, 0), min(end, size), end - start)
        }
        let rows = (0..<oh).map { window($0, kernel.0, s.0, padding.0, h) }
        let cols = (0..<ow).map { window($0, kernel.1, s.1, padding.1, w) }
        func divisor(_ r: (Int, Int, Int), _ q: (Int, Int, Int)) -> Float {
            Float(countIncludePad ? r.2 * q.2 : (r.1 - r.0) * (q.1 - q.0))
        }
        let out = Tensor(uninitialized: [n, c, oh, ow])
        let px = data, po = out.data
        parallelChunks(n * c, grain: 4) { planes in
            for plane in planes {
                for (oy, r) in rows.enumerated() {
                    for (ox, q) in cols.enumerated() {
                        var acc: Float = 0
                        for iy in r.0..<Swift.max(r.0, r.1) { for ix in q.0..<Swift.max(q.0, q.1) { acc += px[plane * h * w + iy * w + ix] } }
                        po[plane * oh * ow + oy * ow + ox] = acc / divisor(r, q)
                    }
                }
            }
        }
        let inShape = shape
        Tape.record(out, inputs: [self]) { g in
            let dx = Tensor.zeros(inShape)
            let pg = g.data, pd = dx.data
            parallelChunks(n * c, grain: 4) { planes in
                for plane in planes {
                    for (oy, r) in rows.enumerated() {
                        for (ox, q) in cols.enumerated() {
                            let v = pg[plane * oh * ow + oy * ow + ox] / divisor(r, q)
                            for iy in r.0..<Swift.max(r.0, r.1) { for ix in q.0..<Swift.max(q.0, q.1) { pd[plane * h * w + iy * w + ix] += v } }
                        }
                    }
                }
            }
            return [dx]
        }
        return out
    }

    /// Adaptive average pooling to `size` (PyTorch's `F.adaptive_avg_pool2d`): output cell i
    /// averages input rows floor(i·H/OH) ..< ceil((i+1)·H/OH). input: [N, C, H, W] → [N, C, OH, OW].
    public func adaptiveAvgPool2d(_ size: (Int, Int)) -> Tensor {
        precondition(rank == 4, "adaptive_avg_pool2d: input \(shape) must be [N, C, H, W]")
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let (oh, ow) = size
        let rows = (0..<oh).map { ($0 * h / oh, (($0 + 1) * h + oh - 1) / oh) }
        let cols = (0..<ow).map { ($0 * w / ow, (($0 + 1) * w + ow - 1) / ow) }
        let out = Tensor(uninitialized: [n, c, oh, ow])
        let px = data, po = out.data
        parallelChunks(n * c, grain: 4) { planes in
            for plane in planes {
                for (oy, r) in rows.enumerated() {
                    for (ox, q) in cols.enumerated() {
                        var acc: Float = 0
                        for iy in r.0..<r.1 { for ix in q.0..<q.1 { acc += px[plane * h * w + iy * w + ix] } }
                        po[plane * oh * ow + oy * ow + ox] = acc / Float((r.1 - r.0) * (q.1 - q.0))
                    }
                }
            }
        }
        let inShape = shape
        Tape.record(out, inputs: [self]) { g in
            let dx = Tensor.zeros(inShape)
            let pg = g.data, pd = dx.data
            parallelChunks(n * c, grain: 4) { planes in
                for plane in planes {
                    for (oy, r) in rows.enumerated() {
                        for (ox, q) in cols.enumerated() {
                            let v = pg[plane * oh * ow + oy * ow + ox] / Float((r.1 - r.0) * (q.1 - q.0))
                            for iy in r.0..<r.1 { for ix in q.0..<q.1 { pd[plane * h * w + iy * w + ix] += v } }
                        }
                    }
                }
            }
            return [dx]
        }
        return out
    }
}

/// One max-pooling window shape (PyTorch's `F.max_pool2d` arguments) and its two passes. The
/// forward can keep where each window's maximum lies, as an index into the window packed in
/// `PackedBits` (2 bits for a 2×2 window): all that the backward needs, a sixteenth of a float
/// per output.
public struct MaxPoolWindow {
    public let kernel: (Int, Int), stride: (Int, Int), padding: (Int, Int), dilation: (Int, Int)
    public let ceilMode: Bool

    /// A window; padding must be at most half the kernel, as in PyTorch.
    public init(kernel: (Int, Int), stride: (Int, Int), padding: (Int, Int) = (0, 0), dilation: (Int, Int) = (1, 1),
                ceilMode: Bool = false) {
        precondition(padding.0 * 2 <= kernel.0 && padding.1 * 2 <= kernel.1, "max_pool2d: padding must be at most half the kernel")
        self.kernel = kernel; self.stride = stride; self.padding = padding; self.dilation = dilation; self.ceilMode = ceilMode
    }

    /// Output height and width for an h×w input.
    public func outputSize(_ h: Int, _ w: Int) -> (Int, Int) {
        (poolOutputSize(h, kernel: kernel.0, stride: stride.0, pad: padding.0, dilation: dilation.0, ceilMode: ceilMode),
         poolOutputSize(w, kernel: kernel.1, stride: stride.1, pad: padding.1, dilation: dilation.1, ceilMode: ceilMode))
    }

    /// x: [N, C, H, W] → ([N, C, OH, OW], the window index of each output's first maximum when
    /// `keepArgmax`; a NaN counts as the maximum).
    public func forward(_ x: Tensor, keepArgmax: Bool) -> (Tensor, PackedBits?) {
        precondition(x.rank == 4, "max_pool2d: input \(x.shape) must be [N, C, H, W]")
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (oh, ow) = outputSize(h, w)
        precondition(oh > 0 && ow > 0, "max_pool2d: kernel \(kernel) does not fit input \(h)×\(w)")
        let out = Tensor(uninitialized: [n, c, oh, ow])
        let argmax = keepArgmax ? PackedBits(rows: n * c, entriesPerRow: oh * ow, valueCount: kernel.0 * kernel.1) : nil
        let px = x.data, po = out.data
        let (k, s, p, d) = (kernel, stride, padding, dilation)
        if k == (2, 2) && s == (2, 2) && p == (0, 0) && d == (1, 1) && 2 * oh <= h && 2 * ow <= w {
            forward2x2(px, po, argmax, planes: n * c, h: h, w: w, oh: oh, ow: ow)
            return (out, argmax)
        }
        parallelChunks(n * c, grain: Swift.max(1, 16_384 / Swift.max(oh * ow * k.0 * k.1, 1))) { planes in
            for plane in planes {
                let xin = px + plane * h * w, yo = po + plane * oh * ow
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        var best = -Float.infinity, bi = -1
                        for ky in 0..<k.0 {
                            let iy = oy * s.0 - p.0 + ky * d.0
                            if iy < 0 || iy >= h { continue }
                            for kx in 0..<k.1 {
                                let ix = ox * s.1 - p.1 + kx * d.1
                                if ix < 0 || ix >= w { continue }
                                let v = xin[iy * w + ix]
                                if v > best || v.isNaN || bi < 0 { best = v; bi = ky * k.1 + kx; if v.isNaN { break } }
                            }
                        }
                        yo[oy * ow + ox] = best
                        argmax?.set(row: plane, index: oy * ow + ox, to: bi)
                    }
                }
            }
        }
        return (out, argmax)
    }

    /// The 2×2/2 window of VGG's pools, unpadded, every window inside the input (no partial
    /// ceil-mode windows): the general loop's bounds checks and divisions
    /// made it a fifth of a loss-network step. Same choice of maximum (the first in row-major
    /// order; NaNs as in the general loop), each output's 2-bit window index packed 32 to a word,
    /// eight outputs per vector (`pd_maxpool2x2_plane`).
    private func forward2x2(_ px: UnsafeMutablePointer<Float>, _ po: UnsafeMutablePointer<Float>, _ argmax: PackedBits?,
                            planes: Int, h: Int, w: Int, oh: Int, ow: Int) {
        parallelChunks(planes, grain: Swift.max(1, 16_384 / Swift.max(oh * ow * 4, 1))) { range in
            for plane in range {
                pd_maxpool2x2_plane(px + plane * h * w, Int32(h), Int32(w), Int32(oh), Int32(ow), po + plane * oh * ow,
                                    argmax.map { $0.words + plane * $0.wordsPerRow })
            }
        }
    }

    /// d(loss)/d(input) [N, C, H, W] from the output's gradient g: [N, C, OH, OW] and the
    /// forward's argmax: each output's gradient goes to its window's maximum. With `mask`, sign
    /// bits over the input ([N·C rows of H·W], a ReLU's in front of the pool), gradient reaching
    /// an input whose bit is clear is dropped: the ReLU's backward done in the same pass, instead
    /// of a second pass over the input-sized gradient.
    public func backward(_ g: Tensor, argmax: PackedBits, inputShape: [Int], mask: PackedBits? = nil) -> Tensor {
        let (n, c, h, w) = (inputShape[0], inputShape[1], inputShape[2], inputShape[3])
        let (oh, ow) = (g.shape[2], g.shape[3])
        precondition(argmax.rows == n * c && argmax.entriesPerRow == oh * ow, "max_pool2d backward: argmax does not match \(g.shape)")
        if let mask {
            precondition(mask.bitsPerEntry == 1 && mask.rows == n * c && mask.entriesPerRow == h * w,
                         "max_pool2d backward: the mask does not match the input \(inputShape)")
        }
        let dx = Tensor.zeros(inputShape)
        let pg = g.data, pd = dx.data
        let (k, s, p, d) = (kernel, stride, padding, dilation)
        // Whether input `index` of `plane` passes the mask.
        @inline(__always) func passes(_ plane: Int, _ index: Int) -> Bool {
            guard let mask else { return true }
            return (mask.words[plane * mask.wordsPerRow + index >> 6] >> UInt64(index & 63)) & 1 == 1
        }
        if k == (2, 2) && s == (2, 2) && p == (0, 0) && d == (1, 1) && 2 * oh <= h && 2 * ow <= w {
            // Disjoint windows: each output's gradient lands on one of its four inputs.
            parallelChunks(n * c, grain: 4) { planes in
                for plane in planes {
                    let gin = pg + plane * oh * ow, dxo = pd + plane * h * w, bits = argmax.words + plane * argmax.wordsPerRow
                    for oy in 0..<oh {
                        for ox in 0..<ow {
                            let e = oy * ow + ox
                            let at = Int((bits[e >> 5] >> UInt64(2 * (e & 31))) & 3)
                            let index = (2 * oy + (at >> 1)) * w + 2 * ox + (at & 1)
                            if passes(plane, index) { dxo[index] = gin[e] }
                        }
                    }
                }
            }
            return dx
        }
        parallelChunks(n * c, grain: 4) { planes in
            for plane in planes {
                let gin = pg + plane * oh * ow, dxo = pd + plane * h * w
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        let widx = argmax.get(row: plane, index: oy * ow + ox)
                        let iy = oy * s.0 - p.0 + (widx / k.1) * d.0, ix = ox * s.1 - p.1 + (widx % k.1) * d.1
                        if passes(plane, iy * w + ix) { dxo[iy * w + ix] += gin[oy * ow + ox] }
                    }
                }
            }
        }
        return dx
    }
}
