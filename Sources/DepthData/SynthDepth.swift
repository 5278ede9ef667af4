import Dispatch
import Foundation
import PercepCore
import PercepHDF5

/// `synth depth`: rooms with boxes, ray-cast, written as the two official NYU files
/// (`nyu_depth_v2_labeled.mat` in MATLAB v7.3 layout and `splits.mat`), so that tests and demos go
/// through the same reader as the real data (../shared/specs/depth.md §7). Every surface is a
/// plane of known orientation, so virtual normals are exact; the texture is metric, so the image
/// shows the geometry.
public struct SynthDepthSpec: Sendable {
    /// Image rows and columns.
    public var height = 480, width = 640
    /// Focal length in pixels (principal point at (W div 2, H div 2)).
    public var focal: Double = 519
    /// Images; every 5th (1-based 5, 10, …) is a test image.
    public var images = 240

    /// NYU's size (480 × 640, f = 519).
    public init() {}

    /// The `tiny` variant for CPU runs: 120 × 160, f = 129.75, 48 images.
    public static var tiny: SynthDepthSpec {
        var s = SynthDepthSpec()
        s.height = 120; s.width = 160; s.focal = 129.75; s.images = 48
        return s
    }
}

/// One rendered frame, row-major.
struct SynthFrame {
    var rgb: [UInt8]
    var depth: [Float]
    var rawDepth: [Float]
    var labels: [UInt16]
}

/// Writes the synthetic NYU files.
public enum SynthDepth {
    /// The labeled file's name in `directory`.
    public static let labeledFileName = "nyu_depth_v2_labeled.mat"
    /// The split file's name in `directory`.
    public static let splitsFileName = "splits.mat"

    /// Renders `spec.images` frames from `seed` and writes `directory/nyu_depth_v2_labeled.mat`
    /// and `directory/splits.mat`.
    public static func write(_ spec: SynthDepthSpec, seed: UInt64, to directory: String) throws {
        guard spec.images >= 1, spec.height >= 8, spec.width >= 8, spec.height * spec.width <= 1 << 22 else {
            throw DepthDataError(file: directory, "synth depth needs ≥ 1 image of at least 8 × 8 and at most 2^22 pixels")
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let (n, h, w) = (spec.images, spec.height, spec.width), plane = h * w
        // Frames are independent (each has its own random stream), so they render in parallel.
        var frames = [SynthFrame?](repeating: nil, count: n)
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: n) { i in
            var rng = SeededRNG(seed: seed, stream: "synth depth \(i)")
            let frame = render(spec, rng: &rng)
            lock.lock(); frames[i] = frame; lock.unlock()
        }
        // MATLAB is column-major: HDF5 sees images (N, 3, W, H) and maps (N, W, H).
        var images = [UInt8](repeating: 0, count: n * 3 * plane), labels = [UInt16](repeating: 0, count: n * plane)
        let depths = Tensor(uninitialized: [n, w, h]), raw = Tensor(uninitialized: [n, w, h])
        for (i, frame) in frames.enumerated() {
            guard let f = frame else { continue }
            for y in 0..<h {
                for x in 0..<w {
                    for c in 0..<3 { images[((i * 3 + c) * w + x) * h + y] = f.rgb[(y * w + x) * 3 + c] }
                    let o = (i * w + x) * h + y
                    depths.data[o] = f.depth[y * w + x]; raw.data[o] = f.rawDepth[y * w + x]; labels[o] = f.labels[y * w + x]
                }
            }
        }
        let path = directory + "/" + labeledFileName
        let file = try HDF5File(creating: path, userBlockBytes: 512)
        try file.write(uint8: images, shape: [n, 3, w, h], at: "/images", gzipLevel: 4)
        try file.write(depths, at: "/depths", gzipLevel: 4)
        try file.write(raw, at: "/rawDepths", gzipLevel: 4)
        try file.write(uint16: labels, shape: [n, w, h], at: "/labels", gzipLevel: 4)
        for (name, cls) in [("images", "uint8"), ("depths", "single"), ("rawDepths", "single"), ("labels", "uint16")] {
            try file.setAttribute("MATLAB_class", .string(cls), on: "/" + name)
        }
        try file.close()
        try writeMATLABHeader(path)
        let test = (1...n).filter { $0 % 5 == 0 }.map(Double.init), train = (1...n).filter { $0 % 5 != 0 }.map(Double.init)
        try MATv5.write([("trainNdxs", train), ("testNdxs", test)], to: directory + "/" + splitsFileName, compressed: true)
    }

