import Foundation

// Normalisation over NCHW tensors. Legend: N batch, C channels, S = H·W (1 for [N, C] input),
// M = elements per normalisation set.

extension Tensor {
    /// Batch normalisation, PyTorch's `F.batch_norm`. input: [N, C] or [N, C, H, W];
    /// weight, bias, runningMean, runningVar: [C].
    ///
    /// Training mode normalises with the batch statistics (biased variance) and updates the
    /// running statistics in place with `momentum` (unbiased variance, as PyTorch); eval mode
    /// normalises with the running statistics. `batchStats`, when given, replaces the local
    /// (sum, sum of squares, count) per channel — synchronized BN passes globally reduced sums.
    public func batchNorm(weight: Tensor?, bias: Tensor?, runningMean: Tensor?, runningVar: Tensor?,
                          training: Bool, momentum: Float = 0.1, eps: Float = 1e-5,
                          reduceStats: ((inout [Double], inout [Double], inout Int) -> Void)? = nil) -> Tensor {
        precondition(rank == 2 || rank == 4, "batch_norm: input \(shape) must be [N, C] or [N, C, H, W]")
        let n = shape[0], c = shape[1], s = rank == 4 ? shape[2] * shape[3] : 1
        let px = data
        var mean = [Float](repeating: 0, count: c), invstd = [Float](repeating: 0, count: c)
        if training {
            var sums = [Double](repeating: 0, count: c), sqs = [Double](repeating: 0, count: c)
            var m = n * s
            sums.withUnsafeMutableBufferPointer { sm in
                sqs.withUnsafeMutableBufferPointer { sq in
                    parallelFor(c) { ch in
                        var a = 0.0, b = 0.0
                        for i in 0..<n {
                            let p = px + (i * c + ch) * s
                            for j in 0..<s { let v = Double(p[j]); a += v; b += v * v }
                        }
                        sm[ch] = a; sq[ch] = b
                    }
                }
            }
            reduceStats?(&sums, &sqs, &m)
            // Over ≤ 1 value the unbiased variance is undefined: the running statistics are left
            // alone (callers report the layer; see BatchNorm2d.degenerate) instead of turning
            // non-finite, and the output is the normalised single value, β.
            for ch in 0..<c where m > 0 {
                let mu = sums[ch] / Double(m)
                let v = Swift.max(sqs[ch] / Double(m) - mu * mu, 0)
                mean[ch] = Float(mu)
                invstd[ch] = Float(1 / (v + Double(eps)).squareRoot())
                if m > 1, let rm = runningMean, let rv = runningVar {
                    rm.data[ch] = (1 - momentum) * rm.data[ch] + momentum * Float(mu)
                    rv.data[ch] = (1 - momentum) * rv.data[ch] + momentum * Float(v * Double(m) / Double(m - 1))
                }
            }
        } else {
            guard let rm = runningMean, let rv = runningVar else { preconditionFailure("batch_norm: eval mode needs running statistics") }
            for ch in 0..<c { mean[ch] = rm.data[ch]; invstd[ch] = 1 / (rv.data[ch] + eps).squareRoot() }
        }
        let out = Tensor(uninitialized: shape)
        let po = out.data, pw = weight?.data, pb = bias?.data
        parallelChunks(n * c, grain: Swift.max(1, 32_768 / Swift.max(s, 1))) { r in
            for nc in r {
                let ch = nc % c
                let scale = invstd[ch] * (pw?[ch] ?? 1), shift = (pb?[ch] ?? 0) - mean[ch] * scale
                let src = px + nc * s, dst = po + nc * s
                for j in 0..<s { dst[j] = src[j] * scale + shift }
            }
        }
        var inputs = [self]
        if let weight { inputs.append(weight) }
        if let bias { inputs.append(bias) }
        Tape.record(out, inputs: inputs) { g in
            let pg = g.data
            // Per channel: Σ dy and Σ dy·x̂, reduced across ranks too when the stats were.
            var sdy = [Double](repeating: 0, count: c), sdyx = [Double](repeating: 0, count: c)
            sdy.withUnsafeMutableBufferPointer { a in
                sdyx.withUnsafeMutableBufferPointer { b in
                    parallelFor(c) { ch in
                        var s1 = 0.0, s2 = 0.0
                        let mu = mean[ch], istd = invstd[ch]
                        for i in 0..<n {
                            let gp = pg + (i * c + ch) * s, xp = px + (i * c + ch) * s
                            for j in 0..<s { let gv = Double(gp[j]); s1 += gv; s2 += gv * Double((xp[j] - mu) * istd) }
                        }
                        a[ch] = s1; b[ch] = s2
                    }
                }
            }
            let localSdy = sdy, localSdyx = sdyx
            var dx: Tensor?
            if self.requiresGrad {
                let d = Tensor(uninitialized: self.shape)
                var m = n * s
                if training, let reduce = reduceStats { reduce(&sdy, &sdyx, &m) }
                let pd = d.data
                parallelChunks(n * c, grain: Swift.max(1, 32_768 / Swift.max(s, 1))) { r in
                    for nc in r {
                        let ch = nc % c
                        let gamma = pw?[ch] ?? 1, istd = invstd[ch], mu = mean[ch]
                        let gp = pg + nc * s, xp = px + nc * s, dp = pd + nc * s
                        if training {
                            let a = Float(sdy[ch] / Double(m)), b = Float(sdyx[ch] / Double(m))
                            for j in 0..<s {
                                let xhat = (xp[j] - mu) * istd
                                dp[j] = gamma * istd * (gp[j] - a - xhat * b)
                            }
                        } else {
                            for j in 0..<s { dp[j] = gp[j] * gamma * istd }
                        }
                    }
                }
                dx = d
            }
            var grads: [Tensor?] = [dx]
            if let weight { grads.append(weight.requiresGrad ? Tensor(shape: [c], values: localSdyx.map(Float.init)) : nil) }
            if let bias { grads.append(bias.requiresGrad ? Tensor(shape: [c], values: localSdy.map(Float.init)) : nil) }
            return grads
        }
        return out
    }

