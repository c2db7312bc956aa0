import Alerts
import Core
import Foundation
import Jobs

/// Alerts as an observer of every run, scheduled or manual: each run's
/// start and end ping the job's ping channels (the dead-man's switch); its
/// end is a fact for the alert state machine, which decides what else to
/// send. Only decides and queues (SQLite): delivery is the caller's
/// delivery loop (`AlertDelivery.loop` in the daemon, a bounded attempt for
/// a CLI run), so a channel never fails nor delays a job.
public struct AlertRunObserver: RunObserver {
    let center: AlertCenter
    /// Wakes the delivery loop.
    let kick: @Sendable () -> Void

    public init(center: AlertCenter, kick: @escaping @Sendable () -> Void = {}) {
        self.center = center; self.kick = kick
    }

    public func runStarted(job: String, kind: String, request: RunRequest, runID: Int64?) async {
        RunLogTail.shared.clear(job: job)
        await center.ping(AlertEvent(kind: .started, job: job, what: "\(kind) started (\(request.trigger), attempt \(request.attempt))",
                                     at: Date(), runID: runID, jobKind: kind))
        kick()
    }

    public func runEnded(_ r: RunReport) async {
        let failed: Bool
        switch r.ending {
        case .succeeded: failed = false
        case .failed, .timedOut: failed = true
        case .cancelled, .busy, .skipped: return   // no fact about the job's health
        }
        let at = r.startedAt.addingTimeInterval(r.duration)
        let what = failed ? "\(r.kind) failed: \(r.error?.message ?? "failed")" : (r.outcome?.summary ?? "\(r.kind) succeeded")
        let tail = failed ? RunLogTail.shared.tail(job: r.job) : nil
        var ping = AlertEvent(kind: failed ? .failed : .succeeded, job: r.job, what: what, at: at, runID: r.runID, jobKind: r.kind)
        ping.logTail = tail
        await center.ping(ping)
        await center.handle(.runEnded(job: r.job, kind: r.kind, failed: failed, error: r.error?.message, at: at, runID: r.runID,
                                      refusal: r.error?.cause is RetentionRefusal), logTail: tail)
        kick()
    }
}

/// The daemon's background delivery: attempts due deliveries, runs the
/// state machine's clock (reminders, stale backups), and sleeps until the
/// next due time or a ring. No wake-ups while nothing is due.
public enum AlertDeliveryLoop {
    public static func run(_ center: AlertCenter, doorbell: Doorbell) async {
        // After a start, every pending delivery gets an attempt at once (the receivers may be back).
        var first = true
        while !Task.isCancelled {
            await center.tick()
            await center.deliverDue(everyPending: first)
            first = false
            await doorbell.wait(until: await center.nextDue())
        }
    }
}
