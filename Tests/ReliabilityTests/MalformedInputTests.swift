import Foundation
import TestSupport
import XCTest

/// The catalogue of docs/reliability.md: malformed configs, command lines, data sets,
/// checkpoints, loss-network files and results files, each run through the real `percep-dist`.
/// Every row must end with a non-zero exit (never a signal), within a bounded time, with an error
/// naming the problem on stderr and no stack trace, and must leave what was already saved alone.
/// The test prints each row as a markdown table line (`swift test --filter MalformedInputTests`
/// shows them), which is how the catalogue in docs/reliability.md is written.
final class MalformedInputTests: XCTestCase {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let demoConfig = repo.appendingPathComponent("configs/demo/tiny-synthetic.yaml").path
    static let instConfig = repo.appendingPathComponent("configs/synthetic/condinst.yaml").path
    static let segConfig = repo.appendingPathComponent("configs/synthetic/baseline.yaml").path
    /// A hostile weights file of Tests/PretrainedWeightsTests/Fixtures.
    static func weightsFixture(_ name: String) -> String {
        repo.appendingPathComponent("Tests/PretrainedWeightsTests/Fixtures/" + name).path
    }
    static var root: URL!

    /// One malformed input: what it is, how to make it, the command, and what the error must say.
    struct Row {
        let area: String
        let input: String
        let arguments: (URL) throws -> [String]
        let expect: [String]
    }

    override class func setUp() {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("malformed-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        func run(_ args: [String]) {
            let r = try! ProcessRunner.run(ProcessRunner.percepDist, args)
            precondition(r.status == 0, "\(args): \(r.err)")
        }
        run(["train-demo", "--config", demoConfig, "OUTPUT_DIR", root.appendingPathComponent("demo").path, "SOLVER.MAX_ITER", "1",
             "SOLVER.IMS_PER_BATCH", "2", "LOSS.PERCEPTUAL.ENABLED", "false"])
        run(["synth", "coco", "--out", root.appendingPathComponent("coco").path, "--images", "4", "--seed", "1", "--size", "64,64", "--split", "train"])
        run(["synth", "coco", "--out", root.appendingPathComponent("coco").path, "--images", "3", "--seed", "2", "--size", "64,64", "--split", "val"])
        run(["synth", "seg", "--out", root.appendingPathComponent("seg").path, "--train", "4", "--val", "2", "--size", "64,64", "--seed", "1"])
        run(["lossnet", "export", "--structure", "1,1", "--widths", "4,4", "--in-channels", "3", "--out", root.appendingPathComponent("lossnet.h5").path])
    }

    override class func tearDown() { try? FileManager.default.removeItem(at: root) }

