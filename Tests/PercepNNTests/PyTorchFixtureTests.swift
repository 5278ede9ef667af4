import XCTest
import Foundation
import PercepCore
import PercepNN

// Checks every op and loss against PyTorch. The reference values come from
// tools/pytorch/make_fixtures.py (run once where PyTorch is installed; CI only reads the committed
// Fixtures/ops.json). For each case the test rebuilds the inputs, runs the engine's op, compares
// the output, then backpropagates the stored upstream tensor R (`out.backward(seed: R)`, i.e. the
// gradient of (out · R).sum()) and compares every input gradient PyTorch computed.

// MARK: - Fixture model

/// One tensor of the fixture: shape and row-major float32 values.
struct FixtureTensor: Decodable {
    /// Role of an input ("x", "weight", "running_mean", …); nil for outputs and gradients.
    let name: String?
    let shape: [Int]
    let data: [Float]
    /// Whether the input is a leaf that needs a gradient (false for outputs).
    let requiresGrad: Bool

    private enum CodingKeys: String, CodingKey { case name, shape, data, requires_grad }

    /// Decodes the numbers as Double first: the fixture writes each float32 as its shortest
    /// round-trip decimal, and Float(Double) of that decimal is the original float32.
    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        shape = try c.decode([Int].self, forKey: .shape)
        data = try c.decode([Double].self, forKey: .data).map { Float($0) }
        requiresGrad = try c.decodeIfPresent(Bool.self, forKey: .requires_grad) ?? false
    }

    /// A tensor given directly (the perturbation test builds altered expectations).
    init(name: String?, shape: [Int], data: [Float], requiresGrad: Bool) {
        self.name = name
        self.shape = shape
        self.data = data
        self.requiresGrad = requiresGrad
    }

    /// A copy whose largest-magnitude element is moved by `amount(value)` away from its value.
    func perturbed(by amount: (Float) -> Float) -> FixtureTensor {
        var d = data
        if let i = d.indices.max(by: { abs(d[$0]) < abs(d[$1]) }) { d[i] += amount(d[i]) }
        return FixtureTensor(name: name, shape: shape, data: d, requiresGrad: requiresGrad)
    }

    /// A fresh engine tensor holding these values.
    func tensor(requiresGrad: Bool? = nil) -> Tensor {
        Tensor(shape: shape, values: data, requiresGrad: requiresGrad ?? self.requiresGrad)
    }
}

/// A JSON value in a case's "params" (numbers, flags, strings, lists, null).
enum FixtureParam: Decodable {
    case null, bool(Bool), number(Double), string(String), array([FixtureParam])

    /// Tries each JSON kind in turn; the decoder rejects the wrong ones.
    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else { self = .array(try c.decode([FixtureParam].self)) }
    }
}

/// One PyTorch reference case (see the layout documented in make_fixtures.py).
struct FixtureCase: Decodable {
    let name: String
    let op: String
    let params: [String: FixtureParam]
    let inputs: [FixtureTensor]
    // Expected tensors are `var` so that the perturbation test can alter copies of a case.
    var output: FixtureTensor
    let upstream: FixtureTensor
    /// d(output · upstream).sum() / d input, aligned with `inputs` (nil where none is needed).
    var grads: [FixtureTensor?]
    /// Further expected tensors, e.g. batch norm's updated running statistics.
    var extra: [String: FixtureTensor]
    let rtol: Double
    let atol: Double
}

/// The whole fixture file.
struct FixtureFile: Decodable {
    let torch_version: String
    let case_count: Int
    let cases: [FixtureCase]
}

/// A fixture problem that is not a numeric mismatch (missing parameter, unknown op, …).
struct FixtureError: Error, CustomStringConvertible {
    let description: String
}

/// Typed access to a case's params; a missing or mistyped entry is a fixture error, not a crash.
struct FixtureParams {
    let raw: [String: FixtureParam]

