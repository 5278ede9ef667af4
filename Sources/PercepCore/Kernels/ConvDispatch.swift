import Foundation
import CDNNLConv

/// The convolution algorithms the engine can run.
public enum ConvAlgorithm: String, CaseIterable, Sendable {
    /// im2col + OpenBLAS sgemm (1×1 stride-1 convolutions skip the im2col).
    case im2col
    /// oneDNN's direct convolution (blocked layouts, JIT kernels).
    case dnnl
}

/// The three passes of a convolution, each dispatched on its own.
public enum ConvPass: Int, CaseIterable, Sendable {
    /// y = conv(x, w).
    case forward
    /// dx from dy and w.
    case backwardData
    /// dw (and db) from x and dy.
    case backwardWeight
}

/// One `conv2d` entry point that picks an algorithm per shape and per pass.
///
/// No single kernel wins every shape and pass on this CPU (see docs/benchmarks.md): oneDNN's
/// blocked direct convolution leads on most, im2col + GEMM on a few where oneDNN pads channels
/// or falls back to its generic path. The default is a rule measured on the benchmark shapes,
/// except for the passes where the rule is a near-tie whose winner differs between machines of
/// the same kind (some backward-weight shapes when oneDNN's kernels are no wider than
/// OpenBLAS's): those are timed once per shape on this machine, the decision remembered on disk
/// (`ConvTuneCache`).
/// Winograd's rule (`usesWinograd`) was measured where oneDNN's kernels are AVX2, as Winograd's
/// transforms are; where oneDNN's are wider, each pass Winograd would run is timed the same way
/// against the direct algorithm (`winogradIsTimed`).
/// `PERCEP_CONV=rule` never times (the rule's fallback for those, Winograd where its rule says),
/// `PERCEP_CONV=tune` times every new shape and pass, Winograd's included, and
/// `PERCEP_CONV=im2col|dnnl` forces one algorithm.
public enum ConvDispatch {
    private static let lock = NSLock()
    private static var handles: [HandleKey: OpaquePointer] = [:]
    private static var tuned: [TuneKey: ConvAlgorithm] = [:]
    /// Timed Winograd-or-direct decisions: true where Winograd was faster.
    private static var tunedWinograd: [TuneKey: Bool] = [:]
    private static var ruled: [TuneKey: RuleVerdict] = [:]
    private static let environment = ProcessInfo.processInfo.environment["PERCEP_CONV"] ?? ""
    private static var forced: ConvAlgorithm? = ConvAlgorithm(rawValue: environment)
    private static var tuning = environment == "tune"
    /// Whether the rule's near-ties are timed (everything but `PERCEP_CONV=rule`).
    private static var measuringTies = environment != "rule"
    /// Where measured decisions persist (`ConvTuneCache`), nil: in memory only.
    private static var tuneCachePath: String? = environment == "rule" ? nil : ConvTuneCache.path
    /// This machine's decisions read from the cache file, loaded on first need.
    private static var storedDecisions: [String: String]?

    /// Sets what is measured: every shape and pass (`all`, as `PERCEP_CONV=tune`), the rule's
    /// near-ties only (`ties`, the default) or nothing (as `PERCEP_CONV=rule`), with decisions
    /// kept in `cacheFile` (nil: in memory only); forgets decisions taken so far. For tests.
    static func setMeasuring(all: Bool, ties: Bool, cacheFile: String?) {
        lock.lock(); defer { lock.unlock() }
        tuning = all
        measuringTies = ties
        tuneCachePath = cacheFile
        storedDecisions = nil
        tuned.removeAll()
        tunedWinograd.removeAll()
    }

    struct HandleKey: Hashable { let geometry: ConvGeometry; let bias: Bool; var relu = false }
    /// A measured decision's key: shape and pass (and for the Winograd-or-direct decisions, the
    /// Winograd tile they time; 0 elsewhere).
    struct TuneKey: Hashable {
        let geometry: ConvGeometry; let pass: ConvPass; var winogradTile = 0
    }

    /// Forces one algorithm for every shape (nil restores the per-shape choice).
    public static func force(_ algorithm: ConvAlgorithm?) {
        lock.lock(); defer { lock.unlock() }
        forced = algorithm
    }

    /// The algorithm forced for every shape (by `force` or `PERCEP_CONV`), nil when none is.
    public static var forcedAlgorithm: ConvAlgorithm? {
        lock.lock(); defer { lock.unlock() }
        return forced
    }

    /// Called when the thread budget changes: oneDNN fixes a primitive's thread split when the
    /// primitive is created, so cached primitives are dropped and rebuilt on next use.
    static func threadsChanged() {
        lock.lock(); defer { lock.unlock() }
        storedDecisions = nil   // decisions are per thread count
        tuned.removeAll()
        tunedWinograd.removeAll()
        for h in handles.values { pd_conv_destroy(h) }
        handles.removeAll()
    }

