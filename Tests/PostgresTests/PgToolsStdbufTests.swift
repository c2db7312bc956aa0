import Foundation
@testable import Postgres
import Testing

/// `PostgresTools.buffered`: pg_dump's output and pg_restore's piped input
/// go through coreutils' `stdbuf` with a 1 MiB stdio buffer where it is
/// installed, and the program runs as it is where it is not.
@Suite struct PgToolsStdbufTests {
    @Test func theProgramRunsUnderStdbufWithA1MiBBufferOnItsPipedStream() {
        let out = PostgresTools.buffered(.output, executable: "/usr/lib/postgresql/15/bin/pg_dump",
                                         arguments: ["--format=custom", "--dbname=x"], stdbuf: "/usr/bin/stdbuf")
        #expect(out.executable == "/usr/bin/stdbuf")
        #expect(out.arguments == ["--output=1M", "/usr/lib/postgresql/15/bin/pg_dump", "--format=custom", "--dbname=x"])
        let inp = PostgresTools.buffered(.input, executable: "/x/pg_restore", arguments: ["--format=custom"], stdbuf: "/bin/stdbuf")
        #expect(inp.executable == "/bin/stdbuf" && inp.arguments == ["--input=1M", "/x/pg_restore", "--format=custom"])
    }

    @Test func withoutStdbufTheProgramRunsAsItIs() {
        let r = PostgresTools.buffered(.output, executable: "/x/pg_dump", arguments: ["-a"], stdbuf: nil)
        #expect(r.executable == "/x/pg_dump" && r.arguments == ["-a"])
    }

    /// This machine's coreutils: stdbuf is found exactly when both it and its preload library exist.
    @Test func stdbufIsUsedOnlyWithItsLibrary() {
        let fm = FileManager.default
        let tool = ["/usr/bin/stdbuf", "/bin/stdbuf"].contains { fm.isExecutableFile(atPath: $0) }
        let lib = ["/usr/libexec/coreutils/libstdbuf.so", "/usr/lib/coreutils/libstdbuf.so", "/usr/lib64/coreutils/libstdbuf.so"]
            .contains { fm.isReadableFile(atPath: $0) }
        #expect((PostgresTools.stdbuf != nil) == (tool && lib))
    }
}