    /// The raw value under `key`.
    func value(_ key: String) throws -> FixtureParam {
        guard let v = raw[key] else { throw FixtureError(description: "missing param '\(key)'") }
        return v
    }

    /// True when `key` is absent or null.
    func isNull(_ key: String) -> Bool {
        if case .null = raw[key] ?? .null { return true }
        return false
    }

    /// A number that must be an integer.
    func int(_ key: String) throws -> Int {
        guard case .number(let d) = try value(key), let i = Int(exactly: d) else {
            throw FixtureError(description: "param '\(key)' is not an integer")
        }
        return i
    }

    /// A number as Float.
    func float(_ key: String) throws -> Float {
        guard case .number(let d) = try value(key) else { throw FixtureError(description: "param '\(key)' is not a number") }
        return Float(d)
    }

    /// A number as Float, nil when null.
    func optionalFloat(_ key: String) throws -> Float? { isNull(key) ? nil : try float(key) }

    /// A flag.
    func bool(_ key: String) throws -> Bool {
        guard case .bool(let b) = try value(key) else { throw FixtureError(description: "param '\(key)' is not a bool") }
        return b
    }

    /// A string.
    func string(_ key: String) throws -> String {
        guard case .string(let s) = try value(key) else { throw FixtureError(description: "param '\(key)' is not a string") }
        return s
    }

    /// A list of numbers.
    func doubles(_ key: String) throws -> [Double] {
        guard case .array(let items) = try value(key) else { throw FixtureError(description: "param '\(key)' is not a list") }
        return try items.map {
            guard case .number(let d) = $0 else { throw FixtureError(description: "param '\(key)' holds a non-number") }
            return d
        }
    }

    /// A list of integers.
    func ints(_ key: String) throws -> [Int] {
        try doubles(key).map {
            guard let i = Int(exactly: $0) else { throw FixtureError(description: "param '\(key)' holds a non-integer") }
            return i
        }
    }

    /// A list of integers, nil when null.
    func optionalInts(_ key: String) throws -> [Int]? { isNull(key) ? nil : try ints(key) }

    /// A two-element list, as the (height, width) tuples the conv and pool APIs take.
    func pair(_ key: String) throws -> (Int, Int) {
        let v = try ints(key)
        guard v.count == 2 else { throw FixtureError(description: "param '\(key)' must have two entries, has \(v.count)") }
        return (v[0], v[1])
    }

    /// A loss reduction by PyTorch's name.
    func reduction(_ key: String = "reduction") throws -> Reduction {
        let s = try string(key)
        guard let r = Reduction(rawValue: s) else { throw FixtureError(description: "unknown reduction '\(s)'") }
        return r
    }
}

// MARK: - Tests

/// Forward values and gradients of every engine op against PyTorch's (see the file comment).
final class PyTorchFixtureTests: XCTestCase {
    /// The decoded fixture, loaded once for all tests (or the reason it cannot be read).
    static let fixture: Result<FixtureFile, Error> = Result(catching: {
        guard let url = Bundle.module.url(forResource: "ops", withExtension: "json", subdirectory: "Fixtures") else {
            throw FixtureError(description: "Fixtures/ops.json is not in the test bundle")
        }
        return try JSONDecoder().decode(FixtureFile.self, from: Data(contentsOf: url))
    })

    /// Fewer cases than this means the fixture lost coverage (make_fixtures.py writes 210).
    static let minimumCaseCount = 190

    /// Ops of each test method. Every op in the fixture must belong to exactly one family, and
    /// every op listed here must have at least one case.
    static let families: [String: Set<String>] = [
        "elementwise": ["add", "sub", "mul", "div", "scalar", "neg", "exp", "log", "sqrt", "pow", "abs",
                        "clamp", "relu", "sigmoid", "tanh"],
        "reduction": ["sum", "mean", "max"],
        "shape": ["reshape", "permute", "transpose", "slice", "concat", "pad", "index_select", "gather", "expand"],
        "matmul": ["matmul", "linear"],
        "conv": ["conv2d"],
        "pool": ["max_pool2d", "avg_pool2d", "adaptive_avg_pool2d"],
        "resize": ["resize_bilinear", "resize_nearest"],
        "norm": ["batch_norm", "group_norm"],
        "softmax": ["softmax", "log_softmax"],
        "loss": ["cross_entropy", "soft_target_cross_entropy", "kl_div", "mse", "bce_with_logits",
                 "sigmoid_focal", "smooth_l1"],
        "composite": ["chain_reuse", "chain_self_add", "chain_concat_same", "chain_diamond", "chain_conv_block"],
    ]