    /// MATLAB's v7.3 header in the HDF5 user block: 116 bytes of text, 8 bytes of subsystem
    /// offset, version 0x0200, "IM", zeros to 512.
    static func writeMATLABHeader(_ path: String) throws {
        var header = Array("MATLAB 7.3 MAT-file, Platform: GLNXA64, Created by percep-dist synth depth HDF5 schema 1.00 .".utf8)
        header += [UInt8](repeating: 0x20, count: 116 - header.count) + [UInt8](repeating: 0, count: 8) + [0x00, 0x02] + Array("IM".utf8)
        header += [UInt8](repeating: 0, count: 512 - header.count)
        guard let handle = FileHandle(forUpdatingAtPath: path) else { throw DepthDataError(file: path, "cannot open to write the MATLAB header") }
        defer { try? handle.close() }
        try handle.seek(toOffset: 0)
        try handle.write(contentsOf: Data(header))
    }

    /// One surface: its label, base colour, texture period, noise frequencies and phases.
    struct Surface {
        let label: UInt16
        let colour: SIMD3<Double>
        let period: Double
        let noise: SIMD4<Double>
    }

    /// An upright box on the floor: centre (x, z), half sizes, height, yaw.
    struct Box {
        let centre: SIMD2<Double>, half: SIMD2<Double>, height: Double, yaw: Double
    }

