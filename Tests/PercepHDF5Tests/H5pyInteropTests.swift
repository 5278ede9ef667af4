import Foundation
import XCTest
import PercepCore
import PercepHDF5

/// Files written here must load in h5py as `{k: f['model'][k][()] for k in f['model']}`, and
/// files h5py writes must load here. h5py is not installed in CI, so these tests skip without it.
final class H5pyInteropTests: HDF5TestCase {
    /// Runs `python3 -c script args…`; returns its exit status, stdout and stderr.
    func python(_ script: String, _ arguments: [String] = []) throws -> (status: Int32, out: String, err: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script] + arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read before waiting so a full pipe cannot block the child.
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
    }

    override func setUpWithError() throws {
        try super.setUpWithError()
        let probe = try? python("import h5py, numpy")
        try XCTSkipUnless(probe?.status == 0, "h5py is not installed for python3")
    }

    func testH5pyReadsAFileWrittenHere() throws {
        let path = file("swift.h5")
        let weight = Tensor(shape: [2, 3, 2, 2], values: (0..<24).map { Float($0) / 7 - 1 })
        let mean = Tensor(shape: [3], values: [0.5, -0.25, 1e-8])
        do {
            let f = try HDF5File(creating: path)
            try f.write(weight, at: "model/layer1.0.conv1.weight")
            try f.write(mean, at: "model/layer1.0.bn1.running_mean")
            try f.write(Tensor(scalar: 2.5), at: "model/scale")
            for (name, value) in HDF5FileTests.everyKind { try f.setAttribute(name, value) }
        }
        let script = """
        import sys, json, h5py, numpy as np
        with h5py.File(sys.argv[1], 'r') as f:
            sd = {k: f['model'][k][()] for k in f['model']}
            tensors = {k: {'dtype': str(v.dtype), 'shape': list(np.shape(v)), 'values': np.ravel(v).astype(float).tolist()} for k, v in sd.items()}
            def attr(v):
                if isinstance(v, str): return {'kind': 'str', 'values': [v]}
                a = np.asarray(v)
                return {'kind': str(a.dtype) + ('[]' if a.ndim else ''), 'values': [str(x) for x in a.ravel().tolist()]}
            attrs = {k: attr(v) for k, v in f.attrs.items()}
        print(json.dumps({'keys': list(sd), 'tensors': tensors, 'attrs': attrs}))
        """
        let result = try python(script, [path])
        XCTAssertEqual(result.status, 0, result.err)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.out.utf8)) as? [String: Any])

        XCTAssertEqual(json["keys"] as? [String], ["layer1.0.bn1.running_mean", "layer1.0.conv1.weight", "scale"])
        let tensors = try XCTUnwrap(json["tensors"] as? [String: [String: Any]])
        for (name, t) in [("layer1.0.conv1.weight", weight), ("layer1.0.bn1.running_mean", mean), ("scale", Tensor(scalar: 2.5))] {
            let entry = try XCTUnwrap(tensors[name], name)
            XCTAssertEqual(entry["dtype"] as? String, "float32", name)
            XCTAssertEqual(entry["shape"] as? [Int], t.shape, name)
            XCTAssertEqual((entry["values"] as? [Double])?.map { Float($0) }, t.values, name)
        }

        let attrs = try XCTUnwrap(json["attrs"] as? [String: [String: Any]])
        XCTAssertEqual(Set(attrs.keys), Set(HDF5FileTests.everyKind.map(\.0)))
        for (name, value) in HDF5FileTests.everyKind {
            let entry = try XCTUnwrap(attrs[name], name)
            let kind = entry["kind"] as? String
            let values = try XCTUnwrap(entry["values"] as? [String], name)
            switch value {
            case .string(let s): XCTAssertEqual(kind, "str", name); XCTAssertEqual(values, [s], name)
            case .int(let v): XCTAssertEqual(kind, "int64", name); XCTAssertEqual(values.map { Int64($0) }, [v], name)
            case .ints(let v): XCTAssertEqual(kind, "int64[]", name); XCTAssertEqual(values.map { Int64($0)! }, v, name)
            case .double(let v): XCTAssertEqual(kind, "float64", name); XCTAssertEqual(values.map { Double($0) }, [v], name)
            case .doubles(let v): XCTAssertEqual(kind, "float64[]", name); XCTAssertEqual(values.map { Double($0)! }, v, name)
            case .uint(let v): XCTAssertEqual(kind, "uint64", name); XCTAssertEqual(values.map { UInt64($0) }, [v], name)
            }
        }
    }

    func testReadsAFileWrittenByH5py() throws {
        let path = file("h5py.h5")
        let script = """
        import sys, h5py, numpy as np
        with h5py.File(sys.argv[1], 'w') as f:
            m = f.create_group('model')
            m['layer1.0.conv1.weight'] = (np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2) / 7).astype(np.float32)
            m['fc.bias'] = np.array([0.5, -1.25, 3.0])
            m['scale'] = np.float32(2.5)
            m['layer1.0.bn1.num_batches_tracked'] = np.int64(7)
            m.attrs['note'] = 'group attribute'
            f.attrs['name'] = 'résumé'
            f.attrs['fixed'] = np.bytes_(b'abc')
            f.attrs['one'] = ['single']
            f.attrs['step'] = 42
            f.attrs['small'] = np.int16(-3)
            f.attrs['shape'] = [1, 2, 3]
            f.attrs['lr'] = 0.1
            f.attrs['half'] = np.float32(0.5)
            f.attrs['betas'] = [0.9, 0.999]
            f.attrs['seed'] = np.uint64(2**64 - 1)
            f.attrs['useeds'] = np.array([1, 2], dtype=np.uint64)
            f.attrs['flag'] = True
            f.attrs['matrix'] = np.zeros((2, 2))
            f.attrs['words'] = ['a', 'b']
        """
        let result = try python(script, [path])
        XCTAssertEqual(result.status, 0, result.err)

        let f = try HDF5File(reading: path)
        XCTAssertEqual(try f.datasetNames(in: "model"),
                       ["fc.bias", "layer1.0.bn1.num_batches_tracked", "layer1.0.conv1.weight", "scale"])
        let weight = try f.readTensor(at: "model/layer1.0.conv1.weight")
        XCTAssertEqual(weight.shape, [2, 3, 2, 2])
        XCTAssertEqual(weight.values, (0..<24).map { Float($0) / 7 })
        let bias = try f.readTensor(at: "model/fc.bias")  // float64 in the file
        XCTAssertEqual(bias.shape, [3])
        XCTAssertEqual(bias.values, [0.5, -1.25, 3.0])
        XCTAssertEqual(try f.readTensor(at: "model/scale").shape, [])
        XCTAssertEqual(try f.readTensor(at: "model/scale").item, 2.5)
        XCTAssertThrowsError(try f.readTensor(at: "model/layer1.0.bn1.num_batches_tracked")) { error in
            XCTAssertTrue("\(error)".contains("integer"), "\(error)")
        }

        XCTAssertEqual(try f.attribute("note", on: "model"), .string("group attribute"))
        XCTAssertEqual(try f.attribute("name"), .string("résumé"))
        XCTAssertEqual(try f.attribute("fixed"), .string("abc"))
        XCTAssertEqual(try f.attribute("one"), .string("single"))
        XCTAssertEqual(try f.attribute("step"), .int(42))
        XCTAssertEqual(try f.attribute("small"), .int(-3))
        XCTAssertEqual(try f.attribute("shape"), .ints([1, 2, 3]))
        XCTAssertEqual(try f.attribute("lr"), .double(0.1))
        XCTAssertEqual(try f.attribute("half"), .double(0.5))
        XCTAssertEqual(try f.attribute("betas"), .doubles([0.9, 0.999]))
        XCTAssertEqual(try f.attribute("seed"), .uint(UInt64.max))
        XCTAssertEqual(try f.attribute("useeds"), .ints([1, 2]))
        for unsupported in ["flag", "matrix", "words"] {
            XCTAssertThrowsError(try f.attribute(unsupported), unsupported) { error in
                XCTAssertTrue(error is HDF5Error, "\(error)")
            }
        }
    }
}