    /// Upper bounds on the tolerances a case may ask for, so a regenerated fixture cannot make
    /// the comparisons meaningless.
    static let maxRtol = 1e-4, maxAtol = 1e-5

    /// Starts every test with an empty tape.
    override func setUp() {
        Tape.current.reset()
    }

    /// Restores the default conv dispatch and clears the tape.
    override func tearDown() {
        // Conv tests force an algorithm; never leak that into other tests.
        ConvDispatch.force(nil)
        Tape.current.reset()
    }

    /// The fixture's cases, or a test failure when it cannot be loaded.
    func loadCases(file: StaticString = #filePath, line: UInt = #line) -> [FixtureCase] {
        switch Self.fixture {
        case .success(let f): return f.cases
        case .failure(let e):
            XCTFail("cannot load the PyTorch fixture: \(e)", file: file, line: line)
            return []
        }
    }

    /// Runs every case of `family`, failing once per broken case with its name, index and first
    /// mismatches. Returns the number of cases run.
    @discardableResult
    func runFamily(_ family: String, label: String = "", file: StaticString = #filePath, line: UInt = #line) -> Int {
        let ops = Self.families[family]!
        var ran = 0
        for (i, c) in loadCases(file: file, line: line).enumerated() where ops.contains(c.op) {
            ran += 1
            let problems = Self.check(c)
            if !problems.isEmpty {
                XCTFail("case #\(i) '\(c.name)' (\(c.op))\(label):\n  " + problems.joined(separator: "\n  "), file: file, line: line)
            }
        }
        XCTAssertGreaterThan(ran, 0, "no cases for family \(family)", file: file, line: line)
        return ran
    }

    /// The fixture is complete and sane: enough cases, every op mapped and covered, tolerances
    /// no looser than the agreed bounds, and a gradient checked in every case.
    func testFixtureCoverage() throws {
        let file = try Self.fixture.get()
        XCTAssertEqual(file.cases.count, file.case_count, "case_count disagrees with the cases present")
        XCTAssertGreaterThanOrEqual(file.cases.count, Self.minimumCaseCount, "fixture lost cases")
        let known = Self.families.values.reduce(into: Set<String>()) { $0.formUnion($1) }
        let present = Set(file.cases.map(\.op))
        XCTAssertEqual(present.subtracting(known), [], "fixture ops no test method runs")
        XCTAssertEqual(known.subtracting(present), [], "ops without a PyTorch case")
        XCTAssertEqual(Set(file.cases.map(\.name)).count, file.cases.count, "duplicate case names")
        for c in file.cases {
            XCTAssertLessThanOrEqual(c.rtol, Self.maxRtol, "\(c.name): rtol too loose")
            XCTAssertLessThanOrEqual(c.atol, Self.maxAtol, "\(c.name): atol too loose")
            XCTAssertEqual(c.grads.count, c.inputs.count, "\(c.name): one gradient slot per input")
            XCTAssertTrue(c.inputs.contains { $0.requiresGrad }, "\(c.name): no gradient is checked")
        }
    }

