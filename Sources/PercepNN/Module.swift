import Foundation
import PercepCore

/// Base class of every layer and network: an ordered registry of parameters, buffers and child
/// modules whose dotted names are PyTorch's `state_dict` keys (`layer1.0.conv1.weight`,
/// `bn1.running_mean`).
///
/// Subclasses register in their initialiser, in PyTorch's attribute order, so that the key order
/// matches a PyTorch model's too. Layers are callable (`callAsFunction`) in subclasses.
open class Module {
    /// Parameters in registration order (trainable unless frozen).
    public private(set) var parameters: [(name: String, tensor: Tensor)] = []
    /// Buffers in registration order (saved, never trained).
    public private(set) var buffers: [(name: String, tensor: Tensor)] = []
    /// Child modules in registration order.
    public private(set) var children: [(name: String, module: Module)] = []
    /// Training mode (batch statistics, dropout); eval mode when false.
    public private(set) var isTraining = true

    /// An empty module.
    public init() {}

    /// Registers a parameter under `name`; it needs a gradient unless frozen later.
    @discardableResult
    public func registerParameter(_ name: String, _ t: Tensor) -> Tensor {
        t.requiresGrad = true
        parameters.append((name, t))
        return t
    }

    /// Registers a buffer (running statistics, counters) under `name`.
    @discardableResult
    public func registerBuffer(_ name: String, _ t: Tensor) -> Tensor {
        t.requiresGrad = false
        buffers.append((name, t))
        return t
    }

    /// Registers a child module under `name`.
    @discardableResult
    public func registerModule<M: Module>(_ name: String, _ m: M) -> M {
        children.append((name, m))
        return m
    }

    /// Every parameter of this module and its descendants with its dotted name.
    public func namedParameters(prefix: String = "") -> [(String, Tensor)] {
        var out = parameters.map { (prefix + $0.name, $0.tensor) }
        for (name, child) in children { out += child.namedParameters(prefix: prefix + name + ".") }
        return out
    }

    /// Every buffer of this module and its descendants with its dotted name.
    public func namedBuffers(prefix: String = "") -> [(String, Tensor)] {
        var out = buffers.map { (prefix + $0.name, $0.tensor) }
        for (name, child) in children { out += child.namedBuffers(prefix: prefix + name + ".") }
        return out
    }

    /// Every descendant module (self first) with its dotted name.
    public func namedModules(prefix: String = "") -> [(String, Module)] {
        var out: [(String, Module)] = [(prefix, self)]
        for (name, child) in children {
            out += child.namedModules(prefix: prefix.isEmpty ? name : prefix + "." + name)
        }
        return out
    }

    /// PyTorch's state_dict order: each module's parameters, then its buffers, then its children.
    public func stateDict(prefix: String = "") -> [(String, Tensor)] {
        var out = parameters.map { (prefix + $0.name, $0.tensor) } + buffers.map { (prefix + $0.name, $0.tensor) }
        for (name, child) in children { out += child.stateDict(prefix: prefix + name + ".") }
        return out
    }

    /// Trainable parameters (those that need a gradient).
    public var trainableParameters: [Tensor] { namedParameters().map(\.1).filter(\.requiresGrad) }

    /// Switches this module and its descendants to training or eval mode.
    public func train(_ on: Bool = true) {
        isTraining = on
        for (_, c) in children { c.train(on) }
    }

    /// Eval mode (running statistics, no dropout).
    public func eval() { train(false) }

    /// Stops gradients for every parameter of this module and its descendants.
    public func freeze() { for (_, p) in namedParameters() { p.requiresGrad = false } }

    /// Lets every parameter of this module and its descendants receive gradients again.
    public func unfreeze() { for (_, p) in namedParameters() { p.requiresGrad = true } }

    /// Clears every parameter's gradient.
    public func zeroGrad() { for (_, p) in namedParameters() { p.grad = nil } }

    /// Copies values from `state` into this module's parameters and buffers.
    ///
    /// Strict loading reports every missing, unexpected and misshapen name in one error;
    /// non-strict loading copies what matches and still rejects shape mismatches.
    public func loadStateDict(_ state: [String: Tensor], strict: Bool = true) throws {
        let mine = stateDict()
        var missing: [String] = [], mismatched: [String] = []
        for (name, t) in mine {
            guard let src = state[name] else { missing.append(name); continue }
            if src.shape != t.shape { mismatched.append("\(name): checkpoint \(src.shape), model \(t.shape)") }
        }
        let known = Set(mine.map(\.0))
        let unexpected = state.keys.filter { !known.contains($0) }.sorted()
        if !mismatched.isEmpty || (strict && (!missing.isEmpty || !unexpected.isEmpty)) {
            throw StateDictError(missing: strict ? missing : [], unexpected: strict ? unexpected : [], mismatched: mismatched)
        }
        for (name, t) in mine { if let src = state[name] { t.assign(src) } }
    }
}

/// Every problem found while loading a state dict, reported at once.
public struct StateDictError: Error, CustomStringConvertible {
    /// Model names absent from the state dict.
    public let missing: [String]
    /// State-dict names the model does not have.
    public let unexpected: [String]
    /// Names whose shapes differ, with both shapes.
    public let mismatched: [String]

    /// An error listing the problems.
    public init(missing: [String], unexpected: [String], mismatched: [String]) {
        self.missing = missing; self.unexpected = unexpected; self.mismatched = mismatched
    }

    /// One message listing every problem.
    public var description: String {
        var parts: [String] = []
        if !missing.isEmpty { parts.append("missing keys: " + missing.joined(separator: ", ")) }
        if !unexpected.isEmpty { parts.append("unexpected keys: " + unexpected.joined(separator: ", ")) }
        if !mismatched.isEmpty { parts.append("size mismatch: " + mismatched.joined(separator: "; ")) }
        return "Error(s) in loading state_dict: " + parts.joined(separator: "; ")
    }
}

/// A module that maps one tensor to one tensor, so layers compose in `Sequential`.
public protocol Layer: Module {
    /// Applies the layer.
    func callAsFunction(_ x: Tensor) -> Tensor
}

/// Children applied in order, named "0", "1", … as PyTorch's `nn.Sequential`.
public final class Sequential: Module, Layer {
    /// The layers, in order.
    public private(set) var layers: [any Layer] = []

    /// A sequence of layers.
    public init(_ layers: [any Layer]) {
        super.init()
        for l in layers { append(l) }
    }

    /// Adds a layer at the end under the next index.
    public func append(_ l: any Layer) {
        registerModule(String(layers.count), l as Module)
        layers.append(l)
    }

    /// Applies each layer in turn.
    public func callAsFunction(_ x: Tensor) -> Tensor { layers.reduce(x) { $1($0) } }
}

/// Children named "0", "1", … like PyTorch's `nn.ModuleList`: a container for names only, whose
/// owner decides how to apply the elements (e.g. parallel branches whose outputs are
/// concatenated, which `Sequential` cannot express).
public final class ModuleList<Element: Module>: Module {
    /// The elements, in order.
    public private(set) var elements: [Element] = []

    /// A list of modules.
    public init(_ elements: [Element]) {
        super.init()
        for e in elements { append(e) }
    }

    /// Adds a module at the end under the next index.
    public func append(_ e: Element) {
        registerModule(String(elements.count), e)
        elements.append(e)
    }
}
