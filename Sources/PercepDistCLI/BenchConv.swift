import ArgumentParser
import Foundation
import PercepCore

/// `percep-dist bench …`: performance benchmarks whose results go to docs/benchmarks.md.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Performance benchmarks.", subcommands: [BenchConv.self, BenchLossNet.self, BenchStep.self, BenchLoader.self, BenchAllreduce.self, BenchCOCOEval.self])
}

/// One benchmark shape with a label.
struct ConvCase {
    let name: String
    let geometry: ConvGeometry
}

/// The fixed shape set of `bench conv`: the paper's VGG16 loss network (2,2,3,3,3) at 19 and
/// 150 input channels, 128² and 256², batch 2 (and its first layer on 1 channel, depth, and on 3,
/// the pretrained variant behind its 1×1 adapter); ResNet-18/50 3×3 and 1×1 layers at 224², batch 2;
/// the dilated 3×3 layers of the segmentation backbones (output stride 8, 512² crops, batch 2);
/// the 3×3 layers of CondInst R-50-FPN on its benchmark step's 512×640 images, batch 2 (the main
/// job: the FCOS towers and the FPN outputs at P3 and P4, the backbone's res2–res5).
func convBenchmarkCases() -> [ConvCase] {
    var cases: [ConvCase] = []
    func conv(_ name: String, n: Int = 2, _ cin: Int, _ cout: Int, _ size: Int, width: Int? = nil, k: Int = 3, s: Int = 1, d: Int = 1) -> ConvCase {
        ConvCase(name: name, geometry: ConvGeometry(n: n, cIn: cin, h: size, w: width ?? size, cOut: cout, kh: k, kw: k,
                                                    stride: (s, s), padding: (d * (k / 2), d * (k / 2)), dilation: (d, d)))
    }
    for size in [128, 256] {
        for cin in [1, 3, 19, 150] { cases.append(conv("vgg16.c\(cin).conv1_1@\(size)", cin, 64, size)) }
        let layers: [(String, Int, Int, Int)] = [
            ("conv1_2", 64, 64, 1), ("conv2_1", 64, 128, 2), ("conv2_2", 128, 128, 2),
            ("conv3_1", 128, 256, 4), ("conv3_x", 256, 256, 4), ("conv4_1", 256, 512, 8),
            ("conv4_x", 512, 512, 8), ("conv5_x", 512, 512, 16),
        ]
        for (name, cin, cout, div) in layers { cases.append(conv("vgg16.\(name)@\(size)", cin, cout, size / div)) }
    }
    cases += [
        conv("resnet.conv1_7x7s2", 3, 64, 224, k: 7, s: 2),
        conv("resnet18.layer1_3x3", 64, 64, 56),
        conv("resnet18.layer2_3x3", 128, 128, 28),
        conv("resnet18.layer3_3x3", 256, 256, 14),
        conv("resnet18.layer4_3x3", 512, 512, 7),
        conv("resnet18.layer2_3x3s2", 64, 128, 56, s: 2),
        conv("resnet50.layer1_1x1_reduce", 256, 64, 56, k: 1),
        conv("resnet50.layer1_1x1_expand", 64, 256, 56, k: 1),
        conv("resnet50.layer2_1x1_reduce", 512, 128, 28, k: 1),
        conv("resnet50.layer3_1x1_reduce", 1024, 256, 14, k: 1),
        conv("resnet50.layer4_1x1_expand", 512, 2048, 7, k: 1),
        // Dilated ResNet (18 and 50 share these 3×3 shapes) at output stride 8 on 512² crops.
        conv("dilated_resnet.layer3_3x3d2", 256, 256, 64, d: 2),
        conv("dilated_resnet.layer4_3x3d4", 512, 512, 64, d: 4),
        conv("condinst.tower@P3", 256, 256, 64, width: 80),
        conv("condinst.tower@P4", 256, 256, 32, width: 40),
        conv("condinst.res2_3x3", 64, 64, 128, width: 160),
        conv("condinst.res3_3x3", 128, 128, 64, width: 80),
        conv("condinst.res5_3x3", 512, 512, 16, width: 20),
    ]
    return cases
}

/// Seconds per call of `body`: the best of `repeats` timed calls after one warm-up call.
func bestSeconds(repeats: Int, _ body: () -> Void) -> Double {
    body()
    var best = Double.infinity
    for _ in 0..<max(repeats, 1) {
        let t0 = DispatchTime.now().uptimeNanoseconds
        body()
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
    }
    return best
}

/// GFLOP/s of OpenBLAS sgemm on square matrices of `size`, the efficiency denominator.
func measureSgemmPeak(size: Int = 2048, repeats: Int = 5) -> Double {
    let a = Tensor.full([size, size], 0.5), b = Tensor.full([size, size], 0.25), c = Tensor(uninitialized: [size, size])
    let t = bestSeconds(repeats: repeats) {
        Gemm.sgemm(m: size, n: size, k: size, a: a.data, lda: size, b: b.data, ldb: size, c: c.data, ldc: size)
    }
    return 2 * pow(Double(size), 3) / t / 1e9
}

