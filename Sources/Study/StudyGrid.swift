import Foundation

/// One configuration of the reproduction study: a run of its task's recipe (the task's config in
/// configs/study) plus `overrides` (config `KEY VALUE` pairs), once per seed.
public struct StudyRow: Sendable, Equatable {
    /// Short name, also the run folder (`runs/<id>/seed<s>`).
    public let id: String
    /// What the row varies, as the tables print it.
    public let label: String
    /// Config overrides on top of the study's student config.
    public let overrides: [String]
    /// Whether the row distils from the study's teacher (its checkpoint is passed in).
    public let usesTeacher: Bool
    /// A target row (the paper's method, its baseline, and the target ablation): what the
    /// default and `--quick` grids run. The others are the ablations of Tables 1–4 and the level
    /// weights, run with `--ablations` or by name (`--only`).
    public let target: Bool
    /// A headline row: gets at least the headline seed count (the baseline and the paper's method).
    public let headline: Bool
    /// The job it trains.
    public let task: StudyTask
    /// The row its runs are compared with, seed by seed (the same setting without what this row
    /// adds); nil for a reference row.
    public let pairedWith: String?

    /// A segmentation row, paired with the CE baseline; see the properties.
    public init(id: String, label: String, overrides: [String], usesTeacher: Bool, target: Bool = false, headline: Bool = false) {
        self.init(id: id, label: label, overrides: overrides, usesTeacher: usesTeacher, target: target, headline: headline,
                  task: .segmentation, pairedWith: id == StudyGrid.baseline ? nil : StudyGrid.baseline)
    }

    /// A row of any task, with its reference row (nil for none); see the properties.
    public init(id: String, label: String, overrides: [String], usesTeacher: Bool, target: Bool, headline: Bool = false,
                task: StudyTask, pairedWith: String?) {
        self.id = id; self.label = label; self.overrides = overrides
        self.usesTeacher = usesTeacher; self.target = target; self.headline = headline
        self.task = task; self.pairedWith = pairedWith
    }
}

/// One line of a report table: a row's runs beside the paper's number for the same setting.
public struct StudyTableEntry: Sendable, Equatable {
    /// The row whose runs this line shows.
    public let row: String
    /// The setting as the paper's table names it.
    public let label: String
    /// The paper's number for it per metric of the table (Tables 1–4: mIoU % on Cityscapes,
    /// PSPNet-R18), or its words ("does not converge").
    public let paper: [String]

    /// A line of a table with one metric per row of the paper.
    public init(row: String, label: String, paper: String...) {
        self.row = row; self.label = label; self.paper = paper
    }
}

/// One table of the report (a table of the paper, or the target ablation).
public struct StudyTable: Sendable, Equatable {
    /// Heading.
    public let title: String
    /// What the paper's numbers are (model, data set).
    public let paperNote: String
    /// Lines in order.
    public let entries: [StudyTableEntry]
    /// The numbers it shows (each line's `paper` has one per metric).
    public let metrics: [StudyMetric]
    /// What its Δ column compares, when not the CE baseline.
    public let pairing: String?

    /// A table; see the properties.
    public init(title: String, paperNote: String, metrics: [StudyMetric] = [.mIoU], pairing: String? = nil, entries: [StudyTableEntry]) {
        self.title = title; self.paperNote = paperNote; self.metrics = metrics; self.pairing = pairing; self.entries = entries
    }

    /// The task of its rows (every table shows one task's rows).
    public var task: StudyTask { entries.first.flatMap { StudyGrid.row($0.row)?.task } ?? .segmentation }
}

/// The study's grid: every row, and the tables that show them. The segmentation rows' perceptual
/// term uses the paper's VGG16 (2,2,3,3,3) He-initialised loss network against the teacher's soft
/// labels unless the row says otherwise (configs/study/student.yaml); Tables 3 and the level
/// weights vary the paper's (1,1,1,1,1) network, as the paper does. The instance and depth rows
/// (Tables 5 and 7) use a narrow (1,1,1,1,1) network against the ground truth
/// (configs/study/condinst.yaml, depth.yaml).
public enum StudyGrid {
    /// The rows that share the baseline's runs for the paired comparison.
    public static let baseline = "baseline"
    /// Seeds of the headline rows by default, sized by the measured spread: the paired
    /// differences (baseline vs + perceptual vs teacher, 4800 iterations) spread by 0.87 points
    /// over 6 seeds, so 6 pairs give a standard error of 0.36, within the 0.4 that resolves a
    /// 1-point effect (docs/reproduction/notes.md).
    public static let headlineSeeds = 6

