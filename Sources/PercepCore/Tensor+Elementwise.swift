import Foundation

// Elementwise ops with PyTorch broadcasting. Each op's forward and its backward rule sit
// together; the backward closures return gradients shaped like the inputs (`sumToShape` undoes
// broadcasting) and skip inputs that need no gradient.

extension Tensor {
    /// `f(a, b)` with broadcasting; the output has the broadcast shape.
    static func broadcastBinary(_ a: Tensor, _ b: Tensor, _ f: (Float, Float) -> Float) -> Tensor {
        if a.shape == b.shape {
            let out = Tensor(uninitialized: a.shape)
            Kernels.zip(out.data, a.data, b.data, count: a.count, f)
            return out
        }
        let plan = BroadcastPlan(a.shape, b.shape)
        let out = Tensor(uninitialized: plan.outShape)
        let po = out.data, pa = a.data, pb = b.data
        plan.forEachRun { o, ao, bo, n, sa, sb in
            if sa == 1 && sb == 1 {
                for j in 0..<n { po[o + j] = f(pa[ao + j], pb[bo + j]) }
            } else if sa == 1 && sb == 0 {
                let bv = pb[bo]
                for j in 0..<n { po[o + j] = f(pa[ao + j], bv) }
            } else if sa == 0 && sb == 1 {
                let av = pa[ao]
                for j in 0..<n { po[o + j] = f(av, pb[bo + j]) }
            } else {
                for j in 0..<n { po[o + j] = f(pa[ao + j * sa], pb[bo + j * sb]) }
            }
        }
        return out
    }

    /// `f(x)` for each element.
    func unary(_ f: (Float) -> Float) -> Tensor {
        let out = Tensor(uninitialized: shape)
        Kernels.map(out.data, data, count: count, f)
        return out
    }

    /// Sums a broadcast gradient back down to `target` (the inverse of broadcasting).
    public func sumToShape(_ target: [Int]) -> Tensor {
        if shape == target { return self }
        let lead = shape.count - target.count
        precondition(lead >= 0, "sumToShape: \(shape) cannot reduce to \(target)")
        var axes: [Int] = Array(0..<lead)
        for (i, d) in target.enumerated() where d == 1 && shape[lead + i] != 1 { axes.append(lead + i) }
        let reduced = axes.isEmpty ? self : sum(axes: axes, keepDims: true)
        return reduced.reshaped(target)
    }

    // MARK: - Binary arithmetic

    /// Elementwise sum with broadcasting.
    public static func + (a: Tensor, b: Tensor) -> Tensor {
        let out = broadcastBinary(a, b, +)
        Tape.record(out, inputs: [a, b]) { g in
            [a.requiresGrad ? g.sumToShape(a.shape) : nil, b.requiresGrad ? g.sumToShape(b.shape) : nil]
        }
        return out
    }

    /// Elementwise difference with broadcasting.
    public static func - (a: Tensor, b: Tensor) -> Tensor {
        let out = broadcastBinary(a, b, -)
        Tape.record(out, inputs: [a, b]) { g in
            [a.requiresGrad ? g.sumToShape(a.shape) : nil, b.requiresGrad ? (-g).sumToShape(b.shape) : nil]
        }
        return out
    }

    /// Elementwise product with broadcasting.
    public static func * (a: Tensor, b: Tensor) -> Tensor {
        let out = broadcastBinary(a, b, *)
        Tape.record(out, inputs: [a, b]) { g in
            [a.requiresGrad ? (g * b).sumToShape(a.shape) : nil, b.requiresGrad ? (g * a).sumToShape(b.shape) : nil]
        }
        return out
    }

    /// Elementwise quotient with broadcasting.
    public static func / (a: Tensor, b: Tensor) -> Tensor {
        let out = broadcastBinary(a, b, /)
        Tape.record(out, inputs: [a, b]) { g in
            [a.requiresGrad ? (g / b).sumToShape(a.shape) : nil,
             b.requiresGrad ? (-(g * out) / b).sumToShape(b.shape) : nil]
        }
        return out
    }

    /// Adds a scalar.
    public static func + (a: Tensor, s: Float) -> Tensor {
        let out = a.unary { $0 + s }
        Tape.record(out, inputs: [a]) { g in [g] }
        return out
    }
    /// Adds a scalar.
    public static func + (s: Float, a: Tensor) -> Tensor { a + s }
    /// Subtracts a scalar.
    public static func - (a: Tensor, s: Float) -> Tensor { a + (-s) }
    /// Scalar minus tensor.
    public static func - (s: Float, a: Tensor) -> Tensor { (-a) + s }

    /// Multiplies by a scalar.
    public static func * (a: Tensor, s: Float) -> Tensor {
        let out = a.unary { $0 * s }
        Tape.record(out, inputs: [a]) { g in [g.unary { $0 * s }] }
        return out
    }
    /// Multiplies by a scalar.
    public static func * (s: Float, a: Tensor) -> Tensor { a * s }
    /// Divides by a scalar.
    public static func / (a: Tensor, s: Float) -> Tensor { a * (1 / s) }
    /// Scalar divided by tensor.
    public static func / (s: Float, a: Tensor) -> Tensor { Tensor(scalar: s) / a }

