import XCTest
import PercepCore

/// Deterministic test inputs: values in [lo, hi) from a seeded generator.
public func randomTensor(_ shape: [Int], seed: UInt64, lo: Float = -1, hi: Float = 1, requiresGrad: Bool = true) -> Tensor {
    var rng = SeededRNG(seed: seed, stream: "test")
    let t = Tensor(uninitialized: shape)
    rng.fillUniform(t, lo: lo, hi: hi)
    t.requiresGrad = requiresGrad
    return t
}

/// A piecewise-constant one-hot map, like a confident segmentation: each image [C, H, W] is cut
/// into `block`×`block` squares, each one class drawn from a seeded generator (one draw per square,
/// image by image, row by row). Every max-pool window inside a square is an exact tie.
public func oneHotBlocks(_ shape: [Int], block: Int = 16, seed: UInt64, requiresGrad: Bool) -> Tensor {
    precondition(shape.count == 4 && shape[2] % block == 0 && shape[3] % block == 0, "oneHotBlocks: \(shape) in \(block)² squares")
    let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
    var rng = SeededRNG(seed: seed, stream: "one-hot blocks")
    let t = Tensor.zeros(shape, requiresGrad: requiresGrad)
    for image in 0..<n {
        let classes = (0..<(h / block) * (w / block)).map { _ in Int(rng.next() % UInt64(c)) }
        for y in 0..<h { for x in 0..<w { t.data[((image * c + classes[(y / block) * (w / block) + x / block]) * h + y) * w + x] = 1 } }
    }
    return t
}

/// ‖a − b‖ / ‖b‖ over all elements, in float64 (b is the reference).
public func relativeNorm(_ a: Tensor, _ b: Tensor) -> Double {
    var diff = 0.0, norm = 0.0
    for i in 0..<a.count { diff += pow(Double(a.data[i] - b.data[i]), 2); norm += pow(Double(b.data[i]), 2) }
    return (diff / max(norm, 1e-30)).squareRoot()
}

/// Values that are at least `gap` apart in magnitude from each other and from 0, shuffled, so
/// that max, ReLU, abs and pooling have no ties and no kinks within a finite-difference step.
public func separatedTensor(_ shape: [Int], seed: UInt64, gap: Float = 0.05) -> Tensor {
    let n = shape.reduce(1, *)
    var rng = SeededRNG(seed: seed, stream: "separated")
    let order = rng.permutation(n)
    let values = order.map { i -> Float in
        let v = gap * Float(i / 2 + 1)
        return i % 2 == 0 ? v : -v
    }
    return Tensor(shape: shape, values: values, requiresGrad: true)
}

/// Checks every input's analytic gradient of sum(f(inputs) · R) against central differences.
///
/// R is a fixed random tensor so that each output element gets a distinct weight. Up to
/// `maxChecks` elements per input are perturbed (evenly spread).
public func checkGradients(_ name: String, _ inputs: [Tensor], eps: Float = 1e-2, rtol: Double = 2e-2, atol: Double = 2e-3,
                    maxChecks: Int = 40, file: StaticString = #filePath, line: UInt = #line,
                    _ f: ([Tensor]) -> Tensor) {
    Tape.current.reset()
    for x in inputs { x.grad = nil }
    let out = f(inputs)
    let r = randomTensor(out.shape, seed: 99, lo: -1, hi: 1, requiresGrad: false)
    let loss = (out * r).sum()
    loss.backward()
    func objective() -> Double {
        Tape.withoutGrad {
            let o = f(inputs)
            var acc = 0.0
            for i in 0..<o.count { acc += Double(o.data[i]) * Double(r.data[i]) }
            return acc
        }
    }
    for (k, x) in inputs.enumerated() where x.requiresGrad {
        guard let g = x.grad else { XCTFail("\(name): input \(k) got no gradient", file: file, line: line); continue }
        XCTAssertEqual(g.shape, x.shape, "\(name): gradient shape", file: file, line: line)
        let step = max(1, x.count / maxChecks)
        var failures = 0
        for i in stride(from: 0, to: x.count, by: step) {
            let orig = x.data[i]
            x.data[i] = orig + eps
            let up = objective()
            x.data[i] = orig - eps
            let down = objective()
            x.data[i] = orig
            let numeric = (up - down) / (2 * Double(eps))
            let analytic = Double(g.data[i])
            if abs(numeric - analytic) > atol + rtol * abs(numeric) {
                failures += 1
                if failures <= 3 {
                    XCTFail("\(name): input \(k) element \(i): analytic \(analytic) vs numeric \(numeric)", file: file, line: line)
                }
            }
        }
    }
}

/// Checks the analytic gradient of a scalar `f(x)` along random directions v: g·v against
/// (f(x + εv) − f(x − εv)) / 2ε.
///
/// Deep networks with many ReLUs and max-pools put some finite differences across a kink, where
/// no derivative is defined; a directional derivative averages over all elements, and a few
/// directions may still cross a kink. So `minAgreeing` of `directions` must agree within `rtol`:
/// a wiring error (a missing branch, a wrong scale) breaks every direction, a kink only one.
public func checkDirectionalDerivative(_ name: String, _ x: Tensor, eps: Float = 1e-4, rtol: Double = 5e-2,
                                       directions: Int = 8, minAgreeing: Int = 5,
                                       file: StaticString = #filePath, line: UInt = #line,
                                       _ f: (Tensor) -> Tensor) {
    Tape.current.reset()
    x.grad = nil
    f(x).backward()
    guard let g = x.grad else { XCTFail("\(name): no gradient", file: file, line: line); return }
    let saved = x.copy()
    defer { x.assign(saved) }
    func value(_ v: Tensor, _ step: Float) -> Double {
        for i in 0..<x.count { x.data[i] = saved.data[i] + step * v.data[i] }
        return Double(Tape.withoutGrad { f(x) }.item)
    }
    var agreeing = 0, report: [String] = []
    for d in 0..<directions {
        let v = randomTensor(x.shape, seed: 500 + UInt64(d), requiresGrad: false)
        var analytic = 0.0
        for i in 0..<x.count { analytic += Double(g.data[i]) * Double(v.data[i]) }
        let numeric = (value(v, eps) - value(v, -eps)) / (2 * Double(eps))
        if abs(analytic - numeric) <= rtol * abs(numeric) + 1e-9 { agreeing += 1 }
        report.append(String(format: "%.6g/%.6g", analytic, numeric))
    }
    XCTAssertGreaterThanOrEqual(agreeing, minAgreeing,
                                "\(name): analytic/numeric per direction: \(report.joined(separator: ", "))", file: file, line: line)
}
