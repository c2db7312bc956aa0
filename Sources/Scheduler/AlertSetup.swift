import Alerts
import Config
import Core
import Foundation
import State

/// Builds the alert center from the configuration: the channels
/// (`[alerts.NAME]`), each job's routes (`alerts`, else `[defaults]
/// alerts`), `remind_every`, the backup jobs' `stale_after` and the probes'
/// `fail_after`. Nil when no channel is configured.
public enum AlertSetup {
    public static func center(_ config: CairnConfig, state: StateStore, env: [String: String]) throws -> AlertCenter? {
        guard !config.alerts.channels.isEmpty else { return nil }
        var routes: [String: [String]] = [:]
        var stale: [String: TimeInterval] = [:]
        var failAfter: [String: Int] = [:]
        for job in config.sortedJobs {
            routes[job.name] = job.alerts
            if let s = job.staleAfter { stale[job.name] = seconds(s) }
            if case .probe(let p) = job.spec { failAfter[job.name] = p.failAfter }
        }
        let remind = seconds(config.alerts.remindEvery)
        let rules = AlertRules(remindEvery: remind > 0 ? remind : nil, staleAfter: stale, failAfter: failAfter)
        // Jobs watched for staleness start from their last success in the history
        // (one that succeeded before alerts were configured is watched too).
        let known = try state.lastSuccesses().filter { stale[$0.key] != nil }.mapValues { $0.finishedAt ?? $0.startedAt }
        return try AlertCenter(state: state, rules: rules, routing: .init(routes: routes),
                               sender: ChannelSender(config.alerts, env: env), knownSuccesses: known)
    }

    static func seconds(_ d: Duration) -> TimeInterval {
        d.inSeconds
    }
}
