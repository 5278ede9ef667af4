/// Shapes of one 2-D convolution (PyTorch semantics, NCHW input, OIHW weight).
///
/// input: [N, C_in, H, W], weight: [C_out, C_in/groups, KH, KW], output: [N, C_out, OH, OW] with
/// OH = (H + 2·padH − dilH·(KH − 1) − 1) / strideH + 1 (likewise OW).
public struct ConvGeometry: Hashable, CustomStringConvertible {
    public var n, cIn, h, w, cOut, kh, kw: Int
    public var strideH, strideW, padH, padW, dilH, dilW, groups: Int

    /// Builds the geometry and checks it is a valid convolution.
    public init(n: Int, cIn: Int, h: Int, w: Int, cOut: Int, kh: Int, kw: Int,
                stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0), dilation: (Int, Int) = (1, 1), groups: Int = 1) {
        self.n = n; self.cIn = cIn; self.h = h; self.w = w; self.cOut = cOut; self.kh = kh; self.kw = kw
        strideH = stride.0; strideW = stride.1; padH = padding.0; padW = padding.1
        dilH = dilation.0; dilW = dilation.1; self.groups = groups
    }

    /// Output height.
    public var outH: Int { (h + 2 * padH - dilH * (kh - 1) - 1) / strideH + 1 }
    /// Output width.
    public var outW: Int { (w + 2 * padW - dilW * (kw - 1) - 1) / strideW + 1 }
    /// Input channels per group.
    public var cInPerGroup: Int { cIn / groups }
    /// Output channels per group.
    public var cOutPerGroup: Int { cOut / groups }
    /// Rows of the im2col matrix per group: C_in/groups · KH · KW.
    public var colRows: Int { cInPerGroup * kh * kw }
    /// Multiply-adds of one pass (forward, backward-data and backward-weight each cost this).
    public var flops: Double { 2.0 * Double(n * cOut * outH * outW) * Double(colRows) }
    /// True for a 1×1, stride-1, unpadded convolution, which is a plain GEMM on the input.
    public var isPointwise: Bool { kh == 1 && kw == 1 && strideH == 1 && strideW == 1 && padH == 0 && padW == 0 }

    /// Why this geometry is not a valid convolution, or nil.
    public var problem: String? {
        if [n, cIn, h, w, cOut, kh, kw, strideH, strideW, dilH, dilW, groups].contains(where: { $0 <= 0 }) || padH < 0 || padW < 0 {
            return "sizes, strides, dilations and groups must be positive and padding non-negative"
        }
        if cIn % groups != 0 || cOut % groups != 0 { return "channels \(cIn)→\(cOut) are not divisible by groups \(groups)" }
        if outH <= 0 || outW <= 0 { return "kernel \(kh)×\(kw) (dilation \(dilH),\(dilW)) does not fit the padded input \(h)×\(w)" }
        return nil
    }

    /// Human-readable summary.
    public var description: String {
        "N\(n) \(cIn)→\(cOut) \(h)×\(w) k\(kh)×\(kw) s\(strideH) p\(padH) d\(dilH) g\(groups)"
    }
}
