import ArgumentParser
import COCO
import Foundation
import ImageCodecs
import Plot

/// `percep-dist visualize`: each image of a COCO ground truth with its predicted masks, boxes,
/// class names and scores drawn over it, and its ground truth beside, as PNGs.
struct Visualize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw predicted instances (a COCO results file) and the ground truth over the images, side by side, as PNGs.")

    @Option(help: "Ground-truth instances JSON (annotations/instances_<split>.json).") var gt: String
    @Option(help: "Results JSON (segm.json or bbox.json from eval-inst --results-dir).") var results: String
    @Option(help: "Folder holding the images the ground truth names.") var images: String
    @Option(help: "Output folder for <image stem>.png (created if missing).") var out: String
    @Option(help: "Draw predictions with at least this score.") var score = 0.5
    @Option(help: "Draw at most this many images (0: all).") var limit = 0
    @Option(help: "Integer magnification of each image (default: the smallest that draws it at least 320 pixels wide, so captions fit beside small images).")
    var scale: Int?

    func validate() throws {
        if let scale, !(1...16).contains(scale) { throw ValidationError("--scale must be an integer from 1 to 16, got \(scale)") }
    }

    func run() throws {
        let dataset = try COCODataset(contentsOf: gt)
        let detections = try COCOResults.load(contentsOf: results, groundTruth: dataset)
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        var byImage = [Int: [COCOAnnotation]](), truthByImage = [Int: [COCOAnnotation]]()
        for d in detections where (d.score ?? 0) >= score { byImage[d.imageID, default: []].append(d) }
        for a in dataset.annotations where !a.isCrowd { truthByImage[a.imageID, default: []].append(a) }
        var written = 0
        for image in dataset.images {
            if limit > 0 && written >= limit { break }
            let path = (images as NSString).appendingPathComponent(image.fileName)
            let rgb: RGBImage
            do { rgb = try ImageFile.readRGB(path) } catch { FileHandle.standardError.write(Data("visualize: skipped \(error)\n".utf8)); continue }
            func overlay(_ list: [COCOAnnotation], scores: Bool) throws -> RGBImage {
                let instances = try list.map { a -> OverlayInstance in
                    // Box results carry the box as a polygon: draw no mask for them.
                    var mask: [UInt8]?
                    if case .rle(let rle)? = a.segmentation { mask = try rle.decodeRowMajor() }
                    else if !scores, a.segmentation != nil { mask = try dataset.mask(of: a).decodeRowMajor() }
                    let name = dataset.categoryIndex(id: a.categoryID).map { dataset.categories[$0].name } ?? "?"
                    let caption = scores ? String(format: "%@ %.2f", name, a.score ?? 0) : name
                    return OverlayInstance(mask: mask, box: (a.bbox.x, a.bbox.y, a.bbox.width, a.bbox.height), caption: caption,
                                           colourIndex: dataset.categoryIndex(id: a.categoryID) ?? 0)
                }
                return try InstanceOverlay.draw(rgb, instances, magnification: scale ?? InstanceOverlay.magnification(forWidth: rgb.width))
            }
            let picture = try InstanceOverlay.sideBySide(try overlay(byImage[image.id] ?? [], scores: true), try overlay(truthByImage[image.id] ?? [], scores: false),
                                                         captions: ("prediction (score >= \(score))", "ground truth"))
            let stem = ((image.fileName as NSString).lastPathComponent as NSString).deletingPathExtension
            try Data(PNG.encode(picture)).write(to: URL(fileURLWithPath: out).appendingPathComponent("\(stem).png"))
            written += 1
        }
        print("wrote \(written) image(s) to \(out)")
    }
}
