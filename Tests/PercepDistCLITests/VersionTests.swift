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
        // Built from a git checkout (CI's clone, a developer's tree): the revision is one of its
        // commits (HEAD when nothing was committed since the build).
        let revision = line.split(separator: "(").last.map { String($0.dropLast().prefix(12)) } ?? ""
        guard revision != "unknown" else { return }
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let git = Process()
        git.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        git.arguments = ["git", "-C", repo.path, "cat-file", "-e", "\(revision)^{commit}"]
        git.standardOutput = FileHandle.nullDevice
        git.standardError = FileHandle.nullDevice
        try git.run()
        git.waitUntilExit()
        XCTAssertEqual(git.terminationStatus, 0, "\(revision) is not a commit of \(repo.path)")
    }
}
