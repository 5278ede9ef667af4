import CondInst
import Foundation
import InstanceModels
import PercepCore
import PercepHDF5
import XCTest

/// Each piece of CondInst against the float64 twin's `pieces.h5`: aligned_bilinear, FCOS target
/// assignment on hand-made boxes (size bounds, ties, nesting, no GT, the centre-x quirk, borders),
/// the focal, GIoU and dice losses, the dynamic mask head (parameter split, relative
/// coordinates), class-aware NMS (ties, classes, IoU exactly at the threshold) and the mask paste.
final class PieceParityTests: XCTestCase {
    var file: HDF5File!

    override func setUpWithError() throws { file = try StepParityTests.fixture("pieces") }

    func cases(_ piece: String) throws -> [String] { try file.groupNames(in: "/\(piece)").sorted() }
    func tensor(_ path: String) throws -> Tensor { try file.readTensor(at: path) }
    func ints(_ path: String) throws -> [Int] { try file.readIntegers(at: path).values.map(Int.init) }
    func intAttribute(_ name: String, _ object: String) throws -> Int {
        guard case .int(let v)? = try file.attribute(name, on: object) else { throw XCTSkip("\(object) lacks \(name)") }
        return Int(v)
    }
    func intsAttribute(_ name: String, _ object: String) throws -> [Int] {
        guard case .ints(let v)? = try file.attribute(name, on: object) else { throw XCTSkip("\(object) lacks \(name)") }
        return v.map(Int.init)
    }

