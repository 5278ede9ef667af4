import XCTest
@testable import PercepCore

/// The mapped-block cache behind large `Storage` blocks: freed blocks are cut, gathered and
/// reused without the kernel zeroing fresh pages, zero-initialised blocks are still zero, data
/// survives the page moves, and the mapped bytes never exceed the most ever live.
final class MappedBlockCacheTests: XCTestCase {
    private let mib = 1 << 20

    override func setUp() {
        super.setUp()
        MappedBlockCache.releaseAll()
    }

    override func tearDown() {
        MappedBlockCache.releaseAll()
        super.tearDown()
    }

    private func floats(_ bytes: Int) -> Int { bytes / MemoryLayout<Float>.stride }

    /// The blocks below (1 MiB and up) are mapped and cached only with the default settings.
    private func skipUnlessCached() throws {
        try XCTSkipUnless(MappedBlockCache.enabled && Storage.mappingThreshold <= mib,
                          "PERCEP_MAPPED_CACHE=0 or PERCEP_MAPPED_MIN_MB > 1")
    }

    func testFreedBlockIsReusedAndZeroedOnRequest() throws {
        try skipUnlessCached()
        let fresh0 = StorageStatistics.freshMappedBytes
        var address: UnsafeMutablePointer<Float>?
        do {
            let dirty = Storage(count: floats(4 * mib))
            dirty.base.update(repeating: 7, count: dirty.count)
            address = dirty.base
        }
        XCTAssertEqual(StorageStatistics.cachedMappedBytes, 4 * mib)
        let zeros = Storage(zeros: floats(4 * mib))
        XCTAssertEqual(zeros.base, address, "the freed block serves the same request")
        XCTAssertTrue((0..<zeros.count).allSatisfy { zeros.base[$0] == 0 })
        XCTAssertEqual(StorageStatistics.freshMappedBytes - fresh0, 4 * mib, "only the first block was faulted in")
        XCTAssertEqual(StorageStatistics.cachedMappedBytes, 0)
    }

    func testLargerBlockIsCutAndItsTailStaysCached() throws {
        try skipUnlessCached()
        do { _ = Storage(count: floats(8 * mib)) }
        let fresh0 = StorageStatistics.freshMappedBytes
        let front = Storage(zeros: floats(3 * mib))
        XCTAssertEqual(StorageStatistics.cachedMappedBytes, 5 * mib)
        let tail = Storage(count: floats(5 * mib))
        XCTAssertEqual(tail.base, front.base + floats(3 * mib), "the tail is the rest of the same block")
        XCTAssertEqual(StorageStatistics.freshMappedBytes, fresh0)
        XCTAssertTrue((0..<front.count).allSatisfy { front.base[$0] == 0 })
    }

    func testSmallBlocksAreGatheredWithTheirData() throws {
        try skipUnlessCached()
        // Three freed blocks, none large enough alone: their pages are moved into one block.
        do {
            let blocks = [2, 3, 1].map { Storage(count: floats($0 * mib)) }
            for (index, block) in blocks.enumerated() { block.base.update(repeating: Float(index + 1), count: block.count) }
        }
        let fresh0 = StorageStatistics.freshMappedBytes
        var gathered: Storage! = Storage(count: floats(7 * mib))
        XCTAssertEqual(StorageStatistics.freshMappedBytes - fresh0, mib, "6 of the 7 MiB are moved, not faulted")
        XCTAssertEqual(StorageStatistics.cachedMappedBytes, 0)
        // Largest first: 3 MiB of 2s, 2 MiB of 1s, 1 MiB of 3s, then 1 MiB of fresh zeros.
        let expected: [(Float, Int)] = [(2, 3), (1, 2), (3, 1), (0, 1)]
        var offset = 0
        for (value, size) in expected {
            let count = floats(size * mib)
            XCTAssertTrue((offset..<offset + count).allSatisfy { gathered.base[$0] == value }, "\(size) MiB of \(value)")
            offset += count
        }
        // A gathered block is several kernel memory areas; it moves again piece by piece.
        gathered.base.update(repeating: 5, count: gathered.count)
        let fresh1 = StorageStatistics.freshMappedBytes
        gathered = nil
        let larger = Storage(count: floats(10 * mib))
        XCTAssertEqual(StorageStatistics.freshMappedBytes - fresh1, 3 * mib)
        XCTAssertTrue((0..<floats(7 * mib)).allSatisfy { larger.base[$0] == 5 })
    }

    func testMappedBytesNeverExceedTheMostEverLive() throws {
        try skipUnlessCached()
        var rng = SeededRNG(seed: 11)
        var live: [Storage] = [], liveBytes = 0, mostLive = 0
        for _ in 0..<400 {
            if live.isEmpty || rng.nextUnit() < 0.55 {
                let pages = 256 + Int(rng.nextUnit() * 2048)          // 1–9 MiB
                let block = Storage(zeros: pages * 1024)
                XCTAssertEqual(block.base[block.count - 1], 0)
                XCTAssertEqual(block.base[0], 0)
                block.base[0] = 1; block.base[block.count - 1] = 1
                live.append(block)
                liveBytes += pages * 4096
            } else {
                let index = Int(rng.nextUnit() * Double(live.count)) % live.count
                liveBytes -= live.remove(at: index).count * 4
            }
            mostLive = max(mostLive, liveBytes)
            XCTAssertLessThanOrEqual(liveBytes + StorageStatistics.cachedMappedBytes, mostLive)
        }
    }
}
