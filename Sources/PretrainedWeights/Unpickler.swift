/// A restricted unpickler in the spirit of `torch.load(weights_only=True)`: it interprets the
/// pickle opcodes a state dict needs and constructs only what the allowlisted globals describe
/// (OrderedDict, PyTorch's tensor and parameter rebuild functions, storage types, NumPy's array
/// reconstruction, dtype and scalar). Any other global — `os.system`, `builtins.eval`, a model
/// class — is refused by name before anything happens; no Python object is ever called, because
/// there is no Python here: each allowlisted callable is a Swift function of its arguments.
///
/// Every operand length is bounds-checked against the remaining bytes, the stack and memo are
/// capped, tuples may nest at most `maxNesting` deep, and a container that contains itself is
/// refused when the pickle ends.
struct Unpickler {
    /// Resolves a persistent id (PyTorch's `('storage', type, key, location, numel)`) to a value.
    typealias PersistentLoad = (PickleValue) throws -> PickleValue

    static let maxStack = 1 << 22
    static let maxNesting = 200

    private let bytes: [UInt8]
    private let file: String
    private var position: Int
    private let persistentLoad: PersistentLoad?
    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]
    // Every list, dict and array created, so `finish` can empty them (breaking reference cycles
    // that a hostile pickle may have built) without recursing through nested values.
    private var lists: [PickleList] = []
    private var dicts: [PickleDict] = []

    /// An unpickler over `bytes` from `offset`.
    init(bytes: [UInt8], offset: Int = 0, file: String, persistentLoad: PersistentLoad?) {
        self.bytes = bytes; self.file = file; self.position = offset; self.persistentLoad = persistentLoad
    }

    /// Where the next pickle starts (legacy PyTorch files hold several in a row).
    var offset: Int { position }

    // MARK: reading operands

    private func fail(_ problem: WeightsError.Problem) -> WeightsError { WeightsError(file: file, problem) }

    private mutating func take(_ n: Int, _ what: String) throws -> ArraySlice<UInt8> {
        guard n >= 0, n <= bytes.count - position else {
            throw fail(.truncated("pickle \(what) at offset \(position) needs \(n) bytes, \(bytes.count - position) remain"))
        }
        defer { position += n }
        return bytes[position..<(position + n)]
    }

    private mutating func uintLE(_ n: Int, _ what: String) throws -> UInt64 {
        var v: UInt64 = 0
        for (i, b) in try take(n, what).enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
        return v
    }

    /// A length operand of `n` bytes, refused beyond the bytes left (a claimed size can never
    /// exceed the file).
    private mutating func length(_ n: Int, _ what: String) throws -> Int {
        let v = try uintLE(n, what)
        guard v <= UInt64(bytes.count - position) else {
            throw fail(.truncated("pickle \(what) claims \(v) bytes, \(bytes.count - position) remain"))
        }
        return Int(v)
    }

    private mutating func line(_ what: String) throws -> String {
        guard let end = bytes[position...].firstIndex(of: 0x0A) else { throw fail(.truncated("pickle \(what) has no end of line")) }
        defer { position = end + 1 }
        return String(decoding: bytes[position..<end], as: UTF8.self)
    }

    // MARK: the stack

    private mutating func push(_ v: PickleValue) throws {
        guard stack.count < Self.maxStack else { throw fail(.tooLarge("pickle stack deeper than \(Self.maxStack)")) }
        stack.append(v)
    }

    private mutating func pop(_ what: String) throws -> PickleValue {
        guard let v = stack.popLast(), stack.count >= (marks.last ?? 0) else {
            throw fail(.malformed("\(what) at offset \(position - 1) finds the stack empty"))
        }
        return v
    }

    private mutating func popMark(_ what: String) throws -> [PickleValue] {
        guard let m = marks.popLast() else { throw fail(.malformed("\(what) at offset \(position - 1) has no MARK")) }
        defer { stack.removeSubrange(m...) }
        return Array(stack[m...])
    }

    private mutating func top(_ what: String) throws -> PickleValue {
        guard let v = stack.last, stack.count > (marks.last ?? 0) else {
            throw fail(.malformed("\(what) at offset \(position - 1) finds the stack empty"))
        }
        return v
    }

    private func makeTuple(_ items: [PickleValue]) throws -> PickleValue {
        var d = 1
        for case .tuple(_, let inner) in items { d = max(d, inner + 1) }
        guard d <= Self.maxNesting else { throw fail(.tooLarge("tuples nested deeper than \(Self.maxNesting)")) }
        return .tuple(items, depth: d)
    }

    private mutating func newList(_ items: [PickleValue] = []) -> PickleValue {
        let l = PickleList(); l.items = items; lists.append(l); return .list(l)
    }

    private mutating func newDict() -> PickleDict {
        let d = PickleDict(); dicts.append(d); return d
    }

    private func container(_ v: PickleValue, _ what: String) throws -> PickleValue {
        switch v {
        case .list, .dict: return v
        default: throw fail(.malformed("\(what) applies to a \(v.kind), not a list or dict"))
        }
    }

    // MARK: running

    /// Runs to STOP and returns the pickled value.
    mutating func load() throws -> PickleValue {
        while true {
            let at = position
            let op = try take(1, "opcode").first!
            switch op {
            case 0x80: // PROTO
                let p = try take(1, "PROTO").first!
                guard p <= 5 else { throw fail(.unsupported("pickle protocol \(p)")) }
            case 0x95: // FRAME: a length hint only
                _ = try length(8, "FRAME")
            case 0x2E: // STOP
                let v = try pop("STOP")
                try checkAcyclic(v)
                return v
            case 0x28: marks.append(stack.count) // MARK
            case 0x30: _ = try pop("POP") // POP
            case 0x31: _ = try popMark("POP_MARK") // POP_MARK
            case 0x32: try push(try top("DUP")) // DUP
            case 0x4E: try push(.none) // NONE
            case 0x88: try push(.bool(true)) // NEWTRUE
            case 0x89: try push(.bool(false)) // NEWFALSE
            case 0x4A: try push(.int(Int64(Int32(bitPattern: UInt32(try uintLE(4, "BININT")))))) // BININT
            case 0x4B: try push(.int(Int64(try uintLE(1, "BININT1")))) // BININT1
            case 0x4D: try push(.int(Int64(try uintLE(2, "BININT2")))) // BININT2
            case 0x8A, 0x8B: // LONG1, LONG4
                let n = try length(op == 0x8A ? 1 : 4, "LONG")
                let b = Array(try take(n, "LONG"))
                if n <= 8 {
                    var v: UInt64 = 0
                    for (i, x) in b.enumerated() { v |= UInt64(x) << (8 * UInt64(i)) }
                    // Sign-extend from the top byte.
                    if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 { v |= ~0 << (8 * UInt64(n)) }
                    try push(.int(Int64(bitPattern: v)))
                } else {
                    try push(.bigInt(b))
                }
            case 0x49: // INT (protocol 0): "I<decimal>\n", "I01\n" is True
                let s = try line("INT")
                if s == "01" { try push(.bool(true)) } else if s == "00" { try push(.bool(false)) } else {
                    guard let v = Int64(s) else { throw fail(.malformed("INT operand '\(s.prefix(40))'")) }
                    try push(.int(v))
                }
            case 0x4C: // LONG (protocol 0): "L<decimal>L\n"
                var s = try line("LONG")
                if s.hasSuffix("L") { s.removeLast() }
                guard let v = Int64(s) else { throw fail(.unsupported("LONG operand '\(s.prefix(40))' beyond 64 bits")) }
                try push(.int(v))
            case 0x47: // BINFLOAT, big-endian
                var v: UInt64 = 0
                for x in try take(8, "BINFLOAT") { v = v << 8 | UInt64(x) }
                try push(.float(Double(bitPattern: v)))
            case 0x46: // FLOAT (protocol 0)
                let s = try line("FLOAT")
                guard let v = Double(s) else { throw fail(.malformed("FLOAT operand '\(s.prefix(40))'")) }
                try push(.float(v))
            case 0x58, 0x8C, 0x8D: // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
                let n = try length(op == 0x8C ? 1 : (op == 0x58 ? 4 : 8), "BINUNICODE")
                try push(.string(Array(try take(n, "BINUNICODE"))))
            case 0x43, 0x42, 0x8E, 0x96: // SHORT_BINBYTES, BINBYTES, BINBYTES8, BYTEARRAY8
                let n = try length(op == 0x43 ? 1 : (op == 0x42 ? 4 : 8), "BINBYTES")
                try push(.bytes(Array(try take(n, "BINBYTES"))))
            case 0x55, 0x54: // SHORT_BINSTRING, BINSTRING (Python 2 str)
                let n = try length(op == 0x55 ? 1 : 4, "BINSTRING")
                try push(.pyString(Array(try take(n, "BINSTRING"))))
            case 0x29: try push(.tuple([], depth: 1)) // EMPTY_TUPLE
            case 0x85, 0x86, 0x87: // TUPLE1, TUPLE2, TUPLE3
                let n = Int(op - 0x84)
                guard stack.count - (marks.last ?? 0) >= n else { throw fail(.malformed("TUPLE\(n) at offset \(at) finds \(stack.count) items")) }
                let items = Array(stack.suffix(n)); stack.removeLast(n)
                try push(try makeTuple(items))
            case 0x74: try push(try makeTuple(try popMark("TUPLE"))) // TUPLE
            case 0x5D: try push(newList()) // EMPTY_LIST
            case 0x6C: try push(newList(try popMark("LIST"))) // LIST
            case 0x7D: try push(.dict(newDict())) // EMPTY_DICT
            case 0x64: // DICT
                let items = try popMark("DICT")
                guard items.count % 2 == 0 else { throw fail(.malformed("DICT at offset \(at) has an odd number of items")) }
                let d = newDict()
                for i in stride(from: 0, to: items.count, by: 2) { d.entries.append((items[i], items[i + 1])) }
                try push(.dict(d))
            case 0x61: // APPEND
                let v = try pop("APPEND")
                guard case .list(let l) = try container(try top("APPEND"), "APPEND") else { throw fail(.malformed("APPEND to a dict")) }
                l.items.append(v)
            case 0x65: // APPENDS
                let items = try popMark("APPENDS")
                guard case .list(let l) = try container(try top("APPENDS"), "APPENDS") else { throw fail(.malformed("APPENDS to a dict")) }
                l.items += items
            case 0x73: // SETITEM
                let v = try pop("SETITEM"), k = try pop("SETITEM")
                guard case .dict(let d) = try container(try top("SETITEM"), "SETITEM") else { throw fail(.malformed("SETITEM on a list")) }
                d.entries.append((k, v))
            case 0x75: // SETITEMS
                let items = try popMark("SETITEMS")
                guard items.count % 2 == 0 else { throw fail(.malformed("SETITEMS at offset \(at) has an odd number of items")) }
                guard case .dict(let d) = try container(try top("SETITEMS"), "SETITEMS") else { throw fail(.malformed("SETITEMS on a list")) }
                for i in stride(from: 0, to: items.count, by: 2) { d.entries.append((items[i], items[i + 1])) }
            case 0x71: memo[Int(try uintLE(1, "BINPUT"))] = try top("BINPUT") // BINPUT
            case 0x72: memo[Int(try uintLE(4, "LONG_BINPUT"))] = try top("LONG_BINPUT") // LONG_BINPUT
            case 0x94: memo[memo.count] = try top("MEMOIZE") // MEMOIZE
            case 0x70: // PUT (protocol 0)
                guard let i = Int(try line("PUT")) else { throw fail(.malformed("PUT operand at offset \(at)")) }
                memo[i] = try top("PUT")
            case 0x68, 0x6A, 0x67: // BINGET, LONG_BINGET, GET
                let i: Int
                if op == 0x67 {
                    guard let v = Int(try line("GET")) else { throw fail(.malformed("GET operand at offset \(at)")) }
                    i = v
                } else {
                    i = Int(try uintLE(op == 0x68 ? 1 : 4, "BINGET"))
                }
                guard let v = memo[i] else { throw fail(.malformed("memo entry \(i) read at offset \(at) was never stored")) }
                try push(v)
            case 0x63: // GLOBAL: "module\nname\n"
                let module = try line("GLOBAL"), name = try line("GLOBAL")
                try push(try resolveGlobal(module, name))
            case 0x93: // STACK_GLOBAL
                let name = try pop("STACK_GLOBAL"), module = try pop("STACK_GLOBAL")
                guard let m = module.text, let n = name.text else { throw fail(.malformed("STACK_GLOBAL at offset \(at) without strings")) }
                try push(try resolveGlobal(m, n))
            case 0x51: // BINPERSID
                let pid = try pop("BINPERSID")
                guard let persistentLoad else { throw fail(.refusedOpcode("a persistent id in a plain pickle")) }
                try push(try persistentLoad(pid))
            case 0x52: // REDUCE
                let args = try pop("REDUCE"), callable = try pop("REDUCE")
                try push(try reduce(callable, args, at: at))
            case 0x81: // NEWOBJ: cls.__new__(cls, *args) — only OrderedDict
                let args = try pop("NEWOBJ"), cls = try pop("NEWOBJ")
                try push(try reduce(cls, args, at: at))
            case 0x62: // BUILD
                let state = try pop("BUILD")
                try build(try top("BUILD"), state, at: at)
            default:
                throw fail(.refusedOpcode("pickle opcode \(Self.opcodeName(op)) at offset \(at) is not part of a state dict"))
            }
        }
    }

    /// Name of an opcode for errors, covering the ones that execute or import things.
    static func opcodeName(_ op: UInt8) -> String {
        switch op {
        case 0x69: return "INST (instantiates a class)"
        case 0x6F: return "OBJ (instantiates a class)"
        case 0x92: return "NEWOBJ_EX (instantiates a class)"
        case 0x50: return "PERSID"
        case 0x82, 0x83, 0x84: return "EXT (extension registry)"
        case 0x97, 0x98: return "NEXT_BUFFER/READONLY_BUFFER (out-of-band data)"
        case 0x8F, 0x90, 0x91: return "EMPTY_SET/ADDITEMS/FROZENSET"
        case 0x53: return "STRING"
        case 0x56: return "UNICODE"
        default: return String(format: "0x%02x", op)
        }
    }

    // MARK: globals

    /// The callables and types a state dict needs; everything else is refused by name.
    static let allowedGlobals: Set<String> = [
        "collections.OrderedDict",
        "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state",
        "torch._tensor._rebuild_from_type_v2", "torch.Tensor", "torch.nn.parameter.Parameter", "torch.Size",
        "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar",
        "numpy.ndarray", "numpy.dtype", "_codecs.encode",
    ]

    private func resolveGlobal(_ module: String, _ name: String) throws -> PickleValue {
        let full = module + "." + name
        if module == "torch" && WeightDType(torchStorage: name) != nil { return .global(module, name) }
        guard Self.allowedGlobals.contains(full) else { throw fail(.refusedGlobal(full)) }
        return .global(module, name)
    }

    // MARK: the allowlisted callables

    private func int(_ v: PickleValue?, _ what: String) throws -> Int {
        guard let i = v?.integer, let n = Int(exactly: i) else { throw fail(.malformed("\(what) is \(v?.kind ?? "missing"), not an int")) }
        return n
    }

    private func ints(_ v: PickleValue?, _ what: String) throws -> [Int] {
        guard let items = v?.elements else { throw fail(.malformed("\(what) is \(v?.kind ?? "missing"), not a tuple")) }
        return try items.map { try int($0, what) }
    }

    private mutating func reduce(_ callable: PickleValue, _ argsValue: PickleValue, at: Int) throws -> PickleValue {
        guard case .global(let module, let name) = callable else {
            throw fail(.refusedOpcode("REDUCE at offset \(at) calls a \(callable.kind), not an allowlisted global"))
        }
        guard case .tuple(let args, _) = argsValue else { throw fail(.malformed("REDUCE at offset \(at): arguments are a \(argsValue.kind)")) }
        let full = module + "." + name
        switch full {
        case "collections.OrderedDict":
            let d = newDict()
            if let pairs = args.first?.elements {
                for pair in pairs {
                    guard let kv = pair.elements, kv.count == 2 else { throw fail(.malformed("OrderedDict item at offset \(at) is not a pair")) }
                    d.entries.append((kv[0], kv[1]))
                }
            }
            return .dict(d)
        case "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2":
            guard args.count >= 4, case .storage(let storage) = args[0] else {
                throw fail(.malformed("\(name) at offset \(at) without a storage and its geometry"))
            }
            let offset = try int(args[1], "tensor storage offset"), shape = try ints(args[2], "tensor size"), strides = try ints(args[3], "tensor stride")
            return .tensor(try checkedView(storage, offset: offset, shape: shape, strides: strides))
        case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
            guard let t = args.first, case .tensor = t else { throw fail(.malformed("\(name) at offset \(at) without a tensor")) }
            return t
        case "torch._tensor._rebuild_from_type_v2":
            // (func, new_type, args, state): a plain Tensor or Parameter rebuilt by an allowlisted func.
            guard args.count >= 3, case .global = args[0], case .global(_, let type) = args[1], type == "Tensor" || type == "Parameter" else {
                throw fail(.refusedOpcode("_rebuild_from_type_v2 at offset \(at) for a tensor subclass"))
            }
            return try reduce(args[0], args[2], at: at)
        case "torch.Size":
            return args.first ?? .tuple([], depth: 1)
        case "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct":
            guard case .global(_, "ndarray") = args.first else { throw fail(.refusedOpcode("_reconstruct at offset \(at) of an ndarray subclass")) }
            return .ndarray(NDArrayBox())
        case "numpy.dtype":
            guard let code = args.first?.text else { throw fail(.malformed("numpy.dtype at offset \(at) without a type code")) }
            return .dtype(NumpyDTypeBox(code: code))
        case "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar":
            guard args.count == 2, case .dtype(let dt) = args[0], let raw = args[1].rawBytes else {
                throw fail(.malformed("numpy scalar at offset \(at) without a dtype and bytes"))
            }
            guard let type = WeightDType(numpy: dt.code), raw.count == type.size else {
                throw fail(.unsupported("numpy scalar of dtype '\(dt.code)' with \(raw.count) bytes"))
            }
            let ordered = dt.byteOrder == ">" ? Array(raw.reversed()) : raw
            var bits: UInt64 = 0
            for (i, b) in ordered.enumerated() { bits |= UInt64(b) << (8 * UInt64(i)) }
            switch type {
            case .float64: return .float(Double(bitPattern: bits))
            case .float32, .float16, .bfloat16: return .float(Double(decodeElements(ordered[...], type, count: 1)[0]))
            case .int64: return .int(Int64(bitPattern: bits))
            case .int32: return .int(Int64(Int32(truncatingIfNeeded: bits)))
            case .int16: return .int(Int64(Int16(truncatingIfNeeded: bits)))
            case .int8: return .int(Int64(Int8(truncatingIfNeeded: bits)))
            case .uint8, .bool: return .int(Int64(bits))
            }
        case "_codecs.encode":
            // How Python 3 pickles bytes at protocol 2: the text of the bytes as latin-1.
            guard args.count == 1 || (args.count == 2 && ["latin1", "latin-1", "iso-8859-1"].contains(args[1].text ?? "")) else {
                throw fail(.refusedOpcode("_codecs.encode at offset \(at) with another encoding"))
            }
            if case .pyString(let b)? = args.first { return .bytes(b) }
            guard case .string(let utf8)? = args.first else { throw fail(.malformed("_codecs.encode at offset \(at) without a str")) }
            // Straight from the UTF-8: code points below 256 are one byte, or two with lead 0xC2/0xC3.
            var out = [UInt8](repeating: 0, count: utf8.count), count = 0, bad = false
            utf8.withUnsafeBufferPointer { src in
                out.withUnsafeMutableBufferPointer { dst in
                    var i = 0
                    while i < src.count {
                        let b = src[i]
                        if b < 0x80 {
                            dst[count] = b; i += 1
                        } else if (b == 0xC2 || b == 0xC3) && i + 1 < src.count && src[i + 1] & 0xC0 == 0x80 {
                            dst[count] = (b & 0x03) << 6 | (src[i + 1] & 0x3F); i += 2
                        } else {
                            bad = true; return
                        }
                        count += 1
                    }
                }
            }
            guard !bad else { throw fail(.malformed("latin-1 bytes at offset \(at) hold a code point above U+00FF or invalid UTF-8")) }
            out.removeLast(out.count - count)
            return .bytes(out)
        default:
            throw fail(.refusedOpcode("REDUCE at offset \(at) calls \(full), which is a type, not a constructor a state dict uses"))
        }
    }

    /// A view whose every element lies inside its storage; sizes, strides and offsets are
    /// checked with overflow detection.
    private func checkedView(_ storage: StorageReference, offset: Int, shape: [Int], strides: [Int]) throws -> TensorReference {
        guard shape.count == strides.count, shape.count <= 16 else {
            throw fail(.malformed("tensor with size \(shape) and stride \(strides)"))
        }
        guard offset >= 0, shape.allSatisfy({ $0 >= 0 }), strides.allSatisfy({ $0 >= 0 }) else {
            throw fail(.malformed("tensor with negative size, stride or offset (size \(shape), stride \(strides), offset \(offset))"))
        }
        var count = 1, last = offset
        for (n, s) in zip(shape, strides) {
            let (c, o1) = count.multipliedReportingOverflow(by: n)
            guard !o1, c <= 1 << 34 else { throw fail(.tooLarge("a tensor of size \(shape)")) }
            count = c
            if n > 0 {
                let (span, o2) = (n - 1).multipliedReportingOverflow(by: s)
                let (end, o3) = last.addingReportingOverflow(span)
                guard !o2, !o3 else { throw fail(.tooLarge("a tensor of size \(shape) and stride \(strides)")) }
                last = end
            }
        }
        // Stride-0 views can be far larger than their storage; a state dict never needs one that
        // is, and materialising it would be a memory bomb.
        guard count <= max(storage.count, 1 << 24) else {
            throw fail(.tooLarge("a view of \(count) elements over storage '\(storage.key)' of \(storage.count)"))
        }
        guard count == 0 || last < storage.count else {
            throw fail(.malformed("a tensor of size \(shape) (stride \(strides), offset \(offset)) reaches element \(last) of storage '\(storage.key)', which holds \(storage.count)"))
        }
        return TensorReference(storage: storage, offset: offset, shape: shape, strides: strides)
    }

    // MARK: BUILD

    private func build(_ target: PickleValue, _ state: PickleValue, at: Int) throws {
        switch target {
        case .dict:
            // An OrderedDict's attributes (a state dict's `_metadata`): not weights, ignored.
            return
        case .tensor:
            return
        case .dtype(let dt):
            // (version, byteorder, subarray, names, fields, elsize, alignment, flags)
            guard let items = state.elements, items.count >= 2, let order = items[1].text else {
                throw fail(.malformed("dtype state at offset \(at)"))
            }
            dt.byteOrder = order
        case .ndarray(let a):
            // (version, shape, dtype, is_fortran, raw data)
            guard let items = state.elements, items.count == 5, case .dtype(let dt) = items[2] else {
                throw fail(.malformed("ndarray state at offset \(at)"))
            }
            let shape = try ints(items[1], "ndarray shape")
            guard let raw = items[4].rawBytes else {
                throw fail(.unsupported("an ndarray of objects at offset \(at) (only numeric arrays are weights)"))
            }
            guard let type = WeightDType(numpy: dt.code) else { throw fail(.unsupported("NumPy dtype '\(dt.code)'")) }
            var count = 1
            for n in shape {
                guard n >= 0 else { throw fail(.malformed("ndarray shape \(shape)")) }
                let (c, o) = count.multipliedReportingOverflow(by: n)
                guard !o else { throw fail(.tooLarge("an ndarray of shape \(shape)")) }
                count = c
            }
            let (need, o) = count.multipliedReportingOverflow(by: type.size)
            guard !o, need == raw.count else {
                throw fail(.malformed("an ndarray of shape \(shape) and dtype \(dt.code) needs \(count) × \(type.size) bytes, its buffer has \(raw.count)"))
            }
            a.shape = shape; a.dtype = dt; a.fortranOrder = items[3].integer == 1; a.data = raw; a.built = true
        default:
            throw fail(.refusedOpcode("BUILD at offset \(at) sets the state of a \(target.kind)"))
        }
    }

    // MARK: cycles

    /// Refuses a container reachable from itself (iteratively: no recursion on hostile depth),
    /// then empties every container built along the way so no cycle outlives the load.
    private mutating func checkAcyclic(_ root: PickleValue) throws {
        enum Step { case enter(PickleValue), leave(ObjectIdentifier) }
        var onPath = Set<ObjectIdentifier>(), done = Set<ObjectIdentifier>()
        var work: [Step] = [.enter(root)], visits = 0
        while let step = work.popLast() {
            visits += 1
            guard visits <= 1 << 22 else { throw fail(.tooLarge("a structure of more than \(1 << 22) values")) }
            switch step {
            case .leave(let id): onPath.remove(id); done.insert(id)
            case .enter(let v):
                let children: [PickleValue], id: ObjectIdentifier?
                switch v {
                case .tuple(let t, _): children = t; id = nil
                case .list(let l): children = l.items; id = ObjectIdentifier(l)
                case .dict(let d): children = d.entries.flatMap { [$0.key, $0.value] }; id = ObjectIdentifier(d)
                default: continue
                }
                if let id {
                    if onPath.contains(id) { throw fail(.recursive("a \(v.kind) contains itself")) }
                    if done.contains(id) { continue }
                    onPath.insert(id)
                    work.append(.leave(id))
                }
                for c in children { work.append(.enter(c)) }
            }
        }
    }

    /// Empties every list and dict built (call once the result has been converted).
    mutating func release() {
        for l in lists { l.items = [] }
        for d in dicts { d.entries = [] }
        lists = []; dicts = []; memo = [:]; stack = []
    }
}

