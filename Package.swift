// swift-tools-version:5.10
import PackageDescription

import Foundation

// Module graph (one way): CBLAS, CDNNLConv, COpenMP, CKernels → PercepCore → PercepNN → percep-dist;
// CHDF5 + PercepCore → PercepHDF5; CImageCodecs → ImageCodecs, COCO + ImageCodecs → COCOSynth;
// PercepNN → SegmentationModels (ResNet backbones, PSP/DeepLabV3+/FCN heads);
// PercepCore + ImageCodecs → SegmentationData;
// Training (configs) + Checkpoint + Distributed + Perceptual → Trainer (the shared loop);
// SegmentationData + SegmentationModels + Trainer → SegmentationTraining → percep-dist;
// ImageCodecs → Plot → Study (the reproduction study) → percep-dist.
// Each C library enters through exactly one wrapper target.
// Bounds and overflow checks stay on everywhere: every target is built with -O, so an
// out-of-range index in a reader (COCO JSON, RLE and polygons, PNG/JPEG, HDF5 checkpoints and
// loss networks, YAML configs, data sets) or in a kernel is a trap, never undefined behaviour.
// -Ounchecked on the numeric kernels (PercepCore, PercepNN, SegmentationModels, InstanceModels,
// CondInst: `kernels`) did not pay: tools/bench_checked.sh measured the two builds within noise
// of each other (docs/reliability.md, "Bounds checks"), so it is off. PERCEP_UNCHECKED_KERNELS=1
// builds those targets with -Ounchecked again, for that benchmark only; `checked` names the
// targets that must never get it.
let kernels: [SwiftSetting] = ProcessInfo.processInfo.environment["PERCEP_UNCHECKED_KERNELS"] == "1"
    ? [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))] : []
let checked: [SwiftSetting] = []

// OpenBLAS must be Debian's OpenMP build, not the default pthread build: oneDNN runs on libgomp,
// and two thread pools spinning on the same cores halve the speed of whichever runs second
// (docs/benchmarks.md). The OpenMP build lives in its own directory, found here and linked with
// an rpath so the loader does not pick the system-wide default.
let openblasOpenMP: [LinkerSetting] = {
    let candidates = ["x86_64", "aarch64", "powerpc64le", "s390x"].map { "/usr/lib/\($0)-linux-gnu/openblas-openmp" }
    guard let dir = candidates.first(where: { FileManager.default.fileExists(atPath: $0 + "/libopenblas.so") }) else { return [] }
    return [.unsafeFlags(["-L" + dir, "-Xlinker", "-rpath", "-Xlinker", dir])]
}()

// libFuzzer targets (Fuzz/<Name>/main.swift), declared only for `tools/fuzz.sh`, which builds them
// with -sanitize=fuzzer,address into .build-fuzz; a normal build never sees them.
let fuzzTargets: [Target] = ProcessInfo.processInfo.environment["PERCEP_FUZZ"] == "1" ? [
    ("COCOInstances", ["COCO"]), ("COCOResults", ["COCO"]), ("RLE", ["COCO"]), ("PNG", ["ImageCodecs"]), ("JPEG", ["ImageCodecs"]),
    ("Config", ["Training"]), ("Checkpoint", ["Checkpoint", "PercepHDF5"]), ("LossNetwork", ["Perceptual", "PercepHDF5"]),
    ("Weights", ["PretrainedWeights"]), ("MAT", ["DepthData"]),
].map { name, deps in
    .executableTarget(name: "Fuzz\(name)", dependencies: (deps + ["FuzzDriver"]).map { .target(name: $0) }, path: "Fuzz/\(name)")
} + [.target(name: "FuzzDriver", path: "Fuzz/FuzzDriver")] : []