    static func render(_ spec: SynthDepthSpec, rng: inout SeededRNG) -> SynthFrame {
        func uniform(_ lo: Double, _ hi: Double) -> Double { lo + (hi - lo) * rng.nextUnit() }
        func surface(_ label: UInt16) -> Surface {
            Surface(label: label, colour: SIMD3(uniform(0.2, 0.9), uniform(0.2, 0.9), uniform(0.2, 0.9)), period: uniform(0.15, 0.6),
                    noise: SIMD4(uniform(2, 6), uniform(2, 6), uniform(0, 6.3), uniform(0, 6.3)))
        }
        let room = SIMD3(uniform(3, 6), uniform(2.4, 3.2), uniform(4, 8.5))              // width, height, length
        let camera = SIMD3(uniform(-0.25, 0.25) * room.x, uniform(1.0, 1.6), uniform(0.5, 1.5))
        let (yaw, pitch, roll) = (uniform(-25, 25) * .pi / 180, uniform(-15, 5) * .pi / 180, uniform(-3, 3) * .pi / 180)
        // Surfaces 0 floor, 1 ceiling, 2–5 walls (x−, x+, z−, z+), then the boxes.
        var surfaces = [surface(1), surface(2)] + (0..<4).map { _ in surface(3) }
        var boxes: [Box] = []
        for _ in 0..<(1 + Int(rng.next() % 4)) {
            boxes.append(Box(centre: SIMD2(uniform(-room.x / 2 + 0.8, room.x / 2 - 0.8), uniform(min(camera.z + 1.5, room.z - 0.8), room.z - 0.8)),
                             half: SIMD2(uniform(0.15, 0.75), uniform(0.15, 0.75)), height: uniform(0.3, 1.8), yaw: uniform(0, .pi)))
            surfaces.append(surface(4))
        }
        var light = SIMD3(uniform(-1, 1), uniform(0.2, 1), uniform(-1, 1))
        light /= (light * light).sum().squareRoot()
        // Camera axes in the world: R = yaw (about y) · pitch (about x) · roll (about z).
        func rotate(_ v: SIMD3<Double>) -> SIMD3<Double> {
            let r = SIMD3(v.x * cos(roll) - v.y * sin(roll), v.x * sin(roll) + v.y * cos(roll), v.z)
            let p = SIMD3(r.x, r.y * cos(pitch) + r.z * sin(pitch), -r.y * sin(pitch) + r.z * cos(pitch))
            return SIMD3(p.x * cos(yaw) + p.z * sin(yaw), p.y, -p.x * sin(yaw) + p.z * cos(yaw))
        }
        // The nearest hit along the world ray: (t, surface index, normal, texture coordinates).
        func cast(_ d: SIMD3<Double>) -> (t: Double, surface: Int, normal: SIMD3<Double>, uv: SIMD2<Double>) {
            // The room from inside: the first face the ray leaves through.
            var best = (t: Double.infinity, surface: 0, normal: SIMD3<Double>(0, 1, 0), uv: SIMD2<Double>(0, 0))
            let lo = SIMD3(-room.x / 2, 0, 0), hi = SIMD3(room.x / 2, room.y, room.z)
            for axis in 0..<3 where d[axis] != 0 {
                let bound = d[axis] > 0 ? hi[axis] : lo[axis], t = (bound - camera[axis]) / d[axis]
                guard t > 0, t < best.t else { continue }
                let p = camera + t * d
                let index = axis == 1 ? (d.y > 0 ? 1 : 0) : (axis == 0 ? (d.x > 0 ? 3 : 2) : (d.z > 0 ? 5 : 4))
                var normal = SIMD3<Double>(0, 0, 0); normal[axis] = d[axis] > 0 ? -1 : 1
                let uv = axis == 1 ? SIMD2(p.x, p.z) : (axis == 0 ? SIMD2(p.z, p.y) : SIMD2(p.x, p.y))
                best = (t, index, normal, uv)
            }
            for (k, box) in boxes.enumerated() {
                let c = cos(box.yaw), s = sin(box.yaw)
                func toBox(_ v: SIMD3<Double>) -> SIMD3<Double> { SIMD3(v.x * c - v.z * s, v.y, v.x * s + v.z * c) }
                let o = toBox(camera - SIMD3(box.centre.x, 0, box.centre.y)), dir = toBox(d)
                let lo = SIMD3(-box.half.x, 0, -box.half.y), hi = SIMD3(box.half.x, box.height, box.half.y)
                var tNear = -Double.infinity, tFar = Double.infinity, axisNear = 0
                var missed = false
                for axis in 0..<3 {
                    if dir[axis] == 0 {
                        if o[axis] < lo[axis] || o[axis] > hi[axis] { missed = true }
                        continue
                    }
                    var t1 = (lo[axis] - o[axis]) / dir[axis], t2 = (hi[axis] - o[axis]) / dir[axis]
                    if t1 > t2 { swap(&t1, &t2) }
                    if t1 > tNear { tNear = t1; axisNear = axis }
                    tFar = min(tFar, t2)
                }
                guard !missed, tNear <= tFar, tNear > 1e-9, tNear < best.t else { continue }
                var local = SIMD3<Double>(0, 0, 0); local[axisNear] = dir[axisNear] > 0 ? -1 : 1
                // Back to the world: the inverse rotation about y.
                let normal = SIMD3(local.x * c + local.z * s, local.y, -local.x * s + local.z * c)
                let p = o + tNear * dir
                let uv = axisNear == 1 ? SIMD2(p.x, p.z) : (axisNear == 0 ? SIMD2(p.z, p.y) : SIMD2(p.x, p.y))
                best = (tNear, 6 + k, normal, uv)
            }
            return best
        }
        let (h, w) = (spec.height, spec.width), cx = Double(w / 2), cy = Double(h / 2), f = spec.focal
        func direction(_ u: Double, _ v: Double) -> SIMD3<Double> { rotate(SIMD3((u - cx) / f, -(v - cy) / f, 1)) }
        var rgb = [UInt8](repeating: 0, count: h * w * 3), depth = [Float](repeating: 0, count: h * w)
        var labels = [UInt16](repeating: 0, count: h * w)
        for y in 0..<h {
            for x in 0..<w {
                let centre = cast(direction(Double(x), Double(y)))
                depth[y * w + x] = Float(centre.t)
                labels[y * w + x] = surfaces[centre.surface].label
                var colour = SIMD3<Double>(0, 0, 0)
                for (du, dv) in [(-0.25, -0.25), (0.25, -0.25), (-0.25, 0.25), (0.25, 0.25)] {
                    let hit = cast(direction(Double(x) + du, Double(y) + dv)), s = surfaces[hit.surface]
                    let checker = (Int((hit.uv.x / s.period).rounded(.down)) + Int((hit.uv.y / s.period).rounded(.down))) & 1
                    let noise = 1 + 0.1 * sin(hit.uv.x * s.noise.x + s.noise.z) * sin(hit.uv.y * s.noise.y + s.noise.w)
                    let shade = (0.35 + 0.65 * max(0, (hit.normal * light).sum())) / (1 + 0.05 * hit.t * hit.t)
                    colour += s.colour * (0.75 + 0.25 * Double(checker)) * noise * shade / 4
                }
                for c in 0..<3 {
                    let v = colour[c] * 255 + 2 * rng.nextNormal()
                    rgb[(y * w + x) * 3 + c] = UInt8(max(0, min(255, v.rounded())))
                }
            }
        }
        // rawDepths: holes where depth jumps (> 0.1 m to the right or below) and 2 % at random.
        var raw = depth
        for y in 0..<h {
            for x in 0..<w {
                let z = depth[y * w + x]
                let jump = (x + 1 < w && abs(depth[y * w + x + 1] - z) > 0.1) || (y + 1 < h && abs(depth[(y + 1) * w + x] - z) > 0.1)
                if jump || rng.nextUnit() < 0.02 { raw[y * w + x] = 0 }
            }
        }
        return SynthFrame(rgb: rgb, depth: depth, rawDepth: raw, labels: labels)
    }
}
