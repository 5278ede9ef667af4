import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A whole-file checksum for the HDF5 files percep-dist writes (checkpoints, loss networks), kept
/// in the file's user block — the bytes before the HDF5 superblock, which HDF5 and h5py skip —
/// and checked before the HDF5 library parses anything.
///
/// libhdf5 is not hardened against malformed files: fuzzing found corrupted link tables that
/// make 1.10's `H5G__link_release_table` free a wild pointer (docs/reliability.md). A damaged
/// sealed file is refused by its checksum before the library sees it; `HDF5Probe` reads every
/// file in a child process first when a command for it is set, so that a crafted file crashes
/// the child only.
public enum HDF5Seal {
    /// Size of the user block (HDF5 requires a power of two ≥ 512).
    public static let userBlockSize = 512
    static let magic = "percep-dist sealed hdf5 v1\n"

    /// FNV-1a 64 of the bytes after the user block, streamed.
    static func digest(_ handle: FileHandle, from offset: Int) throws -> (UInt64, Int) {
        try handle.seek(toOffset: UInt64(offset))
        var h: UInt64 = 0xCBF2_9CE4_8422_2325, length = 0
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            for b in chunk { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
            length += chunk.count
        }
        return (h, length)
    }

    /// Writes the checksum of a closed file created with `HDF5File(creating:sealable: true)`.
    public static func seal(_ path: String) throws {
        guard let handle = FileHandle(forUpdatingAtPath: path) else {
            throw HDF5Error(file: path, object: nil, operation: "sealing file", message: "cannot open it for updating")
        }
        defer { try? handle.close() }
        let (h, length) = try digest(handle, from: userBlockSize)
        var block = Data((magic + "length \(length)\nfnv1a64 \(String(h, radix: 16))\n").utf8)
        block.append(Data(count: userBlockSize - block.count))
        try handle.seek(toOffset: 0)
        try handle.write(contentsOf: block)
    }

    /// True when `path` carries a seal that matches its contents, false when it carries none (a
    /// file from elsewhere, or written before seals existed).
    /// - Throws: `HDF5Error` when the seal does not match: the file was damaged after writing.
    @discardableResult
    public static func verify(_ path: String) throws -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw HDF5Error(file: path, object: nil, operation: "opening file", message: "cannot read it")
        }
        defer { try? handle.close() }
        guard let block = try handle.read(upToCount: userBlockSize), block.count == userBlockSize,
              block.starts(with: Data(magic.utf8)) else { return false }
        let text = String(decoding: block.prefix { $0 != 0 }, as: UTF8.self).split(separator: "\n")
        func field(_ name: String) -> String? { text.first { $0.hasPrefix(name + " ") }.map { String($0.dropFirst(name.count + 1)) } }
        guard let length = field("length").flatMap({ Int($0) }), let stored = field("fnv1a64").flatMap({ UInt64($0, radix: 16) }) else {
            throw HDF5Error(file: path, object: nil, operation: "checking the seal", message: "the seal is unreadable (damaged file)")
        }
        let (h, actual) = try digest(handle, from: userBlockSize)
        guard actual == length else {
            throw HDF5Error(file: path, object: nil, operation: "checking the seal",
                            message: "the file holds \(actual) bytes after its header, it was written with \(length) (truncated or damaged)")
        }
        guard h == stored else {
            throw HDF5Error(file: path, object: nil, operation: "checking the seal", message: "the contents do not match the checksum written with them (damaged file)")
        }
        return true
    }
}

/// Reads HDF5 files in a child process before this process does, so a file that crashes the HDF5
/// library takes down the child, not the job: the child (`command` + path) reads every dataset
/// of every group; if it dies on a signal, the file is refused.
public enum HDF5Probe {
    /// The program and arguments to run with the file's path appended (the CLI sets it to its own
    /// hidden `hdf5-probe` command); nil turns probing off (libraries, tests, the probe itself).
    nonisolated(unsafe) public static var command: [String]?

    /// How long the child may take (`PERCEP_HDF5_PROBE_TIMEOUT` seconds, default 600): reading is
    /// bounded by the resource limits, so a child still running after this is stuck in a loop.
    public static var timeoutSeconds: Double {
        ProcessInfo.processInfo.environment["PERCEP_HDF5_PROBE_TIMEOUT"].flatMap(Double.init).map { max($0, 0.1) } ?? 600
    }

    /// Reads `path` in a child process when probing is on.
    /// - Throws: `HDF5Error` when the child died on a signal or ran out of time reading the file.
    public static func check(_ path: String) throws {
        guard let command, !command.isEmpty else { return }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: command[0])
        p.arguments = Array(command.dropFirst()) + [path]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        let finished = DispatchSemaphore(value: 0)
        p.terminationHandler = { _ in finished.signal() }
        try p.run()
        let limit = timeoutSeconds
        if finished.wait(timeout: .now() + limit) == .timedOut {
            kill(p.processIdentifier, SIGKILL)
            finished.wait()
            throw HDF5Error(file: path, object: nil, operation: "checking the file in a separate process",
                            message: "reading it took longer than \(Int(limit)) s (the child was stopped): the file is malformed")
        }
        if p.terminationReason == .uncaughtSignal {
            throw HDF5Error(file: path, object: nil, operation: "checking the file in a separate process",
                            message: "reading it crashed the HDF5 library (signal \(p.terminationStatus)): the file is malformed")
        }
    }
}

extension HDF5File {
    /// Opens a file from outside this process for reading, defensively: a sealed file must match
    /// its checksum (`HDF5Seal`: damage on disk is named before HDF5 parses anything), and every
    /// file is first read by `HDF5Probe` when probing is on (a seal is integrity, not trust: a
    /// crafted file can carry a valid one).
    public static func openChecked(reading path: String) throws -> HDF5File {
        try HDF5Seal.verify(path)
        try HDF5Probe.check(path)
        return try HDF5File(reading: path)
    }

    /// Reads every dataset (as floats or integers) under `group`, recursively: what the probe does
    /// to a file before the real reader opens it. Attributes are not listed (the readers look up
    /// a few by name; the seal covers the bytes they live in).
    public func readEverything(in group: String = "/") throws {
        for name in try datasetNames(in: group) {
            let path = group == "/" ? "/" + name : group + "/" + name
            if (try? readTensor(at: path)) == nil { _ = try? readIntegers(at: path) }
        }
        for name in try groupNames(in: group) { try readEverything(in: group == "/" ? "/" + name : group + "/" + name) }
    }
}
