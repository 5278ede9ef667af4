import Foundation
import PercepCore

/// Weight initialisers with PyTorch's definitions of fan and gain, drawn from a `SeededRNG` so
/// the same seed gives bit-identical weights everywhere.
///
/// For a weight of shape [out, in, kh, kw]: fan_in = in·kh·kw, fan_out = out·kh·kw.
public enum Initializer: Equatable, Sendable {
    /// N(0, gain²/fan) with gain = √(2/(1+a²)) (PyTorch's `kaiming_normal_`, leaky-ReLU slope a).
    case kaimingNormal(a: Float = 0, fanOut: Bool = false)
    /// U[−b, b] with b = gain·√(3/fan) (PyTorch's `kaiming_uniform_`).
    case kaimingUniform(a: Float = 0, fanOut: Bool = false)
    /// N(0, 2/(fan_in+fan_out)) (`xavier_normal_`).
    case xavierNormal
    /// U[−b, b], b = √(6/(fan_in+fan_out)) (`xavier_uniform_`).
    case xavierUniform
    /// N(0, σ²).
    case normal(std: Float)
    /// U[−a, a].
    case uniform(bound: Float)
    /// Every element = value.
    case constant(Float)

    /// (fan_in, fan_out) of a weight shape, as PyTorch's `_calculate_fan_in_and_fan_out`.
    public static func fans(_ shape: [Int]) -> (Int, Int) {
        precondition(shape.count >= 2, "fan needs a weight with at least 2 dimensions, got \(shape)")
        let receptive = shape.dropFirst(2).reduce(1, *)
        return (shape[1] * receptive, shape[0] * receptive)
    }

    /// The standard deviation this scheme draws with for `shape` (0 for constants).
    public func std(for shape: [Int]) -> Float {
        let (fi, fo) = shape.count >= 2 ? Initializer.fans(shape) : (1, 1)
        switch self {
        case .kaimingNormal(let a, let fanOut), .kaimingUniform(let a, let fanOut):
            return (2 / (1 + a * a)).squareRoot() / Float(fanOut ? fo : fi).squareRoot()
        case .xavierNormal, .xavierUniform: return (2 / Float(fi + fo)).squareRoot()
        case .normal(let s): return s
        case .uniform(let b): return b / Float(3).squareRoot()
        case .constant: return 0
        }
    }

    /// Fills `t` in place.
    public func fill(_ t: Tensor, rng: inout SeededRNG) {
        let s = std(for: t.shape)
        switch self {
        case .kaimingNormal, .xavierNormal, .normal: rng.fillNormal(t, std: s)
        case .kaimingUniform, .xavierUniform, .uniform:
            let b = s * Float(3).squareRoot()
            rng.fillUniform(t, lo: -b, hi: b)
        case .constant(let v): t.fill(v)
        }
    }
}
