import Foundation
import Testing
import State
@testable import Alerts

/// A channel that records what it is given and answers as told. (The real
/// channels are tested against real receivers in IntegrationTests; this one
/// tests the queue, its backoff and its persistence.)
final class RecordingSender: AlertSender, @unchecked Sendable {
    private let lock = NSLock()
    private var _sent: [(String, AlertEvent)] = []
    private var _answer = DeliveryAttempt(delivered: true, retryable: false, detail: "200 OK")
    var hang = false
    let pingChannels: Set<String>
    init(pings: Set<String> = []) { pingChannels = pings }
    var sent: [(String, AlertEvent)] { lock.lock(); defer { lock.unlock() }; return _sent }
    func answer(_ a: DeliveryAttempt) { lock.lock(); _answer = a; lock.unlock() }
    private var _recipients: [[String]?] = []
    var recipientsAsked: [[String]?] { lock.lock(); defer { lock.unlock() }; return _recipients }
    func send(_ event: AlertEvent, host: String, channel: String, recipients: [String]?) async -> DeliveryAttempt {
        if hang {
            // Never answers until cancelled (a receiver that accepted the connection and went silent).
            try? await Task.sleep(for: .seconds(3600))   // ends when the attempt is cancelled
            return DeliveryAttempt(delivered: false, retryable: true, detail: "cancelled")
        }
        return record(channel, event, recipients)
    }
    private func record(_ channel: String, _ event: AlertEvent, _ recipients: [String]?) -> DeliveryAttempt {
        lock.lock(); defer { lock.unlock() }
        _sent.append((channel, event))
        _recipients.append(recipients)
        return _answer
    }
}

final class TestClock: @unchecked Sendable {
    private let lock = NSLock()
    private var t = Date(timeIntervalSince1970: 1_780_000_000)
    var now: Date { lock.lock(); defer { lock.unlock() }; return t }
    func advance(_ s: TimeInterval) { lock.lock(); t += s; lock.unlock() }
}

@Suite struct AlertCenterTests {
    func tempState() throws -> (StateStore, String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-alerts-\(UUID().uuidString.prefix(8))").path
        return (try StateStore(stateDir: dir), dir)
    }

    func failed(_ clock: TestClock, _ job: String = "db") -> AlertFact {
        .runEnded(job: job, kind: "backup", failed: true, error: "pg_dump: connection refused", at: clock.now, runID: 1, refusal: false)
    }

    @Test func deliveriesAreQueuedPerRouteRetriedWithBackoffAndSurviveARestart() async throws {
        let (state, dir) = try tempState()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let clock = TestClock(), sender = RecordingSender()
        let routing = AlertCenter.Routing(routes: ["db": ["ops-sms", "ops-hook"]])
        let center = try AlertCenter(state: state, rules: AlertRules(), routing: routing, sender: sender, host: "h1", now: { clock.now })
        sender.answer(DeliveryAttempt(delivered: false, retryable: true, detail: "503 Service Unavailable"))
        let events = await center.handle(failed(clock))
        #expect(events.map(\.kind) == [.failed])
        #expect(await center.deliverDue() == 0)
        #expect(sender.sent.map(\.0).sorted() == ["ops-hook", "ops-sms"])
        let pending = try state.alertDeliveries().filter { $0.status == .pending }
        #expect(pending.count == 2 && pending.allSatisfy { $0.attempts == 1 && $0.lastResult == "503 Service Unavailable" })
        #expect(await center.nextDue() == clock.now.addingTimeInterval(30))
        #expect(await center.deliverDue() == 0 && sender.sent.count == 2)        // not due yet: not attempted

        // A restart: the state and the queue come back; the failure is not alerted twice.
        let restarted = try AlertCenter(state: try StateStore(stateDir: dir), rules: AlertRules(), routing: routing, sender: sender, host: "h1",
                                        now: { clock.now })
        clock.advance(5)
        #expect(await restarted.handle(failed(clock)).isEmpty)
        sender.answer(DeliveryAttempt(delivered: true, retryable: false, detail: "200 OK"))
        clock.advance(30)
        #expect(await restarted.deliverDue() == 2)
        let all = try state.alertDeliveries()
        #expect(all.count == 2 && all.allSatisfy { $0.status == .delivered && $0.attempts == 2 })
        #expect(sender.sent.allSatisfy { $0.1.kind == .failed && $0.1.job == "db" })
        #expect(await restarted.nextDue() != nil)                                 // the reminder, a day later
    }

