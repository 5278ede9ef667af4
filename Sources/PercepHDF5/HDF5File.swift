internal import CHDF5

/// An open HDF5 file: float32 tensors as datasets, small metadata as attributes.
///
/// This is the project's one door to HDF5 (the C library is imported by this target only). It
/// reads loss-network weight files and writes training checkpoints laid out so that h5py loads a
/// state dict as `{k: f['model'][k][()] for k in f['model']}`.
///
/// Object paths are HDF5 paths from the root: `"model/layer1.0.conv1.weight"` and
/// `"/model/layer1.0.conv1.weight"` name the same dataset, a dataset `layer1.0.conv1.weight` in
/// group `model` (dots are ordinary characters in HDF5 names; only `/` separates). Every handle
/// the wrapper opens is closed before the call returns, and the file itself is closed by `close()`
/// or when the object is deallocated, whichever comes first. An `HDF5File` is not meant to be
/// shared between threads.
public final class HDF5File {
    /// Path of the file on disk, as given when opening it.
    public let path: String
    /// Whether the file was opened for writing (`creating` or `updating`).
    public let isWritable: Bool
    /// HDF5 file identifier, or -1 once closed.
    var fileID: hid_t

    private enum Mode { case create, read, update }

    /// Largest ratio of a dataset's element bytes to the bytes the file stores for it that a read
    /// accepts (compressed data stays far below; unwritten chunks of a huge claimed shape do not).
    nonisolated(unsafe) public static var maxCompressionRatio = 1000

    /// Largest dataset a read allocates (16 GiB).
    nonisolated(unsafe) public static var maxDatasetBytes = 16 << 30

    /// Creates a new file at `path`, replacing (truncating) any existing file there. With
    /// `sealable`, the file starts with a user block that `HDF5Seal.seal` fills with a checksum of
    /// the rest once the file is closed.
    public convenience init(creating path: String, sealable: Bool = false) throws {
        try self.init(path: path, mode: .create, userBlock: sealable ? HDF5Seal.userBlockSize : 0)
    }

    /// Creates a new file at `path` whose first `userBlockBytes` bytes (a power of two ≥ 512) are
    /// left to the caller: MATLAB v7.3 files keep their 512-byte text header there.
    public convenience init(creating path: String, userBlockBytes: Int) throws {
        try self.init(path: path, mode: .create, userBlock: userBlockBytes)
    }

    /// Opens an existing file read-only. A missing file, a file that is not HDF5 or a truncated
    /// file throws an `HDF5Error` naming the file.
    public convenience init(reading path: String) throws { try self.init(path: path, mode: .read) }

    /// Opens an existing file for reading and writing, keeping its contents.
    public convenience init(updating path: String) throws { try self.init(path: path, mode: .update) }