    /// Negation.
    public static prefix func - (a: Tensor) -> Tensor {
        let out = a.unary { -$0 }
        Tape.record(out, inputs: [a]) { g in [g.unary { -$0 }] }
        return out
    }

    // MARK: - Unary functions

    /// Records a unary op whose derivative is `dfdx(x, y)` (x input, y output).
    private func unaryOp(_ f: (Float) -> Float, _ dfdx: @escaping (Float, Float) -> Float) -> Tensor {
        let out = unary(f)
        Tape.record(out, inputs: [self]) { g in
            let dx = Tensor(uninitialized: g.shape)
            Kernels.zip3(dx.data, g.data, self.data, out.data, count: g.count) { gv, x, y in gv * dfdx(x, y) }
            return [dx]
        }
        return out
    }

    /// e^x.
    public func exp() -> Tensor { unaryOp({ Foundation.exp($0) }, { _, y in y }) }
    /// Natural logarithm.
    public func log() -> Tensor { unaryOp({ Foundation.log($0) }, { x, _ in 1 / x }) }
    /// Square root.
    public func sqrt() -> Tensor { unaryOp({ $0.squareRoot() }, { _, y in 0.5 / y }) }
    /// x^p for a scalar exponent.
    public func pow(_ p: Float) -> Tensor {
        if p == 2 { return unaryOp({ $0 * $0 }, { x, _ in 2 * x }) }
        // x⁰ is constant: its gradient is 0 even at x = 0, where p·x^(p−1) would be 0·∞.
        if p == 0 { return unaryOp({ _ in 1 }, { _, _ in 0 }) }
        return unaryOp({ Foundation.pow($0, p) }, { x, _ in p * Foundation.pow(x, p - 1) })
    }
    /// |x|; the derivative at 0 is 0, as in PyTorch.
    public func abs() -> Tensor { unaryOp({ Swift.abs($0) }, { x, _ in x > 0 ? 1 : (x < 0 ? -1 : 0) }) }
    /// Clamps to [lo, hi]; the gradient passes where lo < x < hi (PyTorch gives 0 at the bounds).
    public func clamp(min lo: Float = -.infinity, max hi: Float = .infinity) -> Tensor {
        unaryOp({ Swift.min(Swift.max($0, lo), hi) }, { x, _ in (x > lo && x < hi) ? 1 : 0 })
    }
    /// max(x, 0). The backward keeps only the output (x > 0 exactly where the output is), so the
    /// input can be freed, and lets through the output gradient where x > 0, zero elsewhere (as
    /// PyTorch's `threshold_backward`: an infinite gradient at x ≤ 0 gives 0, not NaN).
    public func relu() -> Tensor {
        let out = unary { $0 > 0 ? $0 : 0 }
        Tape.record(out, inputs: [self]) { g in [Tensor.reluBackward(g, output: out)] }
        return out
    }

    /// max(a + b, 0) for two tensors of one shape in one pass, as a residual block ends; the sum
    /// itself is never stored. Equal to `(a + b).relu()`, gradients included.
    public static func addRelu(_ a: Tensor, _ b: Tensor) -> Tensor {
        guard a.shape == b.shape else { return (a + b).relu() }
        let out = Tensor(uninitialized: a.shape)
        Kernels.zip(out.data, a.data, b.data, count: a.count) { x, y in
            let sum = x + y
            return sum > 0 ? sum : 0
        }
        Tape.record(out, inputs: [a, b]) { g in
            let dx = Tensor.reluBackward(g, output: out)
            return [a.requiresGrad ? dx : nil, b.requiresGrad ? dx : nil]
        }
        return out
    }

    /// The gradient into a ReLU's input from its output's gradient `g` and its output, written
    /// over `g`: the tape hands each backward a gradient nothing else holds, so no tensor of the
    /// activation's size is allocated per ReLU.
    private static func reluBackward(_ g: Tensor, output: Tensor) -> Tensor {
        Kernels.zip(g.data, g.data, output.data, count: g.count) { gv, y in y > 0 ? gv : 0 }
        return g
    }
    /// 1 / (1 + e^-x).
    public func sigmoid() -> Tensor { unaryOp({ Kernels.sigmoid($0) }, { _, y in y * (1 - y) }) }
    /// Hyperbolic tangent.
    public func tanh() -> Tensor { unaryOp({ Foundation.tanh($0) }, { _, y in 1 - y * y }) }
}

extension Kernels {
    /// Numerically stable logistic function.
    @inline(__always)
    public static func sigmoid(_ x: Float) -> Float {
        if x >= 0 { return 1 / (1 + Foundation.exp(-x)) }
        let e = Foundation.exp(x)
        return e / (1 + e)
    }

    /// log(1 + e^x) without overflow.
    @inline(__always)
    public static func softplus(_ x: Float) -> Float {
        x > 0 ? x + Foundation.log1p(Foundation.exp(-x)) : Foundation.log1p(Foundation.exp(x))
    }
}
