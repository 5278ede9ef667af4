import Foundation
import PercepCore
import PercepNN

extension Communicator {
    /// Checks that every rank holds the same facts (parameter count, shapes hash, config hash,
    /// loss-network fingerprint, code version, …); any disagreement stops every rank with a
    /// message naming the fact and each rank's value.
    public func verifyReplicas(_ facts: [(name: String, value: Int64)]) throws {
        let all = allgather(facts.map(\.value), name: "replica check")
        var problems: [String] = []
        for (i, fact) in facts.enumerated() {
            let values = all.map { $0[i] }
            if Set(values).count > 1 {
                let byRank = values.enumerated().map { "rank \($0.offset): \(String(UInt64(bitPattern: $0.element), radix: 16))" }
                problems.append("\(fact.name) differs (\(byRank.joined(separator: ", ")))")
            }
        }
        if !problems.isEmpty {
            throw DistributedError(rank: rank, message: "replicas disagree: " + problems.joined(separator: "; "))
        }
    }

    /// Copies every parameter and buffer of `module` from rank 0 to all ranks (one coalesced
    /// broadcast).
    public func broadcastState(of module: Module) {
        let tensors = module.stateDict().map(\.1)
        let total = tensors.map(\.count).reduce(0, +)
        let staging = Storage(count: total)
        var offset = 0
        for t in tensors { (staging.base + offset).update(from: t.data, count: t.count); offset += t.count }
        broadcast(UnsafeMutableRawPointer(staging.base), bytes: total * MemoryLayout<Float>.stride, name: "broadcast of the model state")
        offset = 0
        for t in tensors { t.data.update(from: staging.base + offset, count: t.count); offset += t.count }
    }

    /// Makes every BatchNorm2d in `module` synchronized: batch statistics (and their backward
    /// sums) are all-reduced across ranks, so training matches one rank with the global batch.
    public func synchronizeBatchNorm(in module: Module) {
        for (_, m) in module.namedModules() {
            guard let bn = m as? BatchNorm2d else { continue }
            bn.reduceStats = { [unowned self] a, b, count in
                var packed = a + b + [Double(count)]
                self.allreduceSum(&packed, name: "sync batch norm")
                let c = a.count
                a = Array(packed[0..<c]); b = Array(packed[c..<(2 * c)]); count = Int(packed[2 * c])
            }
        }
    }
}

/// FNV-1a over every parameter's name and shape: equal on ranks that built the same model.
public func shapesHash(_ module: Module) -> Int64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for (name, t) in module.stateDict() {
        for b in "\(name)\(t.shape)".utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
    }
    return Int64(bitPattern: h)
}
