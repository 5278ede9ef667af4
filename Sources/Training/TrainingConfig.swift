import Foundation
import Yams

/// A fully resolved trainer config: every schema key with its value from the defaults, the
/// `_BASE_` chain, the file and the command-line overrides, in that order of precedence.
///
/// Loading validates everything up front (unknown keys, types, allowed values), so the typed
/// accessors below cannot fail on a schema key.
public struct TrainingConfig: Sendable, Equatable {
    /// The schema the values were checked against.
    public let schema: ConfigSchema
    /// Every schema key's resolved value, by full dotted path.
    public private(set) var values: [String: ConfigValue]

    /// All defaults of `schema`.
    public init(schema: ConfigSchema = .trainer) {
        self.schema = schema
        self.values = schema.keys.mapValues(\.defaultValue)
    }

    /// Equal when the resolved values are (the schema is fixed per program).
    public static func == (a: TrainingConfig, b: TrainingConfig) -> Bool { a.values == b.values }

    // MARK: Loading

    /// Loads `path` with its `_BASE_` chain over the defaults, then applies `overrides`
    /// (`["SOLVER.BASE_LR", "0.02", …]`, as they follow the options on the command line).
    public static func load(file path: String, overrides: [String] = [], schema: ConfigSchema = .trainer) throws -> TrainingConfig {
        var config = TrainingConfig(schema: schema)
        try config.merge(file: URL(fileURLWithPath: path).standardizedFileURL, chain: [])
        try config.apply(overrides: overrides)
        return config
    }

    /// Parses YAML `text` (no `_BASE_` allowed, since there is no file to resolve it against) over
    /// the defaults; `source` names it in errors. Reads back `resolvedYAML`.
    public static func parse(yaml text: String, source: String = "<string>", schema: ConfigSchema = .trainer) throws -> TrainingConfig {
        var config = TrainingConfig(schema: schema)
        let root = try compose(text, source: source)
        if let root, case .mapping(let m) = root, m.contains(where: { $0.key.string == "_BASE_" }) {
            throw ConfigError.unreadable(source: source, reason: "_BASE_ needs a file to resolve against")
        }
        if let root { try config.merge(node: root, prefix: "", source: source) }
        return config
    }

    /// Applies `KEY VALUE` pairs; each VALUE is read as a YAML scalar or flow list, and a list key
    /// also takes comma-separated numbers (`LOSS.PERCEPTUAL.STRUCTURE 2,2,3,3,3`).
    public mutating func apply(overrides: [String]) throws {
        guard overrides.count % 2 == 0 else {
            throw ConfigError.malformedOverrides("overrides must be KEY VALUE pairs; \(overrides.last!) has no value")
        }
        let source = "command line"
        for i in stride(from: 0, to: overrides.count, by: 2) {
            let key = overrides[i], text = overrides[i + 1]
            guard let spec = schema.keys[key] else {
                throw ConfigError.unknownKey(source: source, key: key, suggestion: schema.closestKey(to: key))
            }
            var node = try TrainingConfig.compose(text, source: source) ?? Node.scalar(.init(""))
            if case .scalar(let s) = node, s.style == .plain, spec.type == .intList || spec.type == .doubleList {
                let items = s.string.split(separator: ",", omittingEmptySubsequences: false)
                    .map { Node.scalar(.init($0.trimmingCharacters(in: .whitespaces))) }
                node = .sequence(.init(s.string.isEmpty ? [] : items))
            }
            values[key] = try TrainingConfig.convert(node, to: spec, source: source)
        }
    }

