import Foundation
import ZlibCodec

/// Why a file could not be read as NYU data (a MAT file, the labeled `.mat`, a depth PNG): the
/// file, the item inside it where one is to blame, and the problem.
public struct DepthDataError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file.
    public let file: String
    /// The variable, dataset or pixel concerned, if any.
    public let item: String?
    /// What is wrong.
    public let problem: String

    /// An error about `item` of `file`.
    public init(file: String, item: String? = nil, _ problem: String) { self.file = file; self.item = item; self.problem = problem }

    /// "`file`: `item`: `problem`".
    public var description: String { "\(file): " + (item.map { "\($0): " } ?? "") + problem }
}

/// A numeric MATLAB array: its dimensions as MATLAB states them and its values in MATLAB's
/// column-major order, converted to Double.
public struct MATArray: Sendable {
    /// The variable name.
    public let name: String
    /// Dimensions, e.g. [795, 1] for a column vector.
    public let dimensions: [Int]
    /// Values, column-major (for a vector that is simply its elements).
    public let values: [Double]
}

/// A reader for MATLAB level-5 MAT files (what `scipy.io.savemat` and MATLAB before v7.3 write,
/// e.g. NYU's `splits.mat`): numeric arrays, stored plain or in compressed (zlib) elements.
/// Cells, structs, sparse, character and complex arrays are skipped. Every tag is checked against
/// the bytes that remain.
public enum MATv5 {
    /// Largest inflated element and array accepted (NYU's splits are a few KB).
    static let maxElementBytes = 1 << 26

