import CKernels
import Foundation

/// Raw loops over float buffers used by the ops. Names follow llm.c: outputs first.
public enum Kernels {
    /// `dst[i] += src[i]`.
    @inline(__always)
    public static func addInPlace(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, count: Int) {
        parallelChunks(count) { r in
            for i in r { dst[i] += src[i] }
        }
    }

    /// `out[i] = exp(x[i] − shift[i])` (`exp(x[i])` without `shift`) on the calling thread, with
    /// the CPU's widest vectors (CKernels' `pd_vexp`: within 2 ulp, the same bits on every CPU).
    /// `out` may be `x`. The softmax and cross-entropy sweeps call it on rows of a block.
    @inline(__always)
    public static func exp(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, shift: UnsafePointer<Float>? = nil, count: Int) {
        pd_vexp(out, x, shift, Int64(count))
    }

    /// `out[i] = f(a[i])`.
    @inline(__always)
    public static func map(_ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, count: Int,
                           _ f: (Float) -> Float) {
        parallelChunks(count) { r in
            for i in r { out[i] = f(a[i]) }
        }
    }

    /// `out[i] = f(a[i], b[i])`.
    @inline(__always)
    public static func zip(_ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                           count: Int, _ f: (Float, Float) -> Float) {
        parallelChunks(count) { r in
            for i in r { out[i] = f(a[i], b[i]) }
        }
    }

    /// `out[i] = f(a[i], b[i], c[i])`.
    @inline(__always)
    public static func zip3(_ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                            _ c: UnsafePointer<Float>, count: Int, _ f: (Float, Float, Float) -> Float) {
        parallelChunks(count) { r in
            for i in r { out[i] = f(a[i], b[i], c[i]) }
        }
    }

    /// Sum of `count` elements in double precision (stable for long sums).
    public static func sum(_ a: UnsafePointer<Float>, count: Int) -> Double {
        var acc = 0.0
        var i = 0
        while i < count { acc += Double(a[i]); i += 1 }
        return acc
    }
}

/// The iteration plan for a broadcasting binary op: output shape plus each operand's strides
/// (0 along broadcast dimensions), with adjacent dimensions merged where possible.
struct BroadcastPlan {
    let outShape: [Int]
    let dims: [Int]
    let aStrides: [Int]
    let bStrides: [Int]

    init(_ a: [Int], _ b: [Int]) {
        outShape = Shape.broadcast(a, b)
        let n = outShape.count
        func stridesFor(_ s: [Int]) -> [Int] {
            let padded = [Int](repeating: 1, count: n - s.count) + s
            let st = Shape.strides(padded)
            return (0..<n).map { padded[$0] == 1 ? 0 : st[$0] }
        }
        var d: [Int] = [], sa: [Int] = [], sb: [Int] = []
        let fa = stridesFor(a), fb = stridesFor(b)
        for i in 0..<n where outShape[i] != 1 {
            if let last = d.last, sa.last! == fa[i] * outShape[i], sb.last! == fb[i] * outShape[i] {
                _ = last
                d[d.count - 1] *= outShape[i]
                sa[sa.count - 1] = fa[i]
                sb[sb.count - 1] = fb[i]
            } else {
                d.append(outShape[i]); sa.append(fa[i]); sb.append(fb[i])
            }
        }
        if d.isEmpty { d = [1]; sa = [0]; sb = [0] }
        dims = d; aStrides = sa; bStrides = sb
    }

    /// Calls `body(outOffset, aOffset, bOffset, innerCount, aInnerStride, bInnerStride)` for each
    /// run of the innermost dimension.
    @inline(__always)
    func forEachRun(_ body: (Int, Int, Int, Int, Int, Int) -> Void) {
        let r = dims.count
        let inner = dims[r - 1]
        let outer = dims.dropLast().reduce(1, *)
        let isa = aStrides[r - 1], isb = bStrides[r - 1]
        @inline(__always) func runBody(_ o: Int) {
            var rem = o, ao = 0, bo = 0
            var k = r - 2
            while k >= 0 {
                let idx = rem % dims[k]
                rem /= dims[k]
                ao += idx * aStrides[k]
                bo += idx * bStrides[k]
                k -= 1
            }
            body(o * inner, ao, bo, inner, isa, isb)
        }
        if outer * inner >= 65_536 && outer > 1 {
            parallelChunks(outer, grain: max(1, 32_768 / max(inner, 1))) { range in for o in range { runBody(o) } }
        } else {
            for o in 0..<outer { runBody(o) }
        }
    }
}