    private static func percep(_ extra: [String]) -> [String] { ["LOSS.PERCEPTUAL.ENABLED", "true"] + extra }
    private static let s11111 = ["LOSS.PERCEPTUAL.STRUCTURE", "[1, 1, 1, 1, 1]"]

    /// Every row, in the order they run: headline rows first, so a short study answers the main
    /// question before the ablations, and the costly families of Table 1 (torchvision widths,
    /// 1.5-2× a VGG row) last.
    public static let rows: [StudyRow] = [
        StudyRow(id: "baseline", label: "CE only", overrides: ["LOSS.PERCEPTUAL.ENABLED", "false"], usesTeacher: false, target: true, headline: true),
        StudyRow(id: "percep_teacher", label: "+ perceptual vs teacher (VGG16)", overrides: percep([]), usesTeacher: true, target: true, headline: true),
        StudyRow(id: "percep_gt", label: "+ perceptual vs one-hot GT (VGG16)", overrides: percep(["LOSS.PERCEPTUAL.TARGET", "ground_truth"]),
                 usesTeacher: false, target: true),
        StudyRow(id: "s11111", label: "(1,1,1,1,1)", overrides: percep(s11111), usesTeacher: true),
        StudyRow(id: "vgg11", label: "VGG11 (1,1,2,2,2)", overrides: percep(["LOSS.PERCEPTUAL.STRUCTURE", "[1, 1, 2, 2, 2]"]), usesTeacher: true),
        StudyRow(id: "vgg13", label: "VGG13 (2,2,2,2,2)", overrides: percep(["LOSS.PERCEPTUAL.STRUCTURE", "[2, 2, 2, 2, 2]"]), usesTeacher: true),
        StudyRow(id: "vgg19", label: "VGG19 (2,2,4,4,4)", overrides: percep(["LOSS.PERCEPTUAL.STRUCTURE", "[2, 2, 4, 4, 4]"]), usesTeacher: true),
        StudyRow(id: "s33444", label: "(3,3,4,4,4)", overrides: percep(["LOSS.PERCEPTUAL.STRUCTURE", "[3, 3, 4, 4, 4]"]), usesTeacher: true),
        StudyRow(id: "k1", label: "kernel 1", overrides: percep(s11111 + ["LOSS.PERCEPTUAL.KERNEL_SIZE", "1"]), usesTeacher: true),
        StudyRow(id: "k5", label: "kernel 5", overrides: percep(s11111 + ["LOSS.PERCEPTUAL.KERNEL_SIZE", "5"]), usesTeacher: true),
        StudyRow(id: "k7", label: "kernel 7", overrides: percep(s11111 + ["LOSS.PERCEPTUAL.KERNEL_SIZE", "7"]), usesTeacher: true),
        StudyRow(id: "xavier", label: "Xavier-normal", overrides: percep(["LOSS.PERCEPTUAL.INIT", "xavier_normal"]), usesTeacher: true),
        StudyRow(id: "normal1", label: "N(0, 1)", overrides: percep(["LOSS.PERCEPTUAL.INIT", "normal:1"]), usesTeacher: true),
        StudyRow(id: "normal0.1", label: "N(0, 0.1)", overrides: percep(["LOSS.PERCEPTUAL.INIT", "normal:0.1"]), usesTeacher: true),
        StudyRow(id: "normal0.01", label: "N(0, 0.01)", overrides: percep(["LOSS.PERCEPTUAL.INIT", "normal:0.01"]), usesTeacher: true),
        StudyRow(id: "uniform1", label: "U[−1, 1]", overrides: percep(["LOSS.PERCEPTUAL.INIT", "uniform:1"]), usesTeacher: true),
        StudyRow(id: "uniform0.1", label: "U[−0.1, 0.1]", overrides: percep(["LOSS.PERCEPTUAL.INIT", "uniform:0.1"]), usesTeacher: true),
        StudyRow(id: "uniform0.01", label: "U[−0.01, 0.01]", overrides: percep(["LOSS.PERCEPTUAL.INIT", "uniform:0.01"]), usesTeacher: true),
        StudyRow(id: "levels_equal", label: "five levels, equal weights",
                 overrides: percep(s11111 + ["LOSS.PERCEPTUAL.LEVEL_WEIGHTS", "[1, 1, 1, 1, 1]"]), usesTeacher: true),
        StudyRow(id: "levels_scaled", label: "five levels, 1/16 … 1",
                 overrides: percep(s11111 + ["LOSS.PERCEPTUAL.LEVEL_WEIGHTS", "[0.0625, 0.125, 0.25, 0.5, 1]"]), usesTeacher: true),
        StudyRow(id: "resnet18", label: "ResNet-18", overrides: percep(["LOSS.PERCEPTUAL.FAMILY", "resnet18"]), usesTeacher: true),
        StudyRow(id: "alexnet", label: "AlexNet", overrides: percep(["LOSS.PERCEPTUAL.FAMILY", "alexnet"]), usesTeacher: true),
        StudyRow(id: "mobilenetv2", label: "MobileNetV2", overrides: percep(["LOSS.PERCEPTUAL.FAMILY", "mobilenetv2"]), usesTeacher: true),
        StudyRow(id: "googlenet", label: "GoogLeNet", overrides: percep(["LOSS.PERCEPTUAL.FAMILY", "googlenet"]), usesTeacher: true),
        // Table 7 (depth, configs/study/depth.yaml): each perceptual row pairs with its row without it.
        StudyRow(id: "depth_wce", label: "WCE", overrides: noVNL, usesTeacher: false, target: true, task: .depth, pairedWith: nil),
        StudyRow(id: "depth_wce_percep", label: "WCE + perceptual", overrides: noVNL + percep([]), usesTeacher: false, target: true,
                 task: .depth, pairedWith: "depth_wce"),
        StudyRow(id: "depth_vnl", label: "WCE + VNL", overrides: [], usesTeacher: false, target: true, task: .depth, pairedWith: nil),
        StudyRow(id: "depth_vnl_percep", label: "WCE + VNL + perceptual", overrides: percep([]), usesTeacher: false, target: true,
                 task: .depth, pairedWith: "depth_vnl"),
        // Table 5 (CondInst, configs/study/condinst.yaml).
        StudyRow(id: "inst_baseline", label: "CondInst", overrides: [], usesTeacher: false, target: true, task: .instance, pairedWith: nil),
        StudyRow(id: "inst_percep", label: "CondInst + perceptual", overrides: percep([]), usesTeacher: false, target: true,
                 task: .instance, pairedWith: "inst_baseline"),
    ]

