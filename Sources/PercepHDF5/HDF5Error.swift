internal import CHDF5

/// A failed HDF5 operation: which file, which object in it, what was being done, and why.
///
/// Every call into the HDF5 C library has its return code checked; a negative one becomes an
/// `HDF5Error` whose `message` is the innermost (most specific) entry of HDF5's error stack, e.g.
/// "file signature not found" for a file that is not HDF5, rather than the generic "unable to
/// open file" at the top of the stack. HDF5's own printing of the stack to stderr is switched off.
/// Problems the wrapper detects itself (a dataset of the wrong type, a missing object) use the
/// same type so callers handle one error.
public struct HDF5Error: Error, CustomStringConvertible, Sendable {
    /// Path of the HDF5 file on disk.
    public let file: String
    /// Path of the object inside the file (group, dataset or `object@attribute`), if any.
    public let object: String?
    /// What the wrapper was doing, e.g. "opening file for reading" or "reading dataset".
    public let operation: String
    /// HDF5's innermost error message, or the wrapper's own explanation.
    public let message: String

    /// Creates an error; `message` should say what went wrong in words a user can act on.
    public init(file: String, object: String?, operation: String, message: String) {
        self.file = file
        self.object = object
        self.operation = operation
        self.message = message
    }

    /// One line naming the file, the object and the operation, then the cause.
    public var description: String {
        if let object { return "HDF5 error \(operation) at '\(object)' in '\(file)': \(message)" }
        return "HDF5 error \(operation) '\(file)': \(message)"
    }
}

/// Helpers shared by the wrapper's extensions to keep every HDF5 call checked in one line.
enum HDF5 {
    /// Switches off HDF5's automatic printing of the error stack to stderr for the calling thread.
    ///
    /// The library is built thread-safe, so the setting is per thread: it is cheap and is called
    /// at every entry point rather than once, so work moved to another thread stays quiet too.
    static func silenceErrorPrinting() {
        _ = H5Eset_auto2(chdf5_e_default(), nil, nil)
    }

    /// The innermost message on the calling thread's HDF5 error stack, if there is one.
    ///
    /// Walking upwards starts at the function that detected the problem (entry 0), which says
    /// what is actually wrong; the outer entries only repeat "unable to open file" and the like.
    static func innermostMessage() -> String? {
        final class Box { var message: String? }
        let box = Box()
        let status = withExtendedLifetime(box) {
            H5Ewalk2(chdf5_e_default(), H5E_WALK_UPWARD, { n, entry, context in
                guard n == 0, let entry, let context, let desc = entry.pointee.desc else { return 0 }
                let box = Unmanaged<Box>.fromOpaque(context).takeUnretainedValue()
                var text = String(cString: desc)
                if let function = entry.pointee.func_name { text += " (in \(String(cString: function)))" }
                box.message = text
                return 0
            }, Unmanaged.passUnretained(box).toOpaque())
        }
        _ = H5Eclear2(chdf5_e_default())
        return status < 0 ? nil : box.message
    }
}
