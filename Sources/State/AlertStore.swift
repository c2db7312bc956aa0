import Foundation
import GRDB

/// One queued alert delivery: an event for one channel.
public struct AlertDelivery: Sendable, Equatable {
    public enum Status: String, Sendable { case pending, delivered, failed }
    public var id: Int64
    public var channel: String
    public var job: String
    public var event: String
    /// The event, encoded by the Alerts module.
    public var payload: Data
    public var createdAt: Date
    public var nextAttemptAt: Date
    public var attempts: Int
    public var status: Status
    /// The last attempt's answer or error, one line.
    public var lastResult: String?
    public var finishedAt: Date?
}

/// The alert state machine's memory and the delivery queue, in cairn.sqlite:
/// saved together in one transaction with the events they decided, so a
/// restart neither repeats an alert nor forgets one.
extension StateStore {
    static func registerAlertMigrations(_ m: inout DatabaseMigrator) {
        m.registerMigration("v4-alerts") { db in
            try db.create(table: "alert_state") { t in
                t.primaryKey("job", .text)
                t.column("state", .blob).notNull()
            }
            try db.create(table: "alert_deliveries") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("channel", .text).notNull()
                t.column("job", .text).notNull()
                t.column("event", .text).notNull()
                t.column("payload", .blob).notNull()
                t.column("created_at", .datetime).notNull()
                t.column("next_attempt_at", .datetime).notNull()
                t.column("attempts", .integer).notNull().defaults(to: 0)
                t.column("status", .text).notNull()
                t.column("last_result", .text)
                t.column("finished_at", .datetime)
            }
            try db.create(index: "alert_deliveries_due", on: "alert_deliveries", columns: ["status", "next_attempt_at"])
        }
    }

    /// Every job's saved alert state (encoded by the Alerts module).
    public func alertStates() throws -> [String: Data] {
        try wrap("read the alert state") {
            try db.read { db in
                var out: [String: Data] = [:]
                for row in try Row.fetchAll(db, sql: "SELECT job, state FROM alert_state") { out[row["job"]] = row["state"] }
                return out
            }
        }
    }

    /// Saves changed job states and queues deliveries, atomically.
    @discardableResult
    public func recordAlerts(states: [String: Data], deliveries: [(channel: String, job: String, event: String, payload: Data)],
                             at now: Date = Date()) throws -> [Int64] {
        try wrap("record alerts") {
            try db.write { db in
                for (job, state) in states {
                    try db.execute(sql: "INSERT INTO alert_state (job, state) VALUES (?, ?) ON CONFLICT(job) DO UPDATE SET state = excluded.state",
                                   arguments: [job, state])
                }
                var ids: [Int64] = []
                for d in deliveries {
                    try db.execute(sql: """
                        INSERT INTO alert_deliveries (channel, job, event, payload, created_at, next_attempt_at, status)
                        VALUES (?, ?, ?, ?, ?, ?, 'pending')
                        """, arguments: [d.channel, d.job, d.event, d.payload, now, now])
                    ids.append(db.lastInsertedRowID)
                }
                return ids
            }
        }
    }

    /// Pending deliveries due at `now`, oldest first.
    public func dueDeliveries(now: Date = Date(), limit: Int = 50) throws -> [AlertDelivery] {
        try wrap("read due alert deliveries") {
            try db.read { db in
                try Row.fetchAll(db, sql: """
                    SELECT * FROM alert_deliveries WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?
                    """, arguments: [now, limit]).map(Self.delivery)
            }
        }
    }

    /// When the next pending delivery is due; nil when none is pending.
    public func nextDeliveryDue() throws -> Date? {
        try wrap("read the alert queue") {
            try db.read { db in
                try Date.fetchOne(db, sql: "SELECT MIN(next_attempt_at) FROM alert_deliveries WHERE status = 'pending'")
            }
        }
    }

    /// Records an attempt: delivered, retried at `retryAt`, or (retryAt nil) given up;
    /// `payload`: what the next attempt sends, when it changed (the recipients not reached yet).
    public func recordAttempt(id: Int64, delivered: Bool, result: String, retryAt: Date?, payload: Data? = nil, at now: Date = Date()) throws {
        try wrap("record an alert delivery attempt") {
            try db.write { db in
                let status = delivered ? "delivered" : retryAt == nil ? "failed" : "pending"
                try db.execute(sql: """
                    UPDATE alert_deliveries SET attempts = attempts + 1, status = ?, last_result = ?,
                      next_attempt_at = COALESCE(?, next_attempt_at), finished_at = ?, payload = COALESCE(?, payload) WHERE id = ?
                    """, arguments: [status, String(result.prefix(500)), retryAt, status == "pending" ? nil : now, payload, id])
            }
        }
    }

    /// The newest deliveries, for `cairn alert status`.
    public func alertDeliveries(limit: Int = 50) throws -> [AlertDelivery] {
        try wrap("read alert deliveries") {
            try db.read { db in
                try Row.fetchAll(db, sql: "SELECT * FROM alert_deliveries ORDER BY id DESC LIMIT ?", arguments: [limit]).map(Self.delivery)
            }
        }
    }

    static func delivery(_ row: Row) -> AlertDelivery {
        AlertDelivery(id: row["id"], channel: row["channel"], job: row["job"], event: row["event"], payload: row["payload"],
                      createdAt: row["created_at"], nextAttemptAt: row["next_attempt_at"], attempts: row["attempts"],
                      status: AlertDelivery.Status(rawValue: row["status"]) ?? .failed, lastResult: row["last_result"],
                      finishedAt: row["finished_at"])
    }
}