    private static let noVNL = ["LOSS.VNL.WEIGHT", "0.0"]

    /// The row called `id`, if any.
    public static func row(_ id: String) -> StudyRow? { rows.first { $0.id == id } }

    /// The report's tables (the paper's numbers: Cityscapes PSPNet-R18 with baseline 69.60 for the
    /// segmentation tables; COCO CondInst R-50 for Table 5; NYUDv2 VNL for Table 7).
    public static let tables: [StudyTable] = [
        StudyTable(title: "Target of the perceptual term", paperNote: "§4.2.1: one-hot targets converge poorly, hence the teacher", entries: [
            StudyTableEntry(row: "baseline", label: "CE only", paper: "69.60"),
            StudyTableEntry(row: "percep_teacher", label: "+ perceptual vs teacher", paper: "70.68"),
            StudyTableEntry(row: "percep_gt", label: "+ perceptual vs one-hot GT", paper: "not reported"),
        ]),
        StudyTable(title: "Table 1 — loss-network families (random weights)", paperNote: "Table 1, 'R' column", entries: [
            StudyTableEntry(row: "googlenet", label: "GoogLeNet", paper: "68.91"),
            StudyTableEntry(row: "alexnet", label: "AlexNet", paper: "69.80"),
            StudyTableEntry(row: "mobilenetv2", label: "MobileNetV2", paper: "69.98"),
            StudyTableEntry(row: "resnet18", label: "ResNet-18", paper: "70.16"),
            StudyTableEntry(row: "percep_teacher", label: "VGG16", paper: "70.68"),
            StudyTableEntry(row: "vgg19", label: "VGG19", paper: "71.25"),
        ]),
        StudyTable(title: "Table 2 — VGG structures (kernel 3)", paperNote: "Table 2, 'R' column (mean ± std over the paper's runs)", entries: [
            StudyTableEntry(row: "s11111", label: "(1,1,1,1,1)", paper: "70.88 ± 0.03"),
            StudyTableEntry(row: "vgg11", label: "VGG11 (1,1,2,2,2)", paper: "70.18 ± 0.11"),
            StudyTableEntry(row: "vgg13", label: "VGG13 (2,2,2,2,2)", paper: "70.64 ± 0.14"),
            StudyTableEntry(row: "percep_teacher", label: "VGG16 (2,2,3,3,3)", paper: "70.68 ± 0.03"),
            StudyTableEntry(row: "vgg19", label: "VGG19 (2,2,4,4,4)", paper: "71.25 ± 0.04"),
            StudyTableEntry(row: "s33444", label: "(3,3,4,4,4)", paper: "70.89 ± 0.23"),
        ]),
        StudyTable(title: "Table 3 — kernel sizes on (1,1,1,1,1)", paperNote: "Table 3", entries: [
            StudyTableEntry(row: "k1", label: "1", paper: "70.71 ± 0.02"),
            StudyTableEntry(row: "s11111", label: "3", paper: "70.88 ± 0.03"),
            StudyTableEntry(row: "k5", label: "5", paper: "70.93 ± 0.19"),
            StudyTableEntry(row: "k7", label: "7", paper: "71.16 ± 0.12"),
        ]),
        StudyTable(title: "Table 4 — initialisation of the loss network (VGG16)", paperNote: "Table 4", entries: [
            StudyTableEntry(row: "percep_teacher", label: "He (ours)", paper: "71.3"),
            StudyTableEntry(row: "xavier", label: "Xavier-normal", paper: "69.8"),
            StudyTableEntry(row: "normal1", label: "N(0, 1)", paper: "does not converge"),
            StudyTableEntry(row: "normal0.1", label: "N(0, 0.1)", paper: "45.6"),
            StudyTableEntry(row: "normal0.01", label: "N(0, 0.01)", paper: "68.5"),
            StudyTableEntry(row: "uniform1", label: "U[−1, 1]", paper: "does not converge"),
            StudyTableEntry(row: "uniform0.1", label: "U[−0.1, 0.1]", paper: "51.7"),
            StudyTableEntry(row: "uniform0.01", label: "U[−0.01, 0.01]", paper: "69.2"),
        ]),
        StudyTable(title: "Multi-level losses on (1,1,1,1,1)", paperNote: "§4.1.2", entries: [
            StudyTableEntry(row: "s11111", label: "last level only", paper: "70.88"),
            StudyTableEntry(row: "levels_equal", label: "five levels, equal", paper: "70.73"),
            StudyTableEntry(row: "levels_scaled", label: "five levels, 1/16, 1/8, 1/4, 1/2, 1", paper: "70.93"),
        ]),
        StudyTable(title: "Table 5 — instance segmentation (CondInst)",
                   paperNote: "Table 5, COCO val2017, CondInst R-50, 90K iterations; ours: a narrow R-18 CondInst from scratch on synth coco",
                   metrics: [.boxAP, .maskAP], pairing: "Δ: paired with CondInst without the perceptual term", entries: [
            StudyTableEntry(row: "inst_baseline", label: "CondInst", paper: "36.91", "33.42"),
            StudyTableEntry(row: "inst_percep", label: "CondInst + perceptual", paper: "37.44", "33.69"),
        ]),
        StudyTable(title: "Table 7 — depth (VNL)",
                   paperNote: "Table 7, NYUDv2, VNL ResNet-50, relative error in %; ours: VNL's narrow network on synth depth --tiny rooms, lower abs_rel is better",
                   metrics: [.absRel, .delta1], pairing: "Δ: paired with the same row without the perceptual term", entries: [
            StudyTableEntry(row: "depth_wce", label: "WCE", paper: "14.5", "not reported"),
            StudyTableEntry(row: "depth_wce_percep", label: "WCE + perceptual", paper: "14.0", "not reported"),
            StudyTableEntry(row: "depth_vnl", label: "WCE + VNL", paper: "13.6", "not reported"),
            StudyTableEntry(row: "depth_vnl_percep", label: "WCE + VNL + perceptual", paper: "13.2", "not reported"),
        ]),
    ]
}

