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

    func testUnknownModelIsNamed() throws {
        let r = try CLI.run(["bench", "step", "--model", "unet_r18", "--size", "32", "--steps", "1"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("unet_r18"), r.err)
    }
}
