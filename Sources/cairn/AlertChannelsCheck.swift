import Config
import Core
import Foundation

/// The alert channels' lines of `cairn config check`; with --preflight each
/// channel's secret files are read as a send would read them.
enum AlertChannelsCheck {
    static func report(_ cfg: CairnConfig, preflight: Bool, firstProblem: inout CairnError?) {
        for name in cfg.alerts.channels.keys.sorted() {
            let c = cfg.alerts.channels[name]!
            var line = "  alert \(name.padding(toLength: 16, withPad: " ", startingAt: 0)) \(c.kind.typeName.padding(toLength: 10, withPad: " ", startingAt: 0))"
            let users = cfg.sortedJobs.filter { $0.alerts.contains(name) }.map(\.name)
            line += " used by " + (users.isEmpty ? "no job" : users.joined(separator: ", "))
            if preflight {
                do {
                    try c.checkSecrets()
                    line += ": ok"
                } catch {
                    let e = CairnError.wrap(error, .config, "alert channel \(name)")
                    line += ": \(e.message)"
                    firstProblem = firstProblem ?? e
                }
            }
            print(line)
        }
    }
}
