import Foundation

extension Tensor {
    /// 2-D convolution, PyTorch's `F.conv2d`.
    ///
    /// input: [N, C_in, H, W], weight: [C_out, C_in/groups, KH, KW], bias: [C_out] →
    /// [N, C_out, OH, OW], OH = (H + 2·padH − dilH·(KH−1) − 1)/strideH + 1.
    /// The backward computes the weight gradient only when the weight needs one and the input
    /// gradient only when the input needs one (a frozen loss network costs one pass, not two).
    /// `fusedReLU` returns max(conv, 0) in the same pass, as `conv2d(…).relu()` would.
    public func conv2d(weight: Tensor, bias: Tensor? = nil, stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0),
                       dilation: (Int, Int) = (1, 1), groups: Int = 1, fusedReLU: Bool = false) -> Tensor {
        precondition(rank == 4 && weight.rank == 4, "conv2d: input \(shape) and weight \(weight.shape) must be 4-D")
        let g = ConvGeometry(n: shape[0], cIn: shape[1], h: shape[2], w: shape[3], cOut: weight.shape[0],
                             kh: weight.shape[2], kw: weight.shape[3], stride: stride, padding: padding,
                             dilation: dilation, groups: groups)
        precondition(weight.shape[1] * groups == shape[1], "conv2d: weight \(weight.shape) expects \(weight.shape[1] * groups) input channels, input has \(shape[1])")
        if let p = g.problem { preconditionFailure("conv2d \(g): \(p)") }
        if let bias { precondition(bias.shape == [g.cOut], "conv2d: bias \(bias.shape) must be [\(g.cOut)]") }
        let out = Tensor(uninitialized: [g.n, g.cOut, g.outH, g.outW])
        ConvDispatch.forward(out.data, data, weight.data, bias?.data, g, relu: fusedReLU)
        let inputs = bias.map { [self, weight, $0] } ?? [self, weight]
        Tape.record(out, inputs: inputs) { upstream in
            // Through the fused ReLU first: the gradient passes where the output is positive.
            var dy = upstream
            if fusedReLU {
                dy = Tensor(uninitialized: upstream.shape)
                Kernels.zip(dy.data, upstream.data, out.data, count: out.count) { gv, y in y > 0 ? gv : 0 }
            }
            var dx: Tensor?, dw: Tensor?, db: Tensor?
            if self.requiresGrad {
                dx = Tensor(uninitialized: self.shape)
                ConvDispatch.backwardData(dx!.data, dy.data, weight.data, g)
            }
            let wantBias = bias?.requiresGrad ?? false
            if weight.requiresGrad || wantBias {
                // A parameter's first gradient of the step goes straight into its slice of the
                // flat gradient buffer; a later use of the same weight (a head shared across
                // levels) returns a fresh gradient for the tape to add.
                let dwDirect = weight.claimUnwrittenGrad(), dbDirect = bias?.claimUnwrittenGrad()
                dw = weight.requiresGrad && dwDirect == nil ? Tensor(uninitialized: weight.shape) : nil
                db = wantBias && dbDirect == nil ? Tensor(uninitialized: [g.cOut]) : nil
                ConvDispatch.backwardWeight(dwDirect ?? dw?.data, dbDirect ?? db?.data, self.data, dy.data, g)
            }
            return bias == nil ? [dx, dw] : [dx, dw, db]
        }
        return out
    }
}
