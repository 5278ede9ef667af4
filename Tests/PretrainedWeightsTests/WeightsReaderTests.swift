import Foundation
import PercepHDF5
@testable import PretrainedWeights
import XCTest

/// The `.pth` / `.pkl` reader against files PyTorch and NumPy wrote
/// (tools/pytorch/make_weights_fixtures.py), and against hostile files.
final class WeightsReaderTests: XCTestCase {
    static func fixture(_ name: String) throws -> String {
        try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/" + name, withExtension: nil)).path
    }

    /// Names (in file order) and values PyTorch holds for `file`, from expected.h5.
    func expected(_ file: String) throws -> [(String, [Int], [Float])] {
        let h5 = try HDF5File(reading: try Self.fixture("expected.h5"))
        return try h5.datasetNames(in: "/" + file).map { name in
            let t = try h5.readTensor(at: "/\(file)/\(name)")
            return (name, t.shape, t.values)
        }
    }

    func assertMatches(_ file: String, renamed: Bool = false, line: UInt = #line) throws {
        let w = try WeightsReader.read(try Self.fixture(file))
        XCTAssertEqual(w.renamedFromCaffe2, renamed, file, line: line)
        let want = try expected(file)
        // expected.h5 lists names sorted; the file order is PyTorch's.
        XCTAssertEqual(Set(w.tensors.map(\.name)), Set(want.map(\.0)), file, line: line)
        let byName = Dictionary(uniqueKeysWithValues: w.tensors.map { ($0.name, $0) })
        for (name, shape, values) in want {
            guard let t = byName[name] else { continue }
            // Our HDF5 reader gives a 0-d dataset the shape [1].
            XCTAssertEqual(t.shape.isEmpty ? [1] : t.shape, shape, "\(file) \(name)", line: line)
            XCTAssertEqual(t.values, values, "\(file) \(name)", line: line)
        }
    }

    func testZipStoredDeflatedAndLegacyFilesGivePyTorchsValues() throws {
        for file in ["tiny_zip.pth", "tiny_zip_deflated.pth", "tiny_legacy.pth"] {
            try assertMatches(file)
            let w = try WeightsReader.read(try Self.fixture(file))
            XCTAssertEqual(w.format, file == "tiny_legacy.pth" ? .pytorchLegacy : .pytorchZip)
            XCTAssertNil(w.wrapperKey)
            XCTAssertEqual(w.tensors.map(\.name), ["conv.weight", "conv.bias", "bn.running_mean", "bn.num_batches_tracked", "half", "bfloat",
                                                    "double", "transposed", "view_a", "view_b", "scalar"], "file order, \(file)")
            let dtypes = Dictionary(uniqueKeysWithValues: w.tensors.map { ($0.name, $0.dtype) })
            XCTAssertEqual(dtypes["half"], .float16); XCTAssertEqual(dtypes["bfloat"], .bfloat16)
            XCTAssertEqual(dtypes["double"], .float64); XCTAssertEqual(dtypes["bn.num_batches_tracked"], .int64)
            // Strided and offset views are gathered, not read as if contiguous.
            XCTAssertEqual(w.tensors.first { $0.name == "transposed" }?.values, [0, 3, 1, 4, 2, 5])
            XCTAssertEqual(w.tensors.first { $0.name == "scalar" }?.shape, [])
        }
    }

    func testWrappersOfDetectron2AndMMSeg() throws {
        try assertMatches("detectron2_wrapper.pth")
        try assertMatches("mmseg_wrapper.pth")
        let d2 = try WeightsReader.read(try Self.fixture("detectron2_wrapper.pth"))
        XCTAssertEqual(d2.wrapperKey, "model")
        XCTAssertEqual(d2.otherKeys, ["iteration", "optimizer", "scheduler"])
        XCTAssertEqual(try WeightsReader.read(try Self.fixture("mmseg_wrapper.pth")).wrapperKey, "state_dict")
    }

    func testCaffe2PickleIsRenamedAsDetectron2Does() throws {
        try assertMatches("caffe2_r50_stem_res2.pkl", renamed: true)
        let names = try WeightsReader.read(try Self.fixture("caffe2_r50_stem_res2.pkl")).tensors.map(\.name)
        for name in ["stem.conv1.weight", "stem.conv1.norm.weight", "stem.conv1.norm.bias", "res2.0.conv1.weight", "res2.0.conv3.norm.bias",
                     "res2.0.shortcut.weight", "res2.0.shortcut.norm.weight", "fc1000.weight"] {
            XCTAssertTrue(names.contains(name), name)
        }
        XCTAssertFalse(names.contains { $0.contains("momentum") }, "momentum blobs are dropped as detectron2 drops them")
    }

