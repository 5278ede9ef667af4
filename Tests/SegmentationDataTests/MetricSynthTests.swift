import Foundation
import ImageCodecs
@testable import SegmentationData
import XCTest

/// mmseg IoUMetric against an independent NumPy re-implementation (fixtures from
/// tools/fixtures/make_iou_fixtures.py), and the synthetic ADE20K-layout generator.
final class MetricSynthTests: XCTestCase {
    func cases() throws -> [[String: Any]] {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/iou_metric", withExtension: "json"))
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        return object["cases"] as! [[String: Any]]
    }

    func ints(_ x: Any?) -> [Int] { (x as! [NSNumber]).map(\.intValue) }
    func doubles(_ x: Any?) -> [Double] { (x as! [Any]).map { ($0 as? NSNumber)?.doubleValue ?? .nan } }

    func assertClose(_ a: Double, _ b: Double, _ what: String) {
        if b.isNaN { XCTAssertTrue(a.isNaN, "\(what): \(a) should be NaN") } else { XCTAssertEqual(a, b, accuracy: 1e-12, what) }
    }

    func testMatchesNumPyReference() throws {
        let all = try cases()
        XCTAssertEqual(all.count, 3)
        for c in all {
            let name = c["name"] as! String, n = (c["num_classes"] as! NSNumber).intValue
            let rzl = (c["reduce_zero_label"] as! NSNumber).boolValue
            let images = c["images"] as! [[String: Any]], e = c["expected"] as! [String: Any]
            var acc = IoUAccumulator(numClasses: n)
            var halves = [IoUAccumulator(numClasses: n), IoUAccumulator(numClasses: n)]
            for (k, image) in images.enumerated() {
                acc.add(prediction: ints(image["pred"]), label: ints(image["label"]), reduceZeroLabel: rzl)
                halves[k % 2].add(prediction: ints(image["pred"]), label: ints(image["label"]), reduceZeroLabel: rzl)
            }
            XCTAssertEqual(acc.intersect.map(Int.init), ints(e["intersect"]), name)
            XCTAssertEqual(acc.predArea.map(Int.init), ints(e["pred_area"]), name)
            XCTAssertEqual(acc.labelArea.map(Int.init), ints(e["label_area"]), name)
            let r = acc.result
            for (k, (a, b)) in zip(r.iou, doubles(e["IoU"])).enumerated() { assertClose(a, b, "\(name) IoU[\(k)]") }
            for (k, (a, b)) in zip(r.acc, doubles(e["Acc"])).enumerated() { assertClose(a, b, "\(name) Acc[\(k)]") }
            for (k, (a, b)) in zip(r.dice, doubles(e["Dice"])).enumerated() { assertClose(a, b, "\(name) Dice[\(k)]") }
            assertClose(r.aAcc, (e["aAcc"] as! NSNumber).doubleValue, "\(name) aAcc")
            assertClose(r.mIoU, (e["mIoU"] as! NSNumber).doubleValue, "\(name) mIoU")
            assertClose(r.mAcc, (e["mAcc"] as! NSNumber).doubleValue, "\(name) mAcc")
            assertClose(r.mDice, (e["mDice"] as! NSNumber).doubleValue, "\(name) mDice")
            XCTAssertEqual(IoUResult.percent(r.mIoU), (e["mIoU_percent"] as! NSNumber).doubleValue, name)
            // Two "ranks": summing the flat sums (an all-reduce) gives the same accumulator.
            let summed = zip(halves[0].flat, halves[1].flat).map { $0 + $1 }
            XCTAssertEqual(IoUAccumulator(numClasses: n, flat: summed), acc, name)
            var merged = halves[0]; merged.merge(halves[1])
            XCTAssertEqual(merged, acc, name)
        }
    }