    /// Merges one file: its `_BASE_` first (relative to this file's directory), then its own keys.
    private mutating func merge(file: URL, chain: [String]) throws {
        let path = file.path
        if chain.contains(path) { throw ConfigError.baseCycle(chain: chain + [path]) }
        let text: String
        do { text = try String(contentsOf: file, encoding: .utf8) } catch {
            throw ConfigError.unreadable(source: chain.last.map { "\($0): _BASE_ \(path)" } ?? path, reason: error.localizedDescription)
        }
        guard let root = try TrainingConfig.compose(text, source: path) else { return }  // empty file: nothing to set
        guard case .mapping(let mapping) = root else { throw ConfigError.notAMapping(source: path, key: "") }
        var own = mapping
        if let i = own.firstIndex(where: { $0.key.string == "_BASE_" }) {
            guard case .scalar(let s) = own[i].value, !s.string.isEmpty else {
                throw ConfigError.wrongType(source: path, key: "_BASE_", expected: .string, found: TrainingConfig.describe(own[i].value))
            }
            let base = URL(fileURLWithPath: s.string, relativeTo: file.deletingLastPathComponent()).standardizedFileURL
            try merge(file: base, chain: chain + [path])
            own = Node.Mapping(own.filter { $0.key.string != "_BASE_" }.map { ($0.key, $0.value) })
        }
        try merge(node: .mapping(own), prefix: "", source: path)
    }

    /// Walks a mapping, checking each key against the schema's keys and groups.
    private mutating func merge(node: Node, prefix: String, source: String) throws {
        guard case .mapping(let mapping) = node else { throw ConfigError.notAMapping(source: source, key: prefix) }
        var seen: Set<String> = []
        for (k, v) in mapping {
            guard case .scalar(let ks) = k else { throw ConfigError.notAMapping(source: source, key: prefix) }
            let path = prefix.isEmpty ? ks.string : prefix + "." + ks.string
            guard seen.insert(path).inserted else { throw ConfigError.duplicateKey(source: source, key: path) }
            if let spec = schema.keys[path] {
                values[path] = try TrainingConfig.convert(v, to: spec, source: source)
            } else if schema.groups.contains(path) {
                try merge(node: v, prefix: path, source: source)
            } else {
                throw ConfigError.unknownKey(source: source, key: path, suggestion: schema.closestKey(to: path))
            }
        }
    }

    /// Deepest nesting (flow brackets or block indentation) a config may have. libyaml composes
    /// recursively, so a hostile file nested 10⁵ deep would overflow the stack; real configs are
    /// a few levels deep.
    static let maxNesting = 64