    func assertClose(_ a: [Float], _ b: [Float], rtol: Float = 1e-4, atol: Float = 1e-5, _ what: String, file f: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, "\(what): sizes", file: f, line: line)
        var worst: Float = 0, at = 0
        for i in 0..<min(a.count, b.count) {
            let excess = abs(a[i] - b[i]) - (atol + rtol * abs(b[i]))
            if !(excess <= worst) { worst = excess.isNaN ? .infinity : excess; at = i }
        }
        XCTAssertEqual(worst, 0, "\(what): element \(at) is \(a.isEmpty ? 0 : a[at]), twin \(b.isEmpty ? 0 : b[at])", file: f, line: line)
    }

    func testAlignedBilinear() throws {
        for c in try cases("aligned_bilinear") {
            let p = "/aligned_bilinear/\(c)"
            let x = try tensor("\(p)/input"); x.requiresGrad = true
            let y = x.alignedBilinear(factor: try intAttribute("factor", p))
            assertClose(y.values, try tensor("\(p)/output").values, "\(c) output")
            y.backward(seed: try tensor("\(p)/grad_output"))
            assertClose(x.grad!.values, try tensor("\(p)/grad_input").values, "\(c) gradient")
        }
    }

    func testTargetAssignment() throws {
        for c in try cases("targets") {
            let p = "/targets/\(c)"
            let boxes = try tensor("\(p)/boxes").values, centers = try tensor("\(p)/centers").values
            let gt = ImageBoxes(boxes: boxes, classes: try ints("\(p)/classes"),
                                centers: stride(from: 0, to: centers.count, by: 2).map { (centers[$0], centers[$0 + 1]) })
            let (h, w) = (try intAttribute("height", p), try intAttribute("width", p)), numClasses = try intAttribute("num_classes", p)
            var levels: [LevelGeometry] = [], size = (h, w)
            for s in try intsAttribute("strides", p) {
                // FPN sizes: P3–P5 exact for multiples of 32, P6/P7 ⌈·/2⌉ of the level below.
                size = s <= 32 ? (h / s, w / s) : ((size.0 + 1) / 2, (size.1 + 1) / 2)
                levels.append(LevelGeometry(stride: s, height: size.0, width: size.1))
            }
            let a = FCOSTargets.assign(gt, levels: levels, sizeRanges: FCOSTargets.sizeRanges([64, 128, 256, 512]), numClasses: numClasses)
            XCTAssertEqual(a.labels.map(Int.init), try ints("\(p)/labels"), "\(c) labels")
            XCTAssertEqual(a.instanceIndex, try ints("\(p)/gt_inds"), "\(c) instances")
            assertClose(a.regressionTargets, try tensor("\(p)/reg_targets").values, rtol: 1e-6, atol: 1e-6, "\(c) regression targets")
            let ctr = a.labels.indices.map { a.labels[$0] == Int32(numClasses) ? 0 : FCOSTargets.centerness(a.regressionTargets[(4 * $0)..<(4 * $0 + 4)]) }
            assertClose(ctr, try tensor("\(p)/ctr_targets").values, rtol: 1e-6, atol: 1e-6, "\(c) centerness targets")
        }
    }

    func testFocalLoss() throws {
        for c in try cases("focal") {
            let p = "/focal/\(c)"
            let flat = try tensor("\(p)/logits"), (n, k) = (flat.shape[0], flat.shape[1])
            // The fused loss reads NCHW maps; [P, C] logits are P locations of a 1 × P map.
            let logits = flat.transposed(0, 1).reshaped([1, k, 1, n])
            let leaf = logits.detached(); leaf.requiresGrad = true
            let loss = InstanceLoss.sigmoidFocalSum(leaf, labels: try ints("\(p)/labels").map(Int32.init))
            assertClose([loss.item], [try tensor("\(p)/loss").item], "\(c) loss")
            loss.backward()
            let grad = leaf.grad!.reshaped([k, n]).transposed(0, 1)
            assertClose(grad.values, try tensor("\(p)/grad_logits").values, rtol: 1e-4, atol: 1e-6, "\(c) gradient")
        }
    }

    func testGIoULoss() throws {
        for c in try cases("giou") {
            let p = "/giou/\(c)"
            let pred = try tensor("\(p)/pred"); pred.requiresGrad = true
            let loss = InstanceLoss.giouSum(pred, try tensor("\(p)/target"), weight: try tensor("\(p)/weight").values)
            assertClose([loss.item], [try tensor("\(p)/loss").item], "\(c) loss")
            loss.backward()
            assertClose(pred.grad!.values, try tensor("\(p)/grad_pred").values, rtol: 1e-4, atol: 1e-6, "\(c) gradient")
        }
    }

    func testDiceLoss() throws {
        for c in try cases("dice") {
            let p = "/dice/\(c)"
            let logits = try tensor("\(p)/logits"); logits.requiresGrad = true
            let gt = try tensor("\(p)/gt").values.map { UInt8($0) }
            let n = logits.shape[0]
            let loss = InstanceLoss.dice(logits, masks: gt, maskIndex: Array(0..<n))
            assertClose(loss.values, try tensor("\(p)/loss").values, "\(c) loss")
            loss.mean().backward()
            assertClose(logits.grad!.values, try tensor("\(p)/grad_logits").values, rtol: 1e-4, atol: 1e-7, "\(c) gradient")
        }
    }

    func testDynamicMaskHead() throws {
        for c in try cases("mask_head") {
            let p = "/mask_head/\(c)"
            let features = try tensor("\(p)/mask_feats"); features.requiresGrad = true
            let params = try tensor("\(p)/params"); params.requiresGrad = true
            let loc = try tensor("\(p)/locations").values
            let instances = MaskInstances(imageIndex: try ints("\(p)/im_inds"), locations: stride(from: 0, to: loc.count, by: 2).map { (loc[$0], loc[$0 + 1]) },
                                          levels: try ints("\(p)/levels"))
            let head = DynamicMaskHead()
            let logits = head(maskFeatures: features, parameters: params, instances: instances).alignedBilinear(factor: 2)
            assertClose(logits.values, try tensor("\(p)/logits").values, "\(c) logits")
            logits.backward(seed: try tensor("\(p)/grad_output"))
            assertClose(features.grad!.values, try tensor("\(p)/grad_mask_feats").values, rtol: 1e-4, atol: 1e-5, "\(c) feature gradient")
            assertClose(params.grad!.values, try tensor("\(p)/grad_params").values, rtol: 1e-4, atol: 1e-5, "\(c) parameter gradient")
        }
    }

    func testClassAwareNMS() throws {
        for c in try cases("nms") {
            let p = "/nms/\(c)"
            guard case .double(let threshold)? = try file.attribute("iou_threshold", on: p) else { XCTFail("\(c): no threshold"); continue }
            let keep = CondInstInference.batchedNMS(boxes: try tensor("\(p)/boxes").values, scores: try tensor("\(p)/scores").values,
                                                    classes: try ints("\(p)/classes"), threshold: threshold)
            XCTAssertEqual(keep, try ints("\(p)/keep"), "\(c)")
        }
    }

    func testMaskPaste() throws {
        for c in try cases("postprocess") {
            let p = "/postprocess/\(c)"
            let (padded, resized, original) = (try intsAttribute("padded", p), try intsAttribute("resized", p), try intsAttribute("original", p))
            let probs = try tensor("\(p)/mask_probs"), n = probs.shape[0]
            // Every instance's mask (boxes inside the image so none is dropped), then the box step.
            let wide = [Float](repeating: 0, count: 0) + (0..<n).flatMap { _ in [Float(1), 1, Float(resized[1] - 1), Float(resized[0] - 1)] }
            let all = CondInstInference.postprocess(boxes: wide, masks: probs, padded: (padded[0], padded[1]), resized: (resized[0], resized[1]),
                                                    original: (original[0], original[1]))
            XCTAssertEqual(all.masks.flatMap { $0 }, try ints("\(p)/masks").map(UInt8.init), "\(c) masks")
            let post = CondInstInference.postprocess(boxes: try tensor("\(p)/boxes").values, masks: probs, padded: (padded[0], padded[1]),
                                                     resized: (resized[0], resized[1]), original: (original[0], original[1]))
            XCTAssertEqual(post.keep, try ints("\(p)/keep"), "\(c) kept boxes")
            assertClose(post.boxes, try tensor("\(p)/boxes_out").values, rtol: 1e-5, atol: 1e-4, "\(c) boxes")
        }
    }
}
