import DepthData
import Foundation
import TestSupport
import XCTest

/// NYU's files as the official ones are laid out (written by h5py and SciPy,
/// tools/pytorch/make_depth_fixtures.py) and VNL's metrics against a NumPy evaluate_err.
final class DepthDataTests: XCTestCase {
    static func fixture(_ name: String) throws -> String {
        try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/" + name, withExtension: nil)).path
    }

    func expected() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: try Self.fixture("nyu_tiny.json")))
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// The v7.3 file behind MATLAB's 512-byte header, chunked and gzip-compressed, column-major:
    /// every image comes out row-major and equal to what was written.
    func testLabeledV73FileReadsTransposedImagesAndDepths() throws {
        let nyu = try NYULabeledFile(path: try Self.fixture("nyu_tiny.mat"))
        XCTAssertEqual([nyu.count, nyu.height, nyu.width], [3, 6, 8])
        let want = try expected()
        let rgb = try XCTUnwrap(want["rgb"] as? [[[[Int]]]]), depth = try XCTUnwrap(want["depth"] as? [[[Double]]])
        for i in 0..<3 {
            let s = try nyu.sample(i)
            XCTAssertEqual(s.rgb, rgb[i].flatMap { $0.flatMap { $0.map(UInt8.init) } }, "image \(i)")
            XCTAssertEqual(s.depth, depth[i].flatMap { $0.map(Float.init) }, "depth \(i)")
        }
        let raw = try NYULabeledFile(path: try Self.fixture("nyu_tiny.mat"), depthSource: "rawDepths")
        let rawDepth = try XCTUnwrap(want["rawDepth"] as? [[[Double]]])
        XCTAssertEqual(try raw.sample(2).depth, rawDepth[2].flatMap { $0.map(Float.init) })
    }

    func testSplitsCompressedAndPlainAreZeroBased() throws {
        for file in ["splits.mat", "splits_plain.mat"] {
            let splits = try NYUSplits(path: try Self.fixture(file), imageCount: 3)
            XCTAssertEqual(splits.train, [0, 1], file)
            XCTAssertEqual(splits.test, [2], file)
        }
    }

    /// Bad input: each a `DepthDataError` naming the file and the item.
    func testBadNYUFilesAreNamedErrors() throws {
        func message(_ body: () throws -> Void) -> String {
            do { try body(); return "no error" } catch { return "\(error)" }
        }
        let outOfRange = message { _ = try NYUSplits(path: try Self.fixture("splits_out_of_range.mat"), imageCount: 3) }
        XCTAssertTrue(outOfRange.contains("splits_out_of_range.mat: testNdxs[0]: index 4.0 is not in 1…3"), outOfRange)
        let missing = message { _ = try NYULabeledFile(path: try Self.fixture("nyu_missing_depths.mat")) }
        XCTAssertTrue(missing.contains("nyu_missing_depths.mat: depths: missing"), missing)
        let nan = message { _ = try NYULabeledFile(path: try Self.fixture("nyu_nan_depth.mat")).sample(1) }
        XCTAssertTrue(nan.contains("nyu_nan_depth.mat: depths[1]: depth nan at row 2, column 5"), nan)
        let v73AsV5 = message { _ = try MATv5.read(try Self.fixture("nyu_tiny.mat")) }
        XCTAssertTrue(v73AsV5.contains("v7.3 (HDF5) file, not a level-5 MAT file"), v73AsV5)
        let notHDF5 = message { _ = try NYULabeledFile(path: try Self.fixture("splits.mat")) }
        XCTAssertTrue(notHDF5.contains("splits.mat: not a MATLAB v7.3 (HDF5) file"), notHDF5)
        // A MAT v5 file cut inside its compressed element.
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: try Self.fixture("splits.mat"))))
        bytes.removeLast(20)
        let cut = message { _ = try MATv5.read(bytes: bytes, file: "cut.mat") }
        XCTAssertTrue(cut.hasPrefix("cut.mat: ") && cut.contains("truncated"), cut)
    }

    func metricsMatch(_ sums: DepthMetricSums, _ want: [String: Any], line: UInt = #line) {
        XCTAssertEqual(sums.count, (want["pixels"] as? Double) ?? Double(want["pixels"] as? Int ?? -1), line: line)
        for (name, value) in zip(DepthMetricSums.names, sums.values) {
            let w = (want[name] as? Double) ?? .nan
            XCTAssertEqual(value, w, accuracy: 1e-12 * max(1, abs(w)), name, line: line)
        }
    }

    /// Pooled over every valid pixel, with and without a crop; exact 1.25 ties (either
    /// direction) are not counted, ratios just inside are.
    func testMetricsMatchNumPysEvaluateErr() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: try Self.fixture("depth_expected.json")))
        let want = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: [String: Any]])
        let pred = try Self.fixture("depth_pred"), gt = try Self.fixture("depth_gt")
        let cropped = try DepthPredictionFolder.evaluate(predDir: pred, gtDir: gt, scale: 1000, crop: DepthCrop(rowStart: 2, rowEnd: 18, colStart: 3, colEnd: 21))
        XCTAssertEqual(cropped.images, 3)
        metricsMatch(cropped.sums, try XCTUnwrap(want["crop_2_18_3_21"]))
        metricsMatch(try DepthPredictionFolder.evaluate(predDir: pred, gtDir: gt, scale: 1000, crop: nil).sums, try XCTUnwrap(want["no_crop"]))

        // The ties themselves: 1000 vs 1250 either way is not < 1.25; 1249 is; 1600/1000 is not < 1.5625.
        var ties = DepthMetricSums()
        ties.add(prediction: [1250, 1000, 1249, 1251, 1000], truth: [1000, 1250, 1000, 1000, 1600], height: 1, width: 5, scale: 1000, crop: nil)
        XCTAssertEqual(ties.delta, [1, 4, 5])
        // Sums merge: two halves give the whole.
        var a = DepthMetricSums(), b = DepthMetricSums(), whole = DepthMetricSums()
        let p: [Float] = [1, 2, 3, 4], g: [Float] = [1.1, 0, 2.5, 5]
        a.add(prediction: Array(p[0..<2]), truth: Array(g[0..<2]), height: 1, width: 2, crop: nil)
        b.add(prediction: Array(p[2...]), truth: Array(g[2...]), height: 1, width: 2, crop: nil)
        whole.add(prediction: p, truth: g, height: 2, width: 2, crop: nil)
        a.merge(b)
        XCTAssertEqual(a.count, 3)
        for (x, y) in zip(a.values, whole.values) { XCTAssertEqual(x, y, accuracy: 1e-15) }
    }

    /// The command: JSON keys as the issue names them, the Eigen crop by default, and clear
    /// errors for 8-bit PNGs, size mismatches and a missing counterpart.
    func testEvalDepthCommand() throws {
        let pred = try Self.fixture("depth_pred"), gt = try Self.fixture("depth_gt")
        let r = try ProcessRunner.run(ProcessRunner.percepDist, ["eval-depth", "--pred-dir", pred, "--gt-dir", gt, "--crop", "2,18,3,21", "--json"])
        XCTAssertEqual(r.status, 0, r.err)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
        for key in DepthMetricSums.names + ["images", "pixels"] { XCTAssertNotNil(json[key], key) }
        XCTAssertEqual(json["pixels"] as? Int, 774)
        // Eigen's crop lies outside these 20×24 images: no valid pixel, metrics null.
        let eigen = try ProcessRunner.run(ProcessRunner.percepDist, ["eval-depth", "--pred-dir", pred, "--gt-dir", gt, "--json"])
        XCTAssertEqual(eigen.status, 0, eigen.err)
        XCTAssertTrue(eigen.out.contains("\"abs_rel\":null") && eigen.out.contains("\"pixels\":0"), eigen.out)

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evaldepth-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        for (name, source, expect) in [("eight", "eight_bit.png", "must be a 16-bit grey PNG, this one is 8-bit"),
                                       ("narrow", "narrow.png", "prediction is 20×23 but ground truth")] {
            let p = dir.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: p, withIntermediateDirectories: true)
            for i in 0..<3 {
                try FileManager.default.copyItem(atPath: try Self.fixture("depth_bad/" + source), toPath: p.appendingPathComponent(String(format: "%04d.png", i)).path)
            }
            let bad = try ProcessRunner.run(ProcessRunner.percepDist, ["eval-depth", "--pred-dir", p.path, "--gt-dir", gt])
            XCTAssertNotEqual(bad.status, 0)
            XCTAssertTrue(bad.err.contains(expect) && bad.err.contains("0000.png"), bad.err)
        }
        try FileManager.default.removeItem(at: dir.appendingPathComponent("narrow/0002.png"))
        let lonely = try ProcessRunner.run(ProcessRunner.percepDist, ["eval-depth", "--pred-dir", dir.appendingPathComponent("narrow").path, "--gt-dir", gt])
        XCTAssertTrue(lonely.err.contains("0002.png: ground truth has no prediction"), lonely.err)
        let crop = try ProcessRunner.run(ProcessRunner.percepDist, ["eval-depth", "--pred-dir", pred, "--gt-dir", gt, "--crop", "5,2,0,1"])
        XCTAssertTrue(crop.err.contains("--crop must be r0,r1,c0,c1"), crop.err)
    }
}