    private init(path: String, mode: Mode, userBlock: Int = 0) throws {
        self.path = path
        self.isWritable = mode != .read
        HDF5.silenceErrorPrinting()
        let operation: String
        switch mode {
        case .create: operation = "creating file"
        case .read: operation = "opening file for reading"
        case .update: operation = "opening file for updating"
        }
        let op = HDF5Call(file: path, operation: operation, object: nil)
        // A strong close degree makes H5Fclose close every object still open in the file and
        // really release the file, so a checkpoint can be renamed into place right after close().
        let fapl = try op.id(H5Pcreate(chdf5_p_file_access()), "H5Pcreate")
        defer { H5Pclose(fapl) }
        try op.ok(H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG), "H5Pset_fclose_degree")
        switch mode {
        case .create:
            let fcpl = try op.id(H5Pcreate(chdf5_p_file_create()), "H5Pcreate")
            defer { H5Pclose(fcpl) }
            if userBlock > 0 { try op.ok(H5Pset_userblock(fcpl, hsize_t(userBlock)), "H5Pset_userblock") }
            fileID = try op.id(H5Fcreate(path, chdf5_acc_trunc(), fcpl, fapl), "H5Fcreate")
        case .read:
            fileID = try op.id(H5Fopen(path, chdf5_acc_rdonly(), fapl), "H5Fopen")
        case .update:
            fileID = try op.id(H5Fopen(path, chdf5_acc_rdwr(), fapl), "H5Fopen")
        }
    }

    deinit {
        if fileID >= 0 {
            HDF5.silenceErrorPrinting()
            _ = H5Fclose(fileID)
        }
    }

    /// Closes the file now, reporting any failure to write it out (which deinit cannot).
    ///
    /// Later calls on this object throw. Closing twice is allowed and does nothing.
    public func close() throws {
        guard fileID >= 0 else { return }
        HDF5.silenceErrorPrinting()
        let id = fileID
        fileID = -1
        try HDF5Call(file: path, operation: "closing file", object: nil).ok(H5Fclose(id), "H5Fclose")
    }

    /// Writes all buffered data and metadata of the file to disk (H5Fflush).
    ///
    /// The checkpoint writer flushes before renaming a finished file into place, so that a crash
    /// never leaves a checkpoint whose name is final but whose contents are not.
    public func flush() throws {
        let op = try begin("flushing file", nil)
        try op.ok(H5Fflush(fileID, H5F_SCOPE_GLOBAL), "H5Fflush")
    }

    /// Whether an object (group or dataset) exists at `object`; the root `"/"` always exists.
    ///
    /// HDF5's H5Lexists fails, rather than answering false, when an intermediate component is
    /// missing or is not a group, so the path is checked one component at a time.
    public func exists(_ object: String) throws -> Bool {
        let op = try begin("checking existence", object)
        let dflt = chdf5_p_default()
        var prefix = ""
        for (i, component) in object.split(separator: "/").enumerated() {
            if i > 0 {
                // The previous component exists; it must be a group for the path to go on.
                let parent = try op.id(H5Oopen(fileID, prefix, dflt), "H5Oopen")
                let isGroup = H5Iget_type(parent) == H5I_GROUP
                H5Oclose(parent)
                guard isGroup else { return false }
            }
            prefix += "/" + component
            guard try op.bool(H5Lexists(fileID, prefix, dflt), "H5Lexists"),
                  // A soft link may exist while its target does not.
                  try op.bool(H5Oexists_by_name(fileID, prefix, dflt), "H5Oexists_by_name")
            else { return false }
        }
        return true
    }

    /// Names (not full paths) of the datasets directly inside `group`, sorted by name in byte
    /// order (HDF5's name index), which is also the order h5py iterates a group in.
    ///
    /// Sub-groups and links that do not resolve to an object are left out.
    public func datasetNames(in group: String = "/") throws -> [String] {
        try children(of: group, ofType: H5I_DATASET, operation: "listing datasets")
    }

    /// Names of the groups directly inside `group`, sorted by name in byte order like `datasetNames`.
    public func groupNames(in group: String = "/") throws -> [String] {
        try children(of: group, ofType: H5I_GROUP, operation: "listing groups")
    }

    private func children(of group: String, ofType type: H5I_type_t, operation: String) throws -> [String] {
        let op = try begin(operation, group)
        guard try exists(group) else { throw op.error("no such group") }
        let gid = try op.id(H5Oopen(fileID, group, chdf5_p_default()), "H5Oopen")
        defer { H5Oclose(gid) }
        guard H5Iget_type(gid) == H5I_GROUP else { throw op.error("object is not a group") }
        var info = H5G_info_t()
        try op.ok(H5Gget_info(gid, &info), "H5Gget_info")
        var names: [String] = []
        for i in 0..<info.nlinks {
            let length = H5Lget_name_by_idx(gid, ".", H5_INDEX_NAME, H5_ITER_INC, i, nil, 0, chdf5_p_default())
            guard length >= 0 else { throw op.fail("H5Lget_name_by_idx") }
            var buffer = [CChar](repeating: 0, count: length + 1)
            guard H5Lget_name_by_idx(gid, ".", H5_INDEX_NAME, H5_ITER_INC, i, &buffer, buffer.count,
                                     chdf5_p_default()) >= 0 else { throw op.fail("H5Lget_name_by_idx") }
            // Opening fails for dangling soft or external links: those are skipped, as documented.
            let child = H5Oopen_by_idx(gid, ".", H5_INDEX_NAME, H5_ITER_INC, i, chdf5_p_default())
            guard child >= 0 else { _ = H5Eclear2(chdf5_e_default()); continue }
            if H5Iget_type(child) == type { names.append(String(cString: buffer)) }
            H5Oclose(child)
        }
        return names
    }

    /// Common start of every operation on an open file: quiets HDF5's stderr printing on this
    /// thread and refuses to run on a closed file.
    func begin(_ operation: String, _ object: String?) throws -> HDF5Call {
        HDF5.silenceErrorPrinting()
        let op = HDF5Call(file: path, operation: operation, object: object)
        guard fileID >= 0 else { throw op.error("the file has been closed") }
        return op
    }

    /// Opens the object at `object`, which must exist and have type `type`; the caller closes it
    /// with H5Oclose. Gives "no such dataset"-style errors instead of HDF5's "component not found".
    func openObject(_ object: String, ofType type: H5I_type_t, _ op: HDF5Call) throws -> hid_t {
        let kind = type == H5I_DATASET ? "dataset" : "group"
        guard try exists(object) else { throw op.error("no such \(kind)") }
        let id = try op.id(H5Oopen(fileID, object, chdf5_p_default()), "H5Oopen")
        let actual = H5Iget_type(id)
        guard actual == type else {
            H5Oclose(id)
            throw op.error("object is a \(actual == H5I_GROUP ? "group" : "named datatype"), not a \(kind)")
        }
        return id
    }
}

/// The context of one operation (file, object, what is being done), turning HDF5 return codes
/// into `HDF5Error`s so each C call is checked in one line.
struct HDF5Call {
    let file: String
    let operation: String
    let object: String?

    /// An error with the wrapper's own message.
    func error(_ message: String) -> HDF5Error {
        HDF5Error(file: file, object: object, operation: operation, message: message)
    }

    /// An error carrying HDF5's innermost message for the failed `call`.
    func fail(_ call: String) -> HDF5Error {
        error(HDF5.innermostMessage() ?? "\(call) failed")
    }

    /// Checks an identifier returned by HDF5 (negative means failure).
    @discardableResult
    func id(_ value: hid_t, _ call: String) throws -> hid_t {
        guard value >= 0 else { throw fail(call) }
        return value
    }

    /// Checks a status returned by HDF5 (negative means failure).
    func ok(_ value: herr_t, _ call: String) throws {
        guard value >= 0 else { throw fail(call) }
    }

    /// Checks a tri-state answer (negative failure, zero false, positive true).
    func bool(_ value: htri_t, _ call: String) throws -> Bool {
        guard value >= 0 else { throw fail(call) }
        return value > 0
    }
}