    /// Yams' compose, with its errors turned into `malformedYAML` naming the source and position.
    private static func compose(_ text: String, source: String) throws -> Node? {
        try checkNesting(text, source: source)
        do { return try Yams.compose(yaml: text) } catch let error as YamlError {
            switch error {
            case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _), let .composer(context, problem, mark, _):
                let what = [context?.text, problem].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: " ")
                throw ConfigError.malformedYAML(source: source, line: mark.line, column: mark.column, problem: what)
            default:
                throw ConfigError.malformedYAML(source: source, line: nil, column: nil, problem: "\(error)")
            }
        }
    }

    /// Refuses text nested deeper than `maxNesting`: open flow brackets ([ and { outside quotes
    /// and comments) plus indentation steps, counted per line. A quote that never closes only
    /// makes the scan miss brackets after it, never refuse a valid file.
    static func checkNesting(_ text: String, source: String) throws {
        var flow = 0, line = 1
        var quote: Character? = nil, comment = false, atLineStart = true, indent = 0
        for ch in text {
            if ch == "\n" {
                line += 1; comment = false; atLineStart = true; indent = 0
                continue
            }
            if atLineStart {
                if ch == " " { indent += 1; continue }
                atLineStart = false
                if indent / 2 + flow > maxNesting {
                    throw ConfigError.malformedYAML(source: source, line: line, column: indent + 1, problem: "nesting deeper than \(maxNesting) levels")
                }
            }
            if comment { continue }
            if let q = quote { if ch == q { quote = nil }; continue }
            switch ch {
            case "\"", "'": quote = ch
            case "#": comment = true
            case "[", "{":
                flow += 1
                if flow > maxNesting {
                    throw ConfigError.malformedYAML(source: source, line: line, column: nil, problem: "nesting deeper than \(maxNesting) levels")
                }
            case "]", "}": flow = max(0, flow - 1)
            default: break
            }
        }
    }

    /// Reads `node` as `spec`'s type. Quoted scalars are strings, so `MAX_ITER: "100"` is a type
    /// error rather than a silent conversion.
    static func convert(_ node: Node, to spec: ConfigKey, source: String) throws -> ConfigValue {
        let wrong = ConfigError.wrongType(source: source, key: spec.path, expected: spec.type, found: describe(node))
        func scalar(_ n: Node) throws -> String {
            guard case .scalar(let s) = n, s.style == .plain || s.style == .any else { throw wrong }
            return s.string
        }
        func int(_ n: Node) throws -> Int { guard let v = Int(try scalar(n).replacingOccurrences(of: "_", with: "")) else { throw wrong }; return v }
        func double(_ n: Node) throws -> Double {
            guard let v = Double(try scalar(n).replacingOccurrences(of: "_", with: "")), v.isFinite else { throw wrong }
            return v
        }
        func list(_ n: Node) throws -> [Node] { guard case .sequence(let s) = n else { throw wrong }; return Array(s) }
        let value: ConfigValue
        switch spec.type {
        case .int: value = .int(try int(node))
        case .double: value = .double(try double(node))
        case .bool:
            switch try scalar(node).lowercased() {
            case "true": value = .bool(true)
            case "false": value = .bool(false)
            default: throw wrong
            }
        case .string:
            guard case .scalar(let s) = node else { throw wrong }
            value = .string(s.string)
        case .intList: value = .intList(try list(node).map(int))
        case .doubleList: value = .doubleList(try list(node).map(double))
        }
        if let allowed = spec.allowed, case .string(let s) = value, !allowed.contains(s) {
            throw ConfigError.invalidValue(source: source, key: spec.path, value: s, allowed: allowed)
        }
        if let range = spec.range {
            let numbers: [Double]
            switch value {
            case .int(let v): numbers = [Double(v)]
            case .double(let v): numbers = [v]
            case .intList(let v): numbers = v.map(Double.init)
            case .doubleList(let v): numbers = v
            default: numbers = []
            }
            if let bad = numbers.first(where: { !range.contains($0) }) {
                throw ConfigError.outOfRange(source: source, key: spec.path, value: bad, range: range)
            }
        }
        return value
    }

    /// A short description of what was found, for type errors.
    private static func describe(_ node: Node) -> String {
        switch node {
        case .scalar(let s): return s.style == .plain || s.style == .any ? "'\(s.string)'" : "quoted string \"\(s.string)\""
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        }
    }

    // MARK: Dump and hash

    /// The resolved config as block YAML with keys sorted at every level: the text logged at start
    /// and stored in checkpoints. Deterministic, so equal configs give equal text on every rank.
    public var resolvedYAML: String {
        var out = ""
        var open: [Substring] = []  // the groups of the previous key, to print each group header once
        for path in values.keys.sorted(by: TrainingConfig.groupOrder) {
            let parts = path.split(separator: ".")
            let groups = Array(parts.dropLast())
            var common = 0
            while common < min(groups.count, open.count), groups[common] == open[common] { common += 1 }
            for d in common..<groups.count { out += String(repeating: "  ", count: d) + groups[d] + ":\n" }
            open = groups
            out += String(repeating: "  ", count: groups.count) + parts.last! + ": \(values[path]!)\n"
        }
        return out
    }

    /// Sorts component by component, so a group's keys stay together (`A.B.C` before `A.BB`).
    private static func groupOrder(_ a: String, _ b: String) -> Bool {
        a.split(separator: ".").lexicographicallyPrecedes(b.split(separator: "."))
    }

    /// 64-bit FNV-1a of `resolvedYAML`'s UTF-8 bytes: the config's identity in checkpoints and in the
    /// replica check.
    public var hash: UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in resolvedYAML.utf8 { h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        return h
    }

    // MARK: Typed accessors

    /// The value of `key`; a key outside the schema or of another type is a programming error.
    private func value(_ key: String, _ type: ConfigType) -> ConfigValue {
        guard let v = values[key] else { preconditionFailure("\(key) is not a config key") }
        precondition(v.type == type, "\(key) is \(v.type), not \(type)")
        return v
    }

    /// An `Int` key's value.
    public func int(_ key: String) -> Int { if case .int(let v) = value(key, .int) { return v }; fatalError() }
    /// A `Double` key's value.
    public func double(_ key: String) -> Double { if case .double(let v) = value(key, .double) { return v }; fatalError() }
    /// A `Bool` key's value.
    public func bool(_ key: String) -> Bool { if case .bool(let v) = value(key, .bool) { return v }; fatalError() }
    /// A `String` key's value.
    public func string(_ key: String) -> String { if case .string(let v) = value(key, .string) { return v }; fatalError() }
    /// An `[Int]` key's value.
    public func ints(_ key: String) -> [Int] { if case .intList(let v) = value(key, .intList) { return v }; fatalError() }
    /// A `[Double]` key's value.
    public func doubles(_ key: String) -> [Double] { if case .doubleList(let v) = value(key, .doubleList) { return v }; fatalError() }
}

