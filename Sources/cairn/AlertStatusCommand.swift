import ArgumentParser
import Config
import Core
import Foundation
import State

/// `cairn alert status`: each job's alert state and the newest deliveries
/// (delivered, pending with their next attempt, given up), from the state database.
struct AlertStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show each job's alert state and the newest alert deliveries (pending, delivered, given up).")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var options: ConfigOptions
    @Option(help: "How many deliveries.") var limit: Int = 30
    @Flag(help: "JSON output.") var json = false

    struct Row: Encodable {
        var id: Int64; var channel: String; var job: String; var event: String; var status: String
        var attempts: Int; var queuedAt: Date; var nextAttemptAt: Date?; var finishedAt: Date?; var lastResult: String?
    }

    func run() async throws {
        try global.bootstrap()
        try await reportingErrors {
            let config = try options.load()
            let limit = self.limit
            let rows = try await runBlocking {
                try StateStore(stateDir: config.stateDir).alertDeliveries(limit: limit)
            }.map { d in
                Row(id: d.id, channel: d.channel, job: d.job, event: d.event, status: d.status.rawValue, attempts: d.attempts,
                    queuedAt: d.createdAt, nextAttemptAt: d.status == .pending ? d.nextAttemptAt : nil, finishedAt: d.finishedAt,
                    lastResult: d.lastResult)
            }
            if json { print(try jsonString(rows)); return }
            if rows.isEmpty { print("no alert deliveries recorded in \(config.stateDir)"); return }
            print("QUEUED (UTC)          CHANNEL          JOB                  EVENT              STATUS     TRIES  LAST RESULT")
            for r in rows {
                let status = r.status == "pending" ? "pending" + (r.nextAttemptAt.map { " (next \(utc($0)))" } ?? "") : r.status
                print("\(utc(r.queuedAt))  \(pad(r.channel, 16)) \(pad(r.job, 20)) \(pad(r.event, 18)) \(pad(status, 10)) \(String(r.attempts).padding(toLength: 5, withPad: " ", startingAt: 0))  \(r.lastResult ?? "-")")
            }
        }
    }

    func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s.padding(toLength: n, withPad: " ", startingAt: 0) }
}
