import COCO
import Foundation
import FuzzDriver

// libFuzzer target: a COCO results file read against a fixed small ground truth, then evaluated.
let groundTruth: COCODataset = {
    let json = #"{"images":[{"id":1,"file_name":"a.jpg","height":32,"width":40},{"id":2,"file_name":"b.jpg","height":20,"width":20}],"categories":[{"id":1,"name":"a"},{"id":3,"name":"b"}],"annotations":[{"id":1,"image_id":1,"category_id":1,"bbox":[2,3,10,12],"area":120,"iscrowd":0,"segmentation":[[2,3,12,3,12,15,2,15]]},{"id":2,"image_id":2,"category_id":3,"bbox":[1,1,5,5],"area":25,"iscrowd":1,"segmentation":{"size":[20,20],"counts":[21,5,15,5,354]}}]}"#
    return try! COCODataset(jsonData: Data(json.utf8), path: "gt.json")
}()

/// The executable's entry (SwiftPM links `main` to `FuzzCOCOResults_main`): libFuzzer's loop.
@_cdecl("FuzzCOCOResults_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    runFuzzer { input in
        guard let results = try? COCOResults.load(jsonData: Data(input), path: "fuzz.json", groundTruth: groundTruth), results.count <= 256 else { return }
        for type in IoUType.allCases { _ = try? COCOEvaluator(groundTruth: groundTruth, results: results, iouType: type).evaluate() }
    }
}