    /// The algorithm used for `pass` of `g`.
    public static func algorithm(for g: ConvGeometry, pass: ConvPass) -> ConvAlgorithm {
        lock.lock()
        if let forced { lock.unlock(); return forced }
        if let t = tuned[TuneKey(geometry: g, pass: pass)] { lock.unlock(); return t }
        let all = tuning, ties = measuringTies
        lock.unlock()
        if !all {
            switch rule(g, pass) {
            case .use(let algorithm): return algorithm
            case .measure(let fallback): if !ties { return fallback }
            }
        }
        lock.lock()
        if let stored = storedDecision(ConvTuneCache.key(g, pass)).flatMap(ConvAlgorithm.init(rawValue:)) {
            tuned[TuneKey(geometry: g, pass: pass)] = stored
            lock.unlock()
            return stored
        }
        lock.unlock()
        return tune(g, pass)
    }

    /// The decision stored under `key` in this machine's table of the cache file (read on first
    /// need), nil when there is none or no file is kept. Call with `lock` held.
    private static func storedDecision(_ key: String) -> String? {
        guard let path = tuneCachePath else { return nil }
        if storedDecisions == nil { storedDecisions = ConvTuneCache.load(path: path, machine: ConvTuneCache.machineKey) }
        return storedDecisions?[key]
    }

    /// Adds one measured decision to this machine's table of the cache file, re-read first so
    /// that decisions other processes wrote meanwhile are kept. Call with `lock` held.
    private static func storeDecision(_ value: String, key: String) {
        guard let path = tuneCachePath else { return }
        var table = ConvTuneCache.load(path: path, machine: ConvTuneCache.machineKey)
        table[key] = value
        storedDecisions = table
        ConvTuneCache.store(table, path: path, machine: ConvTuneCache.machineKey)
    }

    /// What the rule says for one shape and pass: an algorithm, or that the pass is a near-tie
    /// to time on this machine (`fallback` runs where nothing is timed).
    enum RuleVerdict: Hashable {
        case use(ConvAlgorithm)
        case measure(fallback: ConvAlgorithm)

        /// The algorithm the rule alone would run.
        var algorithm: ConvAlgorithm {
            switch self { case .use(let a), .measure(let a): return a }
        }
    }

    /// The measured rule (`percep-dist bench conv --compare`, docs/benchmarks.md), expressed in
    /// what the libraries report on the machine at hand rather than pinned to one CPU: which
    /// implementation oneDNN picked for the pass (its GEMM fallback or a JIT kernel, and for
    /// which ISA) and how wide OpenBLAS's kernels are (`Gemm.vectorBits`; `OPENBLAS_CORETYPE`
    /// can hold OpenBLAS below the CPU's ISA while oneDNN uses all of it).
    ///
    /// - oneDNN's GEMM fallback (dilated layers and the strided 7×7 stem's backward-data with
    ///   oneDNN's AVX2 kernels) loses to im2col + OpenBLAS when OpenBLAS is at least as wide;
    ///   when oneDNN's GEMM is wider, it is kept.
    /// - A JIT kernel wider than OpenBLAS's (AVX-512 oneDNN beside AVX2 OpenBLAS, measured on
    ///   Zen 5) wins every pass of the benchmark shapes by 1.3–4×.
    /// - At equal widths (both AVX2), oneDNN wins forward, backward-data and most of
    ///   backward-weight. Two AVX2-only EPYCs disagreed on backward-weight of 3×3 layers with
    ///   ≥ 256 input channels and of few input channels off oneDNN's 8-channel block (a loss
    ///   network's first layer on 19 classes; docs/benchmarks.md): im2col won them on the first,
    ///   oneDNN some of them by 15–25 % on a 2.5× faster one. Those near-ties are timed on the
    ///   machine at hand, with im2col as the fallback.
    /// Decided once per shape and pass.
    static func rule(_ g: ConvGeometry, _ pass: ConvPass) -> RuleVerdict {
        let key = TuneKey(geometry: g, pass: pass)
        lock.lock()
        if let decided = ruled[key] { lock.unlock(); return decided }
        lock.unlock()
        let decided = measuredRule(g, pass)
        lock.lock(); ruled[key] = decided; lock.unlock()
        return decided
    }

    /// Vector width in bits of the widest ISA oneDNN uses on this CPU (after any
    /// `DNNL_MAX_CPU_ISA` limit).
    public static let dnnlVectorBits = Int(pd_dnnl_isa_bits())

    /// Bytes of oneDNN's shared workspace (blocked copies and scratchpads), which grows to the
    /// largest pass run so far; benchmarks report it beside peak RSS.
    public static var dnnlWorkspaceBytes: Int { Int(pd_workspace_bytes()) }

