import Foundation

/// A block of float32 memory, 64-byte aligned so BLAS and oneDNN kernels get full-width loads.
///
/// Storage is shared by tensor views (a parameter's gradient can be a view into one flat gradient
/// buffer) and freed when the last tensor referring to it goes away.
public final class Storage {
    /// First element of the block.
    public let base: UnsafeMutablePointer<Float>
    /// Number of float32 elements in the block.
    public let count: Int

    /// Allocates `count` uninitialised elements.
    public init(count: Int) {
        precondition(count >= 0, "Storage count must be non-negative, got \(count)")
        self.count = count
        var raw: UnsafeMutableRawPointer?
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        guard posix_memalign(&raw, 64, bytes) == 0, let raw else {
            fatalError("percep-dist: out of memory allocating \(bytes) bytes")
        }
        base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    /// Allocates `count` elements set to zero.
    public convenience init(zeros count: Int) {
        self.init(count: count)
        base.initialize(repeating: 0, count: count)
    }

    deinit { free(base) }
}
