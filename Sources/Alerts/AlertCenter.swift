import Core
import Foundation
import Logging
import State

/// Decides alerts (`AlertStateMachine`), keeps its memory and the delivery
/// queue in SQLite, and delivers in the background with backoff. A channel
/// never fails nor delays a job: `handle` only decides and queues (one
/// SQLite transaction); `deliverDue` sends, and is run by the daemon's
/// delivery loop (or, for `cairn run` outside a daemon, once with a short
/// deadline: what is left stays queued for the daemon).
public actor AlertCenter {
    public struct Routing: Sendable, Equatable {
        /// Channels of each job (the unit's `alerts`, else `[defaults] alerts`).
        public var routes: [String: [String]]
        public init(routes: [String: [String]]) { self.routes = routes }
    }

    let state: StateStore
    var machine: AlertStateMachine
    let routing: Routing
    let sender: any AlertSender
    let host: String
    let now: @Sendable () -> Date
    let logger = Logger.cairn("alerts")
    /// A delivery is retried for this long after it was queued, then given up (logged, `cairn alert status`).
    public var giveUpAfter: TimeInterval = 24 * 3600

    /// - Parameter knownSuccesses: last successes from the run history, for jobs the machine has not seen succeed yet
    ///   (or not as recently): staleness is watched from the newest of the two.
    public init(state: StateStore, rules: AlertRules, routing: Routing, sender: any AlertSender,
                host: String = ProcessInfo.processInfo.hostName, now: @escaping @Sendable () -> Date = { Date() },
                knownSuccesses: [String: Date] = [:]) throws {
        self.state = state
        self.routing = routing
        self.sender = sender
        self.host = host
        self.now = now
        var jobs: [String: AlertJobState] = [:]
        for (job, data) in try state.alertStates() {
            if let s = try? JSONDecoder().decode(AlertJobState.self, from: data) { jobs[job] = s }
        }
        for (job, at) in knownSuccesses where (jobs[job]?.lastSuccess ?? .distantPast) < at {
            var s = jobs[job] ?? AlertJobState()
            s.lastSuccess = at
            if s.status == .unknown { s.status = .ok }
            jobs[job] = s
        }
        self.machine = AlertStateMachine(rules: rules, jobs: jobs)
    }

    /// The retry delay after `attempts` failed attempts: 30 s doubling, at most an hour.
    public static func backoff(afterAttempts attempts: Int) -> TimeInterval {
        min(3600, 30 * pow(2, Double(max(0, attempts - 1))))
    }

    /// Applies a fact: decides, saves the state and queues the deliveries together. Returns the events decided.
    @discardableResult
    public func handle(_ fact: AlertFact, logTail: String? = nil) async -> [AlertEvent] {
        let before = machine.jobs
        var events = machine.handle(fact)
        if let logTail {
            for i in events.indices where events[i].kind != .recovered { events[i].logTail = logTail }
        }
        await persist(before: before, events: events)
        return events
    }

    /// Time-driven decisions at the current time (reminders, stale backups).
    @discardableResult
    public func tick() async -> [AlertEvent] {
        let before = machine.jobs
        let events = machine.tick(now: now())
        await persist(before: before, events: events)
        return events
    }

    /// Queues a ping of a run's start or end to the job's ping channels (not decided by the machine: every run).
    public func ping(_ event: AlertEvent) async {
        let channels = (routing.routes[event.job] ?? []).filter { sender.pingChannels.contains($0) }
        guard !channels.isEmpty else { return }
        await enqueue([event], to: { _ in channels }, states: [:])
    }

    /// When something is next due: a delivery retry, a reminder, a backup going stale.
    public func nextDue() async -> Date? {
        let state = self.state
        let queued = try? await runBlocking { try state.nextDeliveryDue() }
        return [queued ?? nil, machine.nextDue].compactMap { $0 }.min()
    }

    public var jobStates: [String: AlertJobState] { machine.jobs }

    private func persist(before: [String: AlertJobState], events: [AlertEvent]) async {
        var changed: [String: Data] = [:]
        for (job, s) in machine.jobs where before[job] != s {
            if let data = try? JSONEncoder().encode(s) { changed[job] = data }
        }
        guard !changed.isEmpty || !events.isEmpty else { return }
        let pings = sender.pingChannels
        await enqueue(events, to: { job in (self.routing.routes[job] ?? []).filter { !pings.contains($0) } }, states: changed)
    }

    private func enqueue(_ events: [AlertEvent], to channels: (String) -> [String], states: [String: Data]) async {
        var rows: [(channel: String, job: String, event: String, payload: Data)] = []
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        for e in events {
            guard let payload = try? encoder.encode(QueuedAlert(event: e, host: host)) else { continue }
            for c in channels(e.job) { rows.append((c, e.job, e.kind.rawValue, payload)) }
            logger.notice("alert", metadata: ["job": "\(e.job)", "event": "\(e.kind.rawValue)", "what": "\(e.what)",
                                              "channels": "\(channels(e.job).joined(separator: ","))"])
        }
        let state = self.state, at = now(), r = rows
        do {
            _ = try await runBlocking { try state.recordAlerts(states: states, deliveries: r, at: at) }
        } catch {
            logger.error("cannot record alerts", metadata: ["error": "\(error)"])
        }
    }

    /// Attempts every due delivery once (until `deadline`, when given);
    /// `everyPending`: every pending one whatever its next attempt time (the
    /// daemon's first pass after a start: receivers may have come back
    /// meanwhile). Returns how many were delivered.
    @discardableResult
    public func deliverDue(until deadline: ContinuousClock.Instant? = nil, everyPending: Bool = false) async -> Int {
        let state = self.state
        let due: [AlertDelivery]
        let upTo = everyPending ? Date.distantFuture : now()
        do { due = try await runBlocking { try state.dueDeliveries(now: upTo) } } catch {
            logger.error("cannot read the alert queue", metadata: ["error": "\(error)"])
            return 0
        }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        var delivered = 0
        for d in due {
            if let deadline, ContinuousClock.now >= deadline { break }
            if Task.isCancelled { break }
            guard let q = try? decoder.decode(QueuedAlert.self, from: d.payload) else {
                try? await runBlocking { try state.recordAttempt(id: d.id, delivered: false, result: "unreadable queued alert", retryAt: nil) }
                continue
            }
            let attempt: DeliveryAttempt
            if let deadline {
                attempt = await Self.bounded(until: deadline) { await self.sender.send(q.event, host: q.host, channel: d.channel, recipients: q.recipients) }
            } else {
                attempt = await sender.send(q.event, host: q.host, channel: d.channel, recipients: q.recipients)
            }
            // A partial delivery: the retry goes to the recipients not reached only.
            var remaining: Data?
            if !attempt.delivered, !attempt.failedRecipients.isEmpty, attempt.failedRecipients != (q.recipients ?? []) {
                var next = q
                next.recipients = attempt.failedRecipients
                let encoder = JSONEncoder()
                encoder.dateEncodingStrategy = .secondsSince1970
                remaining = try? encoder.encode(next)
            }
            let t = now()
            let retryAt: Date? = attempt.delivered || !attempt.retryable || t.timeIntervalSince(d.createdAt) >= giveUpAfter
                ? nil : t.addingTimeInterval(Self.backoff(afterAttempts: d.attempts + 1))
            let meta: Logger.Metadata = ["channel": "\(d.channel)", "job": "\(d.job)", "event": "\(d.event)",
                                         "attempt": "\(d.attempts + 1)", "result": "\(attempt.detail)"]
            if attempt.delivered {
                delivered += 1
                logger.info("alert delivered", metadata: meta)
            } else if let retryAt {
                logger.warning("alert delivery failed; will retry", metadata: meta.merging(["retry_at": "\(retryAt)"]) { a, _ in a })
            } else {
                logger.error("alert delivery failed; giving up", metadata: meta)
            }
            do {
                let payload = remaining
                try await runBlocking { try state.recordAttempt(id: d.id, delivered: attempt.delivered, result: attempt.detail, retryAt: retryAt,
                                                                payload: payload, at: t) }
            } catch {
                logger.error("cannot record an alert delivery", metadata: ["error": "\(error)"])
            }
        }
        return delivered
    }

    /// Runs `send` but answers "not delivered, retryable" at `deadline` (the send goes on being cancelled).
    static func bounded(until deadline: ContinuousClock.Instant, _ send: @escaping @Sendable () async -> DeliveryAttempt) async -> DeliveryAttempt {
        await withTaskGroup(of: DeliveryAttempt?.self) { group in
            group.addTask { await send() }
            group.addTask {
                try? await Sleep.until(deadline)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first ?? DeliveryAttempt(delivered: false, retryable: true, detail: "no answer before the first attempt's deadline; left queued")
        }
    }
}
