import Foundation
import PercepCore
import PercepNN
import XCTest
@testable import InstanceModels

/// `NormedConv2d` folds a FrozenBatchNorm into its convolution and runs the ReLU inside it; the
/// plain composition conv → FrozenBN → ReLU is the reference it must equal, values and gradients.
final class NormedConvTests: XCTestCase {
    func testFoldedFrozenBatchNormMatchesTheComposition() throws {
        for (stride, padding, relu) in [(1, 1, true), (2, 1, true), (2, 0, false)] {
            var rng = SeededRNG(seed: 3, stream: "normed conv")
            let layer = NormedConv2d(5, 6, kernel: 3, stride: stride, padding: padding, rng: &rng)
            let bn = try XCTUnwrap(layer.norm as? FrozenBatchNorm2d)
            rng.fillUniform(bn.weight, lo: 0.3, hi: 1.5)
            rng.fillNormal(bn.bias, std: 0.3)
            rng.fillNormal(bn.runningMean, std: 0.5)
            rng.fillUniform(bn.runningVar, lo: 0.2, hi: 3)
            layer.weight.requiresGrad = true
            let x = Tensor(uninitialized: [2, 5, 9, 7])
            rng.fillNormal(x, std: 1)
            x.requiresGrad = true
            let probe = Tensor(uninitialized: [2, 6, (9 + 2 * padding - 3) / stride + 1, (7 + 2 * padding - 3) / stride + 1])
            rng.fillNormal(probe, std: 1)

            func run(_ forward: () -> Tensor) -> (y: [Float], dx: [Float], dw: [Float]) {
                x.grad = nil; layer.weight.grad = nil
                let y = forward()
                (y * probe).sum().backward()
                return (y.values, x.grad!.values, layer.weight.grad!.values)
            }
            let folded = run { layer(x, relu: relu) }
            let reference = run {
                let z = bn(x.conv2d(weight: layer.weight, stride: (stride, stride), padding: (padding, padding)))
                return relu ? z.relu() : z
            }
            for (name, a, b) in [("output", folded.y, reference.y), ("d input", folded.dx, reference.dx), ("d weight", folded.dw, reference.dw)] {
                let scale = b.map(abs).max()!
                for (i, (u, v)) in zip(a, b).enumerated() {
                    XCTAssertEqual(u, v, accuracy: 1e-4 * max(scale, 1), "stride \(stride) padding \(padding) relu \(relu): \(name)[\(i)]")
                }
            }
        }
    }
}
