import Foundation
import ImageCodecs
@testable import SegmentationData
import XCTest

/// The three official layouts written in a temp folder with the codecs, read back and mapped.
final class DatasetTests: XCTestCase {
    func testADE20KReducesZeroLabel() throws {
        let dir = TempDir()
        let root = dir.path + "/ADEChallengeData2016"
        let raw: [UInt8] = [0, 1, 2, 150, 255, 75, 0, 1]
        for (split, prefix) in [("training", "ADE_train"), ("validation", "ADE_val")] {
            for i in 1...2 {
                try dir.write("ADEChallengeData2016/images/\(split)/\(prefix)_0000000\(i).jpg", jpegBytes(height: 2, width: 4, salt: i))
                try dir.write("ADEChallengeData2016/annotations/\(split)/\(prefix)_0000000\(i).png", greyPNG(height: 2, width: 4, raw))
            }
        }
        let train = try SegmentationDataset(format: .ade20k, root: root, split: .train)
        XCTAssertEqual(train.count, 2)
        XCTAssertEqual(train.numClasses, 150)
        XCTAssertEqual(train.classNames.first, "wall"); XCTAssertEqual(train.classNames.last, "flag")
        XCTAssertTrue(train.files[0].image.hasSuffix("images/training/ADE_train_00000001.jpg"))
        let sample = try train.load(1)
        XCTAssertEqual(sample.labels.values, [255, 0, 1, 149, 255, 74, 255, 0])
        XCTAssertEqual(sample.image.width, 4); XCTAssertEqual(sample.image.height, 2)
        let val = try SegmentationDataset(format: .ade20k, root: root, split: .val)
        XCTAssertTrue(val.files[1].annotation.hasSuffix("annotations/validation/ADE_val_00000002.png"))
    }

    func testCityscapesMapsLabelIdsToTrainIds() throws {
        let dir = TempDir()
        let ids = (0...33).map(UInt8.init) + [255, 7]   // 36 pixels, 6 × 6
        let city = "cityscapes/leftImg8bit/val/frankfurt", gt = "cityscapes/gtFine/val/frankfurt"
        try dir.write("\(city)/frankfurt_000000_000294_leftImg8bit.png", PNG.encode(testImage(height: 6, width: 6)))
        try dir.write("\(gt)/frankfurt_000000_000294_gtFine_labelIds.png", greyPNG(height: 6, width: 6, ids))
        // Other gtFine files (colour, instance ids, polygons) sit beside the labelIds and are not samples.
        try dir.write("\(gt)/frankfurt_000000_000294_gtFine_color.png", PNG.encode(testImage(height: 6, width: 6)))
        try dir.write("cityscapes/leftImg8bit/val/lindau/lindau_000001_000019_leftImg8bit.png", PNG.encode(testImage(height: 6, width: 6)))
        try dir.write("cityscapes/gtFine/val/lindau/lindau_000001_000019_gtFine_labelIds.png", greyPNG(height: 6, width: 6, ids))
        let ds = try SegmentationDataset(format: .cityscapes, root: dir.path + "/cityscapes", split: .val)
        XCTAssertEqual(ds.count, 2)
        XCTAssertEqual(ds.numClasses, 19)
        XCTAssertTrue(ds.files[0].image.contains("frankfurt/frankfurt_000000_000294_leftImg8bit.png"))
        let labels = try ds.load(0).labels.values
        let table: [Int: UInt8] = [7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
                                   26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18]
        for id in 0...33 { XCTAssertEqual(labels[id], table[id] ?? 255, "labelId \(id)") }
        XCTAssertEqual(labels[34], 255); XCTAssertEqual(labels[35], 0)
    }

