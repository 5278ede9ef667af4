internal import CHDF5
import PercepCore

extension HDF5File {
    /// Writes `tensor` as a float32 dataset of the same shape at `path` (a 0-D tensor becomes a
    /// scalar dataset), creating missing intermediate groups.
    ///
    /// An existing dataset at `path` is replaced: its link is removed and a new dataset created,
    /// so the shape may change (HDF5 does not reclaim the old dataset's space in the file; write
    /// checkpoints to a fresh file). An existing group at `path` is an error, not replaced.
    public func write(_ tensor: Tensor, at path: String) throws {
        try writeElements(UnsafeRawPointer(tensor.data), count: tensor.count, shape: tensor.shape, type: chdf5_native_float(), at: path)
    }

    /// Writes integers as an int32 dataset of shape `shape` at `path` (labels, indices, sizes:
    /// what h5py reads back as `int32`), creating missing intermediate groups.
    public func write(int32 values: [Int32], shape: [Int], at path: String) throws {
        try writeRaw(values, shape: shape, type: chdf5_native_int32(), at: path)
    }

    /// Writes bytes as a uint8 dataset of shape `shape` at `path` (binary masks).
    public func write(uint8 values: [UInt8], shape: [Int], at path: String) throws {
        try writeRaw(values, shape: shape, type: chdf5_native_uint8(), at: path)
    }

    /// Writes 16-bit values as a uint16 dataset (label maps, depth PNG values).
    public func write(uint16 values: [UInt16], shape: [Int], at path: String, gzipLevel: Int? = nil) throws {
        try writeRaw(values, shape: shape, type: chdf5_native_uint16(), at: path, gzipLevel: gzipLevel)
    }

    /// Writes bytes as a uint8 dataset, stored in chunks of one first-axis slice each and
    /// deflate-compressed at `gzipLevel` (0–9): how image stacks such as NYU's are stored.
    public func write(uint8 values: [UInt8], shape: [Int], at path: String, gzipLevel: Int) throws {
        try writeRaw(values, shape: shape, type: chdf5_native_uint8(), at: path, gzipLevel: gzipLevel)
    }

    /// Writes `tensor` as float32, chunked per first-axis slice and deflate-compressed.
    public func write(_ tensor: Tensor, at path: String, gzipLevel: Int) throws {
        try writeElements(UnsafeRawPointer(tensor.data), count: tensor.count, shape: tensor.shape, type: chdf5_native_float(), at: path,
                          gzipLevel: gzipLevel)
    }

    private func writeRaw<T>(_ values: [T], shape: [Int], type: hid_t, at path: String, gzipLevel: Int? = nil) throws {
        try values.withUnsafeBytes { raw in
            try writeElements(raw.baseAddress, count: values.count, shape: shape, type: type, at: path, gzipLevel: gzipLevel)
        }
    }

    /// Creates (or replaces) the dataset at `path` of `shape` and element `type` and writes
    /// `count` elements from `bytes`.
    private func writeElements(_ bytes: UnsafeRawPointer?, count: Int, shape: [Int], type: hid_t, at path: String,
                               gzipLevel: Int? = nil) throws {
        let op = try begin("writing dataset", path)
        guard isWritable else { throw op.error("the file is open read-only") }
        guard shape.allSatisfy({ $0 >= 0 }), shape.reduce(1, *) == count else {
            throw op.error("\(count) values do not fill shape \(shape)")
        }
        if try exists(path) {
            let old = try openObject(path, ofType: H5I_DATASET, op)
            H5Oclose(old)
            try op.ok(H5Ldelete(fileID, path, chdf5_p_default()), "H5Ldelete")
        }
        let space = try makeDataspace(shape.map { UInt64($0) }, op)
        defer { H5Sclose(space) }
        let lcpl = try op.id(H5Pcreate(chdf5_p_link_create()), "H5Pcreate")
        defer { H5Pclose(lcpl) }
        try op.ok(H5Pset_create_intermediate_group(lcpl, 1), "H5Pset_create_intermediate_group")
        try op.ok(H5Pset_char_encoding(lcpl, H5T_CSET_UTF8), "H5Pset_char_encoding")
        let dcpl = try op.id(H5Pcreate(chdf5_p_dataset_create()), "H5Pcreate")
        defer { H5Pclose(dcpl) }
        if let gzipLevel, !shape.isEmpty, count > 0 {
            guard (0...9).contains(gzipLevel) else { throw op.error("gzip level \(gzipLevel) is not in 0…9") }
            var chunk = shape.map { hsize_t($0) }
            chunk[0] = 1
            try op.ok(H5Pset_chunk(dcpl, Int32(shape.count), chunk), "H5Pset_chunk")
            try op.ok(H5Pset_deflate(dcpl, UInt32(gzipLevel)), "H5Pset_deflate")
        }
        let dataset = try op.id(H5Dcreate2(fileID, path, type, space, lcpl, dcpl, chdf5_p_default()), "H5Dcreate2")
        defer { H5Dclose(dataset) }
        // HDF5 rejects a null buffer even for zero elements; an empty dataset needs no write.
        if count > 0 {
            try op.ok(H5Dwrite(dataset, type, chdf5_s_all(), chdf5_s_all(), chdf5_p_default(), bytes), "H5Dwrite")
        }
    }