/// Per-pass timings of one convolution shape with one algorithm.
struct ConvTiming: Codable {
    var fwd_gflops: Double
    var bwd_data_gflops: Double
    var bwd_weight_gflops: Double
    /// Combined rate of the three passes: 3·FLOPs / total seconds.
    var combined_gflops: Double
}

/// Times forward, backward-data and backward-weight of `g` with `algorithm` forced (nil: what
/// runs by default, which honours `PERCEP_CONV`).
func timeConv(_ g: ConvGeometry, algorithm: ConvAlgorithm?, repeats: Int) -> ConvTiming {
    let previous = ConvDispatch.forcedAlgorithm
    if let algorithm { ConvDispatch.force(algorithm) }
    defer { ConvDispatch.force(previous) }
    var rng = SeededRNG(seed: 1, stream: "bench")
    let x = Tensor(uninitialized: [g.n, g.cIn, g.h, g.w]); rng.fillUniform(x, lo: -1, hi: 1)
    let w = Tensor(uninitialized: [g.cOut, g.cInPerGroup, g.kh, g.kw]); rng.fillUniform(w, lo: -0.1, hi: 0.1)
    let y = Tensor(uninitialized: [g.n, g.cOut, g.outH, g.outW]); rng.fillUniform(y, lo: -1, hi: 1)
    let dx = Tensor(uninitialized: x.shape), dw = Tensor(uninitialized: w.shape)
    let out = Tensor(uninitialized: y.shape)
    let tf = bestSeconds(repeats: repeats) { ConvDispatch.forward(out.data, x.data, w.data, nil, g) }
    let td = bestSeconds(repeats: repeats) { ConvDispatch.backwardData(dx.data, y.data, w.data, g) }
    let tw = bestSeconds(repeats: repeats) { ConvDispatch.backwardWeight(dw.data, nil, x.data, y.data, g) }
    let f = g.flops / 1e9
    return ConvTiming(fwd_gflops: f / tf, bwd_data_gflops: f / td, bwd_weight_gflops: f / tw,
                      combined_gflops: 3 * f / (tf + td + tw))
}

/// Forward, backward-data and backward-weight of `g` with Winograd F(4×4, 3×3), and forward with
/// F(2×2, 3×3) (`fwd_f2x2_gflops`), as direct-convolution GFLOP/s (the FLOPs the direct algorithm would need per second),
/// so the rates compare with the other algorithms'; nil where Winograd does not apply. Each pass
/// is timed with both transform widths taking turns (`TakingTurns`; `fwd_gflops_lanes8`, `…_lanes16`, …);
/// `fwd_gflops` and the like are this process's width (`ConvWinograd.transformLanes`).
func timeWinograd(_ g: ConvGeometry, repeats: Int) -> [String: Double]? {
    guard ConvWinograd.applies(g) else { return nil }
    var rng = SeededRNG(seed: 1, stream: "bench")
    let x = Tensor(uninitialized: [g.n, g.cIn, g.h, g.w]); rng.fillUniform(x, lo: -1, hi: 1)
    let w = Tensor(uninitialized: [g.cOut, g.cIn, 3, 3]); rng.fillUniform(w, lo: -0.1, hi: 0.1)
    let y = Tensor(uninitialized: [g.n, g.cOut, g.outH, g.outW]); rng.fillUniform(y, lo: -1, hi: 1)
    let dx = Tensor(uninitialized: x.shape), out = Tensor(uninitialized: y.shape), dw = Tensor(uninitialized: w.shape)
    let chosen = ConvWinograd.transformLanes
    defer { ConvWinograd.transformLanes = chosen }
    let widths: [ConvWinograd.TransformLanes] = [.eight, .sixteen]
    let passes: [(String, () -> Void)] = [
        ("fwd", { ConvWinograd.forward(out.data, x.data, w.data, nil, g) }),
        ("bwd_data", { ConvWinograd.backwardData(dx.data, y.data, w.data, g) }),
        ("bwd_weight", { ConvWinograd.backwardWeight(dw.data, x.data, y.data, g) }),
        ("fwd_f2x2", { ConvWinograd.forward(out.data, x.data, w.data, nil, g, tile: .two) }),
    ]
    var rates: [String: Double] = [:]
    for (pass, body) in passes {
        let best = TakingTurns.bestNanoseconds(count: widths.count, rounds: repeats, warmUp: true) { k in
            ConvWinograd.transformLanes = widths[k]
            body()
        }
        for (lanes, nanoseconds) in zip(widths, best) {
            rates["\(pass)_gflops_lanes\(lanes.rawValue)"] = g.flops / Double(nanoseconds)
            if lanes == chosen { rates["\(pass)_gflops"] = g.flops / Double(nanoseconds) }
        }
    }
    return rates
}

