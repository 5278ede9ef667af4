import Foundation
import XCTest
import TestSupport
import Checkpoint
import PercepCore
import PercepHDF5
import PercepNN

/// A layer with a parameter pair and a buffer, like a conv + BN's running statistics.
final class Block: Module {
    let weight: Tensor, bias: Tensor
    init(_ base: Float, weight: [Float]? = nil) {
        self.weight = Tensor(shape: [2, 3], values: weight ?? (0..<6).map { base + Float($0) * 0.25 })
        bias = Tensor(shape: [3], values: [base, -base, 0.5])
        super.init()
        registerParameter("weight", self.weight)
        registerParameter("bias", bias)
        registerBuffer("running_mean", Tensor(shape: [3], values: [base * 2, 1, 2]))
    }
}

/// A two-level model so names are dotted (`backbone.weight`, `head.bias`).
final class Net: Module {
    let backbone: Block, head: Block
    init(_ base: Float, backboneWeight: [Float]? = nil) {
        backbone = Block(base, weight: backboneWeight)
        head = Block(base + 10)
        super.init()
        registerModule("backbone", backbone)
        registerModule("head", head)
    }
}

/// Values that occur nowhere else in the file, so a test can find the dataset's bytes on disk.
let distinctive: [Float] = [1234.5, -2345.25, 3456.125, -4567.0625, 5678.5, -6789.75]

final class CheckpointTests: XCTestCase {
    var dir: String!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func state(_ iteration: Int) -> CheckpointState {
        CheckpointState(iteration: iteration, epoch: iteration / 10, sampleCursor: Int64(iteration) * 64,
                        rngState: [0xdead_beef_cafe_f00d, UInt64.max, 0, UInt64(iteration)], learningRate: 0.01 / Double(iteration + 1),
                        scheduleIteration: iteration, worldSize: 2, configText: "SOLVER:\n  BASE_LR: 0.01\n",
                        configHash: 0xfedc_ba98_7654_3210, lossNetworkFingerprint: 0x8000_0000_0000_0001)
    }

    /// A model and an optimizer that has taken one step, so momentum buffers exist.
    func trained(_ base: Float, backboneWeight: [Float]? = nil) -> (Net, SGD) {
        let net = Net(base, backboneWeight: backboneWeight)
        let sgd = SGD(net.trainableParameters, learningRate: 0.1, momentum: 0.9)
        for (i, (_, p)) in net.namedParameters().enumerated() {
            p.grad = Tensor(shape: p.shape, values: (0..<p.count).map { Float($0 + i) * 0.125 })
        }
        sgd.step()
        // After the step, so the values on disk are exactly the distinctive ones.
        if let backboneWeight { net.backbone.weight.assign(Tensor(shape: [2, 3], values: backboneWeight)) }
        return (net, sgd)
    }

    func values(_ t: Tensor) -> [Float] { Array(UnsafeBufferPointer(start: t.data, count: t.count)) }

    @discardableResult
    func write(_ iterations: [Int], keep: Int = 5, base: Float = 1) throws -> [String] {
        try iterations.map { it in
            let (net, sgd) = trained(base + Float(it), backboneWeight: distinctive)
            return try CheckpointWriter(directory: dir, keepLast: keep).write(model: net, optimizer: sgd, state: state(it))
        }
    }

    func testRoundTripRestoresModelMomentumAndState() throws {
        let (net, sgd) = trained(1)
        let path = try CheckpointWriter(directory: dir).write(model: net, optimizer: sgd, state: state(42))
        XCTAssertTrue(path.hasSuffix("/model_0000042.h5"))
        XCTAssertEqual(try String(contentsOfFile: dir + "/last_checkpoint", encoding: .utf8), "model_0000042.h5\n")

        let (loaded, source) = try CheckpointLoader.latest(in: dir)
        XCTAssertEqual(source, .pointer)
        XCTAssertEqual(loaded.state, state(42))
        XCTAssertEqual(Set(loaded.model.map(\.name)), Set(net.stateDict().map(\.0)))

        let fresh = Net(-7)
        let freshSGD = SGD(fresh.trainableParameters, learningRate: 0.1, momentum: 0.9)
        try CheckpointLoader.restore(loaded, into: fresh, optimizer: freshSGD)
        for ((name, a), (_, b)) in zip(net.stateDict(), fresh.stateDict()) { XCTAssertEqual(values(a), values(b), name) }
        for ((name, a), (_, b)) in zip(net.namedParameters(), fresh.namedParameters()) {
            let m1 = try XCTUnwrap(sgd.momentumBuffer(a), name), m2 = try XCTUnwrap(freshSGD.momentumBuffer(b), name)
            XCTAssertEqual(values(m1), values(m2), name)
        }

        // One more identical step on both gives bit-identical weights: momentum really resumed.
        for model in [net, fresh] {
            for (i, (_, p)) in model.namedParameters().enumerated() {
                p.grad = Tensor(shape: p.shape, values: (0..<p.count).map { Float($0 * i) * 0.5 - 1 })
            }
        }
        sgd.step(); freshSGD.step()
        for ((name, a), (_, b)) in zip(net.stateDict(), fresh.stateDict()) { XCTAssertEqual(values(a), values(b), name) }
    }

