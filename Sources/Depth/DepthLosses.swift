import Foundation
import PercepCore

/// VNL's training losses: the weighted cross-entropy over depth bins and the virtual-normal loss
/// (`lib/models/{WCEL_loss,VNL_loss}.py`), each fused into one pass with its gradient.
public enum DepthLoss {
    /// −(1/N_valid) Σ_pixels Σ_i W[bin, i] · log_softmax_i(logits): `weights` from
    /// `DepthBins.crossEntropyWeights` (C × C), `bins` per pixel in (image, y, x) order from
    /// `DepthBins.binned`. Padding pixels (bin C + 1) match no row and weigh nothing; N_valid counts
    /// the pixels whose clamped depth is > 0 (all but padding).
    /// logits: [N, C, H, W] → scalar.
    public static func weightedCrossEntropy(_ logits: Tensor, bins: [Int32], clampedDepth: [Float], weights: [Float]) -> Tensor {
        precondition(logits.rank == 4, "WCE: logits \(logits.shape) must be [N, C, H, W]")
        let (n, c, plane) = (logits.shape[0], logits.shape[1], logits.shape[2] * logits.shape[3])
        precondition(bins.count == n * plane && clampedDepth.count == n * plane && weights.count == c * c, "WCE: sizes do not match \(logits.shape)")
        let logP = Tape.withoutGrad { logits.logSoftmax(axis: 1) }
        let valid = clampedDepth.reduce(0) { $0 + ($1 > 0 ? 1 : 0) }
        // Blocks of up to 256 positions of one image: the inner loops run along one channel's
        // contiguous row, the W[bin, k] gather stays in cache (C × C floats).
        let block = Swift.max(1, Swift.min(256, plane)), blocksPerImage = (plane + block - 1) / block
        let lp = logP.data
        // W with one more row of zeros: padding pixels (bin C + 1) read it, so the inner loops
        // need no branch and padding contributes exactly 0 to the loss and its gradient.
        let paddedWeights = weights + [Float](repeating: 0, count: c)
        let rowSums = (0..<c).map { b in (0..<c).reduce(Float(0)) { $0 + weights[b * c + $1] } } + [0]
        let weightRow = bins.map { Int($0) < c ? Int($0) : c }
        // One partial sum per block, added in block order, so the loss does not depend on the
        // number of threads.
        var partial = [Double](repeating: 0, count: n * blocksPerImage)
        partial.withUnsafeMutableBufferPointer { partial in
            paddedWeights.withUnsafeBufferPointer { w in weightRow.withUnsafeBufferPointer { wr in
                parallelChunks(n * blocksPerImage, grain: 1) { range in
                    let s = UnsafeMutablePointer<Float>.allocate(capacity: block)
                    defer { s.deallocate() }
                    for task in range {
                        let img = task / blocksPerImage, q0 = (task % blocksPerImage) * block
                        let len = Swift.min(block, plane - q0), first = img * c * plane + q0, b0 = img * plane + q0
                        s.update(repeating: 0, count: len)
                        for k in 0..<c {
                            let row = first + k * plane
                            for j in 0..<len { s[j] += w[wr[b0 + j] * c + k] * lp[row + j] }
                        }
                        var sum = 0.0
                        for j in 0..<len { sum += Double(s[j]) }
                        partial[task] = sum
                    }
                }
            } }
        }
        let total = partial.reduce(0, +)
        let scale = valid > 0 ? 1 / Double(valid) : 0
        let out = Tensor(scalar: Float(-total * scale))
        let inShape = logits.shape
        Tape.record(out, inputs: [logits]) { [logP] g in
            // d/dz_k = −(1/N)(W[b,k] − p_k Σ_i W[b,i]); padding reads the zero row and gets 0.
            let dz = Tensor(uninitialized: inShape)
            let gz = dz.data, lp = logP.data, f = g.data[0] * Float(scale)
            paddedWeights.withUnsafeBufferPointer { w in weightRow.withUnsafeBufferPointer { wr in
                parallelChunks(n * blocksPerImage, grain: 1) { range in
                    for task in range {
                        let img = task / blocksPerImage, q0 = (task % blocksPerImage) * block
                        let len = Swift.min(block, plane - q0), first = img * c * plane + q0, b0 = img * plane + q0
                        for k in 0..<c {
                            let row = first + k * plane
                            for j in 0..<len {
                                let b = wr[b0 + j]
                                gz[row + j] = -f * (w[b * c + k] - Foundation.exp(lp[row + j]) * rowSums[b])
                            }
                        }
                    }
                }
            } }
            return [dz]
        }
        return out
    }

