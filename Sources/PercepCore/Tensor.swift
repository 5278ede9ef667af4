import Foundation

/// A dense, contiguous float32 tensor in row-major order (activations NCHW, conv weights OIHW).
///
/// Tensors are reference types so that the autodiff tape can point at them: an op's output
/// records a backward closure on the current `Tape` when any input needs a gradient. Every op
/// returns a new contiguous tensor; `reshaped` is the only op that shares storage.
public final class Tensor {
    /// Sizes of each dimension, outermost first.
    public let shape: [Int]
    /// The memory this tensor lives in (possibly shared with other views).
    public let storage: Storage
    /// Offset of element 0 inside `storage`.
    public let offset: Int
    /// Number of elements (product of `shape`).
    public let count: Int
    /// Whether a gradient is computed for this tensor during `backward()`.
    public var requiresGrad: Bool
    /// The accumulated gradient, same shape as the tensor; set by `backward()`.
    public var grad: Tensor? { didSet { gradIsUnwritten = false } }
    /// Whether `grad` is a buffer that holds nothing yet this step and reads as zeros once
    /// `backward` has finished: the first gradient is written over it instead of added to it,
    /// so a flat gradient buffer needs no memset and no extra add per step
    /// (`GradientSynchronizer.zeroGrads` sets it; the first write, or the synchroniser's zeroing
    /// of a parameter no gradient reached, clears it). Replacing `grad` clears it.
    public var gradIsUnwritten = false
    /// True for tensors created by the user (parameters, inputs), false for op outputs.
    public internal(set) var isLeaf: Bool = true

    /// Wraps existing storage; `shape` must fit inside it from `offset`.
    public init(shape: [Int], storage: Storage, offset: Int = 0, requiresGrad: Bool = false) {
        let n = shape.reduce(1, *)
        precondition(shape.allSatisfy { $0 >= 0 }, "Negative dimension in shape \(shape)")
        precondition(offset + n <= storage.count, "Shape \(shape) at offset \(offset) exceeds storage of \(storage.count)")
        self.shape = shape
        self.storage = storage
        self.offset = offset
        self.count = n
        self.requiresGrad = requiresGrad
    }

    /// A new tensor with uninitialised contents.
    public convenience init(uninitialized shape: [Int]) {
        self.init(shape: shape, storage: Storage(count: shape.reduce(1, *)))
    }

    /// A tensor holding a copy of `values` (row-major); `values.count` must equal the shape's size.
    public convenience init(shape: [Int], values: [Float], requiresGrad: Bool = false) {
        precondition(values.count == shape.reduce(1, *), "\(values.count) values do not fill shape \(shape)")
        self.init(uninitialized: shape)
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: values.count) }
        self.requiresGrad = requiresGrad
    }

    /// A zero-dimensional tensor holding `value`.
    public convenience init(scalar value: Float) {
        self.init(shape: [], values: [value])
    }

    /// A tensor of zeros.
    public static func zeros(_ shape: [Int], requiresGrad: Bool = false) -> Tensor {
        let t = Tensor(shape: shape, storage: Storage(zeros: shape.reduce(1, *)))
        t.requiresGrad = requiresGrad
        return t
    }

    /// A tensor filled with `value`.
    public static func full(_ shape: [Int], _ value: Float, requiresGrad: Bool = false) -> Tensor {
        let t = Tensor(uninitialized: shape)
        t.data.update(repeating: value, count: t.count)
        t.requiresGrad = requiresGrad
        return t
    }

    /// A tensor of ones.
    public static func ones(_ shape: [Int]) -> Tensor { full(shape, 1) }

    /// Pointer to element 0. Valid while the tensor is alive.
    @inline(__always) public var data: UnsafeMutablePointer<Float> { storage.base + offset }

    /// Number of dimensions.
    public var rank: Int { shape.count }

    /// The elements as a Swift array (row-major).
    public var values: [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }

    /// The single element of a one-element tensor.
    public var item: Float {
        precondition(count == 1, "item needs a one-element tensor, shape is \(shape)")
        return data[0]
    }

    /// Row-major strides of `shape`.
    public var strides: [Int] { Shape.strides(shape) }

    /// A tensor with the same data and a new shape of the same size (a view; recorded on the tape).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        let resolved = Shape.resolve(newShape, count: count)
        let out = Tensor(shape: resolved, storage: storage, offset: offset)
        let inShape = shape
        Tape.record(out, inputs: [self]) { g in [g.reshaped(inShape)] }
        return out
    }

    /// A detached copy with its own storage and no gradient history.
    public func copy() -> Tensor {
        let out = Tensor(uninitialized: shape)
        out.data.update(from: data, count: count)
        return out
    }

    /// A view of the same data that is not on the tape and needs no gradient.
    public func detached() -> Tensor { Tensor(shape: shape, storage: storage, offset: offset) }

    /// Copies `other`'s elements into this tensor in place; shapes must have the same size.
    public func assign(_ other: Tensor) {
        precondition(other.count == count, "assign: \(other.shape) into \(shape)")
        data.update(from: other.data, count: count)
    }

    /// Sets every element to `value` in place (not recorded on the tape).
    public func fill(_ value: Float) { data.update(repeating: value, count: count) }
}

extension Tensor: CustomStringConvertible {
    /// Shape and the first few values, for debugging.
    public var description: String {
        let head = values.prefix(8).map { String(format: "%.5g", $0) }.joined(separator: ", ")
        return "Tensor(shape: \(shape), [\(head)\(count > 8 ? ", …" : "")])"
    }
}

/// Shape arithmetic shared by the ops.
public enum Shape {
    /// Row-major strides.
    public static func strides(_ shape: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) { s[i] = acc; acc *= shape[i] }
        return s
    }

    /// Replaces one `-1` in `shape` by the size that makes it hold `count` elements.
    public static func resolve(_ shape: [Int], count: Int) -> [Int] {
        var out = shape
        if let i = shape.firstIndex(of: -1) {
            let known = shape.enumerated().filter { $0.offset != i }.map(\.element).reduce(1, *)
            precondition(known > 0 && count % known == 0, "Cannot reshape \(count) elements into \(shape)")
            out[i] = count / known
        }
        precondition(out.reduce(1, *) == count, "Cannot reshape \(count) elements into \(shape)")
        return out
    }

    /// PyTorch's broadcasting: align trailing dimensions; each pair must match or one must be 1.
    public static func broadcast(_ a: [Int], _ b: [Int]) -> [Int] {
        let n = Swift.max(a.count, b.count)
        var out = [Int](repeating: 1, count: n)
        for i in 0..<n {
            let da = i < n - a.count ? 1 : a[i - (n - a.count)]
            let db = i < n - b.count ? 1 : b[i - (n - b.count)]
            precondition(da == db || da == 1 || db == 1, "Shapes \(a) and \(b) do not broadcast")
            out[i] = da == 1 ? db : da
        }
        return out
    }

    /// Normalises a possibly negative axis.
    public static func axis(_ axis: Int, rank: Int) -> Int {
        let a = axis < 0 ? axis + rank : axis
        precondition(a >= 0 && a < Swift.max(rank, 1), "Axis \(axis) out of range for rank \(rank)")
        return a
    }
}
