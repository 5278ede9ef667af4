import Foundation

/// `SOLVER.LR_SCHEDULER_NAME`.
public enum LRSchedulerName: String, CaseIterable, Sendable {
    /// base · (1 − it/max)^power.
    case poly
    /// detectron2's WarmupMultiStepLR: × gamma at each of `SOLVER.STEPS`.
    case warmupMultiStep = "WarmupMultiStepLR"
    /// base.
    case constant
}

/// `SOLVER.WARMUP_METHOD`, as detectron2's `_get_warmup_factor_at_iter`.
public enum WarmupMethod: String, CaseIterable, Sendable {
    /// factor = warmup_factor · (1 − alpha) + alpha with alpha = it / warmup_iters.
    case linear
    /// factor = warmup_factor.
    case constant
}

/// A learning-rate schedule as a pure function of the iteration. Being pure (no stepping state)
/// is what lets rank 0 own it and a resumed run recompute it from the iteration alone.
///
/// lr(it) = BASE_LR · warmup(it) · shape(it), where warmup(it) is 1 from WARMUP_ITERS on, and
/// shape is (1 − it/MAX_ITER)^POLY_POWER (poly, 0 from MAX_ITER on), GAMMA^#{steps ≤ it}
/// (WarmupMultiStepLR) or 1 (constant). Warmup applies to every scheduler as in detectron2; set
/// WARMUP_ITERS to 0 for none.
public struct LRSchedule: Sendable, Equatable {
    /// Which shape.
    public var name: LRSchedulerName
    /// SOLVER.BASE_LR.
    public var baseLR: Double
    /// SOLVER.MAX_ITER (poly's horizon).
    public var maxIter: Int
    /// SOLVER.POLY_POWER.
    public var polyPower: Double
    /// SOLVER.STEPS (WarmupMultiStepLR), sorted ascending.
    public var steps: [Int]
    /// SOLVER.GAMMA.
    public var gamma: Double
    /// SOLVER.WARMUP_ITERS; 0 disables warmup.
    public var warmupIters: Int
    /// SOLVER.WARMUP_FACTOR: the warmup multiplier at iteration 0.
    public var warmupFactor: Double
    /// SOLVER.WARMUP_METHOD.
    public var warmupMethod: WarmupMethod
    /// SOLVER.STEP_BEFORE_ITER: the scheduler steps before each update, as VNL's training loop
    /// does, so the update at iteration k uses the rate of k + 1 (and the last one poly's 0).
    public var stepBeforeIteration = false

    /// A schedule from explicit values; defaults are detectron2's.
    public init(name: LRSchedulerName, baseLR: Double, maxIter: Int, polyPower: Double = 0.9, steps: [Int] = [],
                gamma: Double = 0.1, warmupIters: Int = 1000, warmupFactor: Double = 0.001, warmupMethod: WarmupMethod = .linear) {
        self.name = name
        self.baseLR = baseLR
        self.maxIter = maxIter
        self.polyPower = polyPower
        self.steps = steps.sorted()
        self.gamma = gamma
        self.warmupIters = warmupIters
        self.warmupFactor = warmupFactor
        self.warmupMethod = warmupMethod
    }

    /// The schedule the resolved config describes (loading already checked the names).
    public init(config c: TrainingConfig) {
        self.init(name: LRSchedulerName(rawValue: c.string("SOLVER.LR_SCHEDULER_NAME"))!,
                  baseLR: c.double("SOLVER.BASE_LR"), maxIter: c.int("SOLVER.MAX_ITER"),
                  polyPower: c.double("SOLVER.POLY_POWER"), steps: c.ints("SOLVER.STEPS"), gamma: c.double("SOLVER.GAMMA"),
                  warmupIters: c.int("SOLVER.WARMUP_ITERS"), warmupFactor: c.double("SOLVER.WARMUP_FACTOR"),
                  warmupMethod: WarmupMethod(rawValue: c.string("SOLVER.WARMUP_METHOD"))!)
        stepBeforeIteration = c.bool("SOLVER.STEP_BEFORE_ITER")
    }

    /// The warmup multiplier at `iteration` (detectron2's `_get_warmup_factor_at_iter`).
    public func warmup(at iteration: Int) -> Double {
        guard iteration < warmupIters else { return 1 }
        switch warmupMethod {
        case .constant: return warmupFactor
        case .linear:
            let alpha = Double(iteration) / Double(warmupIters)
            return warmupFactor * (1 - alpha) + alpha
        }
    }

    /// The learning rate for the update made at `iteration` (0-based).
    public func lr(at update: Int) -> Double {
        let iteration = update + (stepBeforeIteration ? 1 : 0)
        let shape: Double
        switch name {
        case .constant: shape = 1
        case .warmupMultiStep:
            // bisect_right: a step at `s` takes effect from iteration s itself.
            shape = pow(gamma, Double(steps.lazy.filter { $0 <= iteration }.count))
        case .poly:
            // Clamped so iterations past MAX_ITER give 0 instead of pow of a negative base (NaN).
            shape = pow(max(0, 1 - Double(iteration) / Double(max(maxIter, 1))), polyPower)
        }
        return baseLR * warmup(at: iteration) * shape
    }
}