    /// The settings of the virtual-normal loss (VNL's defaults).
    public struct VirtualNormalSettings: Sendable {
        /// Focal lengths in pixels (519 for NYU at any crop: the depth carries the resize).
        public var focalX: Float = 519, focalY: Float = 519
        /// Triplets drawn per step: int(ratio · H · W).
        public var sampleRatio: Float = 0.15
        /// |cos| above which two edges count as parallel.
        public var cosThreshold: Float = 0.867
        /// Edge components below this are "near".
        public var nearThreshold: Float = 0.005
        /// Ground-truth z at or below this drops the triplet.
        public var minZ: Float = 1e-4
        /// Share of the smallest per-triplet losses dropped before the mean.
        public var trim: Float = 0.25
        /// VNL's settings.
        public init() {}
    }

    /// `count` triplets of flat pixel indices (row · W + col) drawn uniformly with replacement,
    /// point by point (all first points, then all second, then all third, as VNL draws them), from
    /// the trainer's seeded RNG; the same triplets serve every image of the batch.
    public static func sampleTriplets(count: Int, pixels: Int, rng: inout SeededRNG) -> [(Int32, Int32, Int32)] {
        let a = (0..<count).map { _ in Int32(rng.next() % UInt64(pixels)) }
        let b = (0..<count).map { _ in Int32(rng.next() % UInt64(pixels)) }
        let c = (0..<count).map { _ in Int32(rng.next() % UInt64(pixels)) }
        return (0..<count).map { (a[$0], b[$0], c[$0]) }
    }

