import Foundation
import XCTest

/// `percep-dist --version`: the release version and the source revision the binary was built
/// from, which the ranks' replica check also compares.
final class VersionTests: XCTestCase {
    func testVersionNamesTheSourceRevision() throws {
        let r = try CLI.run(["--version"])
        XCTAssertEqual(r.status, 0, r.err)
        let line = r.out.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertNotNil(line.range(of: #"^percep-dist \d+\.\d+\.\d+ \(([0-9a-f]{12}(-dirty\.\d+)?|unknown)\)$"#, options: .regularExpression), line)
        // Built from a git checkout (CI's clone, a developer's tree): the revision is HEAD's.
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let git = Process()
        git.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        git.arguments = ["git", "-C", repo.path, "rev-parse", "--short=12", "HEAD"]
        let pipe = Pipe()
        git.standardOutput = pipe
        git.standardError = FileHandle.nullDevice
        try git.run()
        git.waitUntilExit()
        let head = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if git.terminationStatus == 0 && !head.isEmpty {
            XCTAssertTrue(line.contains("(\(head)"), "\(line) does not name HEAD \(head)")
        }
    }
}
