/// Why a weights file (PyTorch `.pth`, pickled `.pkl`) could not be read: the file and what is
/// wrong with it. Every problem of an untrusted file surfaces as one of these, never as a trap.
public struct WeightsError: Error, CustomStringConvertible, Equatable {
    /// What went wrong.
    public enum Problem: Equatable, Sendable {
        /// The file ends before a structure it declares (zip record, pickle operand, storage).
        case truncated(String)
        /// A structure is inconsistent (bad signature, offset outside the file, wrong CRC).
        case malformed(String)
        /// The pickle names a global outside the allowlist (`module.name`); nothing was called.
        case refusedGlobal(String)
        /// A pickle opcode or construct a state dict never needs (code execution, extensions).
        case refusedOpcode(String)
        /// A container reachable from itself; a state dict never has one.
        case recursive(String)
        /// A declared size beyond the reader's limits (negative, overflowing or huge).
        case tooLarge(String)
        /// Well-formed, but not something this reader supports (encryption, an unknown dtype).
        case unsupported(String)
        /// The file holds no tensors, or not where a state dict would be.
        case noStateDict(String)
        /// The file could not be opened or read.
        case io(String)
    }

    /// The file being read.
    public let file: String
    /// The problem.
    public let problem: Problem

    /// An error about `file`.
    public init(file: String, _ problem: Problem) { self.file = file; self.problem = problem }

    /// "`file`: what is wrong".
    public var description: String {
        let text: String
        switch problem {
        case .truncated(let s): text = "truncated: \(s)"
        case .malformed(let s): text = "malformed: \(s)"
        case .refusedGlobal(let s): text = "refused: the pickle calls '\(s)', which is not on the state-dict allowlist (nothing was executed)"
        case .refusedOpcode(let s): text = "refused: \(s) (nothing was executed)"
        case .recursive(let s): text = "refused: recursive structure (\(s))"
        case .tooLarge(let s): text = "refused: \(s)"
        case .unsupported(let s): text = "unsupported: \(s)"
        case .noStateDict(let s): text = "no state dict: \(s)"
        case .io(let s): text = s
        }
        return "\(file): \(text)"
    }
}