    /// cityscapesScripts' `*_gtFine_labelTrainIds.png` read as they are: found by `auto` when a
    /// split has no labelIds, chosen explicitly when both are present, and a value that is not a
    /// trainId nor 255 is an error naming the file.
    func testCityscapesReadsLabelTrainIds() throws {
        let dir = TempDir()
        let trainIds = (0...18).map(UInt8.init) + [255, 3, 18, 0, 255, 7]   // 25 pixels, 5 × 5
        let ids: [UInt8] = trainIds.map { t in t == 255 ? 0 : UInt8(SegmentationClasses.cityscapesTrainIds.first { $0.1 == Int(t) }!.0) }
        try dir.write("cityscapes/leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png", PNG.encode(testImage(height: 5, width: 5)))
        try dir.write("cityscapes/gtFine/train/aachen/aachen_000000_000019_gtFine_labelTrainIds.png", greyPNG(height: 5, width: 5, trainIds))
        let root = dir.path + "/cityscapes"
        let auto = try SegmentationDataset(format: .cityscapes, root: root, split: .train)
        XCTAssertEqual(auto.cityscapesLabels, .labelTrainIds)
        XCTAssertTrue(auto.files[0].annotation.hasSuffix("aachen_000000_000019_gtFine_labelTrainIds.png"))
        XCTAssertEqual(try auto.load(0).labels.values, trainIds)
        XCTAssertThrowsError(try SegmentationDataset(format: .cityscapes, root: root, split: .train, cityscapesLabels: .labelIds)) { error in
            XCTAssertTrue("\(error)".contains("image has no annotation") && "\(error)".contains("_gtFine_labelIds.png"), "\(error)")
        }

        // Both files present (as createTrainIdLabelImgs leaves them): auto reads the labelIds, and
        // both choices give the same labels.
        try dir.write("cityscapes/gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png", greyPNG(height: 5, width: 5, ids))
        let both = try SegmentationDataset(format: .cityscapes, root: root, split: .train)
        XCTAssertEqual(both.cityscapesLabels, .labelIds)
        let viaTrainIds = try SegmentationDataset(format: .cityscapes, root: root, split: .train, cityscapesLabels: .labelTrainIds)
        XCTAssertEqual(try both.load(0).labels.values, try viaTrainIds.load(0).labels.values)

        try dir.write("cityscapes/gtFine/train/aachen/aachen_000000_000019_gtFine_labelTrainIds.png",
                      greyPNG(height: 5, width: 5, [19] + Array(trainIds.dropFirst())))
        XCTAssertThrowsError(try viaTrainIds.load(0)) { error in
            XCTAssertTrue("\(error)".contains("labelTrainIds.png: label value 19 at pixel (0, 0)"), "\(error)")
        }
    }

    func testVOCPaletteIndicesAndSplitList() throws {
        let dir = TempDir()
        let indices = (0...20).map(UInt8.init) + [255, 255, 15, 0]   // 25 pixels, 5 × 5
        for id in ["2007_000032", "2007_000039", "2008_000002"] {
            try dir.write("VOC2012/JPEGImages/\(id).jpg", jpegBytes(height: 5, width: 5))
            try dir.write("VOC2012/SegmentationClass/\(id).png", PNG.encode(GreyImage(height: 5, width: 5, pixels: indices), palette: PNG.vocPalette))
        }
        try dir.write("VOC2012/ImageSets/Segmentation/train.txt", Array("2007_000032\n2008_000002\n".utf8))
        try dir.write("VOC2012/ImageSets/Segmentation/val.txt", Array("2007_000039\n".utf8))
        let train = try SegmentationDataset(format: .voc, root: dir.path + "/VOC2012", split: .train)
        XCTAssertEqual(train.count, 2)
        XCTAssertEqual(train.numClasses, 21)
        XCTAssertTrue(train.files[1].annotation.hasSuffix("SegmentationClass/2008_000002.png"))
        XCTAssertEqual(try train.load(0).labels.values, indices)
        XCTAssertEqual(try SegmentationDataset(format: .voc, root: dir.path + "/VOC2012", split: .val).count, 1)
    }

