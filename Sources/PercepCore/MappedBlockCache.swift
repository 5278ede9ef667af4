import CKernels
import Foundation
import Synchronization

/// Freed mapped blocks (see `Storage`), kept for the next allocation instead of being returned to
/// the kernel, so a training step does not page-fault and zero its activations afresh every
/// iteration (9–10 % of a CondInst R-50 step when every block was unmapped on free).
///
/// Any cached memory serves any request. The smallest cached block that is large enough is cut:
/// the request takes its front, the rest stays cached. When no block is large enough, the largest
/// ones are gathered: a range of the full length is reserved and their pages are moved onto its
/// front with `mremap` (page tables move, nothing is copied or zeroed), at most `maxMovedRuns` runs
/// of them; only what the whole cache cannot cover, and the runs not moved, is fresh memory. So the
/// mapped bytes (live plus cached) never exceed the most bytes ever live in mapped tensors — the
/// kernel would have held that much at the peak without a cache — and a step that repeats the
/// previous one faults in little or nothing (nothing in the VGG16 loss step). Between steps the
/// cache keeps that peak mapped, as PyTorch's caching allocators do. `PERCEP_MAPPED_CACHE=0` turns
/// it off.
///
/// A freed block joins the cached blocks next to it in the address space, and runs of one kernel
/// memory area join again, so the pieces that cuts make become whole blocks again when all of them
/// are free. Without that, every cut left one more piece for good: the runs a gather moved (one
/// `mremap` each, with a TLB shootdown) grew in number step after step, and the VGG16 loss step's
/// fastest of 50 went from 0.19 s to 0.35 s over 400 steps (docs/benchmarks.md).
///
/// Gathering splits the kernel's memory areas; the cache is emptied when the process holds more
/// than a quarter of `vm.max_map_count` of them.
enum MappedBlockCache {
    /// A run of bytes inside one kernel memory area: `mremap` moves only such runs.
    private struct Segment {
        var address: UnsafeMutableRawPointer
        var length: Int
        /// The memory area it lies in, numbered when the area is made (`newArea`): two adjacent
        /// segments of one area are one run.
        var area: Int

        var end: UnsafeMutableRawPointer { address + length }
    }

    /// A block: its segments, in address order, cover it without gaps.
    private struct Block {
        var segments: [Segment]
        var length: Int

        var start: UnsafeMutableRawPointer { segments[0].address }
        var end: UnsafeMutableRawPointer { segments[segments.count - 1].end }

        /// Appends `next`, the block that starts where this one ends; the two runs where they
        /// meet become one when they lie in the same memory area.
        mutating func join(_ next: Block) {
            precondition(end == next.start, "MappedBlockCache: joining blocks that are not adjacent")
            var rest = next.segments[...]
            if let first = rest.first, segments[segments.count - 1].area == first.area {
                segments[segments.count - 1].length += first.length
                rest = rest.dropFirst()
            }
            segments.append(contentsOf: rest)
            length += next.length
        }

        /// Splits off the first `length` bytes; the rest stays in `self`.
        mutating func cut(front length: Int) -> Block {
            var front: [Segment] = [], taken = 0
            while taken < length {
                var segment = segments.removeFirst()
                if taken + segment.length > length {
                    let rest = Segment(address: segment.address + (length - taken), length: segment.length - (length - taken),
                                       area: segment.area)
                    segment.length = length - taken
                    segments.insert(rest, at: 0)
                }
                taken += segment.length
                front.append(segment)
            }
            self.length -= length
            return Block(segments: front, length: length)
        }
    }

    /// Freed blocks, shortest first.
    private static let blocks = Mutex<[Block]>([])
    private static let cached = Atomic<Int>(0)
    /// Fresh pages mapped so far, in bytes: what the kernel had to fault in and zero.
    static let freshBytes = Atomic<Int>(0)
    /// Runs moved by `mremap` so far (`StorageStatistics.movedMappedRuns`).
    static let movedRuns = Atomic<Int>(0)
    /// Cuts and gathers since the memory areas were last counted.
    private static let reshapes = Atomic<Int>(0)
    /// The segments of blocks handed out, by address, so `give` knows how to move them later.
    private static let liveSegments = Mutex<[UnsafeMutableRawPointer: [Segment]]>([:])
    /// The last memory-area number given (`newArea`).
    private static let areas = Atomic<Int>(0)