    /// Reads an integer dataset of any width and sign (converted by HDF5 to int64) with its shape.
    /// A floating-point or other dataset throws, naming its type.
    public func readIntegers(at path: String) throws -> (values: [Int64], shape: [Int]) {
        let op = try begin("reading dataset", path)
        let dataset = try openObject(path, ofType: H5I_DATASET, op)
        defer { H5Oclose(dataset) }
        let type = try op.id(H5Dget_type(dataset), "H5Dget_type")
        defer { H5Tclose(type) }
        guard H5Tget_class(type) == H5T_INTEGER else {
            throw op.error("element type is \(HDF5.describe(type)), expected integers")
        }
        let shape = try datasetShape(dataset, op)
        try checkClaimedSize(dataset, shape: shape, elementBytes: 8, op)
        var values = [Int64](repeating: 0, count: shape.reduce(1, *))
        if !values.isEmpty {
            try values.withUnsafeMutableBytes { raw in
                try op.ok(H5Dread(dataset, chdf5_native_int64(), chdf5_s_all(), chdf5_s_all(), chdf5_p_default(), raw.baseAddress), "H5Dread")
            }
        }
        return (values, shape)
    }

    /// Reads the dataset at `path` into a new float32 tensor of the dataset's shape (a scalar
    /// dataset gives a 0-D tensor).
    ///
    /// Any floating-point dataset is accepted and converted to float32 by HDF5 (float64 weights
    /// written by NumPy defaults, float16 halves). Integer, string and other datasets throw
    /// rather than being converted, because silently turning e.g. an int64 counter or a label
    /// map into floats hides a mistake in the file layout; so does a null (element-less) dataspace.
    public func readTensor(at path: String) throws -> Tensor {
        let op = try begin("reading dataset", path)
        let dataset = try openObject(path, ofType: H5I_DATASET, op)
        defer { H5Oclose(dataset) }
        let type = try op.id(H5Dget_type(dataset), "H5Dget_type")
        defer { H5Tclose(type) }
        guard H5Tget_class(type) == H5T_FLOAT else {
            throw op.error("element type is \(HDF5.describe(type)), expected floating point (float32 or float64)")
        }
        let shape = try datasetShape(dataset, op)
        try checkClaimedSize(dataset, shape: shape, elementBytes: 4, op)
        let tensor = Tensor(uninitialized: shape)
        if tensor.count > 0 {
            try op.ok(H5Dread(dataset, chdf5_native_float(), chdf5_s_all(), chdf5_s_all(), chdf5_p_default(),
                              tensor.data), "H5Dread")
        }
        return tensor
    }