/// VNL's augmentation and test pipeline on a frame of constant depth: the training units carry
/// the side/crop factor, padding is −1 on top, draws are a function of (seed, epoch, index), and
/// the test pipeline maps a consistent prediction back to the frame's metres.
final class DepthTransformTests: XCTestCase {
    func frame(_ g: DepthGeometry, metres: Float) -> NYUSample {
        let rgb = (0..<(g.rawHeight * g.rawWidth * 3)).map { UInt8($0 % 251) }
        return NYUSample(height: g.rawHeight, width: g.rawWidth, rgb: rgb, depth: [Float](repeating: metres, count: g.rawHeight * g.rawWidth))
    }

    func testTrainingUnitsPaddingAndDeterminism() {
        let g = DepthGeometry.tiny, sample = frame(g, metres: 2)
        let t = DepthTrainTransform(geometry: g, seed: 3)
        var padded = 0
        for index in 0..<40 {
            let out = t.apply(sample, epoch: 0, index: index)
            XCTAssertEqual(out.image.count, 3 * g.crop * g.crop)
            XCTAssertEqual(out.depth.count, g.crop * g.crop)
            // Valid pixels hold 0.2 · side / crop for the drawn side, except the one row where the
            // resize mixes padding (−1) with depth; padding rows are negative.
            let valid = out.depth.filter { $0 >= 0 }
            let sides = valid.map { ($0 / 0.2 * Float(g.crop)).rounded() }
            let side = Dictionary(grouping: sides, by: { $0 }).max { $0.value.count < $1.value.count }!.key
            XCTAssertTrue(g.trainSides.map(Float.init).contains(side), "\(side)")
            XCTAssertLessThanOrEqual(sides.filter { $0 != side }.count, g.crop, "only the boundary row is mixed")
            if out.depth[0] < 0 { padded += 1; XCTAssertGreaterThan(out.depth[g.crop * (g.crop - 1)], 0, "padding is on top") }
            XCTAssertEqual(out.depth, t.apply(sample, epoch: 0, index: index).depth, "the same draws for the same sample")
        }
        XCTAssertGreaterThan(padded, 5, "sides above the frame height pad the top")
        XCTAssertNotEqual(t.apply(sample, epoch: 1, index: 0).image, t.apply(sample, epoch: 2, index: 0).image)
    }

    func testTestPipelineMapsAConsistentPredictionBackToMetres() {
        for g in [DepthGeometry(), DepthGeometry.tiny] {
            let t = DepthTestTransform(geometry: g)
            XCTAssertEqual(t.input(frame(g, metres: 2)).count, 3 * g.crop * g.crop)
            // A network that predicts the truth in training units: 0.2 m/10 · testSide / crop.
            let prediction = [Float](repeating: 0.2 * Float(g.testSide) / Float(g.crop), count: g.crop * g.crop)
            let metres = t.metres(prediction)
            XCTAssertEqual(metres.count, g.rawHeight * g.rawWidth)
            for m in metres { XCTAssertEqual(m, 2, accuracy: 1e-5) }
        }
    }
}
