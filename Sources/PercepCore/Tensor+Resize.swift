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
        return resampled(ys: Tensor.linearTaps(inSize: shape[2], outSize: size.0, alignCorners: alignCorners),
                         xs: Tensor.linearTaps(inSize: shape[3], outSize: size.1, alignCorners: alignCorners))
    }

    /// AdelaiDet's `aligned_bilinear` for an integer `factor`: replicate one row and column at the
    /// bottom and right, resize with aligned corners to (f·H+1)×(f·W+1) (input pixel i lands on
    /// output f·i), shift down and right by ⌊f/2⌋ with edge replication, keep f·H×f·W. Output
    /// index k reads input coordinate max(k − ⌊f/2⌋, 0)/f, with PyTorch's float32 arithmetic.
    /// input: [N, C, H, W] → [N, C, f·H, f·W].
    public func alignedBilinear(factor f: Int) -> Tensor {
        precondition(rank == 4 && f >= 1, "aligned_bilinear: input \(shape) must be [N, C, H, W] and factor ≥ 1")
        if f == 1 { return self }
        func taps(_ size: Int) -> [(Int, Int, Float)] {
            // The aligned resize from size+1 to f·size+1 samples, indexed after the shift.
            let stretched = Tensor.linearTaps(inSize: size + 1, outSize: f * size + 1, alignCorners: true)
            return (0..<(f * size)).map { k in
                let (i0, i1, frac) = stretched[Swift.max(k - f / 2, 0)]
                return (Swift.min(i0, size - 1), Swift.min(i1, size - 1), frac)   // row `size` replicates `size - 1`
            }
        }
        return resampled(ys: taps(shape[2]), xs: taps(shape[3]))
    }

    /// Separable linear resampling: output (oy, ox) blends the four input pixels the taps name.
    /// input: [N, C, H, W] → [N, C, ys.count, xs.count].
    func resampled(ys: [(Int, Int, Float)], xs: [(Int, Int, Float)]) -> Tensor {
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let (oh, ow) = (ys.count, xs.count)
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