    /// Group normalisation, PyTorch's `F.group_norm`. input: [N, C, H, W] (or [N, C]);
    /// weight, bias: [C]; statistics over each group of C/groups channels and all positions.
    public func groupNorm(groups: Int, weight: Tensor?, bias: Tensor?, eps: Float = 1e-5) -> Tensor {
        precondition(rank >= 2 && shape[1] % groups == 0, "group_norm: \(shape[1]) channels are not divisible by \(groups) groups")
        let n = shape[0], c = shape[1], s = shape[2...].reduce(1, *), cg = c / groups, m = cg * s
        let px = data
        var mean = [Float](repeating: 0, count: n * groups), invstd = mean
        mean.withUnsafeMutableBufferPointer { mp in
            invstd.withUnsafeMutableBufferPointer { ip in
                parallelFor(n * groups) { ng in
                    let p = px + ng * m
                    var a = 0.0
                    for j in 0..<m { a += Double(p[j]) }
                    let mu = a / Double(m)
                    var v = 0.0
                    for j in 0..<m { let d = Double(p[j]) - mu; v += d * d }
                    mp[ng] = Float(mu)
                    ip[ng] = Float(1 / (v / Double(m) + Double(eps)).squareRoot())
                }
            }
        }
        let out = Tensor(uninitialized: shape)
        let po = out.data, pw = weight?.data, pb = bias?.data
        parallelChunks(n * c, grain: Swift.max(1, 32_768 / Swift.max(s, 1))) { r in
            for nc in r {
                let ch = nc % c, ng = (nc / c) * groups + ch / cg
                let scale = invstd[ng] * (pw?[ch] ?? 1), shift = (pb?[ch] ?? 0) - mean[ng] * scale
                for j in 0..<s { po[nc * s + j] = px[nc * s + j] * scale + shift }
            }
        }
        var inputs = [self]
        if let weight { inputs.append(weight) }
        if let bias { inputs.append(bias) }
        Tape.record(out, inputs: inputs) { g in
            let pg = g.data
            var dgamma = [Double](repeating: 0, count: c), dbeta = dgamma
            for i in 0..<n {
                for ch in 0..<c {
                    let ng = i * groups + ch / cg, base = (i * c + ch) * s
                    var a = 0.0, b = 0.0
                    for j in 0..<s { let gv = Double(pg[base + j]); a += gv; b += gv * Double((px[base + j] - mean[ng]) * invstd[ng]) }
                    dbeta[ch] += a; dgamma[ch] += b
                }
            }
            var dx: Tensor?
            if self.requiresGrad {
                let d = Tensor(uninitialized: self.shape)
                let pd = d.data
                parallelFor(n * groups) { ng in
                    let i = ng / groups, grp = ng % groups
                    var s1 = 0.0, s2 = 0.0
                    for cc in 0..<cg {
                        let ch = grp * cg + cc, base = (i * c + ch) * s, gamma = Double(pw?[ch] ?? 1)
                        for j in 0..<s {
                            let dxh = Double(pg[base + j]) * gamma
                            s1 += dxh; s2 += dxh * Double((px[base + j] - mean[ng]) * invstd[ng])
                        }
                    }
                    let a = Float(s1 / Double(m)), b = Float(s2 / Double(m)), istd = invstd[ng], mu = mean[ng]
                    for cc in 0..<cg {
                        let ch = grp * cg + cc, base = (i * c + ch) * s, gamma = pw?[ch] ?? 1
                        for j in 0..<s {
                            let xhat = (px[base + j] - mu) * istd
                            pd[base + j] = istd * (pg[base + j] * gamma - a - xhat * b)
                        }
                    }
                }
                dx = d
            }
            var grads: [Tensor?] = [dx]
            if let weight { grads.append(weight.requiresGrad ? Tensor(shape: [c], values: dgamma.map(Float.init)) : nil) }
            if let bias { grads.append(bias.requiresGrad ? Tensor(shape: [c], values: dbeta.map(Float.init)) : nil) }
            return grads
        }
        return out
    }
}
