import Foundation
import PercepHDF5

/// One NYU Depth v2 sample in row-major image layout.
public struct NYUSample: Sendable {
    /// Rows (480 for the official file).
    public let height: Int
    /// Columns (640).
    public let width: Int
    /// RGB, height × width × 3, uint8 values.
    public let rgb: [UInt8]
    /// Depth in metres, height × width.
    public let depth: [Float]

    /// A sample from its pixels (rgb: height × width × 3, depth: height × width).
    public init(height: Int, width: Int, rgb: [UInt8], depth: [Float]) {
        precondition(rgb.count == height * width * 3 && depth.count == height * width, "NYUSample: sizes do not match \(height)×\(width)")
        self.height = height; self.width = width; self.rgb = rgb; self.depth = depth
    }
}

/// The official labeled file `nyu_depth_v2_labeled.mat` (MATLAB v7.3: HDF5 behind a 512-byte
/// user block). MATLAB stores column-major, so HDF5 shows each image transposed: `images` is
/// (N, 3, W, H) uint8 and `depths` / `rawDepths` (N, W, H) float32. Only those datasets are read
/// (the object-reference sets `names`, `scenes` are not needed), one image at a time.
public final class NYULabeledFile {
    /// The file.
    public let path: String
    /// Images in the file.
    public let count: Int
    /// Image rows and columns.
    public let height: Int, width: Int
    /// `depths` (dense, inpainted: the benchmark) or `rawDepths`.
    public let depthSource: String
    private let file: HDF5File

    /// Opens `path` and checks the shapes of `images` and of `depthSource`.
    public init(path: String, depthSource: String = "depths") throws {
        guard FileManager.default.fileExists(atPath: path) else { throw DepthDataError(file: path, "no such file") }
        guard depthSource == "depths" || depthSource == "rawDepths" else {
            throw DepthDataError(file: path, item: depthSource, "the depth source must be depths or rawDepths")
        }
        self.path = path
        self.depthSource = depthSource
        // Not through HDF5File.openChecked: its probe child reads every dataset whole, which for
        // the 2.8 GB official file means minutes and > 10 GB. Shapes are checked here before any
        // data is read, and data is read one image at a time.
        do {
            file = try HDF5File(reading: path)
        } catch {
            throw DepthDataError(file: path, "not a MATLAB v7.3 (HDF5) file: \(error)")
        }
        for name in ["images", depthSource] where !(try file.exists("/" + name)) {
            throw DepthDataError(file: path, item: name, "missing (the NYU labeled file has 'images' and '\(depthSource)')")
        }
        let images = try file.shape(at: "/images"), depths = try file.shape(at: "/" + depthSource)
        guard images.count == 4, images[1] == 3, images[0] > 0 else {
            throw DepthDataError(file: path, item: "images", "shape \(images), expected (N, 3, W, H)")
        }
        guard depths == [images[0], images[2], images[3]] else {
            throw DepthDataError(file: path, item: depthSource, "shape \(depths), expected \([images[0], images[2], images[3]]) to match 'images' \(images)")
        }
        count = images[0]; width = images[2]; height = images[3]
    }

    /// Sample `index` (0-based): the transposed image and depth in metres. Non-finite or negative
    /// depths are errors naming the image and pixel.
    public func sample(_ index: Int) throws -> NYUSample {
        guard index >= 0, index < count else { throw DepthDataError(file: path, item: "images", "index \(index) outside 0..<\(count)") }
        let (image, _) = try file.readSlice(at: "/images", index: index)
        let (columnMajorDepth, _) = try file.readSlice(at: "/" + depthSource, index: index)
        // HDF5 slice (c, x, y) → row-major (y, x, c); depth (x, y) → (y, x).
        var rgb = [UInt8](repeating: 0, count: height * width * 3), depth = [Float](repeating: 0, count: height * width)
        let plane = width * height
        for y in 0..<height {
            for x in 0..<width {
                for c in 0..<3 {
                    let v = image[c * plane + x * height + y]
                    guard v.isFinite, v >= 0, v <= 255 else {
                        throw DepthDataError(file: path, item: "images[\(index)]", "value \(v) at row \(y), column \(x), channel \(c) is not a byte")
                    }
                    rgb[(y * width + x) * 3 + c] = UInt8(v)
                }
                let d = columnMajorDepth[x * height + y]
                guard d.isFinite, d >= 0 else {
                    throw DepthDataError(file: path, item: "\(depthSource)[\(index)]", "depth \(d) at row \(y), column \(x) (depths must be finite and ≥ 0)")
                }
                depth[y * width + x] = d
            }
        }
        return NYUSample(height: height, width: width, rgb: rgb, depth: depth)
    }
}

/// NYU's `splits.mat` (MAT v5): `trainNdxs` (795) and `testNdxs` (654), 1-based indices into the
/// labeled file, returned 0-based.
public struct NYUSplits: Sendable {
    /// Training images, 0-based.
    public let train: [Int]
    /// Test images, 0-based.
    public let test: [Int]

    /// Reads `path` and checks every index against `imageCount` (1…imageCount, whole numbers,
    /// no repeats within a split).
    public init(path: String, imageCount: Int) throws {
        let arrays = try MATv5.read(path)
        func indices(_ name: String) throws -> [Int] {
            guard let a = arrays[name] else {
                throw DepthDataError(file: path, item: name, "missing (found \(arrays.keys.sorted().joined(separator: ", ")))")
            }
            guard a.dimensions.filter({ $0 != 1 }).count <= 1 else {
                throw DepthDataError(file: path, item: name, "dimensions \(a.dimensions), expected a vector")
            }
            var seen = Set<Int>()
            return try a.values.enumerated().map { i, v in
                guard v == v.rounded(), v >= 1, v <= Double(imageCount) else {
                    throw DepthDataError(file: path, item: "\(name)[\(i)]", "index \(v) is not in 1…\(imageCount) (splits are 1-based into the labeled file)")
                }
                guard seen.insert(Int(v)).inserted else { throw DepthDataError(file: path, item: "\(name)[\(i)]", "index \(Int(v)) repeats") }
                return Int(v) - 1
            }
        }
        train = try indices("trainNdxs")
        test = try indices("testNdxs")
    }
}
