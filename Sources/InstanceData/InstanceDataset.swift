import COCO
import Foundation

/// A problem with an instance-segmentation data set, naming the file.
public struct InstanceDataError: Error, CustomStringConvertible, Sendable {
    /// The file or directory at fault.
    public let path: String
    /// What is wrong.
    public let problem: String
    /// An error about `path`.
    public init(_ path: String, _ problem: String) { self.path = path; self.problem = problem }
    /// "path: problem".
    public var description: String { "\(path): \(problem)" }
}

/// COCO instances in the official layout: `ROOT/annotations/instances_<split>.json` and the images
/// under `ROOT/<split>/` (what `synth coco` writes). Crowd annotations are dropped, as AdelaiDet
/// does; for training, images with no non-crowd annotation are left out
/// (DATALOADER.FILTER_EMPTY_ANNOTATIONS).
public struct InstanceDataset: Sendable {
    /// The data set root.
    public let root: String
    /// The split name (`train2017`, `val2017`).
    public let split: String
    /// The parsed annotations file (ground truth for evaluation).
    public let coco: COCODataset
    /// Indices into `coco.images` of the samples, in file order.
    public let imageIndices: [Int]
    /// Non-crowd annotations of each sample, in file order.
    public let annotations: [[COCOAnnotation]]
    /// The annotations file.
    public var annotationsPath: String { "\(root)/annotations/instances_\(split).json" }

    /// Reads `ROOT/annotations/instances_<split>.json`; `filterEmpty` drops images without a
    /// non-crowd annotation.
    public init(root: String, split: String, filterEmpty: Bool) throws {
        self.root = root
        self.split = split
        let path = "\(root)/annotations/instances_\(split).json"
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw InstanceDataError(root, "DATASETS.ROOT is not a directory")
        }
        guard FileManager.default.fileExists(atPath: path) else {
            throw InstanceDataError(path, "missing: the COCO layout needs annotations/instances_\(split).json under DATASETS.ROOT")
        }
        coco = try COCODataset(contentsOf: path)
        var byImage = [Int: [COCOAnnotation]]()
        for a in coco.annotations where !a.isCrowd { byImage[a.imageID, default: []].append(a) }
        var indices: [Int] = [], annotations: [[COCOAnnotation]] = []
        for (i, image) in coco.images.enumerated() {
            let own = byImage[image.id] ?? []
            if filterEmpty && own.isEmpty { continue }
            indices.append(i)
            annotations.append(own)
        }
        guard !indices.isEmpty else { throw InstanceDataError(path, "no image\(filterEmpty ? " with a non-crowd annotation" : "")") }
        imageIndices = indices
        self.annotations = annotations
    }

    /// Number of samples.
    public var count: Int { imageIndices.count }

    /// The COCO image of sample `i`.
    public func image(_ i: Int) -> COCOImage { coco.images[imageIndices[i]] }

    /// The image file of sample `i`.
    public func imagePath(_ i: Int) -> String { "\(root)/\(split)/\(image(i).fileName)" }

    /// detectron2's aspect-ratio bucket of each sample: 0 when wider than tall, 1 otherwise.
    public var aspectGroups: [Int] { (0..<count).map { image($0).width > image($0).height ? 0 : 1 } }

    /// Number of classes (categories, contiguous in ascending id order).
    public var classCount: Int { coco.categories.count }
}
