import DataLoading
import Foundation
import ImageCodecs

/// A failure listing or loading a segmentation data set: the file or folder and the problem.
public struct SegmentationDataError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file or folder concerned.
    public let path: String
    /// What is wrong with it.
    public let problem: String
    /// Creates an error for `path`.
    public init(path: String, problem: String) { self.path = path; self.problem = problem }
    /// "path: problem".
    public var description: String { "\(path): \(problem)" }
}

/// The on-disk layouts the reader understands (evaluation spec §2.2–2.4).
public enum SegmentationDatasetFormat: String, Sendable, CaseIterable {
    /// `ADEChallengeData2016/{images,annotations}/{training,validation}/`: `.jpg` images, 8-bit grey
    /// `.png` annotations with 0 = "other" (ignored by reduce_zero_label) and classes 1…K.
    case ade20k
    /// `leftImg8bit/{train,val}/<city>/*_leftImg8bit.png` with `gtFine/{train,val}/<city>/`
    /// `*_gtFine_labelIds.png` (mapped to the 19 trainIds) or `*_gtFine_labelTrainIds.png` (what
    /// cityscapesScripts' createTrainIdLabelImgs writes, read as they are): `CityscapesLabels`.
    case cityscapes
    /// Pascal VOC 2012: `JPEGImages/*.jpg`, palette `SegmentationClass/*.png`,
    /// `ImageSets/Segmentation/{train,val}.txt`; 21 classes, 255 = boundary (ignored).
    case voc
}

/// Which Cityscapes annotation files a data set reads.
public enum CityscapesLabels: String, Sendable, CaseIterable {
    /// `*_gtFine_labelIds.png` when the split has them, else `*_gtFine_labelTrainIds.png`.
    case auto
    /// The official `*_gtFine_labelIds.png`, mapped through labels.py's labelId → trainId table.
    case labelIds
    /// `*_gtFine_labelTrainIds.png`: trainIds 0…18 and 255 already (mmseg's default
    /// `seg_map_suffix`).
    case labelTrainIds

    /// The annotation file suffix.
    public var suffix: String { self == .labelTrainIds ? "_gtFine_labelTrainIds.png" : "_gtFine_labelIds.png" }
}

/// Which part of a data set: ADE20K calls them `training`/`validation`, the others `train`/`val`.
public enum SegmentationSplit: String, Sendable {
    /// The training images.
    case train
    /// The validation images.
    case val
}

/// A label map after mapping to training ids: height × width bytes, row-major, values 0…C−1 or
/// 255 (ignored).
public struct LabelMap: Equatable, Sendable {
    /// Pixel rows.
    public let height: Int
    /// Pixel columns.
    public let width: Int
    /// height × width class indices (or 255), pixel (y, x) at y · width + x.
    public var values: [UInt8]
    /// A label map from its values; `values.count` must be height × width.
    public init(height: Int, width: Int, values: [UInt8]) {
        precondition(values.count == height * width, "label map \(height)×\(width) with \(values.count) values")
        self.height = height; self.width = width; self.values = values
    }
}

/// One loaded sample: the RGB image (H × W × 3 bytes) and its label map (H × W), same size.
public struct SegmentationSample: Sendable {
    /// The image.
    public var image: RGBImage
    /// The mapped labels (0…C−1, 255 ignored).
    public var labels: LabelMap
}

/// The image and annotation file of one sample.
public struct SegmentationSampleFiles: Equatable, Sendable {
    /// The image file (JPEG or PNG, read by signature).
    public let image: String
    /// The annotation PNG.
    public let annotation: String
}

/// A semantic-segmentation data set read from one of the official layouts.
///
/// Listing happens once in `init` (sorted by file name, so every rank sees the same order);
/// `load(_:)` decodes one sample and maps its annotation to training ids. Value type, safe to
/// share between loader threads.
public struct SegmentationDataset: Sendable {
    /// The label of pixels that are not scored (and the padding label of crops).
    public static let ignoreIndex: UInt8 = 255

    /// The layout.
    public let format: SegmentationDatasetFormat
    /// The data set root (e.g. `…/ADEChallengeData2016`, `…/cityscapes`, `…/VOC2012`).
    public let root: String
    /// The split.
    public let split: SegmentationSplit
    /// Class names, training id order (index = class id after mapping).
    public let classNames: [String]
    /// Image and annotation files, in sample order.
    public let files: [SegmentationSampleFiles]
    /// The Cityscapes annotations read (`labelIds` or `labelTrainIds`, never `auto`); `labelIds`
    /// for the other layouts, where it means nothing.
    public let cityscapesLabels: CityscapesLabels

    /// Number of samples.
    public var count: Int { files.count }
    /// Number of classes C (labels are 0…C−1 or 255).
    public var numClasses: Int { classNames.count }

