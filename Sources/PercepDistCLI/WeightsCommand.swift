import ArgumentParser
import Checkpoint
import Foundation
import PercepCore
import PercepHDF5
import PretrainedWeights

/// `percep-dist weights …`: pretrained weights from PyTorch and detectron2 files, without Python.
struct WeightsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "weights", abstract: "Inspect and import PyTorch .pth and detectron2/Caffe2 .pkl weight files.",
        subcommands: [Inspect.self, Import.self])

    /// The model family whose names an import is written under.
    enum Target: String, ExpressibleByArgument, CaseIterable {
        case none, segmentation, condinst, lossnet

        var remap: NameRemap {
            switch self {
            case .none: return .identity
            case .segmentation: return .segmentation
            case .condinst: return .condInst
            case .lossnet: return .lossNetwork
            }
        }
    }

    /// `weights inspect SRC`: format, wrapper, every tensor's name, shape and dtype, totals.
    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List a weight file's tensors (name, shape, dtype) and total size.")
        @Argument(help: "A PyTorch .pth (zip or legacy), a pickled .pkl (detectron2, Caffe2) or an HDF5 weight file.") var source: String
        @Flag(help: "Print JSON instead of a table.") var json = false

        func run() throws {
            var rows: [(name: String, shape: [Int], dtype: String, bytes: Int)] = []
            var header: [String: Any] = ["file": source]
            if WeightsReader.isPickleOrZip(source) {
                let w = try WeightsReader.read(source)
                rows = w.tensors.map { ($0.name, $0.shape, $0.dtype.rawValue, $0.values.count * $0.dtype.size) }
                header["format"] = w.format.rawValue
                header["state_dict_key"] = w.wrapperKey ?? NSNull()
                header["renamed_from_caffe2"] = w.renamedFromCaffe2
                header["other_keys"] = w.otherKeys
                header["skipped"] = w.skipped.map { "\($0.name) (\($0.kind))" }
            } else {
                let file = try HDF5File.openChecked(reading: source)
                defer { try? file.close() }
                let group = try file.exists(CheckpointFile.modelGroup) ? CheckpointFile.modelGroup : "/"
                for name in try file.datasetNames(in: group) {
                    let shape = try file.shape(at: group == "/" ? "/" + name : group + "/" + name)
                    rows.append((name, shape, "float32", shape.reduce(1, *) * 4))
                }
                header["format"] = "HDF5"
            }
            let elements = rows.reduce(0) { $0 + $1.shape.reduce(1, *) }, bytes = rows.reduce(0) { $0 + $1.bytes }
            if json {
                header["tensors"] = rows.map { ["name": $0.name, "shape": $0.shape, "dtype": $0.dtype] as [String: Any] }
                header["count"] = rows.count
                header["elements"] = elements
                header["bytes"] = bytes
                let data = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
                return
            }
            print("file: \(source)")
            print("format: \(header["format"]!)" + ((header["state_dict_key"] as? String).map { ", state dict under '\($0)'" } ?? "")
                  + ((header["renamed_from_caffe2"] as? Bool) == true ? ", Caffe2 names renamed as detectron2 does" : ""))
            let shapes = rows.map { "[" + $0.shape.map(String.init).joined(separator: ", ") + "]" }
            let w0 = max(4, rows.map(\.name.count).max() ?? 0), w1 = max(5, shapes.map(\.count).max() ?? 0)
            func pad(_ s: String, _ w: Int) -> String { s + String(repeating: " ", count: max(0, w - s.count)) }
            print(pad("name", w0) + "  " + pad("shape", w1) + "  dtype")
            for (row, shape) in zip(rows, shapes) { print(pad(row.name, w0) + "  " + pad(shape, w1) + "  " + row.dtype) }
            print(String(format: "%d tensors, %d elements, %.1f MiB as stored", rows.count, elements, Double(bytes) / 1_048_576))
            if let other = header["other_keys"] as? [String], !other.isEmpty { print("other top-level keys (not weights): " + other.joined(separator: ", ")) }
            if let skipped = header["skipped"] as? [String], !skipped.isEmpty { print("entries that are not tensors: " + skipped.joined(separator: ", ")) }
        }
    }

    /// `weights import SRC --out W.h5 [--for FAMILY]`: the tensors as float32 in a checksummed HDF5 weight file.
    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Convert a .pth / .pkl state dict to an HDF5 weight file (float32, checksummed) that MODEL.WEIGHTS reads.",
            discussion: "MODEL.WEIGHTS also reads the .pth / .pkl file directly; importing once saves re-reading a large pickle on every rank.")
        @Argument(help: "A PyTorch .pth (zip or legacy) or pickled .pkl (detectron2, Caffe2) file.") var source: String
        @Option(help: "Output HDF5 file (replaced atomically).") var out: String
        @Option(name: .customLong("for"), help: "Rename for this model family: \(Target.allCases.map(\.rawValue).joined(separator: ", ")) (none keeps the file's names).")
        var target: Target = .none

        func run() throws {
            guard WeightsReader.isPickleOrZip(source) else {
                throw ValidationError("\(source): not a PyTorch zip or pickle file (HDF5 weight files need no import)")
            }
            let w = try WeightsReader.read(source)
            var out: [(name: String, tensor: Tensor)] = [], seen = Set<String>(), dropped = 0
            for t in w.tensors {
                guard let name = target.remap.map(t.name) else { dropped += 1; continue }
                guard seen.insert(name).inserted else { throw ValidationError("\(source): two tensors map to '\(name)'") }
                out.append((name, Tensor(shape: t.shape, values: t.values)))
            }
            try CheckpointWriter.writeWeights(out, source: (source as NSString).lastPathComponent, to: self.out)
            let converted = w.tensors.filter { $0.dtype != .float32 }.count
            print("wrote \(self.out): \(out.count) tensors from \(source) (\(w.format.rawValue))" +
                  (dropped > 0 ? ", \(dropped) classifier tensor(s) dropped" : "") +
                  (converted > 0 ? ", \(converted) converted to float32" : ""))
        }
    }
}