    /// The vector width a oneDNN implementation string names ("jit:avx512_core" → 512,
    /// "jit_1x1:avx2" → 256), nil when it names no ISA (the GEMM fallback "x64:gemm:jit").
    static func vectorBits(ofImplementation impl: String) -> Int? {
        if impl.contains("avx512") { return 512 }
        if impl.contains("avx") { return 256 }
        if impl.contains("sse41") { return 128 }
        return nil
    }

    /// Whether a oneDNN implementation string is its GEMM-based fallback ("x64:gemm:jit" and the
    /// like; not "brgemm", oneDNN's batch-reduce JIT kernels).
    static func isGemmFallback(_ impl: String) -> Bool { impl.split(separator: ":").contains("gemm") }

    private static func measuredRule(_ g: ConvGeometry, _ pass: ConvPass) -> RuleVerdict {
        if g.groups > 1 && g.groups == g.cIn { return .use(.dnnl) }   // depthwise: GEMM degenerates
        guard let impl = dnnlImplementation(g, pass: pass) else { return .use(.im2col) }
        if isGemmFallback(impl) { return .use(Gemm.vectorBits >= dnnlVectorBits ? .im2col : .dnnl) }
        if (vectorBits(ofImplementation: impl) ?? dnnlVectorBits) > Gemm.vectorBits { return .use(.dnnl) }
        switch pass {
        case .forward, .backwardData:
            return .use(.dnnl)
        case .backwardWeight:
            if g.cInPerGroup >= 256 && g.kh * g.kw > 1 { return .measure(fallback: .im2col) }
            return g.cInPerGroup < 32 && g.cInPerGroup % 8 != 0 && g.kh * g.kw <= 9 ? .measure(fallback: .im2col) : .use(.dnnl)
        }
    }

    /// The cached oneDNN handle for `g`, created on first use (nil if oneDNN rejects the shape).
    static func dnnlHandle(_ g: ConvGeometry, bias: Bool, relu: Bool = false) -> OpaquePointer? {
        let key = HandleKey(geometry: g, bias: bias, relu: relu)
        lock.lock(); defer { lock.unlock() }
        if let h = handles[key] { return h }
        var geom = pd_conv_geometry(n: Int64(g.n), c_in: Int64(g.cIn), h: Int64(g.h), w: Int64(g.w),
                                    c_out: Int64(g.cOut), kh: Int64(g.kh), kw: Int64(g.kw),
                                    stride_h: Int64(g.strideH), stride_w: Int64(g.strideW),
                                    pad_h: Int64(g.padH), pad_w: Int64(g.padW),
                                    dil_h: Int64(g.dilH), dil_w: Int64(g.dilW), groups: Int64(g.groups),
                                    out_h: Int64(g.outH), out_w: Int64(g.outW))
        var err = [CChar](repeating: 0, count: 512)
        guard let h = pd_conv_create(&geom, bias ? 1 : 0, relu ? 1 : 0, &err, err.count) else { return nil }
        handles[key] = h
        return h
    }

    /// An existing handle for `g` with or without bias (backward data works with either).
    static func anyHandle(_ g: ConvGeometry) -> OpaquePointer? {
        lock.lock()
        let existing = [(true, false), (false, false), (true, true), (false, true)].lazy
            .compactMap { handles[HandleKey(geometry: g, bias: $0.0, relu: $0.1)] }.first
        lock.unlock()
        return existing ?? dnnlHandle(g, bias: false)
    }

    static func dnnlFailure(_ h: OpaquePointer, _ what: String) -> Never {
        fatalError("oneDNN \(what) failed: \(String(cString: pd_conv_last_error(h)))")
    }

