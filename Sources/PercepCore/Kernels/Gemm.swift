import CBLAS

/// Row-major single-precision GEMM: C = alpha · op(A) · op(B) + beta · C, with op(A): [M, K],
/// op(B): [K, N], C: [M, N]. The one entry point to OpenBLAS's sgemm.
public enum Gemm {
    /// Calls OpenBLAS `cblas_sgemm` (row-major).
    @inline(__always)
    public static func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                             alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                             b: UnsafePointer<Float>, ldb: Int,
                             beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        if m == 0 || n == 0 { return }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// The kernel family OpenBLAS runs on this CPU ("Haswell", "SkylakeX", …; it follows
    /// `OPENBLAS_CORETYPE` when that is set).
    public static let kernelFamily: String = openblas_get_corename().map { String(cString: $0) } ?? "unknown"

    /// Vector width in bits of OpenBLAS's sgemm kernels here: 512 for its AVX-512 families, 256
    /// for the AVX/AVX2 ones, 128 otherwise.
    public static let vectorBits: Int = {
        let family = kernelFamily.lowercased()
        if ["skylakex", "cooperlake", "sapphirerapids"].contains(where: family.contains) { return 512 }
        if ["haswell", "zen", "sandybridge", "excavator", "steamroller", "piledriver", "bulldozer"].contains(where: family.contains) {
            return 256
        }
        return 128
    }()

    /// Reference triple loop with double accumulation, for tests.
    public static func sgemmNaive(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                                  alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                                  b: UnsafePointer<Float>, ldb: Int,
                                  beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        for i in 0..<m {
            for j in 0..<n {
                var acc = 0.0
                for p in 0..<k {
                    let av = transA ? a[p * lda + i] : a[i * lda + p]
                    let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                    acc += Double(av) * Double(bv)
                }
                let prev = beta == 0 ? 0 : beta * c[i * ldc + j]
                c[i * ldc + j] = alpha * Float(acc) + prev
            }
        }
    }
}
