#if canImport(Glibc)
import Glibc
#endif

/// Process-wide signal settings Cairn relies on.
public enum ProcessSignals {
    /// SIGPIPE ignored, once per process: a write to a pipe or socket whose
    /// reader went away (pg_restore's stdin, an S3 connection, a control
    /// socket client) fails with EPIPE and is reported, instead of killing
    /// the process. curl asks for this when `CURLOPT_NOSIGNAL` is set.
    public static let ignoreSIGPIPE: Void = { _ = signal(SIGPIPE, SIG_IGN) }()
}
