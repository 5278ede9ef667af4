import Foundation
import XCTest
@testable import Training

/// Config loading: inheritance, overrides, every error path, the dump and its hash.
final class ConfigTests: XCTestCase {
    private var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("training-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("sub"), withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// Writes `text` to `name` under the temporary directory and returns its path.
    @discardableResult
    private func write(_ name: String, _ text: String) throws -> String {
        let url = dir.appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    /// The ConfigError `body` throws (fails the test if it throws nothing or something else).
    private func configError(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> ConfigError? {
        do { try body() } catch let e as ConfigError { return e } catch { XCTFail("not a ConfigError: \(error)", file: file, line: line); return nil }
        XCTFail("no error", file: file, line: line)
        return nil
    }

    /// A stored dump compared with this run's config: changed values, keys an older version did
    /// not have, keys this version no longer knows.
    func testDifferenceFromAStoredDump() throws {
        var config = TrainingConfig()
        try config.apply(overrides: ["SOLVER.BASE_LR", "0.02", "OUTPUT_DIR", "out/a"])
        XCTAssertTrue(config.difference(fromStored: config.resolvedYAML).isEmpty)

        var other = config
        try other.apply(overrides: ["SOLVER.BASE_LR", "0.05", "OUTPUT_DIR", "out/b"])
        let changed = other.difference(fromStored: config.resolvedYAML)
        XCTAssertEqual(changed.changed.map(\.key), ["OUTPUT_DIR", "SOLVER.BASE_LR"])
        XCTAssertEqual(changed.changed.last?.stored, "0.02")
        XCTAssertEqual(changed.changed.last?.current, "0.05")
        XCTAssertTrue(changed.added.isEmpty && changed.removed.isEmpty)

        // An older version's dump: without MODEL.DROPOUT_RATIO, with a key since retired.
        var lines = config.resolvedYAML.split(separator: "\n").map(String.init)
        let dropout = try XCTUnwrap(lines.firstIndex { $0.trimmingCharacters(in: .whitespaces).hasPrefix("DROPOUT_RATIO:") })
        lines.remove(at: dropout)
        let solver = try XCTUnwrap(lines.firstIndex { $0 == "SOLVER:" })
        lines.insert("  RETIRED_KEY: 3", at: solver + 1)
        let old = config.difference(fromStored: lines.joined(separator: "\n"))
        XCTAssertTrue(old.changed.isEmpty, "\(old.changed)")
        XCTAssertEqual(old.added.map(\.key), ["MODEL.DROPOUT_RATIO"])
        XCTAssertEqual(old.removed, ["SOLVER.RETIRED_KEY"])
    }

    func testDefaults() {
        let c = TrainingConfig()
        XCTAssertEqual(c.double("SOLVER.POLY_POWER"), 0.9)
        XCTAssertEqual(c.double("SOLVER.GAMMA"), 0.1)
        XCTAssertEqual(c.int("SOLVER.WARMUP_ITERS"), 1000)
        XCTAssertEqual(c.double("SOLVER.WARMUP_FACTOR"), 0.001)
        XCTAssertEqual(c.string("SOLVER.WARMUP_METHOD"), "linear")
        XCTAssertEqual(c.double("DIST.BUCKET_MB"), 25)
        XCTAssertTrue(c.bool("DIST.OVERLAP"))
        XCTAssertEqual(c.double("DIST.TIMEOUT_SECONDS"), 600)
        XCTAssertFalse(c.bool("MODEL.SYNC_BN"))
        XCTAssertEqual(c.ints("LOSS.PERCEPTUAL.STRUCTURE"), [2, 2, 3, 3, 3])
        XCTAssertEqual(c.doubles("LOSS.PERCEPTUAL.LEVEL_WEIGHTS"), [])
    }

    func testTwoLevelBaseInheritance() throws {
        try write("grand.yaml", "SOLVER:\n  BASE_LR: 0.5\n  MAX_ITER: 10\n  STEPS: [3, 7]\nSEED: 1\n")
        try write("sub/parent.yaml", "_BASE_: ../grand.yaml\nSOLVER:\n  MAX_ITER: 20\nSEED: 2\n")
        let child = try write("sub/child.yaml", "_BASE_: parent.yaml\nSEED: 3\nLOSS:\n  PERCEPTUAL:\n    LEVEL_WEIGHTS: [0.5, 1]\n")
        let c = try TrainingConfig.load(file: child)
        XCTAssertEqual(c.double("SOLVER.BASE_LR"), 0.5)        // from the grandparent
        XCTAssertEqual(c.int("SOLVER.MAX_ITER"), 20)           // parent overrides grandparent
        XCTAssertEqual(c.ints("SOLVER.STEPS"), [3, 7])
        XCTAssertEqual(c.int("SEED"), 3)                        // child overrides both
        XCTAssertEqual(c.doubles("LOSS.PERCEPTUAL.LEVEL_WEIGHTS"), [0.5, 1])
        XCTAssertEqual(c.double("SOLVER.MOMENTUM"), 0.9)        // untouched default
    }

    func testOverrides() throws {
        let f = try write("a.yaml", "SOLVER:\n  BASE_LR: 0.01\n")
        let c = try TrainingConfig.load(file: f, overrides: [
            "SOLVER.BASE_LR", "0.02", "SOLVER.MAX_ITER", "300", "MODEL.SYNC_BN", "true",
            "LOSS.PERCEPTUAL.STRUCTURE", "2,2,3", "SOLVER.STEPS", "[100, 200]", "OUTPUT_DIR", "/tmp/x y",
            "SOLVER.LR_SCHEDULER_NAME", "constant",
        ])
        XCTAssertEqual(c.double("SOLVER.BASE_LR"), 0.02)
        XCTAssertEqual(c.int("SOLVER.MAX_ITER"), 300)
        XCTAssertTrue(c.bool("MODEL.SYNC_BN"))
        XCTAssertEqual(c.ints("LOSS.PERCEPTUAL.STRUCTURE"), [2, 2, 3])
        XCTAssertEqual(c.ints("SOLVER.STEPS"), [100, 200])
        XCTAssertEqual(c.string("OUTPUT_DIR"), "/tmp/x y")
        XCTAssertEqual(c.string("SOLVER.LR_SCHEDULER_NAME"), "constant")

        XCTAssertEqual(configError { _ = try TrainingConfig.load(file: f, overrides: ["SOLVER.BASE_LR"]) }?.description,
                       "command line: overrides must be KEY VALUE pairs; SOLVER.BASE_LR has no value")
        let e = configError { _ = try TrainingConfig.load(file: f, overrides: ["SOLVER.BASE_RL", "0.1"]) }
        XCTAssertEqual(e, .unknownKey(source: "command line", key: "SOLVER.BASE_RL", suggestion: "SOLVER.BASE_LR"))
        XCTAssertEqual(configError { _ = try TrainingConfig.load(file: f, overrides: ["SOLVER.MAX_ITER", "1.5"]) },
                       .wrongType(source: "command line", key: "SOLVER.MAX_ITER", expected: .int, found: "'1.5'"))
    }

    func testUnknownKeySuggestsClosest() throws {
        let f = try write("typo.yaml", "SOLVER:\n  BASE_RL: 0.01\n")
        let e = configError { _ = try TrainingConfig.load(file: f) }
        XCTAssertEqual(e, .unknownKey(source: f, key: "SOLVER.BASE_RL", suggestion: "SOLVER.BASE_LR"))
        XCTAssertEqual(e?.description, "\(f): unknown config key SOLVER.BASE_RL (did you mean SOLVER.BASE_LR?)")
        let g = try write("group.yaml", "SOLVR:\n  BASE_LR: 0.01\n")
        XCTAssertEqual(configError { _ = try TrainingConfig.load(file: g) },
                       .unknownKey(source: g, key: "SOLVR", suggestion: "SOLVER"))
    }

    /// Numbers the code turns into loop bounds, sizes and counts are range-checked on load, so a
    /// mistyped override is an error naming the key instead of a trap later (review findings).
    func testNumbersOutsideTheirRangeAreErrors() throws {
        let cases: [([String], String, Double)] = [
            (["SOLVER.MAX_ITER", "-1"], "SOLVER.MAX_ITER", -1),
            (["DIST.BUCKET_MB", "1e14"], "DIST.BUCKET_MB", 1e14),
            (["DIST.BUCKET_MB", "0"], "DIST.BUCKET_MB", 0),
            (["DIST.TIMEOUT_SECONDS", "0"], "DIST.TIMEOUT_SECONDS", 0),
            (["INPUT.RATIO_RANGE", "0.5,1e300"], "INPUT.RATIO_RANGE", 1e300),
            (["INPUT.SCALE", "9223372036854775807,512"], "INPUT.SCALE", 9223372036854775807),
            (["MODEL.RESNETS.WIDTH_PER_GROUP", "4611686018427387904"], "MODEL.RESNETS.WIDTH_PER_GROUP", 4611686018427387904),
        ]
        for (overrides, key, value) in cases {
            var config = try TrainingConfig.parse(yaml: "SEED: 1\n")
            guard case let .outOfRange(source, k, v, _)? = configError({ try config.apply(overrides: overrides) }) else {
                XCTFail("no range error for \(overrides)"); continue
            }
            XCTAssertEqual([source, k], ["command line", key])
            XCTAssertEqual(v, value)
        }
        let f = try write("range.yaml", "SOLVER:\n  MAX_ITER: -5\n")
        let error = configError { _ = try TrainingConfig.load(file: f) }
        XCTAssertEqual(error?.description, "\(f): SOLVER.MAX_ITER = -5 is outside 0…1000000000")
        var fine = try TrainingConfig.parse(yaml: "SEED: 1\n")
        XCTAssertNoThrow(try fine.apply(overrides: ["SOLVER.MAX_ITER", "0", "INPUT.RATIO_RANGE", "0.5,2.0", "DIST.BUCKET_MB", "0.5"]))
    }

    func testWrongTypeNamesKeyPath() throws {
        let cases: [(String, String, ConfigType)] = [
            ("SOLVER:\n  MAX_ITER: abc\n", "SOLVER.MAX_ITER", .int),
            ("SOLVER:\n  MAX_ITER: \"100\"\n", "SOLVER.MAX_ITER", .int),
            ("SOLVER:\n  BASE_LR: [1]\n", "SOLVER.BASE_LR", .double),
            ("DIST:\n  OVERLAP: 1\n", "DIST.OVERLAP", .bool),
            ("SOLVER:\n  CLIP_GRADIENTS:\n    ENABLED: maybe\n", "SOLVER.CLIP_GRADIENTS.ENABLED", .bool),
            ("LOSS:\n  PERCEPTUAL:\n    STRUCTURE: [2, 2.5]\n", "LOSS.PERCEPTUAL.STRUCTURE", .intList),
            ("OUTPUT_DIR:\n  X: 1\n", "OUTPUT_DIR", .string),
        ]
        for (text, key, type) in cases {
            let f = try write("wrong.yaml", text)
            guard case let .wrongType(source, k, expected, _)? = configError({ _ = try TrainingConfig.load(file: f) }) else {
                XCTFail("no type error for \(text)"); continue
            }
            XCTAssertEqual([source, k], [f, key])
            XCTAssertEqual(expected, type)
        }
        let f = try write("sched.yaml", "SOLVER:\n  LR_SCHEDULER_NAME: cosine\n")
        XCTAssertEqual(configError { _ = try TrainingConfig.load(file: f) },
                       .invalidValue(source: f, key: "SOLVER.LR_SCHEDULER_NAME", value: "cosine",
                                     allowed: ["poly", "WarmupMultiStepLR", "constant"]))
        let g = try write("group-scalar.yaml", "SOLVER: 3\n")
        XCTAssertEqual(configError { _ = try TrainingConfig.load(file: g) }, .notAMapping(source: g, key: "SOLVER"))
        let d = try write("dup.yaml", "SEED: 1\nSEED: 2\n")
        XCTAssertEqual(configError { _ = try TrainingConfig.load(file: d) }, .duplicateKey(source: d, key: "SEED"))
    }

    func testMalformedYAMLGivesFileLineColumn() throws {
        let f = try write("bad.yaml", "SOLVER:\n  BASE_LR: 0.01\n  STEPS: [1, 2\nSEED: 1\n")
        guard case let .malformedYAML(source, line, column, _)? = configError({ _ = try TrainingConfig.load(file: f) }) else {
            return XCTFail("no malformed-YAML error")
        }
        XCTAssertEqual(source, f)
        XCTAssertNotNil(line)
        XCTAssertNotNil(column)
        XCTAssertGreaterThanOrEqual(line ?? 0, 3)
        let e = configError { _ = try TrainingConfig.load(file: f) }
        XCTAssertTrue(e!.description.hasPrefix("\(f):\(line!):\(column!): malformed YAML"), e!.description)
    }

    func testBaseCycleIsAnError() throws {
        let a = try write("a.yaml", "_BASE_: sub/b.yaml\nSEED: 1\n")
        let b = try write("sub/b.yaml", "_BASE_: ../a.yaml\nSEED: 2\n")
        XCTAssertEqual(configError { _ = try TrainingConfig.load(file: a) }, .baseCycle(chain: [a, b, a]))
        let s = try write("self.yaml", "_BASE_: self.yaml\n")
        XCTAssertEqual(configError { _ = try TrainingConfig.load(file: s) }, .baseCycle(chain: [s, s]))
        let m = try write("missing.yaml", "_BASE_: nowhere.yaml\n")
        guard case .unreadable(let source, _)? = configError({ _ = try TrainingConfig.load(file: m) }) else {
            return XCTFail("missing base not reported")
        }
        XCTAssertTrue(source.hasPrefix(m) && source.hasSuffix("nowhere.yaml"), source)
    }

    func testDumpRoundTripAndHash() throws {
        let f = try write("rt.yaml", "SOLVER:\n  BASE_LR: 0.0001\n  STEPS: [10, 20]\nOUTPUT_DIR: 'yes: \"no\"'\nLOSS:\n  PERCEPTUAL:\n    LEVEL_WEIGHTS: [0.0625, 1e-3]\n")
        let c = try TrainingConfig.load(file: f, overrides: ["SOLVER.GAMMA", "0.3"])
        let text = c.resolvedYAML
        let back = try TrainingConfig.parse(yaml: text)
        XCTAssertEqual(back, c)
        XCTAssertEqual(back.resolvedYAML, text)
        XCTAssertEqual(back.hash, c.hash)
        XCTAssertEqual(back.string("OUTPUT_DIR"), "yes: \"no\"")
        XCTAssertEqual(back.double("SOLVER.GAMMA"), 0.3)

        // Keys are sorted at every level and each group header appears once.
        let lines = text.split(separator: "\n")
        XCTAssertEqual(lines.first, "DATALOADER:")
        XCTAssertEqual(lines.filter { $0 == "SOLVER:" }.count, 1)
        XCTAssertTrue(text.contains("SOLVER:\n  BASE_LR: 0.0001\n  CHECKPOINT_PERIOD: 5000\n  CLIP_GRADIENTS:\n    CLIP_TYPE: \"value\"\n    CLIP_VALUE: 1.0\n    ENABLED: false\n  GAMMA: 0.3\n"), text)

        // The hash is FNV-1a of the text: stable, and sensitive to any change.
        var h: UInt64 = 14_695_981_039_346_656_037
        for b in text.utf8 { h = (h ^ UInt64(b)) &* 1_099_511_628_211 }
        XCTAssertEqual(c.hash, h)
        XCTAssertEqual(try TrainingConfig.load(file: f, overrides: ["SOLVER.GAMMA", "0.3"]).hash, c.hash)
        XCTAssertNotEqual(try TrainingConfig.load(file: f, overrides: ["SOLVER.GAMMA", "0.30000000000000004"]).hash, c.hash)
        XCTAssertEqual(TrainingConfig().hash, TrainingConfig().hash)
    }

    func testRepositoryConfigs() throws {
        // Tests/TrainingTests/ConfigTests.swift → repository root.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let base = try TrainingConfig.load(file: root.appendingPathComponent("configs/Base-Perceptual.yaml").path)
        XCTAssertEqual(base.double("SOLVER.MOMENTUM"), 0.9)
        XCTAssertEqual(base.double("SOLVER.BASE_LR"), 0.01)
        XCTAssertEqual(base.string("SOLVER.LR_SCHEDULER_NAME"), "poly")
        XCTAssertEqual(base.double("SOLVER.POLY_POWER"), 0.9)
        XCTAssertEqual(base.double("LOSS.PERCEPTUAL.LAMBDA"), 0.1)
        XCTAssertTrue(base.bool("LOSS.PERCEPTUAL.ENABLED"))
        XCTAssertEqual(base.string("LOSS.PERCEPTUAL.FAMILY"), "vgg")
        XCTAssertEqual(base.ints("LOSS.PERCEPTUAL.STRUCTURE"), [2, 2, 3, 3, 3])
        XCTAssertEqual(base.string("LOSS.PERCEPTUAL.INIT"), "he")

        let tiny = try TrainingConfig.load(file: root.appendingPathComponent("configs/demo/tiny-synthetic.yaml").path)
        XCTAssertLessThanOrEqual(tiny.int("SOLVER.MAX_ITER"), 1000)
        XCTAssertEqual(tiny.double("SOLVER.BASE_LR"), 0.01)     // inherited
        XCTAssertEqual(tiny.double("LOSS.PERCEPTUAL.LAMBDA"), 0.1)
        let schedule = LRSchedule(config: tiny)
        XCTAssertEqual(schedule.lr(at: 0), 0.01)
        XCTAssertEqual(schedule.lr(at: tiny.int("SOLVER.MAX_ITER")), 0)
    }
}

/// Every config shipped under configs/ loads against the schema (no typo reaches a user).
final class ShippedConfigTests: XCTestCase {
    func testEveryShippedConfigLoads() throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let root = repo.appendingPathComponent("configs")
        let files = FileManager.default.enumerator(atPath: root.path)!.compactMap { $0 as? String }.filter { $0.hasSuffix(".yaml") }
        XCTAssertGreaterThanOrEqual(files.count, 20)
        for file in files {
            XCTAssertNoThrow(try TrainingConfig.load(file: root.appendingPathComponent(file).path), file)
        }
        let percep = try TrainingConfig.load(file: root.appendingPathComponent("cityscapes/pspnet_r18_percep.yaml").path)
        XCTAssertEqual(percep.ints("INPUT.CROP_SIZE"), [769, 769])
        XCTAssertEqual(percep.int("SOLVER.MAX_ITER"), 40000)
        XCTAssertTrue(percep.bool("LOSS.PERCEPTUAL.ENABLED"))
        XCTAssertEqual(percep.string("MODEL.TEACHER.NAME"), "pspnet_r101")   // the paper's §4.1 teacher for PSPNet-R18
        XCTAssertEqual(percep.ints("LOSS.PERCEPTUAL.STRUCTURE"), [2, 2, 3, 3, 3])
        for dataset in ["ade20k", "cityscapes", "voc"] {
            let student = try TrainingConfig.load(file: root.appendingPathComponent("\(dataset)/pspnet_r18_percep.yaml").path)
            let teacher = try TrainingConfig.load(file: root.appendingPathComponent("\(dataset)/pspnet_r101_teacher.yaml").path)
            XCTAssertEqual(student.string("MODEL.TEACHER.WEIGHTS"), teacher.string("OUTPUT_DIR") + "/model_best.h5", dataset)
            XCTAssertEqual(teacher.string("MODEL.NAME"), student.string("MODEL.TEACHER.NAME"), dataset)
            let r50 = try TrainingConfig.load(file: root.appendingPathComponent("\(dataset)/deeplabv3plus_r50_percep.yaml").path)
            XCTAssertEqual(r50.string("MODEL.TEACHER.NAME"), "deeplabv3plus_r101", dataset)
            // HRNetV2-W18-Small learns from HRNetV2-W48 (the paper's §4.2.1).
            let hr18s = try TrainingConfig.load(file: root.appendingPathComponent("\(dataset)/fcn_hr18s_percep.yaml").path)
            let hr48 = try TrainingConfig.load(file: root.appendingPathComponent("\(dataset)/fcn_hr48_teacher.yaml").path)
            XCTAssertEqual(hr18s.string("MODEL.TEACHER.WEIGHTS"), hr48.string("OUTPUT_DIR") + "/model_best.h5", dataset)
            XCTAssertEqual([hr18s.string("MODEL.NAME"), hr48.string("MODEL.NAME"), hr18s.string("MODEL.TEACHER.NAME")],
                           ["fcn_hr18s", "fcn_hr48", "fcn_hr48"], dataset)
        }
    }
}
