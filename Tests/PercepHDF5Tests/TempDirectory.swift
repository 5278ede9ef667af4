import Foundation
import XCTest

/// A fresh directory per test, removed afterwards, so tests never see each other's files.
class HDF5TestCase: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("percep-hdf5-tests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    /// Path of a file named `name` in this test's directory.
    func file(_ name: String) -> String { directory.appendingPathComponent(name).path }
}
