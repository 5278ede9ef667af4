import Foundation
import CDNNLConv

/// The convolution algorithms the engine can run.
public enum ConvAlgorithm: String, CaseIterable, Sendable {
    /// im2col + OpenBLAS sgemm (1×1 stride-1 convolutions skip the im2col).
    case im2col
    /// oneDNN's direct convolution (blocked layouts, JIT kernels).
    case dnnl
}

/// One `conv2d` entry point that picks an algorithm per shape.
///
/// No single kernel wins every shape on this CPU: oneDNN's blocked direct convolution is far
/// ahead on wide images with few channels, im2col + GEMM on small images with many channels.
/// The default is a rule measured on the benchmark shapes; `PERCEP_CONV=im2col|dnnl` forces one
/// algorithm and `PERCEP_CONV=tune` times both once per shape and keeps the faster.
public enum ConvDispatch {
    private static let lock = NSLock()
    private static var handles: [HandleKey: OpaquePointer] = [:]
    private static var tuned: [ConvGeometry: ConvAlgorithm] = [:]
    private static var forced: ConvAlgorithm? = ConvAlgorithm(rawValue: ProcessInfo.processInfo.environment["PERCEP_CONV"] ?? "")
    private static var tuning = ProcessInfo.processInfo.environment["PERCEP_CONV"] == "tune"

    struct HandleKey: Hashable { let geometry: ConvGeometry; let bias: Bool }

    /// Forces one algorithm for every shape (nil restores the per-shape choice).
    public static func force(_ algorithm: ConvAlgorithm?) {
        lock.lock(); defer { lock.unlock() }
        forced = algorithm
    }

    /// Called when the thread budget changes: oneDNN fixes a primitive's thread split when the
    /// primitive is created, so cached primitives are dropped and rebuilt on next use.
    static func threadsChanged() {
        lock.lock(); defer { lock.unlock() }
        pd_set_num_threads(Int32(ThreadBudget.threads))
        for h in handles.values { pd_conv_destroy(h) }
        handles.removeAll()
    }

    /// The algorithm used for `g`.
    public static func algorithm(for g: ConvGeometry) -> ConvAlgorithm {
        lock.lock(); defer { lock.unlock() }
        if let forced { return forced }
        if let t = tuned[g] { return t }
        return rule(g)
    }

    /// The measured rule: oneDNN when the output plane is large enough for its blocked kernels
    /// to amortise the layout reorders, im2col + GEMM otherwise.
    static func rule(_ g: ConvGeometry) -> ConvAlgorithm {
        if g.groups > 1 && g.groups == g.cIn { return .dnnl }           // depthwise: GEMM degenerates
        return g.outH * g.outW >= 32 * 32 ? .dnnl : .im2col
    }

    /// The cached oneDNN handle for `g`, created on first use.
    static func dnnlHandle(_ g: ConvGeometry, bias: Bool) -> OpaquePointer? {
        let key = HandleKey(geometry: g, bias: bias)
        lock.lock(); defer { lock.unlock() }
        if let h = handles[key] { return h }
        var geom = pd_conv_geometry(n: Int64(g.n), c_in: Int64(g.cIn), h: Int64(g.h), w: Int64(g.w),
                                    c_out: Int64(g.cOut), kh: Int64(g.kh), kw: Int64(g.kw),
                                    stride_h: Int64(g.strideH), stride_w: Int64(g.strideW),
                                    pad_h: Int64(g.padH), pad_w: Int64(g.padW),
                                    dil_h: Int64(g.dilH), dil_w: Int64(g.dilW), groups: Int64(g.groups),
                                    out_h: Int64(g.outH), out_w: Int64(g.outW))
        var err = [CChar](repeating: 0, count: 512)
        guard let h = pd_conv_create(&geom, bias ? 1 : 0, &err, err.count) else { return nil }
        handles[key] = h
        return h
    }

    static func dnnlFailure(_ h: OpaquePointer, _ what: String) -> Never {
        fatalError("oneDNN \(what) failed: \(String(cString: pd_conv_last_error(h)))")
    }

    /// y = conv(x, w) + b with the chosen algorithm. Shapes as `ConvIm2col.forward`.
    public static func forward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                               _ b: UnsafePointer<Float>?, _ g: ConvGeometry) {
        maybeTune(g)
        if algorithm(for: g) == .dnnl, let h = dnnlHandle(g, bias: b != nil) {
            if pd_conv_forward(h, x, w, b, y) != 0 { dnnlFailure(h, "forward") }
            return
        }
        ConvIm2col.forward(y, x, w, b, g)
    }

    /// dx = convᵀ(dy, w) (overwritten).
    public static func backwardData(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                                    _ g: ConvGeometry) {
        if algorithm(for: g) == .dnnl, let h = dnnlHandle(g, bias: false) {
            if pd_conv_backward_data(h, dy, w, dx) != 0 { dnnlFailure(h, "backward data") }
            return
        }
        ConvIm2col.backwardData(dx, dy, w, g)
    }

    /// dw, db (overwritten; either may be nil).
    public static func backwardWeight(_ dw: UnsafeMutablePointer<Float>?, _ db: UnsafeMutablePointer<Float>?,
                                      _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ g: ConvGeometry) {
        if let dw, algorithm(for: g) == .dnnl, let h = dnnlHandle(g, bias: db != nil) {
            if pd_conv_backward_weights(h, x, dy, dw, db) != 0 { dnnlFailure(h, "backward weights") }
            return
        }
        ConvIm2col.backwardWeight(dw, db, x, dy, g)
    }

    /// With `PERCEP_CONV=tune`, times both algorithms' forward pass once for a new shape.
    private static func maybeTune(_ g: ConvGeometry) {
        lock.lock()
        let need = tuning && forced == nil && tuned[g] == nil
        lock.unlock()
        guard need else { return }
        let x = Tensor.full([g.n, g.cIn, g.h, g.w], 0.5)
        let w = Tensor.full([g.cOut, g.cInPerGroup, g.kh, g.kw], 0.01)
        let y = Tensor(uninitialized: [g.n, g.cOut, g.outH, g.outW])
        var best = (ConvAlgorithm.im2col, Double.infinity)
        for alg in ConvAlgorithm.allCases {
            let run = {
                if alg == .dnnl, let h = dnnlHandle(g, bias: false) { _ = pd_conv_forward(h, x.data, w.data, nil, y.data) }
                else { ConvIm2col.forward(y.data, x.data, w.data, nil, g) }
            }
            run()
            let t0 = DispatchTime.now().uptimeNanoseconds
            run()
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0)
            if dt < best.1 { best = (alg, dt) }
        }
        lock.lock(); tuned[g] = best.0; lock.unlock()
    }

    /// The implementation oneDNN picked for `g` (e.g. "jit:avx2"), for benchmark reports.
    public static func dnnlImplementation(_ g: ConvGeometry, pass: Int) -> String? {
        guard let h = dnnlHandle(g, bias: false), let s = pd_conv_impl_name(h, Int32(pass)) else { return nil }
        return String(cString: s)
    }
}
