import ZlibCodec

/// Little-endian reads from a byte array with every offset checked, so a hostile length or
/// offset is an error naming what was being read, never an out-of-range access.
struct ByteReader {
    let bytes: [UInt8]
    let file: String

    /// `count` bytes at `offset`, or `.truncated` naming `what`.
    func slice(_ offset: Int, _ count: Int, _ what: String) throws -> ArraySlice<UInt8> {
        guard offset >= 0, count >= 0, offset <= bytes.count, count <= bytes.count - offset else {
            throw WeightsError(file: file, .truncated("\(what) needs bytes \(offset)..<\(offset &+ count), the file has \(bytes.count)"))
        }
        return bytes[offset..<(offset + count)]
    }

    /// An unsigned little-endian integer of `width` bytes at `offset`.
    func uint(_ offset: Int, _ width: Int, _ what: String) throws -> UInt64 {
        let s = try slice(offset, width, what)
        var value: UInt64 = 0
        for (i, b) in s.enumerated() { value |= UInt64(b) << (8 * UInt64(i)) }
        return value
    }

    func u16(_ offset: Int, _ what: String) throws -> Int { Int(try uint(offset, 2, what)) }
    func u32(_ offset: Int, _ what: String) throws -> Int { Int(try uint(offset, 4, what)) }

    /// A 64-bit size or offset, refused when it does not fit an `Int`.
    func u64(_ offset: Int, _ what: String) throws -> Int {
        let v = try uint(offset, 8, what)
        guard v <= UInt64(Int.max) else { throw WeightsError(file: file, .tooLarge("\(what) is \(v)")) }
        return Int(v)
    }
}

/// A read-only zip archive held in memory: the central directory (zip64 included), and members
/// that are stored or deflated, CRC-checked. This is the container `torch.save` writes since
/// PyTorch 1.6 (`<prefix>/data.pkl`, `<prefix>/data/<key>`, …).
struct ZipArchive {
    /// One member, as the central directory describes it.
    struct Entry {
        let name: String
        /// 0 stored, 8 deflated.
        let method: Int
        let compressedSize: Int
        let size: Int
        let crc32: UInt32
        let localHeaderOffset: Int
    }

    /// Largest member this reader inflates or copies (a checkpoint's largest storage is a few
    /// hundred MiB; a zip bomb claims far more).
    static let maxMemberBytes = 1 << 33

    private let reader: ByteReader
    /// Members by name.
    let entries: [String: Entry]
    /// Members in directory order.
    let names: [String]

    /// Whether `bytes` starts like a zip archive (a local file header or an empty archive's end record).
    static func looksLikeZip(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 4 && bytes[0] == 0x50 && bytes[1] == 0x4B && ((bytes[2] == 3 && bytes[3] == 4) || (bytes[2] == 5 && bytes[3] == 6))
    }

