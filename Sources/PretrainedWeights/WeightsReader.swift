import Foundation

/// How a weights file is laid out.
public enum WeightsFormat: String, Sendable {
    /// `torch.save` since PyTorch 1.6: a zip of `data.pkl` and one member per storage.
    case pytorchZip = "PyTorch zip"
    /// `torch.save(..., _use_new_zipfile_serialization=False)` and PyTorch < 1.6: pickles in a row,
    /// then the raw storages (torchvision's older model-zoo files).
    case pytorchLegacy = "PyTorch legacy"
    /// A pickled dict of NumPy arrays: detectron2 model-zoo `.pkl` files and Caffe2 `R-50.pkl`.
    case numpyPickle = "pickle of NumPy arrays"
}

/// One tensor of an imported state dict, converted to float32 (`shape` row-major).
public struct ImportedTensor: Sendable {
    /// The state-dict name (after detectron2's rename for Caffe2 files).
    public let name: String
    /// Shape, e.g. `[64, 3, 7, 7]`; `[]` for a scalar.
    public let shape: [Int]
    /// The dtype stored in the file.
    public let dtype: WeightDType
    /// Values in row-major order.
    public let values: [Float]
}

/// The state dict found in a `.pth` / `.pkl` file, with where it was found.
public struct ImportedWeights: Sendable {
    /// The file read.
    public let file: String
    /// Its container format.
    public let format: WeightsFormat
    /// The wrapper key the state dict sat under (`model`, `state_dict`, `blobs`), nil at the root.
    public let wrapperKey: String?
    /// Whether names were renamed from Caffe2's (`res2_0_branch2a_w`) to detectron2's.
    public let renamedFromCaffe2: Bool
    /// The tensors in file order.
    public let tensors: [ImportedTensor]
    /// State-dict entries that are not tensors (name and Python kind), left out.
    public let skipped: [(name: String, kind: String)]
    /// The other top-level keys of a wrapper (`optimizer`, `iteration`, `meta`, …), left out.
    public let otherKeys: [String]
}

/// Reads PyTorch (`.pth`, zip and legacy) and pickled NumPy (`.pkl`) weight files safely: the
/// restricted unpickler builds nothing but data, every size is checked against the file, and
/// each problem is a `WeightsError` naming the file.
public enum WeightsReader {
    /// The legacy format's first pickle: this number (PyTorch's `MAGIC_NUMBER`).
    static let legacyMagic: [UInt8] = [0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]

    /// Whether the bytes at the start of `path` are a zip archive or a pickle (not HDF5).
    public static func isPickleOrZip(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        let head = [UInt8]((try? handle.read(upToCount: 4)) ?? Data())
        // Pickles start with PROTO (0x80) at protocols 2–5, or with MARK / EMPTY_DICT at 0–1.
        return ZipArchive.looksLikeZip(head) || head.first == 0x80 || head.first == 0x28 || head.first == 0x7D
    }

