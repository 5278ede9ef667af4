import ArgumentParser
import DepthData
import COCOSynth
import Foundation
import SegmentationData

/// `percep-dist synth …`: synthetic data sets for the training pipelines.
struct Synth: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write synthetic data sets.", subcommands: [SynthCOCOCommand.self, SynthSegCommand.self, SynthDepthCommand.self])
}

/// `percep-dist synth coco`: a synthetic instance-segmentation set in the COCO layout
/// (`annotations/instances_<split>.json`, `<split>/<id>.jpg`), see `SynthCOCO`.
struct SynthCOCOCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coco",
        abstract: "Write overlapping shapes of 4 categories with polygon, RLE and crowd annotations as a COCO instances set.")

    @Option(help: "Output folder (created if missing).") var out: String
    @Option(help: "Number of images.") var images: Int
    @Option(help: "Seed (the same seed gives the same set).") var seed: UInt64
    @Option(help: "Image height,width.") var size = "256,256"
    @Option(help: "Split name: annotations/instances_<split>.json and the image folder <split>/.") var split = "train"
    @Option(help: "JPEG quality 1…100.") var quality = 90

    func parsedSize() throws -> (Int, Int) {
        let parts = size.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 2, let h = parts[0], let w = parts[1] else {
            throw ValidationError("--size must be H,W (two integers), not '\(size)'")
        }
        return (h, w)
    }

    func validate() throws {
        guard images > 0 else { throw ValidationError("--images must be positive") }
        guard (1...100).contains(quality) else { throw ValidationError("--quality must be 1…100") }
        let (h, w) = try parsedSize()
        guard (16...8192).contains(h), (16...8192).contains(w) else { throw ValidationError("--size sides must be 16…8192") }
    }

    func run() throws {
        let (h, w) = try parsedSize()
        let dataset = try SynthCOCO.write(to: out, split: split, images: images, seed: seed, height: h, width: w, quality: quality)
        let crowd = dataset.annotations.filter(\.isCrowd).count
        print("wrote \(dataset.images.count) images, \(dataset.annotations.count) annotations (\(crowd) crowd) to \(out)")
    }
}

/// `percep-dist synth seg`: a synthetic semantic-segmentation set in the ADE20K layout
/// (`ADEChallengeData2016/{images,annotations}/{training,validation}`, `classes.txt`) or, with
/// `--layout`, Cityscapes' or VOC's, see `SegmentationSynth`.
struct SynthSegCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seg",
        abstract: "Write structured scenes (trees, houses, figures, poles; textured, occluding) as an ADE20K-, Cityscapes- or VOC-layout set.")

    @Option(help: "Output folder (the layout's root folder is created in it).") var out: String
    @Option(help: "Number of training images.") var train: Int
    @Option(help: "Number of validation images.") var val: Int
    @Option(help: "Image height,width.") var size = "96,96"
    @Option(help: "Seed (the same seed gives the same set).") var seed: UInt64
    @Option(help: "JPEG quality 1…100.") var quality = 95
    @Option(help: "Layout: ade20k (ADEChallengeData2016/), cityscapes (cityscapes/, gtFine labelIds and labelTrainIds) or voc (VOC2012/).")
    var layout = "ade20k"

    func validate() throws {
        guard SegmentationDatasetFormat(rawValue: layout) != nil else { throw ValidationError("--layout must be ade20k, cityscapes or voc, not '\(layout)'") }
        guard train > 0 else { throw ValidationError("--train must be positive") }
        guard val >= 0 else { throw ValidationError("--val must not be negative") }
        guard (1...100).contains(quality) else { throw ValidationError("--quality must be 1…100") }
        let (h, w) = try parsedSize()
        guard (16...4096).contains(h), (16...4096).contains(w) else { throw ValidationError("--size sides must be 16…4096") }
    }

    func parsedSize() throws -> (Int, Int) {
        let parts = size.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 2, let h = parts[0], let w = parts[1] else {
            throw ValidationError("--size must be H,W (two integers), not '\(size)'")
        }
        return (h, w)
    }

    func run() throws {
        let (h, w) = try parsedSize()
        let root = try SegmentationSynth.write(to: out, train: train, val: val, height: h, width: w, seed: seed, quality: quality,
                                               layout: SegmentationDatasetFormat(rawValue: layout)!)
        print("wrote \(train) training and \(val) validation images (\(SegmentationSynth.classNames.count) scene classes) to \(root)")
    }
}

/// `synth depth`: ray-cast rooms with boxes as NYU Depth v2's two official files.
struct SynthDepthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "depth",
        abstract: "Write ray-cast rooms with boxes as nyu_depth_v2_labeled.mat (MATLAB v7.3) and splits.mat (every 5th image is a test image).")
    @Option(help: "Output folder (created if missing).") var out: String
    @Option(help: "Number of images (default 240, or 48 with --tiny).") var images: Int?
    @Option(help: "Seed (the same seed gives the same set).") var seed: UInt64
    @Flag(help: "120×160 images with f = 129.75 instead of NYU's 480×640 with f = 519.") var tiny = false

    func run() throws {
        var spec = tiny ? SynthDepthSpec.tiny : SynthDepthSpec()
        if let images {
            guard (1...100_000).contains(images) else { throw ValidationError("--images must be 1…100000, not \(images)") }
            spec.images = images
        }
        try SynthDepth.write(spec, seed: seed, to: out)
        print("wrote \(out)/\(SynthDepth.labeledFileName) and \(out)/\(SynthDepth.splitsFileName): \(spec.images) images of \(spec.height)×\(spec.width), f = \(spec.focal)")
    }
}
