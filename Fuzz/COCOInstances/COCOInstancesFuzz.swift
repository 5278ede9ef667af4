import COCO
import Foundation
import FuzzDriver

// libFuzzer target: COCO instances JSON (`COCODataset`), then every annotation's mask as the
// evaluator and the training pipeline rasterise it. Errors are fine; crashes, hangs and
// sanitizer reports are not.
/// The executable's entry (SwiftPM links `main` to `FuzzCOCOInstances_main`): libFuzzer's loop.
@_cdecl("FuzzCOCOInstances_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    runFuzzer { input in
        guard let dataset = try? COCODataset(jsonData: Data(input), path: "fuzz.json") else { return }
        for annotation in dataset.annotations.prefix(64) {
            // Bound the work per input: masks of at most 1024 × 1024.
            if let image = dataset.image(id: annotation.imageID), image.height * image.width > 1 << 20 { continue }
            if let rle = try? dataset.mask(of: annotation), rle.height * rle.width <= 1 << 20 { _ = try? rle.decodeRowMajor() }
        }
    }
}
