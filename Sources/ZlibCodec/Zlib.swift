import CZlib

/// Why compressed data could not be inflated.
public struct ZlibError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, e.g. "does not inflate to its declared 1024 bytes (zlib status -3)".
    public let description: String
}

/// zlib behind four functions, the one place the project inflates or deflates: zip members of PyTorch files
/// (raw DEFLATE, size known) and MATLAB v5 compressed elements (zlib streams, size unknown).
public enum Zlib {
    /// Raw DEFLATE (zip method 8) of `packed` into exactly `size` bytes; anything else (a shorter
    /// or longer stream, corrupt data) throws.
    public static func inflateRaw(_ packed: ArraySlice<UInt8>, size: Int) throws -> [UInt8] {
        let (out, complete) = try run(packed, windowBits: -15, initial: size, limit: size)
        guard complete, out.count == size else {
            throw ZlibError(description: "does not inflate to its declared \(size) bytes")
        }
        return out
    }

    /// A zlib stream (header and Adler-32 trailer) of unknown inflated size, refused beyond
    /// `limit` bytes (a bomb) or when the stream is truncated or corrupt.
    public static func inflateStream(_ packed: ArraySlice<UInt8>, limit: Int) throws -> [UInt8] {
        let (out, complete) = try run(packed, windowBits: 15, initial: min(limit, max(1024, packed.count * 4)), limit: limit)
        guard complete else {
            throw ZlibError(description: out.count >= limit ? "inflates beyond \(limit) bytes" : "the zlib stream is truncated")
        }
        return out
    }

    /// `bytes` as a zlib stream (header, DEFLATE at `level`, Adler-32): what MATLAB v5's
    /// compressed elements hold.
    public static func deflateStream(_ bytes: [UInt8], level: Int32 = 6) -> [UInt8] {
        var size = compressBound(uLong(bytes.count))
        var out = [UInt8](repeating: 0, count: Int(size))
        let status = out.withUnsafeMutableBufferPointer { o in
            bytes.withUnsafeBufferPointer { i in compress2(o.baseAddress, &size, i.baseAddress, uLong(i.count), level) }
        }
        // compress2 only fails for lack of memory or a bad level; the bound above is always enough.
        precondition(status == Z_OK, "compress2 failed with status \(status)")
        return Array(out[..<Int(size)])
    }

    /// CRC-32 of `bytes` (zip's checksum).
    public static func crc32(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBufferPointer { buffer -> UInt32 in
            var c = CZlib.crc32(0, nil, 0)
            var p = buffer.baseAddress, left = buffer.count
            while left > 0 {
                let n = min(left, 1 << 30)
                c = CZlib.crc32(c, p, uInt(n)); p = p.map { $0 + n }; left -= n
            }
            return UInt32(c)
        }
    }

    /// Inflates into a buffer that starts at `initial` bytes and doubles up to `limit`; returns
    /// the output and whether the stream ended.
    private static func run(_ packed: ArraySlice<UInt8>, windowBits: Int32, initial: Int, limit: Int) throws -> ([UInt8], Bool) {
        var stream = z_stream()
        guard czlib_inflate_init(&stream, windowBits) == Z_OK else { throw ZlibError(description: "zlib could not start") }
        defer { inflateEnd(&stream) }
        var out = [UInt8](repeating: 0, count: max(1, initial)), produced = 0, status = Z_OK
        try packed.withUnsafeBufferPointer { input in
            var consumed = 0
            while true {
                if produced == out.count {
                    guard out.count < limit else { return }
                    out += [UInt8](repeating: 0, count: min(out.count, limit - out.count))
                }
                // zlib counts in 32 bits: at most 1 GiB per call either way.
                let inChunk = min(input.count - consumed, 1 << 30), outChunk = min(out.count - produced, 1 << 30)
                stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress.map { $0 + consumed })
                stream.avail_in = uInt(inChunk)
                status = out.withUnsafeMutableBufferPointer { o in
                    stream.next_out = o.baseAddress! + produced
                    stream.avail_out = uInt(outChunk)
                    return CZlib.inflate(&stream, Z_NO_FLUSH)
                }
                consumed += inChunk - Int(stream.avail_in); produced += outChunk - Int(stream.avail_out)
                if status == Z_STREAM_END { return }
                if status == Z_BUF_ERROR && consumed == input.count { return }
                guard status == Z_OK || status == Z_BUF_ERROR else {
                    throw ZlibError(description: "corrupt compressed data (zlib status \(status))")
                }
            }
        }
        return (Array(out[..<produced]), status == Z_STREAM_END)
    }
}
