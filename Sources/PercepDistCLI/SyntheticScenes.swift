import ArgumentParser
import Foundation
import PercepCore
import PercepNN

/// A small fully convolutional segmentation network: three conv-BN-ReLU stages (the middle one
/// dilated) and a 1×1 classifier. input: [N, 3, H, W] → logits [N, classes, H, W].
final class TinySegNet: Module, Layer {
    let stem: Sequential, classifier: Conv2d

    init(classes: Int, width: Int = 16, rng: inout SeededRNG) {
        func stage(_ cin: Int, _ dil: Int, _ rng: inout SeededRNG) -> [any Layer] {
            [Conv2d(cin, width, kernel: (3, 3), padding: (dil, dil), dilation: (dil, dil), bias: false,
                    initializer: .kaimingNormal(fanOut: true), rng: &rng),
             BatchNorm2d(width), ReLU()]
        }
        stem = Sequential(stage(3, 1, &rng) + stage(width, 2, &rng) + stage(width, 1, &rng))
        classifier = Conv2d(width, classes, kernel: (1, 1), rng: &rng)
        super.init()
        registerModule("stem", stem)
        registerModule("classifier", classifier)
    }

    func callAsFunction(_ x: Tensor) -> Tensor { classifier(stem(x)) }
}

/// Built-in synthetic scenes: noisy backgrounds with rectangles (class 1) and discs (class 2).
/// Returns images [N, 3, S, S] and labels [N·S·S].
func syntheticScenes(count: Int, size: Int, rng: inout SeededRNG) -> (Tensor, [Int32]) {
    let images = Tensor(uninitialized: [count, 3, size, size])
    var labels = [Int32](repeating: 0, count: count * size * size)
    let plane = size * size
    for n in 0..<count {
        for c in 0..<3 { for i in 0..<plane { images.data[(n * 3 + c) * plane + i] = Float(rng.nextUnit() * 0.6 - 0.3) } }
        for _ in 0..<3 {
            let cls = Int32(1 + Int(rng.next() % 2))
            let cx = Int(rng.next() % UInt64(size)), cy = Int(rng.next() % UInt64(size))
            let r = 3 + Int(rng.next() % UInt64(max(size / 5, 1)))
            let tint = (0..<3).map { _ in Float(rng.nextUnit()) }
            for y in max(0, cy - r)..<min(size, cy + r) {
                for x in max(0, cx - r)..<min(size, cx + r) {
                    let inside = cls == 1 || (x - cx) * (x - cx) + (y - cy) * (y - cy) < r * r
                    guard inside else { continue }
                    labels[n * plane + y * size + x] = cls
                    for c in 0..<3 { images.data[(n * 3 + c) * plane + y * size + x] += tint[c] }
                }
            }
        }
    }
    return (images, labels)
}