    /// The numeric arrays of the MAT file at `path`, by name.
    public static func read(_ path: String) throws -> [String: MATArray] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DepthDataError(file: path, FileManager.default.fileExists(atPath: path) ? "cannot read the file" : "no such file")
        }
        return try read(bytes: [UInt8](data), file: path)
    }

    /// The numeric arrays of MAT v5 `bytes` (`file` names them in errors).
    public static func read(bytes: [UInt8], file: String) throws -> [String: MATArray] {
        guard bytes.count >= 128 else { throw DepthDataError(file: file, "shorter than a MAT file's 128-byte header") }
        if bytes.count >= 4, Array(bytes[0..<4]) == [0x89, 0x48, 0x44, 0x46] || String(decoding: bytes[0..<116], as: UTF8.self).contains("7.3 MAT-file") {
            throw DepthDataError(file: file, "a MATLAB v7.3 (HDF5) file, not a level-5 MAT file")
        }
        guard bytes[126] == UInt8(ascii: "I"), bytes[127] == UInt8(ascii: "M") else {
            throw DepthDataError(file: file, bytes[126] == UInt8(ascii: "M") && bytes[127] == UInt8(ascii: "I")
                                 ? "a big-endian MAT file (not supported)" : "not a MAT v5 file (no 'IM' endian indicator at byte 126)")
        }
        var out: [String: MATArray] = [:]
        var reader = Elements(bytes: bytes[128...], file: file)
        while let element = try reader.next() {
            var (type, body) = element
            if type == 15 { // miCOMPRESSED: a zlib stream holding one element
                let inflated: [UInt8]
                do { inflated = try Zlib.inflateStream(body, limit: maxElementBytes) } catch {
                    throw DepthDataError(file: file, "a compressed element at byte \(reader.lastOffset): \(error)")
                }
                var inner = Elements(bytes: inflated[...], file: file)
                guard let e = try inner.next() else { continue }
                (type, body) = (e.type, e.body)
            }
            guard type == 14 else { continue } // miMATRIX; anything else at top level is not a variable
            if let array = try matrix(body, file: file) { out[array.name] = array }
        }
        return out
    }

    /// Writes double column vectors as a level-5 MAT file, as `scipy.io.savemat(…,
    /// oned_as='column')` does: each variable a miMATRIX of class double and dimensions [n, 1],
    /// wrapped in a zlib-compressed element when `compressed`.
    public static func write(_ arrays: [(name: String, values: [Double])], to path: String, compressed: Bool) throws {
        var out = [UInt8]()
        var header = Array("MATLAB 5.0 MAT-file, written by percep-dist synth depth".utf8)
        header += [UInt8](repeating: 0x20, count: 116 - header.count)
        out += header + [UInt8](repeating: 0, count: 8) + [0x00, 0x01] + Array("IM".utf8)
        func u32(_ v: Int) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        func element(_ type: Int, _ body: [UInt8]) -> [UInt8] {
            u32(type) + u32(body.count) + body + [UInt8](repeating: 0, count: (8 - body.count % 8) % 8)
        }
        for (name, values) in arrays {
            var matrix = element(6, u32(6) + u32(0))                     // flags: class mxDOUBLE
            matrix += element(5, u32(values.count) + u32(1))             // dimensions [n, 1]
            matrix += element(1, Array(name.utf8))                       // name
            matrix += element(9, values.flatMap { v in (0..<8).map { UInt8(truncatingIfNeeded: v.bitPattern >> (8 * UInt64($0))) } })
            let variable = element(14, matrix)
            if compressed {
                let packed = Zlib.deflateStream(variable)
                out += u32(15) + u32(packed.count) + packed
            } else {
                out += variable
            }
        }
        do { try Data(out).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw DepthDataError(file: path, "cannot write: \(error.localizedDescription)")
        }
    }

    /// The data elements of a byte range: (type, body), 8-byte tags or 4-byte small elements.
    struct Elements {
        let bytes: ArraySlice<UInt8>
        let file: String
        var at: Int
        var lastOffset = 0

        init(bytes: ArraySlice<UInt8>, file: String) { self.bytes = bytes; self.file = file; at = bytes.startIndex }

        func u32(_ i: Int) -> Int {
            Int(bytes[i]) | Int(bytes[i + 1]) << 8 | Int(bytes[i + 2]) << 16 | Int(bytes[i + 3]) << 24
        }

        mutating func next() throws -> (type: Int, body: ArraySlice<UInt8>)? {
            guard at < bytes.endIndex else { return nil }
            lastOffset = at
            guard bytes.endIndex - at >= 8 || (bytes.endIndex - at >= 4 && u32(at) >> 16 != 0) else {
                throw DepthDataError(file: file, "truncated element tag at byte \(at)")
            }
            let first = u32(at)
            if first >> 16 != 0 { // small data element: size in the upper half, data in the next 4 bytes
                let type = first & 0xFFFF, size = first >> 16
                guard size <= 4, bytes.endIndex - at >= 8 else { throw DepthDataError(file: file, "malformed small element at byte \(at)") }
                defer { at += 8 }
                return (type, bytes[(at + 4)..<(at + 4 + size)])
            }
            let type = first, size = u32(at + 4)
            guard size <= bytes.endIndex - at - 8 else {
                throw DepthDataError(file: file, "element at byte \(at) claims \(size) bytes, \(bytes.endIndex - at - 8) remain (truncated?)")
            }
            let body = bytes[(at + 8)..<(at + 8 + size)]
            // Elements are padded to 8 bytes, except compressed ones.
            let padded = type == 15 ? size : (size + 7) / 8 * 8
            at = min(bytes.endIndex, at + 8 + padded)
            return (type, body)
        }
    }

    /// A miMATRIX body: flags, dimensions, name, real part. Nil for arrays that are not numeric.
    static func matrix(_ body: ArraySlice<UInt8>, file: String) throws -> MATArray? {
        var parts = Elements(bytes: body, file: file)
        guard let flags = try parts.next(), flags.body.count >= 8, let dims = try parts.next(), let nameElement = try parts.next() else {
            throw DepthDataError(file: file, "an array without flags, dimensions or name")
        }
        let flagWord = parts.u32(flags.body.startIndex)
        let arrayClass = flagWord & 0xFF, complex = flagWord & 0x800 != 0
        let name = String(decoding: nameElement.body, as: UTF8.self)
        // mxDOUBLE 6, mxSINGLE 7, mxINT8…mxUINT64 8…15; cells, structs, objects, chars, sparse skipped.
        guard (6...15).contains(arrayClass), !complex else { return nil }
        guard dims.type == 5, dims.body.count % 4 == 0, !dims.body.isEmpty else {
            throw DepthDataError(file: file, item: name, "dimensions are not int32")
        }
        var dimensions: [Int] = []
        for i in stride(from: dims.body.startIndex, to: dims.body.endIndex, by: 4) {
            let d = Int32(truncatingIfNeeded: parts.u32(i))
            guard d >= 0 else { throw DepthDataError(file: file, item: name, "negative dimension \(d)") }
            dimensions.append(Int(d))
        }
        var count = 1
        for d in dimensions {
            let (c, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, c <= maxElementBytes else { throw DepthDataError(file: file, item: name, "dimensions \(dimensions) are too large") }
            count = c
        }
        guard let real = try parts.next() else { throw DepthDataError(file: file, item: name, "no data") }
        // Count first: the data may be stored narrower than Double, and decoding would multiply it.
        let width = [1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 4, 9: 8, 12: 8, 13: 8][real.type] ?? 1
        guard real.body.count == count * width else {
            throw DepthDataError(file: file, item: name, "dimensions \(dimensions) need \(count) values, the data holds \(real.body.count / width)")
        }
        // The data may be stored in a narrower type than the class (MATLAB does this).
        let values = try decode(real.body, type: real.type, file: file, name: name)
        guard values.count == count else {
            throw DepthDataError(file: file, item: name, "dimensions \(dimensions) need \(count) values, the data holds \(values.count)")
        }
        return MATArray(name: name, dimensions: dimensions, values: values)
    }

    static func decode(_ body: ArraySlice<UInt8>, type: Int, file: String, name: String) throws -> [Double] {
        let size: Int
        switch type {
        case 1, 2: size = 1
        case 3, 4: size = 2
        case 5, 6, 7: size = 4
        case 9, 12, 13: size = 8
        default: throw DepthDataError(file: file, item: name, "data of MAT type \(type) is not numeric")
        }
        guard body.count % size == 0 else { throw DepthDataError(file: file, item: name, "\(body.count) data bytes are not whole elements") }
        var out = [Double](repeating: 0, count: body.count / size)
        var i = body.startIndex
        for k in 0..<out.count {
            var bits: UInt64 = 0
            for b in 0..<size { bits |= UInt64(body[i + b]) << (8 * UInt64(b)) }
            i += size
            switch type {
            case 1: out[k] = Double(Int8(truncatingIfNeeded: bits))
            case 2: out[k] = Double(UInt8(truncatingIfNeeded: bits))
            case 3: out[k] = Double(Int16(truncatingIfNeeded: bits))
            case 4: out[k] = Double(UInt16(truncatingIfNeeded: bits))
            case 5: out[k] = Double(Int32(truncatingIfNeeded: bits))
            case 6: out[k] = Double(UInt32(truncatingIfNeeded: bits))
            case 7: out[k] = Double(Float(bitPattern: UInt32(truncatingIfNeeded: bits)))
            case 9: out[k] = Double(bitPattern: bits)
            case 12: out[k] = Double(Int64(bitPattern: bits))
            default: out[k] = Double(bits)
            }
        }
        return out
    }
}
