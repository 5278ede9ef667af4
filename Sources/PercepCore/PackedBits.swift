import Foundation

/// Small unsigned entries (1, 2, 4, 8, 16 or 32 bits each) packed into 64-bit words.
///
/// What a frozen network's backward needs is far smaller than its activations: a ReLU needs one
/// sign bit per element, a max-pool the position of each window's maximum (2 bits for a 2×2
/// window). Entries come in rows (one per [N, C] plane) and every row starts on a word boundary,
/// so threads can fill different rows at the same time.
public final class PackedBits {
    /// Bits per entry, a power of two ≤ 32.
    public let bitsPerEntry: Int
    /// Number of rows and entries in each.
    public let rows: Int, entriesPerRow: Int
    let wordsPerRow: Int
    let words: UnsafeMutablePointer<UInt64>

    /// Zeroed storage for `rows` rows of `entriesPerRow` entries holding values below
    /// `valueCount` (the entry width is the smallest power of two of bits that holds them).
    public init(rows: Int, entriesPerRow: Int, valueCount: Int) {
        precondition(rows >= 0 && entriesPerRow >= 0 && valueCount >= 1 && valueCount <= 1 << 32,
                     "PackedBits: bad size \(rows)×\(entriesPerRow) for \(valueCount) values")
        var bits = 1
        while (1 << bits) < valueCount { bits *= 2 }
        bitsPerEntry = bits
        self.rows = rows
        self.entriesPerRow = entriesPerRow
        let perWord = 64 / bits
        wordsPerRow = (entriesPerRow + perWord - 1) / perWord
        words = .allocate(capacity: max(rows * wordsPerRow, 1))
        words.initialize(repeating: 0, count: max(rows * wordsPerRow, 1))
        StorageStatistics.allocated(max(rows * wordsPerRow, 1) * 8)   // counted with the tensors
    }

    deinit {
        StorageStatistics.freed(max(rows * wordsPerRow, 1) * 8)
        words.deallocate()
    }

    /// Bytes held.
    public var byteCount: Int { rows * wordsPerRow * 8 }

    /// Sets entry `index` of `row` to `value` (the entry must still be 0).
    @inline(__always)
    public func set(row: Int, index: Int, to value: Int) {
        let perWord = 64 / bitsPerEntry
        let w = row * wordsPerRow + index / perWord
        words[w] |= UInt64(truncatingIfNeeded: value) << UInt64((index % perWord) * bitsPerEntry)
    }

    /// Entry `index` of `row`.
    @inline(__always)
    public func get(row: Int, index: Int) -> Int {
        let perWord = 64 / bitsPerEntry
        let word = words[row * wordsPerRow + index / perWord]
        let mask: UInt64 = bitsPerEntry == 64 ? ~0 : (1 << UInt64(bitsPerEntry)) - 1
        return Int((word >> UInt64((index % perWord) * bitsPerEntry)) & mask)
    }
}

extension PackedBits {
    /// The sign bits of `values` ([rows, entriesPerRow] contiguous): bit set where the value is
    /// > 0, what a ReLU's backward needs from its output.
    public static func positive(_ values: UnsafePointer<Float>, rows: Int, entriesPerRow: Int) -> PackedBits {
        let bits = PackedBits(rows: rows, entriesPerRow: entriesPerRow, valueCount: 2)
        let words = bits.words, wordsPerRow = bits.wordsPerRow
        parallelChunks(rows, grain: max(1, 65_536 / max(entriesPerRow, 1))) { range in
            for row in range {
                let v = values + row * entriesPerRow, out = words + row * wordsPerRow
                let full = entriesPerRow / 64
                for w in 0..<full {
                    // Branch-free over a whole word, so the compiler vectorises the compares.
                    let block = v + w * 64
                    var word: UInt64 = 0
                    for k in 0..<64 { word |= UInt64(block[k] > 0 ? 1 : 0) << UInt64(k) }
                    out[w] = word
                }
                if full < wordsPerRow {
                    var word: UInt64 = 0
                    for k in (full * 64)..<entriesPerRow where v[k] > 0 { word |= 1 << UInt64(k - full * 64) }
                    out[full] = word
                }
            }
        }
        return bits
    }

    /// out = g where the sign bit is set, else 0 (`bitsPerEntry` must be 1). out may be g.
    public func maskGradient(_ out: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>) {
        precondition(bitsPerEntry == 1, "maskGradient: needs sign bits, these entries have \(bitsPerEntry) bits")
        let words = self.words, wordsPerRow = self.wordsPerRow, entriesPerRow = self.entriesPerRow
        parallelChunks(rows, grain: max(1, 65_536 / max(entriesPerRow, 1))) { range in
            for row in range {
                let src = g + row * entriesPerRow, dst = out + row * entriesPerRow, bits = words + row * wordsPerRow
                let full = entriesPerRow / 64
                for w in 0..<full {
                    let word = bits[w], s = src + w * 64, d = dst + w * 64
                    // Each half word as 32 lanes of an AND mask (all ones where the bit is set):
                    // 32-bit shifts by the lane index and a bitwise AND, which the compiler
                    // vectorises; a select per element on a 64-bit shift did not.
                    for half in 0..<2 {
                        let lanes = UInt32(truncatingIfNeeded: word &>> UInt64(32 * half)), o = 32 * half
                        for k in 0..<32 {
                            let keep = 0 &- ((lanes &>> UInt32(k)) & 1)
                            d[o + k] = Float(bitPattern: s[o + k].bitPattern & keep)
                        }
                    }
                }
                for k in (full * 64)..<entriesPerRow { dst[k] = (bits[full] >> UInt64(k - full * 64)) & 1 == 1 ? src[k] : 0 }
            }
        }
    }
}
