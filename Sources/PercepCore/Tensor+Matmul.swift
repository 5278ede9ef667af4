import Foundation

extension Tensor {
    /// Matrix product. a: [..., M, K] with b: [K, N] → [..., M, N]; or a: [B, M, K] with
    /// b: [B, K, N] → [B, M, N].
    public func matmul(_ b: Tensor) -> Tensor {
        let a = self
        precondition(a.rank >= 2 && (b.rank == 2 || (b.rank == 3 && a.rank == 3 && a.shape[0] == b.shape[0])),
                     "matmul: unsupported shapes \(a.shape) × \(b.shape)")
        let k = a.shape[a.rank - 1]
        precondition(b.shape[b.rank - 2] == k, "matmul: inner sizes differ in \(a.shape) × \(b.shape)")
        let n = b.shape[b.rank - 1]
        if b.rank == 2 {
            let m = a.count / Swift.max(k, 1)
            let outShape = Array(a.shape.dropLast()) + [n]
            let out = Tensor(uninitialized: outShape)
            Gemm.sgemm(m: m, n: n, k: k, a: a.data, lda: k, b: b.data, ldb: n, c: out.data, ldc: n)
            Tape.record(out, inputs: [a, b]) { g in
                var da: Tensor?, db: Tensor?
                if a.requiresGrad {   // dA = dC · Bᵀ
                    da = Tensor(uninitialized: a.shape)
                    Gemm.sgemm(transB: true, m: m, n: k, k: n, a: g.data, lda: n, b: b.data, ldb: n, c: da!.data, ldc: k)
                }
                if b.requiresGrad {   // dB = Aᵀ · dC
                    db = Tensor(uninitialized: b.shape)
                    Gemm.sgemm(transA: true, m: k, n: n, k: m, a: a.data, lda: k, b: g.data, ldb: n, c: db!.data, ldc: n)
                }
                return [da, db]
            }
            return out
        }
        let batch = a.shape[0], m = a.shape[1]
        let out = Tensor(uninitialized: [batch, m, n])
        for i in 0..<batch {
            Gemm.sgemm(m: m, n: n, k: k, a: a.data + i * m * k, lda: k, b: b.data + i * k * n, ldb: n,
                       c: out.data + i * m * n, ldc: n)
        }
        Tape.record(out, inputs: [a, b]) { g in
            let da = a.requiresGrad ? Tensor(uninitialized: a.shape) : nil
            let db = b.requiresGrad ? Tensor(uninitialized: b.shape) : nil
            for i in 0..<batch {
                if let da {
                    Gemm.sgemm(transB: true, m: m, n: k, k: n, a: g.data + i * m * n, lda: n,
                               b: b.data + i * k * n, ldb: n, c: da.data + i * m * k, ldc: k)
                }
                if let db {
                    Gemm.sgemm(transA: true, m: k, n: n, k: m, a: a.data + i * m * k, lda: k,
                               b: g.data + i * m * n, ldb: n, c: db.data + i * k * n, ldc: n)
                }
            }
            return [da, db]
        }
        return out
    }

    /// Fully connected layer: x: [..., in], weight: [out, in], bias: [out] → [..., out]
    /// (y = x·Wᵀ + b, PyTorch's `F.linear`).
    public func linear(weight: Tensor, bias: Tensor?) -> Tensor {
        let y = matmul(weight.transposed(0, 1))
        guard let bias else { return y }
        return y + bias
    }
}
