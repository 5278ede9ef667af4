/// A value built by the restricted unpickler. Only what a state dict is made of exists here:
/// plain Python data, and the few objects the allowlisted globals construct (tensors, storages,
/// NumPy arrays and dtypes). There is no "arbitrary object" case, so nothing else can be built.
public indirect enum PickleValue {
    case none
    case bool(Bool)
    case int(Int64)
    /// An integer wider than 64 bits (little-endian two's complement): the legacy PyTorch magic number.
    case bigInt([UInt8])
    case float(Double)
    /// A `str`, as the UTF-8 bytes the pickle holds (decoded on demand: NumPy buffers pickled at
    /// protocol 2 arrive as hundreds of MB of latin-1 text that is never needed as a String).
    case string([UInt8])
    /// A Python 2 `str` (BINSTRING): text for names, bytes for NumPy buffers, read as latin-1.
    case pyString([UInt8])
    case bytes([UInt8])
    /// A tuple and how deeply tuples nest inside it (bounded, so walking and freeing never recurse far).
    case tuple([PickleValue], depth: Int)
    case list(PickleList)
    case dict(PickleDict)
    /// An allowlisted global (`module`, `name`), e.g. a storage type or a rebuild function.
    case global(String, String)
    /// A storage named by a persistent id, resolved by the container format.
    case storage(StorageReference)
    /// A strided view of a storage (`torch._utils._rebuild_tensor_v2`).
    case tensor(TensorReference)
    /// A NumPy array, filled in by BUILD.
    case ndarray(NDArrayBox)
    /// A NumPy dtype, its byte order set by BUILD.
    case dtype(NumpyDTypeBox)

    /// A short description of the kind, for errors.
    var kind: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int, .bigInt: return "int"
        case .float: return "float"
        case .string, .pyString: return "str"
        case .bytes: return "bytes"
        case .tuple: return "tuple"
        case .list: return "list"
        case .dict: return "dict"
        case .global(let m, let n): return "global \(m).\(n)"
        case .storage: return "storage"
        case .tensor: return "tensor"
        case .ndarray: return "ndarray"
        case .dtype: return "dtype"
        }
    }

    /// Text of a `str` (a Python 2 `str` read as latin-1), else nil.
    var text: String? {
        switch self {
        case .string(let b): return String(validating: b, as: UTF8.self)
        case .pyString(let b): return String(b.map { Character(Unicode.Scalar($0)) })
        default: return nil
        }
    }

    /// Raw bytes of `bytes` or a Python 2 `str`, else nil.
    var rawBytes: [UInt8]? {
        switch self {
        case .bytes(let b), .pyString(let b): return b
        default: return nil
        }
    }

    /// The value of an int (or bool, as Python treats it), else nil.
    var integer: Int64? {
        switch self {
        case .int(let v): return v
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }

    /// Elements of a tuple or list, else nil.
    var elements: [PickleValue]? {
        switch self {
        case .tuple(let t, _): return t
        case .list(let l): return l.items
        default: return nil
        }
    }
}

/// A mutable list (APPEND changes it after it was memoised).
public final class PickleList {
    var items: [PickleValue] = []
}

/// A mutable dict in insertion order (Python dicts and OrderedDicts alike).
public final class PickleDict {
    var entries: [(key: PickleValue, value: PickleValue)] = []

    /// The value under the string key `key`.
    subscript(key: String) -> PickleValue? {
        entries.last(where: { $0.key.text == key })?.value
    }
}

/// The element types of PyTorch storages and NumPy arrays that hold weights.
public enum WeightDType: String, Sendable {
    case float32, float16, bfloat16, float64, int64, int32, int16, int8, uint8, bool

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .float64, .int64: return 8
        case .float32, .int32: return 4
        case .float16, .bfloat16, .int16: return 2
        case .int8, .uint8, .bool: return 1
        }
    }

    /// The dtype of a `torch.<Name>Storage` global.
    init?(torchStorage name: String) {
        switch name {
        case "FloatStorage": self = .float32
        case "HalfStorage": self = .float16
        case "BFloat16Storage": self = .bfloat16
        case "DoubleStorage": self = .float64
        case "LongStorage": self = .int64
        case "IntStorage": self = .int32
        case "ShortStorage": self = .int16
        case "CharStorage": self = .int8
        case "ByteStorage": self = .uint8
        case "BoolStorage": self = .bool
        default: return nil
        }
    }

    /// The dtype of a NumPy type string without its byte order (`f4`, `i8`, `?`, …).
    init?(numpy code: String) {
        switch code {
        case "f4": self = .float32
        case "f2": self = .float16
        case "f8": self = .float64
        case "i8": self = .int64
        case "i4": self = .int32
        case "i2": self = .int16
        case "i1": self = .int8
        case "u1": self = .uint8
        case "b1", "?": self = .bool
        default: return nil
        }
    }
}

/// A storage named by a persistent id: where its bytes are, its dtype and element count.
public struct StorageReference {
    /// The storage's key (`data/<key>` in a zip checkpoint).
    let key: String
    let dtype: WeightDType
    let count: Int
}

/// A strided view of a storage, as `_rebuild_tensor_v2` describes it (offsets and strides in elements).
public struct TensorReference {
    let storage: StorageReference
    let offset: Int
    let shape: [Int]
    let strides: [Int]
}

/// A NumPy dtype under construction: the type code from its constructor, the byte order from BUILD.
public final class NumpyDTypeBox {
    let code: String
    var byteOrder: String = "|"
    init(code: String) { self.code = code }
}

/// A NumPy array under construction (`_reconstruct` makes it empty, BUILD fills it).
public final class NDArrayBox {
    var shape: [Int] = []
    var dtype: NumpyDTypeBox?
    var fortranOrder = false
    var data: [UInt8] = []
    var built = false
}
