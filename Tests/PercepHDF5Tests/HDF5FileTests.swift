import Foundation
import XCTest
import PercepCore
import PercepHDF5

/// Round trips through files written and read by the wrapper itself.
final class HDF5FileTests: HDF5TestCase {
    /// A tensor whose elements are distinct, non-round float32 values.
    func ramp(_ shape: [Int]) -> Tensor {
        let n = shape.reduce(1, *)
        return Tensor(shape: shape, values: (0..<n).map { Float($0) * 0.37 - 1.5 })
    }

    func testTensorsOfSeveralRanksRoundTrip() throws {
        let path = file("ranks.h5")
        let tensors: [(String, Tensor)] = [
            ("scalar", Tensor(scalar: 3.25)),
            ("vector", ramp([7])),
            ("image", ramp([2, 3, 4, 5])),
            ("empty", Tensor.zeros([0, 3])),
        ]
        do {
            let f = try HDF5File(creating: path)
            XCTAssertEqual(f.path, path)
            for (name, t) in tensors { try f.write(t, at: name) }
        }
        let f = try HDF5File(reading: path)
        for (name, t) in tensors {
            XCTAssertEqual(try f.shape(at: name), t.shape, name)
            let back = try f.readTensor(at: name)
            XCTAssertEqual(back.shape, t.shape, name)
            XCTAssertEqual(back.values, t.values, name)
        }
    }

    func testViewIntoLargerStorageWritesOnlyItsElements() throws {
        let path = file("view.h5")
        let storage = Storage(count: 10)
        for i in 0..<10 { storage.base[i] = Float(i) }
        let view = Tensor(shape: [2, 2], storage: storage, offset: 3)
        try HDF5File(creating: path).write(view, at: "v")
        XCTAssertEqual(try HDF5File(reading: path).readTensor(at: "v").values, [3, 4, 5, 6])
    }

    func testNestedGroupsWithDottedNamesAndListing() throws {
        let path = file("state.h5")
        let f = try HDF5File(creating: path)
        // Written out of order: listing is by name, not creation order.
        try f.write(ramp([4]), at: "model/layer1.0.bn1.running_mean")
        try f.write(ramp([4, 3, 3, 3]), at: "model/layer1.0.conv1.weight")
        try f.write(ramp([2]), at: "/model/fc.bias")
        try f.write(ramp([1]), at: "model/sub.group/deep/x")
        try f.write(ramp([1]), at: "top")

        XCTAssertEqual(try f.datasetNames(in: "model"),
                       ["fc.bias", "layer1.0.bn1.running_mean", "layer1.0.conv1.weight"])
        XCTAssertEqual(try f.datasetNames(in: "/model/"), try f.datasetNames(in: "model"))
        XCTAssertEqual(try f.groupNames(in: "model"), ["sub.group"])
        XCTAssertEqual(try f.datasetNames(), ["top"])
        XCTAssertEqual(try f.groupNames(in: "/"), ["model"])
        XCTAssertEqual(try f.datasetNames(in: "model/sub.group/deep"), ["x"])

        XCTAssertTrue(try f.exists("/"))
        XCTAssertTrue(try f.exists("model"))
        XCTAssertTrue(try f.exists("/model/layer1.0.conv1.weight"))
        XCTAssertTrue(try f.exists("model/sub.group/deep/x"))
        XCTAssertFalse(try f.exists("model/layer1.0.conv1"))
        XCTAssertFalse(try f.exists("missing/deeper/still"))
        XCTAssertFalse(try f.exists("model/fc.bias/below"))  // a dataset has no children
        XCTAssertEqual(try f.shape(at: "model/layer1.0.conv1.weight"), [4, 3, 3, 3])
        XCTAssertEqual(try f.readTensor(at: "/model/fc.bias").values, ramp([2]).values)
    }

    func testRewritingADatasetReplacesIt() throws {
        let path = file("rewrite.h5")
        let f = try HDF5File(creating: path)
        try f.write(ramp([2, 2]), at: "g/w")
        try f.write(Tensor(shape: [3], values: [9, 8, 7]), at: "g/w")
        XCTAssertEqual(try f.shape(at: "g/w"), [3])
        XCTAssertEqual(try f.readTensor(at: "g/w").values, [9, 8, 7])
        XCTAssertThrowsError(try f.write(ramp([1]), at: "g")) { error in
            XCTAssertTrue("\(error)".contains("group"), "\(error)")
        }
        XCTAssertEqual(try f.datasetNames(in: "g"), ["w"])
    }