    func testListingErrorsNameThePath() throws {
        let dir = TempDir()
        func error(_ f: SegmentationDatasetFormat, _ root: String, _ split: SegmentationSplit = .train) -> SegmentationDataError? {
            do { _ = try SegmentationDataset(format: f, root: root, split: split); return nil } catch { return error }
        }
        XCTAssertEqual(error(.ade20k, dir.path + "/nope"), SegmentationDataError(path: dir.path + "/nope", problem: "data set root does not exist or is not a folder"))

        let ade = dir.path + "/ADE"
        try dir.write("ADE/images/training/a.jpg", jpegBytes(height: 2, width: 2))
        try dir.write("ADE/annotations/training/a.png", greyPNG(height: 2, width: 2, [1, 1, 1, 1]))
        try dir.write("ADE/images/training/b.jpg", jpegBytes(height: 2, width: 2))
        XCTAssertEqual(error(.ade20k, ade)?.path, ade + "/images/training/b.jpg")
        XCTAssertTrue(error(.ade20k, ade)!.problem.contains("no annotation"))
        try FileManager.default.removeItem(atPath: ade + "/images/training/b.jpg")
        try dir.write("ADE/annotations/training/c.png", greyPNG(height: 2, width: 2, [1, 1, 1, 1]))
        XCTAssertEqual(error(.ade20k, ade)?.path, ade + "/annotations/training/c.png")
        XCTAssertTrue(error(.ade20k, ade)!.problem.contains("no image"))
        // Validation folders missing altogether, then present but empty.
        XCTAssertEqual(error(.ade20k, ade, .val)?.path, ade + "/images/validation")
        try FileManager.default.createDirectory(atPath: ade + "/images/validation", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: ade + "/annotations/validation", withIntermediateDirectories: true)
        XCTAssertEqual(error(.ade20k, ade, .val), SegmentationDataError(path: ade + "/images/validation", problem: "split is empty: no *.jpg images"))

        try dir.write("VOC/JPEGImages/x.jpg", jpegBytes(height: 2, width: 2))
        try dir.write("VOC/ImageSets/Segmentation/train.txt", Array("x\n".utf8))
        XCTAssertEqual(error(.voc, dir.path + "/VOC")?.path, dir.path + "/VOC/SegmentationClass/x.png")
        try dir.write("VOC/ImageSets/Segmentation/val.txt", Array("\n".utf8))
        XCTAssertEqual(error(.voc, dir.path + "/VOC", .val), SegmentationDataError(path: dir.path + "/VOC/ImageSets/Segmentation/val.txt", problem: "split lists no images"))
    }

    func testLoadErrorsNameTheFile() throws {
        let dir = TempDir()
        let jpeg = try jpegBytes(height: 4, width: 4)
        try dir.write("A/images/training/1.jpg", Array(jpeg.prefix(jpeg.count / 2)))       // truncated
        try dir.write("A/annotations/training/1.png", greyPNG(height: 4, width: 4, .init(repeating: 3, count: 16)))
        try dir.write("A/images/training/2.jpg", jpeg)
        try dir.write("A/annotations/training/2.png", greyPNG(height: 4, width: 4, [1, 2, 3, 151] + .init(repeating: 0, count: 12)))
        try dir.write("A/images/training/3.jpg", jpeg)
        try dir.write("A/annotations/training/3.png", greyPNG(height: 2, width: 8, .init(repeating: 0, count: 16)))
        try dir.write("A/images/training/4.jpg", Array("not an image".utf8))
        try dir.write("A/annotations/training/4.png", greyPNG(height: 4, width: 4, .init(repeating: 0, count: 16)))
        let ds = try SegmentationDataset(format: .ade20k, root: dir.path + "/A", split: .train)
        func error(_ i: Int) -> SegmentationDataError? { do { _ = try ds.load(i); return nil } catch { return error } }
        XCTAssertEqual(error(0)?.path, ds.files[0].image)
        XCTAssertTrue(error(0)!.problem.hasPrefix("JPEG "), error(0)!.description)
        XCTAssertEqual(error(1)?.path, ds.files[1].annotation)
        XCTAssertTrue(error(1)!.problem.contains("label value 151 at pixel (0, 3)"), error(1)!.description)
        XCTAssertEqual(error(2)?.path, ds.files[2].annotation)
        XCTAssertTrue(error(2)!.problem.contains("is 2×8"), error(2)!.description)
        XCTAssertEqual(error(3), SegmentationDataError(path: ds.files[3].image, problem: "not a JPEG or PNG file (unknown signature)"))
        XCTAssertEqual(error(4), SegmentationDataError(path: dir.path + "/A", problem: "sample index 4 outside 0..<4 (train split)"))
    }
}
