import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension PostgresTools {
    /// The standard stream of a client program that Cairn pipes.
    enum PipedStream: Sendable { case input, output }

    /// The path of coreutils' `stdbuf`, when it and the preload library it
    /// needs (`libstdbuf.so`) are both installed; nil otherwise.
    static let stdbuf: String? = {
        let tools: [String] = ["/usr/bin/stdbuf", "/bin/stdbuf"]
        let libraries: [String] = ["/usr/libexec/coreutils/libstdbuf.so", "/usr/lib/coreutils/libstdbuf.so",
                                   "/usr/lib64/coreutils/libstdbuf.so"]
        guard let tool = tools.first(where: { access($0, X_OK) == 0 }) else { return nil }
        return libraries.contains(where: { access($0, R_OK) == 0 }) ? tool : nil
    }()

    /// The command line that runs `executable` with a 1 MiB stdio buffer on
    /// its piped `stream`: `stdbuf --output=1M executable arguments…` (or
    /// `--input=1M`), or the program itself where `stdbuf` is not installed.
    ///
    /// pg_dump writes its archive, and pg_restore reads one from standard
    /// input, through stdio, whose buffer on a pipe is 4 KiB: one write(2)
    /// or read(2) and one wake-up of the other end per 4 KiB, 116,907 writes
    /// for a 477 MB archive. With a 1 MiB buffer the same archive takes 742
    /// (docs/BENCHMARKS.md, "pg_dump's and pg_restore's stdio buffer").
    /// `stdbuf` execs the program, so the child's pid, exit status, signals
    /// and standard error are the program's own (only a failed exec is
    /// stdbuf's: status 126 or 127 and a `stdbuf:` line on standard error).
    static func buffered(_ stream: PipedStream, executable: String, arguments: [String],
                         stdbuf: String? = stdbuf) -> (executable: String, arguments: [String]) {
        guard let stdbuf else { return (executable, arguments) }
        return (stdbuf, [stream == .output ? "--output=1M" : "--input=1M", executable] + arguments)
    }
}