    // Helpers that make the inputs, in a fresh directory per row.
    static func write(_ text: String, _ dir: URL, _ name: String) throws -> String {
        let url = dir.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url.path
    }
    static func copy(_ path: String, _ dir: URL, _ name: String) throws -> URL {
        let url = dir.appendingPathComponent(name)
        try FileManager.default.copyItem(at: root.appendingPathComponent(path), to: url)
        return url
    }
    static var checkpoint: URL { root.appendingPathComponent("demo/model_0000001.h5") }
    static func demo(_ config: String, _ extra: [String] = [], out: URL) -> [String] {
        ["train-demo", "--config", config, "OUTPUT_DIR", out.appendingPathComponent("run").path, "SOLVER.MAX_ITER", "1",
         "SOLVER.IMS_PER_BATCH", "2", "LOSS.PERCEPTUAL.ENABLED", "false"] + extra
    }
    static func inst(_ dir: URL, root data: String, _ extra: [String] = []) -> [String] {
        ["train-inst", "--config", instConfig, "DATASETS.ROOT", data, "OUTPUT_DIR", dir.appendingPathComponent("run").path,
         "SOLVER.MAX_ITER", "2", "SOLVER.IMS_PER_BATCH", "2", "INPUT.MIN_SIZE_TRAIN", "[64]", "INPUT.MIN_SIZE_TEST", "64",
         "TEST.EVAL_PERIOD", "0", "DATALOADER.NUM_WORKERS", "1"] + extra
    }
    static func pngHeader(width: UInt32, height: UInt32) -> Data {
        // Signature and an IHDR chunk (8-bit grey) with a correct CRC, then nothing.
        var chunk = Data("IHDR".utf8)
        for v in [width, height] { withUnsafeBytes(of: v.bigEndian) { chunk.append(contentsOf: $0) } }
        chunk.append(contentsOf: [8, 0, 0, 0, 0])
        var crc: UInt32 = 0xFFFF_FFFF
        for b in chunk {
            crc ^= UInt32(b)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        var out = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        withUnsafeBytes(of: UInt32(13).bigEndian) { out.append(contentsOf: $0) }
        out.append(chunk)
        withUnsafeBytes(of: (crc ^ 0xFFFF_FFFF).bigEndian) { out.append(contentsOf: $0) }
        return out
    }
    static func jpegHeader(width: UInt16, height: UInt16) -> Data {
        // SOI, a baseline SOF0 for 3 components of the claimed size, EOI.
        var out = Data([0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08])
        for v in [height, width] { withUnsafeBytes(of: v.bigEndian) { out.append(contentsOf: $0) } }
        out.append(contentsOf: [0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01])
        // SOS, so that the header parse reaches the frame size; no scan data follows.
        out.append(contentsOf: [0xFF, 0xDA, 0x00, 0x0C, 0x03, 0x01, 0x00, 0x02, 0x11, 0x03, 0x11, 0x00, 0x3F, 0x00, 0xFF, 0xD9])
        return out
    }
    /// A COCO set whose train annotations file is replaced by `json` (a copy of the synthetic set).
    static func coco(_ dir: URL, train json: String) throws -> String {
        let data = try copy("coco", dir, "coco")
        try Data(json.utf8).write(to: data.appendingPathComponent("annotations/instances_train.json"))
        return data.path
    }
    static func cocoJSON() throws -> String {
        try String(contentsOf: root.appendingPathComponent("coco/annotations/instances_train.json"), encoding: .utf8)
    }
    static var valJSON: String { root.appendingPathComponent("coco/annotations/instances_val.json").path }

    static let rows: [Row] = [
        // Configs
        Row(area: "config", input: "config file missing", arguments: { demo($0.appendingPathComponent("nope.yaml").path, out: $0) }, expect: ["nope.yaml"]),
        Row(area: "config", input: "YAML syntax error", arguments: { demo(try write("SOLVER: [1, 2\n", $0, "bad.yaml"), out: $0) }, expect: ["bad.yaml", "malformed YAML"]),
        Row(area: "config", input: "misspelt key", arguments: { demo(try write("_BASE_: \(demoConfig)\nSOLVR:\n  BASE_LR: 0.1\n", $0, "typo.yaml"), out: $0) },
            expect: ["SOLVR", "did you mean SOLVER"]),
        Row(area: "config", input: "value of the wrong type", arguments: { demo(try write("_BASE_: \(demoConfig)\nSOLVER:\n  MAX_ITER: \"ten\"\n", $0, "type.yaml"), out: $0) },
            expect: ["SOLVER.MAX_ITER"]),
        Row(area: "config", input: "value outside the allowed set", arguments: { demo(try write("_BASE_: \(demoConfig)\nSOLVER:\n  LR_SCHEDULER_NAME: cosine\n", $0, "enum.yaml"), out: $0) },
            expect: ["SOLVER.LR_SCHEDULER_NAME", "cosine"]),
        Row(area: "config", input: "_BASE_ file missing", arguments: { demo(try write("_BASE_: gone.yaml\n", $0, "base.yaml"), out: $0) }, expect: ["gone.yaml"]),
        Row(area: "config", input: "_BASE_ cycle", arguments: { dir in
            _ = try write("_BASE_: b.yaml\n", dir, "a.yaml")
            return demo(try write("_BASE_: a.yaml\n", dir, "b.yaml"), out: dir)
        }, expect: ["_BASE_ cycle"]),
        Row(area: "config", input: "lists nested 100 000 deep", arguments: { dir in
            demo(try write("SOLVER:\n  STEPS: " + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "\n", dir, "deep.yaml"), out: dir)
        }, expect: ["nesting deeper than"]),
        Row(area: "config", input: "YAML aliases nesting lists (an alias bomb)", arguments: { dir in
            var text = "_BASE_: \(demoConfig)\nINPUT:\n  SCALE: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
            text += "  CROP_SIZE: [" + Array(repeating: "*a", count: 9).joined(separator: ", ") + "]\n"
            return demo(try write(text, dir, "alias.yaml"), out: dir)
        }, expect: ["INPUT.CROP_SIZE"]),
        Row(area: "config", input: "override without a value", arguments: { demo(demoConfig, ["SOLVER.BASE_LR"], out: $0) }, expect: ["SOLVER.BASE_LR has no value"]),
        Row(area: "config", input: "global batch not divisible among ranks (0 images)", arguments: { demo(demoConfig, ["SOLVER.IMS_PER_BATCH", "0"], out: $0) },
            expect: ["global batch 0"]),
        // Command lines
        Row(area: "command line", input: "`synth coco --size 64x80`", arguments: { ["synth", "coco", "--out", $0.path, "--images", "1", "--seed", "1", "--size", "64x80"] },
            expect: ["--size"]),
        Row(area: "command line", input: "unknown subcommand", arguments: { _ in ["frobnicate"] }, expect: ["frobnicate"]),
        Row(area: "command line", input: "`eval-inst --set` with an odd count", arguments: { _ in ["eval-inst", "--config", instConfig, "--checkpoint", "x.h5", "--set", "SEED"] },
            expect: ["--set takes KEY VALUE pairs"]),
        Row(area: "command line", input: "instance groups that do not fit the per-rank batch", arguments: { inst($0, root: root.appendingPathComponent("coco").path, ["SOLVER.IMS_PER_GROUP", "4"]) },
            expect: ["SOLVER.IMS_PER_GROUP", "must divide SOLVER.IMS_PER_BATCH"]),
        // Data sets
        Row(area: "data set", input: "COCO annotations file missing", arguments: { inst($0, root: $0.path) }, expect: ["instances_train.json", "missing"]),
        Row(area: "data set", input: "COCO JSON truncated", arguments: { dir in inst(dir, root: try coco(dir, train: String(try cocoJSON().prefix(300)))) },
            expect: ["instances_train.json", "malformed JSON"]),
        Row(area: "data set", input: "COCO JSON nested 10⁶ deep", arguments: { dir in
            inst(dir, root: try coco(dir, train: String(repeating: "[", count: 1_000_000) + String(repeating: "]", count: 1_000_000)))
        }, expect: ["nesting deeper than 512"]),
        Row(area: "data set", input: "annotation of an unknown image id", arguments: { dir in
            inst(dir, root: try coco(dir, train: try cocoJSON().replacingOccurrences(of: "\"image_id\":1,", with: "\"image_id\":999,")))
        }, expect: ["999"]),
        Row(area: "data set", input: "polygon coordinate 1e300", arguments: { dir in
            let json = try cocoJSON()
            let broken = json.replacingOccurrences(of: "\"segmentation\":[[", with: "\"segmentation\":[[1e300,1e300,")
            precondition(broken != json, "no polygon to break")
            return inst(dir, root: try coco(dir, train: broken), ["DATALOADER.MAX_BROKEN_FRACTION", "0"])
        }, expect: ["polygon coordinate"]),
        Row(area: "data set", input: "JPEG header claiming 65000×65000", arguments: { dir in
            let data = try copy("coco", dir, "coco")
            let first = try FileManager.default.contentsOfDirectory(atPath: data.appendingPathComponent("train").path).sorted()[0]
            try jpegHeader(width: 65000, height: 65000).write(to: data.appendingPathComponent("train/\(first)"))
            return inst(dir, root: data.path, ["DATALOADER.MAX_BROKEN_FRACTION", "0"])
        }, expect: ["pixel limit"]),
        Row(area: "data set", input: "image smaller than its annotation says", arguments: { dir in
            let data = try copy("coco", dir, "coco")
            let images = try FileManager.default.contentsOfDirectory(atPath: data.appendingPathComponent("train").path).sorted()
            let small = try ProcessRunner.run(ProcessRunner.percepDist, ["synth", "coco", "--out", dir.appendingPathComponent("small").path, "--images", "1",
                                                                         "--seed", "3", "--size", "32,32"])
            precondition(small.status == 0, small.err)
            let smallImage = try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("small/train").path)[0]
            try FileManager.default.removeItem(at: data.appendingPathComponent("train/\(images[0])"))
            try FileManager.default.copyItem(at: dir.appendingPathComponent("small/train/\(smallImage)"), to: data.appendingPathComponent("train/\(images[0])"))
            return inst(dir, root: data.path, ["DATALOADER.MAX_BROKEN_FRACTION", "0"])
        }, expect: ["32×32", "the annotations say 64×64"]),
        Row(area: "data set", input: "segmentation root missing", arguments: { ["train-seg", "--config", segConfig, "DATASETS.ROOT", $0.appendingPathComponent("none").path,
                                                                                 "OUTPUT_DIR", $0.appendingPathComponent("run").path] },
            expect: ["none", "does not exist"]),
        Row(area: "data set", input: "prediction PNG header claiming 100000×100000", arguments: { dir in
            let pred = dir.appendingPathComponent("pred"), gt = root.appendingPathComponent("seg/ADEChallengeData2016/annotations/validation")
            try FileManager.default.createDirectory(at: pred, withIntermediateDirectories: true)
            for name in try FileManager.default.contentsOfDirectory(atPath: gt.path) { try pngHeader(width: 100_000, height: 100_000).write(to: pred.appendingPathComponent(name)) }
            return ["eval-seg", "--pred-dir", pred.path, "--gt-dir", gt.path, "--num-classes", "11"]
        }, expect: ["100000x100000", "limit"]),
        // Checkpoints
        Row(area: "checkpoint", input: "not an HDF5 file", arguments: { ["checkpoint", "inspect", try write("not hdf5", $0, "model_0000001.h5")] },
            expect: ["model_0000001.h5", "file signature not found"]),
        Row(area: "checkpoint", input: "truncated to half its size", arguments: { dir in
            let data = try Data(contentsOf: checkpoint)
            let path = dir.appendingPathComponent("model_0000001.h5")
            try data.prefix(data.count / 2).write(to: path)
            return ["checkpoint", "inspect", path.path]
        }, expect: ["model_0000001.h5", "truncated"]),
        Row(area: "checkpoint", input: "a dataset claiming 2·10⁹ elements in a 34 KB file (tools/make_hostile_checkpoint.py)", arguments: { _ in
            ["checkpoint", "inspect", try XCTUnwrap(Bundle.module.url(forResource: "huge_claim", withExtension: "h5", subdirectory: "Fixtures")).path]
        }, expect: ["/model/stem.3.weight", "claims more than"]),
        Row(area: "checkpoint", input: "one weight byte flipped", arguments: { dir in
            var data = try Data(contentsOf: checkpoint)
            // The last dataset's data sit just before the file's end; flip a byte there.
            data[data.count - 200] ^= 0x40
            let path = dir.appendingPathComponent("model_0000001.h5")
            try data.write(to: path)
            return ["checkpoint", "inspect", path.path]
        }, expect: ["model_0000001.h5", "do not match the checksum"]),
        Row(area: "checkpoint", input: "`--resume` where the only checkpoint is damaged", arguments: { dir in
            let run = dir.appendingPathComponent("run")
            try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
            try Data("garbage".utf8).write(to: run.appendingPathComponent("model_0000001.h5"))
            try Data("model_0000001.h5\n".utf8).write(to: run.appendingPathComponent("last_checkpoint"))
            return demo(demoConfig, ["--resume"], out: dir)
        }, expect: ["no loadable checkpoint"]),
        Row(area: "checkpoint", input: "MODEL.WEIGHTS of another network", arguments: { dir in
            ["train-seg", "--config", segConfig, "DATASETS.ROOT", root.appendingPathComponent("seg/ADEChallengeData2016").path,
             "OUTPUT_DIR", dir.appendingPathComponent("run").path, "SOLVER.IMS_PER_BATCH", "2", "MODEL.WEIGHTS", checkpoint.path]
        }, expect: ["MODEL.WEIGHTS", "shares no tensor name"]),
        Row(area: "checkpoint", input: "fresh run into a directory holding a run", arguments: { dir in
            let run = dir.appendingPathComponent("run")
            try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: checkpoint, to: run.appendingPathComponent("model_0000001.h5"))
            try Data("model_0000001.h5\n".utf8).write(to: run.appendingPathComponent("last_checkpoint"))
            return demo(demoConfig, out: dir)
        }, expect: ["already holds a run", "--resume"]),
        // Pretrained weights (.pth / .pkl, the hostile files of tools/pytorch/make_weights_fixtures.py)
        Row(area: "weights", input: "MODEL.WEIGHTS: a .pth whose pickle calls os.system", arguments: { dir in
            ["train-seg", "--config", segConfig, "DATASETS.ROOT", root.appendingPathComponent("seg/ADEChallengeData2016").path,
             "OUTPUT_DIR", dir.appendingPathComponent("run").path, "SOLVER.IMS_PER_BATCH", "2", "MODEL.WEIGHTS", weightsFixture("hostile_os_system.pth")]
        }, expect: ["MODEL.WEIGHTS", "hostile_os_system.pth", "posix.system", "nothing was executed"]),
        Row(area: "weights", input: "MODEL.WEIGHTS file missing", arguments: { dir in
            ["train-seg", "--config", segConfig, "DATASETS.ROOT", root.appendingPathComponent("seg/ADEChallengeData2016").path,
             "OUTPUT_DIR", dir.appendingPathComponent("run").path, "SOLVER.IMS_PER_BATCH", "2", "MODEL.WEIGHTS", dir.appendingPathComponent("R-50.pkl").path]
        }, expect: ["MODEL.WEIGHTS", "R-50.pkl", "no such file", "docs/weights.md"]),
        Row(area: "weights", input: "a pickle calling builtins.eval", arguments: { _ in ["weights", "inspect", weightsFixture("hostile_eval.pkl")] },
            expect: ["hostile_eval.pkl", "eval", "not on the state-dict allowlist"]),
        Row(area: "weights", input: "a .pth cut at 60 % of its length", arguments: { dir in
            ["weights", "import", weightsFixture("hostile_truncated.pth"), "--out", dir.appendingPathComponent("w.h5").path]
        }, expect: ["hostile_truncated.pth", "end-of-central-directory"]),
        Row(area: "weights", input: "a storage shorter than its tensor", arguments: { _ in ["weights", "inspect", weightsFixture("hostile_short_storage.pth")] },
            expect: ["hostile_short_storage.pth", "has 8 bytes"]),
        Row(area: "weights", input: "a tensor of size (-1,)", arguments: { _ in ["weights", "inspect", weightsFixture("hostile_negative_size.pth")] },
            expect: ["negative size"]),
        Row(area: "weights", input: "a tensor of size (2⁴⁰, 2⁴⁰)", arguments: { _ in ["weights", "inspect", weightsFixture("hostile_huge_size.pth")] },
            expect: ["1099511627776"]),
        Row(area: "weights", input: "a list that contains itself", arguments: { _ in ["weights", "inspect", weightsFixture("hostile_recursive.pkl")] },
            expect: ["recursive structure"]),
        Row(area: "weights", input: "one storage byte flipped", arguments: { _ in ["weights", "inspect", weightsFixture("hostile_bad_crc.pth")] },
            expect: ["CRC-32"]),
        // Loss-network files
        Row(area: "loss network", input: "`--lossnet` is not HDF5", arguments: { dir in
            ["lossnet", "eval", "--lossnet", try write("{}", dir, "ln.h5"), "--pred", "p.h5", "--target", "t.h5"]
        }, expect: ["ln.h5", "file signature not found"]),
        Row(area: "loss network", input: "`--pred` file without a `pred` dataset", arguments: { dir in
            let p = root.appendingPathComponent("demo/model_0000001.h5").path   // an HDF5 file without `pred`
            return ["lossnet", "eval", "--lossnet", root.appendingPathComponent("lossnet.h5").path, "--pred", p, "--target", p]
        }, expect: ["'pred'", "no such dataset"]),
        // Results files
        Row(area: "results", input: "results file is not a list", arguments: { ["coco-eval", "--gt", valJSON, "--results", try write("{}", $0, "r.json"), "--iou-type", "bbox"] },
            expect: ["not a list of results"]),
        Row(area: "results", input: "unknown category id", arguments: { dir in
            ["coco-eval", "--gt", valJSON, "--results", try write("[{\"image_id\": 1, \"category_id\": 99, \"score\": 0.5, \"bbox\": [1, 1, 5, 5]}]", dir, "r.json"), "--iou-type", "bbox"]
        }, expect: ["category id 99"]),
        Row(area: "results", input: "score that is not a number", arguments: { dir in
            ["coco-eval", "--gt", valJSON, "--results", try write("[{\"image_id\": 1, \"category_id\": 1, \"score\": \"high\", \"bbox\": [1, 1, 5, 5]}]", dir, "r.json"), "--iou-type", "bbox"]
        }, expect: ["'score' is not a number"]),
        Row(area: "results", input: "compressed RLE outside the alphabet", arguments: { dir in
            ["coco-eval", "--gt", valJSON, "--results", try write("[{\"image_id\": 1, \"category_id\": 1, \"score\": 0.3, \"segmentation\": {\"size\": [64, 64], \"counts\": \"!!!!\"}}]", dir, "r.json"),
             "--iou-type", "segm"]
        }, expect: ["malformed RLE"]),
        Row(area: "results", input: "results for an image the ground truth lacks", arguments: { dir in
            ["coco-eval", "--gt", valJSON, "--results", try write("[{\"image_id\": 77, \"category_id\": 1, \"score\": 0.5, \"bbox\": [1, 1, 5, 5]}]", dir, "r.json"), "--iou-type", "bbox"]
        }, expect: ["77"]),
    ]

    func testEveryMalformedInputIsAClearError() throws {
        XCTAssertGreaterThanOrEqual(Self.rows.count, 30)
        print("| area | input | error the user sees (first line) |")
        print("|---|---|---|")
        for (i, row) in Self.rows.enumerated() {
            let dir = Self.root.appendingPathComponent("row\(i)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let args = try row.arguments(dir)
            let before = try snapshot(dir)
            let r = try ProcessRunner.runReportingSignals(ProcessRunner.percepDist, args, timeout: 120)
            let what = "\(row.area): \(row.input)"
            XCTAssertFalse(r.signalled, "\(what): ended on signal \(r.status)\n\(r.err)")
            XCTAssertNotEqual(r.status, 0, "\(what): exit 0\n\(r.out)")
            XCTAssertLessThan(r.seconds, 60, "\(what): took \(r.seconds) s")
            for text in row.expect { XCTAssertTrue(r.err.contains(text), "\(what): stderr lacks '\(text)':\n\(r.err)") }
            for trace in ["Fatal error", "Stack dump", "Current stack trace", "Segmentation fault"] {
                XCTAssertFalse(r.err.contains(trace), "\(what): \(trace)\n\(r.err)")
            }
            // Nothing that existed before the run changed (the run may add an empty output dir).
            let after = try snapshot(dir)
            for (path, data) in before { XCTAssertEqual(after[path], data, "\(what): \(path) changed") }
            let line = r.err.split(separator: "\n").first { $0.contains("rror") } ?? r.err.split(separator: "\n").first ?? ""
            print("| \(row.area) | \(row.input) | `\(line.replacingOccurrences(of: Self.root.path, with: "…").replacingOccurrences(of: Bundle.module.bundlePath, with: "…").replacingOccurrences(of: "|", with: "\\|").prefix(220))` |")
        }
    }

    /// Every regular file under `dir` with its bytes.
    func snapshot(_ dir: URL) throws -> [String: Data] {
        var out: [String: Data] = [:]
        guard let walker = FileManager.default.enumerator(atPath: dir.path) else { return out }
        for case let path as String in walker {
            var isDirectory: ObjCBool = false
            let full = dir.appendingPathComponent(path).path
            if FileManager.default.fileExists(atPath: full, isDirectory: &isDirectory), !isDirectory.boolValue,
               let data = FileManager.default.contents(atPath: full), data.count < 50_000_000 {
                out[path] = data
            }
        }
        return out
    }
}
