import Foundation
import CKernels

/// The machine's peak single-precision FMA rate: every thread runs independent fused
/// multiply-adds on the widest vectors the CPU has (AVX-512 where present, else AVX2), so
/// efficiency figures mean the same on AVX2 and AVX-512 machines (OpenBLAS's sgemm, the old
/// denominator, stays on AVX2 kernels under `OPENBLAS_CORETYPE=Haswell`).
public enum FMAPeak {
    /// GFLOP/s of `threads` threads probing at once (best of `repeats`), and the vector width used.
    public static func measure(threads: Int = ThreadBudget.threads, repeats: Int = 3) -> (gflops: Double, vectorBits: Int) {
        let iterations = 10_000_000
        var best = 0.0, bits: Int32 = 0
        for _ in 0..<repeats {
            var flops = [Double](repeating: 0, count: threads)
            let t0 = DispatchTime.now().uptimeNanoseconds
            flops.withUnsafeMutableBufferPointer { f in
                let base = f.baseAddress!
                parallelFor(threads) { i in
                    var b: Int32 = 0
                    base[i] = pd_fma_probe(iterations, &b)
                    if i == 0 { bits = b }
                }
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            best = Swift.max(best, flops.reduce(0, +) / seconds / 1e9)
        }
        return (best, Int(bits))
    }
}