    static let everyKind: [(String, HDF5AttributeValue)] = [
        ("format", .string("percep-dist checkpoint v1 — ünïcode ✓")),
        ("empty string", .string("")),
        ("step", .int(-9_223_372_036_854_775_807 - 1)),
        ("shape", .ints([3, -1, Int64.max])),
        ("no ints", .ints([])),
        ("lr", .double(0.1)),
        ("inf", .double(-.infinity)),
        ("betas", .doubles([0.9, 0.999, 1e-300])),
        ("no doubles", .doubles([])),
        ("seed", .uint(UInt64.max)),
    ]

    func testEveryAttributeKindRoundTripsOnRootGroupAndDataset() throws {
        let path = file("attrs.h5")
        do {
            let f = try HDF5File(creating: path)
            try f.write(ramp([2]), at: "model/w")
            for object in ["/", "model", "model/w"] {
                for (name, value) in Self.everyKind { try f.setAttribute(name, value, on: object) }
            }
            // Replacing an attribute may change its kind.
            try f.setAttribute("lr", .string("cosine"), on: "model")
        }
        let f = try HDF5File(reading: path)
        for object in ["/", "model", "/model/w"] {
            for (name, value) in Self.everyKind where !(object == "model" && name == "lr") {
                XCTAssertEqual(try f.attribute(name, on: object), value, "\(object)@\(name)")
            }
        }
        XCTAssertEqual(try f.attribute("lr", on: "model"), .string("cosine"))
        XCTAssertEqual(try f.attribute("step"), .int(Int64.min))
        XCTAssertNil(try f.attribute("absent"))
        XCTAssertNil(try f.attribute("absent", on: "model/w"))
        XCTAssertEqual(try f.attribute("seed")?.uintValue, UInt64.max)
        XCTAssertEqual(try f.attribute("shape")?.intsValue, [3, -1, Int64.max])
        XCTAssertNil(try f.attribute("shape")?.intValue)
        XCTAssertEqual(try f.attribute("format")?.stringValue, "percep-dist checkpoint v1 — ünïcode ✓")
        XCTAssertEqual(try f.attribute("lr")?.doubleValue, 0.1)
        XCTAssertEqual(try f.attribute("betas")?.doublesValue, [0.9, 0.999, 1e-300])
    }

    func testUpdatingKeepsContentsAndFlushCloseWork() throws {
        let path = file("update.h5")
        do {
            let f = try HDF5File(creating: path)
            try f.write(ramp([3]), at: "model/a")
            try f.setAttribute("step", .int(1))
            try f.flush()
            try f.close()
            try f.close()  // closing twice is harmless
            XCTAssertThrowsError(try f.readTensor(at: "model/a")) { error in
                XCTAssertTrue("\(error)".contains("closed"), "\(error)")
            }
        }
        do {
            let f = try HDF5File(updating: path)
            XCTAssertTrue(f.isWritable)
            try f.write(ramp([2]), at: "model/b")
            try f.setAttribute("step", .int(2))
        }
        let f = try HDF5File(reading: path)
        XCTAssertFalse(f.isWritable)
        XCTAssertEqual(try f.datasetNames(in: "model"), ["a", "b"])
        XCTAssertEqual(try f.attribute("step"), .int(2))
        XCTAssertThrowsError(try f.write(ramp([1]), at: "model/c")) { error in
            XCTAssertTrue("\(error)".contains("read-only"), "\(error)")
        }
        XCTAssertThrowsError(try f.setAttribute("x", .int(1)))
    }

    func testCreatingTruncatesAnExistingFile() throws {
        let path = file("trunc.h5")
        try HDF5File(creating: path).write(ramp([3]), at: "old")
        let f = try HDF5File(creating: path)
        XCTAssertFalse(try f.exists("old"))
        XCTAssertEqual(try f.datasetNames(), [])
    }
}