    /// Broadcast arithmetic, scalar forms and unary functions.
    func testElementwise() { runFamily("elementwise") }
    /// sum, mean and max over axes.
    func testReductions() { runFamily("reduction") }
    /// Movement ops: reshape, permute, slice, concat, pad, index_select, gather, expand.
    func testShapeOps() { runFamily("shape") }
    /// matmul (plain, broadcast and batched) and linear.
    func testMatmulAndLinear() { runFamily("matmul") }
    /// Max, average and adaptive average pooling.
    func testPooling() { runFamily("pool") }
    /// Bilinear (both corner conventions) and nearest resizing.
    func testResize() { runFamily("resize") }
    /// Batch norm (training with running statistics, eval) and group norm.
    func testNormalization() { runFamily("norm") }
    /// softmax and log-softmax.
    func testSoftmax() { runFamily("softmax") }
    /// Every loss in `Loss`.
    func testLosses() { runFamily("loss") }
    /// Small graphs that reuse tensors, so gradients from several uses must add up on the tape.
    func testCompositeGraphs() { runFamily("composite") }

    /// The checks are live: in every case, each expected tensor (output, every gradient, every
    /// extra) with its largest element moved by ten times its tolerance must make the case fail.
    /// Guards against a harness that silently skips a comparison.
    func testEveryExpectedTensorIsChecked() {
        var altered = 0
        // Cases that already fail are reported by their family's test; a perturbation there
        // would be noticed trivially.
        for (i, c) in loadCases().enumerated() where Self.check(c).isEmpty {
            let shift = { (v: Float) -> Float in Float(10 * (c.atol + c.rtol * Double(abs(v)))) }
            var variants: [(String, FixtureCase)] = []
            var v = c
            v.output = c.output.perturbed(by: shift)
            variants.append(("output", v))
            for (k, g) in c.grads.enumerated() {
                guard let g else { continue }
                v = c
                v.grads[k] = g.perturbed(by: shift)
                variants.append(("grad[\(c.inputs[k].name ?? String(k))]", v))
            }
            for (key, e) in c.extra {
                v = c
                v.extra[key] = e.perturbed(by: shift)
                variants.append((key, v))
            }
            for (what, variant) in variants {
                altered += 1
                XCTAssertFalse(Self.check(variant).isEmpty,
                               "case #\(i) '\(c.name)': a wrong \(what) goes unnoticed")
            }
        }
        XCTAssertGreaterThan(altered, Self.minimumCaseCount)
    }

    /// Convolutions under the default dispatch rule, which must route the fixture's cases to both
    /// algorithms.
    func testConvolutionDefaultDispatch() {
        ConvDispatch.force(nil)
        runFamily("conv", label: " [default dispatch]")
        var used = Set<ConvAlgorithm>()
        for c in loadCases() where c.op == "conv2d" {
            guard let g = try? Self.convGeometry(c) else { continue }
            for pass in ConvPass.allCases { used.insert(ConvDispatch.algorithm(for: g, pass: pass)) }
        }
        XCTAssertEqual(used, Set(ConvAlgorithm.allCases), "the conv cases do not exercise every algorithm")
    }

    /// Every convolution case again with each algorithm forced, so both implement every geometry.
    func testConvolutionEachAlgorithm() {
        // Forcing oneDNN falls back to im2col when oneDNN rejects a geometry; make sure it
        // accepts them all, so the forced run really tests oneDNN.
        for c in loadCases() where c.op == "conv2d" {
            guard let g = try? Self.convGeometry(c) else { XCTFail("\(c.name): bad conv params"); continue }
            for pass in ConvPass.allCases {
                XCTAssertNotNil(ConvDispatch.dnnlImplementation(g, pass: pass), "\(c.name): oneDNN rejects \(pass) of \(g)")
            }
        }
        for alg in ConvAlgorithm.allCases {
            ConvDispatch.force(alg)
            runFamily("conv", label: " [forced \(alg.rawValue)]")
            runFamily("composite", label: " [forced \(alg.rawValue)]")
        }
        ConvDispatch.force(nil)
    }

    // MARK: - Checking one case

