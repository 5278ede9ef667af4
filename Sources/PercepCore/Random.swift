import Foundation

/// A seeded, platform-independent random number generator (xoshiro256**, seeded by SplitMix64).
///
/// Every value is produced with integer operations and correctly rounded IEEE double arithmetic
/// only (+, −, ×, ÷, √; the logarithm and sine/cosine used by Box–Muller are evaluated here by
/// series, not by the C library), so the same seed gives bit-identical weights on every machine,
/// compiler and rank.
public struct SeededRNG: RandomNumberGenerator {
    private var s: (UInt64, UInt64, UInt64, UInt64)
    private var spareNormal: Double?

    /// A generator for `seed`, optionally on a named stream (e.g. "lossnet", "data") so that
    /// independent consumers of one config seed draw independent sequences.
    public init(seed: UInt64, stream: String = "") {
        var x = seed ^ SeededRNG.fnv1a(stream)
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    /// The generator's complete state (four xoshiro words, then the cached Box–Muller partner as
    /// a flag word and its bits), for checkpoints: `SeededRNG(state:)` continues the sequence.
    public var state: [UInt64] {
        [s.0, s.1, s.2, s.3, spareNormal == nil ? 0 : 1, spareNormal?.bitPattern ?? 0]
    }

    /// A generator continuing from `state` (as returned by `state`); nil when it is not six words
    /// or the xoshiro words are all zero (a state xoshiro can never reach).
    public init?(state: [UInt64]) {
        guard state.count == 6, state[0] | state[1] | state[2] | state[3] != 0, state[4] <= 1 else { return nil }
        s = (state[0], state[1], state[2], state[3])
        spareNormal = state[4] == 1 ? Double(bitPattern: state[5]) : nil
    }

    /// FNV-1a hash of a stream name.
    static func fnv1a(_ text: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in text.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        return text.isEmpty ? 0 : h
    }

    /// Next 64 random bits.
    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3
        s.2 ^= t
        s.3 = (s.3 << 45) | (s.3 >> 19)
        return result
    }

    /// Uniform double in [0, 1) with 53 random bits.
    public mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// Standard normal sample (Box–Muller with deterministic transcendental functions).
    public mutating func nextNormal() -> Double {
        if let z = spareNormal { spareNormal = nil; return z }
        let u1 = 1 - nextUnit()            // (0, 1]: log is finite
        let u2 = nextUnit()
        let r = (-2 * DeterministicMath.log(u1)).squareRoot()
        let (sn, cs) = DeterministicMath.sinCosTurns(u2)
        spareNormal = r * sn
        return r * cs
    }

    /// Fills `t` with N(mean, std²) samples.
    public mutating func fillNormal(_ t: Tensor, mean: Float = 0, std: Float) {
        for i in 0..<t.count { t.data[i] = Float(Double(mean) + Double(std) * nextNormal()) }
    }

    /// Fills `t` with U[lo, hi) samples.
    public mutating func fillUniform(_ t: Tensor, lo: Float, hi: Float) {
        for i in 0..<t.count { t.data[i] = Float(Double(lo) + (Double(hi) - Double(lo)) * nextUnit()) }
    }

    /// A uniformly random permutation of 0..<n (Fisher–Yates).
    public mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n < 2 { return p }
        for i in stride(from: n - 1, to: 0, by: -1) {
            let j = Int(next() % UInt64(i + 1))
            p.swapAt(i, j)
        }
        return p
    }
}

/// Transcendental functions from basic IEEE operations only, for reproducible sampling.
public enum DeterministicMath {
    /// Natural logarithm of a positive finite x: x = m·2^e with m in [√½, √2), then
    /// log m = 2·atanh((m−1)/(m+1)) by its series.
    public static func log(_ x: Double) -> Double {
        precondition(x > 0 && x.isFinite, "log of \(x)")
        var e = Int(x.exponent)
        var m = x.significand                       // [1, 2), exact
        if m > 1.4142135623730951 { m /= 2; e += 1 } // exact scaling by 2
        let z = (m - 1) / (m + 1), z2 = z * z
        var term = z, sum = 0.0
        var k = 1.0
        while k < 60 {
            sum += term / k
            term *= z2
            k += 2
        }
        return 2 * sum + Double(e) * 0.6931471805599453
    }

    /// sin and cos of 2π·u for u in [0, 1), by quadrant reduction and Taylor series on
    /// [−π/4, π/4].
    public static func sinCosTurns(_ u: Double) -> (Double, Double) {
        let eighths = u * 8
        let octant = Int(eighths)
        let quarter = (octant + 1) / 2               // nearest quarter turn, 0...4
        let q = quarter % 4
        let x = (u - Double(quarter) * 0.25) * (2 * Double.pi)   // |x| ≤ π/4
        let x2 = x * x
        var s = 0.0, c = 0.0, ts = x, tc = 1.0
        var n = 1.0
        while n < 30 {
            s += ts; c += tc
            ts *= -x2 / ((n + 1) * (n + 2))
            tc *= -x2 / (n * (n + 1))
            n += 2
        }
        switch q {
        case 0: return (s, c)
        case 1: return (c, -s)
        case 2: return (-s, -c)
        default: return (-c, s)
        }
    }
}