    func testHandComputedSmallCase() {
        // 3 classes; label 255 ignored, prediction 7 out of range (counts in no class).
        var acc = IoUAccumulator(numClasses: 3)
        acc.add(prediction: [0, 0, 1, 7, 2, 1], label: [0, 1, 1, 1, 255, 0] as [UInt8])
        XCTAssertEqual(acc.intersect, [1, 1, 0]); XCTAssertEqual(acc.predArea, [2, 2, 0]); XCTAssertEqual(acc.labelArea, [2, 3, 0])
        let r = acc.result
        XCTAssertEqual(r.iou[0], 1.0 / 3); XCTAssertEqual(r.iou[1], 1.0 / 4); XCTAssertTrue(r.iou[2].isNaN)
        XCTAssertEqual(r.mIoU, (1.0 / 3 + 1.0 / 4) / 2)
        XCTAssertEqual(r.aAcc, 2.0 / 5)
    }

    func testSynthIsDeterministicAndLoadsThroughTheADEReader() throws {
        let a = TempDir(), b = TempDir(), c = TempDir()
        let rootA = try SegmentationSynth.write(to: a.path, train: 12, val: 3, height: 64, width: 80, seed: 11)
        try SegmentationSynth.write(to: b.path, train: 12, val: 3, height: 64, width: 80, seed: 11)
        try SegmentationSynth.write(to: c.path, train: 12, val: 3, height: 64, width: 80, seed: 12)
        let fm = FileManager.default
        let files = try XCTUnwrap(fm.subpaths(atPath: rootA)).filter { $0.hasSuffix(".jpg") || $0.hasSuffix(".png") || $0.hasSuffix(".txt") }.sorted()
        XCTAssertEqual(files.count, 2 * 15 + 1)
        XCTAssertTrue(files.contains("images/training/ADE_train_00000012.jpg") && files.contains("annotations/validation/ADE_val_00000003.png"))
        for f in files {
            XCTAssertEqual(fm.contents(atPath: rootA + "/" + f), fm.contents(atPath: b.path + "/ADEChallengeData2016/" + f), f)
        }
        XCTAssertNotEqual(fm.contents(atPath: rootA + "/images/training/ADE_train_00000001.jpg"),
                          fm.contents(atPath: c.path + "/ADEChallengeData2016/images/training/ADE_train_00000001.jpg"))

        let ds = try SegmentationDataset(format: .ade20k, root: rootA, split: .train)
        XCTAssertEqual(ds.classNames, SegmentationSynth.classNames)
        XCTAssertEqual(try SegmentationDataset(format: .ade20k, root: rootA, split: .val).count, 3)
        var present = Set<UInt8>()
        for i in 0..<ds.count {
            let s = try ds.load(i)
            XCTAssertEqual(s.image.height, 64); XCTAssertEqual(s.image.width, 80)
            XCTAssertTrue(s.labels.values.allSatisfy { $0 < 10 || $0 == 255 })
            present.formUnion(s.labels.values)
        }
        // Every class appears somewhere in 12 images, and so does "other" (0 → 255 after reduction).
        XCTAssertEqual(present, Set((0..<10).map(UInt8.init) + [255]))
    }

    func testSynthStructure() {
        // Structural relations the generator promises, checked on raw labels over many scenes:
        // a door always touches the bottom of its wall region or the image (it stands on the
        // ground line), crowns sit above trunks, and no two classes share one colour range alone.
        var doorBelowWindow = 0, windowBelowDoor = 0
        var crownAboveTrunk = 0, crownBelowTrunk = 0
        for i in 0..<40 {
            let (_, labels) = SegmentationSynth.render(height: 96, width: 96, seed: 3, split: .train, index: i)
            func meanRow(_ c: UInt8) -> Double? {
                let rows = labels.pixels.indices.filter { labels.pixels[$0] == c }.map { $0 / 96 }
                return rows.isEmpty ? nil : Double(rows.reduce(0, +)) / Double(rows.count)
            }
            if let d = meanRow(7), let w = meanRow(8) { if d > w { doorBelowWindow += 1 } else { windowBelowDoor += 1 } }
            if let t = meanRow(3), let cr = meanRow(4) { if cr < t { crownAboveTrunk += 1 } else { crownBelowTrunk += 1 } }
        }
        XCTAssertGreaterThan(doorBelowWindow, 3 * max(windowBelowDoor, 1), "doors \(doorBelowWindow) vs \(windowBelowDoor)")
        XCTAssertGreaterThan(crownAboveTrunk, 3 * max(crownBelowTrunk, 1), "crowns \(crownAboveTrunk) vs \(crownBelowTrunk)")
    }
}