    /// The state dict of the weights file at `path`.
    public static func read(_ path: String) throws -> ImportedWeights {
        let bytes: [UInt8]
        do { bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe)) } catch {
            throw WeightsError(file: path, .io("cannot read: \(error.localizedDescription)"))
        }
        return try read(bytes: bytes, file: path)
    }

    /// The state dict of a weights file already in memory (`file` names it in errors).
    public static func read(bytes: [UInt8], file: String) throws -> ImportedWeights {
        if ZipArchive.looksLikeZip(bytes) { return try readZip(bytes, file) }
        // PyTorch before 0.1.10 wrote a tar archive ("ustar" at offset 257).
        if bytes.count > 262, Array(bytes[257..<262]) == Array("ustar".utf8) {
            throw WeightsError(file: file, .unsupported("the tar format of PyTorch < 0.1.10; load it in PyTorch and torch.save it again"))
        }
        return try readPickle(bytes, file)
    }

    // MARK: formats

    private static func readZip(_ bytes: [UInt8], _ path: String) throws -> ImportedWeights {
        let zip = try ZipArchive(bytes: bytes, file: path)
        guard let pickleName = zip.names.first(where: { $0.hasSuffix("data.pkl") && $0.dropLast("data.pkl".count).filter({ $0 == "/" }).count <= 1 }) else {
            throw WeightsError(file: path, .noStateDict("a zip archive without <name>/data.pkl (not written by torch.save)"))
        }
        let prefix = String(pickleName.dropLast("data.pkl".count))
        var bigEndian = false
        if zip.entries[prefix + "byteorder"] != nil {
            let order = String(decoding: try zip.data(prefix + "byteorder"), as: UTF8.self)
            guard order == "little" || order == "big" else { throw WeightsError(file: path, .malformed("byteorder member says '\(order.prefix(20))'")) }
            bigEndian = order == "big"
        }
        // A storage used by one tensor is read for it and dropped after; one shared by several
        // (tied weights, views) is read once and kept until its last use.
        var cache: [String: [UInt8]] = [:], remaining: [String: Int] = [:]
        let storage: (StorageReference) throws -> [UInt8] = { ref in
            if remaining[ref.key] == nil { remaining[ref.key] = 0 }
            let bytes = try cache[ref.key] ?? zip.data(prefix + "data/" + ref.key)
            remaining[ref.key]! -= 1
            if remaining[ref.key]! > 0 { cache[ref.key] = bytes } else { cache[ref.key] = nil }
            return bytes
        }
        var unpickler = Unpickler(bytes: try zip.data(pickleName), file: path, persistentLoad: { try storageReference($0, path) })
        defer { unpickler.release() }
        let root = try unpickler.load()
        return try extract(root, path: path, format: .pytorchZip, bigEndian: bigEndian, storage: storage,
                           uses: { remaining = $0 })
    }

    private static func readPickle(_ bytes: [UInt8], _ path: String) throws -> ImportedWeights {
        // A legacy PyTorch file starts with a pickled magic number; anything else is one pickle.
        var first = Unpickler(bytes: bytes, file: path, persistentLoad: nil)
        defer { first.release() }
        let head = try first.load()
        if case .bigInt(let b) = head, b == legacyMagic { return try readLegacy(bytes, from: first.offset, path) }
        return try extract(head, path: path, format: .numpyPickle, bigEndian: false, storage: { _ in [] })
    }

    private static func readLegacy(_ bytes: [UInt8], from start: Int, _ path: String) throws -> ImportedWeights {
        var offset = start
        func next(_ load: Unpickler.PersistentLoad?) throws -> (PickleValue, Unpickler) {
            var u = Unpickler(bytes: bytes, offset: offset, file: path, persistentLoad: load)
            do {
                let v = try u.load()
                offset = u.offset
                return (v, u)
            } catch {
                u.release()
                throw error
            }
        }
        var (version, u1) = try next(nil)
        u1.release()
        guard version.integer == 1001 else { throw WeightsError(file: path, .unsupported("legacy PyTorch protocol \(version.kind) \(version.integer ?? -1)")) }
        var (info, u2) = try next(nil)
        defer { u2.release() }
        if case .dict(let d) = info, d["little_endian"]?.integer == 0 {
            throw WeightsError(file: path, .unsupported("a big-endian legacy file"))
        }
        var references: [String: StorageReference] = [:]
        var (root, u3) = try next({ pid in
            let v = try storageReference(pid, path)
            if case .storage(let ref) = v { references[ref.key] = ref }
            return v
        })
        defer { u3.release() }
        var (keysValue, u4) = try next(nil)
        defer { u4.release() }
        guard let keys = keysValue.elements?.map(\.text), keys.allSatisfy({ $0 != nil }) else {
            throw WeightsError(file: path, .malformed("the legacy storage-key list is a \(keysValue.kind)"))
        }
        // Each storage: an 8-byte little-endian element count, then the elements.
        let reader = ByteReader(bytes: bytes, file: path)
        var storages: [String: [UInt8]] = [:]
        for case let key? in keys {
            guard let ref = references[key] else { throw WeightsError(file: path, .malformed("storage '\(key)' is listed but never used")) }
            let count = try reader.u64(offset, "legacy storage '\(key)' header")
            guard count == ref.count else { throw WeightsError(file: path, .malformed("storage '\(key)' holds \(count) elements, its tensors say \(ref.count)")) }
            let (n, o) = count.multipliedReportingOverflow(by: ref.dtype.size)
            guard !o else { throw WeightsError(file: path, .tooLarge("storage '\(key)' of \(count) elements")) }
            storages[key] = Array(try reader.slice(offset + 8, n, "legacy storage '\(key)'"))
            offset += 8 + n
        }
        return try extract(root, path: path, format: .pytorchLegacy, bigEndian: false, storage: { ref in
            guard let s = storages[ref.key] else { throw WeightsError(file: path, .truncated("storage '\(ref.key)' is not in the file")) }
            return s
        })
    }

    /// `('storage', torch.<T>Storage, key, location, numel[, view_metadata])` → a storage.
    private static func storageReference(_ pid: PickleValue, _ path: String) throws -> PickleValue {
        guard case .tuple(let t, _) = pid, t.count >= 5, t[0].text == "storage",
              case .global("torch", let typeName) = t[1], let key = t[2].text, let count = t[4].integer else {
            throw WeightsError(file: path, .malformed("a persistent id that is not a storage reference (\(pid.kind))"))
        }
        guard let dtype = WeightDType(torchStorage: typeName) else { throw WeightsError(file: path, .unsupported("storage type torch.\(typeName)")) }
        guard count >= 0, count <= 1 << 34 else { throw WeightsError(file: path, .tooLarge("storage '\(key)' claims \(count) elements")) }
        if t.count > 5, case .tuple = t[5] { throw WeightsError(file: path, .unsupported("legacy storage views (storage '\(key)')")) }
        guard !key.contains("/"), !key.isEmpty else { throw WeightsError(file: path, .malformed("storage key '\(key)'")) }
        return .storage(StorageReference(key: key, dtype: dtype, count: Int(count)))
    }

    // MARK: the state dict

    private static func extract(_ root: PickleValue, path: String, format: WeightsFormat, bigEndian: Bool,
                                storage: (StorageReference) throws -> [UInt8],
                                uses: ([String: Int]) -> Void = { _ in }) throws -> ImportedWeights {
        guard case .dict(let top) = root else {
            throw WeightsError(file: path, .noStateDict("the pickle holds a \(root.kind), not a dict of tensors"))
        }
        // detectron2 / AdelaiDet save {"model": …}, mmseg {"state_dict": …, "meta": …}, Caffe2
        // detection models {"blobs": …}; ImageNet files are the state dict itself.
        var dict = top, wrapper: String?
        for key in ["model", "state_dict", "blobs"] {
            if case .dict(let inner)? = top[key] { dict = inner; wrapper = key; break }
        }
        let otherKeys = wrapper == nil ? [] : top.entries.compactMap(\.key.text).filter { $0 != wrapper }
        // A pickle of NumPy arrays without detectron2's "__author__" is Caffe2's: detectron2
        // renames its blobs and drops the solver's momentum blobs when it loads one.
        let caffe2 = format == .numpyPickle && !(top["__author__"] != nil && top["model"] != nil)
        // The elements a file may make us produce: what its distinct storages and arrays hold
        // (plus slack for small expanded views). A pickle can name one storage under any number of
        // keys; without this budget a small file could demand terabytes.
        var storageUses: [String: Int] = [:], distinct = 0, arrays = Set<ObjectIdentifier>()
        for (_, value) in dict.entries {
            switch value {
            case .tensor(let ref):
                if storageUses[ref.storage.key] == nil { distinct += ref.storage.count }
                storageUses[ref.storage.key, default: 0] += 1
            case .ndarray(let a):
                if arrays.insert(ObjectIdentifier(a)).inserted { distinct += a.data.count }
            default: break
            }
        }
        uses(storageUses)
        var budget = distinct + (1 << 24)
        func charge(_ n: Int, _ name: String) throws {
            budget -= n
            guard budget >= 0 else {
                throw WeightsError(file: path, .tooLarge("'\(name)': the state dict reads its storages for more elements than they hold"))
            }
        }
        var tensors: [ImportedTensor] = [], skipped: [(String, String)] = [], seen = Set<String>()
        for (keyValue, value) in dict.entries {
            guard let raw = keyValue.text else { throw WeightsError(file: path, .malformed("a state-dict key is a \(keyValue.kind), not a name")) }
            if caffe2 && raw.hasSuffix("_momentum") { continue }
            let name = caffe2 ? WeightNames.detectron2Name(caffe2: raw) : raw
            guard seen.insert(name).inserted else { throw WeightsError(file: path, .malformed("'\(name)' appears twice")) }
            switch value {
            case .tensor(let ref):
                try charge(max(ref.shape.reduce(1, *), span(ref) + 1), name)
                let bytes = try storage(ref.storage)
                tensors.append(try materialize(ref, bytes, name: name, path: path, bigEndian: bigEndian))
            case .ndarray(let a):
                guard a.built, let dt = a.dtype, let type = WeightDType(numpy: dt.code) else {
                    throw WeightsError(file: path, .malformed("array '\(raw)' was never filled in"))
                }
                let count = a.shape.reduce(1, *)
                try charge(count, name)
                var values = decodeElements(a.data[...], type, count: count, bigEndian: dt.byteOrder == ">")
                if a.fortranOrder && a.shape.count > 1 { values = fortranToRowMajor(values, a.shape) }
                tensors.append(ImportedTensor(name: name, shape: a.shape, dtype: type, values: values))
            default:
                skipped.append((name, value.kind))
            }
        }
        guard !tensors.isEmpty else {
            throw WeightsError(file: path, .noStateDict("no tensors\(wrapper.map { " under '\($0)'" } ?? ""); top-level keys: " +
                                                        top.entries.compactMap(\.key.text).prefix(8).joined(separator: ", ")))
        }
        return ImportedWeights(file: path, format: format, wrapperKey: wrapper, renamedFromCaffe2: caffe2, tensors: tensors,
                               skipped: skipped, otherKeys: otherKeys)
    }

    /// The elements of a strided view, row-major.
    private static func materialize(_ ref: TensorReference, _ bytes: [UInt8], name: String, path: String, bigEndian: Bool) throws -> ImportedTensor {
        let size = ref.storage.dtype.size
        guard bytes.count / size >= ref.storage.count else {
            throw WeightsError(file: path, .truncated("storage '\(ref.storage.key)' of '\(name)' has \(bytes.count) bytes, its \(ref.storage.count) \(ref.storage.dtype.rawValue) elements need \(ref.storage.count * size)"))
        }
        let count = ref.shape.reduce(1, *)
        guard count > 0 else { return ImportedTensor(name: name, shape: ref.shape, dtype: ref.storage.dtype, values: []) }
        // Contiguous row-major (the usual case): one decode of the span.
        var expected = 1, contiguous = true
        for (n, s) in zip(ref.shape, ref.strides).reversed() where n > 1 {
            if s != expected { contiguous = false }
            expected *= n
        }
        if contiguous {
            let start = ref.offset * size
            return ImportedTensor(name: name, shape: ref.shape, dtype: ref.storage.dtype,
                                  values: decodeElements(bytes[start..<(start + count * size)], ref.storage.dtype, count: count, bigEndian: bigEndian))
        }
        // A general view (offsets were bounds-checked when the tensor was built): decode the
        // span it touches, then gather.
        let last = ref.offset + span(ref)
        let all = decodeElements(bytes[(ref.offset * size)..<((last + 1) * size)], ref.storage.dtype, count: last + 1 - ref.offset, bigEndian: bigEndian)
        var values = [Float](repeating: 0, count: count)
        var index = [Int](repeating: 0, count: ref.shape.count)
        for i in 0..<count {
            var at = 0
            for d in 0..<index.count { at += index[d] * ref.strides[d] }
            values[i] = all[at]
            var d = index.count - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < ref.shape[d] { break }
                index[d] = 0; d -= 1
            }
        }
        return ImportedTensor(name: name, shape: ref.shape, dtype: ref.storage.dtype, values: values)
    }

    /// How far past its offset a view reaches in its storage (Σ (size − 1)·stride; checked for
    /// overflow and against the storage when the view was built).
    private static func span(_ ref: TensorReference) -> Int {
        guard !ref.shape.contains(0) else { return 0 }
        return zip(ref.shape, ref.strides).reduce(0) { $0 + ($1.0 - 1) * $1.1 }
    }

    /// Column-major (Fortran) values of `shape` in row-major order.
    private static func fortranToRowMajor(_ values: [Float], _ shape: [Int]) -> [Float] {
        var out = [Float](repeating: 0, count: values.count)
        var index = [Int](repeating: 0, count: shape.count)
        for i in 0..<values.count {
            var at = 0, stride = 1
            for d in 0..<shape.count { at += index[d] * stride; stride *= shape[d] }
            out[i] = values[at]
            var d = shape.count - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < shape[d] { break }
                index[d] = 0; d -= 1
            }
        }
        return out
    }
}