    /// Lists the split of the data set at `root`.
    ///
    /// ADE20K uses the 150 mmseg class names unless the root holds a `classes.txt` (one name per
    /// line, line k naming raw annotation value k), which synthetic sets write.
    /// Cityscapes reads `cityscapesLabels`' annotation files (`auto`: labelIds where the split
    /// has any, else labelTrainIds).
    /// - Throws: `SegmentationDataError` naming the path for a missing root or folder, an image
    ///   without annotation or the reverse, a split list naming missing files, or an empty split.
    public init(format: SegmentationDatasetFormat, root: String, split: SegmentationSplit,
                cityscapesLabels: CityscapesLabels = .auto) throws(SegmentationDataError) {
        self.format = format; self.root = root; self.split = split
        var labels = CityscapesLabels.labelIds
        guard Self.isDirectory(root) else { throw SegmentationDataError(path: root, problem: "data set root does not exist or is not a folder") }
        switch format {
        case .ade20k:
            let classFile = root + "/classes.txt"
            if FileManager.default.fileExists(atPath: classFile) {
                guard let text = try? String(contentsOfFile: classFile, encoding: .utf8) else {
                    throw SegmentationDataError(path: classFile, problem: "cannot read the class list")
                }
                let names = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                guard (1...254).contains(names.count) else {
                    throw SegmentationDataError(path: classFile, problem: "needs 1…254 class names, found \(names.count)")
                }
                classNames = names
            } else {
                classNames = SegmentationClasses.ade20k
            }
            let folder = split == .train ? "training" : "validation"
            files = try Self.pairByStem(imageDir: "\(root)/images/\(folder)", imageSuffix: ".jpg",
                                        annotationDir: "\(root)/annotations/\(folder)", annotationSuffix: ".png", recursive: false)
        case .cityscapes:
            classNames = SegmentationClasses.cityscapes
            let annotationDir = "\(root)/gtFine/\(split.rawValue)"
            labels = cityscapesLabels
            if labels == .auto {
                let official = try Self.listing(annotationDir, suffix: CityscapesLabels.labelIds.suffix, recursive: true)
                let trainIds = official.isEmpty ? try Self.listing(annotationDir, suffix: CityscapesLabels.labelTrainIds.suffix, recursive: true) : [:]
                labels = trainIds.isEmpty ? .labelIds : .labelTrainIds
            }
            files = try Self.pairByStem(imageDir: "\(root)/leftImg8bit/\(split.rawValue)", imageSuffix: "_leftImg8bit.png",
                                        annotationDir: annotationDir, annotationSuffix: labels.suffix, recursive: true)
        case .voc:
            classNames = SegmentationClasses.voc
            let list = "\(root)/ImageSets/Segmentation/\(split.rawValue).txt"
            guard let text = try? String(contentsOfFile: list, encoding: .utf8) else {
                throw SegmentationDataError(path: list, problem: FileManager.default.fileExists(atPath: list) ? "cannot read the split list" : "split list does not exist")
            }
            var pairs = [SegmentationSampleFiles]()
            for id in text.split(whereSeparator: \.isNewline).map({ $0.trimmingCharacters(in: .whitespaces) }) where !id.isEmpty {
                let image = "\(root)/JPEGImages/\(id).jpg", annotation = "\(root)/SegmentationClass/\(id).png"
                guard FileManager.default.fileExists(atPath: image) else {
                    throw SegmentationDataError(path: image, problem: "image listed in \(list) does not exist")
                }
                guard FileManager.default.fileExists(atPath: annotation) else {
                    throw SegmentationDataError(path: annotation, problem: "annotation for \(id) listed in \(list) does not exist")
                }
                pairs.append(SegmentationSampleFiles(image: image, annotation: annotation))
            }
            guard !pairs.isEmpty else { throw SegmentationDataError(path: list, problem: "split lists no images") }
            files = pairs
        }
        self.cityscapesLabels = labels
    }

    /// Decodes sample `i` and maps its annotation to training ids.
    /// - Throws: `SegmentationDataError` naming the file for an unreadable or truncated image or
    ///   annotation, a size mismatch between them, or a label value that is neither a class nor 255;
    ///   naming the root for an index outside 0..<count.
    public func load(_ i: Int) throws(SegmentationDataError) -> SegmentationSample {
        guard files.indices.contains(i) else {
            throw SegmentationDataError(path: root, problem: "sample index \(i) outside 0..<\(count) (\(split.rawValue) split)")
        }
        let f = files[i]
        let image: RGBImage, raw: GreyImage
        do { image = try ImageFile.readRGB(f.image) } catch { throw SegmentationDataError(path: error.path, problem: error.problem) }
        do { raw = try ImageFile.readIndices(f.annotation) } catch { throw SegmentationDataError(path: error.path, problem: error.problem) }
        guard raw.width == image.width, raw.height == image.height else {
            throw SegmentationDataError(path: f.annotation, problem: "annotation is \(raw.height)×\(raw.width) but its image \(f.image) is \(image.height)×\(image.width)")
        }
        let lut = labelTable
        var values = raw.pixels
        for p in 0..<values.count {
            let mapped = lut[Int(values[p])]
            guard mapped >= 0 else {
                throw SegmentationDataError(path: f.annotation, problem: "label value \(values[p]) at pixel (\(p / raw.width), \(p % raw.width)) is not a class of \(format.rawValue) (\(numClasses) classes) nor 255")
            }
            values[p] = UInt8(mapped)
        }
        return SegmentationSample(image: image, labels: LabelMap(height: raw.height, width: raw.width, values: values))
    }

