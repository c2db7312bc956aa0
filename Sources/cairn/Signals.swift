import Core
import Dispatch
import Foundation

/// Runs `body` in a child task that SIGINT or SIGTERM cancels, so a run
/// stopped by Ctrl-C or systemd cleans up (aborts its multipart upload,
/// kills and reaps pg_dump) instead of dying mid-way.
func withSignalCancellation<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let task = Task { try await body() }
    var sources: [DispatchSourceSignal] = []
    for sig in [SIGINT, SIGTERM] {
        signal(sig, SIG_IGN)
        let s = DispatchSource.makeSignalSource(signal: sig, queue: ProcessSignals.queue)
        s.setEventHandler {
            FileHandle.standardError.write(Data("\ncairn: \(sig == SIGINT ? "interrupted" : "terminated"), cleaning up…\n".utf8))
            task.cancel()
        }
        s.resume()
        sources.append(s)
    }
    defer { sources.forEach { $0.cancel() } }
    return try await withTaskCancellationHandler { try await task.value } onCancel: { task.cancel() }
}
