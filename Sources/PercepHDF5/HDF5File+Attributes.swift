internal import CHDF5

/// The value of an HDF5 attribute: the few kinds of metadata the project stores (file format
/// version, step counters, seeds, config text, loss weights).
///
/// Writing stores a string as a scalar variable-length UTF-8 string (what h5py writes for a
/// Python `str`), `int`/`uint` as a scalar 64-bit integer, `double` as a scalar float64 and
/// `ints`/`doubles` as 1-D arrays. Reading maps scalars to the scalar cases and 1-D arrays to the
/// array cases, so every case round-trips; see `HDF5File.attribute(_:on:)` for files from elsewhere.
public enum HDF5AttributeValue: Equatable, Sendable {
    /// A UTF-8 string.
    case string(String)
    /// A signed 64-bit integer (H5T_NATIVE_INT64).
    case int(Int64)
    /// A 1-D array of signed 64-bit integers.
    case ints([Int64])
    /// A 64-bit float.
    case double(Double)
    /// A 1-D array of 64-bit floats.
    case doubles([Double])
    /// An unsigned 64-bit integer (H5T_NATIVE_UINT64), e.g. a full-range RNG seed.
    case uint(UInt64)

    /// The string, if this is `.string`.
    public var stringValue: String? { if case .string(let v) = self { v } else { nil } }
    /// The integer, if this is `.int`.
    public var intValue: Int64? { if case .int(let v) = self { v } else { nil } }
    /// The integers, if this is `.ints`.
    public var intsValue: [Int64]? { if case .ints(let v) = self { v } else { nil } }
    /// The number, if this is `.double`.
    public var doubleValue: Double? { if case .double(let v) = self { v } else { nil } }
    /// The numbers, if this is `.doubles`.
    public var doublesValue: [Double]? { if case .doubles(let v) = self { v } else { nil } }
    /// The unsigned integer, if this is `.uint`.
    public var uintValue: UInt64? { if case .uint(let v) = self { v } else { nil } }
}

extension HDF5File {
    /// Sets attribute `name` on the object at `object` (the root group by default), replacing an
    /// existing attribute of that name whatever its type.
    ///
    /// Attributes live in the object's header, which limits them to about 64 KiB each in the
    /// file format h5py and this wrapper write by default: keep large arrays in datasets.
    public func setAttribute(_ name: String, _ value: HDF5AttributeValue, on object: String = "/") throws {
        let op = try begin("writing attribute '\(name)'", object)
        guard isWritable else { throw op.error("the file is open read-only") }
        guard try exists(object) else { throw op.error("no such object") }
        let dflt = chdf5_p_default()
        if try op.bool(H5Aexists_by_name(fileID, object, name, dflt), "H5Aexists_by_name") {
            try op.ok(H5Adelete_by_name(fileID, object, name, dflt), "H5Adelete_by_name")
        }

        // The memory type doubles as the file type: native types are the IEEE / two's-complement
        // little-endian types h5py reads as numpy float64, int64 and uint64.
        func create(_ type: hid_t, _ dims: [UInt64]) throws -> hid_t {
            let space = try makeDataspace(dims, op)
            defer { H5Sclose(space) }
            return try op.id(H5Acreate_by_name(fileID, object, name, type, space, dflt, dflt, dflt), "H5Acreate_by_name")
        }
        func write(_ type: hid_t, _ dims: [UInt64], _ buffer: UnsafeRawPointer?) throws {
            let attribute = try create(type, dims)
            defer { H5Aclose(attribute) }
            // A zero-length array has nothing to write, and HDF5 rejects a null buffer.
            if dims.first != 0, let buffer { try op.ok(H5Awrite(attribute, type, buffer), "H5Awrite") }
        }

        switch value {
        case .string(let string):
            let type = try variableStringType(cset: H5T_CSET_UTF8, op)
            defer { H5Tclose(type) }
            try string.withCString { chars in
                var pointer: UnsafePointer<CChar>? = chars
                try withUnsafePointer(to: &pointer) { try write(type, [], UnsafeRawPointer($0)) }
            }
        case .int(var v): try withUnsafePointer(to: &v) { try write(chdf5_native_int64(), [], $0) }
        case .uint(var v): try withUnsafePointer(to: &v) { try write(chdf5_native_uint64(), [], $0) }
        case .double(var v): try withUnsafePointer(to: &v) { try write(chdf5_native_double(), [], $0) }
        case .ints(let v):
            try v.withUnsafeBytes { try write(chdf5_native_int64(), [UInt64(v.count)], $0.baseAddress) }
        case .doubles(let v):
            try v.withUnsafeBytes { try write(chdf5_native_double(), [UInt64(v.count)], $0.baseAddress) }
        }
    }

