import Dispatch
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

    /// The queue signal sources deliver on: a serial queue of its own, not
    /// `.global()`. A serial queue runs on libdispatch's overcommit threads,
    /// which do not start its 1 Hz workqueue monitor (see `CooperativePool`);
    /// a handler on `.global()` would, and the idle daemon would wake every
    /// second from then on.
    public static let queue = DispatchQueue(label: "cairn-signals")
}
