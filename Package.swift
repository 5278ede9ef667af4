// swift-tools-version:5.10
import PackageDescription

// Module graph (one way): CBLAS, CDNNLConv → PercepCore → PercepNN → percep-dist.
// Each C library enters through exactly one wrapper target.
let release: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]

let package = Package(
    name: "percep-dist",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "percep-dist", targets: ["PercepDistCLI"]),
        .library(name: "PercepCore", targets: ["PercepCore"]),
        .library(name: "PercepNN", targets: ["PercepNN"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // OpenBLAS (cblas), Debian package libopenblas-dev.
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        // oneDNN 2.x convolutions behind plain C functions, Debian package libdnnl-dev.
        .target(name: "CDNNLConv", linkerSettings: [.linkedLibrary("dnnl"), .linkedLibrary("gomp")]),
        .target(name: "PercepCore", dependencies: ["CBLAS", "CDNNLConv"], swiftSettings: release),
        .target(name: "PercepNN", dependencies: ["PercepCore"], swiftSettings: release),
        .executableTarget(
            name: "PercepDistCLI",
            dependencies: ["PercepCore", "PercepNN",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: release),
        // Finite-difference checks and seeded test tensors shared by the test targets.
        .target(name: "TestSupport", dependencies: ["PercepCore"], path: "Tests/TestSupport"),
        .testTarget(name: "PercepCoreTests", dependencies: ["PercepCore", "TestSupport"]),
        .testTarget(name: "PercepNNTests", dependencies: ["PercepNN", "PercepCore", "TestSupport"],
                    resources: [.copy("Fixtures")]),
    ]
)