    /// Raw annotation value → training id (0…C−1 or 255), −1 for values that are invalid in this
    /// layout. ADE20K: reduce_zero_label (0 → 255, v → v−1, 255 stays). Cityscapes labelIds: the
    /// official labelId → trainId table, other ids 0…33 → 255, 255 (the licence plate's −1 as a
    /// byte) → 255; labelTrainIds: identity on 0…18, 255 stays. VOC: identity on 0…20, 255 stays.
    public var labelTable: [Int] {
        var lut = [Int](repeating: -1, count: 256)
        lut[255] = 255
        switch format {
        case .ade20k:
            lut[0] = 255
            for v in 1...numClasses { lut[v] = v - 1 }
        case .cityscapes where cityscapesLabels == .labelTrainIds:
            for v in 0..<numClasses { lut[v] = v }
        case .cityscapes:
            for id in 0...33 { lut[id] = 255 }
            for (id, train) in SegmentationClasses.cityscapesTrainIds { lut[id] = train }
        case .voc:
            for v in 0..<numClasses { lut[v] = v }
        }
        return lut
    }

    static func isDirectory(_ path: String) -> Bool {
        var dir: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &dir) && dir.boolValue
    }

    /// Files under `dir` ending in `suffix`, keyed by path relative to `dir` minus the suffix
    /// (so Cityscapes' `<city>/<stem>` pairs within the same city).
    static func listing(_ dir: String, suffix: String, recursive: Bool) throws(SegmentationDataError) -> [String: String] {
        do { return try FileListing.byStem(dir, suffix: suffix, recursive: recursive) } catch {
            throw SegmentationDataError(path: error.path, problem: error.problem)
        }
    }

    static func pairByStem(imageDir: String, imageSuffix: String, annotationDir: String, annotationSuffix: String,
                           recursive: Bool) throws(SegmentationDataError) -> [SegmentationSampleFiles] {
        let images = try listing(imageDir, suffix: imageSuffix, recursive: recursive)
        let annotations = try listing(annotationDir, suffix: annotationSuffix, recursive: recursive)
        if let stem = images.keys.sorted().first(where: { annotations[$0] == nil }) {
            throw SegmentationDataError(path: images[stem]!, problem: "image has no annotation (expected \(annotationDir)/\(stem)\(annotationSuffix))")
        }
        if let stem = annotations.keys.sorted().first(where: { images[$0] == nil }) {
            throw SegmentationDataError(path: annotations[stem]!, problem: "annotation has no image (expected \(imageDir)/\(stem)\(imageSuffix))")
        }
        guard !images.isEmpty else { throw SegmentationDataError(path: imageDir, problem: "split is empty: no *\(imageSuffix) images") }
        return images.keys.sorted().map { SegmentationSampleFiles(image: images[$0]!, annotation: annotations[$0]!) }
    }
}

/// Class names and id tables of the supported data sets.
public enum SegmentationClasses {
    /// Pascal VOC 2012's 21 classes (0 = background).
    public static let voc = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
                             "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
                             "train", "tvmonitor"]

    /// Cityscapes' 19 evaluated classes in trainId order.
    public static let cityscapes = ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                                    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
                                    "motorcycle", "bicycle"]

    /// Cityscapes labelId → trainId for the 19 evaluated classes (cityscapesScripts labels.py);
    /// every other labelId maps to 255.
    public static let cityscapesTrainIds: [(Int, Int)] = [
        (7, 0), (8, 1), (11, 2), (12, 3), (13, 4), (17, 5), (19, 6), (20, 7), (21, 8), (22, 9), (23, 10),
        (24, 11), (25, 12), (26, 13), (27, 14), (28, 15), (31, 16), (32, 17), (33, 18)]

    /// mmseg's ADE20K class names (150, training id = annotation value − 1).
    public static let ade20k = [
        "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet", "sidewalk",
        "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water", "painting", "sofa",
        "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp",
        "bathtub", "railing", "cushion", "base", "box", "column", "signboard", "chest of drawers", "counter", "sand", "sink",
        "skyscraper", "fireplace", "refrigerator", "grandstand", "path", "stairs", "runway", "case", "pool table", "pillow",
        "screen door", "stairway", "river", "bridge", "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill",
        "bench", "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine",
        "hovel", "bus", "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth",
        "television receiver", "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman",
        "bottle", "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
        "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food",
        "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket",
        "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate",
        "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag"]
}