let package = Package(
    name: "percep-dist",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "percep-dist", targets: ["PercepDistCLI"]),
        .library(name: "PercepCore", targets: ["PercepCore"]),
        .library(name: "PercepNN", targets: ["PercepNN"]),
        .library(name: "PercepHDF5", targets: ["PercepHDF5"]),
        .library(name: "Perceptual", targets: ["Perceptual"]),
        .library(name: "SegmentationModels", targets: ["SegmentationModels"]),
        .library(name: "COCO", targets: ["COCO"]),
        .library(name: "Distributed", targets: ["Distributed"]),
        .library(name: "ImageCodecs", targets: ["ImageCodecs"]),
        .library(name: "COCOSynth", targets: ["COCOSynth"]),
        .library(name: "SegmentationData", targets: ["SegmentationData"]),
        .library(name: "Checkpoint", targets: ["Checkpoint"]),
        .library(name: "PretrainedWeights", targets: ["PretrainedWeights"]),
        .library(name: "Training", targets: ["Training"]),
        .library(name: "Trainer", targets: ["Trainer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // OpenBLAS (cblas), Debian package libopenblas-dev.
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        // oneDNN 2.x convolutions behind plain C functions, Debian package libdnnl-dev.
        .target(name: "CDNNLConv", linkerSettings: [.linkedLibrary("dnnl")]),
        // libgomp, the one thread pool shared by OpenBLAS, oneDNN and the engine's loops.
        .target(name: "COpenMP", linkerSettings: [.linkedLibrary("gomp")]),
        // The version and the source revision the binary was built from (`--version`, replica check).
        .plugin(name: "SourceRevision", capability: .buildTool(), path: "Plugins/SourceRevision"),
        .target(name: "BuildInfo", plugins: ["SourceRevision"]),
        // Our own C kernels: Winograd F(4x4, 3x3) transforms (vectorised per CPU by function clones)
        // and the FMA peak probe.
        .target(name: "CKernels"),
        .target(name: "PercepCore", dependencies: ["CBLAS", "CDNNLConv", "COpenMP", "CKernels"], swiftSettings: kernels,
                linkerSettings: openblasOpenMP),
        .target(name: "PercepNN", dependencies: ["PercepCore"], swiftSettings: kernels),
        // HDF5 (serial build), Debian package libhdf5-dev: loss-network weights and checkpoints.
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5", providers: [.apt(["libhdf5-dev"])]),
        .target(name: "PercepHDF5", dependencies: ["CHDF5", "PercepCore"], swiftSettings: checked),
        // Open MPI (libopenmpi-dev, openmpi-bin): headers via pkg-config, included only by CMPI.
        .systemLibrary(name: "COpenMPISystem", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
        .target(name: "CMPI", dependencies: ["COpenMPISystem"]),
        .target(name: "Distributed", dependencies: ["CMPI", "PercepCore", "PercepNN"], swiftSettings: checked),
        .target(name: "Perceptual", dependencies: ["PercepNN", "PercepCore", "PercepHDF5", "Checkpoint"], swiftSettings: checked),
        // mmseg's dilated ResNets, PSPNet and DeepLabV3+ heads, auxiliary FCN head, with its names.
        .target(name: "SegmentationModels", dependencies: ["PercepNN", "PercepCore"], swiftSettings: kernels),
        // detectron2's ResNet, FPN, AdelaiDet's FCOS head, mask branch, dynamic mask head: CondInst
        // with AdelaiDet's names.
        .target(name: "InstanceModels", dependencies: ["PercepNN", "PercepCore"], swiftSettings: kernels),
        // CondInst's training maths (FCOS targets, focal/GIoU/centerness/dice losses, the perceptual
        // mask term) and inference (NMS, mask paste).
        .target(name: "CondInst", dependencies: ["InstanceModels", "Perceptual", "PercepNN", "PercepCore"], swiftSettings: kernels),
        // COCO instance data for training: the COCO layout, detectron2's resize/flip pipeline (Pillow
        // resampling), masks on the resized canvas.
        .target(name: "InstanceData", dependencies: ["COCO", "ImageCodecs", "PercepCore"], swiftSettings: checked),
        // `train-inst`/`eval-inst`: the CondInst task on the shared loop (groups of images, global
        // normalisers, COCO evaluation of gathered detections, the one-step dump).
        .target(name: "InstanceTraining",
                dependencies: ["InstanceData", "CondInst", "InstanceModels", "DataLoading", "COCO", "Trainer", "Training", "Checkpoint", "Distributed",
                               "PercepHDF5", "Perceptual", "PercepNN", "PercepCore"],
                swiftSettings: checked),
        // COCO instances data, the COCO mask API and a pycocotools-identical evaluator (Foundation only).
        .target(name: "COCO", swiftSettings: checked),
        // libjpeg-turbo's TurboJPEG API and libspng behind plain C functions, Debian packages
        // libturbojpeg0-dev and libspng-dev.
        .target(name: "CImageCodecs", linkerSettings: [.linkedLibrary("turbojpeg"), .linkedLibrary("spng")]),
        .target(name: "ImageCodecs", dependencies: ["CImageCodecs"], swiftSettings: checked),
        // `synth coco`: synthetic COCO instance-segmentation sets (JPEG images + instances JSON).
        .target(name: "COCOSynth", dependencies: ["COCO", "ImageCodecs"], swiftSettings: checked),
        // Semantic segmentation data: ADE20K / Cityscapes / VOC readers, mmseg augmentation, the
        // prefetching loader, mmseg's IoUMetric and the `synth seg` generator.
        .target(name: "SegmentationData", dependencies: ["DataLoading", "PercepCore", "ImageCodecs"], swiftSettings: checked),
        // NYU Depth v2: the labeled v7.3 file (HDF5 behind MATLAB's user block), `splits.mat` (a
        // MAT v5 reader and writer of our own), VNL's pooled depth metrics and 16-bit PNG folders,
        // `synth depth` (ray-cast rooms written as the two official files).
        .target(name: "DepthData", dependencies: ["PercepHDF5", "PercepCore", "ZlibCodec", "ImageCodecs", "DataLoading"], swiftSettings: checked),
        // VNL's depth network (ResNet-50 body, FTB laterals, ASPP, AFA decoder; VNL's names) and its
        // maths: log-space bins, soft-argmax depth, weighted cross-entropy, the virtual-normal loss.
        .target(name: "Depth", dependencies: ["PercepNN", "PercepCore"], swiftSettings: kernels),
        // `train-depth`: VNL's network and losses (+ the perceptual term) on NYU's files, on the
        // shared loop.
        .target(name: "DepthTraining", dependencies: ["Depth", "DepthData", "ImageCodecs", "Trainer", "Training", "Perceptual", "PercepNN", "PercepCore"],
                swiftSettings: checked),
        // The one prefetching loader every task uses (threads, bounded window, broken samples
        // skipped and counted, step order).
        .target(name: "DataLoading", swiftSettings: checked),
        // The trainer's YAML configs (`_BASE_` inheritance, schema, overrides) and LR schedules.
        .target(name: "Training", dependencies: ["PercepCore", "PercepNN", .product(name: "Yams", package: "Yams")],
                swiftSettings: checked),
        // zlib (Debian package zlib1g-dev): raw DEFLATE for deflated members of PyTorch zip files.
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // PyTorch `.pth` (zip and legacy) and pickled NumPy `.pkl` weights read without Python: a
        // bounds-checked zip reader, a restricted unpickler (an allowlist of globals, nothing
        // executed), detectron2's Caffe2 rename and the name maps onto our models.
        // zlib's inflate and CRC-32 behind two functions (zip members, MATLAB v5 elements).
        .target(name: "ZlibCodec", dependencies: ["CZlib"], swiftSettings: checked),
        .target(name: "PretrainedWeights", dependencies: ["ZlibCodec"], swiftSettings: checked),
        // Training checkpoints: atomic HDF5 writes with per-dataset checksums, strict and remapped loads.
        .target(name: "Checkpoint", dependencies: ["PercepCore", "PercepNN", "PercepHDF5", "PretrainedWeights"], swiftSettings: checked),
        // The training loop every task shares: replicas, gradient sync, schedule, logs, evaluation,
        // checkpoints and resume around a `TrainingTask`.
        .target(name: "Trainer", dependencies: ["BuildInfo", "Training", "Checkpoint", "Distributed", "Perceptual", "PercepNN", "PercepCore"],
                swiftSettings: checked),
        // `train-seg`/`eval-seg`: the segmentation task on the shared loop (datasets, student,
        // teacher, perceptual term, mmseg mIoU, whole/slide inference).
        .target(name: "SegmentationTraining",
                dependencies: ["SegmentationData", "SegmentationModels", "ImageCodecs", "Trainer", "Training", "Checkpoint", "Distributed", "Perceptual", "PercepNN", "PercepCore"],
                swiftSettings: checked),
        // Loss and metric curves of a run (metrics.jsonl) as SVG or RGB rasters, no Python.
        .target(name: "Plot", dependencies: ["ImageCodecs"], swiftSettings: checked),
        // The reproduction study (launch/reproduce.sh): its grid, the runs through the ordinary
        // commands, and the report (tables, paired differences, bar chart) in docs/reproduction.md.
        .target(name: "Study", dependencies: ["Plot"], swiftSettings: checked),
        .executableTarget(
            name: "PercepDistCLI",
            dependencies: ["BuildInfo", "InstanceTraining", "InstanceData", "CondInst", "InstanceModels", "PercepCore", "PercepNN", "Perceptual", "SegmentationModels", "PercepHDF5", "Training", "COCO", "COCOSynth",
                           "Distributed", "CMPI", "SegmentationData", "ImageCodecs", "SegmentationTraining",
                           "Checkpoint", "PretrainedWeights", "DepthData", "DepthTraining", "Trainer", "Plot", "Study", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: checked),
        // Finite-difference checks and seeded test tensors shared by the test targets.
        .target(name: "TestSupport", dependencies: ["PercepCore"], path: "Tests/TestSupport"),
        .testTarget(name: "PerceptualTests", dependencies: ["Perceptual", "PercepNN", "PercepCore", "PercepHDF5", "TestSupport"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "PercepCoreTests", dependencies: ["PercepCore", "TestSupport"]),
        // Names, shapes, forward and gradients against tools/pytorch/seg_models.py (HDF5 fixtures).
        .testTarget(name: "SegmentationModelsTests", dependencies: ["SegmentationModels", "PercepNN", "PercepCore", "PercepHDF5", "TestSupport"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "PercepNNTests", dependencies: ["PercepNN", "PercepCore", "TestSupport"],
                    resources: [.copy("Fixtures")]),
        // Runs the built percep-dist binary (SwiftPM builds it with the tests).
        .testTarget(name: "PercepDistCLITests", dependencies: ["PercepCore", "PercepHDF5", "PercepDistCLI", "TestSupport", "ImageCodecs"]),
        // Launches percep-dist under mpirun (1, 2 and 3 ranks).
        .testTarget(name: "DistributedTests", dependencies: ["Distributed", "PercepHDF5", "PercepDistCLI", "TestSupport"]),
        .testTarget(name: "PercepHDF5Tests", dependencies: ["PercepHDF5", "PercepCore"]),
        // Also runs the built percep-dist binary for `checkpoint inspect`.
        .testTarget(name: "CheckpointTests", dependencies: ["Checkpoint", "PercepNN", "PercepCore", "PercepHDF5", "PercepDistCLI", "TestSupport"]),
        .testTarget(name: "COCOTests", dependencies: ["COCO"], resources: [.copy("Fixtures")]),
        .testTarget(name: "ImageCodecsTests", dependencies: ["ImageCodecs"], resources: [.copy("Fixtures")]),
        .testTarget(name: "SegmentationDataTests", dependencies: ["SegmentationData", "ImageCodecs", "PercepCore"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "COCOSynthTests", dependencies: ["COCOSynth", "ImageCodecs", "COCO"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training"]),
        // Runs the built percep-dist binary's train-demo: evaluation hooks, non-finite losses, kill -9.
        .testTarget(name: "TrainerTests", dependencies: ["Checkpoint", "PercepHDF5", "ImageCodecs", "PercepDistCLI", "TestSupport"]),
        // Runs percep-dist train-seg / eval-seg (and under mpirun) on a generated synthetic set.
        .testTarget(name: "SegmentationTrainingTests", dependencies: ["SegmentationTraining", "SegmentationModels", "PercepCore", "Checkpoint", "PercepHDF5",
                                                                    "Distributed", "Trainer", "Training", "PercepDistCLI", "TestSupport"]),
        .testTarget(name: "PlotTests", dependencies: ["Plot", "ImageCodecs"]),
        // The study's statistics and report, and `launch/reproduce.sh --quick` on a tiny grid.
        .testTarget(name: "StudyTests", dependencies: ["Study", "Training", "PercepDistCLI", "TestSupport"]),
        // Runs percep-dist train-inst / eval-inst (and under mpirun) on a generated synthetic COCO set.
        .testTarget(name: "InstanceJobTests", dependencies: ["Checkpoint", "PercepHDF5", "ImageCodecs", "PercepDistCLI", "TestSupport"]),
        // The malformed-input catalogue of docs/reliability.md, run through the percep-dist binary.
        .testTarget(name: "ReliabilityTests", dependencies: ["PercepDistCLI", "TestSupport"], resources: [.copy("Fixtures")]),
        // .pth / .pkl files written by PyTorch and NumPy (tools/pytorch/make_weights_fixtures.py),
        // hostile files, the name maps against our models, and `weights import/inspect`.
        .testTarget(name: "PretrainedWeightsTests", dependencies: ["PretrainedWeights", "Checkpoint", "PercepHDF5", "PercepCore", "PercepNN",
                                                                 "Perceptual", "SegmentationModels", "InstanceModels", "Trainer", "Training", "PercepDistCLI", "TestSupport"],
                    resources: [.copy("Fixtures")]),
        // NYU's v7.3 and v5 files as h5py and SciPy write them, VNL's metrics against NumPy, `eval-depth`.
        .testTarget(name: "DepthDataTests", dependencies: ["DepthData", "Depth", "ImageCodecs", "PercepCore", "PercepHDF5", "PercepDistCLI", "TestSupport"],
                    resources: [.copy("Fixtures")]),
        // CondInst's maths and one training step against the PyTorch twin's fixtures.
        .testTarget(name: "CondInstTests", dependencies: ["CondInst", "InstanceTraining", "InstanceModels", "Perceptual", "PercepNN", "PercepCore",
                                                          "PercepHDF5", "TestSupport"],
                    resources: [.copy("Fixtures")]),
        // CondInst's names and shapes against AdelaiDet's, its ops against the PyTorch twin's fixtures.
        .testTarget(name: "InstanceModelsTests", dependencies: ["InstanceModels", "PercepNN", "PercepCore", "PercepHDF5", "TestSupport"],
                    resources: [.copy("Fixtures")]),
    ] + fuzzTargets
)
