import Foundation

/// Runs programs from tests: the built `percep-dist` binary, python3, mpirun.
public enum ProcessRunner {
    /// The percep-dist binary SwiftPM builds next to the test binary.
    public static var percepDist: URL {
        let testBinary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let candidates = [testBinary.deletingLastPathComponent(), Bundle.main.bundleURL,
                          Bundle.main.bundleURL.deletingLastPathComponent()]
        return candidates.map { $0.appendingPathComponent("percep-dist") }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[0].appendingPathComponent("percep-dist")
    }

    /// Exit status, standard output and standard error of one run.
    public static func run(_ executable: URL, _ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
        let r = try runReportingSignals(executable, arguments)
        return (r.status, r.out, r.err)
    }

    /// As `run`, and whether the process ended on a signal (a crash) rather than by exiting.
    public static func runReportingSignals(_ executable: URL, _ arguments: [String], timeout: Double = 120)
        throws -> (status: Int32, out: String, err: String, signalled: Bool, seconds: Double) {
        let p = Process()
        p.executableURL = executable
        p.arguments = arguments
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        let start = Date()
        try p.run()
        let killer = DispatchWorkItem { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
        // Read before waiting so a full pipe cannot block the child.
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        killer.cancel()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self),
                p.terminationReason == .uncaughtSignal, Date().timeIntervalSince(start))
    }
}

extension ProcessRunner {
    /// Exit status, standard output and error interleaved, and wall time of `executable arguments`
    /// with `environment` (the test's own when nil), terminated after `limit` seconds.
    public static func runCombined(_ executable: URL, _ arguments: [String], environment: [String: String]? = nil, limit: Double)
        throws -> (status: Int32, output: String, seconds: Double) {
        let p = Process()
        p.executableURL = executable
        p.arguments = arguments
        if let environment { p.environment = environment }
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        let start = Date()
        try p.run()
        let killer = DispatchWorkItem { if p.isRunning { p.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: .now() + limit, execute: killer)
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        killer.cancel()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self), Date().timeIntervalSince(start))
    }
}

/// Runs `percep-dist` under mpirun, as CI and users do (`dist check` unless another command is given).
public enum MPIJob {
    /// The percep-dist binary next to the test binary.
    public static var executable: String { ProcessRunner.percepDist.path }

    /// Exit status, combined output and wall time of `mpirun -np ranks percep-dist dist check args`
    /// (oversubscribed, allowed as root, one thread per rank), killed after `limit` seconds.
    public static func run(ranks: Int, _ args: [String], command: [String] = ["dist", "check"], limit: Double = 120) throws -> (status: Int32, output: String, seconds: Double) {
        var env = ProcessInfo.processInfo.environment
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        env["OMP_NUM_THREADS"] = "1"
        return try ProcessRunner.runCombined(URL(fileURLWithPath: "/usr/bin/env"),
                                             ["mpirun", "-np", String(ranks), "--oversubscribe", "--bind-to", "none", executable] + command + args,
                                             environment: env, limit: limit)
    }
}