/// `percep-dist bench conv`: convolution GFLOP/s per shape against the machine's FMA peak.
struct BenchConv: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conv",
        abstract: "Forward, backward-data and backward-weight GFLOP/s of the conv shapes, with efficiency against the FMA peak.")

    @Flag(help: "Print JSON instead of a table.") var json = false
    @Option(help: "Threads for BLAS, oneDNN and the engine (default: all cores).") var threads: Int?
    @Option(help: "Timed repetitions per pass (the best is kept).") var repeats = 3
    @Flag(help: "Also time every algorithm on every shape (to check the dispatch rule).") var compare = false
    @Option(help: "Only shapes whose name contains this text.") var filter: String?

    func run() throws {
        ThreadBudget.set(threads ?? ThreadBudget.threads)
        let sgemmPeak = measureSgemmPeak()
        // Efficiency is against the FMA peak of the widest vectors the CPU has (not sgemm's rate,
        // which OPENBLAS_CORETYPE can hold below the CPU's ISA).
        let (peak, vectorBits) = FMAPeak.measure()
        struct Row: Codable {
            var name: String; var shape: String; var algorithm: [String]; var dnnl_implementation: [String]; var gflop: Double
            var fwd_gflops: Double; var bwd_data_gflops: Double; var bwd_weight_gflops: Double
            var efficiency: Double
            var by_algorithm: [String: ConvTiming]?
            var winograd: [String: Double]?
        }
        var rows: [Row] = []
        var totalFlops = 0.0, totalSeconds = 0.0
        for c in convBenchmarkCases() where filter.map({ c.name.contains($0) }) ?? true {
            let t = timeConv(c.geometry, algorithm: nil, repeats: repeats)
            var by: [String: ConvTiming]?, winograd: [String: Double]?
            if compare {
                by = [:]
                for alg in ConvAlgorithm.allCases { by![alg.rawValue] = timeConv(c.geometry, algorithm: alg, repeats: repeats) }
                winograd = timeWinograd(c.geometry, repeats: repeats)
            }
            totalFlops += 3 * c.geometry.flops
            totalSeconds += 3 * c.geometry.flops / (t.combined_gflops * 1e9)
            rows.append(Row(name: c.name, shape: c.geometry.description,
                            algorithm: ConvPass.allCases.map { ConvDispatch.algorithmName(for: c.geometry, pass: $0) },
                            dnnl_implementation: ConvPass.allCases.map { ConvDispatch.dnnlImplementation(c.geometry, pass: $0) ?? "none" },
                            gflop: c.geometry.flops / 1e9,
                            fwd_gflops: t.fwd_gflops, bwd_data_gflops: t.bwd_data_gflops,
                            bwd_weight_gflops: t.bwd_weight_gflops, efficiency: t.combined_gflops / peak, by_algorithm: by,
                            winograd: winograd))
            if !json {
                var line = String(format: "%-34@ %-8@ fwd %6.1f  bwd-data %6.1f  bwd-weight %6.1f GFLOP/s  eff %.2f",
                                  c.name as NSString, rows.last!.algorithm.map { String($0.prefix(1)) }.joined() as NSString,
                                  t.fwd_gflops, t.bwd_data_gflops, t.bwd_weight_gflops, t.combined_gflops / peak)
                if let by {
                    line += "  |" + ConvAlgorithm.allCases.map { String(format: " %@ %.1f", $0.rawValue, by[$0.rawValue]!.combined_gflops) }.joined()
                }
                if let winograd {
                    line += String(format: "  | winograd fwd %.1f bwd-data %.1f bwd-weight %.1f, F(2,3) fwd %.1f", winograd["fwd_gflops"]!,
                                   winograd["bwd_data_gflops"]!, winograd["bwd_weight_gflops"]!, winograd["fwd_f2x2_gflops"]!)
                }
                print(line)
            }
        }
        let overall = totalFlops / totalSeconds / 1e9 / peak
        if json {
            struct Report: Codable {
                var fma_peak_gflops: Double; var fma_vector_bits: Int; var sgemm_gflops: Double
                var threads: Int; var shapes: [Row]; var overall_efficiency: Double
                var winograd_gemm_lanes: Int; var winograd_transform_lanes: Int
            }
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            let data = try enc.encode(Report(fma_peak_gflops: peak, fma_vector_bits: vectorBits, sgemm_gflops: sgemmPeak,
                                               threads: ThreadBudget.threads, shapes: rows, overall_efficiency: overall,
                                               winograd_gemm_lanes: ConvWinograd.gemmLanes.rawValue,
                                               winograd_transform_lanes: ConvWinograd.transformLanes.rawValue))
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(String(format: "FMA peak %.1f GFLOP/s (%d-bit vectors), sgemm %.1f GFLOP/s, %d threads; overall conv efficiency %.3f of the FMA peak; Winograd GEMM %d lanes, transforms %d",
                         peak, vectorBits, sgemmPeak, ThreadBudget.threads, overall, ConvWinograd.gemmLanes.rawValue,
                         ConvWinograd.transformLanes.rawValue))
        }
    }
}