    /// Runs one case; returns a description of every mismatch (empty when the case passes).
    static func check(_ c: FixtureCase) -> [String] {
        Tape.current.reset()
        defer { Tape.current.reset() }
        let inputs = c.inputs.map { $0.tensor() }
        var problems: [String] = []
        let result: (Tensor, [String: Tensor])
        do {
            result = try evaluate(c, inputs)
        } catch {
            return ["cannot run: \(error)"]
        }
        let (out, extras) = result
        if let p = compare("output", got: out, expected: c.output, c) { problems.append(p) }
        for (key, expected) in c.extra.sorted(by: { $0.key < $1.key }) {
            if let p = compare(key, got: extras[key], expected: expected, c) { problems.append(p) }
        }
        guard inputs.contains(where: { $0.requiresGrad }) else { return problems }
        guard out.requiresGrad else { return problems + ["output is not on the tape although inputs need gradients"] }
        guard out.shape == c.upstream.shape else {
            return problems + ["output shape \(out.shape) differs from the upstream's \(c.upstream.shape)"]
        }
        out.backward(seed: c.upstream.tensor(requiresGrad: false))
        for (k, (x, expected)) in zip(inputs, c.grads).enumerated() {
            let label = "grad[\(c.inputs[k].name ?? String(k))]"
            if let expected {
                if let p = compare(label, got: x.grad, expected: expected, c) { problems.append(p) }
            } else if x.grad != nil {
                problems.append("\(label): PyTorch has no gradient here but the engine produced one")
            }
        }
        return problems
    }

    /// Compares `got` with `expected` elementwise with |a − b| ≤ atol + rtol·|b| (NaN fails).
    static func compare(_ label: String, got: Tensor?, expected: FixtureTensor, _ c: FixtureCase) -> String? {
        guard let got else { return "\(label): missing (expected shape \(expected.shape))" }
        guard got.shape == expected.shape else { return "\(label): shape \(got.shape), expected \(expected.shape)" }
        let a = got.values, b = expected.data
        var bad: [Int] = [], maxErr: Float = 0
        for i in 0..<b.count {
            let err = abs(a[i] - b[i])
            if !(Double(err) <= c.atol + c.rtol * Double(abs(b[i]))) {
                bad.append(i)
                maxErr = err.isNaN ? .nan : max(maxErr, err)
            }
        }
        guard !bad.isEmpty else { return nil }
        let strides = Shape.strides(expected.shape)
        let first = bad.prefix(6).map { i -> String in
            // Flat index and its coordinates, e.g. "[13] [0, 1, 3, 1]".
            let coord = zip(strides, expected.shape).map { st, n in (i / st) % Swift.max(n, 1) }
            return "[\(i)] \(coord) got \(a[i]) expected \(b[i])"
        }
        return "\(label): \(bad.count) of \(b.count) values outside \(c.atol) + \(c.rtol)·|expected| "
            + "(max |diff| \(maxErr)); first: " + first.joined(separator: "; ")
    }

    // MARK: - Running one op

    /// The convolution geometry of a conv2d case (to ask the dispatcher which algorithm it uses).
    static func convGeometry(_ c: FixtureCase) throws -> ConvGeometry {
        let p = FixtureParams(raw: c.params)
        let x = c.inputs[0].shape, w = c.inputs[1].shape
        return ConvGeometry(n: x[0], cIn: x[1], h: x[2], w: x[3], cOut: w[0], kh: w[2], kw: w[3],
                            stride: try p.pair("stride"), padding: try p.pair("padding"),
                            dilation: try p.pair("dilation"), groups: try p.int("groups"))
    }