    /// Parses the central directory of `bytes` (the whole file `file`).
    init(bytes: [UInt8], file: String) throws {
        let r = ByteReader(bytes: bytes, file: file)
        reader = r
        // The end-of-central-directory record is the last 22 bytes plus a comment of up to 64 KiB.
        var eocd = -1
        var i = bytes.count - 22
        while i >= max(0, bytes.count - 22 - 65_535) {
            if bytes[i] == 0x50 && bytes[i + 1] == 0x4B && bytes[i + 2] == 5 && bytes[i + 3] == 6 { eocd = i; break }
            i -= 1
        }
        guard eocd >= 0 else { throw WeightsError(file: file, .malformed("no zip end-of-central-directory record (truncated or not a zip archive)")) }
        var count = try r.u16(eocd + 10, "zip end record")
        var directorySize = try r.u32(eocd + 12, "zip end record")
        var directoryOffset = try r.u32(eocd + 16, "zip end record")
        // Zip64: a locator 20 bytes before the end record points at the zip64 end record.
        if eocd >= 20, try r.u32(eocd - 20, "zip64 locator") == 0x0706_4B50 {
            let zip64 = try r.u64(eocd - 20 + 8, "zip64 locator")
            guard try r.u32(zip64, "zip64 end record") == 0x0606_4B50 else {
                throw WeightsError(file: file, .malformed("the zip64 locator points at offset \(zip64), which holds no zip64 end record"))
            }
            count = try r.u64(zip64 + 32, "zip64 end record")
            directorySize = try r.u64(zip64 + 40, "zip64 end record")
            directoryOffset = try r.u64(zip64 + 48, "zip64 end record")
        }
        // Every directory entry takes at least 46 bytes: a count the directory cannot hold is a lie.
        guard directorySize <= bytes.count, count <= directorySize / 46 + 1 else {
            throw WeightsError(file: file, .malformed("the zip directory claims \(count) members in \(directorySize) bytes"))
        }
        _ = try r.slice(directoryOffset, directorySize, "zip central directory")
        var entries: [String: Entry] = [:], names: [String] = []
        var at = directoryOffset
        for index in 0..<count {
            let what = "zip directory entry \(index)"
            guard try r.u32(at, what) == 0x0201_4B50 else {
                throw WeightsError(file: file, .malformed("\(what) at offset \(at) has no directory signature"))
            }
            let flags = try r.u16(at + 8, what)
            guard flags & 1 == 0 else { throw WeightsError(file: file, .unsupported("member \(index) is encrypted")) }
            let method = try r.u16(at + 10, what)
            let crc = UInt32(try r.u32(at + 16, what))
            var compressed = try r.u32(at + 20, what), size = try r.u32(at + 24, what)
            let nameLength = try r.u16(at + 28, what), extraLength = try r.u16(at + 30, what), commentLength = try r.u16(at + 32, what)
            var local = try r.u32(at + 42, what)
            let name = String(decoding: try r.slice(at + 46, nameLength, what), as: UTF8.self)
            // Zip64 extended information: 8-byte values for exactly the fields that read 0xFFFFFFFF.
            var extra = at + 46 + nameLength
            let extraEnd = extra + extraLength
            _ = try r.slice(extra, extraLength, "\(what) extra field")
            while extra + 4 <= extraEnd {
                let id = try r.u16(extra, what), length = try r.u16(extra + 2, what)
                guard extra + 4 + length <= extraEnd else { throw WeightsError(file: file, .malformed("\(what): an extra field overruns its entry")) }
                if id == 1 {
                    var field = extra + 4
                    func next() throws -> Int {
                        guard field + 8 <= extra + 4 + length else { throw WeightsError(file: file, .malformed("\(what): short zip64 field")) }
                        defer { field += 8 }
                        return try r.u64(field, what)
                    }
                    if size == 0xFFFF_FFFF { size = try next() }
                    if compressed == 0xFFFF_FFFF { compressed = try next() }
                    if local == 0xFFFF_FFFF { local = try next() }
                }
                extra += 4 + length
            }
            guard method == 0 || method == 8 else {
                throw WeightsError(file: file, .unsupported("member '\(name)' uses compression method \(method) (only stored and deflated are read)"))
            }
            guard entries[name] == nil else { throw WeightsError(file: file, .malformed("member '\(name)' appears twice")) }
            entries[name] = Entry(name: name, method: method, compressedSize: compressed, size: size, crc32: crc, localHeaderOffset: local)
            names.append(name)
            at = extraEnd + commentLength
        }
        self.entries = entries
        self.names = names
    }

    /// The uncompressed bytes of `name`, CRC-checked.
    func data(_ name: String) throws -> [UInt8] {
        let file = reader.file
        guard let e = entries[name] else { throw WeightsError(file: file, .malformed("the archive has no member '\(name)'")) }
        guard e.size <= Self.maxMemberBytes else {
            throw WeightsError(file: file, .tooLarge("member '\(name)' claims \(e.size) bytes (limit \(Self.maxMemberBytes))"))
        }
        let what = "member '\(name)'"
        guard try reader.u32(e.localHeaderOffset, what) == 0x0403_4B50 else {
            throw WeightsError(file: file, .malformed("\(what): no local header at offset \(e.localHeaderOffset)"))
        }
        let start = e.localHeaderOffset + 30 + (try reader.u16(e.localHeaderOffset + 26, what)) + (try reader.u16(e.localHeaderOffset + 28, what))
        let packed = try reader.slice(start, e.compressedSize, what)
        let out: [UInt8]
        if e.method == 0 {
            guard e.compressedSize == e.size else { throw WeightsError(file: file, .malformed("\(what) is stored but its sizes differ (\(e.compressedSize) vs \(e.size))")) }
            out = Array(packed)
        } else {
            // DEFLATE expands at most ~1032:1; a larger claim is a bomb or a lie.
            guard e.size <= e.compressedSize &* 1032 &+ 1024 else {
                throw WeightsError(file: file, .tooLarge("\(what) claims \(e.size) bytes from \(e.compressedSize) compressed"))
            }
            out = try inflate(packed, size: e.size, what: what)
        }
        let crc = Zlib.crc32(out)
        guard crc == e.crc32 else { throw WeightsError(file: file, .malformed("\(what) fails its CRC-32 check (damaged)")) }
        return out
    }

    /// Raw DEFLATE of `packed` into exactly `size` bytes.
    private func inflate(_ packed: ArraySlice<UInt8>, size: Int, what: String) throws -> [UInt8] {
        do { return try Zlib.inflateRaw(packed, size: size) } catch {
            throw WeightsError(file: reader.file, .malformed("\(what) \(error)"))
        }
    }
}
