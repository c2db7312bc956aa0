import Config
import Core
import Cron
import Dispatch
import Foundation
import Jobs
import Alerts
import Logging
import State

/// `cairn serve`: loads and checks everything, then sleeps until something is
/// due, runs jobs, answers the control socket, reloads on SIGHUP and stops
/// gracefully on SIGTERM. The decisions are the `Planner`'s; this actor
/// carries them out.
public actor Daemon {
    public struct Options: Sendable {
        public var configPath: String
        public var env: [String: String]
        public init(configPath: String, env: [String: String] = ProcessInfo.processInfo.environment) {
            self.configPath = configPath
            self.env = env
        }
    }

    enum Event: Sendable {
        case wake
        case clockChanged
        case signal(Int32)
        case watchdog
        case graceExpired
        /// Jobs did not end within a minute of being cancelled: stop waiting for them.
        case giveUp
        case finished(runID: Int, end: RunEnd, message: ControlMessage)
    }

    /// A run in progress.
    final class Running: @unchecked Sendable {
        let run: PlannedRun
        let task: Task<Void, Never>
        let progress: ProgressBox
        init(run: PlannedRun, task: Task<Void, Never>, progress: ProgressBox) { self.run = run; self.task = task; self.progress = progress }
    }

    final class ProgressBox: @unchecked Sendable {
        private let lock = NSLock()
        private var value: (any JobProgress)?
        func set(_ p: any JobProgress) { lock.lock(); value = p; lock.unlock() }
        var line: String? { lock.lock(); defer { lock.unlock() }; return value?.line }
    }

    let options: Options
    let logger = Logger.cairn("scheduler")
    var config: CairnConfig
    var planner: Planner
    let state: StateStore
    let notifier: SDNotifier?
    let socketPath: String
    /// With `[cluster]`: the lock database that makes each scheduled instant run once across daemons.
    let cluster: ClusterCoordinator?
    /// Told of every run's start and end: the log, alerts (when channels are configured).
    let observers: [any RunObserver]
    /// The alert state machine, its SQLite memory and delivery queue; nil without alert channels.
    let alerts: AlertCenter?
    /// Wakes the alert delivery loop.
    let alertDoorbell: Doorbell
    /// Rewrites `metrics_file` after every run.
    let metrics: MetricsObserver?
    var running: [Int: Running] = [:]
    /// `cairn run --wait` clients, by run id.
    var watchers: [Int: [AsyncStream<ControlMessage>.Continuation]] = [:]
    var stopping = false
    var lastAdvance = Date()
    private var timer: WallTimer?
    private let events: AsyncStream<Event>
    private let emit: AsyncStream<Event>.Continuation

    /// The config loader the daemon uses: it also checks every schedule with the cron parser.
    public static let loader = ConfigLoader(scheduleValidator: { text in
        do { _ = try CronExpression(text); return nil } catch { return "\(error)" }
    })

    /// Loads and checks the configuration (config, schedules, storages, keys,
    /// state directory) before anything starts; any problem is an error here.
    public init(options: Options) throws {
        self.options = options
        let config = try Self.loader.load(path: options.configPath)
        try Self.preflight(config, env: options.env)
        self.config = config
        let state = try StateStore(stateDir: config.stateDir)
        self.state = state
        self.notifier = SDNotifier(env: options.env)
        self.socketPath = config.daemon.socketPath(stateDir: config.stateDir, env: options.env)
        self.cluster = config.cluster.map { ClusterCoordinator(config: $0, env: options.env) }
        let alerts = try AlertSetup.center(config, state: state, env: options.env)
        let doorbell = Doorbell()
        self.alerts = alerts
        self.alertDoorbell = doorbell
        var observers: [any RunObserver] = [RunLogObserver(logger: Logger.cairn("scheduler"))]
        if let alerts { observers.append(AlertRunObserver(center: alerts, kick: { doorbell.ring() })) }
        let metrics = config.metricsFile.map { MetricsObserver(config: config, state: state, path: $0) }
        self.metrics = metrics
        if let metrics { observers.append(metrics) }
        self.observers = observers
        let now = Date()
        // Runs left "running" by a process that died: marked failed (only when nobody holds the job's lock).
        for job in config.sortedJobs {
            if let lock = try? JobLock(stateDir: config.stateDir, job: job.name) {
                try state.markInterrupted(job: job.name, at: now)
                withExtendedLifetime(lock) {}
            }
        }
        self.planner = Planner(policies: try Self.policies(config), maxConcurrent: config.daemon.maxConcurrentJobs,
                               now: now, lastScheduled: try state.lastScheduled())
        (events, emit) = AsyncStream<Event>.makeStream()
    }

    /// The scheduling policy of every job.
    static func policies(_ config: CairnConfig) throws -> [JobPolicy] {
        try config.sortedJobs.map { try JobPolicy($0) }
    }

    /// Everything a job needs that can be checked without running it (`JobPreflight`, from each kind's needs).
    static func preflight(_ config: CairnConfig, env: [String: String]) throws {
        try JobPreflight.check(config, env: env)
    }

    // MARK: Main loop

    /// Runs until SIGTERM/SIGINT and every job has ended.
    public func run() async throws {
        try await cluster?.prepare()
        let server = try ControlServer(path: socketPath)
        let emit = self.emit
        let timer = try WallTimer { event in emit.yield(event == .fired ? .wake : .clockChanged) }
        self.timer = timer
        let signals = Self.installSignals { emit.yield(.signal($0)) }
        defer {
            signals.forEach { $0.cancel() }
            timer.stop()
            server.stop()
        }
        server.start { [weak self] request, conn in await self?.handle(request, conn) }
        var watchdogTask: Task<Void, Never>?
        if config.daemon.watchdog, let interval = notifier?.watchdogInterval {
            watchdogTask = Task {
                while !Task.isCancelled {
                    try? await Sleep.for(interval / 2)
                    emit.yield(.watchdog)
                }
            }
        }
        defer { watchdogTask?.cancel() }
        // Alerts: deliveries in the background (also those queued before a restart), reminders, stale backups.
        let deliveryTask = alerts.map { center in Task { [alertDoorbell] in await AlertDeliveryLoop.run(center, doorbell: alertDoorbell) } }
        defer { deliveryTask?.cancel() }
        for m in planner.missedWhileDown { missed(job: m.job, at: m.instant) }
        await metrics?.rewrite()

        logger.notice("cairn serve started", metadata: [
            "config": "\(config.path)", "jobs": "\(config.jobs.count)", "socket": "\(socketPath)",
            "max_concurrent_jobs": "\(config.daemon.maxConcurrentJobs)", "version": "\(CairnVersion.current)",
            "cluster_node": "\(cluster?.node ?? "-")",
        ])
        apply(planner.advance(to: Date()))
        lastAdvance = Date()
        timer.arm(at: planner.nextWake)
        notifier?.ready(status: statusLine())
        if running.isEmpty { releaseIdleMemory(after: "start-up") }

        for await event in events {
            switch event {
            case .wake:
                apply(planner.advance(to: Date()))
                lastAdvance = Date()
            case .clockChanged:
                let now = Date()
                logger.notice("the wall clock was set", metadata: ["jump_seconds": "\(Int(now.timeIntervalSince(lastAdvance)))"])
                apply(planner.clockChanged(now: now, previous: lastAdvance))
                lastAdvance = now
            case .watchdog:
                notifier?.watchdog()
            case .signal(let sig) where sig == SIGHUP:
                if !stopping { reload() }
            case .signal:
                if stopping {
                    logger.warning("second stop signal: cancelling running jobs now")
                    cancelAll()
                } else {
                    beginStop(server: server, timer: timer)
                }
            case .graceExpired:
                if !running.isEmpty {
                    logger.warning("stop grace period over: cancelling running jobs", metadata: ["running": "\(running.count)"])
                    cancelAll()
                    let emit = self.emit
                    Task {
                        try? await Sleep.for(.seconds(60))
                        emit.yield(.giveUp)
                    }
                }
            case .giveUp:
                logger.error("jobs did not stop within 60 s of being cancelled; exiting anyway", metadata: ["running": "\(running.count)"])
            case .finished(let id, let end, let message):
                runEnded(id, end, message)
            }
            if stopping && (running.isEmpty || event.isGiveUp) { break }
            replanned()
        }
        for (_, list) in watchers { list.forEach { $0.finish() } }
        logger.notice("cairn serve stopped")
    }

    /// After any change to the planner: wake at its next due time, tell systemd.
    private func replanned() {
        guard !stopping else { return }
        timer?.arm(at: planner.nextWake)
        notifier?.status(statusLine())
    }

    private func beginStop(server: ControlServer, timer: WallTimer) {
        stopping = true
        server.stop()
        timer.arm(at: nil)
        let still = planner.stop()
        notifier?.stopping(status: still.isEmpty ? "stopping" : "stopping: waiting for \(still.map(\.job).joined(separator: ", "))")
        logger.notice("stopping", metadata: ["running": "\(still.count)", "grace_period": "\(ConfigUnits.formatDuration(config.daemon.stopGracePeriod))"])
        if running.isEmpty {
            emit.yield(.graceExpired)
            return
        }
        let emit = self.emit, grace = config.daemon.stopGracePeriod
        Task {
            try? await Sleep.for(grace)
            emit.yield(.graceExpired)
        }
    }

    private func cancelAll() {
        for r in running.values { r.task.cancel() }
    }

    // MARK: Carrying out the planner's decisions

    private func apply(_ actions: [PlannerAction]) {
        for action in actions {
            switch action {
            case .start(let run):
                start(run)
            case .retryScheduled(let run, let at):
                logger.notice("retry scheduled", metadata: ["job": "\(run.job)", "run": "\(run.id)", "attempt": "\(run.attempt)", "at": "\(iso(at))"])
                broadcast(run.id, ControlMessage(type: "retry", job: run.job, run: run.id, attempt: run.attempt, at: at))
            case .skip(let job, let at, let trigger, let reason):
                recordSkipped(job: job, at: at, trigger: trigger, reason: reason)
            case .missed(let job, let at, let reason):
                recordSkipped(job: job, at: at, trigger: .schedule, reason: reason)
                missed(job: job, at: at)
            }
        }
    }

    private func recordSkipped(job: String, at: Date?, trigger: Trigger, reason: String) {
        logger.notice("run skipped", metadata: ["job": "\(job)", "scheduled_at": "\(at.map(iso) ?? "-")", "reason": "\(reason)"])
        let state = self.state, logger = self.logger
        Task {
            do { try await runBlocking { try state.recordSkipped(job: job, trigger: trigger.rawValue, scheduledAt: at, reason: reason) } } catch {
                logger.error("cannot record a skipped run", metadata: ["job": "\(job)", "error": "\(error)"])
            }
        }
    }

    /// A scheduled instant that did not run: alerted (once per instant, the state machine's memory).
    private func missed(job: String, at: Date) {
        logger.warning("scheduled run missed", metadata: ["job": "\(job)", "scheduled_at": "\(iso(at))"])
        guard let alerts else { return }
        let doorbell = alertDoorbell
        Task {
            await alerts.handle(.missed(job: job, scheduledAt: at, at: Date()))
            doorbell.ring()
        }
    }

    private func start(_ run: PlannedRun) {
        guard let job = config.jobs[run.job] else { return }
        let executor = RunExecutor(config: config, env: options.env, state: state,
                                   claims: cluster.map { ClusterRunClaims($0) }, observers: observers,
                                   cancelReason: "cairn serve is stopping")
        let emit = self.emit
        let progress = ProgressBox()
        let request = RunRequest(trigger: run.trigger.rawValue, scheduledAt: run.scheduledAt, attempt: run.attempt)
        let task = Task.detached {
            let r = await executor.execute(job, request, started: { progress.set($0) })
            var message = ControlMessage(type: "finished", job: run.job, run: run.id, attempt: run.attempt)
            message.result = r.result.rawValue
            message.summary = r.outcome?.summary
            let end: RunEnd
            switch r.ending {
            case .succeeded, .skipped: end = .succeeded
            case .failed: end = .failed
            case .timedOut: end = .timedOut
            case .cancelled: end = .cancelled
            case .busy: end = .busy(r.error?.message ?? "busy")
            }
            if r.ending == .busy, let e = r.error {
                message.error = e.message
                message.code = e.code.rawValue
            } else if let e = r.exitError {
                message.error = r.ending == .succeeded ? "run succeeded, but its end is not in the history: \(e.message)" : e.message
                message.code = e.code.rawValue
            }
            emit.yield(.finished(runID: run.id, end: end, message: message))
        }
        running[run.id] = Running(run: run, task: task, progress: progress)
        broadcast(run.id, ControlMessage(type: "started", job: run.job, run: run.id, attempt: run.attempt))
    }

    private func runEnded(_ id: Int, _ end: RunEnd, _ message: ControlMessage) {
        running[id] = nil
        apply(planner.finished(runID: id, end, now: Date()))
        if running.isEmpty && !stopping { releaseIdleMemory(after: "run") }
        // Final unless the planner will retry it.
        if !planner.pendingRetries.contains(where: { $0.run.id == id }) {
            broadcast(id, message)
            watchers[id]?.forEach { $0.finish() }
            watchers[id] = nil
        }
    }

    /// Nothing runs: give back the pages start-up or the last run touched
    /// (`IdleMemory`), so that an idle daemon's RSS is what it needs to wait.
    private func releaseIdleMemory(after what: String) {
        let logger = self.logger
        Task.detached {
            guard let r = try? await runBlocking({ () -> IdleMemory.Release in
                CheckpointStore.releaseMemoryOfOpenStores()
                return IdleMemory.release()
            }) else { return }
            logger.debug("idle: memory released", metadata: [
                "after": "\(what)", "rss_before_kib": "\(r.rssBefore >> 10)", "rss_kib": "\(r.rssAfter >> 10)",
                "paged_out": "\(r.pagedOut)",
            ])
        }
    }

    private func broadcast(_ id: Int, _ message: ControlMessage) {
        watchers[id]?.forEach { $0.yield(message) }
    }

    // MARK: Reload

    private func reload() {
        notifier?.reloading()
        defer { notifier?.ready() }
        let new: CairnConfig
        let policies: [JobPolicy]
        do {
            new = try Self.loader.load(path: options.configPath)
            try Self.preflight(new, env: options.env)
            policies = try Self.policies(new)
        } catch {
            logger.error("reload failed; keeping the previous configuration", metadata: ["error": "\(error)"])
            notifier?.status("reload failed, running the previous configuration: \(error)")
            return
        }
        if new.daemon.socketPath(stateDir: new.stateDir, env: options.env) != socketPath || new.stateDir != config.stateDir
            || new.cluster != config.cluster {
            logger.warning("the control socket, state_dir and [cluster] change only on restart")
        }
        let routes = { (c: CairnConfig) in c.sortedJobs.map { "\($0.name)=\($0.alerts)/\(String(describing: $0.staleAfter))/\(String(describing: $0.probeFailAfter))" } }
        if new.alerts != config.alerts || routes(new) != routes(config) || new.metricsFile != config.metricsFile {
            logger.warning("alert channels, each job's alerts, stale_after and fail_after, and metrics_file change only on restart (systemctl restart cairn)")
        }
        config = new
        apply(planner.reconfigure(policies: policies, maxConcurrent: new.daemon.maxConcurrentJobs, now: Date()))
        logger.notice("configuration reloaded", metadata: ["jobs": "\(new.jobs.count)"])
    }

    // MARK: Control requests

    func handle(_ request: ControlMessage, _ conn: ControlConnection) async {
        switch request.op {
        case "run":
            guard let job = request.job else {
                await conn.send(ControlMessage(type: "refused", error: "run: no job given", code: ErrorCode.usage.rawValue))
                return
            }
            let (reply, stream) = requestRun(job, wait: request.wait == true, peer: conn.peerUID)
            await conn.send(reply)
            guard let stream else { return }
            let ticker = Task { [weak self] in
                var last: String?
                while !Task.isCancelled {
                    try? await Sleep.for(.seconds(1))
                    guard let line = await self?.progressLine(reply.run ?? -1), line != last else { continue }
                    last = line
                    if !(await conn.send(ControlMessage(type: "progress", job: job, run: reply.run, line: line))) { return }
                }
            }
            for await message in stream {
                if !(await conn.send(message)) { break }
            }
            ticker.cancel()
        case "status":
            await conn.send(ControlMessage(type: "status", jobs: jobStatuses()))
        default:
            await conn.send(ControlMessage(type: "refused", error: "unknown request '\(request.op ?? "")'", code: ErrorCode.usage.rawValue))
        }
    }

    func requestRun(_ job: String, wait: Bool, peer: uid_t) -> (ControlMessage, AsyncStream<ControlMessage>?) {
        if stopping {
            return (ControlMessage(type: "refused", job: job, error: "cairn serve is stopping", code: ErrorCode.busy.rawValue), nil)
        }
        guard config.jobs[job] != nil else {
            let known = config.sortedJobs.map(\.name).joined(separator: ", ")
            return (ControlMessage(type: "refused", job: job, error: "no job '\(job)' in \(config.jobsDir)" + (known.isEmpty ? "" : " (jobs: \(known))"),
                                   code: ErrorCode.notFound.rawValue), nil)
        }
        var stream: AsyncStream<ControlMessage>?
        func watch(_ id: Int) {
            guard wait else { return }
            let (s, c) = AsyncStream<ControlMessage>.makeStream()
            watchers[id, default: []].append(c)
            stream = s
        }
        let (decision, actions) = planner.requestManual(job, now: Date())
        switch decision {
        case .accepted(let run):
            logger.notice("run requested", metadata: ["job": "\(job)", "run": "\(run.id)", "uid": "\(peer)"])
            watch(run.id)
            apply(actions)
            replanned()
            return (ControlMessage(type: "accepted", job: job, run: run.id), stream)
        case .queued(let run):
            logger.notice("run requested, queued", metadata: ["job": "\(job)", "run": "\(run.id)", "uid": "\(peer)"])
            watch(run.id)
            return (ControlMessage(type: "queued", job: job, run: run.id), stream)
        case .refused(let why):
            logger.notice("run request refused", metadata: ["job": "\(job)", "reason": "\(why)", "uid": "\(peer)"])
            return (ControlMessage(type: "refused", job: job, error: why, code: ErrorCode.busy.rawValue), nil)
        }
    }

    func progressLine(_ id: Int) -> String? { running[id]?.progress.line }

    func jobStatuses() -> [ControlMessage.JobStatus] {
        let upcoming = Dictionary(planner.upcoming.map { ($0.job, $0.due) }, uniquingKeysWith: { a, _ in a })
        return config.sortedJobs.map { job in
            var stateText = "idle"
            var line: String?
            if let r = planner.runningRuns.first(where: { $0.job == job.name }) {
                stateText = "running"
                line = running[r.id]?.progress.line
            } else if planner.waitingRuns.contains(where: { $0.job == job.name }) {
                stateText = "waiting"
            } else if planner.pendingRetries.contains(where: { $0.run.job == job.name }) {
                stateText = "retrying"
            }
            if planner.queuedRuns.contains(where: { $0.job == job.name }) { stateText += "+queued" }
            return ControlMessage.JobStatus(job: job.name, state: stateText, next: upcoming[job.name], progress: line)
        }
    }

    func statusLine() -> String {
        let runningJobs = planner.runningRuns.map(\.job)
        var parts: [String] = []
        if !runningJobs.isEmpty { parts.append("running: \(runningJobs.joined(separator: ", "))") }
        if let next = planner.upcoming.first {
            parts.append("next: \(next.job) at \(iso(next.due))")
        } else {
            parts.append("no scheduled jobs")
        }
        return parts.joined(separator: "; ")
    }

    // MARK: Signals

    nonisolated static func installSignals(_ handler: @escaping @Sendable (Int32) -> Void) -> [DispatchSourceSignal] {
        [SIGHUP, SIGTERM, SIGINT].map { sig in
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: ProcessSignals.queue)
            s.setEventHandler { handler(sig) }
            s.resume()
            return s
        }
    }
}

extension Daemon.Event {
    var isGiveUp: Bool { if case .giveUp = self { return true }; return false }
}

func iso(_ d: Date) -> String {
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return f.string(from: d)
}
