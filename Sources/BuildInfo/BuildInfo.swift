/// What this binary was built from: the release version and the source revision (the git
/// commit, marked dirty with a hash of the uncommitted diff), recorded by the SourceRevision
/// plugin at build time.
public enum BuildInfo {
    /// The release version of percep-dist.
    public static let version = "0.6.0"

    /// The git revision of the sources ("unknown" outside a git checkout).
    public static let sourceRevision = GeneratedSourceRevision.text

    /// "version (revision)", as `percep-dist --version` prints it.
    public static var description: String { "\(version) (\(sourceRevision))" }

    /// FNV-1a of `description`: ranks compare it to prove they run the same build.
    public static var identityHash: Int64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in description.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        return Int64(bitPattern: h)
    }
}
