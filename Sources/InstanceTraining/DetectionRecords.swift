import COCO
import Foundation

/// Detections as bytes for the gather to rank 0: per detection the image id, contiguous
/// category, score, XYWH box and the mask's RLE (size and counts), little-endian.
public enum DetectionRecords {
    /// Serialises detections (every one must carry a box and a mask).
    public static func encode(_ detections: [COCODetection]) -> [UInt8] {
        var out: [UInt8] = []
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        func put(_ v: Double) { put(v.bitPattern) }
        put(UInt64(detections.count))
        for d in detections {
            put(Int64(d.imageID)); put(Int64(d.categoryIndex)); put(d.score)
            let box = d.bbox ?? BoundingBox(x: 0, y: 0, width: 0, height: 0)
            put(box.x); put(box.y); put(box.width); put(box.height)
            let rle = d.mask ?? RLE(height: 0, width: 0, counts: [])
            put(Int64(rle.height)); put(Int64(rle.width)); put(UInt64(rle.counts.count))
            for c in rle.counts { put(c) }
        }
        return out
    }

    /// Reads `encode`'s bytes back; a truncated or inconsistent record is an error.
    public static func decode(_ bytes: [UInt8]) throws -> [COCODetection] {
        var at = 0
        func get<T: FixedWidthInteger>(_: T.Type) throws -> T {
            guard at + MemoryLayout<T>.size <= bytes.count else { throw TaskRecordError("detection records end early at byte \(at)") }
            var v: T = 0
            withUnsafeMutableBytes(of: &v) { $0.copyBytes(from: bytes[at..<(at + MemoryLayout<T>.size)]) }
            at += MemoryLayout<T>.size
            return T(littleEndian: v)
        }
        func double() throws -> Double { Double(bitPattern: try get(UInt64.self)) }
        let count = Int(try get(UInt64.self))
        guard count <= bytes.count / 8 else { throw TaskRecordError("detection records claim \(count) entries in \(bytes.count) bytes") }
        var out: [COCODetection] = []
        for _ in 0..<count {
            let image = Int(try get(Int64.self)), category = Int(try get(Int64.self)), score = try double()
            let box = BoundingBox(x: try double(), y: try double(), width: try double(), height: try double())
            let h = Int(try get(Int64.self)), w = Int(try get(Int64.self)), n = Int(try get(UInt64.self))
            guard n <= (bytes.count - at) / 4 else { throw TaskRecordError("detection record claims \(n) RLE counts past the end") }
            var counts: [UInt32] = []
            counts.reserveCapacity(n)
            for _ in 0..<n { counts.append(try get(UInt32.self)) }
            out.append(COCODetection(imageID: image, categoryIndex: category, score: score, bbox: box, mask: RLE(height: h, width: w, counts: counts)))
        }
        return out
    }
}

/// Malformed detection records.
public struct TaskRecordError: Error, CustomStringConvertible {
    /// What is wrong.
    public let message: String
    /// An error.
    public init(_ message: String) { self.message = message }
    /// The message.
    public var description: String { message }
}