    /// y = conv(x, w) + b (overwritten), then max(y, 0) when `relu`. Shapes as
    /// `ConvIm2col.forward`. Inside `withSwitchingForward`, `switchingForward`; otherwise
    /// Winograd F(4×4, 3×3) where `usesWinograd` says so (trainable layers too: its rounding
    /// moves values a little more than a direct convolution's, as cuDNN's Winograd does in
    /// training), else `directForward`.
    public static func forward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                               _ b: UnsafePointer<Float>?, _ g: ConvGeometry, relu: Bool = false) {
        if switchingForwardOnThisThread {
            switchingForward(y, x, w, b, g, relu: relu)
        } else if usesWinograd(g, pass: .forward) {
            lock.lock(); passCounts[ConvPass.forward.rawValue] += 1; lock.unlock()
            ConvWinograd.forward(y, x, w, b, g, relu: relu)
        } else {
            directForward(y, x, w, b, g, relu: relu)
        }
    }

    /// The forward of a convolution whose output's ReLU signs and max-pool argmaxes route a
    /// gradient (the prediction's embedding in a perceptual loss), which should fall as a float32
    /// direct convolution's do: Winograd F(2×2, 3×3) where `usesWinogradTwo` says so (transforms
    /// of 0, ±1 and ½: it rounds as a direct convolution does and keeps the exact ties of flat
    /// regions, `ConvWinograd.Tile`), else `directForward`; under `winogradOnSwitchingForward`, a
    /// measurement mode, F(4×4, 3×3) where `usesWinograd` says so, else `directForward`. Shapes as
    /// `forward`.
    public static func switchingForward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                                        _ b: UnsafePointer<Float>?, _ g: ConvGeometry, relu: Bool = false) {
        let tile: ConvWinograd.Tile?
        if winogradOnSwitchingForward {
            tile = usesWinograd(g, pass: .forward) ? .four : nil   // as `frozenForward` in that mode
        } else {
            tile = usesWinogradTwo(g) ? .two : nil
        }
        guard let tile else { return directForward(y, x, w, b, g, relu: relu) }
        lock.lock(); passCounts[ConvPass.forward.rawValue] += 1; lock.unlock()
        ConvWinograd.forward(y, x, w, b, g, relu: relu, tile: tile)
    }

    /// Runs `body` with every `forward` on this thread a `switchingForward`: for the prediction's
    /// embedding through a loss network run on the tape (ResNet-18, GoogLeNet, MobileNetV2), whose
    /// ReLU signs and max-pool argmaxes route the gradient as in the layer-chain networks'
    /// prediction forward. Per thread, as the tape is.
    public static func withSwitchingForward<T>(_ body: () throws -> T) rethrows -> T {
        let outer = Thread.current.threadDictionary[switchingForwardKey] as? Int ?? 0
        Thread.current.threadDictionary[switchingForwardKey] = outer + 1
        defer { Thread.current.threadDictionary[switchingForwardKey] = outer }
        return try body()
    }
    private static let switchingForwardKey = "PercepCore.ConvDispatch.switchingForwardDepth"
    private static var switchingForwardOnThisThread: Bool { (Thread.current.threadDictionary[switchingForwardKey] as? Int ?? 0) > 0 }

    /// `forward` with a direct algorithm only (oneDNN's or im2col, per shape), never Winograd: for
    /// a forward whose ReLU signs and max-pool argmaxes route a gradient and should fall as a
    /// float32 direct convolution's do (the prediction's embedding in a perceptual loss).
    public static func directForward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                                     _ b: UnsafePointer<Float>?, _ g: ConvGeometry, relu: Bool = false) {
        run(.forward, g, with: algorithm(for: g, pass: .forward), y: y, x: x, w: w, b: b, relu: relu)
    }

    /// dx = convᵀ(dy, w) (overwritten): Winograd where `usesWinograd` says so, otherwise the
    /// per-shape direct algorithm.
    public static func backwardData(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                                    _ g: ConvGeometry) {
        if usesWinograd(g, pass: .backwardData) {
            lock.lock(); passCounts[ConvPass.backwardData.rawValue] += 1; lock.unlock()
            ConvWinograd.backwardData(dx, dy, w, g)
        } else {
            run(.backwardData, g, with: algorithm(for: g, pass: .backwardData), w: w, dx: dx, dy: dy)
        }
    }

    /// The algorithm that runs `pass` of `g` by default, for reports: "winograd" where
    /// `usesWinograd` says so, else the per-shape direct algorithm's name.
    public static func algorithmName(for g: ConvGeometry, pass: ConvPass) -> String {
        usesWinograd(g, pass: pass) ? "winograd" : algorithm(for: g, pass: pass).rawValue
    }

    /// Whether Winograd F(4×4, 3×3) runs `pass` of convolution `g` (unless an algorithm is forced
    /// or `PERCEP_WINOGRAD=0`): where it applies, with at least 16 channels on both sides, and
    /// over the `inputs` that share one weight transform at least 8 output tiles for forward and
    /// backward-data (one group of the transforms, the GEMM's narrowest block), 128 for
    /// backward-weight (its GEMMs sum over the tiles). Measured with `bench conv --compare`
    /// (docs/benchmarks.md, AVX2): forward and backward-data 1.1–3× oneDNN's rate on the VGG16
    /// shapes, and since a large weight transform is made a chunk at a time in cache
    /// (`ConvWinograd.sharedTransformBudget`) 1.1–1.3× on 512 channels at 8×8, batch 2: 8 tiles
    /// (0.75× while it went through memory); 1.7–2.6× on CondInst R-50-FPN's 3×3 layers.
    /// Backward-weight 1.4–2.4× the direct rate from 128 tiles up with ≥ 32 channels each side,
    /// 0.3–0.8× at 8–40 tiles, 0.85× PyTorch's direct rate with 19 input channels (a loss
    /// network's first layer on 19 classes: each position's GEMM is 19 columns wide). Its
    /// GEMMs are OpenBLAS's, so it is used only where OpenBLAS's kernels are as wide as oneDNN's:
    /// held to AVX2 beside AVX-512 oneDNN (`OPENBLAS_CORETYPE`), a quarter of the multiplies at
    /// half the width is no clear gain over the direct kernel, which there beat im2col + OpenBLAS
    /// by 1.3–4× (`measuredRule`).
    ///
    /// Where `winogradIsTimed`, a pass the rule gives to Winograd is timed once against the
    /// direct algorithm instead (on the `inputs` together, as `frozenForward` runs them), and
    /// runs with whichever was faster.
    public static func usesWinograd(_ g: ConvGeometry, pass: ConvPass, inputs: Int = 1) -> Bool {
        guard winogradRule(g, pass: pass, inputs: inputs) else { return false }
        guard winogradIsTimed else { return true }
        var together = g
        together.n = inputs * g.n
        return winogradWins(together, pass)
    }
    private static let winogradEnabled = ProcessInfo.processInfo.environment["PERCEP_WINOGRAD"] != "0"

    /// Whether `switchingForward` runs Winograd F(2×2, 3×3) on `g`: where it applies (`appliesTwo`), with at
    /// least 16 channels on both sides and 8 tiles of 2×2 (unless an algorithm is forced or
    /// `PERCEP_WINOGRAD=0`). Measured with `bench conv --compare` on the VGG16 shapes (AVX2
    /// EPYC, docs/benchmarks.md): 1.1–2.6× oneDNN's direct forward, 166–319 direct-equivalent
    /// GFLOP/s. Where `winogradIsTimed` (oneDNN wider than AVX2) it is timed against the direct
    /// algorithm once per shape instead, as F(4×4, 3×3)'s passes are.
    public static func usesWinogradTwo(_ g: ConvGeometry) -> Bool {
        let tiles = g.n * ((g.outH + 1) / 2) * ((g.outW + 1) / 2)
        guard winogradEnabled && forcedAlgorithm == nil && ConvWinograd.appliesTwo(g) && g.cIn >= 16 && g.cOut >= 16 && tiles >= 8 else {
            return false
        }
        return !winogradIsTimed || winogradWins(g, .forward, tile: .two)
    }

    /// What `usesWinograd` says without timing: the measured rule above.
    public static func winogradRule(_ g: ConvGeometry, pass: ConvPass, inputs: Int = 1) -> Bool {
        let tiles = inputs * g.n * ((g.outH + 3) / 4) * ((g.outW + 3) / 4)
        let enough = pass == .backwardWeight ? tiles >= 128 && g.cIn >= 32 && g.cOut >= 32 && Gemm.vectorBits >= dnnlVectorBits : tiles >= 8
        return winogradEnabled && forcedAlgorithm == nil && ConvWinograd.applies(g) && g.cIn >= 16 && g.cOut >= 16 && enough
    }

    /// Whether the passes Winograd's rule takes are timed against the direct algorithm rather
    /// than taken: under `PERCEP_CONV=tune` (everything is timed) or `PERCEP_WINOGRAD=tune`, and
    /// by default where oneDNN's kernels are wider than `winogradRuleMeasuredBits`. Winograd's
    /// transforms are AVX2 code and its rule was measured against AVX2 oneDNN (1.1–3× its rate);
    /// against AVX-512 oneDNN, which reaches 380–440 GFLOP/s of a 430 GFLOP/s FMA peak on two
    /// Zen 5 cores, a quarter of the multiplies plus the transforms is no sure gain on every
    /// shape. `PERCEP_CONV=rule` times nothing.
    static var winogradIsTimed: Bool {
        lock.lock(); defer { lock.unlock() }
        return winogradByRuleDepth == 0 && (tuning || (measuringTies && (winogradTimedByRequest || dnnlVectorBits > winogradRuleMeasuredBits)))
    }
    /// `PERCEP_WINOGRAD=tune`: Winograd's passes timed on any machine (with the near-ties).
    private static let winogradTimedByRequest = ProcessInfo.processInfo.environment["PERCEP_WINOGRAD"] == "tune"

    /// Runs `body` with Winograd's rule taken as it is, never timed (`winogradRule`), in every
    /// thread: for tests and measurements that must know which algorithm runs on any machine.
    public static func withWinogradByRule<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock(); winogradByRuleDepth += 1; lock.unlock()
        defer { lock.lock(); winogradByRuleDepth -= 1; lock.unlock() }
        return try body()
    }
    private static var winogradByRuleDepth = 0

    /// The widest oneDNN kernels Winograd's rule was measured against (AVX2).
    static let winogradRuleMeasuredBits = 256

    /// Whether the forward whose ReLU signs and max-pool argmaxes enter a gradient (the
    /// prediction's embedding in a perceptual loss) may run Winograd too: only with
    /// `PERCEP_WINOGRAD=all`, a measurement mode. F(4×4, 3×3) rounds more than a direct
    /// convolution, so those near-ties fall the other way from float64 more often than in
    /// PyTorch (docs/benchmarks.md, accuracy: 7 of 7 inputs beyond 5e-4 against 3 of 7); the
    /// target's embedding and the backward-data passes only move values by rounding, never a
    /// switch, and keep Winograd by default. Settable for tests.
    public static var winogradOnSwitchingForward: Bool {
        get { lock.lock(); defer { lock.unlock() }; return switchingForwardWinograd }
        set { lock.lock(); defer { lock.unlock() }; switchingForwardWinograd = newValue }
    }
    private static var switchingForwardWinograd = ProcessInfo.processInfo.environment["PERCEP_WINOGRAD"] == "all"

    /// `forward` on one or more inputs of geometry `g` with the same weights (a frozen loss
    /// network's target and prediction embeddings, layer by layer): Winograd where
    /// `usesWinograd` says so for all of them, the inputs then sharing the weight transform and
    /// the tile blocks; otherwise each runs on its own.
    public static func frozenForward(_ pairs: [(y: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>)],
                                     _ w: UnsafePointer<Float>, _ b: UnsafePointer<Float>?, _ g: ConvGeometry, relu: Bool = false) {
        if usesWinograd(g, pass: .forward, inputs: pairs.count) {
            lock.lock(); passCounts[ConvPass.forward.rawValue] += pairs.count; lock.unlock()
            ConvWinograd.forward(pairs, w, b, g, relu: relu)
        } else {
            for (y, x) in pairs { directForward(y, x, w, b, g, relu: relu) }
        }
    }

    /// `backwardData` with `mask`, the sign bits of a ReLU whose output is this convolution's
    /// input ([N·C rows of H·W]): dx is 0 where the bit is clear, inside Winograd's output
    /// transform where `usesWinograd` says so, else a pass after (the frozen loss network's
    /// backward).
    public static func frozenBackwardData(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                                          _ g: ConvGeometry, mask: PackedBits? = nil) {
        if usesWinograd(g, pass: .backwardData) {
            lock.lock(); passCounts[ConvPass.backwardData.rawValue] += 1; lock.unlock()
            ConvWinograd.backwardData(dx, dy, w, g, mask: mask)
        } else {
            backwardData(dx, dy, w, g)
            mask?.maskGradient(dx, dx)
        }
    }

    /// dw, db (overwritten; either may be nil): Winograd where `usesWinograd` says so, otherwise
    /// the per-shape direct algorithm.
    public static func backwardWeight(_ dw: UnsafeMutablePointer<Float>?, _ db: UnsafeMutablePointer<Float>?,
                                      _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ g: ConvGeometry) {
        guard let dw else { if let db { ConvIm2col.biasGrad(db, dy, g) }; return }
        if usesWinograd(g, pass: .backwardWeight) {
            lock.lock(); passCounts[ConvPass.backwardWeight.rawValue] += 1; lock.unlock()
            ConvWinograd.backwardWeight(dw, x, dy, g)
            if let db { ConvIm2col.biasGrad(db, dy, g) }
            return
        }
        run(.backwardWeight, g, with: algorithm(for: g, pass: .backwardWeight), x: x, dy: dy, dw: dw, db: db)
    }

    /// How many times each pass has run in this process (tests use it to prove that frozen
    /// weights never get a weight-gradient pass).
    public static func passCount(_ pass: ConvPass) -> Int {
        lock.lock(); defer { lock.unlock() }
        return passCounts[pass.rawValue]
    }
    private static var passCounts = [0, 0, 0]

    /// Runs one pass with one algorithm; falls back to im2col when oneDNN rejects the shape.
    private static func run(_ pass: ConvPass, _ g: ConvGeometry, with algorithm: ConvAlgorithm,
                            y: UnsafeMutablePointer<Float>? = nil, x: UnsafePointer<Float>? = nil,
                            w: UnsafePointer<Float>? = nil, b: UnsafePointer<Float>? = nil,
                            dx: UnsafeMutablePointer<Float>? = nil, dy: UnsafePointer<Float>? = nil,
                            dw: UnsafeMutablePointer<Float>? = nil, db: UnsafeMutablePointer<Float>? = nil,
                            relu: Bool = false) {
        lock.lock(); passCounts[pass.rawValue] += 1; lock.unlock()
        switch pass {
        case .forward:
            if algorithm == .dnnl, let h = dnnlHandle(g, bias: b != nil, relu: relu) {
                forEachImageChunk(g, .forward, h) { gc, first in
                    guard let hc = first == 0 && gc.n == g.n ? h : dnnlHandle(gc, bias: b != nil, relu: relu) else { return false }
                    if pd_conv_forward(hc, x! + first * g.cIn * g.h * g.w, w!, b, y! + first * g.cOut * g.outH * g.outW) != 0 {
                        dnnlFailure(hc, "forward")
                    }
                    return true
                }
            } else {
                ConvIm2col.forward(y!, x!, w!, b, g)
                if relu { Kernels.map(y!, y!, count: g.n * g.cOut * g.outH * g.outW) { Swift.max($0, 0) } }
            }
        case .backwardData:
            if algorithm == .dnnl, let h = anyHandle(g) {
                forEachImageChunk(g, .backwardData, h) { gc, first in
                    guard let hc = gc.n == g.n ? h : anyHandle(gc) else { return false }
                    if pd_conv_backward_data(hc, dy! + first * g.cOut * g.outH * g.outW, w!, dx! + first * g.cIn * g.h * g.w) != 0 {
                        dnnlFailure(hc, "backward data")
                    }
                    return true
                }
            } else {
                ConvIm2col.backwardData(dx!, dy!, w!, g)
            }
        case .backwardWeight:
            if algorithm == .dnnl, let h = dnnlHandle(g, bias: db != nil) {
                if pd_conv_backward_weights(h, x!, dy!, dw!, db) != 0 { dnnlFailure(h, "backward weights") }
            } else {
                ConvIm2col.backwardWeight(dw, db, x!, dy!, g)
            }
        }
    }

    /// Most bytes of blocked copies and scratchpad one oneDNN call may need (48 MiB).
    ///
    /// oneDNN's passes share one workspace that grows to the largest pass and stays (see
    /// dnnl_conv.c). A loss network's first layer on a [2, 150, 256, 256] softmax needs 108 MiB
    /// of blocked copies (src and dst, or diff_src and diff_dst), six times what all of
    /// PSPNet-R18's own passes need, and RSS keeps that high-water mark. Forward and
    /// backward-data passes above the budget run a few images at a time: the same kernels on
    /// fewer images, with blocked copies the size of the chunk.
    /// `PERCEP_CONV_WORKSPACE_MB` sets another budget (0: never split); tests lower it to make
    /// small shapes split.
    nonisolated(unsafe) static var workspaceBudget: Int = {
        guard let text = ProcessInfo.processInfo.environment["PERCEP_CONV_WORKSPACE_MB"], let mb = Int(text), mb >= 0 else { return 48 << 20 }
        return mb == 0 ? Int.max : mb << 20
    }()

    /// Calls `body(chunk geometry, first image)` over the fewest equal batch chunks whose
    /// workspace fits `workspaceBudget` (one image at least; the whole batch in one call when it
    /// fits). `body` returns false when oneDNN rejects the chunk's shape; the whole batch then runs
    /// in one call, as before.
    private static func forEachImageChunk(_ g: ConvGeometry, _ pass: ConvPass, _ whole: OpaquePointer,
                                          _ body: (ConvGeometry, Int) -> Bool) {
        let perCall = imagesPerCall(g, pass, whole)
        var first = 0
        while first < g.n {
            var gc = g
            gc.n = Swift.min(perCall, g.n - first)
            if !body(gc, first) {
                precondition(first == 0, "oneDNN rejected a batch chunk after accepting an earlier one")
                _ = body(g, 0)
                return
            }
            first += gc.n
        }
    }

    /// Images per oneDNN call for `pass` of `g` (see `workspaceBudget`); the pass's size is
    /// known once it is built, so asking again costs a lookup.
    static func imagesPerCall(_ g: ConvGeometry, _ pass: ConvPass, _ whole: OpaquePointer) -> Int {
        let bytes = Int(pd_conv_pass_workspace_bytes(whole, Int32(pass.rawValue)))
        guard bytes > workspaceBudget && g.n > 1 else { return g.n }
        let fit = Swift.max(1, workspaceBudget / ((bytes + g.n - 1) / g.n))
        let calls = (g.n + fit - 1) / fit
        return (g.n + calls - 1) / calls
    }

    /// Calls per algorithm when timing a shape and pass.
    static let tuneRounds = 5

    /// Times `pass` of `g` with each algorithm (`fastestCandidate`) and records the faster.
    private static func tune(_ g: ConvGeometry, _ pass: ConvPass) -> ConvAlgorithm {
        let best = ConvAlgorithm.allCases[fastestCandidate(g, count: ConvAlgorithm.allCases.count) { k, t in
            run(pass, g, with: ConvAlgorithm.allCases[k], y: t.y.data, x: t.x.data, w: t.w.data, dx: t.dx.data, dy: t.y.data, dw: t.dw.data)
        }]
        lock.lock()
        tuned[TuneKey(geometry: g, pass: pass)] = best
        storeDecision(best.rawValue, key: ConvTuneCache.key(g, pass))
        lock.unlock()
        return best
    }

    /// Scratch tensors of one geometry for timing its passes: x, w, y (also dy), dx, dw.
    struct TimingTensors { let x, w, y, dx, dw: Tensor }

    /// Index of the fastest of `count` candidates run by `body(k, scratch)` on scratch tensors of
    /// `g`: the best of `tuneRounds` calls each, the candidates taking turns (`TakingTurns`).
    private static func fastestCandidate(_ g: ConvGeometry, count: Int, _ body: (Int, TimingTensors) -> Void) -> Int {
        let x = Tensor.full([g.n, g.cIn, g.h, g.w], 0.5), w = Tensor.full([g.cOut, g.cInPerGroup, g.kh, g.kw], 0.01)
        let t = TimingTensors(x: x, w: w, y: Tensor.full([g.n, g.cOut, g.outH, g.outW], 0.1),
                              dx: Tensor(uninitialized: x.shape), dw: Tensor(uninitialized: w.shape))
        return TakingTurns.fastest(count: count, rounds: tuneRounds) { body($0, t) }
    }

    /// Whether Winograd ran `pass` of `g` faster than the direct algorithm the dispatch would
    /// otherwise run (`algorithm(for:pass:)`), timed by `fastestCandidate` the first time,
    /// remembered in memory and in the cache file.
    private static func winogradWins(_ g: ConvGeometry, _ pass: ConvPass, tile: ConvWinograd.Tile = .four) -> Bool {
        let key = TuneKey(geometry: g, pass: pass, winogradTile: tile.rawValue)
        let fileKey = ConvTuneCache.winogradKey(g, pass, tile: tile)
        lock.lock()
        if let decided = tunedWinograd[key] { lock.unlock(); return decided }
        if let stored = storedDecision(fileKey),
           stored == ConvTuneCache.winogradChoice || stored == ConvTuneCache.directChoice {
            tunedWinograd[key] = stored == ConvTuneCache.winogradChoice
            lock.unlock()
            return stored == ConvTuneCache.winogradChoice
        }
        lock.unlock()
        let direct = algorithm(for: g, pass: pass)
        let wins = fastestCandidate(g, count: 2) { k, t in   // 0: Winograd, 1: direct
            guard k == 0 else {
                return run(pass, g, with: direct, y: t.y.data, x: t.x.data, w: t.w.data, dx: t.dx.data, dy: t.y.data, dw: t.dw.data)
            }
            switch pass {
            case .forward: ConvWinograd.forward(t.y.data, t.x.data, t.w.data, nil, g, tile: tile)
            case .backwardData: ConvWinograd.backwardData(t.dx.data, t.y.data, t.w.data, g)
            case .backwardWeight: ConvWinograd.backwardWeight(t.dw.data, t.x.data, t.y.data, g)
            }
        } == 0
        lock.lock()
        tunedWinograd[key] = wins
        storeDecision(wins ? ConvTuneCache.winogradChoice : ConvTuneCache.directChoice, key: fileKey)
        lock.unlock()
        return wins
    }

    /// Every (shape, pass) timed (or read from the cache file) so far with the algorithm it
    /// kept, sorted by description; reports use it to check the rule against measurements.
    public static var tunedChoices: [(geometry: ConvGeometry, pass: ConvPass, algorithm: ConvAlgorithm)] {
        lock.lock(); defer { lock.unlock() }
        return tuned.map { ($0.key.geometry, $0.key.pass, $0.value) }.sorted { "\($0.0)\($0.1)" < "\($1.0)\($1.1)" }
    }

    /// The algorithm the static rule picks for `pass` of `g`: what runs when nothing is forced
    /// or timed (for a near-tie, its fallback, which runs under `PERCEP_CONV=rule`).
    public static func ruleAlgorithm(for g: ConvGeometry, pass: ConvPass) -> ConvAlgorithm { rule(g, pass).algorithm }

    /// Whether the rule times `pass` of `g` on this machine by default (a near-tie) rather than
    /// deciding it.
    public static func ruleMeasures(_ g: ConvGeometry, pass: ConvPass) -> Bool {
        if case .measure = rule(g, pass) { return true }
        return false
    }

    /// The implementation oneDNN picked for `pass` of `g` (e.g. "jit:avx2"), for reports.
    public static func dnnlImplementation(_ g: ConvGeometry, pass: ConvPass) -> String? {
        guard let h = dnnlHandle(g, bias: false), let s = pd_conv_impl_name(h, Int32(pass.rawValue)) else { return nil }
        return String(cString: s)
    }
}