    func testDetectron2FormatAndPython2Pickles() throws {
        // detectron2's own .pkl ({"model": …, "__author__": …}) keeps its names; a Fortran-order
        // array comes out row-major; float16 arrays are widened.
        try assertMatches("detectron2_format.pkl")
        XCTAssertEqual(try WeightsReader.read(try Self.fixture("detectron2_format.pkl")).wrapperKey, "model")
        // Python 2's cPickle: BINSTRING keys and buffers; Caffe2 names renamed.
        try assertMatches("python2_style.pkl", renamed: true)
    }

    /// Hostile files: each a `WeightsError` of the right kind, naming the file; nothing runs.
    func testHostileFilesAreRefusedWithoutRunningAnything() throws {
        let marker = "/tmp/percep_pwned"
        try? FileManager.default.removeItem(atPath: marker)
        let cases: [(String, (WeightsError.Problem) -> Bool, String)] = [
            ("hostile_os_system.pth", { if case .refusedGlobal = $0 { return true }; return false }, "posix.system"),
            ("hostile_eval.pkl", { if case .refusedGlobal = $0 { return true }; return false }, "eval"),
            ("hostile_truncated.pth", { if case .malformed = $0 { return true }; return false }, "end-of-central-directory"),
            ("hostile_short_storage.pth", { if case .truncated = $0 { return true }; return false }, "has 8 bytes"),
            ("hostile_negative_size.pth", { if case .malformed = $0 { return true }; return false }, "negative size"),
            ("hostile_huge_size.pth", { if case .tooLarge = $0 { return true }; return false }, "1099511627776"),
            ("hostile_recursive.pkl", { if case .recursive = $0 { return true }; return false }, "contains itself"),
            ("hostile_bad_crc.pth", { if case .malformed = $0 { return true }; return false }, "CRC-32"),
            ("hostile_reused_storage.pth", { if case .tooLarge = $0 { return true }; return false }, "more elements than they hold"),
        ]
        for (file, kind, text) in cases {
            let path = try Self.fixture(file)
            XCTAssertThrowsError(try WeightsReader.read(path), file) { error in
                guard let e = error as? WeightsError else { return XCTFail("\(file): \(error)") }
                XCTAssertTrue(kind(e.problem), "\(file): \(e)")
                XCTAssertEqual(e.file, path)
                XCTAssertTrue(e.description.contains(text) && e.description.hasPrefix(path), "\(file): \(e)")
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker), "a hostile pickle ran code")
    }

    // MARK: the unpickler on hand-made bytes

    func unpickle(_ bytes: [UInt8]) throws -> PickleValue {
        var u = Unpickler(bytes: bytes, file: "test.pkl", persistentLoad: nil)
        defer { u.release() }
        return try u.load()
    }

    func problem(_ bytes: [UInt8]) -> WeightsError.Problem? {
        do { _ = try unpickle(bytes); return nil } catch { return (error as? WeightsError)?.problem }
    }

    func testUnpicklerBoundsEveryOperand() {
        let proto: [UInt8] = [0x80, 0x02]
        // BINUNICODE claiming 4 GiB, BINBYTES8 claiming 2^63, a LONG4 longer than the file.
        for bad in [[0x58, 0xFF, 0xFF, 0xFF, 0xFF, 0x61], [0x8E] + [UInt8](repeating: 0xFF, count: 7) + [0x7F], [0x8B, 0x00, 0x00, 0x00, 0x10]] as [[UInt8]] {
            guard case .truncated? = problem(proto + bad) else { return XCTFail("\(bad): \(String(describing: problem(proto + bad)))") }
        }
        // Empty stack, a missing MARK, a memo entry never stored, no STOP.
        for bad in [[0x2E], [0x74, 0x2E], [0x68, 0x05, 0x2E], [0x4E]] as [[UInt8]] {
            XCTAssertNotNil(problem(proto + bad), "\(bad)")
        }
        // Opcodes a state dict never needs: INST, OBJ, NEWOBJ_EX, EXT1, NEXT_BUFFER.
        for op: UInt8 in [0x69, 0x6F, 0x92, 0x82, 0x97] {
            guard case .refusedOpcode? = problem(proto + [op]) else { return XCTFail("opcode \(op)") }
        }
        // A GLOBAL by STACK_GLOBAL that is not allowlisted.
        let sg: [UInt8] = [0x8C, 0x02] + Array("os".utf8) + [0x8C, 0x06] + Array("system".utf8) + [0x93, 0x2E]
        XCTAssertEqual(problem(proto + sg), .refusedGlobal("os.system"))
        // REDUCE on an allowlisted type that is not a constructor.
        let reduceType: [UInt8] = Array("cnumpy\nndarray\n".utf8) + [0x29, 0x52, 0x2E]
        guard case .refusedOpcode? = problem(proto + reduceType) else { return XCTFail("REDUCE numpy.ndarray") }
    }