    static let enabled: Bool = ProcessInfo.processInfo.environment["PERCEP_MAPPED_CACHE"] != "0"

    /// Bytes held in freed blocks now.
    static var cachedBytes: Int { cached.load(ordering: .relaxed) }

    /// A mapping of exactly `length` bytes (a multiple of the page size), and how many of its
    /// leading bytes may hold a previous tensor's data (the rest are fresh zero pages).
    static func take(length: Int) -> (address: UnsafeMutableRawPointer, reusedBytes: Int) {
        guard enabled else { return (mapFresh(length), 0) }
        // Under the lock only the choice; the system calls run outside it.
        let (pieces, cut): ([Block], Bool) = blocks.withLock { blocks in
            var pieces: [Block] = [], needed = length
            if let index = blocks.firstIndex(where: { $0.length >= length }) {
                pieces.append(blocks.remove(at: index))
            } else {
                while needed > 0, let largest = blocks.popLast() {
                    pieces.append(largest)
                    needed -= largest.length
                }
            }
            let taken = pieces.reduce(0) { $0 + $1.length }
            var cut = false
            if taken > length, var last = pieces.popLast() {
                // The last piece is longer than what is still needed: its tail stays cached.
                pieces.append(last.cut(front: last.length - (taken - length)))
                insert(last, into: &blocks)
                cut = true
            }
            cached.subtract(min(taken, length), ordering: .relaxed)
            return (pieces, cut)
        }
        if cut { noteReshape() }
        if pieces.count == 1, pieces[0].length == length {
            return (hand(out: pieces[0].segments), length)
        }
        if pieces.isEmpty { return (hand(out: [Segment(address: mapFresh(length), length: length, area: newArea())]), 0) }
        // Gather: reserve the whole length (untouched pages cost nothing) and move the pieces'
        // pages onto its front; each moved run is a memory area of its own there.
        noteReshape()
        // At most `maxMovedRuns` runs move, the longest; the others go back to the kernel and
        // their bytes come fresh.
        var sources = pieces.flatMap(\.segments)
        if sources.count > maxMovedRuns {
            let longest = Set(sources.indices.sorted { sources[$0].length > sources[$1].length }.prefix(maxMovedRuns))
            for index in sources.indices where !longest.contains(index) { munmap(sources[index].address, sources[index].length) }
            sources = sources.indices.filter(longest.contains).map { sources[$0] }
        }
        let reused = sources.reduce(0) { $0 + $1.length }
        let target = mapFresh(length, counted: length - reused)
        var segments: [Segment] = [], offset = 0, failedRun = 0
        for (index, source) in sources.enumerated() {
            let moved = index == failingMove ? failMove(onto: target + offset, length: source.length)
                                             : pd_remap_onto(source.address, source.length, target + offset)
            guard moved != nil else {
                // Out of memory areas: the pages not moved go back to the kernel with the whole
                // cache; the request keeps what was moved and fresh pages after it. Some failures
                // come after the kernel has unmapped the destination (`mremap_to` unmaps it
                // first; ENOMEM while splitting areas, or EFAULT on older kernels): zero pages go
                // back into that hole, or the block handed out would have unmapped pages in it.
                let hole = pd_map_zero_pages_if_unmapped(target + offset, source.length)
                if hole < 0 { fatalError("percep-dist: out of memory mapping \(source.length) bytes after a failed mremap (errno \(errno))") }
                if hole == 0 { refilledHoles.add(1, ordering: .relaxed) }
                failedRun = source.length
                for rest in sources[index...] { munmap(rest.address, rest.length) }
                releaseAll()
                break
            }
            movedRuns.add(1, ordering: .relaxed)
            segments.append(Segment(address: target + offset, length: source.length, area: newArea()))
            offset += source.length
        }
        // The failed run's destination may be a refilled hole, a memory area of its own: it never
        // joins the rest of the target.
        var end = offset
        for piece in [failedRun, length - offset - failedRun] where piece > 0 {
            segments.append(Segment(address: target + end, length: piece, area: newArea()))
            end += piece
        }
        if offset < length { freshBytes.add(reused - offset, ordering: .relaxed) }
        return (hand(out: segments), offset)
    }

