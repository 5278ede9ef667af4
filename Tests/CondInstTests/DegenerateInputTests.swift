import CondInst
import Foundation
import InstanceModels
import InstanceTraining
import PercepCore
import PercepNN
import XCTest

/// Degenerate instances train without NaN: zero-area boxes, empty masks, masks outside their box
/// or off the image, images without instances, more than MAX_PROPOSALS positives, one instance.
final class DegenerateInputTests: XCTestCase {
    func narrowModel() -> CondInstModel {
        var spec = CondInstSpec()
        spec.resnet.stemChannels = 8; spec.resnet.res2Channels = 32; spec.resnet.bottleneckChannels = 8
        spec.fpnChannels = 32; spec.gnGroups = 8; spec.numClasses = 3; spec.fcosClsConvs = 1; spec.fcosBoxConvs = 1
        spec.maskBranchChannels = 16; spec.maskBranchConvs = 1
        var rng = SeededRNG(seed: 4, stream: "degenerate")
        return CondInstModel(spec, rng: &rng)
    }

    /// A K-instance image of `size` from boxes and mask rectangles given in pixels.
    func truth(_ size: (Int, Int), boxes: [[Float]], masks: [[Int]], classes: [Int]) -> InstanceGroundTruth {
        var bytes = [UInt8](repeating: 0, count: boxes.count * size.0 * size.1)
        for (k, r) in masks.enumerated() where !r.isEmpty {
            let (y0, y1, x0, x1) = (max(r[1], 0), min(r[3], size.0), max(r[0], 0), min(r[2], size.1))
            guard y0 < y1, x0 < x1 else { continue }  // entirely off the image: an empty mask
            for y in y0..<y1 { for x in x0..<x1 { bytes[(k * size.0 + y) * size.1 + x] = 1 } }
        }
        return InstanceGroundTruth(boxes: boxes.flatMap { $0 }, classes: classes, masks: bytes, height: size.0, width: size.1)
    }

    /// One step's losses and gradients, all finite; with `everyGradient`, every trainable
    /// parameter must have received one (mask instances reach the controller and mask branch).
    func assertFiniteStep(_ model: CondInstModel, _ truthList: [InstanceGroundTruth], settings: CondInstLossSettings = CondInstLossSettings(),
                          everyGradient: Bool = true, _ what: String) -> GroupLosses {
        let criterion = CondInstCriterion(spec: model.spec, settings: settings)
        let (h, w) = (truthList[0].height, truthList[0].width)
        var rng = SeededRNG(seed: 9, stream: "images")
        let images = Tensor(uninitialized: [truthList.count, 3, h, w])
        rng.fillNormal(images, std: 1)
        var groupRNG = SeededRNG(seed: 1, stream: "group")
        model.zeroGrad()
        let parts = criterion.groupLosses(model: model, images: images, truth: truthList, rng: &groupRNG)
        let terms = CondInstCriterion.terms([parts], totalPositives: Double(parts.positives), totalCenternessTargets: parts.centernessTargetSum,
                                            groupsInBatch: 1, worldSize: 1)
        for (name, value) in terms { XCTAssertTrue(value.item.isFinite, "\(what): \(name) = \(value.item)") }
        let total = terms.dropFirst().reduce(terms[0].value) { $0 + $1.value }
        total.backward()
        for (name, p) in model.namedParameters() where p.requiresGrad {
            guard let g = p.grad else {
                // A level's Scale only learns from that level's positives.
                if everyGradient && !name.contains(".scales.") { XCTFail("\(what): no gradient for \(name)") }
                continue
            }
            XCTAssertTrue(g.values.allSatisfy(\.isFinite), "\(what): gradient of \(name) is not finite")
        }
        return parts
    }

    func testDegenerateInstancesTrainWithoutNaN() {
        let model = narrowModel()
        let size = (64, 96)
        // One ordinary instance, then a zero-area box with an empty mask, a box whose mask lies
        // outside it and a mask off the image. (The ordinary one comes first: an empty first mask
        // has its centre at x = 0, which gives the image no positives at all, as in AdelaiDet.)
        let odd = truth(size, boxes: [[20, 16, 52, 48], [10, 10, 10, 30], [40, 8, 60, 30], [70, 40, 90, 60]],
                        masks: [[22, 18, 50, 46], [], [0, 40, 12, 60], [200, 200, 210, 210]], classes: [1, 0, 1, 2])
        let empty = truth(size, boxes: [], masks: [], classes: [])
        let parts = assertFiniteStep(model, [odd, empty], "zero-area, misplaced and empty masks, no instances")
        XCTAssertGreaterThan(parts.positives, 0)
        XCTAssertGreaterThan(parts.maskInstances, 0)
        // Only images without instances: the classification loss alone, still finite (the mask
        // branch and the controller get no gradient).
        let none = assertFiniteStep(model, [empty, empty], everyGradient: false, "no instance in the group")
        XCTAssertEqual(none.positives, 0)
        XCTAssertEqual(none.maskInstances, 0)
        // One instance.
        let single = assertFiniteStep(model, [truth(size, boxes: [[20, 16, 52, 48]], masks: [[22, 18, 50, 46]], classes: [1])], "one instance")
        XCTAssertGreaterThan(single.positives, 0)
    }

    /// Far more than MAX_PROPOSALS positives (large objects on a large canvas): the mask loss takes
    /// a sample of MAX_PROPOSALS of them.
    func testMorePositivesThanMaxProposals() {
        let model = narrowModel()
        let size = (256, 320)
        var boxes: [[Float]] = [], masks: [[Int]] = [], classes: [Int] = []
        for i in 0..<12 {
            let x = (i % 4) * 78 + 4, y = (i / 4) * 84 + 4
            boxes.append([Float(x), Float(y), Float(x + 74), Float(y + 80)]); masks.append([x, y, x + 74, y + 80]); classes.append(i % 3)
        }
        var settings = CondInstLossSettings()
        settings.maxProposals = 20
        let parts = assertFiniteStep(model, [truth(size, boxes: boxes, masks: masks, classes: classes)], settings: settings, "capped positives")
        XCTAssertGreaterThan(parts.positives, 20)
        XCTAssertEqual(parts.maskInstances, 20)
    }
}
