import Foundation
import CBLAS
import CDNNLConv

/// Convolution algorithm decisions measured by `ConvDispatch` (the rule's near-ties by default,
/// every shape and pass under `PERCEP_CONV=tune`; Winograd against the direct algorithm where its
/// rule was not measured), kept on disk so each (shape, pass) is timed
/// once per machine rather than once per process (cuDNN's benchmark mode, remembered).
///
/// Decisions are only valid where they were measured, so the file holds one table per machine
/// key: CPU model, oneDNN's ISA and version, OpenBLAS's kernels and build, and the thread count.
/// The file is `PERCEP_CONV_CACHE`, else `$XDG_CACHE_HOME/percep-dist/conv-dispatch.json`, else
/// `~/.cache/percep-dist/conv-dispatch.json`; it is rewritten atomically after each new decision.
/// An unreadable or malformed file is ignored (and replaced), never fatal: the decisions are an
/// optimisation.
public enum ConvTuneCache {
    /// The machine key the current decisions belong to.
    public static var machineKey: String {
        let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first(where: { $0.hasPrefix("model name") })?
            .split(separator: ":", maxSplits: 1).last?.trimmingCharacters(in: .whitespaces) ?? "unknown CPU"
        let blas = openblas_get_config().map { String(cString: $0) } ?? "unknown OpenBLAS"
        return "\(cpu) | oneDNN \(String(cString: pd_dnnl_version())) \(ConvDispatch.dnnlVectorBits)-bit"
            + " | \(blas) \(Gemm.kernelFamily) | \(ThreadBudget.threads) threads"
    }

    /// The cache file's path.
    public static var path: String {
        let env = ProcessInfo.processInfo.environment
        if let p = env["PERCEP_CONV_CACHE"], !p.isEmpty { return p }
        let base = env["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? (NSHomeDirectory() + "/.cache")
        return base + "/percep-dist/conv-dispatch.json"
    }

    /// Text key of one (shape, pass): every geometry field, so no two shapes share a key.
    static func key(_ g: ConvGeometry, _ pass: ConvPass) -> String {
        "\(g.n),\(g.cIn),\(g.h),\(g.w),\(g.cOut),\(g.kh),\(g.kw),\(g.strideH),\(g.strideW),\(g.padH),\(g.padW),"
            + "\(g.dilH),\(g.dilW),\(g.groups)/\(pass)"
    }

    /// Text key of the Winograd-or-direct decision for one (shape, pass) and Winograd tile
    /// (F(2×2, 3×3)'s keys are marked, F(4×4, 3×3)'s as before it existed); its value is
    /// `winogradChoice` or `directChoice`.
    static func winogradKey(_ g: ConvGeometry, _ pass: ConvPass, tile: ConvWinograd.Tile = .four) -> String {
        key(g, pass) + (tile == .four ? "/winograd-or-direct" : "/winograd2x2-or-direct")
    }
    /// The stored values of a `winogradKey` decision.
    static let winogradChoice = "winograd", directChoice = "direct"

    /// The decisions stored for `machine` in the file at `path` (empty when there are none), as
    /// text: a `key`'s value is a `ConvAlgorithm` name, a `winogradKey`'s one of its two choices.
    static func load(path: String, machine: String) -> [String: String] {
        guard let data = FileManager.default.contents(atPath: path),
              let file = try? JSONDecoder().decode([String: [String: String]].self, from: data),
              let table = file[machine] else { return [:] }
        return table
    }

    /// Writes `decisions` as `machine`'s table into the file at `path`, keeping other machines'
    /// tables; failures are ignored (the next run measures again).
    static func store(_ decisions: [String: String], path: String, machine: String) {
        var file: [String: [String: String]] = [:]
        if let data = FileManager.default.contents(atPath: path),
           let old = try? JSONDecoder().decode([String: [String: String]].self, from: data) { file = old }
        file[machine] = decisions
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard let data = try? encoder.encode(file) else { return }
        let dir = (path as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try? data.write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