    @Test func aRefusedDeliveryIsGivenUpAtOnceAndARetryableOneAfterADay() async throws {
        let (state, dir) = try tempState()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let clock = TestClock(), sender = RecordingSender()
        let center = try AlertCenter(state: state, rules: AlertRules(), routing: .init(routes: ["db": ["hook"], "x": ["hook"]]),
                                     sender: sender, host: "h", now: { clock.now })
        sender.answer(DeliveryAttempt(delivered: false, retryable: false, detail: "401 Unauthorized"))
        await center.handle(failed(clock))
        await center.deliverDue()
        #expect(try state.alertDeliveries().first?.status == .failed)

        sender.answer(DeliveryAttempt(delivered: false, retryable: true, detail: "connection refused"))
        await center.handle(failed(clock, "x"))
        var attempts = 0
        while try state.alertDeliveries().first?.status == .pending {
            await center.deliverDue()
            attempts += 1
            clock.advance(AlertCenter.backoff(afterAttempts: attempts))
            try #require(attempts < 100)
        }
        let given = try #require(try state.alertDeliveries().first)
        #expect(given.status == .failed && given.job == "x")
        #expect(given.attempts > 10 && given.attempts < 40)
        #expect(AlertCenter.backoff(afterAttempts: 1) == 30 && AlertCenter.backoff(afterAttempts: 3) == 120 && AlertCenter.backoff(afterAttempts: 20) == 3600)
    }

    /// `cairn run` outside the daemon: a bounded first attempt; a channel that does not answer stays queued.
    @Test func aBoundedFirstAttemptLeavesASilentChannelQueued() async throws {
        let (state, dir) = try tempState()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let clock = TestClock(), sender = RecordingSender()
        sender.hang = true
        let center = try AlertCenter(state: state, rules: AlertRules(), routing: .init(routes: ["db": ["hook"]]), sender: sender, host: "h",
                                     now: { clock.now })
        await center.handle(failed(clock))
        let delivered = await center.deliverDue(until: .now + .seconds(1))
        #expect(delivered == 0)
        let d = try #require(try state.alertDeliveries().first)
        // Pending for the daemon: attempted and cut off at the deadline (or, on a loaded machine, the deadline came first).
        #expect(d.status == .pending)
        #expect(d.lastResult?.contains("left queued") == true || d.attempts == 0, "\(d)")
    }

    @Test func pingsGoOnlyToPingChannelsAndAlertsOnlyToTheOthers() async throws {
        let (state, dir) = try tempState()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let clock = TestClock(), sender = RecordingSender(pings: ["hc"])
        let center = try AlertCenter(state: state, rules: AlertRules(), routing: .init(routes: ["db": ["hc", "hook"]]), sender: sender, host: "h",
                                     now: { clock.now })
        await center.ping(AlertEvent(kind: .failed, job: "db", what: "x", at: clock.now))
        await center.handle(failed(clock))
        await center.deliverDue()
        #expect(sender.sent.map(\.0) == ["hc", "hook"])
    }

    /// An SMS to two numbers, one refused: the retry goes to that one only.
    @Test func aPartialDeliveryIsRetriedForTheRecipientsNotReachedOnly() async throws {
        let (state, dir) = try tempState()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let clock = TestClock(), sender = RecordingSender()
        let center = try AlertCenter(state: state, rules: AlertRules(), routing: .init(routes: ["db": ["sms"]]), sender: sender, host: "h",
                                     now: { clock.now })
        sender.answer(DeliveryAttempt(delivered: false, retryable: true, detail: "1 of 2 sent", failedRecipients: ["+233200000002"]))
        await center.handle(failed(clock))
        await center.deliverDue()
        sender.answer(DeliveryAttempt(delivered: true, retryable: false, detail: "sent"))
        clock.advance(AlertCenter.backoff(afterAttempts: 1))
        #expect(await center.deliverDue() == 1)
        #expect(sender.recipientsAsked == [nil, ["+233200000002"]])
    }
}