    /// Reads `dataset[index, ...]` of a numeric dataset of any type, converted to float32 by
    /// HDF5 (uint8 images, uint16 labels, float depths): one image of a stack such as NYU's
    /// `images` (N, 3, 640, 480) without reading the others. Returns the values row-major and the
    /// slice's shape (the dataset's shape without its first axis).
    public func readSlice(at path: String, index: Int) throws -> (values: [Float], shape: [Int]) {
        let op = try begin("reading a slice of dataset", path)
        let dataset = try openObject(path, ofType: H5I_DATASET, op)
        defer { H5Oclose(dataset) }
        let type = try op.id(H5Dget_type(dataset), "H5Dget_type")
        defer { H5Tclose(type) }
        let kind = H5Tget_class(type)
        guard kind == H5T_INTEGER || kind == H5T_FLOAT else {
            throw op.error("element type is \(HDF5.describe(type)), expected numbers")
        }
        let shape = try datasetShape(dataset, op)
        guard shape.count >= 1, index >= 0, index < shape[0] else {
            throw op.error("index \(index) is outside the first axis of shape \(shape)")
        }
        let sliceShape = Array(shape.dropFirst())
        var count = 1
        for d in sliceShape {
            let (c, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, c <= 1 << 28 else { throw op.error("a slice of shape \(sliceShape) is larger than 2^28 elements") }
            count = c
        }
        var values = [Float](repeating: 0, count: count)
        guard count > 0 else { return (values, sliceShape) }
        let fileSpace = try op.id(H5Dget_space(dataset), "H5Dget_space")
        defer { H5Sclose(fileSpace) }
        var start = [hsize_t](repeating: 0, count: shape.count), extent = shape.map { hsize_t($0) }
        start[0] = hsize_t(index); extent[0] = 1
        try op.ok(H5Sselect_hyperslab(fileSpace, H5S_SELECT_SET, start, nil, extent, nil), "H5Sselect_hyperslab")
        var memoryDims = [hsize_t(count)]
        let memorySpace = try op.id(H5Screate_simple(1, &memoryDims, nil), "H5Screate_simple")
        defer { H5Sclose(memorySpace) }
        try values.withUnsafeMutableBytes { raw in
            try op.ok(H5Dread(dataset, chdf5_native_float(), memorySpace, fileSpace, chdf5_p_default(), raw.baseAddress), "H5Dread")
        }
        return (values, sliceShape)
    }

    /// The shape of the dataset at `path` (`[]` for a scalar dataset), without reading its data.
    public func shape(at path: String) throws -> [Int] {
        let op = try begin("reading dataset shape", path)
        let dataset = try openObject(path, ofType: H5I_DATASET, op)
        defer { H5Oclose(dataset) }
        return try datasetShape(dataset, op)
    }

    /// A dataset may claim any shape in its header and store far fewer bytes (unwritten chunks read
    /// as the fill value, compression): a 2·10⁹-element dataset fits in a few kilobytes of file.
    /// Before allocating for it, the claimed size is checked against the bytes the file actually
    /// stores for it, allowing `maxCompressionRatio` (gzip of real data stays far below it), and
    /// against the address space, so a hostile file is an error naming the dataset instead of an
    /// allocation that kills the process.
    func checkClaimedSize(_ dataset: hid_t, shape: [Int], elementBytes: Int, _ op: HDF5Call) throws {
        var elements = 1
        for d in shape {
            let (product, overflow) = elements.multipliedReportingOverflow(by: d)
            guard !overflow else { throw op.error("dataset shape \(shape) overflows the element count") }
            elements = product
        }
        let (bytes, overflow) = elements.multipliedReportingOverflow(by: elementBytes)
        guard !overflow, bytes <= HDF5File.maxDatasetBytes else {
            throw op.error("dataset shape \(shape) claims more than the \(HDF5File.maxDatasetBytes >> 30) GiB a dataset may hold here")
        }
        let stored = Int(clamping: H5Dget_storage_size(dataset))
        if bytes > Swift.max(1 << 20, stored.multipliedReportingOverflow(by: HDF5File.maxCompressionRatio).partialValue) {
            throw op.error("dataset shape \(shape) (\(bytes) bytes) claims more than \(HDF5File.maxCompressionRatio)× the \(stored) bytes the file stores for it")
        }
    }

    private func datasetShape(_ dataset: hid_t, _ op: HDF5Call) throws -> [Int] {
        let space = try op.id(H5Dget_space(dataset), "H5Dget_space")
        defer { H5Sclose(space) }
        guard let dims = try HDF5.dimensions(of: space, op) else {
            throw op.error("dataset has a null dataspace (no elements and no shape)")
        }
        return try dims.map { d in
            guard let n = Int(exactly: d) else { throw op.error("a dimension of \(d) elements is beyond this reader") }
            return n
        }
    }

    /// A scalar dataspace for `[]`, a simple one otherwise.
    func makeDataspace(_ dims: [UInt64], _ op: HDF5Call) throws -> hid_t {
        if dims.isEmpty { return try op.id(H5Screate(H5S_SCALAR), "H5Screate") }
        return try op.id(H5Screate_simple(Int32(dims.count), dims, nil), "H5Screate_simple")
    }
}

extension HDF5 {
    /// The dimensions of a dataspace: `[]` for scalar, nil for a null dataspace.
    static func dimensions(of space: hid_t, _ op: HDF5Call) throws -> [UInt64]? {
        let kind = H5Sget_simple_extent_type(space)
        if kind == H5S_SCALAR { return [] }
        if kind == H5S_NULL { return nil }
        guard kind == H5S_SIMPLE else { throw op.fail("H5Sget_simple_extent_type") }
        let rank = H5Sget_simple_extent_ndims(space)
        guard rank >= 0 else { throw op.fail("H5Sget_simple_extent_ndims") }
        var dims = [UInt64](repeating: 0, count: Int(rank))
        guard H5Sget_simple_extent_dims(space, &dims, nil) >= 0 else { throw op.fail("H5Sget_simple_extent_dims") }
        return dims
    }

    /// A datatype in words for error messages, e.g. "64-bit signed integer" or "string".
    static func describe(_ type: hid_t) -> String {
        let bits = H5Tget_size(type) * 8
        switch H5Tget_class(type) {
        case H5T_INTEGER: return "\(bits)-bit \(H5Tget_sign(type) == H5T_SGN_NONE ? "unsigned" : "signed") integer"
        case H5T_FLOAT: return "\(bits)-bit float"
        case H5T_STRING: return "string"
        case H5T_BITFIELD: return "bitfield"
        case H5T_OPAQUE: return "opaque"
        case H5T_COMPOUND: return "compound"
        case H5T_REFERENCE: return "reference"
        case H5T_ENUM: return "enum (h5py stores booleans this way)"
        case H5T_VLEN: return "variable-length sequence"
        case H5T_ARRAY: return "array"
        default: return "unknown type"
        }
    }
}
