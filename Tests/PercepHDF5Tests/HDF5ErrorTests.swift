import Foundation
import XCTest
import PercepCore
import PercepHDF5

/// Bad files and bad paths give `HDF5Error`s that name the file (and object), never a crash,
/// and HDF5 prints nothing to stderr on the way.
final class HDF5ErrorTests: HDF5TestCase {
    /// Runs `body`, expecting an `HDF5Error`, and returns it.
    func expectError(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> HDF5Error? {
        do {
            try body()
            XCTFail("no error thrown", file: file, line: line)
        } catch let error as HDF5Error {
            return error
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
        }
        return nil
    }

    /// A valid file with a few kilobytes of data.
    func writeValidFile(_ path: String) throws {
        let f = try HDF5File(creating: path)
        try f.write(Tensor(shape: [32, 32], values: (0..<1024).map(Float.init)), at: "model/w")
        try f.setAttribute("step", .int(5))
    }

    func testMissingFile() throws {
        let path = file("does-not-exist.h5")
        let error = expectError { _ = try HDF5File(reading: path) }
        XCTAssertEqual(error?.file, path)
        XCTAssertNil(error?.object)
        XCTAssertTrue(error?.description.contains(path) == true, "\(String(describing: error))")
        XCTAssertFalse(error?.message.isEmpty ?? true)
        XCTAssertNotNil(expectError { _ = try HDF5File(updating: path) })
        XCTAssertNotNil(expectError { _ = try HDF5File(creating: file("no/such/directory/x.h5")) })
    }

    func testTextFile() throws {
        let path = file("notes.txt")
        try "not an HDF5 file\n".write(toFile: path, atomically: true, encoding: .utf8)
        let error = expectError { _ = try HDF5File(reading: path) }
        XCTAssertEqual(error?.file, path)
        XCTAssertTrue(error?.description.contains(path) == true, "\(String(describing: error))")
        XCTAssertTrue(error?.message.contains("signature") == true, "\(String(describing: error))")
    }

    func testTruncatedFile() throws {
        let valid = file("valid.h5")
        try writeValidFile(valid)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: valid))
        XCTAssertGreaterThan(bytes.count, 4096)
        for keep in [0, 8, 100, 1000, bytes.count / 2, bytes.count - 1] {
            let path = file("truncated-\(keep).h5")
            try bytes.prefix(keep).write(to: URL(fileURLWithPath: path))
            let error = expectError { _ = try HDF5File(reading: path) }
            XCTAssertEqual(error?.file, path, "keeping \(keep) bytes")
            XCTAssertTrue(error?.description.contains(path) == true, "\(String(describing: error))")
        }
        // The original is untouched and still reads.
        XCTAssertEqual(try HDF5File(reading: valid).shape(at: "model/w"), [32, 32])
    }

    func testMissingDatasetGroupAndObject() throws {
        let path = file("valid.h5")
        try writeValidFile(path)
        let f = try HDF5File(reading: path)
        let missing = expectError { _ = try f.readTensor(at: "model/nope") }
        XCTAssertEqual(missing?.object, "model/nope")
        XCTAssertEqual(missing?.file, path)
        XCTAssertTrue(missing?.message.contains("no such dataset") == true, "\(String(describing: missing))")
        XCTAssertNotNil(expectError { _ = try f.readTensor(at: "absent/group/w") })
        XCTAssertNotNil(expectError { _ = try f.shape(at: "model/nope") })
        XCTAssertNotNil(expectError { _ = try f.datasetNames(in: "nope") })
        XCTAssertNotNil(expectError { _ = try f.datasetNames(in: "model/w") })
        XCTAssertNotNil(expectError { _ = try f.attribute("step", on: "nope") })
        let group = expectError { _ = try f.readTensor(at: "model") }
        XCTAssertTrue(group?.message.contains("group") == true, "\(String(describing: group))")
    }

    func testWrongTypeDataset() throws {
        let path = file("ints.h5")
        try int64DatasetFile.write(to: URL(fileURLWithPath: path))
        let f = try HDF5File(reading: path)
        XCTAssertEqual(try f.datasetNames(), ["counts"])
        XCTAssertEqual(try f.shape(at: "counts"), [3])
        let error = expectError { _ = try f.readTensor(at: "counts") }
        XCTAssertEqual(error?.object, "counts")
        XCTAssertTrue(error?.message.contains("64-bit signed integer") == true, "\(String(describing: error))")
    }

    func testHDF5PrintsNothingToStderr() throws {
        let path = file("notes.txt")
        try "plain text".write(toFile: path, atomically: true, encoding: .utf8)
        let captured = try captureStderr {
            _ = try? HDF5File(reading: path)
            _ = try? HDF5File(reading: file("missing.h5"))
            let f = try? HDF5File(creating: file("x.h5"))
            _ = try? f?.readTensor(at: "a/b")
            _ = try? f?.attribute("x", on: "nowhere")
        }
        XCTAssertEqual(captured, "")
    }

    /// Everything written to file descriptor 2 while `body` runs.
    func captureStderr(_ body: () throws -> Void) throws -> String {
        let capturePath = file("stderr.txt")
        _ = FileManager.default.createFile(atPath: capturePath, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: capturePath))
        let saved = dup(2)
        dup2(handle.fileDescriptor, 2)
        defer {
            dup2(saved, 2)
            close(saved)
            try? handle.close()
        }
        try body()
        return try String(contentsOfFile: capturePath, encoding: .utf8)
    }
}
