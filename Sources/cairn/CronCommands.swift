import ArgumentParser
import Config
import Core
import Cron
import Foundation

/// ISO 8601 with the UTC offset of the zone, e.g. 2025-03-09T03:00:00-04:00.
func isoWithOffset(_ date: Date, _ tz: TimeZone) -> String {
    let f = ISO8601DateFormatter()
    f.timeZone = tz
    f.formatOptions = [.withInternetDateTime]
    var s = f.string(from: date)
    if s.hasSuffix("Z") { s = String(s.dropLast()) + "+00:00" }
    return s
}

struct CronCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cron",
        abstract: "Print the next fire instants of a cron expression.",
        discussion: """
        Debian cron semantics: 5 fields (or 6 with leading seconds), names, ranges, steps, lists, \
        @daily-style macros, L, LW, 5L, MON#1; a fixed-time job in a spring-forward gap runs at the \
        first valid instant after it, in a repeated fall-back hour once.
        Example: cairn cron '30 2 * * *' --tz America/New_York --from 2025-03-08T12:00:00-05:00 --count 3
        """)
    @Argument(help: "Cron expression (quote it).") var expression: String
    @Option(help: "IANA time zone (default: the system's).") var tz: String?
    @Option(help: "Start instant, ISO 8601 with an offset or a local time in --tz (default: now).") var from: String?
    @Option(help: "How many instants.") var count: Int = 5
    @Flag(help: "Measure: compute --count instants without printing them and report the rate.") var measure = false

    func run() throws {
        let zone: TimeZone
        if let tz {
            guard let z = TimeZone(identifier: tz) else { throw fail(.usage, "unknown time zone '\(tz)' (expected an IANA name such as Africa/Accra)") }
            zone = z
        } else {
            zone = .current
        }
        let expr: CronExpression
        do { expr = try CronExpression(expression) } catch let e as CronError { throw fail(.usage, "invalid cron expression '\(expression)': \(e.message)") }
        let start = try from.map { try parseInstant($0, zone) } ?? Date()
        if measure {
            let clock = ContinuousClock()
            var cursor = start, n = 0
            let elapsed = clock.measure {
                while n < count, let d = expr.next(after: cursor, in: zone) { cursor = d; n += 1 }
            }
            let secs = elapsed.inSeconds
            print("\(n) instants in \(String(format: "%.3f", secs)) s: \(Int(Double(n) / max(secs, 1e-9))) next() per second (last \(isoWithOffset(cursor, zone)))")
            return
        }
        let instants = expr.nextInstants(after: start, in: zone, count: count)
        if instants.isEmpty { throw fail(.usage, "'\(expression)' never fires") }
        for d in instants { print(isoWithOffset(d, zone)) }
    }
}

/// `--from`: an instant with an offset (`2025-03-08T12:00:00-05:00`, `…Z`) or
/// a local wall-clock time in the zone (`2025-03-08T12:00` or `2025-03-08 12:00:00`).
func parseInstant(_ s: String, _ zone: TimeZone) throws -> Date {
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime]
    if let d = f.date(from: s) { return d }
    let local = DateFormatter()
    local.locale = Locale(identifier: "en_US_POSIX")
    local.timeZone = zone
    for fmt in ["yyyy-MM-dd'T'HH:mm:ss", "yyyy-MM-dd'T'HH:mm", "yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd HH:mm", "yyyy-MM-dd"] {
        local.dateFormat = fmt
        if let d = local.date(from: s) { return d }
    }
    throw fail(.usage, "--from '\(s)': expected ISO 8601 such as 2025-03-08T12:00:00-05:00 or a local time 2025-03-08T12:00")
}

func fail(_ code: ErrorCode, _ message: String) -> ExitCode {
    FileHandle.standardError.write(Data("cairn: error: \(message)\n".utf8))
    return ExitCode(code.exitStatus)
}

struct NextCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "next", abstract: "List every job's upcoming runs.")
    @OptionGroup var options: ConfigOptions
    @Option(help: "Runs per job.") var count: Int = 3

    func run() throws {
        let config: CairnConfig
        do { config = try ConfigLoader(scheduleValidator: CronSupport.validator).load(path: options.path) } catch let e as CairnError {
            throw fail(e.code, e.description)
        }
        for job in config.sortedJobs {
            guard let schedule = job.schedule else { print("\(job.name): no schedule (run on demand)"); continue }
            guard job.enabled else { print("\(job.name): disabled"); continue }
            guard let expr = try? CronExpression(schedule) else { continue }
            let next = expr.nextInstants(after: Date(), in: job.timeZone, count: count).map { isoWithOffset($0, job.timeZone) }
            print("\(job.name) [\(schedule) \(job.timeZone.identifier)]: \(next.joined(separator: ", "))")
        }
    }
}
