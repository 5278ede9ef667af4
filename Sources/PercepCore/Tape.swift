import Foundation

/// The autodiff tape: a linear list of the ops that ran, in execution order (a Wengert list).
///
/// Because ops are appended as they run, the list is already topologically sorted: `backward`
/// is a reverse loop, with no recursion and no graph search. Each entry keeps its output (to read
/// the output's gradient), the inputs that need gradients, and a closure that maps the output's
/// gradient to the inputs' gradients. An entry is dropped as soon as it has run, which releases
/// the tensors its closure saved. Ops whose inputs need no gradient never reach the tape.
public final class Tape {
    /// One recorded op.
    struct Entry {
        let output: Tensor
        let inputs: [Tensor]
        /// Maps d(loss)/d(output) to d(loss)/d(input) for each input (nil where not needed).
        /// The gradient it receives is its own (nothing else holds that storage, and the output's
        /// gradient is dropped after the call), so it may overwrite it and return it.
        let backward: (Tensor) -> [Tensor?]
        /// The recording function (`#function` of the op), for `OpProfile`.
        let op: StaticString
    }

    var entries: [Entry] = []
    var gradDepth = 0

    /// The tape of the calling thread.
    public static var current: Tape {
        if let t = Thread.current.threadDictionary[key] as? Tape { return t }
        let t = Tape()
        Thread.current.threadDictionary[key] = t
        return t
    }
    private static let key = "percep-dist.tape"

    /// Whether ops are being recorded on this thread (false inside `withoutGrad`).
    public var isRecording: Bool { gradDepth == 0 }

    /// Number of ops waiting for `backward`.
    public var count: Int { entries.count }

    /// Drops every recorded op without computing gradients.
    public func reset() { entries.removeAll(keepingCapacity: true) }

    /// Records `output = op(inputs)` if recording is on and any input needs a gradient.
    ///
    /// `backward` receives the output's gradient and returns one gradient per input, in order,
    /// each with that input's shape (nil for inputs that need none). `op` names the op in
    /// `OpProfile`'s report; the calling function's name by default.
    @inline(__always)
    public static func record(_ output: Tensor, inputs: [Tensor], op: StaticString = #function, backward: @escaping (Tensor) -> [Tensor?]) {
        guard inputs.contains(where: { $0.requiresGrad }) else { return }
        let tape = current
        guard tape.isRecording else { return }
        output.requiresGrad = true
        output.isLeaf = false
        tape.entries.append(Entry(output: output, inputs: inputs, backward: backward, op: op))
        if OpProfile.enabled { OpProfile.chargeForward(op) }
    }

    /// Runs `body` on a fresh tape of its own and restores this thread's tape afterwards: a
    /// computation whose forward and backward both happen inside `body` (a loss evaluated in
    /// chunks to bound memory) neither sees nor disturbs the ops recorded around it.
    public static func isolated<T>(_ body: () throws -> T) rethrows -> T {
        let outer = current
        let inner = Tape()
        Thread.current.threadDictionary[key] = inner
        defer { Thread.current.threadDictionary[key] = outer }
        return try body()
    }

    /// Runs `body` with recording switched off: nothing it computes enters the tape.
    public static func withoutGrad<T>(_ body: () throws -> T) rethrows -> T {
        let tape = current
        tape.gradDepth += 1
        defer { tape.gradDepth -= 1 }
        return try body()
    }

    /// Backpropagates from `root` through every op recorded on this thread, then clears the tape.
    ///
    /// Leaf tensors with `requiresGrad` accumulate into `grad` (+=, into an existing buffer when
    /// one is set, e.g. a view into a flat gradient buffer). Gradients of intermediate tensors are
    /// released once their op has run. `seed` defaults to ones (d root / d root).
    /// `onLeafGradReady` is called for a leaf when no earlier op can add to its gradient any more.
    public func backward(from root: Tensor, seed: Tensor? = nil, onLeafGradReady: ((Tensor) -> Void)? = nil) {
        precondition(root.requiresGrad, "backward: the root tensor does not require a gradient")
        root.accumulateGrad(seed ?? Tensor.ones(root.shape), owned: seed == nil)
        defer { entries.removeAll(keepingCapacity: true) }
        var lastUse: [ObjectIdentifier: Int] = [:]
        if onLeafGradReady != nil {
            for (i, e) in entries.enumerated() {
                for x in e.inputs where x.isLeaf && x.requiresGrad && lastUse[ObjectIdentifier(x)] == nil {
                    lastUse[ObjectIdentifier(x)] = i
                }
            }
        }
        var i = entries.count - 1
        while i >= 0 {
            let entry = entries[i]
            entries.removeLast()
            if let gOut = entry.output.grad {
                let t0 = OpProfile.enabled ? DispatchTime.now().uptimeNanoseconds : 0
                defer {
                    if OpProfile.enabled { OpProfile.chargeBackward(entry.op, seconds: Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9) }
                }
                gradDepth += 1
                let grads = entry.backward(gOut)
                gradDepth -= 1
                precondition(grads.count == entry.inputs.count, "backward returned \(grads.count) gradients for \(entry.inputs.count) inputs")
                // The output's gradient dies with this entry, so the first input handed its
                // storage (or a fresh tensor) may keep it; a second input handed the same
                // storage (add passes one gradient to both operands) gets a copy.
                var taken = Set<ObjectIdentifier>()
                for (x, g) in zip(entry.inputs, grads) {
                    guard x.requiresGrad, let g else { continue }
                    precondition(g.shape == x.shape, "gradient shape \(g.shape) does not match input \(x.shape)")
                    let sid = ObjectIdentifier(g.storage)
                    if x.accumulateGrad(g, owned: !taken.contains(sid)) { taken.insert(sid) }
                }
                if !entry.output.isLeaf { entry.output.grad = nil }
            }
            if let hook = onLeafGradReady {
                for x in entry.inputs where x.isLeaf && x.requiresGrad && lastUse[ObjectIdentifier(x)] == i {
                    hook(x)
                }
            }
            i -= 1
        }
    }
}

extension Tensor {
    /// Adds `g` to this tensor's gradient; `owned` means nobody else holds `g`'s storage.
    /// Returns true when the gradient now refers to `g`'s storage.
    @discardableResult
    func accumulateGrad(_ g: Tensor, owned: Bool) -> Bool {
        if let existing = grad {
            if gradIsUnwritten {
                existing.data.update(from: g.data, count: count)
                gradIsUnwritten = false
            } else {
                Kernels.addInPlace(existing.data, g.data, count: count)
            }
            return false
        }
        grad = owned ? g.detached() : g.copy()
        return owned
    }

    /// Where an op's backward may write this leaf's gradient itself, for the first gradient of a
    /// step into an unwritten buffer (`gradIsUnwritten`): the buffer, now counted as written.
    /// Nil otherwise; the op then returns a fresh gradient and the tape adds it.
    public func claimUnwrittenGrad() -> UnsafeMutablePointer<Float>? {
        guard isLeaf, requiresGrad, gradIsUnwritten, let g = grad else { return nil }
        gradIsUnwritten = false
        return g.data
    }

    /// Backpropagates from this tensor (usually a scalar loss) through the current thread's tape.
    public func backward(seed: Tensor? = nil) {
        Tape.current.backward(from: self, seed: seed)
    }

    /// Clears this tensor's gradient (a leaf's flat-buffer view is zeroed in place instead).
    public func zeroGrad() {
        grad?.fill(0)
    }
}
