import XCTest
import TestSupport
import PercepCore
import PercepHDF5

/// Runs the built `percep-dist` binary the way a user does.
enum CLI {
    /// Exit status, standard output and standard error of one run.
    static func run(_ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
        try ProcessRunner.run(ProcessRunner.percepDist, arguments)
    }
}

final class LossNetCommandTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    func writeMap(_ name: String, dataset: String, shape: [Int], seed: UInt64, poison: Bool = false) throws -> String {
        var rng = SeededRNG(seed: seed)
        let t = Tensor(uninitialized: shape)
        rng.fillUniform(t, lo: 0, hi: 1)
        if poison { t.data[3] = .infinity }
        let f = try HDF5File(creating: path(name))
        try f.write(t, at: dataset)
        try f.close()
        return path(name)
    }

    /// A failed run: non-zero status, the expected words, and no crash trace.
    func assertFails(_ args: [String], mentions text: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try CLI.run(args)
        XCTAssertNotEqual(r.status, 0, "expected failure for \(args)", file: file, line: line)
        XCTAssertTrue(r.err.contains(text), "stderr was: \(r.err)", file: file, line: line)
        for trace in ["Fatal error", "Stack dump", "Current stack trace", "#0 "] {
            XCTAssertFalse(r.err.contains(trace), "crash trace in: \(r.err)", file: file, line: line)
        }
    }

    func testExportEvalRoundTrip() throws {
        let net = path("net.h5")
        let export = try CLI.run(["lossnet", "export", "--structure", "1,1,1", "--widths", "4,8,8", "--in-channels", "3",
                                  "--kernel-size", "5", "--init", "normal:0.1", "--seed", "9", "--level-weights", "geometric", "--out", net])
        XCTAssertEqual(export.status, 0, export.err)
        let f = try HDF5File(reading: net)
        XCTAssertEqual(try f.datasetNames(), ["features.0.bias", "features.0.weight", "features.3.bias", "features.3.weight",
                                              "features.6.bias", "features.6.weight"])
        XCTAssertEqual(try f.shape(at: "features.3.weight"), [8, 4, 5, 5])
        XCTAssertEqual(try f.attribute("structure"), .ints([1, 1, 1]))
        XCTAssertEqual(try f.attribute("init"), .string("normal:0.1"))
        XCTAssertEqual(try f.attribute("level_weights"), .doubles([0.25, 0.5, 1]))
        XCTAssertNotNil(try f.attribute("fingerprint")?.uintValue)
        let pred = try writeMap("pred.h5", dataset: "pred", shape: [2, 3, 16, 16], seed: 1)
        let target = try writeMap("target.h5", dataset: "target", shape: [2, 3, 16, 16], seed: 2)
        let r = try CLI.run(["lossnet", "eval", "--lossnet", net, "--pred", pred, "--target", target, "--grad-out", path("g.h5"), "--json"])
        XCTAssertEqual(r.status, 0, r.err)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Double])
        XCTAssertGreaterThan(try XCTUnwrap(json["loss"]), 0)
        XCTAssertEqual(try HDF5File(reading: path("g.h5")).shape(at: "grad"), [2, 3, 16, 16])
        // The same seed exports the same bytes.
        _ = try CLI.run(["lossnet", "export", "--structure", "1,1,1", "--widths", "4,8,8", "--in-channels", "3",
                         "--kernel-size", "5", "--init", "normal:0.1", "--seed", "9", "--level-weights", "geometric", "--out", path("net2.h5")])
        XCTAssertEqual(try HDF5File(reading: path("net2.h5")).attribute("fingerprint"), try f.attribute("fingerprint"))
    }

    func testBadInputsGiveClearErrors() throws {
        let net = path("net.h5")
        _ = try CLI.run(["lossnet", "export", "--structure", "1,1", "--widths", "4,4", "--in-channels", "3", "--out", net])
        let pred = try writeMap("pred.h5", dataset: "pred", shape: [1, 3, 8, 8], seed: 1)
        let target = try writeMap("target.h5", dataset: "target", shape: [1, 3, 8, 8], seed: 2)
        let small = try writeMap("small.h5", dataset: "target", shape: [1, 3, 8, 4], seed: 2)
        let four = try writeMap("four.h5", dataset: "pred", shape: [1, 4, 8, 8], seed: 3)
        let four2 = try writeMap("four2.h5", dataset: "target", shape: [1, 4, 8, 8], seed: 3)
        let inf = try writeMap("inf.h5", dataset: "pred", shape: [1, 3, 8, 8], seed: 4, poison: true)
        try assertFails(["lossnet", "eval", "--lossnet", net, "--pred", pred, "--target", small], mentions: "differ in shape")
        try assertFails(["lossnet", "eval", "--lossnet", net, "--pred", four, "--target", four2], mentions: "4 channels")
        try assertFails(["lossnet", "eval", "--lossnet", net, "--pred", inf, "--target", target], mentions: "non-finite")
        try assertFails(["lossnet", "eval", "--lossnet", net, "--pred", target, "--target", target], mentions: "no such dataset")
        try assertFails(["lossnet", "eval", "--lossnet", path("missing.h5"), "--pred", pred, "--target", target], mentions: "missing.h5")
        try assertFails(["lossnet", "export", "--init", "kaiming", "--out", path("x.h5")], mentions: "--init")
        try assertFails(["lossnet", "export", "--structure", "2,x,3", "--out", path("x.h5")], mentions: "--structure")
        try assertFails(["lossnet", "export", "--family", "inception_v3", "--out", path("x.h5")], mentions: "--family")
        try assertFails(["lossnet", "export", "--level-weights", "1,2", "--out", path("x.h5")], mentions: "--level-weights")
        // A network file whose weights were removed names what is missing.
        let broken = try HDF5File(creating: path("broken.h5"))
        let src = try HDF5File(reading: net)
        for name in try src.datasetNames() where name != "features.3.weight" { try broken.write(try src.readTensor(at: name), at: name) }
        for a in ["family", "structure", "widths", "kernel_size", "in_channels", "init", "seed", "level_weights", "fingerprint"] {
            try broken.setAttribute(a, try XCTUnwrap(try src.attribute(a)))
        }
        try broken.close()
        try assertFails(["lossnet", "eval", "--lossnet", path("broken.h5"), "--pred", pred, "--target", target], mentions: "features.3.weight")
    }
}