    func testStrictRestoreReportsEveryProblemAtOnce() throws {
        try write([1])
        let (checkpoint, _) = try CheckpointLoader.latest(in: dir)
        // The model lacks `head` and has an `extra` the checkpoint lacks: both reported together.
        let other = Module()
        other.registerModule("backbone", Block(0))
        other.registerParameter("extra", Tensor(shape: [1], values: [0]))
        XCTAssertThrowsError(try CheckpointLoader.restore(checkpoint, into: other)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("model_0000001.h5"), text)
            XCTAssertTrue(text.contains("missing keys: extra"), text)
            XCTAssertTrue(text.contains("head.weight") && text.contains("head.running_mean"), text)
        }
    }

    /// Flips a byte inside `/model/backbone.weight` in the newest checkpoint on disk. With
    /// `unseal`, the whole-file checksum in the user block is wiped too, so that the per-dataset
    /// checksums are what catches it (as for checkpoints written before seals existed).
    func corruptBackboneWeight(_ path: String, unseal: Bool = false) throws {
        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        let needle = distinctive.withUnsafeBytes { Data($0) }
        let range = try XCTUnwrap(data.range(of: needle), "dataset bytes not found in \(path)")
        data[range.lowerBound + 5] ^= 0xff
        if unseal { data.replaceSubrange(0..<HDF5Seal.userBlockSize, with: Data(count: HDF5Seal.userBlockSize)) }
        try data.write(to: URL(fileURLWithPath: path))
    }

    /// A sealed checkpoint with a flipped byte is refused by its whole-file checksum before HDF5
    /// parses it.
    func testDamagedSealedCheckpointIsRefusedBeforeParsing() throws {
        let paths = try write([1])
        XCTAssertTrue(try HDF5Seal.verify(paths[0]), "checkpoints are sealed")
        try corruptBackboneWeight(paths[0])
        XCTAssertThrowsError(try CheckpointFile.read(paths[0])) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(paths[0]) && text.contains("do not match the checksum"), text)
        }
    }

    func testCorruptedDatasetIsNamedAndPreviousCheckpointLoads() throws {
        let paths = try write([1, 2])
        try corruptBackboneWeight(paths[1], unseal: true)
        XCTAssertThrowsError(try CheckpointFile.read(paths[1])) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(paths[1]) && text.contains("/model/backbone.weight") && text.contains("checksum"), text)
        }
        let (loaded, source) = try CheckpointLoader.latest(in: dir)
        XCTAssertEqual(loaded.state.iteration, 1)
        guard case .fallback(let reason) = source else { return XCTFail("expected a fallback, got \(source)") }
        XCTAssertTrue(reason.contains("model_0000001.h5"), reason)
        try CheckpointLoader.restore(loaded, into: Net(0))
    }

    func testTruncatedFileGivesClearErrorAndPreviousLoads() throws {
        let paths = try write([1, 2])
        let handle = try XCTUnwrap(FileHandle(forUpdatingAtPath: paths[1]))
        let size = try handle.seekToEnd()
        try handle.truncate(atOffset: size / 2)
        try handle.close()
        XCTAssertThrowsError(try CheckpointFile.read(paths[1])) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(paths[1]) && text.contains("cannot be read"), text)
        }
        XCTAssertEqual(try CheckpointLoader.latest(in: dir).checkpoint.state.iteration, 1)
    }

    func testKeepsOnlyLastK() throws {
        try write([1, 2, 3, 4], keep: 2)
        let names = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        XCTAssertEqual(names, ["last_checkpoint", "model_0000003.h5", "model_0000004.h5"])
    }

    func testMissingPointerFallsBackToNewestFile() throws {
        try write([5, 12])
        try FileManager.default.removeItem(atPath: dir + "/last_checkpoint")
        let (loaded, source) = try CheckpointLoader.latest(in: dir)
        XCTAssertEqual(loaded.state.iteration, 12)
        guard case .fallback(let reason) = source else { return XCTFail("expected a fallback") }
        XCTAssertTrue(reason.contains("missing"), reason)
    }

    func testEmptyDirectoryIsAClearError() {
        XCTAssertThrowsError(try CheckpointLoader.latest(in: dir)) { error in
            XCTAssertTrue("\(error)".contains("no loadable checkpoint in '\(dir!)'"), "\(error)")
        }
    }

    func testWeightsOnlyLoadWithPrefixRemap() throws {
        let (net, sgd) = trained(3)
        let path = try CheckpointWriter(directory: dir).write(model: net, optimizer: sgd, state: state(1))
        let backbone = Block(-1)
        try CheckpointLoader.loadWeights(from: path, into: backbone, remap: .replacingPrefix("backbone.", with: ""))
        for ((name, a), (_, b)) in zip(net.backbone.stateDict(), backbone.stateDict()) { XCTAssertEqual(values(a), values(b), name) }

        // Without the remap every name is wrong, and the error lists them all with the file.
        XCTAssertThrowsError(try CheckpointLoader.loadWeights(from: path, into: Block(0))) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(path) && text.contains("missing keys: weight, bias, running_mean"), text)
            XCTAssertTrue(text.contains("unexpected keys: backbone.bias"), text)
        }
    }

    func testWeightsOnlyLoadReadsPlainWeightFiles() throws {
        // A file another tool wrote: datasets at the root, no checksums.
        let path = dir + "/plain.h5"
        let file = try HDF5File(creating: path)
        let source = Block(4)
        for (name, t) in source.stateDict() { try file.write(t, at: "/" + name) }
        try file.close()
        let target = Net(0)
        try CheckpointLoader.loadWeights(from: path, into: target,
                                         remap: NameRemap { "backbone." + $0 }, strict: false)
        XCTAssertEqual(values(target.backbone.weight), values(source.weight))
    }

    func testSimulatedCrashLeavesPreviousCheckpointLoadable() throws {
        try write([1])
        // A crash mid-write of iteration 2: a half-written temp checkpoint and pointer temp file.
        _ = FileManager.default.createFile(atPath: dir + "/model_0000002.h5.999.tmp", contents: Data("HDF garbage".utf8))
        _ = FileManager.default.createFile(atPath: dir + "/last_checkpoint.999.tmp", contents: Data("model_00".utf8))
        let (loaded, source) = try CheckpointLoader.latest(in: dir)
        XCTAssertEqual(source, .pointer)
        XCTAssertEqual(loaded.state.iteration, 1)
        // The same with the pointer gone: the temp file is never mistaken for a checkpoint.
        try FileManager.default.removeItem(atPath: dir + "/last_checkpoint")
        XCTAssertEqual(try CheckpointLoader.latest(in: dir).checkpoint.state.iteration, 1)
        // The next successful write sweeps the stray checkpoint temp file away.
        try write([2])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/model_0000002.h5.999.tmp"))
    }

    func testH5pyReadsStateDictNamesAndShapes() throws {
        let probe = try python("import h5py")
        try XCTSkipUnless(probe.status == 0, "h5py is not installed for python3")
        let (net, sgd) = trained(2)
        let path = try CheckpointWriter(directory: dir).write(model: net, optimizer: sgd, state: state(3))
        let result = try python("""
        import sys, json, h5py
        with h5py.File(sys.argv[1], 'r') as f:
            sd = {k: f['model'][k][()] for k in f['model']}
            print(json.dumps({k: [list(v.shape), str(v.dtype)] for k, v in sd.items()}))
        """, [path])
        XCTAssertEqual(result.status, 0, result.err)
        let decoded = try JSONSerialization.jsonObject(with: Data(result.out.utf8)) as? [String: [Any]]
        let got = try XCTUnwrap(decoded)
        XCTAssertEqual(Set(got.keys), Set(net.stateDict().map(\.0)))
        for (name, t) in net.stateDict() {
            XCTAssertEqual(got[name]?[0] as? [Int], t.shape, name)
            XCTAssertEqual(got[name]?[1] as? String, "float32", name)
        }
    }

    func python(_ script: String, _ arguments: [String] = []) throws -> (status: Int32, out: String, err: String) {
        try run(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", script] + arguments)
    }

    /// Exit status, stdout and stderr of a process.
    func run(_ executable: URL, _ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
        try ProcessRunner.run(executable, arguments)
    }

    /// The percep-dist binary SwiftPM builds next to the test bundle.
    var cli: URL { ProcessRunner.percepDist }

    func testInspectCommand() throws {
        let paths = try write([7])
        let ok = try run(cli, ["checkpoint", "inspect", paths[0]])
        XCTAssertEqual(ok.status, 0, ok.err)
        XCTAssertTrue(ok.out.contains("iteration: 7"), ok.out)
        XCTAssertTrue(ok.out.contains("config hash: fedcba9876543210"), ok.out)
        XCTAssertTrue(ok.out.contains("backbone.weight") && ok.out.contains("[2, 3]"), ok.out)
        XCTAssertTrue(ok.out.contains("checksums: OK"), ok.out)

        try corruptBackboneWeight(paths[0], unseal: true)
        let bad = try run(cli, ["checkpoint", "inspect", paths[0]])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains("checksum mismatch") && bad.err.contains("/model/backbone.weight"), bad.err)
        XCTAssertFalse(bad.err.contains("Fatal error") || bad.err.contains("Stack dump"), bad.err)

        let missing = try run(cli, ["checkpoint", "inspect", dir + "/nope.h5"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.err.contains("nope.h5"), missing.err)
    }
}