    /// Runs the engine's version of case `c` on `inputs` (aligned with `c.inputs`). Returns the
    /// output and any extra results the case checks.
    static func evaluate(_ c: FixtureCase, _ inputs: [Tensor]) throws -> (Tensor, [String: Tensor]) {
        let p = FixtureParams(raw: c.params)
        var named: [String: Tensor] = [:]
        for (spec, t) in zip(c.inputs, inputs) { if let n = spec.name { named[n] = t } }
        /// Input by position, with a fixture error instead of an index trap.
        func input(_ i: Int) throws -> Tensor {
            guard i < inputs.count else { throw FixtureError(description: "\(c.op) needs input #\(i)") }
            return inputs[i]
        }
        /// Input by role; `required` inputs must exist.
        func role(_ name: String) throws -> Tensor {
            guard let t = named[name] else { throw FixtureError(description: "\(c.op) needs input '\(name)'") }
            return t
        }
        let x = try input(0)
        switch c.op {
        // Elementwise
        case "add": return (x + (try input(1)), [:])
        case "sub": return (x - (try input(1)), [:])
        case "mul": return (x * (try input(1)), [:])
        case "div": return (x / (try input(1)), [:])
        case "scalar":
            let s = try p.float("s")
            switch try p.string("form") {
            case "add": return (x + s, [:])
            case "radd": return (s + x, [:])
            case "sub": return (x - s, [:])
            case "rsub": return (s - x, [:])
            case "mul": return (x * s, [:])
            case "rmul": return (s * x, [:])
            case "div": return (x / s, [:])
            case "rdiv": return (s / x, [:])
            case let f: throw FixtureError(description: "unknown scalar form '\(f)'")
            }
        case "neg": return (-x, [:])
        case "exp": return (x.exp(), [:])
        case "log": return (x.log(), [:])
        case "sqrt": return (x.sqrt(), [:])
        case "pow": return (x.pow(try p.float("p")), [:])
        case "abs": return (x.abs(), [:])
        case "relu": return (x.relu(), [:])
        case "sigmoid": return (x.sigmoid(), [:])
        case "tanh": return (x.tanh(), [:])
        case "clamp":
            return (x.clamp(min: try p.optionalFloat("min") ?? -.infinity, max: try p.optionalFloat("max") ?? .infinity), [:])

        // Reductions
        case "sum":
            guard let axes = try p.optionalInts("axes") else { return (x.sum(), [:]) }
            return (x.sum(axes: axes, keepDims: try p.bool("keep_dims")), [:])
        case "mean":
            guard let axes = try p.optionalInts("axes") else { return (x.mean(), [:]) }
            return (x.mean(axes: axes, keepDims: try p.bool("keep_dims")), [:])
        case "max": return (x.max(axis: try p.int("axis"), keepDims: try p.bool("keep_dims")), [:])

        // Shape
        case "reshape": return (x.reshaped(try p.ints("shape")), [:])
        case "permute": return (x.permuted(try p.ints("order")), [:])
        case "transpose":
            guard let d = try p.optionalInts("dims") else { return (x.transposed(), [:]) }
            return (x.transposed(d[0], d[1]), [:])
        case "slice":
            return (x.slice(axis: try p.int("axis"), start: try p.int("start"), end: try p.int("end"), step: try p.int("step")), [:])
        case "concat": return (Tensor.concat(inputs, axis: try p.int("axis")), [:])
        case "pad": return (x.padded(try p.ints("pads"), value: try p.float("value")), [:])
        case "index_select": return (x.indexSelect(axis: try p.int("axis"), indices: try p.ints("indices")), [:])
        case "gather":
            return (x.gather(axis: try p.int("axis"), index: try p.ints("index").map { Int32($0) },
                             indexShape: try p.ints("index_shape")), [:])
        case "expand": return (x.expanded(to: try p.ints("shape")), [:])

        // Matmul
        case "matmul": return (x.matmul(try input(1)), [:])
        case "linear": return (x.linear(weight: try role("weight"), bias: named["bias"]), [:])

        // Convolution
        case "conv2d":
            return (x.conv2d(weight: try role("weight"), bias: named["bias"], stride: try p.pair("stride"),
                             padding: try p.pair("padding"), dilation: try p.pair("dilation"), groups: try p.int("groups")), [:])

        // Pooling and resizing
        case "max_pool2d":
            return (x.maxPool2d(kernel: try p.pair("kernel"), stride: try p.pair("stride"), padding: try p.pair("padding"),
                                dilation: try p.pair("dilation"), ceilMode: try p.bool("ceil_mode")), [:])
        case "avg_pool2d":
            let stride = p.isNull("stride") ? nil : try p.pair("stride")
            return (x.avgPool2d(kernel: try p.pair("kernel"), stride: stride, padding: try p.pair("padding"),
                                ceilMode: try p.bool("ceil_mode"), countIncludePad: try p.bool("count_include_pad")), [:])
        case "adaptive_avg_pool2d": return (x.adaptiveAvgPool2d(try p.pair("size")), [:])
        case "resize_bilinear":
            return (x.resizeBilinear(try p.pair("size"), alignCorners: try p.bool("align_corners")), [:])
        case "resize_nearest": return (x.resizeNearest(try p.pair("size")), [:])

        // Normalisation
        case "batch_norm":
            let rm = named["running_mean"], rv = named["running_var"]
            let y = x.batchNorm(weight: named["weight"], bias: named["bias"], runningMean: rm, runningVar: rv,
                                training: try p.bool("training"), momentum: try p.float("momentum"), eps: try p.float("eps"))
            var extras: [String: Tensor] = [:]
            extras["running_mean"] = rm
            extras["running_var"] = rv
            return (y, extras)
        case "group_norm":
            return (x.groupNorm(groups: try p.int("groups"), weight: named["weight"], bias: named["bias"], eps: try p.float("eps")), [:])
        case "softmax": return (x.softmax(axis: try p.int("axis")), [:])
        case "log_softmax": return (x.logSoftmax(axis: try p.int("axis")), [:])

        // Losses
        case "cross_entropy":
            let weight = p.isNull("weight") ? nil : try p.doubles("weight").map { Float($0) }
            return (Loss.crossEntropy(x, target: try p.ints("target").map { Int32($0) },
                                      ignoreIndex: Int32(try p.int("ignore_index")), weight: weight,
                                      reduction: try p.reduction()), [:])
        case "soft_target_cross_entropy":
            return (Loss.softTargetCrossEntropy(x, target: try role("target")), [:])
        case "kl_div":
            let r = try p.string("reduction")
            if r == "batchmean" {
                return (Loss.klDivergence(logProbs: x, target: try role("target"), reduction: .sum, batchMean: true), [:])
            }
            return (Loss.klDivergence(logProbs: x, target: try role("target"), reduction: try p.reduction()), [:])
        case "mse": return (Loss.mse(x, try input(1), reduction: try p.reduction()), [:])
        case "bce_with_logits": return (Loss.bceWithLogits(x, try input(1), reduction: try p.reduction()), [:])
        case "sigmoid_focal":
            return (Loss.sigmoidFocal(x, try input(1), alpha: try p.float("alpha"), gamma: try p.float("gamma"),
                                      reduction: try p.reduction()), [:])
        case "smooth_l1": return (Loss.smoothL1(x, try input(1), beta: try p.float("beta"), reduction: try p.reduction()), [:])

        // Composite graphs: the same formulas as make_fixtures.py's composite_cases().
        case "chain_reuse": return (x * x + x.exp() - x, [:])
        case "chain_self_add": return (x + x, [:])
        case "chain_concat_same": return (Tensor.concat([x, x * 2, x], axis: 0), [:])
        case "chain_diamond":
            let y = x.exp()   // used twice: its gradient collects from both branches
            return (y * (try role("w")) + y.sigmoid() * x, [:])
        case "chain_conv_block":
            var y = x.conv2d(weight: try role("conv_weight"), bias: nil, padding: (1, 1))
            y = y.batchNorm(weight: try role("bn_weight"), bias: try role("bn_bias"), runningMean: nil, runningVar: nil,
                            training: true)
            y = y.relu().adaptiveAvgPool2d((1, 1)).reshaped([x.shape[0], -1])
            return (y.linear(weight: try role("linear_weight"), bias: nil), [:])

        default:
            throw FixtureError(description: "no engine mapping for op '\(c.op)'")
        }
    }
}