    /// Review findings: `_codecs.encode` without arguments, and a NumPy int64 scalar at its
    /// maximum (which a Float detour would round past Int64).
    func testAllowlistedCallablesCheckTheirArguments() throws {
        let encode: [UInt8] = [0x80, 0x02] + Array("c_codecs\nencode\n".utf8) + [0x29, 0x52, 0x2E]
        XCTAssertNotNil(problem(encode))
        var scalar: [UInt8] = [0x80, 0x02] + Array("cnumpy.core.multiarray\nscalar\n".utf8) + Array("cnumpy\ndtype\n".utf8)
        scalar += [0x8C, 0x02] + Array("i8".utf8) + [0x89, 0x88, 0x87, 0x52]
        scalar += [0x28, 0x4B, 0x03, 0x8C, 0x01, 0x3C, 0x4E, 0x4E, 0x4E, 0x4A, 0xFF, 0xFF, 0xFF, 0xFF, 0x4A, 0xFF, 0xFF, 0xFF, 0xFF, 0x4B, 0x00, 0x74, 0x62]
        scalar += [0x43, 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 0x86, 0x52, 0x2E]
        guard case .int(let v) = try unpickle(scalar) else { return XCTFail("not an int") }
        XCTAssertEqual(v, Int64.max)
    }

    func testDeepNestingAndSelfContainingDictsAreRefused() {
        // 100 000 nested one-tuples: refused at the nesting limit, no stack overflow.
        let deep: [UInt8] = [0x80, 0x02, 0x29] + [UInt8](repeating: 0x85, count: 100_000) + [0x2E]
        guard case .tooLarge? = problem(deep) else { return XCTFail("deep tuples") }
        // 100 000 nested lists (APPEND chains) are legal depth-wise and must not crash when freed.
        var lists: [UInt8] = [0x80, 0x02]
        for _ in 0..<100_000 { lists += [0x5D] }
        for _ in 0..<99_999 { lists += [0x61] }
        lists += [0x2E]
        XCTAssertNoThrow(try unpickle(lists))
        // A dict that holds itself under a key.
        let selfDict: [UInt8] = [0x80, 0x02, 0x7D, 0x71, 0x00, 0x8C, 0x01, 0x61, 0x68, 0x00, 0x73, 0x2E]
        guard case .recursive? = problem(selfDict) else { return XCTFail("self dict: \(String(describing: problem(selfDict)))") }
    }

    func testZipMembersAreCheckedBeforeUse() throws {
        let path = try Self.fixture("tiny_zip.pth")
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        // The central directory's first entry claims a 2^32-1 byte member (an inflated size).
        let zip = try ZipArchive(bytes: bytes, file: path)
        XCTAssertEqual(zip.names.first, "tiny_zip/data.pkl")
        guard let eocd = (0..<(bytes.count - 3)).reversed().first(where: { bytes[$0] == 0x50 && bytes[$0 + 1] == 0x4B && bytes[$0 + 2] == 1 && bytes[$0 + 3] == 2 }) else {
            return XCTFail("no directory entry")
        }
        // The last directory entry: point its local header past the end of the file.
        for k in 0..<4 { bytes[eocd + 42 + k] = 0xFE }
        let damaged = try ZipArchive(bytes: bytes, file: path)
        XCTAssertThrowsError(try damaged.data(damaged.names.last!)) { error in
            guard case .tooLarge? = (error as? WeightsError)?.problem else {
                guard case .truncated? = (error as? WeightsError)?.problem else { return XCTFail("\(error)") }
                return
            }
        }
    }
}
