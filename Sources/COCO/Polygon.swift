import Foundation

extension RLE {
    /// Largest |coordinate| accepted for rasterising (pixels). maskApi.c converts 5·x to a C `int`
    /// and walks every upsampled boundary point, so far-out coordinates overflow or exhaust memory.
    public static let maxPolygonCoordinate: Double = 1e7

    /// Largest |coordinate| rasterised on a `height` × `width` mask. The boundary walk visits every
    /// upsampled point of every edge, so its cost grows with the coordinates, not with the mask:
    /// they are bounded relative to the mask (64 × its larger side + 4096 pixels, far beyond any
    /// real annotation's overshoot) as well as absolutely.
    public static func polygonCoordinateLimit(height: Int, width: Int) -> Double {
        min(maxPolygonCoordinate, Double(max(height, width, 0)) * 64 + 4096)
    }

    /// Rasterises one polygon exactly as maskApi.c `rleFrPoly`.
    ///
    /// The vertices are upsampled ×5 with C truncation, the closed boundary is walked with a DDA that
    /// includes both ends of every edge, the points where the boundary crosses a pixel-column centre
    /// are kept as (x, ceil(y)) toggles, and the sorted toggles become runs (two toggles at the same
    /// place cancel). A pixel is foreground when its centre is inside the polygon, up to that
    /// rounding.
    /// - Parameters:
    ///   - polygon: x1, y1, x2, y2, … in pixels (an odd trailing value is ignored, as the C code does).
    ///   - height: h of the mask.
    ///   - width: w of the mask.
    /// - Throws: `RLEFormatError` when a coordinate is not finite or beyond `maxPolygonCoordinate`.
    public init(polygon: [Double], height: Int, width: Int) throws {
        let k = polygon.count / 2
        let limit = Self.polygonCoordinateLimit(height: height, width: width)
        for v in polygon where !(v.isFinite && abs(v) <= limit) {
            throw RLEFormatError("polygon coordinate \(v) is not finite or beyond ±\(limit) for a \(height)×\(width) mask")
        }
        let h = height, w = width
        guard k > 0, h > 0, w > 0 else {
            // No boundary: every pixel is background (rleFrPoly gives the same single run).
            self.init(height: h, width: w, counts: [UInt32(truncatingIfNeeded: max(0, h * w))])
            return
        }
        let scale = 5.0
        var xs = [Int](repeating: 0, count: k + 1), ys = [Int](repeating: 0, count: k + 1)
        for j in 0..<k {
            // `(int)(scale*x+.5)`: Swift's Int(Double) truncates toward zero like the C cast.
            xs[j] = Int(scale * polygon[2 * j] + 0.5)
            ys[j] = Int(scale * polygon[2 * j + 1] + 0.5)
        }
        xs[k] = xs[0]; ys[k] = ys[0]

        // Dense boundary points (u, v) in the upsampled grid, into buffers sized up front.
        var total = 0
        for j in 0..<k { total += max(abs(xs[j] - xs[j + 1]), abs(ys[j] - ys[j + 1])) + 1 }
        var u = [Int](repeating: 0, count: total), v = [Int](repeating: 0, count: total)
        var toggles: [UInt32] = []
        toggles.reserveCapacity(total / 5 + 2)
        u.withUnsafeMutableBufferPointer { u in
            v.withUnsafeMutableBufferPointer { v in
                var m = 0
                for j in 0..<k {
                    var x0 = xs[j], x1 = xs[j + 1], y0 = ys[j], y1 = ys[j + 1]
                    let dx = abs(x1 - x0), dy = abs(y0 - y1)
                    let flip = (dx >= dy && x0 > x1) || (dx < dy && y0 > y1)
                    if flip { swap(&x0, &x1); swap(&y0, &y1) }
                    if dx >= dy {
                        // A zero-length edge divides 0 by 0 in C; its single point is never used (its u
                        // equals its neighbours'), so any finite slope gives the same mask.
                        let s = dx == 0 ? 0 : Double(y1 - y0) / Double(dx)
                        for d in 0...dx {
                            let t = flip ? dx - d : d
                            u[m] = t + x0
                            v[m] = Int(Double(y0) + s * Double(t) + 0.5)
                            m += 1
                        }
                    } else {
                        let s = Double(x1 - x0) / Double(dy)
                        for d in 0...dy {
                            let t = flip ? dy - d : d
                            v[m] = t + y0
                            u[m] = Int(Double(x0) + s * Double(t) + 0.5)
                            m += 1
                        }
                    }
                }

                // Crossings of the boundary with pixel-column centres, downsampled back to pixels.
                guard m > 1 else { return }
                let wLast = Double(w - 1), hD = Double(h)
                for j in 1..<m where u[j] != u[j - 1] {
                    var xd = Double(u[j] < u[j - 1] ? u[j] : u[j] - 1)
                    xd = (xd + 0.5) / scale - 0.5
                    if xd.rounded(.down) != xd || xd < 0 || xd > wLast { continue }
                    var yd = Double(v[j] < v[j - 1] ? v[j] : v[j - 1])
                    yd = (yd + 0.5) / scale - 0.5
                    if yd < 0 { yd = 0 } else if yd > hD { yd = hD }
                    yd = yd.rounded(.up)
                    toggles.append(UInt32(truncatingIfNeeded: Int(xd) * h + Int(yd)))
                }
            }
        }

        // Sorted toggles → run lengths; a zero-length run merges its two neighbours.
        toggles.append(UInt32(truncatingIfNeeded: h * w))
        toggles.sort()
        var previous: UInt32 = 0
        for j in toggles.indices { let t = toggles[j]; toggles[j] = t &- previous; previous = t }
        var counts: [UInt32] = [toggles[0]]
        var j = 1
        while j < toggles.count {
            if toggles[j] > 0 {
                counts.append(toggles[j]); j += 1
            } else {
                j += 1
                if j < toggles.count { counts[counts.count - 1] &+= toggles[j]; j += 1 }
            }
        }
        self.init(height: h, width: w, counts: counts)
    }

    /// Rasterises a box as `rleFrBbox`: the polygon (x, y), (x, y+h), (x+w, y+h), (x+w, y) through
    /// `init(polygon:height:width:)`.
    public init(box: BoundingBox, height: Int, width: Int) throws {
        let xs = box.x, xe = box.x + box.width, ys = box.y, ye = box.y + box.height
        try self.init(polygon: [xs, ys, xs, ye, xe, ye, xe, ys], height: height, width: width)
    }

    /// Rasterises a multi-part polygon and unions the parts, as pycocotools' `annToRLE`.
    /// - Parameter polygons: parts, each x1, y1, x2, y2, …. An empty list gives an all-background
    ///   mask (pycocotools fails on it with an IndexError).
    public init(polygons: [[Double]], height: Int, width: Int) throws {
        guard !polygons.isEmpty else {
            self.init(height: height, width: width, counts: [UInt32(truncatingIfNeeded: max(0, height * width))])
            return
        }
        let parts = try polygons.map { try RLE(polygon: $0, height: height, width: width) }
        self = RLE.merge(parts)
    }
}
