extension RLE {
    /// The compressed counts string of COCO JSON (`rleToString`).
    ///
    /// From the fourth count on (index ≥ 3) each count is stored as the signed difference to the
    /// count two places back (the previous run of the same value); the first three are stored raw.
    /// Each value is written as 5-bit little-endian groups, bit 0x20 marking "more groups follow",
    /// and each group becomes the character 48 + group, so the alphabet is ASCII 48…111.
    public var compressedCounts: String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(counts.count * 2)
        for i in counts.indices {
            var x = Int64(counts[i])
            if i > 2 { x -= Int64(counts[i - 2]) }
            var more = true
            while more {
                var c = UInt8(truncatingIfNeeded: x & 0x1F)
                x >>= 5  // arithmetic shift, as `long` in C
                more = (c & 0x10) != 0 ? x != -1 : x != 0
                if more { c |= 0x20 }
                bytes.append(c + 48)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Decodes a compressed counts string (`rleFrString`) for a mask of size h×w.
    ///
    /// Where maskApi.c would read past the end of a truncated string or wrap negative counts into
    /// huge unsigned ones, this throws: characters outside 48…111, a value cut off mid-way, a value
    /// wider than 64 bits, a negative or over-large count, and counts that do not sum to h·w.
    public init(compressedCounts s: String, height: Int, width: Int) throws {
        var counts: [UInt32] = []
        var x: Int64 = 0
        var k = 0
        var inValue = false
        for (position, ch) in s.utf8.enumerated() {
            guard ch >= 48, ch <= 111 else {
                throw RLEFormatError("character \(Self.show(ch)) at position \(position) is outside the alphabet '0'…'o'")
            }
            let c = Int64(ch - 48)
            guard k < 12 else { throw RLEFormatError("value ending at position \(position) is too long") }
            x |= (c & 0x1F) << Int64(5 * k)
            k += 1
            inValue = true
            if c & 0x20 == 0 {
                if c & 0x10 != 0 { x |= -1 << Int64(5 * k) }  // sign-extend the last group
                let m = counts.count
                if m > 2 { x += Int64(counts[m - 2]) }
                guard x >= 0, x <= Int64(UInt32.max) else {
                    throw RLEFormatError("count \(m) decodes to \(x), outside 0…\(UInt32.max) (ends at position \(position))")
                }
                counts.append(UInt32(x))
                x = 0; k = 0; inValue = false
            }
        }
        if inValue { throw RLEFormatError("string ends inside a value (last character has the continuation bit)") }
        let rle = RLE(height: height, width: width, counts: counts)
        try rle.validate()
        self = rle
    }

    private static func show(_ byte: UInt8) -> String {
        (32..<127).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))'" : "byte \(byte)"
    }
}