    /// Takes back a block from `take` that no tensor uses any more.
    static func give(_ address: UnsafeMutableRawPointer, length: Int) {
        guard enabled else {
            munmap(address, length)
            return
        }
        guard let segments = liveSegments.withLock({ $0.removeValue(forKey: address) }) else {
            preconditionFailure("MappedBlockCache: \(address) was not handed out by take")
        }
        blocks.withLock { blocks in
            var block = Block(segments: segments, length: length)
            // Join the cached neighbours: the block before it, then the one after.
            if let before = blocks.firstIndex(where: { $0.end == block.start }) {
                var joined = blocks.remove(at: before)
                joined.join(block)
                block = joined
            }
            if let after = blocks.firstIndex(where: { $0.start == block.end }) {
                block.join(blocks.remove(at: after))
            }
            insert(block, into: &blocks)
            cached.add(length, ordering: .relaxed)
        }
    }

    /// Returns every cached block to the kernel.
    static func releaseAll() {
        let all = blocks.withLock { blocks in
            defer { blocks.removeAll() }
            return blocks
        }
        for block in all {
            for segment in block.segments { munmap(segment.address, segment.length) }
            cached.subtract(block.length, ordering: .relaxed)
        }
    }

    private static func insert(_ block: Block, into blocks: inout [Block]) {
        let index = blocks.firstIndex(where: { $0.length >= block.length }) ?? blocks.count
        blocks.insert(block, at: index)
    }

    /// Records how a block about to be handed out is made, and returns its address.
    private static func hand(out segments: [Segment]) -> UnsafeMutableRawPointer {
        liveSegments.withLock { $0[segments[0].address] = segments }
        return segments[0].address
    }

    /// The most runs one gather moves (`take`), the longest; the rest of its pieces go back to the
    /// kernel and come fresh. Without a cap a run moved once can be cut and moved again, and a
    /// gather's runs multiply. In MappedBlockCacheTests' repeated step (32 blocks of 1–6 MiB)
    /// caps of 4, 8 and 16 moved 16, 32 and 55 runs and faulted in 3.9, 2.0 and 0.8 MiB per step,
    /// level over 30 steps; with no cap the runs per step grew. Settable for tests.
    nonisolated(unsafe) static var maxMovedRuns = 8

    /// Tests only: the index of a gather's run whose move fails as on a kernel that unmaps the
    /// destination before failing (nil: every move is real).
    nonisolated(unsafe) static var failingMove: Int?
    /// Holes a failed move left in a gathered block and zero pages filled (`take`).
    static let refilledHoles = Atomic<Int>(0)

    /// What `failingMove` does instead of moving: unmaps the destination and fails.
    private static func failMove(onto target: UnsafeMutableRawPointer, length: Int) -> UnsafeMutableRawPointer? {
        munmap(target, length)
        return nil
    }

    /// A number for a memory area just made.
    private static func newArea() -> Int { areas.add(1, ordering: .relaxed).newValue }

    /// A new mapping of `length` bytes; `counted` of them (all by default) will be faulted in.
    private static func mapFresh(_ length: Int, counted: Int? = nil) -> UnsafeMutableRawPointer {
        let fresh = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let fresh, fresh != MAP_FAILED else { fatalError("percep-dist: out of memory mapping \(length) bytes") }
        // Advice only: where transparent huge pages are off this changes nothing.
        _ = madvise(fresh, length, Int32(MADV_HUGEPAGE))
        freshBytes.add(counted ?? length, ordering: .relaxed)
        return fresh
    }

    /// Every 256 cuts or gathers, counts the process's memory areas and empties the cache when
    /// they approach the kernel's limit.
    private static func noteReshape() {
        guard reshapes.add(1, ordering: .relaxed).newValue % 256 == 0 else { return }
        guard let maps = try? String(contentsOfFile: "/proc/self/maps", encoding: .utf8),
              let limitText = try? String(contentsOfFile: "/proc/sys/vm/max_map_count", encoding: .utf8),
              let limit = Int(limitText.trimmingCharacters(in: .whitespacesAndNewlines)) else { return }
        if maps.utf8.lazy.filter({ $0 == UInt8(ascii: "\n") }).count > limit / 4 { releaseAll() }
    }
}