    /// Reads attribute `name` of the object at `object` (the root group by default); nil when the
    /// object has no such attribute. A missing object throws.
    ///
    /// Besides what `setAttribute` writes, this reads what h5py and NumPy commonly write: fixed-
    /// length strings (NumPy `bytes_`, any padding) and 1-element string arrays as `.string`;
    /// integers of any width as `.int`/`.ints`, except a scalar unsigned 64-bit integer, which is
    /// `.uint`; float32/float64 as `.double`/`.doubles`. An element-less (null) dataspace reads as
    /// an empty array. Other types (booleans, compounds, string lists) and arrays of rank above 1
    /// throw, as does an unsigned 64-bit array holding a value above `Int64.max`.
    public func attribute(_ name: String, on object: String = "/") throws -> HDF5AttributeValue? {
        let op = try begin("reading attribute '\(name)'", object)
        guard try exists(object) else { throw op.error("no such object") }
        let dflt = chdf5_p_default()
        guard try op.bool(H5Aexists_by_name(fileID, object, name, dflt), "H5Aexists_by_name") else { return nil }
        let attribute = try op.id(H5Aopen_by_name(fileID, object, name, dflt, dflt), "H5Aopen_by_name")
        defer { H5Aclose(attribute) }
        let type = try op.id(H5Aget_type(attribute), "H5Aget_type")
        defer { H5Tclose(type) }
        let space = try op.id(H5Aget_space(attribute), "H5Aget_space")
        defer { H5Sclose(space) }

        // nil dims: a null dataspace, read as an empty array of the element type.
        let dims = try HDF5.dimensions(of: space, op)
        guard (dims?.count ?? 1) <= 1 else {
            throw op.error("attribute has rank \(dims!.count); only scalars and 1-D arrays are supported")
        }
        let isArray = dims?.count != 0
        let count = Int(dims.map { $0.first ?? 1 } ?? 0)

        func read<T>(_ memType: hid_t, _ zero: T) throws -> [T] {
            var values = [T](repeating: zero, count: count)
            if count > 0 {
                try values.withUnsafeMutableBytes { try op.ok(H5Aread(attribute, memType, $0.baseAddress), "H5Aread") }
            }
            return values
        }

        switch H5Tget_class(type) {
        case H5T_STRING:
            guard count == 1 else { throw op.error("attribute is an array of \(count) strings; only single strings are supported") }
            return .string(try readString(attribute, type, op))
        case H5T_INTEGER:
            let unsigned64 = H5Tget_sign(type) == H5T_SGN_NONE && H5Tget_size(type) == 8
            if unsigned64 {
                let values = try read(chdf5_native_uint64(), UInt64(0))
                if !isArray { return .uint(values[0]) }
                guard values.allSatisfy({ $0 <= UInt64(Int64.max) }) else {
                    throw op.error("unsigned 64-bit array holds values above Int64.max")
                }
                return .ints(values.map { Int64($0) })
            }
            let values = try read(chdf5_native_int64(), Int64(0))
            return isArray ? .ints(values) : .int(values[0])
        case H5T_FLOAT:
            let values = try read(chdf5_native_double(), 0.0)
            return isArray ? .doubles(values) : .double(values[0])
        default:
            throw op.error("attribute type \(HDF5.describe(type)) is not supported")
        }
    }

    /// Reads a one-element string attribute, variable- or fixed-length.
    private func readString(_ attribute: hid_t, _ fileType: hid_t, _ op: HDF5Call) throws -> String {
        if try op.bool(H5Tis_variable_str(fileType), "H5Tis_variable_str") {
            let memType = try variableStringType(cset: H5Tget_cset(fileType), op)
            defer { H5Tclose(memType) }
            var pointer: UnsafeMutablePointer<CChar>? = nil
            try op.ok(H5Aread(attribute, memType, &pointer), "H5Aread")
            // The library allocated the string; H5free_memory frees it with the library's allocator.
            defer { if let pointer { H5free_memory(pointer) } }
            return pointer.map { String(cString: $0) } ?? ""
        }
        let size = H5Tget_size(fileType)
        guard size > 0 else { throw op.fail("H5Tget_size") }
        let memType = try op.id(H5Tcopy(fileType), "H5Tcopy")
        defer { H5Tclose(memType) }
        var bytes = [UInt8](repeating: 0, count: size)
        try bytes.withUnsafeMutableBytes { try op.ok(H5Aread(attribute, memType, $0.baseAddress), "H5Aread") }
        // Null-terminated and null-padded strings end at the first NUL; space-padded ones lose
        // their trailing spaces.
        if H5Tget_strpad(fileType) == H5T_STR_SPACEPAD {
            while bytes.last == UInt8(ascii: " ") { bytes.removeLast() }
        } else if let end = bytes.firstIndex(of: 0) {
            bytes.removeSubrange(end...)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A variable-length C string datatype with character set `cset`.
    private func variableStringType(cset: H5T_cset_t, _ op: HDF5Call) throws -> hid_t {
        let type = try op.id(H5Tcopy(chdf5_c_s1()), "H5Tcopy")
        do {
            try op.ok(H5Tset_size(type, chdf5_variable()), "H5Tset_size")
            try op.ok(H5Tset_cset(type, cset), "H5Tset_cset")
        } catch {
            H5Tclose(type)
            throw error
        }
        return type
    }
}
