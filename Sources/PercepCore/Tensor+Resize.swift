import Foundation

extension Tensor {
    /// Source coordinates and weights of linear interpolation along one axis, as PyTorch's
    /// `F.interpolate(mode='bilinear')` computes them for an explicit output size.
    static func linearTaps(inSize: Int, outSize: Int, alignCorners: Bool) -> [(Int, Int, Float)] {
        let scale: Float = alignCorners ? (outSize > 1 ? Float(inSize - 1) / Float(outSize - 1) : 0)
                                        : Float(inSize) / Float(outSize)
        return (0..<outSize).map { o in
            let src = alignCorners ? scale * Float(o) : Swift.max(0, scale * (Float(o) + 0.5) - 0.5)
            let i0 = min(Int(src), inSize - 1)
            let i1 = min(i0 + 1, inSize - 1)
            return (i0, i1, src - Float(i0))
        }
    }

    /// Bilinear resize to `size`. input: [N, C, H, W] → [N, C, OH, OW].
    public func resizeBilinear(_ size: (Int, Int), alignCorners: Bool = false) -> Tensor {
        precondition(rank == 4, "interpolate: input \(shape) must be [N, C, H, W]")
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let (oh, ow) = size
        let ys = Tensor.linearTaps(inSize: h, outSize: oh, alignCorners: alignCorners)
        let xs = Tensor.linearTaps(inSize: w, outSize: ow, alignCorners: alignCorners)
        let out = Tensor(uninitialized: [n, c, oh, ow])
        let px = data, po = out.data
        parallelChunks(n * c, grain: Swift.max(1, 16_384 / Swift.max(oh * ow, 1))) { planes in
            for plane in planes {
                let src = px + plane * h * w, dst = po + plane * oh * ow
                for (oy, (y0, y1, ly)) in ys.enumerated() {
                    for (ox, (x0, x1, lx)) in xs.enumerated() {
                        let top = (1 - lx) * src[y0 * w + x0] + lx * src[y0 * w + x1]
                        let bottom = (1 - lx) * src[y1 * w + x0] + lx * src[y1 * w + x1]
                        dst[oy * ow + ox] = (1 - ly) * top + ly * bottom
                    }
                }
            }
        }
        let inShape = shape
        Tape.record(out, inputs: [self]) { g in
            let dx = Tensor.zeros(inShape)
            let pg = g.data, pd = dx.data
            parallelChunks(n * c, grain: Swift.max(1, 16_384 / Swift.max(oh * ow, 1))) { planes in
                for plane in planes {
                    let gp = pg + plane * oh * ow, d = pd + plane * h * w
                    for (oy, (y0, y1, ly)) in ys.enumerated() {
                        for (ox, (x0, x1, lx)) in xs.enumerated() {
                            let v = gp[oy * ow + ox]
                            d[y0 * w + x0] += (1 - ly) * (1 - lx) * v
                            d[y0 * w + x1] += (1 - ly) * lx * v
                            d[y1 * w + x0] += ly * (1 - lx) * v
                            d[y1 * w + x1] += ly * lx * v
                        }
                    }
                }
            }
            return [dx]
        }
        return out
    }

    /// Nearest-neighbour resize to `size` (PyTorch's `mode='nearest'`: source index
    /// floor(o · in / out)). input: [N, C, H, W] → [N, C, OH, OW].
    public func resizeNearest(_ size: (Int, Int)) -> Tensor {
        precondition(rank == 4, "interpolate: input \(shape) must be [N, C, H, W]")
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let (oh, ow) = size
        let ys = (0..<oh).map { min(Int(Float($0) * (Float(h) / Float(oh))), h - 1) }
        let xs = (0..<ow).map { min(Int(Float($0) * (Float(w) / Float(ow))), w - 1) }
        let out = Tensor(uninitialized: [n, c, oh, ow])
        let px = data, po = out.data
        parallelChunks(n * c, grain: Swift.max(1, 16_384 / Swift.max(oh * ow, 1))) { planes in
            for plane in planes {
                for (oy, sy) in ys.enumerated() {
                    for (ox, sx) in xs.enumerated() { po[plane * oh * ow + oy * ow + ox] = px[plane * h * w + sy * w + sx] }
                }
            }
        }
        let inShape = shape
        Tape.record(out, inputs: [self]) { g in
            let dx = Tensor.zeros(inShape)
            let pg = g.data, pd = dx.data
            for plane in 0..<(n * c) {
                for (oy, sy) in ys.enumerated() {
                    for (ox, sx) in xs.enumerated() { pd[plane * h * w + sy * w + sx] += pg[plane * oh * ow + oy * ow + ox] }
                }
            }
            return [dx]
        }
        return out
    }
}
