import Foundation
import Synchronization

/// A block of float32 memory, 64-byte aligned so BLAS and oneDNN kernels get full-width loads.
///
/// Storage is shared by tensor views (a parameter's gradient can be a view into one flat gradient
/// buffer) and freed when the last tensor referring to it goes away.
///
/// Blocks of at least `mappingThreshold` bytes are mapped memory, kept in `MappedBlockCache`
/// when freed. From the malloc heap (glibc serves blocks up to 32 MiB there once its dynamic
/// mmap threshold has risen) freed activations fragment and stay resident: in the PSPNet-R18 +
/// VGG16 perceptual step that kept peak RSS 240 MiB above the live tensors. The cache cuts and
/// gathers its blocks so the mapped bytes never exceed the most ever live, and reuses them so the
/// kernel does not fault in and zero fresh pages every step. Mapped blocks ask for transparent
/// huge pages.
public final class Storage {
    /// First element of the block.
    public let base: UnsafeMutablePointer<Float>
    /// Number of float32 elements in the block.
    public let count: Int
    /// Length of the mapping behind a mapped block; 0 for a heap block.
    private let mappedLength: Int
    /// Leading bytes that may hold earlier data; beyond them a mapped block is fresh zero pages.
    private let reusedBytes: Int
    private static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// Blocks of this many bytes or more are mapped: 1 MiB, or `PERCEP_MAPPED_MIN_MB`. Smaller
    /// ones come from the malloc heap.
    public static let mappingThreshold: Int = {
        guard let text = ProcessInfo.processInfo.environment["PERCEP_MAPPED_MIN_MB"], let mb = Int(text), mb > 0 else { return 1 << 20 }
        return mb << 20
    }()

    /// Allocates `count` uninitialised elements.
    public init(count: Int) {
        precondition(count >= 0, "Storage count must be non-negative, got \(count)")
        self.count = count
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        if bytes >= Storage.mappingThreshold {
            let length = (bytes + Storage.pageSize - 1) / Storage.pageSize * Storage.pageSize
            let block = MappedBlockCache.take(length: length)
            base = block.address.bindMemory(to: Float.self, capacity: max(count, 1))
            mappedLength = length
            reusedBytes = block.reusedBytes
        } else {
            var raw: UnsafeMutableRawPointer?
            guard posix_memalign(&raw, 64, bytes) == 0, let raw else {
                fatalError("percep-dist: out of memory allocating \(bytes) bytes")
            }
            mappedLength = 0
            reusedBytes = bytes
            base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        }
        StorageStatistics.allocated(bytes)
    }

    /// Allocates `count` elements set to zero.
    public convenience init(zeros count: Int) {
        self.init(count: count)
        // Fresh mapped pages are already zero; writing them would only fault every page in early.
        let dirty = min(count, (reusedBytes + MemoryLayout<Float>.stride - 1) / MemoryLayout<Float>.stride)
        base.initialize(repeating: 0, count: dirty)
    }

    deinit {
        StorageStatistics.freed(max(count, 1) * MemoryLayout<Float>.stride)
        if mappedLength > 0 { MappedBlockCache.give(UnsafeMutableRawPointer(base), length: mappedLength) } else { free(base) }
    }
}

/// Bytes held by live `Storage` blocks (and `PackedBits`), and the most held at once since the
/// last `resetPeak`: benchmarks report it beside peak RSS, so memory held outside tensors
/// (library workspaces, allocator slack) shows as the difference.
public enum StorageStatistics {
    private static let live = Atomic<Int>(0)
    private static let peak = Atomic<Int>(0)

    /// Bytes in live blocks now.
    public static var liveBytes: Int { live.load(ordering: .relaxed) }
    /// The most bytes live at once since the process started or `resetPeak` was called.
    public static var peakBytes: Int { peak.load(ordering: .relaxed) }
    /// Bytes of fresh pages mapped for tensors since the process started: every one was faulted in
    /// and zeroed by the kernel. Benchmarks report its growth per step (0 once the mapped-block
    /// cache holds a step's worth).
    public static var freshMappedBytes: Int { MappedBlockCache.freshBytes.load(ordering: .relaxed) }
    /// Runs of pages the mapped-block cache moved with `mremap` to gather blocks since the process
    /// started: each is a system call and a TLB shootdown on the other cores. Benchmarks report
    /// its growth per step (0 in the VGG16 loss step once warm, a few in the training steps).
    public static var movedMappedRuns: Int { MappedBlockCache.movedRuns.load(ordering: .relaxed) }
    /// Bytes in freed mapped blocks kept for reuse (counted in RSS, not in `liveBytes`).
    public static var cachedMappedBytes: Int { MappedBlockCache.cachedBytes }
    /// Starts a new peak measurement from what is live now.
    public static func resetPeak() { peak.store(liveBytes, ordering: .relaxed) }

    static func allocated(_ bytes: Int) {
        let now = live.add(bytes, ordering: .relaxed).newValue
        var seen = peak.load(ordering: .relaxed)
        while now > seen {
            let (exchanged, original) = peak.compareExchange(expected: seen, desired: now, ordering: .relaxed)
            if exchanged { break }
            seen = original
        }
    }

    static func freed(_ bytes: Int) { live.subtract(bytes, ordering: .relaxed) }
}