/// Elements of `type` from little- (or big-) endian `raw` bytes, as Float.
func decodeElements(_ raw: ArraySlice<UInt8>, _ type: WeightDType, count: Int, bigEndian: Bool = false) -> [Float] {
    var out = [Float](repeating: 0, count: count)
    let size = type.size
    raw.withUnsafeBytes { src in
        func word(_ i: Int) -> UInt64 {
            var v: UInt64 = 0
            let base = i * size
            if bigEndian {
                for k in 0..<size { v = v << 8 | UInt64(src[base + k]) }
            } else {
                for k in 0..<size { v |= UInt64(src[base + k]) << (8 * UInt64(k)) }
            }
            return v
        }
        switch type {
        case .float32 where !bigEndian:
            for i in 0..<count { out[i] = src.loadUnaligned(fromByteOffset: i * 4, as: Float.self) }
        case .float32: for i in 0..<count { out[i] = Float(bitPattern: UInt32(word(i))) }
        case .float16: for i in 0..<count { out[i] = Float(Float16(bitPattern: UInt16(word(i)))) }
        case .bfloat16: for i in 0..<count { out[i] = Float(bitPattern: UInt32(word(i)) << 16) }
        case .float64: for i in 0..<count { out[i] = Float(Double(bitPattern: word(i))) }
        case .int64: for i in 0..<count { out[i] = Float(Int64(bitPattern: word(i))) }
        case .int32: for i in 0..<count { out[i] = Float(Int32(bitPattern: UInt32(word(i)))) }
        case .int16: for i in 0..<count { out[i] = Float(Int16(bitPattern: UInt16(word(i)))) }
        case .int8: for i in 0..<count { out[i] = Float(Int8(bitPattern: UInt8(word(i)))) }
        case .uint8, .bool: for i in 0..<count { out[i] = Float(word(i)) }
        }
    }
    return out
}
