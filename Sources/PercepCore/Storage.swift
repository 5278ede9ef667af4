import Foundation
import Synchronization

/// A block of float32 memory, 64-byte aligned so BLAS and oneDNN kernels get full-width loads.
///
/// Storage is shared by tensor views (a parameter's gradient can be a view into one flat gradient
/// buffer) and freed when the last tensor referring to it goes away.
///
/// Blocks of at least `mappingThreshold` bytes are mapped from the kernel one by one and
/// unmapped when freed. From the malloc heap (glibc serves blocks up to 32 MiB there once its
/// dynamic mmap threshold has risen) freed activations fragment and stay resident: in the
/// PSPNet-R18 + VGG16 perceptual step that kept peak RSS 240 MiB above the live tensors. Mapped
/// blocks ask for transparent huge pages, so a fresh block costs one page fault per 2 MiB
/// instead of one per 4 KiB; the kernel still zeroes every fresh page, which costs some speed
/// (see `mappingThreshold`).
public final class Storage {
    /// First element of the block.
    public let base: UnsafeMutablePointer<Float>
    /// Number of float32 elements in the block.
    public let count: Int
    /// Length of the mapping behind a mapped block; 0 for a heap block.
    private let mappedLength: Int
    private static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// Blocks of this many bytes or more are mapped: 1 MiB, or `PERCEP_MAPPED_MIN_MB`. Mapping
    /// trades speed for memory: every fresh mapping is page-faulted and zeroed by the kernel,
    /// where the heap hands back freed memory as it is. Measured (docs/benchmarks.md): the
    /// PSPNet-R18 + VGG16 step 1056 MiB / 2.79 s mapped from 1 MiB against 1210 MiB / 2.52 s with
    /// `PERCEP_MAPPED_MIN_MB=32` (glibc maps blocks above 32 MiB itself); CondInst R-50 1606 MiB /
    /// 6.73 s against 1837 MiB / 5.79 s.
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
            let p = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            guard let p, p != MAP_FAILED else { fatalError("percep-dist: out of memory mapping \(bytes) bytes") }
            // Advice only: where transparent huge pages are off this changes nothing.
            _ = madvise(p, length, Int32(MADV_HUGEPAGE))
            base = p.bindMemory(to: Float.self, capacity: max(count, 1))
            mappedLength = length
        } else {
            var raw: UnsafeMutableRawPointer?
            guard posix_memalign(&raw, 64, bytes) == 0, let raw else {
                fatalError("percep-dist: out of memory allocating \(bytes) bytes")
            }
            mappedLength = 0
            base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        }
        StorageStatistics.allocated(bytes)
    }

    /// Allocates `count` elements set to zero.
    public convenience init(zeros count: Int) {
        self.init(count: count)
        // A fresh mapping is already zero; writing it would only fault every page in early.
        if mappedLength == 0 { base.initialize(repeating: 0, count: count) }
    }

    deinit {
        StorageStatistics.freed(max(count, 1) * MemoryLayout<Float>.stride)
        if mappedLength > 0 { munmap(base, mappedLength) } else { free(base) }
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
