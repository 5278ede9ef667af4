import Foundation
import XCTest

/// `percep-dist bench step` at a tiny size: it runs a whole step with and without the perceptual
/// loss, reports the JSON keys tools/bench_step.py shares, and names a bad model.
final class BenchStepTests: XCTestCase {
    func testJSONWithAndWithoutPerceptualLoss() throws {
        var losses: [Double] = []
        for extra in [[], ["--perceptual", "1,1,1"]] {
            let r = try CLI.run(["bench", "step", "--model", "deeplabv3plus_r18", "--size", "32", "--classes", "3",
                                 "--steps", "1", "--warmup", "0", "--threads", "1", "--json"] + extra)
            XCTAssertEqual(r.status, 0, r.err)
            let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
            XCTAssertGreaterThan((o["seconds_per_step"] as! NSNumber).doubleValue, 0)
            XCTAssertGreaterThan((o["peak_rss_mb"] as! NSNumber).doubleValue, 0)
            XCTAssertEqual(o["perceptual"] as? String, extra.last ?? "none")
            losses.append((o["loss"] as! NSNumber).doubleValue)
        }
        // Same seeds, so the perceptual term is the whole difference: positive and finite.
        XCTAssertGreaterThan(losses[1], losses[0])
    }

    /// `--profile-ops` prints the per-op table on stderr (the JSON on stdout stays one object):
    /// the convolutions, the cross-entropy and the optimizer each with a row, shares that add up.
    func testProfileOpsTable() throws {
        let r = try CLI.run(["bench", "step", "--model", "deeplabv3plus_r18", "--size", "32", "--classes", "3",
                             "--steps", "1", "--warmup", "0", "--threads", "1", "--json", "--profile-ops"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertNotNil(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any], r.out)
        let rows = r.err.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true) }
        let ops = Set(rows.compactMap { $0.first.map(String.init) })
        for op in ["conv2d", "crossEntropy", "SGD"] { XCTAssertTrue(ops.contains(op), "no \(op) row in\n\(r.err)") }
        let shares = rows.compactMap { $0.last.flatMap { $0.hasSuffix("%") ? Double($0.dropLast()) : nil } }
        XCTAssertEqual(shares.reduce(0, +), 100, accuracy: 1, r.err)
    }

    /// The CondInst step counts its mask instances, and `--max-proposals` and
    /// `--perceptual-max-instances` cap them as the config keys do; bad caps are named.
    func testCondInstStepReportsAndCapsMaskInstances() throws {
        func run(_ extra: [String]) throws -> [String: Any] {
            let r = try CLI.run(["bench", "step", "--model", "condinst_r50", "--size", "256", "--batch", "2", "--instances", "4",
                                 "--steps", "1", "--warmup", "0", "--threads", "1", "--json"] + extra)
            XCTAssertEqual(r.status, 0, r.err)
            return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any], r.out)
        }
        let uncapped = try run([])
        let all = (uncapped["mask_instances"] as! NSNumber).intValue
        XCTAssertGreaterThan(all, 5, "every positive location is a mask instance without a cap")
        let capped = try run(["--max-proposals", "5", "--perceptual", "1,1", "--perceptual-max-instances", "2"])
        XCTAssertEqual((capped["mask_instances"] as! NSNumber).intValue, 5)
        XCTAssertEqual((capped["perceptual_max_instances"] as! NSNumber).intValue, 2)
        XCTAssertGreaterThan((capped["loss_percep"] as! NSNumber).doubleValue, 0)
        for bad in [["--max-proposals", "0"], ["--perceptual-max-instances", "-2"]] {
            let r = try CLI.run(["bench", "step", "--model", "condinst_r50", "--size", "256", "--steps", "1"] + bad)
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.err.contains(bad[0]), r.err)
        }
    }

    func testUnknownModelIsNamed() throws {
        let r = try CLI.run(["bench", "step", "--model", "unet_r18", "--size", "32", "--steps", "1"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("unet_r18"), r.err)
    }
}