extension StudyGrid {
    /// The teacher every distilling row reads (configs/study/teacher.yaml's network).
    public static let teacherName = "deeplabv3plus_r18", teacherBaseChannels = 16

    /// Overrides that make a row distil from the teacher checkpoint at `weights`.
    public static func teacherOverrides(weights: String) -> [String] {
        ["MODEL.TEACHER.NAME", teacherName, "MODEL.TEACHER.BASE_CHANNELS", "\(teacherBaseChannels)", "MODEL.TEACHER.WEIGHTS", weights]
    }

    /// The rows of a study: the target rows of `tasks`, with every ablation row when `ablations`;
    /// `only` picks rows by name, of any task (any row, except that `--quick` without
    /// `--ablations` keeps to the target rows). Unknown names are an error naming the known ones.
    public static func select(quick: Bool, ablations: Bool, only: [String], tasks: Set<StudyTask> = [.segmentation]) throws -> [StudyRow] {
        if let unknown = only.first(where: { row($0) == nil }) {
            throw StudyError("--only", "unknown row '\(unknown)'; rows: \(rows.map(\.id).joined(separator: ", "))")
        }
        let byName = !only.isEmpty && !quick
        return rows.filter {
            ($0.target || ablations || byName) && (only.isEmpty ? tasks.contains($0.task) : only.contains($0.id))
        }
    }
}