    /// VNL's virtual-normal loss between the predicted depth and the (clamped) ground truth on
    /// `triplets`: both are back-projected with the principal point at (W div 2, H div 2) and
    /// x = (u − u0)|z|/fx, y = (v − v0)|z|/fy; triplets are kept where all three ground-truth z
    /// exceed `minZ` and the ground-truth points are neither near (some |Δx|, |Δy| and |Δz| all
    /// below the threshold) nor colinear (more than 3 entries of the 3 × 3 edge |cos| matrix, its
    /// diagonal included, above the threshold), decided in float32. Per kept triplet and image,
    /// Σ|n̂_gt − n̂_pred| of the unit normals (a zero normal is divided by 0.01 instead); all are
    /// pooled, sorted, the lowest `trim` share dropped, and the rest averaged.
    ///
    /// VNL computes this on the whole batch; a data-parallel job passes `pool`, which returns
    /// every rank's per-triplet losses concatenated in rank order, this rank's offset in them and
    /// the world size (`allRanks`). The trim is then decided on the global pool (ties broken by
    /// rank, then image and triplet) and this rank's loss is its survivors' sum divided by the
    /// global survivor count / world size, so that the ranks' average, and the averaged
    /// gradient, are the one-rank loss of the whole batch.
    /// prediction: [N, 1, H, W]; groundTruth: N·H·W clamped depths → (loss scalar, kept per image,
    /// and which kept triplets survived the trim, per image).
    public static func virtualNormal(_ prediction: Tensor, groundTruth: [Float], triplets: [(Int32, Int32, Int32)],
                                     settings: VirtualNormalSettings = .init(),
                                     pool: ([Double]) -> (allRanks: [Double], offset: Int, worldSize: Int) = { ($0, 0, 1) })
        -> (loss: Tensor, kept: [[Bool]], used: [[Bool]]) {
        precondition(prediction.rank == 4 && prediction.shape[1] == 1, "VNL: prediction \(prediction.shape) must be [N, 1, H, W]")
        let (n, h, w) = (prediction.shape[0], prediction.shape[2], prediction.shape[3]), plane = h * w
        precondition(groundTruth.count == n * plane, "VNL: \(groundTruth.count) ground-truth depths for \(n * plane) pixels")
        let u0 = Float(w / 2), v0 = Float(h / 2), s = settings
        func point(_ z: Float, _ index: Int32) -> SIMD3<Float> {
            let u = Float(Int(index) % w), v = Float(Int(index) / w)
            return SIMD3((u - u0) * Swift.abs(z) / s.focalX, (v - v0) * Swift.abs(z) / s.focalY, z)
        }
        // The normals in double from double points (the filter above stays in float32, as VNL's).
        func pointD(_ z: Float, _ index: Int32) -> SIMD3<Double> {
            let u = Double(Int(index) % w), v = Double(Int(index) / w), zd = Double(z)
            return SIMD3((u - Double(u0)) * Swift.abs(zd) / Double(s.focalX), (v - Double(v0)) * Swift.abs(zd) / Double(s.focalY), zd)
        }
        func unitNormal(_ p1: SIMD3<Double>, _ p2: SIMD3<Double>, _ p3: SIMD3<Double>) -> (unit: SIMD3<Double>, raw: SIMD3<Double>, norm: Double) {
            let a = p2 - p1, b = p3 - p1
            let raw = SIMD3(a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x)
            let norm = (raw * raw).sum().squareRoot()
            return (raw / (norm == 0 ? 0.01 : norm), raw, norm)
        }
        let pred = prediction.data
        var kept = [[Bool]](repeating: [], count: n)
        var terms: [(loss: Double, image: Int, triplet: Int)] = []
        for img in 0..<n {
            let gt = { (i: Int32) in groundTruth[img * plane + Int(i)] }
            kept[img] = triplets.map { t in
                let (z1, z2, z3) = (gt(t.0), gt(t.1), gt(t.2))
                guard z1 > s.minZ, z2 > s.minZ, z3 > s.minZ else { return false }
                let p1 = point(z1, t.0), p2 = point(z2, t.1), p3 = point(z3, t.2)
                let edges = [p2 - p1, p3 - p1, p3 - p2]
                let lengths = edges.map { ($0 * $0).sum().squareRoot() }
                var parallel = 0
                for i in 0..<3 { for j in 0..<3 {
                    let cos = (edges[i] * edges[j]).sum() / (lengths[i] * lengths[j] + 1e-8)
                    if Swift.abs(cos) > s.cosThreshold { parallel += 1 }
                } }
                let near = edges.contains { Swift.abs($0.x) < s.nearThreshold } && edges.contains { Swift.abs($0.y) < s.nearThreshold }
                    && edges.contains { Swift.abs($0.z) < s.nearThreshold }
                return parallel <= 3 && !near
            }
            for (k, t) in triplets.enumerated() where kept[img][k] {
                let g = unitNormal(pointD(gt(t.0), t.0), pointD(gt(t.1), t.1), pointD(gt(t.2), t.2)).unit
                let zp = { (i: Int32) in pred[img * plane + Int(i)] }
                let p = unitNormal(pointD(zp(t.0), t.0), pointD(zp(t.1), t.1), pointD(zp(t.2), t.2)).unit
                let d = g - p
                terms.append((Swift.abs(d.x) + Swift.abs(d.y) + Swift.abs(d.z), img, k))
            }
        }
        precondition(s.trim >= 0 && s.trim < 1, "VNL: trim \(s.trim) must be in [0, 1)")
        let (pooled, offset, worldSize) = pool(terms.map(\.loss))
        precondition(pooled.count >= offset + terms.count, "VNL: the pool holds \(pooled.count) losses, this rank's start at \(offset)")
        // Stable sort so that ties keep their (rank, image, triplet) order, as the gradient must know which were dropped.
        let order = pooled.indices.sorted { pooled[$0] < pooled[$1] || (pooled[$0] == pooled[$1] && $0 < $1) }
        let first = Int(Float(pooled.count) * s.trim)
        let survivorCount = pooled.count - first
        let used = order[first...].filter { $0 >= offset && $0 < offset + terms.count }.map { $0 - offset }
        // The rank's share of the global mean: Σ own survivors ÷ (global survivors ÷ ranks).
        let perRank = Double(survivorCount) / Double(worldSize)
        let mean = survivorCount == 0 ? 0 : used.reduce(0.0) { $0 + terms[$1].loss } / perRank
        let out = Tensor(scalar: Float(mean))
        var survivors = [[Bool]](repeating: [Bool](repeating: false, count: triplets.count), count: n)
        for index in used { survivors[terms[index].image][terms[index].triplet] = true }
        let inShape = prediction.shape
        Tape.record(out, inputs: [prediction]) { [prediction] g in
            let dz = Tensor.zeros(inShape)
            guard !used.isEmpty else { return [dz] }
            let scale = Double(g.data[0]) / perRank, pred = prediction.data
            for index in used {
                let (img, k) = (terms[index].image, terms[index].triplet), t = triplets[k]
                let ids = [t.0, t.1, t.2]
                let gtZ = ids.map { groundTruth[img * plane + Int($0)] }, prZ = ids.map { pred[img * plane + Int($0)] }
                let ng = unitNormal(pointD(gtZ[0], t.0), pointD(gtZ[1], t.1), pointD(gtZ[2], t.2)).unit
                let pts = zip(prZ, ids).map { pointD($0.0, $0.1) }
                let (unit, _, norm) = unitNormal(pts[0], pts[1], pts[2])
                // d/dn̂ of Σ|n̂_gt − n̂| is −sign(n̂_gt − n̂); through n̂ = n/‖n‖ (or n/0.01).
                let gUnit = SIMD3<Double>((ng - unit).x > 0 ? -1 : ((ng - unit).x < 0 ? 1 : 0),
                                          (ng - unit).y > 0 ? -1 : ((ng - unit).y < 0 ? 1 : 0),
                                          (ng - unit).z > 0 ? -1 : ((ng - unit).z < 0 ? 1 : 0)) * scale
                let gRaw = norm == 0 ? gUnit / 0.01 : (gUnit - unit * (gUnit * unit).sum()) / norm
                // n = a × b with a = P2 − P1, b = P3 − P1: ∂/∂a = b × g, ∂/∂b = g × a.
                let a = pts[1] - pts[0], b = pts[2] - pts[0]
                func cross(_ x: SIMD3<Double>, _ y: SIMD3<Double>) -> SIMD3<Double> {
                    SIMD3(x.y * y.z - x.z * y.y, x.z * y.x - x.x * y.z, x.x * y.y - x.y * y.x)
                }
                let ga = cross(b, gRaw), gb = cross(gRaw, a)
                let gPoints = [-(ga + gb), ga, gb]
                for (j, id) in ids.enumerated() {
                    // P = ((u − u0)|z|/fx, (v − v0)|z|/fy, z).
                    let u = Double(Int(id) % w) - Double(u0), v = Double(Int(id) / w) - Double(v0)
                    let sign: Double = prZ[j] > 0 ? 1 : (prZ[j] < 0 ? -1 : 0)
                    let dzj = gPoints[j].x * u * sign / Double(s.focalX) + gPoints[j].y * v * sign / Double(s.focalY) + gPoints[j].z
                    dz.data[img * plane + Int(id)] += Float(dzj)
                }
            }
            return [dz]
        }
        return (out, kept, survivors)
    }
}
