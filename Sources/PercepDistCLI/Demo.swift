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

/// `percep-dist demo`: trains TinySegNet on synthetic scenes and reports loss, pixel accuracy
/// and mIoU on held-out scenes.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a tiny segmentation net on built-in synthetic scenes (a smoke test of the engine).")
    @Option(help: "Training iterations.") var iters = 300
    @Option(help: "Images per batch.") var batch = 8
    @Option(help: "Image size.") var size = 32
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Threads (default: all cores).") var threads: Int?

    func validate() throws {
        guard iters > 0, batch > 0, size >= 8 else { throw ValidationError("--iters and --batch must be positive and --size at least 8") }
    }

    func run() throws {
        if let threads { ThreadBudget.set(threads) }
        var rng = SeededRNG(seed: seed, stream: "model")
        var data = SeededRNG(seed: seed, stream: "data")
        let classes = 3
        let model = TinySegNet(classes: classes, rng: &rng)
        let params = model.namedParameters()
        let decay = params.filter { !$0.0.contains(".1.") }.map(\.1)      // no decay on BN
        let noDecay = params.filter { $0.0.contains(".1.") }.map(\.1)
        let sgd = SGD(groups: [(decay, 1e-4), (noDecay, 0)], learningRate: 0.05, momentum: 0.9)
        print("demo: \(params.count) parameter tensors, \(params.map(\.1.count).reduce(0, +)) weights; threads \(ThreadBudget.threads)")
        let start = Date()
        for it in 1...iters {
            let (x, y) = syntheticScenes(count: batch, size: size, rng: &data)
            sgd.learningRate = 0.05 * Float(pow(1 - Double(it - 1) / Double(iters), 0.9))
            let loss = Loss.crossEntropy(model(x), target: y)
            guard loss.item.isFinite else { throw ValidationError("non-finite loss at iteration \(it)") }
            sgd.zeroGrad()
            loss.backward()
            sgd.step()
            if it == 1 || it % 10 == 0 || it == iters {
                print(String(format: "iter %4d  loss %.4f  lr %.4f  %.2fs", it, loss.item, sgd.learningRate, Date().timeIntervalSince(start)))
            }
        }
        model.eval()
        let (x, y) = syntheticScenes(count: 16, size: size, rng: &data)
        let logits = Tape.withoutGrad { model(x) }
        var inter = [Int](repeating: 0, count: classes), union = inter, correct = 0
        let plane = size * size
        for n in 0..<16 {
            for i in 0..<plane {
                var best = 0
                for c in 1..<classes where logits.data[(n * classes + c) * plane + i] > logits.data[(n * classes + best) * plane + i] { best = c }
                let t = Int(y[n * plane + i])
                if best == t { correct += 1; inter[t] += 1; union[t] += 1 } else { union[t] += 1; union[best] += 1 }
            }
        }
        let ious = (0..<classes).filter { union[$0] > 0 }.map { Double(inter[$0]) / Double(union[$0]) }
        print(String(format: "held-out pixel accuracy %.3f  mIoU %.3f", Double(correct) / Double(16 * plane), ious.reduce(0, +) / Double(ious.count)))
    }
}
