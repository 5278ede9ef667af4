import ArgumentParser
import Foundation
import PercepHDF5

/// `percep-dist hdf5-probe FILE` (hidden): reads every dataset of an HDF5 file and exits. The
/// other commands run it as a child process on HDF5 files from elsewhere before opening them
/// themselves (`HDF5Probe`), so a file that crashes the HDF5 library ends this child only.
struct HDF5ProbeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "hdf5-probe", abstract: "Read every dataset of an HDF5 file (internal).",
                                                    shouldDisplay: false)

    @Argument(help: "HDF5 file.") var file: String

    func run() throws {
        // Fault injection for the reliability tests: stand in for a file that crashes libhdf5
        // ("signal") or sends it into an endless loop ("hang").
        switch ProcessInfo.processInfo.environment["PERCEP_FAULT_HDF5_PROBE"] {
        case "signal"?:
            // Default disposition first: the Swift backtracer's handler returns from a raised
            // (not faulting) signal, and the child would carry on.
            signal(SIGSEGV, SIG_DFL)
            raise(SIGSEGV)
        case "hang"?: while true { sleep(60) }
        default: break
        }
        let f = try HDF5File(reading: file)
        try f.readEverything()
        try f.close()
    }
}