// MARK: Comparing a stored config

/// How a config stored in a checkpoint (its `resolvedYAML`) differs from this run's.
public struct ConfigDifference: Sendable {
    /// One key whose value differs.
    public typealias Change = (key: String, stored: String, current: String)
    /// Keys whose values differ: (key, stored value, this run's value), sorted by key.
    public var changed: [Change] = []
    /// Keys this program knows that the stored config lacks (written by an older version); they
    /// take this run's values.
    public var added: [(key: String, current: String)] = []
    /// Keys the stored config has that this program no longer knows.
    public var removed: [String] = []

    /// True when nothing differs.
    public var isEmpty: Bool { changed.isEmpty && added.isEmpty && removed.isEmpty }
}

extension TrainingConfig {
    /// Whether `key` only says where things live or how often the run logs, checkpoints,
    /// evaluates or waits — never what it computes — so a resume may take a new value: paths
    /// (OUTPUT_DIR, DATASETS.ROOT, *.WEIGHTS files: MODEL.WEIGHTS only initialises a fresh run,
    /// and the contents of a teacher's weights are fingerprinted into every checkpoint and compared
    /// on resume, as task facts), LOG_PERIOD, SOLVER.CHECKPOINT_PERIOD,
    /// SOLVER.MAX_TO_KEEP, TEST.EVAL_PERIOD, DIST.TIMEOUT_SECONDS and the loader's threads.
    public static func isLogistics(_ key: String) -> Bool {
        let exact: Set<String> = ["OUTPUT_DIR", "DATASETS.ROOT", "LOG_PERIOD", "SOLVER.CHECKPOINT_PERIOD", "SOLVER.MAX_TO_KEEP",
                                  "TEST.EVAL_PERIOD", "DIST.TIMEOUT_SECONDS", "DATALOADER.NUM_WORKERS", "DATALOADER.PREFETCH"]
        return exact.contains(key) || key.hasSuffix(".WEIGHTS")
    }

    /// Compares `stored`, a `resolvedYAML` written earlier (possibly by another version of the
    /// program), with this config. Keys are read back from the dump's own format (two-space
    /// indentation, one key or group per line), so keys this version does not know are reported
    /// instead of failing to parse.
    public func difference(fromStored stored: String) -> ConfigDifference {
        var storedValues: [String: String] = [:]
        var groups: [String] = []
        for line in stored.split(separator: "\n", omittingEmptySubsequences: true) {
            let indent = line.prefix { $0 == " " }.count / 2
            let body = line.drop { $0 == " " }
            guard let colon = body.firstIndex(of: ":") else { continue }
            let name = String(body[..<colon])
            let rest = body[body.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            groups = Array(groups.prefix(indent))
            if rest.isEmpty { groups.append(name) } else { storedValues[(groups + [name]).joined(separator: ".")] = rest }
        }
        var diff = ConfigDifference()
        for key in values.keys.sorted() {
            let current = "\(values[key]!)"
            if let old = storedValues[key] {
                if old != current { diff.changed.append((key, old, current)) }
            } else {
                diff.added.append((key, current))
            }
        }
        diff.removed = storedValues.keys.filter { values[$0] == nil }.sorted()
        return diff
    }
}
